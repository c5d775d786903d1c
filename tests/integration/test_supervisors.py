"""Supervisors: OTP strategies, restart types, restart intensity."""
from __future__ import annotations

import os
import signal

import psutil
import pytest
import trio

import pool_funcs as pf
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
