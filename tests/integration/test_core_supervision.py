"""Trees of actors: errors, one-cancels-all, reaping, nesting, crashes."""
from __future__ import annotations

import os
import signal

import psutil
import pytest
import trio

import actor_funcs
import tractorish
from tractorish import ActorCrashed, RemoteActorError
from tractorish._compat import BaseExceptionGroup


def assert_all_dead(pids):
    alive = [p for p in pids if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f'still alive: {alive}'


async def test_run_in_actor_result():
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(actor_funcs.add, a=2, b=3)
        assert await portal.result() == 5
        assert await portal.wait_for_result() == 5


async def test_an_actor_exits_as_an_interpreter_would(tmp_path):
    # threads are joined and atexit handlers run, on either backend; the
    # pool's idle worker is told to stop first, so it holds up nobody
    notes = tmp_path / 'notes'
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('leaver', enable_modules=['actor_funcs'])
        await portal.run(actor_funcs.leave_work_for_exit, path=str(notes))
        with trio.fail_after(10):
            await portal.cancel_actor()
        [child] = an.children
        with trio.fail_after(10):
            assert await child.wait() == 0
    assert notes.read_text().split() == ['pool', 'thread', 'atexit']


def test_an_actor_exits_with_the_status_sys_exit_gives(capsys):
    from tractorish._child import _exit_status
    assert _exit_status(None) == 0
    assert _exit_status(3) == 3
    assert _exit_status('bye') == 1
    assert capsys.readouterr().err == 'bye\n'


async def test_result_of_a_daemon_actor_is_an_error():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('daemon', enable_modules=['actor_funcs'])
        with pytest.raises(tractorish.NoResult):
            await portal.result()
        await portal.cancel_actor()


async def test_one_failing_child_is_raised_as_itself():
    with pytest.raises(RemoteActorError) as info:
        async with tractorish.open_nursery() as an:
            await an.run_in_actor(actor_funcs.raise_value_error, text='lone')
    assert info.value.boxed_type is ValueError


async def test_two_failing_children_give_a_group_of_two():
    # run_in_actor children gather: neither failure cancels the other, and
    # the daemon bystander is cancelled once both have finished
    with pytest.raises(BaseExceptionGroup) as info:
        async with tractorish.open_nursery() as an:
            await an.run_in_actor(actor_funcs.raise_value_error, name='one', text='1')
            await an.start_actor('bystander', enable_modules=['actor_funcs'])
            await an.run_in_actor(actor_funcs.raise_runtime_error_later, name='two',
                                  text='2', seconds=0.3)
    errors = info.value.exceptions
    assert len(errors) == 2
    assert all(isinstance(e, RemoteActorError) for e in errors)
    assert {e.boxed_type for e in errors} == {ValueError, RuntimeError}
    assert {e.src_uid[0] for e in errors} == {'one', 'two'}


async def test_an_error_in_cleanup_while_cancelled_is_reported_too():
    # the block's error cancels 'two', which fails in its cleanup: that
    # second error must be reported too, not swallowed by the cancellation
    with pytest.raises(BaseExceptionGroup) as info:
        async with tractorish.open_nursery() as an:
            await an.run_in_actor(actor_funcs.fail_when_cancelled, name='two')
            await trio.sleep(0.2)
            raise KeyError('the block failed')
    errors = info.value.exceptions
    assert len(errors) == 2
    assert {type(e) for e in errors} == {KeyError, RemoteActorError}
    [remote] = [e for e in errors if isinstance(e, RemoteActorError)]
    assert remote.boxed_type is RuntimeError and remote.src_uid[0] == 'two'


async def test_three_deep_tree_returns_the_grandchilds_result():
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(
            actor_funcs.spawn_grandchild_result, name='middle', a=20, b=22)
        middle_name, grandchild = await portal.result()
    assert middle_name == 'middle'
    assert grandchild['sum'] == 42
    assert grandchild['name'] == 'grandchild_add'
    assert grandchild['ppid'] != os.getpid()


async def test_twenty_actors_with_one_failing_are_all_reaped():
    pids = []
    with pytest.raises(RemoteActorError) as info:
        async with tractorish.open_nursery() as an:
            portals = []

            async def start(i: int) -> None:
                portals.append(await an.start_actor(
                    f'worker-{i}', enable_modules=['actor_funcs']))

            async with trio.open_nursery() as starter:
                for i in range(19):
                    starter.start_soon(start, i)
            for portal in portals:
                pids.append(await portal.run(actor_funcs.getpid))
            failing = await an.run_in_actor(actor_funcs.raise_value_error, text='the one')
        # the block ends; the failure, once in, cancels the 19 daemons
    assert info.value.boxed_type is ValueError
    assert len(pids) == 19
    assert_all_dead(pids + [failing.channel.peer_info['pid']])


async def test_error_in_the_block_cancels_every_child():
    with pytest.raises(KeyError):
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor('victim', enable_modules=['actor_funcs'])
            pid = await portal.run(actor_funcs.getpid)
            raise KeyError('body failed')
    assert_all_dead([pid])


async def test_nursery_cancel_and_hard_kill():
    async with tractorish.open_nursery() as an:
        gentle = await an.start_actor('gentle', enable_modules=['actor_funcs'])
        pid = await gentle.run(actor_funcs.getpid)
        await an.cancel()
        assert_all_dead([pid])
        assert an.cancelled
        with pytest.raises(RuntimeError):
            await an.start_actor('late')
    async with tractorish.open_nursery() as an:
        rough = await an.start_actor('rough', enable_modules=['actor_funcs'])
        pid = await rough.run(actor_funcs.getpid)
        await an.cancel(hard_kill=True)
        assert_all_dead([pid])


async def test_cancelling_the_scope_around_a_nursery_reaps_the_children():
    with trio.move_on_after(1.0):
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor('stuck', enable_modules=['actor_funcs'])
            pid = await portal.run(actor_funcs.getpid)
            await portal.run(actor_funcs.sleep, seconds=60)
    assert_all_dead([pid])


async def test_a_child_killed_by_a_signal_is_an_actor_crash():
    with pytest.raises(ActorCrashed) as info:
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor('doomed', enable_modules=['actor_funcs'])
            pid = await portal.run(actor_funcs.getpid)
            os.kill(pid, signal.SIGKILL)
            await trio.sleep_forever()
    assert info.value.name == 'doomed'
    assert info.value.returncode == -signal.SIGKILL
    assert 'SIGKILL' in str(info.value)


async def test_run_in_actor_that_exits_hard_is_an_actor_crash():
    with pytest.raises(ActorCrashed) as info:
        async with tractorish.open_nursery() as an:
            await an.run_in_actor(actor_funcs.exit_hard, code=7)
    assert info.value.returncode == 7


async def test_a_crash_report_quotes_the_end_of_stderr():
    with pytest.raises(ActorCrashed) as info:
        async with tractorish.open_nursery() as an:
            await an.run_in_actor(actor_funcs.say_then_die, text='last words here', code=5)
    assert info.value.returncode == 5
    assert 'last words here' in info.value.stderr_tail
    assert 'last words here' in str(info.value)


async def test_missing_module_fails_start_actor_clearly():
    async with tractorish.open_nursery() as an:
        with pytest.raises(RemoteActorError) as info:
            await an.start_actor('broken', enable_modules=['no_such_module_xyz'])
        assert info.value.boxed_type is ModuleNotFoundError
        assert 'no_such_module_xyz' in info.value.message
        assert an.children == []


async def test_enable_modules_must_be_a_list():
    async with tractorish.open_nursery() as an:
        with pytest.raises(TypeError):
            await an.start_actor('typo', enable_modules='actor_funcs')


async def test_root_kwargs_are_refused_inside_a_running_tree():
    async with tractorish.open_nursery():
        with pytest.raises(TypeError):
            async with tractorish.open_nursery(loglevel='debug'):
                pass
        with pytest.raises(RuntimeError):
            async with tractorish.open_root_actor():
                pass


async def test_an_idle_actor_outlives_trio_worker_threads():
    # PR_SET_PDEATHSIG fires when the thread that forked a child exits; trio
    # retires idle worker threads after 10 s, so a child forked from one
    # would die here. The spawn backend forks from the trio thread.
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('patient', enable_modules=['actor_funcs'])
        await trio.to_thread.run_sync(lambda: None)  # make trio start a thread
        await trio.sleep(11.5)
        assert await portal.run(actor_funcs.add, a=1, b=2) == 3
        await portal.cancel_actor()
