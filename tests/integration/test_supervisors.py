"""Supervisors: OTP strategies, restart types, restart intensity."""
from __future__ import annotations

import functools
import os
import signal
import sys

import psutil
import pytest
import trio

import pool_funcs as pf
import slow_start_funcs
import tractorish
from tractorish import SupervisorError, TransportClosed

MODS = ['pool_funcs']


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def pids_of(sup):
    return {name: await (await sup.portal(name)).run(pf.getpid) for name in sup.children}


async def kill_and_wait_restart(sup, name):
    old = sup.process(name)
    os.kill(old.pid, signal.SIGKILL)
    with trio.fail_after(20):
        while sup.process(name) is old or not (sup._spec(name).ready.is_set()):
            await trio.sleep(0.02)
    await sup.wait_ready()


@pytest.mark.parametrize('strategy, restarted', [
    ('one_for_one', {'b'}),
    ('one_for_all', {'a', 'b', 'c'}),
    ('rest_for_one', {'b', 'c'}),
])
async def test_strategies_restart_the_right_children(strategy, restarted):
    async with tractorish.open_supervisor(strategy, max_restarts=5) as sup:
        for name in 'abc':
            await sup.start_actor(name, enable_modules=MODS)
        before = await pids_of(sup)
        await kill_and_wait_restart(sup, 'b')
        after = await pids_of(sup)
        assert {n for n in 'abc' if before[n] != after[n]} == restarted
        assert sup.children == ['a', 'b', 'c']
    assert not any(alive(p) for p in after.values())


async def test_a_restarted_actor_is_found_by_name_and_old_portals_fail_clearly():
    async with tractorish.open_supervisor() as sup:
        old_portal = await sup.start_actor('svc', enable_modules=MODS)
        old_pid = await old_portal.run(pf.getpid)
        await kill_and_wait_restart(sup, 'svc')
        with pytest.raises(TransportClosed, match='svc'):
            await old_portal.run(pf.getpid)
        new_pid = await (await sup.portal('svc')).run(pf.getpid)
        assert new_pid != old_pid
        async with tractorish.wait_for_actor('svc') as found:
            assert await found.run(pf.getpid) == new_pid


async def test_restart_types(tmp_path):
    exits = []
    async with tractorish.open_supervisor(max_restarts=10) as sup:
        sup.on_exit.append(lambda spec, error: exits.append((spec.name, error is None)))
        # transient: a normal end is final
        await sup.run_in_actor(pf.finish_after, name='done-ok', seconds=0.1)
        # transient: an abnormal end is restarted (the function runs again)
        await sup.run_in_actor(pf.flaky, name='fails-once', i=0, kind='exit', every=1,
                               marker_dir=str(tmp_path))
        # temporary: never restarted
        temp = await sup.start_actor('temp', enable_modules=MODS, restart='temporary')
        os.kill(await temp.run(pf.getpid), signal.SIGKILL)
        # permanent: restarted even after a normal end
        await sup.run_in_actor(pf.finish_after, name='again', restart='permanent',
                               seconds=0.3)
        with trio.fail_after(20):
            while exits.count(('again', True)) < 2 or ('fails-once', True) not in exits \
                    or ('temp', False) not in exits or ('done-ok', True) not in exits:
                await trio.sleep(0.05)
        assert exits.count(('done-ok', True)) == 1
        assert [e for e in exits if e[0] == 'fails-once'] == [('fails-once', False),
                                                               ('fails-once', True)]
        assert exits.count(('temp', False)) == 1
        assert sup.children == ['again']


async def test_exceeding_the_restart_intensity_fails_the_supervisor():
    pids = []
    with pytest.raises(SupervisorError) as info:
        async with tractorish.open_supervisor(max_restarts=2, within=30) as sup:
            await sup.start_actor('steady', enable_modules=MODS)
            pids.append(await (await sup.portal('steady')).run(pf.getpid))
            await sup.run_in_actor(pf.crash, name='crasher', restart='permanent', kind='exit')
            await trio.sleep_forever()
    assert 'more than 2 restarts' in str(info.value)
    assert len(info.value.failures) == 3
    assert all(isinstance(f, tractorish.ActorCrashed) for f in info.value.failures)
    assert not any(alive(p) for p in pids)


async def test_supervisor_inside_an_actor_nursery_propagates_its_failure():
    with pytest.raises(tractorish.RemoteActorError) as info:
        async with tractorish.open_nursery() as an:
            await an.run_in_actor(pf.supervise_a_crasher, name='boss')
    assert info.value.type_str == 'SupervisorError'


async def test_bad_supervisor_arguments():
    with pytest.raises(ValueError):
        async with tractorish.open_supervisor('one_for_some'):
            pass
    async with tractorish.open_supervisor() as sup:
        with pytest.raises(ValueError):
            await sup.start_actor('x', enable_modules=MODS, restart='sometimes')
        with pytest.raises(KeyError):
            await sup.portal('nobody')


async def test_a_supervised_job_has_a_result():
    async with tractorish.open_supervisor() as sup:
        portal = await sup.run_in_actor(pf.finish_after, name='job', seconds=0.05)
        assert await portal.result() == 'finished'


async def test_group_restarts_do_not_restart_temporary_children():
    async with tractorish.open_supervisor('one_for_all', max_restarts=5) as sup:
        await sup.start_actor('perm', enable_modules=MODS)
        await sup.start_actor('temp', enable_modules=MODS, restart='temporary')
        temp_pid = await (await sup.portal('temp')).run(pf.getpid)
        await kill_and_wait_restart(sup, 'perm')
        assert sup.children == ['perm']
        with trio.fail_after(10):
            while alive(temp_pid):
                await trio.sleep(0.02)


async def restarts_here() -> int:
    return tractorish.current_actor().stats()['restarts']


async def test_two_ends_noticed_during_a_restart_restart_their_group_once():
    """one_for_all: a and b end while the supervisor is busy (stopping c);
    a's restart brings up both, and b's notice of its old process, handled
    after, restarts nothing."""
    config = tractorish.RuntimeConfig(cancel_timeout=1.0, grace_period=0.5)
    async with tractorish.open_supervisor('one_for_all', max_restarts=5, within=60,
                                          config=config) as sup:
        for name in 'abc':
            await sup.start_actor(name, enable_modules=MODS)
        old = {name: sup.process(name) for name in 'ab'}
        busy = await sup.portal('c')

        async def block_c() -> None:
            with pytest.raises(Exception):  # c is stopped in the middle of it
                await busy.run(pf.block_the_loop, seconds=30)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(block_c)
            await trio.sleep(0.3)
            nursery.start_soon(sup.stop, 'c')  # slow: c does not answer its cancel
            with trio.fail_after(5):
                while 'c' in sup.children:
                    await trio.sleep(0.01)
            for name in 'ab':
                os.kill(old[name].pid, signal.SIGKILL)
        with trio.fail_after(20):
            while any(sup.process(name) is old[name] for name in 'ab'):
                await trio.sleep(0.02)
            await sup.wait_ready()
        await trio.sleep(0.5)  # time for a second round, if b's notice made one
        assert await restarts_here() == 2  # a and b, once each
        assert sup.children == ['a', 'b']


async def test_stopping_a_child_while_it_starts_ends_its_process():
    async with tractorish.open_supervisor() as sup:
        failed = []

        async def start() -> None:
            with pytest.raises(tractorish.TractorishError) as info:
                await sup.start_actor('slow', enable_modules=['slow_start_funcs'])
            failed.append(info.value)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(start)
                await trio.sleep(0.3)  # it is importing its module
                await sup.stop('slow')
                assert sup.children == []
    assert 'stopped while it started' in str(failed[0])


async def test_a_group_restart_leaves_a_child_on_its_first_start_to_its_starter():
    """one_for_all: a ends while b is on its first start; a is restarted,
    and b comes up once (not twice) when its own start ends."""
    with trio.fail_after(40):
        async with tractorish.open_supervisor('one_for_all', max_restarts=5) as sup:
            await sup.start_actor('a', enable_modules=MODS)
            old_a = sup.process('a')
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(
                    sup.start_actor, 'b', enable_modules=['slow_start_funcs']))
                await trio.sleep(0.3)  # b is importing its module
                os.kill(old_a.pid, signal.SIGKILL)
            await sup.wait_ready()
            assert sup.process('a') is not old_a
            assert await restarts_here() == 1  # a only
            assert await (await sup.portal('b')).run(slow_start_funcs.getpid) == \
                sup.process('b').pid


async def test_supervisor_arguments_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match='max_restarts must be an int'):
        async with tractorish.open_supervisor(max_restarts=2.5):
            pass
    async with tractorish.open_supervisor(max_restarts=sys.maxsize) as sup:
        await sup.start_actor('unlimited', enable_modules=MODS)
    with pytest.raises(ValueError, match='within must be a positive number'):
        async with tractorish.open_supervisor(within='5'):
            pass
    async with tractorish.open_supervisor() as sup:
        with pytest.raises(TypeError, match="not the string 'pool_funcs'"):
            await sup.start_actor('x', enable_modules='pool_funcs')
        with pytest.raises(TypeError, match="not the string 'pool_funcs'"):
            await sup.run_in_actor(pf.getpid, enable_modules='pool_funcs')
        with pytest.raises(ValueError, match='an actor name must be a non-empty string'):
            await sup.start_actor(None, enable_modules=MODS)
        with pytest.raises(TypeError, match=r"\['loglevel'\] only apply when open_supervisor"):
            async with tractorish.open_supervisor(loglevel='debug'):
                pass
        assert sup.children == []
