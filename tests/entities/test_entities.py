"""Entity clusters with real workers: per-key serial handling, order,
concurrency across keys, errors, timeouts, passivation, a worker SIGKILLed
(state restored from the store, messages in flight failed or retried), and
zero-hop clients in this process and in another program."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import tractorish
from entity_funcs import Account, Counter
from tractorish import EntityOwnerLost, EntityTimeout, RemoteActorError
from tractorish.entities._store import read_state

HERE = Path(__file__).resolve().parent


def keys_owned_by(cluster, worker, n, prefix='key'):
    keys = (f'{prefix}-{i}' for i in range(10_000))
    return [k for k in keys if cluster.owner(k) == worker][:n]


async def wait_until(predicate, what, seconds=20.0):
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.02)


async def wait_for_full_membership(cluster, replaced, old_pid):
    await wait_until(lambda: replaced in cluster.members
                     and cluster.worker_pid(replaced) not in (None, old_pid),
                     f'{replaced} to be replaced')


async def test_per_key_serial_handling_under_a_thousand_concurrent_asks():
    async with tractorish.open_entity_cluster(Counter, workers=4, name='counters') as cluster:
        assert cluster.workers == ['counters-0', 'counters-1', 'counters-2', 'counters-3']
        assert cluster.members == cluster.workers
        results = []

        async def one(i):
            results.append(await cluster.ask(f'key-{i % 50}', 'add', timeout=30))
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(1000):
                    nursery.start_soon(one, i)
        states = [await cluster.ask(f'key-{k}', 'get', timeout=10) for k in range(50)]
        # no lost update, no two messages of a key ever at once
        assert [s['value'] for s in states] == [20] * 50
        assert [s['overlaps'] for s in states] == [0] * 50
        assert sorted(results) == sorted(list(range(1, 21)) * 50)
        # each key lives on the worker the hash names, and every worker has some
        assert all(s['worker'] == cluster.owner(f'key-{k}') for k, s in enumerate(states))
        assert len({s['worker'] for s in states}) == 4
        status = await cluster.status()
        assert [w['worker'] for w in status] == cluster.workers
        assert sum(w['entities'] for w in status) == 50
        assert sum(w['handled'] for w in status) == 1050


async def test_order_per_sender_concurrency_across_keys_errors_and_timeouts():
    async with tractorish.open_entity_cluster(Counter, workers=2, name='misc') as cluster:
        # one sender's messages are handled in the order sent (tells too)
        for i in range(300):
            await cluster.tell('log', 'append', item=i)
        assert await cluster.ask('log', 'items_seen', timeout=10) == list(range(300))

        # entities of different keys run at once, even on one worker
        keys = keys_owned_by(cluster, 'misc-0', 5)
        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(functools.partial(cluster.ask, key, 'meet', n=5))

        # the method's exception reaches the caller; the entity lives on
        await cluster.ask('acct', 'add', n=5)
        with pytest.raises(RemoteActorError) as info:
            await cluster.ask('acct', 'fail', text='card declined', timeout=10)
        assert info.value.boxed_type is ValueError and 'card declined' in str(info.value)
        with pytest.raises(RemoteActorError) as info:
            await cluster.ask('acct', 'no_such_method', timeout=10)
        assert info.value.boxed_type is AttributeError
        assert (await cluster.ask('acct', 'get', timeout=10))['value'] == 5
        assert await cluster.ask('acct', 'where', timeout=10) == cluster.owner('acct')
        with pytest.raises(TypeError):
            await cluster.ask('acct', '_private')
        with pytest.raises(TypeError):
            await cluster.ask(42, 'get')

        # a timeout is a TimeoutError naming the entity; others still answer
        with pytest.raises(EntityTimeout) as timeout:
            await cluster.ask('slow', 'sleep', seconds=60, timeout=0.2)
        assert isinstance(timeout.value, TimeoutError) and "'slow'" in str(timeout.value)
        assert await cluster.ask('fast', 'add', timeout=10) == 1


async def test_idle_entities_are_passivated_and_restored_from_the_store(tmp_path):
    store = str(tmp_path / 'bank.db')
    async with tractorish.open_entity_cluster(Account, workers=2, name='idle', store=store,
                                              passivate_after=0.2) as cluster:
        await cluster.ask('alice', 'take_notes_in', path=str(tmp_path), timeout=10)
        assert await cluster.ask('alice', 'deposit', amount=10, timeout=10) == 10
        note = tmp_path / 'alice.passivated'
        await wait_until(lambda: note.exists() and note.read_text().endswith('\n'),
                         'the on_passivate hook')
        assert note.read_text() == '10\n'

        async def live():
            return sum(w['entities'] for w in await cluster.status())
        with trio.fail_after(20):
            while await live():
                await trio.sleep(0.05)
        assert sum(w['passivated'] for w in await cluster.status()) >= 1
        # the next message makes a new entity, with the state saved in the store
        assert await cluster.ask('alice', 'get_balance', timeout=10) == 10
    assert read_state(store, 'idle', 'alice') == {'balance': 10}


async def test_a_sigkilled_worker_s_keys_move_with_their_state(tmp_path):
    store = str(tmp_path / 'bank.db')
    async with tractorish.open_entity_cluster(Account, workers=4, name='bank',
                                              store=store) as cluster:
        keys = [f'acct-{i}' for i in range(24)]
        for key in keys:
            await cluster.ask(key, 'deposit', amount=100, timeout=10)
        victim = cluster.owner('acct-0')
        pid = cluster.worker_pid(victim)
        moved = [k for k in keys if cluster.owner(k) == victim]
        os.kill(pid, signal.SIGKILL)
        # every key still answers, the killed worker's ones restored from the store
        for key in keys:
            assert await cluster.ask(key, 'deposit', amount=1, retry=True, timeout=30) == 101
        # the supervisor replaces the worker, and its keys move back to it
        await wait_for_full_membership(cluster, victim, pid)
        for key in moved:
            where = await cluster.ask(key, 'whereabouts', timeout=30)
            assert where == {'worker': victim, 'pid': cluster.worker_pid(victim)}
            assert await cluster.ask(key, 'get_balance', timeout=30) == 101
        # the other workers dropped the keys they held meanwhile
        status = {w['worker']: w['entities'] for w in await cluster.status()}
        assert sum(status.values()) == len(keys)
        assert status[victim] == len(moved)
    assert read_state(store, 'bank', 'acct-0') == {'balance': 101}


async def test_messages_in_flight_when_the_owner_dies_fail_or_are_retried(tmp_path):
    async with tractorish.open_entity_cluster(Counter, workers=3, name='flight') as cluster:
        victim = 'flight-1'
        pid = cluster.worker_pid(victim)
        plain, retried = keys_owned_by(cluster, victim, 2)
        outcomes = {}

        async def ask(key, retry):
            try:
                outcomes[key] = await cluster.ask(key, 'nap', marker=str(tmp_path / key),
                                                  retry=retry, timeout=30)
            except EntityOwnerLost as err:
                outcomes[key] = err
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, plain, False)
            nursery.start_soon(ask, retried, True)
            # both are being handled (each wrote its marker) when the worker dies
            await wait_until(lambda: (tmp_path / plain).exists()
                             and (tmp_path / retried).exists(), 'both naps to start')
            os.kill(pid, signal.SIGKILL)
        lost = outcomes[plain]
        assert isinstance(lost, EntityOwnerLost) and isinstance(lost, ConnectionError)
        assert (lost.key, lost.worker) == (plain, victim) and 'retry=True' in str(lost)
        assert outcomes[retried] == 'delivered again'  # at least once: to the new owner


async def test_a_client_in_this_process_routes_by_itself_and_follows_membership(tmp_path):
    async with tractorish.open_entity_cluster(Account, workers=3, name='zh',
                                              store=str(tmp_path / 'zh.db')) as cluster:
        async with tractorish.connect_entity_cluster('zh', refresh_interval=0.1) as client:
            assert client.view == cluster.view
            keys = [f'k{i}' for i in range(12)]
            for key in keys:
                assert await client.ask(key, 'deposit', amount=5, timeout=10) == 5
                where = await client.ask(key, 'whereabouts', timeout=10)
                assert where['worker'] == client.owner(key) == cluster.owner(key)
            victim = client.owner('k0')
            pid = cluster.worker_pid(victim)
            os.kill(pid, signal.SIGKILL)
            for key in keys:
                assert await client.ask(key, 'deposit', amount=5, retry=True, timeout=30) == 10
            await wait_for_full_membership(cluster, victim, pid)
            await wait_until(lambda: client.view == cluster.view, 'the client to follow')
            assert (await client.ask('k0', 'whereabouts', timeout=30))['worker'] == victim
            await client.tell('k0', 'deposit', amount=1)
            assert await cluster.ask('k0', 'get_balance', timeout=10) == 11


async def test_a_separate_program_sends_straight_to_each_owner():
    async with tractorish.open_entity_cluster(Account, workers=4, name='remote') as cluster:
        await cluster.ask('alice', 'deposit', amount=5, timeout=10)
        with trio.fail_after(60):
            done = await trio.run_process(
                [sys.executable, str(HERE / 'client_program.py'), 'remote', 'alice', 'bob',
                 'carol', 'dave'], cwd=HERE, capture_stdout=True, capture_stderr=True,
                check=False)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
        assert lines[0] == {'members': cluster.workers}
        by_key = {line['key']: line for line in lines[1:5]}
        assert by_key['alice']['balance'] == 15 and by_key['bob']['balance'] == 10
        for key, line in by_key.items():
            assert line['owner'] == line['answered_by'] == cluster.owner(key)
        assert lines[5] == {'error': 'ValueError'}
        assert await cluster.ask('bob', 'get_balance', timeout=10) == 10


def test_an_entity_class_in_the_program_s_main_module(tmp_path):
    done = subprocess.run([sys.executable, str(HERE / 'main_cluster_program.py')],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        'tally a: 3', 'tally b: 1', "workers: ['tallies-0', 'tallies-1']"]


async def test_no_cluster_to_connect_to_is_an_entity_error():
    async with tractorish.open_root_actor('root'):
        with pytest.raises(tractorish.EntityError, match="'ghost'"):
            async with tractorish.connect_entity_cluster('ghost', timeout=0.2):
                pass  # pragma: no cover


async def test_a_path_store_handler_parameters_named_key_and_an_unencodable_tell(tmp_path):
    async with tractorish.open_entity_cluster(Counter, workers=1,
                                              store=tmp_path / 'entities.db') as cluster:
        assert await cluster.ask('k', 'tag', key='a', method='b') == 'a/b'
        await cluster.tell('k', 'tag', key='a', method='b')
        with pytest.raises(tractorish.MsgTypeError,
                           match="a tell of 'append' to 'k' cannot be sent"):
            await cluster.tell('k', 'append', item={1, 2})
        await cluster.tell('k', 'append', item=1)
        assert await cluster.ask('k', 'items_seen') == [1]
    assert (tmp_path / 'entities.db').exists()


async def test_a_returning_worker_takes_its_keys_only_once_handed_over(tmp_path, monkeypatch):
    """A message still running on the worker that held a key while its
    owner was away delays the owner's return (here past the cluster's push
    timeout): the key is never handled by two workers at once, and the
    state the returning owner loads has that message's update."""
    from slow_entity_funcs import SlowStartCounter
    from tractorish.entities import _cluster
    monkeypatch.setattr(_cluster, 'PUSH_TIMEOUT', 0.3)
    async with tractorish.open_entity_cluster(SlowStartCounter, workers=2, name='slow',
                                              store=tmp_path / 'counters.db') as cluster:
        owner, other = cluster.workers
        key = keys_owned_by(cluster, owner, 1)[0]
        assert (await cluster.ask(key, 'get'))['worker'] == owner
        old_pid = cluster.worker_pid(owner)
        os.kill(old_pid, signal.SIGKILL)
        await wait_until(lambda: owner not in cluster.members, f'{owner} to leave')
        results = {}

        async def slow_add() -> None:  # on the other worker, across the owner's return
            results['slow'] = await cluster.ask(key, 'add', n=1, pause=3.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_add)
            await wait_until(lambda: owner in cluster.members, f'{owner} to return')
            results['quick'] = await cluster.ask(key, 'add', n=10, timeout=20)
        state = await cluster.ask(key, 'get')
        assert state['worker'] == owner and cluster.worker_pid(owner) != old_pid
        assert (results['slow'], results['quick'], state['value']) == (1, 11, 11)


async def test_a_worker_dying_while_another_waits_to_join_leaves_at_once(tmp_path, monkeypatch):
    """A join that waits for a long message does not hold up the rest of
    the membership: a worker dying meanwhile leaves the view at once."""
    from slow_entity_funcs import SlowStartCounter
    from tractorish.entities import _cluster
    monkeypatch.setattr(_cluster, 'PUSH_TIMEOUT', 0.5)
    async with tractorish.open_entity_cluster(SlowStartCounter, workers=3, name='busy',
                                              store=tmp_path / 'counters.db') as cluster:
        returning = cluster.workers[0]
        key = keys_owned_by(cluster, returning, 1)[0]
        await cluster.ask(key, 'get')
        old_pid = cluster.worker_pid(returning)
        os.kill(old_pid, signal.SIGKILL)
        await wait_until(lambda: returning not in cluster.members, f'{returning} to leave')
        holder = cluster.owner(key)
        other = next(w for w in cluster.workers if w not in (returning, holder))
        results = {}

        async def slow_add() -> None:  # holds the returning worker's join
            results['slow'] = await cluster.ask(key, 'add', n=1, pause=6.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_add)
            await wait_until(lambda: cluster.worker_pid(returning) not in (None, old_pid),
                             f'{returning} to be replaced')
            await trio.sleep(1.5)  # its module loaded, its host started: it waits to join
            os.kill(cluster.worker_pid(other), signal.SIGKILL)
            await wait_until(lambda: other not in cluster.members, f'{other} to leave',
                             seconds=2.0)
        assert results['slow'] == 1
        await wait_until(lambda: returning in cluster.members, f'{returning} to join')
        assert (await cluster.ask(key, 'get'))['value'] == 1


async def test_a_host_takes_no_view_older_than_the_cluster_when_it_started():
    """A view pushed to a worker's previous process (which it still lists)
    and delivered to its replacement is stale there: not taken."""
    from tractorish.entities import View
    from tractorish.entities._host import EntityHost
    async with tractorish.open_root_actor('host', registry_addrs=[('127.0.0.1', 1)],
                                          config=tractorish.RuntimeConfig(discovery='client')):
        async with trio.open_nursery() as nursery:
            host = EntityHost('c', Counter, None, None, nursery, min_epoch=100)
            assert await host.set_view(View(99, ['host', 'other'])) == 0
            assert host.view is None and not host.view_ready.is_set()
            assert await host.set_view(View(100, ['host', 'other'])) == 100
            assert host.view is not None and host.view.epoch == 100


async def test_wrong_arguments_are_refused_before_anything_starts():
    with pytest.raises(TypeError, match='class'):
        async with tractorish.open_entity_cluster(Counter(key='x'), workers=1):
            pass  # pragma: no cover

    class Local:
        pass
    with pytest.raises(TypeError, match='top level'):
        async with tractorish.open_entity_cluster(Local, workers=1):
            pass  # pragma: no cover
    with pytest.raises(ValueError):
        async with tractorish.open_entity_cluster(Counter, workers=0):
            pass  # pragma: no cover
    with pytest.raises(ValueError):
        async with tractorish.open_entity_cluster(Counter, passivate_after=0):
            pass  # pragma: no cover
