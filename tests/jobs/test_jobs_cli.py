"""``tractorish jobs ls|show|retry``: output, and exit status 0, 1 (one line
on standard error) or 2 (usage)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

import job_funcs as jf
import tractorish
from tractorish.jobs import open_job_queue

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'tractorish', 'jobs', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


async def _fill(path: str) -> None:
    async with tractorish.open_actor_pool(1, enable_modules=['job_funcs'], name='cli') as pool:
        async with open_job_queue(pool, path) as jobs:
            await jobs.run(jf.compute, id='good', i=7)
            with pytest.raises(tractorish.RemoteActorError):
                await jobs.run(jf.fail, id='bad', text='card declined')
    async with open_job_queue(None, path) as jobs:
        await jobs.submit(jf.compute, id='later', i=8)


@pytest.fixture
def store(tmp_path) -> str:
    """A store with a done job, a failed one and a pending one (the tests
    themselves are plain functions: they only run the command)."""
    path = str(tmp_path / 'jobs.db')
    trio.run(_fill, path)
    return path


def test_ls_show_and_retry(store):
    out = cli('ls', '--store', store)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ['ID', 'STATUS', 'ATTEMPTS', 'WORKER', 'FUNCTION']
    assert lines[1].split() == ['good', 'done', '1', 'cli-0', 'job_funcs:compute']
    assert lines[2].split() == ['bad', 'failed', '1', 'cli-0', 'job_funcs:fail']
    assert lines[3].split() == ['later', 'pending', '0', '-', 'job_funcs:compute']
    assert lines[4] == '3 jobs in the store: 1 pending, 0 running, 1 done, 1 failed'
    assert cli('ls', '--store', store, '--status', 'failed', '--limit', '5'
               ).stdout.splitlines()[1].split()[:2] == ['bad', 'failed']

    shown = cli('show', 'good', '--store', store).stdout
    assert 'arguments: {"i": 7}' in shown and 'result:    {"i": 7, "square": 49}' in shown
    assert 'attempt 1: done on cli-0 (held by ' in shown
    shown = cli('show', 'bad', '--store', store).stdout
    assert 'error:     InvoiceError: card declined' in shown
    assert 'raise InvoiceError(text)' in shown  # the remote traceback

    retried = cli('retry', 'bad', '--store', store)
    assert retried.returncode == 0
    assert retried.stdout.strip() == (f"job 'bad' is pending again: the next program that "
                                      f"works {store} runs it")
    assert cli('retry', 'later', '--store', store).stdout.strip() == \
        "job 'later' is pending already"
    assert cli('show', 'bad', '--store', store).stdout.splitlines()[3] == 'status:    pending'


def test_failures_are_one_line_with_status_1(store, tmp_path):
    for args, message in [
            (('show', 'nope', '--store', store), f"no job with id 'nope' in {store}"),
            (('retry', 'good', '--store', store),
             "job 'good' is done, and a finished job never runs again"),
            (('ls', '--store', str(tmp_path / 'missing.db')),
             f'no job store at {tmp_path / "missing.db"}')]:
        out = cli(*args)
        assert out.returncode == 1, out
        assert out.stderr.startswith('tractorish jobs: ') and message in out.stderr
        assert len(out.stderr.splitlines()) == 1 and out.stdout == ''
    assert not (tmp_path / 'missing.db').exists()


def test_usage_errors_exit_2():
    for args, message in [((), 'the following arguments are required: ACTION'),
                          (('show',), 'the following arguments are required: ID'),
                          (('ls', '--status', 'lost'), "invalid choice: 'lost'"),
                          (('ls', '--limit', '0'), 'must be at least 1')]:
        out = cli(*args)
        assert out.returncode == 2 and message in out.stderr, out
