"""Finding actors by name, in one tree and across separate programs."""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

import actor_funcs
import tractorish
from tractorish.ipc import parse_addr
from tractorish.testing import stop_program

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


async def test_find_query_and_call_a_child_by_name():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('findme', enable_modules=['actor_funcs'])
        async with tractorish.find_actor('findme') as found:
            assert found is not None
            assert found.peer_uid == portal.peer_uid
            assert await found.run(actor_funcs.add, a=1, b=2) == 3
        async with tractorish.query_actor('findme') as (addr, registrar):
            assert tuple(addr) == tuple(portal.channel.peer_info['addrs'][0])
            assert registrar is not None and registrar.peer_uid[0] == 'root'
        with pytest.raises(RuntimeError, match='nobody-by-this-name'):
            async with tractorish.find_actor('nobody-by-this-name', raise_on_none=True):
                pass
        async with tractorish.find_actor('findme', only_first=False) as every:
            assert [p.peer_uid for p in every] == [portal.peer_uid]
        async with tractorish.find_actor('nobody-by-this-name') as missing:
            assert missing is None
        async with tractorish.query_actor('nobody-by-this-name') as (addr, registrar):
            assert addr is None and registrar is None
        names = {e['name'] for e in await tractorish.list_actors()}
        assert {'root', 'findme'} <= names
        await portal.cancel_actor()


async def test_exiting_and_dying_actors_are_unregistered():
    async with tractorish.open_nursery() as an:
        gentle = await an.start_actor('gentle', enable_modules=['actor_funcs'])
        await gentle.cancel_actor()
        with trio.fail_after(10):
            while 'gentle' in {e['name'] for e in await tractorish.list_actors()}:
                await trio.sleep(0.02)
    with pytest.raises(tractorish.ActorCrashed):
        async with tractorish.open_nursery() as an:
            doomed = await an.start_actor('doomed', enable_modules=['actor_funcs'])
            os.kill(await doomed.run(actor_funcs.getpid), signal.SIGKILL)
            with trio.fail_after(10):
                while 'doomed' in {e['name'] for e in await tractorish.list_actors()}:
                    await trio.sleep(0.02)
            await trio.sleep_forever()


async def test_a_child_of_the_registrar_registers_in_its_hello():
    async with tractorish.open_nursery() as an:
        root = tractorish.current_actor()
        assert root.registrar_addr is not None
        portal = await an.start_actor('greeter', enable_modules=['actor_funcs'])
        entries = {e['name']: e for e in await tractorish.list_actors()}
        assert entries['greeter']['uid'] == list(portal.peer_uid)
        assert entries['greeter']['addrs'] == portal.channel.peer_info['addrs']
        # no second connection (and context) to its parent just to register
        assert len(root._peers[portal.peer_uid]) == 1
        await portal.cancel_actor()
        with trio.fail_after(10):  # gone with its channel
            while 'greeter' in {e['name'] for e in await tractorish.list_actors()}:
                await trio.sleep(0.02)


async def test_a_hello_registers_only_the_peer_that_sent_it():
    from tractorish.ipc import connect
    from tractorish.msg import cmd

    async def hello_with(uid, entry):
        """Connect with ``entry`` in the hello; make one call, so the
        registrar has served the channel (and run its hooks) before we look."""
        async with connect(root.registrar_addr, uid=uid, secret=root.secret,
                           info={'addrs': [['127.0.0.1', 9]], 'register': entry}) as chan:
            await chan.send(cmd('self', '_get_info', {}, uid, 'c0'))
            while 'return' not in await chan.receive():
                pass
            return {e['name'] for e in await tractorish.list_actors()}

    def entry_for(uid):
        return {'name': uid[0], 'uid': list(uid), 'addrs': [['127.0.0.1', 9]]}

    async with tractorish.open_nursery():
        root = tractorish.current_actor()
        honest, liar = ('honest', 'a' * 32), ('liar', 'b' * 32)
        assert 'honest' in await hello_with(honest, entry_for(honest))
        names = await hello_with(liar, entry_for(('forged', 'c' * 32)))
        assert 'forged' not in names and 'liar' not in names
        with trio.fail_after(10):  # and an entry from a hello goes with its channel
            while 'honest' in {e['name'] for e in await tractorish.list_actors()}:
                await trio.sleep(0.02)


async def test_wait_for_actor_waits_until_it_registers():
    async with tractorish.open_nursery() as an:
        got = {}

        async def waiter():
            async with tractorish.wait_for_actor('late') as portal:
                got['pid'] = await portal.run(actor_funcs.getpid)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.3)
            assert not got
            late = await an.start_actor('late', enable_modules=['actor_funcs'])
        assert got['pid'] == late.channel.peer_info['pid']
        await late.cancel_actor()


async def test_wait_for_actors_and_its_timeout():
    async with tractorish.open_nursery() as an:
        one = await an.start_actor('one', enable_modules=['actor_funcs'])
        two = await an.start_actor('two', enable_modules=['actor_funcs'])
        async with tractorish.wait_for_actors('one', 'two', timeout=10) as portals:
            assert set(portals) == {'one', 'two'}
            assert await portals['two'].run(actor_funcs.add, a=2, b=2) == 4
        with pytest.raises(TimeoutError, match="'three'.*'four'|'four'.*'three'"):
            async with tractorish.wait_for_actors('one', 'three', 'four', timeout=0.5):
                pass
        await one.cancel_actor()
        await two.cancel_actor()


async def test_duplicate_names_are_all_findable():
    async with tractorish.open_nursery() as an:
        first = await an.start_actor('dup', enable_modules=['actor_funcs'])
        second = await an.start_actor('dup', enable_modules=['actor_funcs'])
        async with tractorish.find_actors('dup') as portals:
            assert [p.peer_uid for p in portals] == [first.peer_uid, second.peer_uid]
        async with tractorish.find_actor('dup') as latest:  # the last registered
            assert latest.peer_uid == second.peer_uid
        await first.cancel_actor()
        await second.cancel_actor()


async def test_the_tree_is_recorded_in_the_registry():
    async with tractorish.open_nursery() as an:
        middle = await an.start_actor('middle', enable_modules=['actor_funcs'])
        entries = await middle.run(actor_funcs.registry_view_with_a_child)
        by_name = {e['name']: e for e in entries}
        assert by_name['middle']['parent'] == list(tractorish.current_actor().uid)
        assert by_name['leaf']['parent'] == list(middle.peer_uid)
        assert by_name['root']['parent'] is None
        await middle.cancel_actor()


# --- separate programs -----------------------------------------------------------------

@contextmanager
def program(*args, env=None, prefix=(sys.executable,)):
    proc = subprocess.Popen([*prefix, *args], cwd=HERE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        stop_program(proc)


def wait_line(proc, needle, timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f'{needle!r} never printed; stderr: {proc.stderr.read()}')


def cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, '-m', 'tractorish', *args], cwd=HERE, env=env,
                          capture_output=True, text=True, timeout=timeout)


def registered_names(registry: str, env) -> set:
    out = cli('ls', '--registry', registry, env=env)
    if out.returncode != 0:
        return set()
    return {line.split()[0] for line in out.stdout.splitlines()[1:]}


def test_separate_programs_meet_at_a_registry_daemon():
    env = dict(os.environ)
    registry = env['TRACTORISH_REGISTRY']
    host, port = parse_addr(registry)
    with program('-m', 'tractorish', 'registry', '--host', host, '--port', str(port),
                 env=env) as daemon:
        line = wait_line(daemon, 'listening on')
        assert registry in line
        assert 'TRACTORISH_REGISTRY' in daemon.stdout.readline()
        with program('worker_program.py', 'calc', env=env) as worker:
            wait_line(worker, 'ready')
            # a third program finds the worker by name and calls it
            out = cli('call', 'calc', 'actor_funcs.add', 'a=40', 'b=2', env=env)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == '42'
            odd = cli('call', 'calc', 'actor_funcs.bytes_keys', env=env)
            assert odd.returncode == 0, odd.stderr
            assert odd.stdout.strip() == "{b'k': 1}"  # repr: JSON cannot say it
            listing = cli('ls', env=env)
            assert listing.returncode == 0, listing.stderr
            assert listing.stdout.split()[:5] == ['NAME', 'UID', 'PID', 'ADDRESS', 'UPTIME']
            assert 'calc' in listing.stdout and 'registrar' in listing.stdout
            tree = cli('tree', env=env)
            assert 'calc' in tree.stdout
            missing = cli('call', 'nobody', 'actor_funcs.add', env=env)
            assert missing.returncode == 1 and "no actor named 'nobody'" in missing.stderr
            unexposed = cli('call', 'calc', 'os.getcwd', env=env)
            assert unexposed.returncode == 1 and 'ModuleNotExposed' in unexposed.stderr
            wrong = cli('ls', env={**env, 'TRACTORISH_SECRET': 'wrong'})
            assert wrong.returncode == 1 and 'refused' in wrong.stderr


def test_a_restarted_registrar_is_repopulated():
    env = dict(os.environ)
    registry = env['TRACTORISH_REGISTRY']
    host, port = parse_addr(registry)
    args = ('-m', 'tractorish', 'registry', '--host', host, '--port', str(port))
    with program(*args, env=env) as first_daemon:
        wait_line(first_daemon, 'listening on')
        with program('worker_program.py', 'survivor', env=env) as worker:
            wait_line(worker, 'ready')
            assert 'survivor' in registered_names(registry, env)
            first_daemon.kill()
            first_daemon.wait()
            assert registered_names(registry, env) == set()
            with program(*args, env=env) as second_daemon:
                wait_line(second_daemon, 'listening on')
                deadline = time.monotonic() + 20
                while 'survivor' not in registered_names(registry, env):
                    assert time.monotonic() < deadline, 'worker did not re-register'
                    time.sleep(0.2)


@contextmanager
def silent_listener():
    """A port that takes connections (the kernel completes them) and never
    answers: what a stopped or hung registrar looks like from outside."""
    import socket
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(64)
    try:
        yield sock.getsockname()
    finally:
        sock.close()


@pytest.fixture
def short_answer_timeout(monkeypatch):
    from tractorish.ipc import _handshake
    monkeypatch.setattr(_handshake, 'ANSWER_TIMEOUT', 0.5)


async def test_a_silent_registry_is_taken_for_an_absent_one(short_answer_timeout, caplog):
    import logging
    from tractorish.ipc import NoAnswerError
    config = tractorish.RuntimeConfig(discovery='client')
    with silent_listener() as silent, caplog.at_level(logging.WARNING):
        async with tractorish.open_root_actor('asker', registry_addrs=[silent],
                                              config=config):
            with trio.fail_after(30):
                async with tractorish.find_actor('anyone') as portal:
                    assert portal is None
                async with tractorish.find_actors('anyone') as portals:
                    assert portals == []
                async with tractorish.query_actor('anyone') as (addr, registrar):
                    assert addr is None and registrar is None
                # what has nothing to give back says what happened
                with pytest.raises(NoAnswerError) as info:
                    await tractorish.list_actors()
    assert f'no answer from 127.0.0.1:{silent[1]} within 0.5 s' in str(info.value)
    assert isinstance(info.value, tractorish.TransportClosed)
    assert not isinstance(info.value, tractorish.AuthenticationError)
    assert f'taking the registry at 127.0.0.1:{silent[1]} for absent' in caplog.text


async def test_a_registry_silent_after_its_handshake_is_taken_for_an_absent_one(
        short_answer_timeout, caplog, monkeypatch):
    """A peer that proves the secret, then never answers a lookup: bounded
    like one silent from the start (a lookup is answered at once)."""
    import logging
    from tractorish.ipc import NoAnswerError, open_listener, serve_listener
    from tractorish.runtime import _call
    # (the lookup left unanswered is cancelled: the mute peer never confirms)
    monkeypatch.setattr(_call, 'CANCEL_ACK_TIMEOUT', 0.2)
    config = tractorish.RuntimeConfig(discovery='client')
    async with tractorish.open_root_actor('asker', registry_addrs=[('127.0.0.1', 1)],
                                          config=config):
        async with trio.open_nursery() as nursery:
            listener, bound = await open_listener(('127.0.0.1', 0))
            await nursery.start(functools.partial(
                serve_listener, listener, bound, lambda chan: trio.sleep_forever(),
                uid=('mute', '1'), secret=tractorish.current_actor().secret))
            with caplog.at_level(logging.WARNING), trio.fail_after(30):
                async with tractorish.find_actor('anyone', registry_addrs=[bound]) as portal:
                    assert portal is None
                with pytest.raises(NoAnswerError, match='took the lookup but did not answer'):
                    await tractorish.list_actors(bound)
            nursery.cancel_scope.cancel()
        # silent from the start: the wait's timeout says the registry never answered
        with silent_listener() as silent, trio.fail_after(30):
            with pytest.raises(NoAnswerError, match='did not answer within 0.3 s'):
                async with tractorish.wait_for_actors('x', timeout=0.3, registry_addr=silent):
                    pass
    assert f'taking the registry at 127.0.0.1:{bound[1]} for absent' in caplog.text


async def test_registering_with_a_registry_silent_after_its_handshake_is_retried(
        monkeypatch, caplog):
    """Every attempt to register is bounded, not only the first: a registry
    that proves the secret and then says nothing is tried again."""
    import logging
    from tractorish.discovery import _service
    from tractorish.ipc import open_listener, serve_listener
    from tractorish.runtime import _call
    monkeypatch.setattr(_service, 'REGISTRATION_TIMEOUT', 0.3)
    monkeypatch.setattr(_service, 'RETRY_MAX', 0.3)
    monkeypatch.setattr(_call, 'CANCEL_ACK_TIMEOUT', 0.2)
    attempts = []

    async def mute(chan):
        attempts.append(chan)
        await trio.sleep_forever()
    secret = tractorish.RuntimeConfig().secret or tractorish.ipc.load_secret()
    async with trio.open_nursery() as nursery:
        listener, bound = await open_listener(('127.0.0.1', 0))
        await nursery.start(functools.partial(serve_listener, listener, bound, mute,
                                              uid=('mute', '1'), secret=secret))
        with caplog.at_level(logging.WARNING):
            async with tractorish.open_root_actor('lonely', registry_addrs=[bound]):
                with trio.fail_after(20):
                    while len(attempts) < 3:
                        await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert 'does not answer (no registration within 0.3 s)' in caplog.text


async def test_discovery_arguments_of_the_wrong_kind_are_refused():
    config = tractorish.RuntimeConfig(discovery='client')
    async with tractorish.open_root_actor('asker', registry_addrs=[('127.0.0.1', 1)],
                                          config=config):
        with trio.fail_after(10):
            with pytest.raises(TypeError, match='a list of addresses, not one address'):
                async with tractorish.find_actor('x', registry_addrs=('127.0.0.1', 1)):
                    pass
            with pytest.raises(TypeError, match='a list of addresses, not one address'):
                async with tractorish.find_actor('x', registry_addrs='127.0.0.1:1'):
                    pass
            with pytest.raises(TypeError, match=r"an actor name is a string, not \['alpha'\]"):
                async with tractorish.find_actor(['alpha']):
                    pass
            with pytest.raises(TypeError, match='an actor name is a string'):
                async with tractorish.wait_for_actor(['alpha']):
                    pass
            with pytest.raises(TypeError, match='an actor name is a string'):
                async with tractorish.wait_for_actors('a', ['alpha']):
                    pass


async def test_an_actor_starts_unregistered_beside_a_silent_registry(
        short_answer_timeout, caplog):
    import logging
    with silent_listener() as silent, caplog.at_level(logging.WARNING):
        with trio.fail_after(30):
            async with tractorish.open_root_actor('lonely', registry_addrs=[silent]):
                assert tractorish.current_actor().registrar_addr is None
    assert f'the registry at 127.0.0.1:{silent[1]} does not answer' in caplog.text
