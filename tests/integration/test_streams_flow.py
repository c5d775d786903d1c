"""Flow control and cancel scopes that reach across chains of actors."""
from __future__ import annotations

from pathlib import Path

import psutil
import trio

import actor_funcs
import stream_funcs as sf
import tractorish

MODULES = ['stream_funcs', 'actor_funcs']
MiB = 1024 * 1024


async def test_slow_consumer_bounds_memory_and_loses_nothing():
    """200,000 x 1 KiB from a fast producer to a consumer that keeps pausing."""
    total = 200_000
    me = psutil.Process()
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('producer', enable_modules=MODULES)
        producer = psutil.Process(portal.channel.peer_info['pid'])
        base_producer = producer.memory_info().rss
        base_consumer = me.memory_info().rss
        peak_producer = peak_consumer = 0
        expected = 0
        async with portal.open_stream_from(sf.fast_producer, n=total) as stream:
            async for i, blob in stream:
                assert i == expected and len(blob) == 1024
                expected += 1
                if i % 500 == 0:
                    await trio.sleep(0.002)  # the consumer is the slow side
                if i % 10_000 == 0:
                    peak_producer = max(peak_producer, producer.memory_info().rss)
                    peak_consumer = max(peak_consumer, me.memory_info().rss)
        assert expected == total
        await portal.cancel_actor()
    # 200 MB went through; without flow control it piles up somewhere
    assert peak_producer - base_producer < 40 * MiB, (peak_producer - base_producer) / MiB
    assert peak_consumer - base_consumer < 40 * MiB, (peak_consumer - base_consumer) / MiB


async def test_an_unread_stream_does_not_stall_other_calls_on_the_channel():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('busy', enable_modules=MODULES)
        async with portal.open_stream_from(sf.fast_producer, n=100_000) as stream:
            assert (await stream.receive())[0] == 0
            # the producer is now blocked on credit, with the stream unread;
            # the same channel still carries calls both ways
            with trio.fail_after(5):
                for i in range(50):
                    assert await portal.run(actor_funcs.add, a=i, b=1) == i + 1
            assert (await stream.receive())[0] == 1
        await portal.cancel_actor()


async def test_cancel_scope_reaches_down_a_chain_of_three_actors(tmp_path):
    pidfile = tmp_path / 'pids'
    markers = tmp_path / 'markers'
    markers.mkdir()
    async with tractorish.open_nursery() as an:
        top = await an.start_actor('chain-top', enable_modules=MODULES)
        with trio.move_on_after(30) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: top.run(
                    sf.chain_sleep, depth=2, pidfile=str(pidfile),
                    marker_dir=str(markers)))
                # wait until the whole chain is up: top, chain-1, chain-0
                while not pidfile.exists() or len(pidfile.read_text().split()) < 3:
                    await trio.sleep(0.02)
                pids = [int(p) for p in pidfile.read_text().split()]
                nursery.cancel_scope.cancel()
        assert not scope.cancelled_caught
        # every level's task was cancelled and ran its finally block
        assert sorted(p.name for p in markers.iterdir()) == ['chain-0', 'chain-1', 'chain-top']
        # the actors below the top went with their nurseries; the top serves on
        for pid in pids[1:]:
            with trio.fail_after(10):
                while psutil.pid_exists(pid) and \
                        psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    await trio.sleep(0.05)
        assert await top.run(actor_funcs.getpid) == pids[0]
        await top.cancel_actor()


async def test_timeout_around_a_context_cancels_the_callee(tmp_path):
    marker = tmp_path / 'cancelled'
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('ctx-sleeper', enable_modules=MODULES)
        with trio.move_on_after(0.3) as scope:
            async with portal.open_context(sf.sleep_in_ctx, marker=str(marker)):
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert Path(marker).read_text() == 'cancelled'
        assert await portal.run(actor_funcs.add, a=1, b=1) == 2
        await portal.cancel_actor()
