"""``tractorish entities ls NAME``: a cluster's workers and their live
entities; exit status 0, 1 (one line on standard error) or 2 (usage)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

import tractorish
from entity_funcs import Counter
from tractorish.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


async def cli(*args: str) -> subprocess.CompletedProcess:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, '-m', 'tractorish', 'entities', *args], cwd=ROOT,
            capture_stdout=True, capture_stderr=True, check=False)


async def test_ls_shows_each_worker_and_its_live_entities(reg_addr):
    registry = f'{reg_addr[0]}:{reg_addr[1]}'
    async with tractorish.open_entity_cluster(Counter, workers=3, name='shop') as cluster:
        for i in range(30):
            await cluster.ask(f'item-{i}', 'add', timeout=10)
        per_worker = {w: 0 for w in cluster.workers}
        for i in range(30):
            per_worker[cluster.owner(f'item-{i}')] += 1

        done = await cli('ls', 'shop', '--registry', registry)
        assert done.returncode == 0, done.stderr.decode()
        lines = done.stdout.decode().splitlines()
        assert lines[0].split() == ['WORKER', 'PID', 'ENTITIES', 'HANDLED', 'PASSIVATED']
        rows = {cells[0]: cells for cells in (line.split() for line in lines[1:4])}
        assert set(rows) == set(cluster.workers)
        for worker, cells in rows.items():
            assert cells[1] == str(cluster.worker_pid(worker))
            assert cells[2] == cells[3] == str(per_worker[worker])
        assert lines[4] == ("3 workers of 'shop', 30 live entities; membership: "
                            "shop-0, shop-1, shop-2")

        # a cluster nobody runs: one line, exit 1
        done = await cli('ls', 'nothing', '--registry', registry, '--timeout', '2')
        assert done.returncode == 1
        assert done.stderr.decode().splitlines() == [
            "tractorish entities: no worker of the entity cluster 'nothing' is registered "
            "(none named nothing-0, nothing-1 ...)"]


async def test_wrong_arguments_exit_2_with_usage():
    for args, message in ((['ls'], 'required: NAME'), ([], 'required: ACTION'),
                          (['ls', 'x', '--timeout', '0'], 'more than 0 seconds'),
                          (['ls', 'x', '--registry', 'nowhere:port'], 'not an address')):
        done = await cli(*args)
        assert done.returncode == 2, args
        assert message in done.stderr.decode() and 'usage:' in done.stderr.decode()


async def test_help_and_a_registry_that_does_not_answer():
    for args in (['--help'], ['ls', '--help']):
        done = await cli(*args)
        assert done.returncode == 0 and 'usage: tractorish entities' in done.stdout.decode()
    nobody = free_port()
    done = await cli('ls', 'shop', '--registry', f'127.0.0.1:{nobody}')
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith('tractorish entities: nothing answers at')


async def test_a_registry_that_refuses_or_stays_silent_says_so():
    """Not 'no worker registered': the registry itself is the problem."""
    import os
    import socket
    async with tractorish.open_root_actor('reg', registry_addrs=[('127.0.0.1', free_port())]):
        where = tractorish.current_actor().registry_addrs[0]
        wrong = await trio.run_process(
            [sys.executable, '-m', 'tractorish', 'entities', 'ls', 'shop', '--registry',
             f'{where[0]}:{where[1]}'], cwd=ROOT, capture_stdout=True, capture_stderr=True,
            check=False, env={**os.environ, 'TRACTORISH_SECRET': 'not ours'})
    assert wrong.returncode == 1
    assert 'refused' in wrong.stderr.decode() and 'no worker' not in wrong.stderr.decode()
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(16)
        done = await cli('ls', 'shop', '--registry', f'127.0.0.1:{silent.getsockname()[1]}',
                         '--timeout', '1')
    assert done.returncode == 1
    assert 'no answer' in done.stderr.decode() and 'no worker' not in done.stderr.decode()
