"""The forkserver backend: forked actors behave like fresh ones; no orphans;
a runtime's first actor starts fresh while its zygote starts."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import psutil
import pytest
import trio

import actor_funcs
import tractorish
from actor_funcs import start_forked, wait_for_zygote
from tractorish.spawn import spawn_statistics

HERE = Path(__file__).parent
FORK = tractorish.RuntimeConfig(start_method='forkserver')


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def child_of(an, portal):
    return next(c for c in an.children if c.portal is portal)


async def test_the_first_actor_starts_fresh_while_the_zygote_starts():
    async with tractorish.open_nursery(config=FORK) as an:
        assert spawn_statistics() == (0, 0, None, False)
        first = await an.start_actor('first', enable_modules=['actor_funcs'])
        stats = spawn_statistics()
        assert (stats.forked, stats.fresh) == (0, 1) and stats.zygote_pid is not None
        assert not child_of(an, first).forked
        state = await first.run(actor_funcs.process_state)
        assert state['ppid'] == os.getpid()
        assert await first.run(actor_funcs.add, a=1, b=2) == 3
        # once the zygote is ready, the next actor is forked by it
        zygote_pid = await wait_for_zygote()
        assert zygote_pid == stats.zygote_pid
        second = await an.start_actor('second', enable_modules=['actor_funcs'])
        assert child_of(an, second).forked
        assert spawn_statistics() == (1, 1, zygote_pid, True)
        assert (await second.run(actor_funcs.process_state))['ppid'] == zygote_pid
        await first.cancel_actor()
        await second.cancel_actor()


async def test_spawns_while_the_zygote_starts_wait_for_it_but_one():
    async with tractorish.open_nursery(config=FORK) as an:
        portals = []

        async def start(i):
            portals.append(await an.start_actor(f'early-{i}', enable_modules=['actor_funcs']))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(start, i)
        stats = spawn_statistics()
        assert (stats.forked, stats.fresh, stats.zygote_ready) == (3, 1, True)
        assert sorted(child_of(an, p).forked for p in portals) == [False, True, True, True]
        assert [await p.run(actor_funcs.add, a=i, b=1) for i, p in enumerate(portals)] == [
            1, 2, 3, 4]
        await an.cancel()


async def test_a_forked_actor_starts_clean():
    async with tractorish.open_nursery(config=FORK) as an:
        portal = await start_forked(an, 'forked', enable_modules=['actor_funcs'])
        state = await portal.run(actor_funcs.process_state)
        zygote = psutil.Process(state['ppid'])
        assert zygote.ppid() == os.getpid()
        assert 'tractorish._zygote' in ' '.join(zygote.cmdline())
        # no thread of the zygote's (it has none); trio may start its own
        assert [t for t in state['threads'] if not t.startswith(('MainThread', 'Trio'))] == []
        assert state['sigint'] == 'ignore'
        assert state['sigterm'] == 'default'
        assert state['sigchld'] == 'default'
        assert state['sid_is_self']
        # none of the zygote's descriptors (its control socket) leaked in
        zygote_links = {os.readlink(f'/proc/{zygote.pid}/fd/{fd}')
                        for fd in os.listdir(f'/proc/{zygote.pid}/fd')}
        shared = {link for link in state['fds'].values()
                  if link.startswith('socket:') and link in zygote_links}
        assert shared == set()
        assert state['fds'][0] == '/dev/null'
        # and it is a working actor: calls, errors, cancellation
        assert await portal.run(actor_funcs.add, a=1, b=2) == 3
        with pytest.raises(tractorish.RemoteActorError):
            await portal.run(actor_funcs.raise_value_error)
        with trio.move_on_after(0.2):
            await portal.run(actor_funcs.sleep_forever_counting_cancels)
        assert await portal.run(actor_funcs.cancelled_count) == 1
        # each fork has its own pid and its own modules, imported after the fork
        other = await an.start_actor('other', enable_modules=['actor_funcs'])
        assert child_of(an, other).forked
        assert await other.run(actor_funcs.cancelled_count) == 0
        await portal.cancel_actor()
        await other.cancel_actor()


async def test_one_zygote_per_spawning_actor_and_nested_trees():
    async with tractorish.open_nursery(config=FORK) as an:
        portal = await an.run_in_actor(actor_funcs.spawn_grandchild_result,
                                       name='middle', a=3, b=4)
        name, grandchild = await portal.result()
        assert grandchild['sum'] == 7
        # the grandchild came from the middle actor, not from our zygote
        zygote_pid = spawn_statistics().zygote_pid
        assert zygote_pid is not None and alive(zygote_pid)
        assert grandchild['ppid'] not in (os.getpid(), zygote_pid)


async def test_a_crashed_zygote_takes_its_children_and_is_replaced():
    with pytest.raises(tractorish.ActorCrashed):
        async with tractorish.open_nursery(config=FORK) as an:
            portal = await start_forked(an, 'victim', enable_modules=['actor_funcs'])
            pid = await portal.run(actor_funcs.getpid)
            zygote_pid = spawn_statistics().zygote_pid
            os.kill(zygote_pid, signal.SIGKILL)
            await trio.sleep_forever()
    with trio.fail_after(10):
        while alive(pid):
            await trio.sleep(0.02)
    async with tractorish.open_nursery(config=FORK) as an:
        # a new root, a new zygote
        portal = await start_forked(an, 'next', enable_modules=['actor_funcs'])
        assert spawn_statistics().zygote_pid != zygote_pid
        assert await portal.run(actor_funcs.add, a=2, b=2) == 4
        await portal.cancel_actor()


async def test_zygote_replaced_after_a_crash_within_one_runtime():
    async with tractorish.open_nursery(config=FORK) as an:
        first = await start_forked(an, 'first', enable_modules=['actor_funcs'])
        first_pid = await first.run(actor_funcs.getpid)
        first_child = child_of(an, first)
        await first.cancel_actor()
        await first_child.wait()  # its exit reported by the zygote
        old = spawn_statistics().zygote_pid
        os.kill(old, signal.SIGKILL)
        with trio.fail_after(10):
            while spawn_statistics().zygote_pid is not None:
                await trio.sleep(0.01)
        # the next spawn starts a new zygote (and itself fresh meanwhile)
        second = await an.start_actor('second', enable_modules=['actor_funcs'])
        assert spawn_statistics().zygote_pid not in (None, old)
        assert await second.run(actor_funcs.add, a=1, b=1) == 2
        third = await start_forked(an, 'third', enable_modules=['actor_funcs'])
        state = await third.run(actor_funcs.process_state)
        assert state['ppid'] == spawn_statistics().zygote_pid
        assert state['pid'] != first_pid
        await second.cancel_actor()
        await third.cancel_actor()


async def test_a_spawn_the_dying_zygote_cannot_serve_starts_fresh():
    async with tractorish.open_nursery(config=FORK) as an:
        first = await start_forked(an, 'first', enable_modules=['actor_funcs'])
        first_child = child_of(an, first)
        await first.cancel_actor()  # (a zygote's death takes its children)
        await first_child.wait()
        before = spawn_statistics()
        os.kill(before.zygote_pid, signal.SIGKILL)
        # asked at once, before this side has noticed the zygote's death
        second = await an.start_actor('second', enable_modules=['actor_funcs'])
        assert not child_of(an, second).forked
        assert await second.run(actor_funcs.add, a=2, b=3) == 5
        after = spawn_statistics()
        assert (after.forked, after.fresh) == (before.forked, before.fresh + 1)
        assert after.zygote_pid != before.zygote_pid
        await second.cancel_actor()


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_killing_a_forkserver_root_leaves_nothing(tmp_path, sig):
    pidfile = tmp_path / 'pids'
    env = {**os.environ, 'TRACTORISH_START_METHOD': 'forkserver'}
    proc = subprocess.Popen([sys.executable, str(HERE / 'tree_script.py'), str(pidfile), '3',
                             'forked'], cwd=HERE, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pidfile.exists() and len(pidfile.read_text().split()) == 4:
                break
            assert proc.poll() is None
            time.sleep(0.05)
        pids = [int(p) for p in pidfile.read_text().split()]
        descendants = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert set(pids[1:]) <= set(descendants)
        os.kill(proc.pid, sig)
        proc.wait(timeout=15)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in descendants) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in descendants if alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_while_forking_ends_the_root_and_its_children():
    proc = subprocess.Popen([sys.executable, str(HERE / 'fork_race_script.py')], cwd=HERE)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def spares_of(zygote_pid, actor_pids):
    """The zygote's living children that are not actors: its spare."""
    found = []
    for child in psutil.Process(zygote_pid).children():
        try:
            if child.pid not in actor_pids and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


async def one_spare(zygote_pid, actor_pids):
    with trio.fail_after(10):
        while len(spares := spares_of(zygote_pid, actor_pids)) != 1:
            await trio.sleep(0.01)
    return spares[0]


async def test_a_spare_forked_ahead_becomes_the_next_actor_and_starts_clean():
    async with tractorish.open_nursery(config=FORK) as an:
        first = await start_forked(an, 'first', enable_modules=['actor_funcs'])
        pids = {await first.run(actor_funcs.getpid)}
        zygote_pid = spawn_statistics().zygote_pid
        spare = await one_spare(zygote_pid, pids)
        # two at once: one gets the spare, the other a child forked for it
        portals = []

        async def start(name):
            portals.append(await an.start_actor(name, enable_modules=['actor_funcs']))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start, 'second')
            nursery.start_soon(start, 'third')
        states = [await portal.run(actor_funcs.process_state) for portal in portals]
        assert sorted(s['pid'] == spare for s in states) == [False, True]
        state, direct = sorted(states, key=lambda s: s['pid'] != spare)
        assert state['pid'] == spare and state['ppid'] == direct['ppid'] == zygote_pid
        # as clean as a child forked for its request
        assert state['threads'] == ['MainThread']
        assert (state['sigint'], state['sigterm'], state['sigchld']) == (
            'ignore', 'default', 'default')
        assert state['sid_is_self'] and state['fds'][0] == '/dev/null'
        assert state['cwd'] == os.getcwd()
        assert state['fds'][2].startswith('pipe:') and state['fds'][2] != direct['fds'][2]
        assert len(state['fds']) == len(direct['fds'])  # no socket of the spare's left
        zygote_links = {os.readlink(f'/proc/{zygote_pid}/fd/{fd}')
                        for fd in os.listdir(f'/proc/{zygote_pid}/fd')}
        assert not {link for link in state['fds'].values() if link in zygote_links
                    and link.startswith(('socket:', 'pipe:'))}
        assert [await p.run(actor_funcs.cancelled_count) for p in portals] == [0, 0]
        pids |= {s['pid'] for s in states}
        # and the next one waits already
        assert await one_spare(zygote_pid, pids) not in pids
        await an.cancel()


async def test_a_spare_reports_through_its_own_stderr():
    with pytest.raises(tractorish.ActorCrashed) as info:
        async with tractorish.open_nursery(config=FORK) as an:
            first = await start_forked(an, 'first', enable_modules=['actor_funcs'])
            pids = {await first.run(actor_funcs.getpid)}
            spare = await one_spare(spawn_statistics().zygote_pid, pids)
            await an.run_in_actor(actor_funcs.say_then_die,
                                  text='a spare says goodbye', code=6)
            await first.cancel_actor()
    assert (info.value.pid, info.value.returncode) == (spare, 6)
    assert 'a spare says goodbye' in info.value.stderr_tail


async def test_a_spare_that_dies_unused_is_replaced_unreported():
    async with tractorish.open_nursery(config=FORK) as an:
        first = await start_forked(an, 'first', enable_modules=['actor_funcs'])
        pids = {await first.run(actor_funcs.getpid)}
        zygote_pid = spawn_statistics().zygote_pid
        for i in range(2):
            spare = await one_spare(zygote_pid, pids)
            os.kill(spare, signal.SIGKILL)
            with trio.fail_after(10):
                while alive(spare):
                    await trio.sleep(0.01)
            # not forked again until a request comes
            await trio.sleep(0.2)
            assert spares_of(zygote_pid, pids) == []
            # nobody was told of an exit, and a request is served
            assert spawn_statistics().zygote_pid == zygote_pid
            assert await first.run(actor_funcs.add, a=1, b=i) == 1 + i
            other = await an.start_actor(f'other-{i}', enable_modules=['actor_funcs'])
            assert child_of(an, other).forked
            other_pid = await other.run(actor_funcs.getpid)
            assert other_pid != spare
            await other.cancel_actor()
            pids.add(other_pid)
        await first.cancel_actor()


async def test_no_spare_when_the_config_says_so():
    config = tractorish.RuntimeConfig(start_method='forkserver', forkserver_spare=False)
    async with tractorish.open_nursery(config=config) as an:
        pids, portals = set(), []
        for name in ('first', 'second'):
            portals.append(await start_forked(an, name, enable_modules=['actor_funcs']))
            pids.add(await portals[-1].run(actor_funcs.getpid))
            await trio.sleep(0.3)  # a spare would be forked by now
            assert spares_of(spawn_statistics().zygote_pid, pids) == []
        for portal in portals:
            await portal.cancel_actor()


async def test_the_rehearsal_closes_everything_it_opened():
    from tractorish import _child
    before = set(os.listdir('/proc/self/fd'))
    with trio.fail_after(10):
        await _child.rehearsal()
    assert set(os.listdir('/proc/self/fd')) == before


def test_the_zygote_refuses_a_malformed_request_and_goes_on():
    from tractorish import _zygote_protocol as protocol
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**os.environ, protocol.PARENT_ENV: str(os.getpid()), protocol.SPARE_ENV: '0'}
    proc = subprocess.Popen([sys.executable, '-m', 'tractorish._zygote'],
                            stdin=theirs.fileno(), env=env, start_new_session=True)
    theirs.close()
    read_fd, write_fd = os.pipe()

    def reply():
        return protocol.unpack(ours.recv(65536), protocol.REPLY)

    try:
        ours.settimeout(30)
        assert reply() == ('ready', {'ready': proc.pid})
        socket.send_fds(ours, [msgpack.packb({'fork': 5, 'boot': 'not a map'})], [write_fd])
        kind, fields = reply()
        assert (kind, fields['failed']) == ('failed', 5) and "'boot'" in fields['error']
        socket.send_fds(ours, [b'\xc1'], [write_fd])
        kind, fields = reply()
        assert (kind, fields['failed']) == ('failed', None)
        assert 'not msgpack' in fields['error']
        ours.send(protocol.pack('fork', fork=6, boot={}))
        assert reply() == ('failed', {'failed': 6, 'error': 'no stderr pipe attached'})
        assert proc.poll() is None
    finally:
        ours.close()
        os.close(read_fd)
        os.close(write_fd)
        try:
            assert proc.wait(timeout=10) == 0  # its socket closed: it ends
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize('method', ['trio', 'forkserver'])
async def test_a_child_whose_watch_cannot_start_is_killed_not_left(method, monkeypatch):
    # ChildProcess starts its stderr relay in the runtime's nursery, which
    # refuses once the runtime is closing: the process started before that
    # must not be left behind
    from tractorish.spawn import _spawn

    refused = []

    class Refused:
        def __init__(self, name, uid, proc, parent):
            refused.append(proc.pid)
            raise RuntimeError('the runtime is closing')

    config = tractorish.RuntimeConfig(start_method=method)
    async with tractorish.open_nursery(config=config) as an:
        first = await an.start_actor('first', enable_modules=['actor_funcs'])
        if method == 'forkserver':
            await wait_for_zygote()  # the next one is forked
        monkeypatch.setattr(_spawn, 'ChildProcess', Refused)
        with pytest.raises(RuntimeError, match='the runtime is closing'):
            await an.start_actor('second', enable_modules=['actor_funcs'])
        monkeypatch.undo()
        [pid] = refused
        assert not alive(pid)  # killed and reaped, before the error came out
        await first.cancel_actor()
