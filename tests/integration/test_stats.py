"""Live stats: ``Portal.stats()`` after a known workload gives known counts."""
from __future__ import annotations

import os
import signal
import urllib.request

import pytest
import trio

import stats_funcs as sf
import tractorish
from tractorish.testing import free_port

MODS = ['stats_funcs']


def parent_channel(stats: dict, parent_uid) -> dict:
    [chan] = [c for c in stats['channels'] if c['peer'] == list(parent_uid)]
    return chan


async def until(predicate, portal):
    """Poll the actor's stats until ``predicate`` holds (bounded)."""
    with trio.fail_after(20):
        while True:
            stats = await portal.stats()
            if predicate(stats):
                return stats
            await trio.sleep(0.01)


async def test_calls_messages_and_bytes_of_a_known_workload():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=MODS)
        root_uid = tractorish.current_actor().uid
        before = await portal.stats()
        for i in range(10):
            assert await portal.run(sf.echo, x=i) == i
        for i in range(5):
            assert await portal.run(sf.echo_later, x=i) == i
        for fn in (sf.fail_now, sf.fail_later, sf.fail_now):
            with pytest.raises(tractorish.RemoteActorError):
                await portal.run(fn)
        await portal.run(sf.echo, x=b'x' * 10_000)
        after = await portal.stats()
        # 19 calls, and the second stats call itself
        assert after['calls_served'] - before['calls_served'] == 20
        assert after['calls_failed'] - before['calls_failed'] == 3
        was, now = parent_channel(before, root_uid), parent_channel(after, root_uid)
        assert now['calls_served'] - was['calls_served'] == 20
        # each call: one cmd in, two replies out (functype, then return or
        # error); a stats call's functype is queued before its snapshot is
        # taken, its return after
        assert now['messages_in'] - was['messages_in'] == 20
        assert now['messages_out'] - was['messages_out'] == 1 + 19 * 2 + 1
        assert now['bytes_in'] - was['bytes_in'] > 10_000
        assert now['bytes_out'] - was['bytes_out'] > 10_000  # the echo's reply
        assert after['messages_in'] >= now['messages_in']  # totals cover all channels
        assert after['name'] == 'worker' and after['uid'] == list(portal.peer_uid)
        assert after['pid'] == await portal.run(sf.getpid)
        assert after['rss'] > 1_000_000 and after['uptime'] >= 0
        assert after['calls_in_flight'] == 0 and after['calls_waiting'] == 0
        assert after['streams_open'] == after['contexts_open'] == 0
        assert after['credit_waits'] == 0 and after['restarts'] == 0
        await portal.cancel_actor()


async def test_every_stream_value_is_counted():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=MODS)
        root_uid = tractorish.current_actor().uid
        before = parent_channel(await portal.stats(), root_uid)
        for n in (1000, 3):  # values queued in bulk, and one by one
            async with portal.open_stream_from(sf.count, n=n) as stream:
                assert [v async for v in stream] == list(range(n))
        after = parent_channel(await portal.stats(), root_uid)
        # the first stats call's return; per stream a functype, its values
        # and a stop; the second stats call's functype
        assert after['messages_out'] - before['messages_out'] == 1 + 1003 + 2 * 2 + 1
        # each stream: its cmd and the consumer's credit grants; the stats call
        assert after['messages_in'] - before['messages_in'] > 2 + 1
        await portal.cancel_actor()


async def test_calls_in_flight_and_open_streams_and_contexts():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=MODS)
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(portal.run, sf.block)
            stats = await until(lambda s: s['calls_in_flight'] == 3, portal)
            assert stats['streams_open'] == stats['contexts_open'] == 0
            async with portal.open_stream_from(sf.count, n=5) as stream:
                assert await stream.receive() == 0
                async with portal.open_context(sf.hold) as (ctx, _):
                    stats = await portal.stats()
                    assert stats['streams_open'] == 1 and stats['contexts_open'] == 1
                    assert stats['calls_in_flight'] == 5  # 3 calls, a stream, a context
                    mine = tractorish.current_actor().stats()
                    assert mine['calls_waiting'] == 5
                    assert mine['streams_open'] == 1 and mine['contexts_open'] == 1
                    await ctx.cancel()
            nursery.cancel_scope.cancel()
        stats = await until(lambda s: s['calls_in_flight'] == 0, portal)
        assert stats['streams_open'] == stats['contexts_open'] == 0
        await portal.cancel_actor()


async def test_a_sender_out_of_credit_counts_one_wait():
    config = tractorish.RuntimeConfig(stream_window=2)
    async with tractorish.open_nursery(config=config) as an:
        portal = await an.start_actor('worker', enable_modules=MODS)
        async with portal.open_context(sf.send_three) as (ctx, _):
            async with ctx.open_stream() as stream:
                await stream.send('go')
                await until(lambda s: s['credit_waits'] == 1, portal)
                assert [await stream.receive() for _ in range(3)] == [0, 1, 2]
        assert (await portal.stats())['credit_waits'] == 1
        await portal.cancel_actor()


async def test_restarts_are_counted_by_the_supervising_actor():
    async with tractorish.open_supervisor('one_for_one', max_restarts=5) as sup:
        await sup.start_actor('flaky', enable_modules=MODS)
        actor = tractorish.current_actor()
        assert actor.stats()['restarts'] == 0
        for expected in (1, 2):
            old = sup.process('flaky')
            os.kill(old.pid, signal.SIGKILL)
            with trio.fail_after(20):
                while actor.stats()['restarts'] < expected:
                    await trio.sleep(0.01)
            await sup.wait_ready()
        assert actor.stats()['restarts'] == 2
        portal = await sup.portal('flaky')
        assert (await portal.run(sf.local_stats))['restarts'] == 0  # the child's own


async def test_counts_of_closed_channels_stay_in_the_totals():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=MODS)
        root = tractorish.current_actor()
        before = root.stats()
        for i in range(3):
            await portal.run(sf.echo, x=i)
        await portal.cancel_actor()
    after = root.stats()  # the channel to the worker is gone
    assert all(c['peer'] is None or c['peer'][0] != 'worker' for c in after['channels'])
    assert after['messages_out'] - before['messages_out'] >= 4  # 3 calls and a cancel
    assert after['messages_in'] - before['messages_in'] >= 8


async def test_prometheus_export(reg_addr):
    pytest.importorskip('prometheus_client')
    port = free_port()
    config = tractorish.RuntimeConfig(metrics_port=port)
    async with tractorish.open_nursery(config=config, registry_addrs=[reg_addr]) as an:
        portal = await an.start_actor('worker', enable_modules=MODS)
        for i in range(4):
            await portal.run(sf.echo, x=i)
        body = await trio.to_thread.run_sync(
            lambda: urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10).read())
        text = body.decode()
        uid = tractorish.current_actor().uid[1]
        assert f'tractorish_calls_served_total{{actor="root",uid="{uid}"}}' in text
        assert 'tractorish_messages_sent_total' in text
        assert 'tractorish_resident_memory_bytes' in text
        sent = [line for line in text.splitlines()
                if line.startswith('tractorish_messages_sent_total')]
        assert float(sent[0].split()[-1]) >= 4  # the root sent 4 calls at least
        # the child does not inherit the port: it serves no metrics
        assert (await portal.run(sf.local_stats))['name'] == 'worker'
        await portal.cancel_actor()


def test_metrics_port_is_checked():
    for bad in (0, 70000, '9000', True):
        with pytest.raises(ValueError, match='metrics_port'):
            tractorish.RuntimeConfig(metrics_port=bad)
    assert tractorish.RuntimeConfig(metrics_port=9464).replace().metrics_port == 9464
