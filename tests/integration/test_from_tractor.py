"""tractor programs run unchanged: each test is a program written as
tractor's README and docs write one (``import tractorish as tractor``),
asserting what tractor documents."""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import trio

import tractor_style as ts
import tractorish as tractor

HERE = Path(__file__).resolve().parent


def run_script(tmp_path: Path, source: str, timeout: float = 60,
               **popen: object) -> subprocess.CompletedProcess:
    script = tmp_path / 'program.py'
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(HERE), str(HERE.parent.parent), os.environ.get('PYTHONPATH', '')])}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, env=env, **popen)


# --- run_in_actor gathers ---------------------------------------------------------

async def test_25_failing_children_give_one_group_of_exactly_25():
    with pytest.raises(tractor.BaseExceptionGroup) as info:
        async with tractor.open_nursery() as an:
            async with trio.open_nursery() as starter:
                for i in range(25):
                    starter.start_soon(
                        lambda i=i: an.run_in_actor(ts.fail, name=f'child-{i}', n=i))
    errors = info.value.exceptions
    assert len(errors) == 25
    assert all(isinstance(e, tractor.RemoteActorError) for e in errors)
    assert all(e.boxed_type is ValueError for e in errors)
    assert sorted(e.src_uid[0] for e in errors) == sorted(f'child-{i}' for i in range(25))
    assert len({e.src_uid for e in errors}) == 25


async def test_a_failing_child_does_not_cancel_its_run_in_actor_siblings():
    with pytest.raises(tractor.RemoteActorError) as info:
        async with tractor.open_nursery() as an:
            daemon = await an.start_actor('daemon', enable_modules=['tractor_style'])
            await an.run_in_actor(ts.fail, n=1)
            slow = await an.run_in_actor(ts.sleep_then_return, seconds=0.5, value='slow')
            assert await slow.result() == 'slow'  # after the failure, it still finished
            assert await daemon.run(ts.add, a=1, b=2) == 3  # and the daemon serves on
    assert info.value.boxed_type is ValueError
    assert an.cancel_called  # the failure, once all had finished, cancelled the daemon


async def test_portal_result_raises_the_remote_error_itself_reported_once():
    with pytest.raises(tractor.RemoteActorError) as outer:
        async with tractor.open_nursery() as an:
            portal = await an.run_in_actor(ts.fail, n=7)
            with pytest.raises(tractor.RemoteActorError) as inner:
                await portal.result()
            assert inner.value.boxed_type is ValueError
            raise inner.value  # re-raised from the block: still one error
    assert not isinstance(outer.value, tractor.BaseExceptionGroup)
    assert 'child 7 failed' in str(outer.value)


async def test_cancel_ends_every_child_at_once_and_a_cancelled_child_has_no_result():
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(ts.sleep_forever)
        await trio.sleep(0.2)
        await an.cancel()
        assert an.cancel_called and an.cancelled
        with pytest.raises(tractor.NoResult):
            await portal.result()


async def test_an_error_in_the_block_cancels_run_in_actor_children_at_once():
    with trio.fail_after(30), pytest.raises(KeyError):
        async with tractor.open_nursery() as an:
            await an.run_in_actor(ts.sleep_forever)
            raise KeyError('the block failed')


def test_a_grandchilds_error_is_printed_once(tmp_path):
    proc = run_script(tmp_path, '''
        import trio
        import tractorish as tractor
        import tractor_style as ts

        async def main():
            async with tractor.open_nursery() as an:
                portal = await an.run_in_actor(ts.grandchild_fails)
                await portal.result()

        if __name__ == '__main__':
            trio.run(main)
    ''')
    assert proc.returncode == 1
    assert proc.stderr.count('ValueError: child 99 failed') == 1, proc.stderr
    assert "relayed by 'grandchild_fails'" in proc.stderr
    assert len(proc.stderr.splitlines()) < 60, proc.stderr


# --- identity and runtime state ---------------------------------------------------------

async def test_aids_uids_runtime_vars_and_the_current_ipc_context():
    async with tractor.open_nursery(enable_transports=['tcp']) as an:
        root = tractor.current_actor()
        assert root.aid.uid == root.uid and root.aid.pid == os.getpid()
        assert root.is_registrar and root.is_arbiter  # the first root becomes it
        assert tractor.get_runtime_vars()['_is_root'] is True
        assert tractor.current_ipc_ctx() is None
        portal = await an.start_actor('named', enable_modules=['tractor_style'])
        chan = portal.channel
        assert portal.chan is chan and chan.connected()
        assert chan.aid.name == 'named' and chan.aid.uid == chan.uid
        info = await portal.run(ts.whoami)
        assert info['aid'] == [chan.aid.name, chan.aid.uuid, chan.aid.pid]
        assert info['uid'] == list(chan.aid.uid)
        assert info['caller'] == list(root.uid)
        assert info['side'] == 'callee'
        assert info['is_root'] is False and info['is_registrar'] is False
        assert tuple(info['root_mailbox']) == root.accept_addr
        assert info['transport'] == ['tcp']
        assert await portal.run(ts.sync_whoami) == list(root.uid)
        assert await portal.run(ts.inline_whoami) == list(root.uid)
        async with portal.open_context(ts.echo_ctx, greeting='hi') as (ctx, first):
            assert first == 'hi' and tractor.current_ipc_ctx() is ctx
            assert ctx.side == 'caller' and ctx.portal is portal
        assert tractor.current_ipc_ctx() is None
        await portal.cancel_actor()


# --- keywords -------------------------------------------------------------------------------

async def test_tractors_root_keywords(reg_addr):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        async with tractor.open_nursery(arbiter_addr=reg_addr, loglevel='cancel',
                                        debug_mode=False, hide_tb=False,
                                        start_method='mp_forkserver',
                                        rpc_module_paths=['tractor_style']) as an:
            actor = tractor.current_actor()
            assert actor.reg_addrs == [reg_addr] and actor.is_registrar
            assert actor.config.start_method == 'forkserver'
            assert 'tractor_style' in actor.enable_modules
            portal = await an.run_in_actor(ts.add, a=2, b=3)
            assert await portal.result() == 5


async def test_uds_transport_and_bind_addrs(tmp_path):
    sock = str(tmp_path / 'child.sock')
    async with tractor.open_nursery(enable_transports=['uds'],
                                    start_method='mp_spawn') as an:
        assert tractor.current_actor().config.start_method == 'trio'
        portal = await an.start_actor('uds-child', enable_modules=['tractor_style'])
        assert (await portal.run(ts.whoami))['transport'] == ['uds']
        bound = await an.start_actor('bound', enable_modules=['tractor_style'],
                                     bind_addrs=[(str(tmp_path), 'child.sock')])
        assert (await bound.run(ts.whoami))['accept_addr'] == sock
        tcp = await an.start_actor('tcp-child', enable_modules=['tractor_style'],
                                   enable_transports=['tcp'])
        assert (await tcp.run(ts.whoami))['transport'] == ['tcp']
        await an.cancel()


async def test_what_is_not_here_fails_at_the_call_saying_what_instead():
    async with tractor.open_nursery() as an:
        with pytest.raises(TypeError, match='proc_kwargs'):
            await an.start_actor('p', proc_kwargs={'env': {}})
        with pytest.raises(ValueError, match='enable_transports'):
            await an.start_actor('t', enable_transports=['quic'])
        # a name the child could not take is refused here, before a process starts
        with pytest.raises(ValueError, match='an actor name must be a non-empty string'):
            await an.start_actor(5)
        with pytest.raises(ValueError, match='an actor name must be a non-empty string'):
            await an.run_in_actor(ts.whoami, name=7)
        # the tree debugger is the tree's: without debug_mode, it says how
        with pytest.raises(RuntimeError, match='debug_mode=True'):
            await tractor.pause()
        with pytest.raises(RuntimeError, match='debug_mode=True'):
            await tractor.breakpoint()
        with pytest.raises(RuntimeError, match='infect_asyncio=True'):
            await tractor.to_asyncio.run_task(ts.add)  # no asyncio in this actor
        assert an.children == []


async def test_tractors_errors_for_the_same_situations():
    with pytest.raises(tractor.ActorFailure) as crash:
        async with tractor.open_nursery() as an:
            with pytest.raises(tractor.RuntimeFailure):
                async with tractor.open_root_actor():
                    pass
            portal = await an.start_actor('errs', enable_modules=['tractor_style'])
            with pytest.raises(tractor.RemoteActorError) as info:
                await portal.run(ts.add, a=1, c=2)  # a bad keyword
            assert info.value.boxed_type is TypeError
            with pytest.raises(tractor.RemoteActorError) as info:
                await portal.run_from_ns('os', 'getcwd')  # a module not exposed
            assert info.value.boxed_type is tractor.ModuleNotExposed
            with pytest.raises(tractor.TransportClosed):  # it dies before it answers
                async with tractor.trionics.collapse_eg(), trio.open_nursery() as nursery:
                    nursery.start_soon(portal.run, ts.sleep_forever)
                    await trio.sleep(0.2)
                    os.kill(portal.channel.aid.pid, signal.SIGKILL)
    # and the nursery reports the daemon's death, once
    assert isinstance(crash.value, tractor.ActorCrashed)
    assert crash.value.returncode == -signal.SIGKILL


# --- helpers ----------------------------------------------------------------------------------

async def test_trionics_helpers_over_actors():
    from tractorish import trionics
    async with tractor.open_nursery() as an:
        portals = [await an.start_actor(f'ctx-{i}', enable_modules=['tractor_style'])
                   for i in range(3)]
        async with trionics.gather_contexts(
                [p.open_context(ts.counter_ctx, start=i) for i, p in enumerate(portals)]
        ) as pairs:
            assert [first for _, first in pairs] == [0, 1, 2]
            for ctx, _ in pairs:
                await ctx.cancel()
        async with trionics.maybe_open_context(
                portals[0].open_stream_from, kwargs={'async_gen_func': ts.ticks, 'n': 3},
        ) as (hit, stream):
            assert hit is False
            async with trionics.maybe_open_context(
                    portals[0].open_stream_from,
                    kwargs={'async_gen_func': ts.ticks, 'n': 3}) as (again, same):
                assert again is True and same is stream
            assert [x async for x in stream] == [0, 1, 2]
        with pytest.raises(ValueError):
            async with trionics.collapse_eg(), trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(portals[1].run, ts.add, a=1, b=2))
                raise ValueError('one error, not a group of one')
        async with portals[2].open_stream_from(ts.ticks, n=50) as stream:
            receiver = trionics.broadcast_receiver(stream, max_buffer_size=64)
            async with receiver.subscribe() as second:
                first_values = [await receiver.receive() for _ in range(50)]
                second_values = [await second.receive() for _ in range(50)]
            assert first_values == second_values == list(range(50))
        await an.cancel()


async def test_open_actor_cluster():
    async with tractor.open_actor_cluster(modules=['tractor_style'], count=3) as portals:
        assert sorted(portals) == ['root.worker_0', 'root.worker_1', 'root.worker_2']
        assert [await p.run(ts.add, a=i, b=1) for i, p in enumerate(portals.values())] \
            == [1, 2, 3]


def test_run_daemon_serves_until_cancelled(tmp_path, reg_addr):
    proc = subprocess.Popen(
        [sys.executable, '-c',
         'import tractorish as tractor; '
         f'tractor.run_daemon(["tractor_style"], name="daemon", registry_addrs=[{reg_addr!r}])'],
        env={**os.environ, 'PYTHONPATH': f'{HERE}{os.pathsep}{HERE.parent.parent}'},
        stderr=subprocess.PIPE, text=True)
    try:
        async def use() -> None:
            async with tractor.open_root_actor(name='client', registry_addrs=[reg_addr]):
                with trio.fail_after(30):
                    async with tractor.wait_for_actor('daemon') as portal:
                        assert await portal.run(ts.add, a=20, b=22) == 42
                        assert await portal.cancel_actor()
        trio.run(use)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_logging_as_tractor_offers_it(capfd):
    log = tractor.log.get_console_log('runtime', name='myapp')
    try:
        assert log.logger.name == 'tractorish.myapp'
        log.runtime('runtime-level record')
        log.cancel('cancel-level record')
        log.transport('transport-level record, below the level')
        err = capfd.readouterr().err
        assert 'runtime-level record' in err and 'cancel-level record' in err
        assert 'transport-level' not in err
        assert tractor.log.get_logger().logger.name == 'tractorish.test_from_tractor'
    finally:
        from tractorish._log import configure_logging
        configure_logging(None, 'root')


async def test_legacy_stream_functions_and_two_way_generators():
    async with tractor.open_nursery() as an:
        portal = await an.start_actor('streamer', enable_modules=['tractor_style'])
        async with portal.open_stream_from(ts.legacy_stream, n=5) as stream:
            assert [x async for x in stream] == list(range(5))
        with pytest.raises(TypeError, match='open_stream_from'):
            await portal.run(ts.legacy_stream, n=1)
        async with portal.open_stream_from(ts.running_total, start=10) as stream:
            assert await stream.receive() == 10  # anext() first ...
            assert await stream.asend(5) == 15   # ... then asend(), as in Python
        await portal.cancel_actor()


def test_stack_dumps_on_sigusr1_reach_every_actor(tmp_path):
    proc = run_script(tmp_path, '''
        import os, signal, sys
        import trio
        import tractorish as tractor
        import tractor_style as ts

        async def main():
            async with tractor.open_nursery(enable_stack_on_sig=True) as an:
                portal = await an.start_actor('sleeper', enable_modules=['tractor_style'])
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(portal.run, ts.sleep_forever)
                    await trio.sleep(0.5)
                    os.kill(os.getpid(), signal.SIGUSR1)
                    await trio.sleep(1.0)
                    nursery.cancel_scope.cancel()
                await an.cancel()

        if __name__ == '__main__':
            trio.run(main)
    ''')
    assert proc.returncode == 0, proc.stderr
    assert "--- tasks of actor 'root'" in proc.stderr
    assert "--- tasks of actor 'sleeper'" in proc.stderr
    assert 'sleep_forever' in proc.stderr


def test_tractors_msg_names_exist_or_say_why_not():
    from tractorish import msg
    path = msg.NamespacePath.from_ref(ts.add)
    assert path == 'tractor_style:add' and path.load_ref() is ts.add
    assert path.to_tuple() == ('tractor_style', 'add')
    assert msg.Aid('a', 'b', 3).uid == ('a', 'b')
    with pytest.raises(NotImplementedError, match='plain msgpack'):
        msg.mk_codec  # noqa: B018 - the access is the test
    with pytest.raises(AttributeError):
        msg.no_such_name  # noqa: B018


async def test_a_context_stream_knows_its_context():
    async with tractor.open_nursery() as an:
        portal = await an.start_actor('echo', enable_modules=['tractor_style'])
        async with portal.open_context(ts.echo_ctx, greeting='hi') as (ctx, _):
            async with ctx.open_stream() as stream:
                assert stream.ctx is ctx and stream.chan is portal.channel
                await stream.send('ping')
                assert await stream.receive() == 'ping'
            assert await ctx.result() == 'done'
        assert ctx.has_outcome and ctx.outcome == 'done' and ctx.maybe_error is None
        await portal.cancel_actor()


async def test_smaller_tractor_names():
    async with tractor.open_nursery() as an:
        portal = await an.start_actor('small', enable_modules=['tractor_style'])
        with pytest.raises(TypeError, match='by keyword'):
            await portal.run(ts.add, 1)  # not the old form: a mistake, said so
        with pytest.warns(DeprecationWarning, match='run_from_ns'):
            assert await portal.run('tractor_style', 'add', a=1, b=1) == 2  # the old form
        async with portal.open_context(ts.counter_ctx, start=3) as (ctx, first):
            assert first == 3
            await ctx.cancel(timeout=5)
        assert ctx.cancel_acked and ctx.cancelled_caught
        ctx.maybe_raise()  # our own cancel: nothing to raise
        with pytest.raises(RuntimeError, match='root'):
            tractor.current_actor().get_parent()
        with pytest.raises(tractor.RemoteActorError) as info:
            await portal.run(ts.add, a=1)
        assert info.value.boxed_type_str == 'TypeError' and info.value.relay_uid is None
        assert isinstance(info.value.unwrap(), TypeError)
        assert tractor.is_root_process()
        await an.cancel()
        assert an.cancelled_caught
    assert an.exited.is_set()
    assert not tractor.is_root_process()  # no runtime now, as in tractor

    @tractor.context()
    async def called_decorator(ctx):
        pass
    assert getattr(called_decorator, '_tractorish_context')
    with pytest.raises(NotImplementedError):
        tractor.context(pld_spec=int)


async def test_start_or_cancel_reraises_the_outer_cancel():
    from tractorish import trionics

    async def never_starts(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            return  # swallowed: nursery.start() alone would raise RuntimeError

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.1) as scope:
            await trionics.start_or_cancel(nursery, never_starts)
        assert scope.cancelled_caught
