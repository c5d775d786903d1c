"""Every exception a remote function can raise travels to its caller, and
the actor goes on serving (only a cancel of the actor ends it)."""
from __future__ import annotations

import pytest

import actor_funcs
import tractorish
from tractorish import RemoteActorError

KINDS = {
    'keyboard': 'KeyboardInterrupt',
    'exit': 'SystemExit',
    'base': 'NotAnException',
    'unprintable': 'UnprintableError',
    'surrogate': 'ValueError',
}
PATHS = [actor_funcs.raise_in_task, actor_funcs.raise_inline, actor_funcs.raise_in_thread]


@pytest.mark.parametrize('fn', PATHS, ids=['task', 'inline', 'thread'])
async def test_every_error_travels_and_the_actor_serves_on(fn):
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('sturdy', enable_modules=['actor_funcs'])
        pid = await portal.run(actor_funcs.getpid)
        for kind, type_name in KINDS.items():
            with pytest.raises(RemoteActorError) as info:
                await portal.run(fn, kind=kind)
            assert info.value.type_str == type_name, kind
            assert info.value.src_uid[0] == 'sturdy'
            # the same process answers the next call
            assert await portal.run(actor_funcs.getpid) == pid
        await portal.cancel_actor()


async def test_an_errors_text_is_kept_or_replaced_safely():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('texts', enable_modules=['actor_funcs'])
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.raise_in_task, kind='surrogate')
        assert 'lone surrogate: \\udc80 here' in info.value.message
        assert info.value.boxed_type is ValueError
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.raise_in_task, kind='unprintable')
        assert 'its text could not be made' in info.value.message
        assert 'no text for you' in info.value.message
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.raise_in_task, kind='exit')
        assert info.value.boxed_type is SystemExit and info.value.message == '3'
        await portal.cancel_actor()
