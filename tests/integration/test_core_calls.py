"""Calls into real actor processes: values, errors, exposure, cancellation."""
from __future__ import annotations

import datetime
import functools
import os
import random

import msgpack
import psutil
import pytest
import trio

import actor_funcs
import tractorish
from tractorish import ModuleNotExposed, RemoteActorError

EVERY_TYPE = [
    None, True, False, 0, -1, 2**63 - 1, -2**63, 2**64 - 1, 1.5, -0.0,
    '', 'héllo ✓ 漢字', b'', b'\x00\xff' * 100, [], [1, [2, [3]]],
    {}, {'a': {1: 'int key', 'b': [None]}},
    datetime.datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc),
    msgpack.ExtType(42, b'opaque'),
    'x' * 100_000,
]


async def test_round_trip_of_every_msgpack_type():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('echo', enable_modules=['actor_funcs'])
        for value in EVERY_TYPE:
            assert await portal.run(actor_funcs.echo, value=value) == value
        # tuples travel as arrays
        assert await portal.run(actor_funcs.echo, value=(1, 'a')) == [1, 'a']
        await portal.cancel_actor()


async def test_calls_that_never_suspend_are_answered_in_place_as_if_in_a_task():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('inline', enable_modules=['actor_funcs'])
        # a function's first call runs in a task (its source is not read
        # for one call); from its second on, the reader answers it itself
        first = await portal.run(actor_funcs.task_name_in_place)
        in_place = await portal.run(actor_funcs.task_name_in_place)
        in_task = await portal.run(actor_funcs.task_name_in_task)
        assert first.endswith('_run_rpc') and in_task.endswith('_run_rpc')
        assert in_place != in_task
        assert await portal.run(actor_funcs.task_name_in_place) == in_place
        assert await portal.run(actor_funcs.task_name_in_task) == in_task
        # yet each call sees its own copy of the context, as a task would
        assert await portal.run(actor_funcs.swap_context_var, value='a') == 'unset'
        assert await portal.run(actor_funcs.swap_context_var, value='b') == 'unset'
        # many at once: one read brings many calls, one write the replies
        results = {}

        async def add(i):
            results[i] = await portal.run(actor_funcs.add, a=i, b=1000)
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(add, i)
        assert results == {i: i + 1000 for i in range(200)}
        await portal.cancel_actor()


async def test_a_caller_reading_its_own_reply_serves_the_callees_calls_too():
    # The only call in flight reads its reply itself: meanwhile it must hand
    # the callee's calls back into us to the runtime, in the runtime's
    # context (never the caller's), and keep serving after each ending.
    # (No discovery: its registration would be a second call in flight.)
    config = tractorish.RuntimeConfig(discovery='off')
    async with tractorish.open_root_actor(enable_modules=['actor_funcs'], config=config):
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor('caller-back', enable_modules=['actor_funcs'])
            actor_funcs._swapped.set('the caller task')
            for _ in range(3):
                # answered in place by whoever reads our channel: from the
                # second call on, that is this task
                assert await portal.run(actor_funcs.call_parent, func='swap_context_var',
                                        value='x') == 'unset'
            for _ in range(3):  # or by a task of its own
                assert await portal.run(actor_funcs.call_parent, func='sleep',
                                        seconds=0.01) == 0.01
            assert actor_funcs._swapped.get() == 'the caller task'
            # a call cancelled while it reads for itself leaves the reading
            # to the runtime, which goes on serving
            with trio.move_on_after(0.2):
                await portal.run(actor_funcs.sleep, seconds=30)
            assert await portal.run(actor_funcs.add, a=1, b=2) == 3
            await portal.cancel_actor()


@pytest.mark.parametrize('spin_us', [0, 150])
async def test_served_channels_poll_as_long_as_the_config_says(spin_us):
    config = tractorish.RuntimeConfig(discovery='off', spin_us=spin_us)
    async with tractorish.open_root_actor(enable_modules=['actor_funcs'], config=config):
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor('spinner', enable_modules=['actor_funcs'])
            # the child's config is the parent's, and so is the poll
            assert await portal.run(actor_funcs.parent_channel_spin_ns) == spin_us * 1000
            assert portal.channel.spin_ns == spin_us * 1000
            for i in range(50):  # and calls work either way
                assert await portal.run(actor_funcs.add, a=i, b=1) == i + 1
            await portal.cancel_actor()


@pytest.mark.parametrize('seed', [1, 2])
async def test_the_read_turn_survives_random_cancels_callbacks_and_concurrency(seed):
    # The read turn passes between the reader task and the calling task at
    # every call, cancellation, callback from the callee and change between
    # one and several calls in flight: no message may be lost, nothing may
    # hang, and the channel must stay served throughout.
    rnd = random.Random(seed)
    config = tractorish.RuntimeConfig(discovery='off')
    async with tractorish.open_root_actor(enable_modules=['actor_funcs'], config=config):
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor('turns', enable_modules=['actor_funcs'])
            with trio.fail_after(60):
                for i in range(200):
                    roll = rnd.random()
                    if roll < 0.35:
                        assert await portal.run(actor_funcs.add, a=i, b=1) == i + 1
                    elif roll < 0.55:
                        assert await portal.run(actor_funcs.call_parent, func='echo',
                                                value=i) == i
                    elif roll < 0.8:
                        with trio.move_on_after(rnd.random() * 0.003):
                            await portal.run(actor_funcs.sleep, seconds=rnd.random() * 0.003)
                    else:
                        results = []

                        async def one(j):
                            results.append(await portal.run(actor_funcs.add, a=j, b=0))
                        async with trio.open_nursery() as nursery:
                            for j in range(rnd.randint(2, 5)):
                                nursery.start_soon(one, j)
                        assert sorted(results) == list(range(len(results)))
                assert await portal.run(actor_funcs.echo, value='still served') == 'still served'
            await portal.cancel_actor()


def test_never_suspends_reads_the_source():
    from tractorish.runtime._resolve import never_suspends

    async def plain(a):
        return [x * 2 for x in a]

    async def awaits():
        await trio.sleep(0)

    async def loops(it):
        async for x in it:
            return x

    async def with_block(cm):
        async with cm:
            return 1

    async def comprehension(it):
        return [x async for x in it]

    def sync():
        return 1

    async def defines_one_that_awaits():
        async def inner():
            await trio.sleep(0)
        return inner

    made = {}
    exec('async def no_source():\n    return 1', made)  # nothing to read: a task

    async def gen():
        yield 1

    assert never_suspends(plain) and never_suspends(actor_funcs.add)
    assert never_suspends(defines_one_that_awaits)  # inner's await is not its own
    for fn in (awaits, loops, with_block, comprehension, sync, gen,
               actor_funcs.sleep, functools.partial(plain, [1]), made['no_source']):
        assert not never_suspends(fn), fn


async def test_wrong_kwargs_give_boxed_type_error():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('adder', enable_modules=['actor_funcs'])
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.add, a=1, c=2)
        assert info.value.boxed_type is TypeError
        assert "'c'" in info.value.message
        # the actor goes on serving
        assert await portal.run(actor_funcs.add, a=1, b=2) == 3
        await portal.cancel_actor()


async def test_module_outside_enable_modules_is_not_exposed_nor_imported():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('guarded', enable_modules=['actor_funcs'])
        with pytest.raises(RemoteActorError) as info:
            await portal.run_from_ns('not_exposed_mod', 'secret_function')
        assert info.value.boxed_type is ModuleNotExposed
        assert 'not_exposed_mod' in info.value.message
        assert not await portal.run(actor_funcs.is_imported, module='not_exposed_mod')
        # a function imported into an exposed module is not exposed either
        with pytest.raises(RemoteActorError) as info:
            await portal.run_from_ns('actor_funcs', 'Path')
        assert info.value.boxed_type is ModuleNotExposed
        with pytest.raises(RemoteActorError) as info:
            await portal.run_from_ns('self', 'load_modules')
        assert info.value.boxed_type is AttributeError
        await portal.cancel_actor()


async def test_remote_exception_keeps_type_and_traceback():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('raiser', enable_modules=['actor_funcs'])
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.raise_value_error, text='it broke')
        err = info.value
        assert err.boxed_type is ValueError
        assert err.type_str == 'ValueError'
        assert err.src_uid == portal.peer_uid
        assert 'raise_value_error' in err.tb_str and 'it broke' in err.tb_str
        assert 'ValueError: it broke' in err.tb_str
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.raise_custom)
        assert info.value.boxed_type is actor_funcs.CustomError
        await portal.cancel_actor()


async def test_unencodable_return_is_a_boxed_error():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('badret', enable_modules=['actor_funcs'])
        with pytest.raises(RemoteActorError) as info:
            await portal.run(actor_funcs.return_unencodable)
        assert info.value.boxed_type is tractorish.MsgTypeError
        await portal.cancel_actor()


async def test_unencodable_argument_fails_locally():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('badarg', enable_modules=['actor_funcs'])
        with pytest.raises(tractorish.MsgTypeError):
            await portal.run(actor_funcs.echo, value=object())
        assert await portal.run(actor_funcs.echo, value=1) == 1
        await portal.cancel_actor()


async def test_move_on_after_cancels_the_remote_task_and_actor_keeps_serving():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('sleeper', enable_modules=['actor_funcs'])
        start = trio.current_time()
        with trio.move_on_after(0.2) as scope:
            await portal.run(actor_funcs.sleep_forever_counting_cancels)
        assert scope.cancelled_caught
        assert trio.current_time() - start < 1.0
        # the remote task really ended (its finally ran) before we went on
        assert await portal.run(actor_funcs.cancelled_count) == 1
        assert await portal.run(actor_funcs.add, a=2, b=2) == 4
        await portal.cancel_actor()


async def test_many_concurrent_calls_on_one_portal_are_isolated():
    results = {}
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('multi', enable_modules=['actor_funcs'])

        async def one(i: int) -> None:
            if i % 10 == 3:
                with pytest.raises(RemoteActorError):
                    await portal.run(actor_funcs.raise_value_error)
            elif i % 10 == 7:
                with trio.move_on_after(0.05):
                    await portal.run(actor_funcs.sleep, seconds=10)
            else:
                results[i] = await portal.run(actor_funcs.add, a=i, b=1)

        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(one, i)
        await portal.cancel_actor()
    assert results == {i: i + 1 for i in range(60) if i % 10 not in (3, 7)}


async def test_portal_run_rejects_generators_and_local_functions():
    async def local():
        return 1

    async def agen():
        yield 1

    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('picky', enable_modules=['actor_funcs'])
        with pytest.raises(TypeError, match='module-level'):
            await portal.run(local)
        with pytest.raises(TypeError, match='open_stream_from'):
            await portal.run(agen)
        await portal.cancel_actor()


async def test_child_knows_itself_and_inherits_cwd():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('self-aware', enable_modules=['actor_funcs'])
        info = await portal.run(actor_funcs.actor_info)
        assert info['name'] == 'self-aware'
        assert info['is_root'] is False
        # our child, or (forkserver) the child of our zygote
        assert os.getpid() in (info['ppid'], psutil.Process(info['ppid']).ppid())
        assert info['cwd'] == os.getcwd()
        assert tractorish.is_root_process()
        assert tractorish.current_actor().is_root
        await portal.cancel_actor()
    with pytest.raises(tractorish.NoRuntime):
        tractorish.current_actor()


async def test_uds_transport(tmp_path):
    config = tractorish.RuntimeConfig(transport='uds', uds_dir=str(tmp_path))
    async with tractorish.open_nursery(config=config) as an:
        portal = await an.start_actor('unix', enable_modules=['actor_funcs'])
        assert isinstance(tractorish.current_actor().listen_addrs[0], str)
        assert await portal.run(actor_funcs.add, a=20, b=22) == 42
        result = await portal.run(actor_funcs.spawn_grandchild_result, a=1, b=2)
        assert result[1]['sum'] == 3
        await portal.cancel_actor()
    assert not list(tmp_path.glob('*.sock'))
