"""Programs that crash: 300 durable jobs on a 3-worker pool, the program
SIGKILLed midway and started again, workers SIGKILLed at random, two
programs sharing one PostgreSQL queue; every job ends ``done`` exactly once,
with the right value, and none is lost."""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Counter, List, Optional, Set

import psutil
import pytest
import trio

from tractorish.jobs import JobStoreError, open_job_queue
from tractorish.testing import free_port

PROGRAM = Path(__file__).with_name('jobs_program.py')
N = 300


class Program:
    """``jobs_program.py`` running in a subprocess, its output in a file."""

    def __init__(self, process: trio.Process, out: Path) -> None:
        self.process = process
        self.out = out

    @property
    def output(self) -> str:
        return self.out.read_text()

    def kill(self) -> List[psutil.Process]:
        """SIGKILL the program; return what it had started (which dies with it)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            children = []
        self.process.kill()
        return children

    def descendants(self) -> Set[int]:
        try:
            return {p.pid for p in psutil.Process(self.process.pid).children(recursive=True)}
        except psutil.Error:
            return set()


# every program a test started, ended by the fixture below on every path
_STARTED: List[Program] = []


@pytest.fixture(autouse=True)
def _programs_ended():
    yield
    while _STARTED:
        program = _STARTED.pop()
        if program.process.returncode is None:
            for child in program.kill():  # (its actors die with it: no wait)
                try:
                    child.wait(10)
                except psutil.Error:
                    pass
        try:
            os.waitpid(program.process.pid, 0)
        except ChildProcessError:  # reaped already
            pass


async def start(store: str, tmp_path: Path, name: str, *, n: int = N, delay: float = 0.03,
                pid_dir: Optional[Path] = None, lease: float = 30.0) -> Program:
    out = tmp_path / f'{name}-{random.randrange(1 << 30)}.out'
    args = [sys.executable, str(PROGRAM), store, str(n), '--delay', str(delay),
            '--lease', str(lease), '--name', name]
    if pid_dir is not None:
        args += ['--pid-dir', str(pid_dir)]
    # a registry of its own: programs run and die independently
    env = dict(os.environ, TRACTORISH_REGISTRY=f'127.0.0.1:{free_port()}')
    with open(out, 'w') as sink:
        process = await trio.lowlevel.open_process(args, stdout=sink, stderr=subprocess.STDOUT,
                                                   env=env)
    program = Program(process, out)
    _STARTED.append(program)
    return program


async def finish(program: Program, timeout: float = 60) -> str:
    with trio.fail_after(timeout):
        code = await program.process.wait()
    assert code == 0, program.output
    return program.output


async def gone(processes: List[psutil.Process]) -> None:
    """Wait until these processes have exited (they die with their program)."""
    _, alive = await trio.to_thread.run_sync(psutil.wait_procs, processes, 10)
    assert not alive, f'still alive after their program was killed: {alive}'


async def done_jobs(store: str) -> List[Any]:
    try:
        async with open_job_queue(None, store) as jobs:
            return await jobs.list('done')
    except JobStoreError:  # not created yet
        return []


async def wait_until(store: str, done: int, owners: int = 1, timeout: float = 60) -> None:
    """Until ``done`` jobs are done, by at least ``owners`` programs."""
    with trio.fail_after(timeout):
        while True:
            finished = await done_jobs(store)
            if len(finished) >= done and len({job.owner for job in finished}) >= owners:
                return
            await trio.sleep(0.05)


async def check_every_job_done_once(store: str, n: int = N) -> Counter[str]:
    """Every job is done, once, with its value; return the attempts' outcomes."""
    outcomes: Counter[str] = collections.Counter()
    async with open_job_queue(None, store) as jobs:
        listed = await jobs.list()
        assert sorted(job.id for job in listed) == [f'job-{i:04d}' for i in range(n)]
        for job in listed:
            i = int(job.id.split('-')[1])
            assert job.status == 'done' and await job.result() == {'i': i, 'square': i * i}
            attempts = await job.attempts()
            assert [a.number for a in attempts] == list(range(1, job.attempt + 1))
            assert [a.outcome for a in attempts].count('done') == 1, attempts
            assert attempts[-1].outcome == 'done' and attempts[-1].owner == job.owner
            assert {a.outcome for a in attempts[:-1]} <= {'lost', 'crashed', 'released'}
            outcomes.update(a.outcome for a in attempts)
            outcomes.update(f'owner {a.owner}' for a in attempts if a.outcome == 'done')
    return outcomes


def owners(outcomes: Counter[str]) -> Set[str]:
    return {key[len('owner '):] for key in outcomes if key.startswith('owner ')}


async def test_a_program_killed_midway_loses_no_job(tmp_path):
    store = str(tmp_path / 'jobs.db')
    first = await start(store, tmp_path, 'first')
    await wait_until(store, 100)
    await gone(first.kill())
    await first.process.wait()
    assert 'all 300 jobs done' in await finish(await start(store, tmp_path, 'second'))
    outcomes = await check_every_job_done_once(store)
    assert len(owners(outcomes)) == 2  # each program finished some
    assert outcomes['done'] == N and outcomes['crashed'] == 0


class WorkerKiller:
    """SIGKILLs, now and then, a worker that has run a job (its pid is in
    ``pid_dir``) of the program it is given."""

    def __init__(self, pid_dir: Path) -> None:
        self.pid_dir = pid_dir
        self.kills = 0

    async def run(self, program: Program) -> None:
        while program.process.returncode is None:
            await trio.sleep(random.uniform(0.1, 0.25))
            workers = [int(p.name) for p in self.pid_dir.iterdir()]
            alive = [pid for pid in workers if pid in program.descendants()]
            if alive:
                try:
                    os.kill(random.choice(alive), signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass


async def test_workers_killed_at_random_and_a_killed_program_lose_no_job(tmp_path):
    store, pid_dir = str(tmp_path / 'jobs.db'), tmp_path / 'pids'
    pid_dir.mkdir()
    killer = WorkerKiller(pid_dir)
    async with trio.open_nursery() as nursery:
        first = await start(store, tmp_path, 'first', pid_dir=pid_dir)
        nursery.start_soon(killer.run, first)
        await wait_until(store, 100)
        await gone(first.kill())
        await first.process.wait()
        second = await start(store, tmp_path, 'second', pid_dir=pid_dir)
        nursery.start_soon(killer.run, second)
        assert 'all 300 jobs done' in await finish(second)
    outcomes = await check_every_job_done_once(store)
    assert killer.kills >= 2 and outcomes['done'] == N


async def test_two_programs_share_a_postgres_queue_and_one_is_killed(pg_url, tmp_path):
    first = await start(pg_url, tmp_path, 'first', delay=0.05, lease=2.0)
    second = await start(pg_url, tmp_path, 'second', delay=0.05, lease=2.0)
    await wait_until(pg_url, 100, owners=2)  # both are at work
    await gone(first.kill())
    await first.process.wait()
    assert 'all 300 jobs done' in await finish(second)
    outcomes = await check_every_job_done_once(pg_url)
    programs = owners(outcomes)
    assert len(programs) == 2 and outcomes['done'] == N
    # what the killed program held was taken over once its lease expired
    async with open_job_queue(None, pg_url) as jobs:
        lost = [attempt for job in await jobs.list() for attempt in await job.attempts()
                if attempt.outcome == 'lost']
    assert lost  # the killed program was running some when it died
    for attempt in lost:
        assert f'/{first.process.pid}/' in attempt.owner
        assert 'stopped renewing its lease' in attempt.detail


@pytest.mark.stress
@pytest.mark.timeout(600)
async def test_many_jobs_through_repeated_crashes(store_url, tmp_path):
    """2,000 jobs; the program is killed four times at growing counts, and
    workers are killed at random all along."""
    n, pid_dir = 2000, tmp_path / 'pids'
    pid_dir.mkdir()
    killer = WorkerKiller(pid_dir)
    async with trio.open_nursery() as nursery:
        for round, threshold in enumerate((300, 700, 1100, 1500)):
            program = await start(store_url, tmp_path, f'round{round}', n=n, delay=0.005,
                                  pid_dir=pid_dir, lease=2.0)
            nursery.start_soon(killer.run, program)
            await wait_until(store_url, threshold, timeout=300)
            await gone(program.kill())
            await program.process.wait()
        last = await start(store_url, tmp_path, 'last', n=n, delay=0.005, pid_dir=pid_dir,
                           lease=2.0)
        nursery.start_soon(killer.run, last)
        assert f'all {n} jobs done' in await finish(last, timeout=300)
    outcomes = await check_every_job_done_once(store_url, n)
    assert outcomes['done'] == n and len(owners(outcomes)) == 5
