"""Streams and contexts across real actors."""
from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio

import actor_funcs
import stream_funcs as sf
import tractorish
from tractorish import ContextCancelled, RemoteActorError

MODULES = ['stream_funcs', 'actor_funcs']


async def start(an, name='streamer'):
    return await an.start_actor(name, enable_modules=MODULES)


# --- one-way streams ------------------------------------------------------------

async def test_one_way_stream_delivers_everything_in_order():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_stream_from(sf.count, n=2000) as stream:
            assert [x async for x in stream] == list(range(2000))
            with pytest.raises(trio.EndOfChannel):
                await stream.receive()
        async with portal.open_stream_from(sf.count, n=0) as stream:
            assert [x async for x in stream] == []
        await portal.cancel_actor()


async def test_remote_error_reaches_the_consumer_after_the_values():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        got = []
        with pytest.raises(RemoteActorError) as info:
            async with portal.open_stream_from(sf.count_then_fail, n=5) as stream:
                async for x in stream:
                    got.append(x)
        assert got == [0, 1, 2, 3, 4]
        assert info.value.boxed_type is ValueError
        assert await portal.run(actor_funcs.add, a=1, b=1) == 2
        await portal.cancel_actor()


@pytest.mark.parametrize('how', ['break', 'error', 'cancel'])
async def test_leaving_early_cancels_the_generator_and_runs_its_finally(tmp_path, how):
    marker = tmp_path / 'marker'
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with trio.move_on_after(5 if how != 'cancel' else 0.3):
            try:
                async with portal.open_stream_from(sf.endless_with_cleanup,
                                                   marker=str(marker)) as stream:
                    async for x in stream:
                        if x == 50 and how == 'break':
                            break
                        if x == 50 and how == 'error':
                            raise KeyError('consumer failed')
            except KeyError:
                assert how == 'error'
        # the remote generator's finally ran before we got here
        assert marker.read_text().startswith('cleaned up after')
        assert await portal.run(sf.events) == [marker.read_text()]
        assert await portal.run(actor_funcs.add, a=2, b=2) == 4
        await portal.cancel_actor()


async def test_streaming_from_a_non_generator_is_a_clear_error():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with pytest.raises(TypeError, match='not an async generator'):
            async with portal.open_stream_from(sf.not_a_generator):
                pass

        async def not_a_generator():  # looks like a generator only here
            yield 1
        not_a_generator.__module__ = 'stream_funcs'
        not_a_generator.__qualname__ = 'not_a_generator'
        with trio.fail_after(5), pytest.raises(TypeError, match='remote asyncfunc'):
            async with portal.open_stream_from(not_a_generator):
                pass
        assert await portal.run(actor_funcs.add, a=1, b=2) == 3
        await portal.cancel_actor()


async def test_large_payloads_stream_whole():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_stream_from(sf.payloads, n=200, size=64 * 1024) as stream:
            items = [x async for x in stream]
        assert [i for i, _ in items] == list(range(200))
        assert all(blob == b'x' * 64 * 1024 for _, blob in items)
        await portal.cancel_actor()


# --- two-way generators ------------------------------------------------------------

async def test_two_way_generator_with_asend():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_stream_from(sf.accumulator, start=10) as stream:
            assert await stream.asend(None) == 10
            assert await stream.asend(5) == 15
            assert await stream.asend(7) == 22
            assert await stream.receive() == 22  # receive() is asend(None)
            assert await stream.asend(-22) == 0
        async with portal.open_stream_from(sf.accumulator) as stream:
            with pytest.raises(TypeError, match='just-started'):
                await stream.asend(1)  # as in Python: the first value must be None
        async with portal.open_stream_from(sf.accumulator, start=1) as stream:
            # anext() then asend(), as a Python user drives a generator
            assert await stream.receive() == 1
            assert await stream.asend(2) == 3
            assert [await stream.receive() for _ in range(3)] == [3, 3, 3]
            assert await stream.asend(4) == 7
        async with portal.open_stream_from(sf.count, n=2) as stream:
            assert [await stream.asend(None), await stream.asend(None)] == [0, 1]
            with pytest.raises(StopAsyncIteration):
                await stream.asend(None)
        await portal.cancel_actor()


async def test_asend_follows_any_few_receives_exactly():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        for receives in range(1, sf_lockstep() + 1):
            async with portal.open_stream_from(sf.echo_sent) as stream:
                got = [await stream.receive() for _ in range(receives)]
                assert got == [[i, None] for i in range(receives)]
                # the generator made no value ahead: 'x' answers the last yield
                assert await stream.asend('x') == [receives, 'x']
                assert await stream.receive() == [receives + 1, None]
        await portal.cancel_actor()


async def test_a_generator_read_in_bulk_flows_and_refuses_asend_once_ahead():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_stream_from(sf.count, n=5000) as stream:
            assert [x async for x in stream] == list(range(5000))
        async with portal.open_stream_from(sf.echo_sent) as stream:
            for i in range(20):
                assert await stream.receive() == [i, None]
            with pytest.raises(RuntimeError, match='run ahead'):
                await stream.asend('late')
            # nothing was sent: the stream goes on as before
            assert await stream.receive() == [20, None]
        await portal.cancel_actor()


def sf_lockstep() -> int:
    from tractorish.runtime._stream import LOCKSTEP_RECEIVES
    return LOCKSTEP_RECEIVES


# --- contexts --------------------------------------------------------------------------

async def test_context_echo_and_result():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_context(sf.echo_ctx, greeting='hi') as (ctx, first):
            assert first == 'hi'
            assert ctx.side == 'caller'
            async with ctx.open_stream() as stream:
                for i in range(100):
                    await stream.send({'n': i})
                    assert await stream.receive() == {'n': i}
                await stream.send('last')
                with trio.fail_after(5):
                    while True:
                        try:
                            assert stream.receive_nowait() == 'last'
                            break
                        except trio.WouldBlock:
                            await trio.sleep(0.01)
            # closing our side ends the callee's loop; it returns its count
            assert await ctx.result() == 101
            assert await ctx.wait_for_result() == 101
        await portal.cancel_actor()


async def test_context_without_stream_returns_its_value():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_context(sf.just_return, value=[1, 2]) as (ctx, first):
            assert first == 'ok'
        assert await ctx.result() == [1, 2]
        await portal.cancel_actor()


async def test_callee_closing_its_stream_ends_the_callers_iteration():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_context(sf.send_n_then_close, n=1000) as (ctx, _):
            async with ctx.open_stream() as stream:
                assert [x async for x in stream] == list(range(1000))
                with pytest.raises(trio.BrokenResourceError):
                    await stream.send('too late')
            assert await ctx.result() == 'closed'
        await portal.cancel_actor()


async def test_started_misuse_is_an_error():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with pytest.raises(RemoteActorError) as info:
            async with portal.open_context(sf.started_twice) as (ctx, first):
                assert first == 1
        assert info.value.boxed_type is RuntimeError
        assert 'already called' in info.value.message
        with pytest.raises(RemoteActorError) as info:
            async with portal.open_context(sf.never_started):
                pass
        assert 'without calling ctx.started()' in info.value.message
        with pytest.raises(TypeError, match='@tractorish.context'):
            async with portal.open_context(sf.count):
                pass
        await portal.cancel_actor()


async def test_callee_error_mid_stream_reaches_the_caller():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        got = []
        with pytest.raises(RemoteActorError) as info:
            async with portal.open_context(sf.fail_in_ctx, after=3) as (ctx, _):
                async with ctx.open_stream() as stream:
                    async for x in stream:
                        got.append(x)
        # the remote error cancels the block, like a failing child task:
        # values still in flight when it lands may not be read
        assert got == [0, 1, 2][:len(got)]
        assert info.value.boxed_type is KeyError
        await portal.cancel_actor()


async def test_caller_error_reaches_the_callee(tmp_path):
    marker = tmp_path / 'callee-saw'
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with pytest.raises(ZeroDivisionError):
            async with portal.open_context(sf.receive_until_error,
                                           marker=str(marker)) as (ctx, _):
                async with ctx.open_stream() as stream:
                    await stream.send(1)
                    1 / 0
        with trio.fail_after(5):
            while not marker.exists():
                await trio.sleep(0.01)
        assert marker.read_text().startswith('ZeroDivisionError')
        await portal.cancel_actor()


async def test_ctx_cancel_by_the_caller_is_not_raised(tmp_path):
    marker = tmp_path / 'cancelled'
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        async with portal.open_context(sf.sleep_in_ctx, marker=str(marker)) as (ctx, pid):
            await ctx.cancel()
            assert ctx.cancel_called
        assert await ctx.result() is None
        assert marker.read_text() == 'cancelled'
        assert await portal.run(actor_funcs.getpid) == pid
        await portal.cancel_actor()


async def test_a_callee_error_that_came_before_a_cancel_from_outside_is_raised():
    """The callee failed while the caller could not listen; then the
    caller's scope times out: the error is news, raised, not dropped."""
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with pytest.raises(RemoteActorError, match='callee failed on its own'):
            with trio.move_on_after(0.3):
                async with portal.open_context(sf.fail_soon, after=0.1):
                    with trio.CancelScope(shield=True):
                        await trio.sleep(0.6)
                    await trio.sleep(5)
        await portal.cancel_actor()


@pytest.mark.parametrize('how', ['timeout', 'handled error'])
async def test_a_stream_left_by_a_handled_error_still_ends_the_callees(how):
    """Leaving the stream's block by an error (or timeout) that the
    context's block then handles tells the callee its stream is done, so it
    returns instead of waiting on it forever."""
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with trio.fail_after(10):
            async with portal.open_context(sf.echo_ctx, greeting='hi') as (ctx, _):
                try:
                    with trio.move_on_after(0.2):
                        async with ctx.open_stream() as stream:
                            await stream.send('x')
                            assert await stream.receive() == 'x'
                            if how == 'handled error':
                                raise ValueError('handled here')
                            await stream.receive()  # nothing more comes
                except ValueError:
                    pass
                assert await ctx.result() == 1
        await portal.cancel_actor()


async def test_result_while_the_stream_is_open_drops_the_values_left():
    """More values than a window, unread when result() is asked for: they
    are dropped, credit flows back, and the callee's return comes."""
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with trio.fail_after(20):
            async with portal.open_context(sf.send_n_then_close, n=5000) as (ctx, _):
                async with ctx.open_stream() as stream:
                    assert await stream.receive() == 0
                    assert await ctx.result() == 'closed'
        await portal.cancel_actor()


async def test_a_read_after_the_callers_own_cancel_does_not_escape_the_context():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with trio.fail_after(10):
            async with portal.open_context(sf.count_forever) as (ctx, _):
                async with ctx.open_stream() as stream:
                    async for value in stream:
                        if value == 3:
                            await ctx.cancel()
        assert ctx.cancel_called and await ctx.result() is None
        with pytest.raises(trio.ClosedResourceError):
            stream.receive_nowait()  # closed: as receive() says
        await portal.cancel_actor()


def test_context_decorates_only_coroutine_functions():
    with pytest.raises(TypeError, match='an async def function'):
        @tractorish.context
        def plain(ctx):
            return 1
    with pytest.raises(TypeError, match='an async def function'):
        @tractorish.context
        async def generator(ctx):
            yield 1


async def test_cancel_by_someone_else_is_context_cancelled_naming_them():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with pytest.raises(ContextCancelled) as info:
            async with portal.open_context(sf.cancel_myself):
                await trio.sleep_forever()
        assert info.value.canceller == portal.peer_uid
        await portal.cancel_actor()


async def test_actor_cancel_while_a_context_runs_names_the_canceller():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        with pytest.raises(ContextCancelled) as info:
            async with portal.open_context(sf.sleep_in_ctx):
                # another portal (same actor, new channel) cancels the actor
                other = tractorish.Portal(
                    tractorish.current_actor(),
                    await tractorish.current_actor().open_channel_to(
                        tuple(portal.channel.peer_info['addrs'][0])))
                await other.cancel_actor()
                await trio.sleep_forever()
        assert info.value.canceller == tractorish.current_actor().uid


# --- many at once -------------------------------------------------------------------------

async def test_dozens_of_calls_streams_and_contexts_on_one_portal_are_isolated():
    outcomes = {}
    async with tractorish.open_nursery() as an:
        portal = await start(an)

        async def stream_job(i):
            async with portal.open_stream_from(sf.count, n=300 + i) as stream:
                outcomes[('stream', i)] = sum([x async for x in stream])

        async def failing_stream_job(i):
            with pytest.raises(RemoteActorError):
                async with portal.open_stream_from(sf.count_then_fail, n=i) as stream:
                    async for _ in stream:
                        pass
            outcomes[('failed', i)] = True

        async def cancelled_stream_job(i):
            with trio.move_on_after(0.05 + i / 1000):
                async with portal.open_stream_from(sf.endless_with_cleanup,
                                                   marker='/dev/null') as stream:
                    async for _ in stream:
                        await trio.sleep(0.001)
            outcomes[('cancelled', i)] = True

        async def context_job(i):
            async with portal.open_context(sf.echo_ctx, greeting=i) as (ctx, first):
                async with ctx.open_stream() as stream:
                    for j in range(20):
                        await stream.send(j)
                        assert await stream.receive() == j
            outcomes[('ctx', i)] = (first, await ctx.result())

        async def call_job(i):
            outcomes[('call', i)] = await portal.run(actor_funcs.add, a=i, b=i)

        async with trio.open_nursery() as nursery:
            for i in range(12):
                for job in (stream_job, failing_stream_job, cancelled_stream_job,
                            context_job, call_job):
                    nursery.start_soon(job, i)
        await portal.cancel_actor()
    for i in range(12):
        assert outcomes[('stream', i)] == sum(range(300 + i))
        assert outcomes[('failed', i)] and outcomes[('cancelled', i)]
        assert outcomes[('ctx', i)] == (i, 20)
        assert outcomes[('call', i)] == 2 * i


# --- local fan-out ----------------------------------------------------------------------

async def test_subscribers_each_get_every_value():
    async with tractorish.open_nursery() as an:
        portal = await start(an)
        results = {}
        async with portal.open_stream_from(sf.count, n=500) as stream:
            async def reader(name, slow):
                async with stream.subscribe(max_buffer=8) as receiver:
                    got = []
                    async for x in receiver:
                        got.append(x)
                        if slow:
                            await trio.sleep(0)
                    results[name] = got

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader, 'fast', False)
                nursery.start_soon(reader, 'slow', True)
                nursery.start_soon(reader, 'third', False)
        assert results == {name: list(range(500)) for name in ('fast', 'slow', 'third')}
        await portal.cancel_actor()


@asynccontextmanager
async def alone_on_its_channel():
    """A portal to an actor whose channel carries nothing but our calls
    (no discovery): the only call in flight reads for itself."""
    config = tractorish.RuntimeConfig(discovery='off')
    async with tractorish.open_root_actor(config=config):
        async with tractorish.open_nursery() as an:
            portal = await start(an)
            yield portal
            await portal.cancel_actor()


async def test_context_echo_with_nothing_else_on_the_channel():
    # With discovery off, the context is the only call on its channel, so
    # each side reads its stream's messages itself; flow-control credit
    # arriving meanwhile must not leave the channel unread.
    async with alone_on_its_channel() as portal:
        for _ in range(3):
            with trio.fail_after(20):
                async with portal.open_context(sf.echo_ctx, greeting='hi') as (ctx, _):
                    async with ctx.open_stream() as stream:
                        for i in range(300):  # past a credit grant
                            await stream.send(i)
                            assert await stream.receive() == i
                    assert await ctx.result() == 300
            assert await portal.run(sf.not_a_generator) == 1


async def test_a_remote_error_taken_by_the_stream_still_ends_the_context():
    # The callee fails mid-stream: the stream's read raises the error, and
    # if the block was cancelled meanwhile (the error landed while no read
    # was waiting), leaving it must still end with that error, not wait
    # for a message the stream already took. Nothing else on the channel,
    # so the stream's task reads for itself.
    async with alone_on_its_channel() as portal:
        for _ in range(3):
            handled = []
            with trio.fail_after(20):
                with pytest.raises(RemoteActorError) as info:
                    async with portal.open_context(sf.fail_in_ctx, after=3) as (ctx, _):
                        async with ctx.open_stream() as stream:
                            try:
                                async for _value in stream:
                                    # busy elsewhere while the error lands
                                    with trio.CancelScope(shield=True):
                                        await trio.sleep(0.02)
                            except RemoteActorError:
                                handled.append(True)
                                await trio.sleep(0)  # cancelled: fine
                                raise
            assert handled == [True] and info.value.boxed_type is KeyError
