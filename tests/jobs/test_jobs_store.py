"""The job store, without actors: schema, claims and leases, group commit,
and the stores that must be refused (locked, corrupt, foreign, newer)."""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Dict, List

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from tractorish.jobs import JobStoreError, open_job_queue
from tractorish.jobs._postgres import PostgresJobStore
from tractorish.jobs._sqlite import SqliteJobStore
from tractorish.jobs._store import SCHEMA_VERSION, Claim, SqlJobStore

FN = 'job_funcs:compute'


async def open_store(url: str, **kwargs) -> SqlJobStore:
    """A store that several of these may open at once (no program lock)."""
    if url.startswith('postgresql://'):
        return await PostgresJobStore.open(url, create=True, **kwargs)
    return await SqliteJobStore.open(url, exclusive=False, create=True, **kwargs)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_schema_version(url: str, version: int) -> None:
    if url.startswith('postgresql://'):
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE tractorish_meta SET value = %s WHERE key = 'schema_version'",
                         (str(version),))
        return
    with sqlite3.connect(url) as conn:
        conn.execute("UPDATE tractorish_meta SET value = ? WHERE key = 'schema_version'",
                     (str(version),))
    conn.close()


async def test_a_new_store_has_a_versioned_schema(store_url):
    store = await open_store(store_url)
    try:
        record, created, _ = await store.insert('a', FN, b'\x80')
        assert created and record.status == 'pending' and record.attempts == 0
        assert await store.functions() == [FN]
        again, created, _ = await store.insert('a', FN, b'\x81')
        assert not created and again == record  # the first one stays
        assert (await store.get('a')) == record and await store.get('b') is None
        assert (await store.counts())['pending'] == 1
    finally:
        await store.aclose()
    if not store_url.startswith('postgresql://'):
        with sqlite3.connect(store_url) as conn:
            assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
            assert conn.execute("SELECT value FROM tractorish_meta WHERE key = "
                                "'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        conn.close()


async def test_claims_are_fenced_and_an_expired_lease_is_taken_over(store_url):
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        for job_id in ('j1', 'j2'):
            await a.insert(job_id, FN, b'\x80')
        [first] = await a.claim(Claim('A', [FN], ['w0'], 30))
        assert (first.id, first.status, first.owner, first.worker, first.attempts) == \
            ('j1', 'running', 'A', 'w0', 1)
        # j1 is held: B gets only j2, then nothing
        assert [r.id for r in await b.claim(Claim('B', [FN], ['w1', 'w2'], 30))] == ['j2']
        assert await b.claim(Claim('B', [FN], ['w1'], 30)) == []
        assert await b.claim(Claim('B', ['other:fn'], ['w1'], 30)) == []
        assert await a.renew('A', lease=-1) == 1  # A's lease runs out
        assert await b.claim(Claim('B', [FN], ['w1'], 30)) == []  # when polling, only
        [taken] = await b.claim(Claim('B', [FN], ['w1'], 30, expired=True))
        assert (taken.id, taken.owner, taken.attempts) == ('j1', 'B', 2)
        # A's outcome comes too late: it changes nothing
        assert await a.finish('j1', 'A', 1, 'done', result=b'\x01') == (None, [])
        assert await a.crashed('j1', 'A', 1, 'its worker died', b'\x80', 'w9', 10, 30) is None
        done, _ = await b.finish('j1', 'B', 2, 'done', result=b'\x02')
        assert done is not None and (done.status, done.result) == ('done', b'\x02')
        attempts = await a.attempts('j1')
        assert [(t.number, t.owner, t.outcome) for t in attempts] == \
            [(1, 'A', 'lost'), (2, 'B', 'done')]
        assert 'A stopped renewing its lease' in attempts[0].detail
        # B gives back what it holds
        assert await b.release('B', 'closing') == 1
        j2 = await a.get('j2')
        assert (j2.status, j2.owner) == ('pending', None)
        assert [t.outcome for t in await a.attempts('j2')] == ['released']
    finally:
        await a.aclose()
        await b.aclose()


async def test_concurrent_claims_never_take_a_job_twice(store_url):
    stores = [await open_store(store_url) for _ in range(3)]
    ids = [f'j{i:03d}' for i in range(150)]
    taken: Dict[str, List[str]] = {}
    try:
        for job_id in ids:
            await stores[0].insert(job_id, FN, b'\x80')

        async def work(index: int) -> None:
            owner = f'program-{index}'
            taken[owner] = []
            while True:
                claimed = await stores[index].claim(Claim(owner, [FN], ['w'] * 4, 30))
                if not claimed:
                    return
                taken[owner] += [r.id for r in claimed]

        async with trio.open_nursery() as nursery:
            for index in range(3):
                nursery.start_soon(work, index)
    finally:
        for store in stores:
            await store.aclose()
    every = [job_id for claimed in taken.values() for job_id in claimed]
    assert sorted(every) == ids  # each job once, none left


async def test_group_commit_keeps_a_failed_call_apart(tmp_path):
    store = await open_store(str(tmp_path / 'jobs.db'))
    sizes: List[int] = []
    run_batch = store._run_batch
    store._run_batch = lambda batch: (sizes.append(len(batch)), run_batch(batch))[1]

    def broken(cur, now):
        cur.execute("INSERT INTO tractorish_jobs (id) VALUES ('incomplete')")  # NOT NULLs

    errors = []

    async def insert(i: int) -> None:
        await store.insert(f'j{i}', FN, b'\x80')

    async def fail() -> None:
        try:
            await store._call(broken)
        except JobStoreError as err:
            errors.append(err)
    try:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(insert, i)
            nursery.start_soon(fail)
            for i in range(20, 40):
                nursery.start_soon(insert, i)
        assert (await store.counts())['pending'] == 40
        assert await store.get('incomplete') is None
        assert len(errors) == 1 and 'NOT NULL' in str(errors[0])
        assert max(sizes) > 1  # grouped: fewer commits than calls
    finally:
        await store.aclose()


class GatedBatches:
    """The store's transactions, each held in its thread until let go; and
    inserts that a test may cancel (``scopes``), with their ``results``."""

    def __init__(self, store: SqlJobStore, held: int) -> None:
        self.store = store
        self.results: Dict[str, tuple] = {}
        self.scopes: Dict[str, trio.CancelScope] = {}
        self.entered = [threading.Event() for _ in range(held)]
        self.gates = [threading.Event() for _ in range(held)]
        self._count = 0
        self._run_batch = store._run_batch
        store._run_batch = self._gated

    def _gated(self, batch) -> None:
        index, self._count = self._count, self._count + 1
        if index < len(self.gates):
            self.entered[index].set()
            self.gates[index].wait(10)
        self._run_batch(batch)

    async def wait_entered(self, index: int) -> None:
        assert await trio.to_thread.run_sync(self.entered[index].wait, 10)

    async def insert(self, job_id: str) -> None:
        with trio.CancelScope() as self.scopes[job_id]:
            self.results[job_id] = await self.store.insert(job_id, FN, b'\x80')


async def test_a_call_cancelled_once_a_transaction_took_it_gets_what_it_did(tmp_path):
    """Cancelled while another call's transaction runs it, a call still
    returns what it did: its caller has a job inserted and jobs claimed to
    act on (a submit starts them)."""
    store = await open_store(str(tmp_path / 'jobs.db'))
    batches = GatedBatches(store, held=2)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.counts)  # the first transaction, held
            await batches.wait_entered(0)
            nursery.start_soon(batches.insert, 'b')
            await wait_all_tasks_blocked()
            nursery.start_soon(batches.insert, 'c')
            await wait_all_tasks_blocked()
            batches.gates[0].set()  # b's transaction takes b and c, held
            await batches.wait_entered(1)
            batches.scopes['c'].cancel()
            await wait_all_tasks_blocked()
            batches.gates[1].set()
        assert await store.get('c') is not None
        record, created, _ = batches.results['c']  # not lost to the cancellation
        assert record.id == 'c' and created
    finally:
        await store.aclose()


async def test_a_transaction_whose_leader_is_cancelled_still_runs(tmp_path):
    """The call that takes the queued calls into its transaction runs them
    even if it is cancelled as it starts: they are other callers' too."""
    store = await open_store(str(tmp_path / 'jobs.db'))
    batches = GatedBatches(store, held=1)

    async def first_then_cancel_b() -> None:
        await store.counts()  # hands the lock to b, which has not run yet
        batches.scopes['b'].cancel()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first_then_cancel_b)
            await batches.wait_entered(0)
            nursery.start_soon(batches.insert, 'b')
            await wait_all_tasks_blocked()
            nursery.start_soon(batches.insert, 'c')
            await wait_all_tasks_blocked()
            batches.gates[0].set()
        assert [batches.results[job_id][0].id for job_id in 'bc'] == ['b', 'c']
        assert (await store.counts())['pending'] == 2
    finally:
        await store.aclose()


async def test_one_program_at_a_time_works_a_sqlite_store(tmp_path):
    path = str(tmp_path / 'jobs.db')
    first = await SqliteJobStore.open(path, exclusive=True, create=True)
    try:
        with pytest.raises(JobStoreError, match=r'is locked: another program works it '
                                                r'\(pid \d+ on .*PostgreSQL'):
            await SqliteJobStore.open(path, exclusive=True, create=True, lock_timeout=0.2)
        # readers need no lock
        async with open_job_queue(None, path) as jobs:
            assert await jobs.list() == []
    finally:
        await first.aclose()
    second = await SqliteJobStore.open(path, exclusive=True, create=True, lock_timeout=0.2)
    await second.aclose()


async def test_a_write_transaction_held_elsewhere_is_a_clear_error(tmp_path):
    path = tmp_path / 'jobs.db'
    store = await open_store(str(path))
    await store.insert('kept', FN, b'\x80')
    await store.claim(Claim('gone', [FN], ['w0'], 30))
    await store.aclose()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute('BEGIN IMMEDIATE')
    try:
        store = await SqliteJobStore.open(str(path), exclusive=True, create=True,
                                          lock_timeout=0.2)
        with pytest.raises(JobStoreError, match='is locked: another process held a write '
                                                'transaction'):
            await store.recover('me')
        await store.aclose()
    finally:
        other.execute('ROLLBACK')
        other.close()
    store = await open_store(str(path))
    assert (await store.get('kept')).status == 'running'  # untouched
    await store.aclose()


async def test_a_postgres_table_locked_elsewhere_is_a_clear_error(pg_url):
    import psycopg
    store = await open_store(pg_url)
    await store.aclose()
    with psycopg.connect(pg_url) as other:
        other.execute('LOCK TABLE tractorish_jobs IN ACCESS EXCLUSIVE MODE')
        with pytest.raises(JobStoreError, match='is locked: another session held a lock'):
            await PostgresJobStore.open(pg_url, create=True, lock_timeout=0.3)
        other.rollback()


async def test_a_corrupt_file_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / 'jobs.db'
    path.write_bytes(b'SQLite format 3\x00' + bytes(range(256)) * 16)
    before = digest(path)
    with pytest.raises(JobStoreError, match='is corrupt'):
        async with open_job_queue(None, path):
            pass
    with pytest.raises(JobStoreError, match='is corrupt'):
        await SqliteJobStore.open(str(path), exclusive=True, create=True)
    assert digest(path) == before


async def test_another_applications_database_is_refused(tmp_path):
    path = tmp_path / 'jobs.db'
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE invoices (id INTEGER PRIMARY KEY)')
    conn.close()
    before = digest(path)
    with pytest.raises(JobStoreError, match='not a tractorish job store .*invoices.*refusing'):
        await SqliteJobStore.open(str(path), exclusive=True, create=True)
    assert digest(path) == before


async def test_a_newer_schema_is_refused_and_left_as_it_is(store_url):
    store = await open_store(store_url)
    await store.insert('kept', FN, b'\x80')
    await store.aclose()
    set_schema_version(store_url, SCHEMA_VERSION + 1)
    sqlite_path = None if store_url.startswith('postgresql://') else Path(store_url)
    before = digest(sqlite_path) if sqlite_path else None
    with pytest.raises(JobStoreError, match=f'schema version {SCHEMA_VERSION + 1}, newer than '
                                            f'this tractorish knows'):
        async with open_job_queue(None, store_url):
            pass
    if sqlite_path:
        with pytest.raises(JobStoreError, match='newer'):
            await SqliteJobStore.open(store_url, exclusive=True, create=True)
        assert digest(sqlite_path) == before
    else:
        with pytest.raises(JobStoreError, match='newer'):
            await PostgresJobStore.open(store_url, create=True)
    set_schema_version(store_url, SCHEMA_VERSION)
    store = await open_store(store_url)
    assert (await store.get('kept')).status == 'pending'
    await store.aclose()


async def test_a_missing_store_is_not_created_by_readers(tmp_path, pg_url):
    path = tmp_path / 'nowhere.db'
    with pytest.raises(JobStoreError, match=f'no job store at {path}'):
        async with open_job_queue(None, path):
            pass
    assert not path.exists()
    with pytest.raises(JobStoreError, match='no job store in postgresql://postgres@/t_'):
        async with open_job_queue(None, pg_url):
            pass


async def test_an_unreachable_server_is_a_clear_error(tmp_path):
    url = f'postgresql://someone:secret@/db?host={tmp_path}&port=1'
    with pytest.raises(JobStoreError, match='cannot connect to the job store '
                                            'postgresql://someone:\\*\\*\\*@') as info:
        await PostgresJobStore.open(url, create=True, lock_timeout=1)
    assert 'secret' not in str(info.value)
