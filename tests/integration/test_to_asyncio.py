"""Actors that run asyncio, trio as their guest (``infect_asyncio=True``)."""
from __future__ import annotations

import pytest
import trio

import aio_actor_funcs as af
import stream_funcs as sf
import tractorish
from tractorish import RemoteActorError

MODS = ['aio_actor_funcs', 'stream_funcs']


async def start_infected(an: tractorish.ActorNursery, name: str = 'aio') -> tractorish.Portal:
    return await an.start_actor(name, enable_modules=MODS, infect_asyncio=True)


async def test_an_infected_actor_runs_asyncio_and_everything_else_as_usual():
    async with tractorish.open_nursery() as an:
        portal = await start_infected(an)
        assert await portal.run(af.infected) == [True, True]
        assert await portal.run(af.add_via_asyncio, a=20, b=22) == 42
        # streams and contexts work there as in any actor
        async with portal.open_stream_from(sf.count, n=100) as stream:
            assert [x async for x in stream] == list(range(100))
        async with portal.open_context(sf.echo_ctx, greeting="hi") as (ctx, first):
            async with ctx.open_stream() as stream:
                await stream.send('ping')
                assert await stream.receive() == 'ping'
        await portal.cancel_actor()


async def test_errors_and_cancellation_both_ways():
    async with tractorish.open_nursery() as an:
        portal = await start_infected(an)
        with pytest.raises(RemoteActorError) as info:
            await portal.run(af.fail_via_asyncio, text='boom')
        assert info.value.boxed_type is ValueError and 'boom' in info.value.message
        assert 'aio_fail' in await portal.run(af.traceback_names)  # asyncio's frames
        # the trio side cancelled: the asyncio task is cancelled, nothing left
        assert await portal.run(af.cancel_from_trio) == ['cancelled', True]
        # cancelled by asyncio itself: a clear error in trio, not a hang
        assert (await portal.run(af.cancelled_by_asyncio)).startswith('AsyncioCancelled')
        # a caller's cancel reaches through the actor into asyncio
        with trio.move_on_after(0.5):
            await portal.run(af.long_via_asyncio, seconds=30)
        with trio.fail_after(5):
            while 'asyncio task cancelled' not in await portal.run(af.marks):
                await trio.sleep(0.05)
        await portal.cancel_actor()


async def test_a_channel_with_an_asyncio_task():
    async with tractorish.open_nursery() as an:
        portal = await start_infected(an)
        assert await portal.run(af.channel_echo, n=3) == [
            'ready', 'echo: 0', 'echo: 1', 'echo: 2', 'end', True]
        assert await portal.run(af.channel_count, n=10_000) is True  # in order
        assert await portal.run(af.channel_fails) == (
            "KeyError 'asyncio side failed' tasks left 0")
        assert await portal.run(af.channel_cancelled_from_trio) == ['aio cancelled', True]
        await portal.cancel_actor()


async def test_a_channel_task_cancelled_by_asyncio_ends_the_block_with_asyncio_cancelled():
    async with tractorish.open_nursery() as an:
        portal = await start_infected(an)
        with trio.fail_after(20):
            assert await portal.run(af.channel_cancelled_by_asyncio, read=False) == \
                'AsyncioCancelled'
            assert await portal.run(af.channel_cancelled_by_asyncio, read=True) == \
                'AsyncioCancelled'
        await portal.cancel_actor()


async def test_asyncio_helpers_say_so_in_an_actor_without_asyncio():
    async with tractorish.open_nursery() as an:
        plain = await an.start_actor('plain', enable_modules=MODS)
        assert 'infect_asyncio=True' in await plain.run(af.run_task_here)
        await plain.cancel_actor()
    with pytest.raises(NotImplementedError, match='infect_asyncio'):
        async with tractorish.open_nursery(infect_asyncio=True):
            pass


async def test_run_in_actor_and_a_pool_of_infected_workers():
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(af.add_via_asyncio, a=1, b=2, infect_asyncio=True)
        assert await portal.result() == 3
    async with tractorish.open_actor_pool(2, enable_modules=MODS, name='aio-pool',
                                          infect_asyncio=True) as pool:
        results = [r async for r in pool.starmap(
            af.add_via_asyncio, ({'a': i, 'b': i} for i in range(50)))]
        assert results == [2 * i for i in range(50)]
        assert list((await pool.cast(af.infected)).values()) == [[True, True]] * 2


async def test_nothing_is_left_behind(capfd, monkeypatch):
    # warnings on in the child: a task destroyed while pending, a coroutine
    # never awaited or a socket left open would be printed to its stderr
    monkeypatch.setenv('PYTHONWARNINGS', 'always')
    async with tractorish.open_nursery() as an:
        portal = await start_infected(an)
        await portal.run(af.channel_echo, n=2)
        await portal.run(af.channel_fails)
        await portal.run(af.channel_cancelled_from_trio)
        await portal.run(af.cancel_from_trio)
        with trio.move_on_after(0.3):
            await portal.run(af.long_via_asyncio, seconds=30)
        [child] = an.children
        await portal.cancel_actor()
        with trio.fail_after(10):
            assert await child.wait() == 0
    err = capfd.readouterr().err
    for sign in ('never awaited', 'destroyed but it is pending', 'Warning', 'Traceback'):
        assert sign not in err, err


async def test_an_asyncio_task_ignoring_its_cancellation_does_not_keep_the_actor_alive():
    """Cancelled, the call waits up to CANCEL_WAIT for the task; the actor
    ending waits for it as long again, then exits with the task left."""
    async with tractorish.open_nursery() as an:
        portal = await start_infected(an)
        [child] = an.children
        async with trio.open_nursery() as nursery:
            nursery.start_soon(portal.run, af.run_a_task_that_ignores_cancellation)
            await trio.sleep(0.5)
            await portal.cancel_actor()
            nursery.cancel_scope.cancel()
        with trio.fail_after(30):  # (was: for ever)
            await child.wait()
