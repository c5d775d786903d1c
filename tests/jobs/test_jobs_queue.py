"""Durable jobs on a real pool: submit, result, idempotency by id, stored
errors, crashed workers, unencodable values, later programs."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

import job_funcs as jf
import tractorish
from tractorish import (ActorCrashed, JobConflict, JobError, JobNotFound, MsgTypeError,
                        RemoteActorError)
from tractorish.jobs import open_job_queue

MODS = ['job_funcs']


def open_pool(size: int = 2, **kwargs):
    return tractorish.open_actor_pool(size, enable_modules=MODS, name='jq', **kwargs)


async def test_a_job_runs_once_by_id_across_programs(store_url, tmp_path):
    runs = tmp_path / 'runs'
    async with open_pool() as pool:
        async with open_job_queue(pool, store_url, poll_interval=0.2) as jobs:
            job = await jobs.submit(jf.count_run, id='invoice-42', path=str(runs), value=42)
            assert job.id == 'invoice-42' and job.function == 'job_funcs:count_run'
            assert await job.result() == 42
            assert job.status == 'done' and job.done and job.attempt == 1
            assert job.worker in pool.workers
            # the same id and call: the same job, not run again
            again = await jobs.submit(jf.count_run, id='invoice-42', value=42, path=str(runs))
            assert again is job
            assert await jobs.run(jf.count_run, id='invoice-42', path=str(runs), value=42) == 42
            with pytest.raises(JobConflict, match="job 'invoice-42' exists with other "
                                                  "arguments"):
                await jobs.submit(jf.count_run, id='invoice-42', path=str(runs), value=43)
            with pytest.raises(JobConflict, match='as a call of job_funcs:count_run, not of '
                                                  'job_funcs:compute'):
                await jobs.submit(jf.compute, id='invoice-42', i=1)
            with pytest.raises(JobNotFound, match="no job with id 'invoice-7'"):
                await jobs.get('invoice-7')
    # a later program, with a pool, finds it done and does not run it again
    async with open_pool(1) as pool:
        async with open_job_queue(pool, store_url, poll_interval=0.2) as jobs:
            assert await jobs.run(jf.count_run, id='invoice-42', path=str(runs), value=42) == 42
    # and one without a pool reads it
    async with open_job_queue(None, store_url) as jobs:
        job = await jobs.get('invoice-42')
        assert (job.status, job.kwargs, await job.result()) == \
            ('done', {'path': str(runs), 'value': 42}, 42)
        [attempt] = await job.attempts()
        assert (attempt.number, attempt.outcome) == (1, 'done')
    assert runs.read_text() == '42\n'


async def test_a_stored_error_is_raised_by_later_programs(store_url):
    async with open_pool() as pool:
        async with open_job_queue(pool, store_url) as jobs:
            job = await jobs.submit(jf.fail, id='bad', text='no such customer')
            with pytest.raises(RemoteActorError) as info:
                await job.result()
            assert job.status == 'failed'
    err = info.value
    assert (err.type_str, err.message, err.boxed_type) == \
        ('InvoiceError', 'no such customer', jf.InvoiceError)
    assert 'raise InvoiceError(text)' in err.tb_str and err.src_uid[0].startswith('jq-')
    async with open_job_queue(None, store_url) as jobs:
        job = await jobs.get('bad')
        assert job.status == 'failed'
        with pytest.raises(RemoteActorError) as later:
            await job.result()
        assert (later.value.type_str, later.value.message, later.value.tb_str) == \
            (err.type_str, err.message, err.tb_str)
        with pytest.raises(JobNotFound):
            await jobs.get('never')


async def test_unencodable_values_are_refused_or_stored_as_errors(tmp_path):
    store = tmp_path / 'jobs.db'
    async with open_pool(1) as pool:
        async with open_job_queue(pool, store) as jobs:
            with pytest.raises(MsgTypeError, match="the arguments of job 'x' cannot be "
                                                   "stored: cannot encode to msgpack"):
                await jobs.submit(jf.compute, id='x', i={1, 2})
            with pytest.raises(JobNotFound):
                await jobs.get('x')  # nothing was stored
            with pytest.raises(TypeError, match='a job id is a non-empty string'):
                await jobs.submit(jf.compute, id=7, i=1)
            with pytest.raises(TypeError, match='not a module-level function'):
                await jobs.submit(lambda: 1, id='y')
            with pytest.raises(TypeError, match=r"arguments named \['receiver', 'retries'\]"):
                await jobs.submit(jf.compute, id='w', i=1, receiver='jq-0', retries=2)
            with pytest.raises(JobNotFound):
                await jobs.get('w')  # refused before it was stored
            job = await jobs.submit(jf.unencodable_result, id='z')
            with pytest.raises(RemoteActorError) as info:
                await job.result()
    # the worker could not send the set: the error says so, and is stored
    assert 'msgpack' in str(info.value) or 'encode' in str(info.value)


async def test_queue_arguments_are_checked_before_the_store_is_opened(tmp_path):
    store = tmp_path / 'jobs.db'
    with pytest.raises(TypeError, match='takes an ActorPool .or None. first'):
        async with open_job_queue(str(store)):
            pass
    with pytest.raises(ValueError, match='max_in_flight must be an int >= 1, not 2.5'):
        async with open_job_queue(None, store, max_in_flight=2.5):
            pass
    with pytest.raises(ValueError, match='retries must be an int >= 0, not -1'):
        async with open_job_queue(None, store, retries=-1):
            pass
    assert not store.exists()


async def test_a_worker_killed_mid_call_has_the_job_run_again_elsewhere(store_url, tmp_path):
    async with open_pool(3) as pool:
        async with open_job_queue(pool, store_url, poll_interval=0.2) as jobs:
            job = await jobs.submit(jf.die_once, id='fragile', marker=str(tmp_path / 'died'))
            assert await job.result() == 'survived'
            first, second = await job.attempts()
            assert (first.number, first.outcome, second.number, second.outcome) == \
                (1, 'crashed', 2, 'done')
            assert first.worker != second.worker
            assert 'SIGKILL' in first.detail or 'killed' in first.detail
            assert job.attempt == 2 and job.worker == second.worker
            assert jobs.statistics().crashes == 1


async def test_a_job_that_always_kills_its_worker_fails_after_its_retries(tmp_path):
    store = tmp_path / 'jobs.db'
    async with open_pool(2) as pool:
        async with open_job_queue(pool, store, retries=1) as jobs:
            job = await jobs.submit(jf.always_die, id='doomed')
            with pytest.raises(RemoteActorError) as info:
                await job.result()
            assert info.value.type_str == 'ActorCrashed'
            assert info.value.boxed_type is ActorCrashed
            assert [a.outcome for a in await job.attempts()] == ['crashed', 'crashed']
    async with open_job_queue(None, store) as jobs:
        job = await jobs.retry('doomed')
        assert (job.status, job.attempt) == ('pending', 2)
        assert (await jobs.retry('doomed')).status == 'pending'  # already
        with pytest.raises(JobNotFound):
            await jobs.retry('nobody')


async def test_leaving_the_block_gives_running_jobs_back(tmp_path):
    store = tmp_path / 'jobs.db'
    async with open_pool(2) as pool:
        async with open_job_queue(pool, store, poll_interval=0.1) as jobs:
            job = await jobs.submit(jf.sleep_forever, id='long')
            done = await jobs.submit(jf.compute, id='short', i=3)
            assert await done.result() == {'i': 3, 'square': 9}
            while job.status != 'running':
                await trio.sleep(0.05)
                await job.refresh()
            assert job.worker in pool.workers and job.attempt == 1
            with pytest.raises(JobError, match="job 'short' is done, and a finished job "
                                               "never runs again"):
                await jobs.retry('short')
            with pytest.raises(JobError, match="job 'long' is running"):
                await jobs.retry('long')
    async with open_job_queue(None, store) as jobs:
        job = await jobs.get('long')
        assert (job.status, job.worker) == ('pending', None)
        [attempt] = await job.attempts()
        assert attempt.outcome == 'released'
        assert [j.id for j in await jobs.list()] == ['long', 'short']
        assert [j.id for j in await jobs.list('done')] == ['short']
        assert await jobs.counts() == {'pending': 1, 'running': 0, 'done': 1, 'failed': 0}
    with pytest.raises(JobError, match='is closed'):
        await jobs.get('long')


async def test_a_later_program_takes_up_jobs_left_pending(tmp_path):
    store = tmp_path / 'jobs.db'
    async with _created(store):
        pass
    async with open_job_queue(None, store, poll_interval=0.1) as jobs:
        # recorded by a program without workers; run by the next one that has them
        queued = [await jobs.submit(jf.compute, id=f'q{i}', i=i) for i in range(5)]
        assert {job.status for job in queued} == {'pending'}
        waiter = queued[0]
        async with open_pool(2) as pool:
            async with open_job_queue(pool, store, poll_interval=0.1):
                with trio.fail_after(30):
                    assert await waiter.result() == {'i': 0, 'square': 0}
                    for job in queued[1:]:
                        await job.result()


def _created(store: Path):
    """An empty store (as a program with a pool would leave it)."""
    from contextlib import asynccontextmanager

    from tractorish.jobs._sqlite import SqliteJobStore

    @asynccontextmanager
    async def create():
        made = await SqliteJobStore.open(str(store), exclusive=False, create=True)
        await made.aclose()
        yield
    return create()


async def test_an_error_in_the_block_is_raised_as_itself(tmp_path):
    with pytest.raises(ValueError, match='not a job error'):
        async with open_pool(1) as pool:
            async with open_job_queue(pool, tmp_path / 'jobs.db') as jobs:
                await jobs.submit(jf.sleep_forever, id='long')
                raise ValueError('not a job error')
    with pytest.raises(ValueError, match='lease, poll_interval and lock_timeout must be'):
        async with open_job_queue(None, tmp_path / 'jobs.db', lease=0):
            pass
