"""The job store: one small interface over SQL, for SQLite and PostgreSQL.

A store keeps two tables (plus ``tractorish_meta``, which holds the schema
version):

``tractorish_jobs``, one row per job id
    ``fn`` (``module:function``), ``args`` (the keyword arguments, msgpack),
    ``status`` (``pending``, ``running``, ``done``, ``failed``), ``attempts``
    (attempts started so far), ``crashes`` (attempts ended by a worker's death
    since the job was last retried), ``owner`` (the program holding it),
    ``worker``, ``lease_until`` (until when the owner holds it, unless it
    renews), ``result`` or ``error`` (msgpack), and times in seconds since
    the epoch, on the database's clock.
``tractorish_functions``
    every function a job was submitted for, so that a program finds the ones
    it can run without reading the jobs.
``tractorish_attempts``, one row per attempt
    ``(job_id, number)``, its owner and worker, start and end times, and its
    ``outcome``: empty while it runs, then ``done``, ``failed``, ``crashed``
    (its worker died), ``lost`` (its program died, or stopped renewing its
    lease, and another took the job over) or ``released`` (its program
    stopped and gave the job back).

Every change of a job is fenced by its owner and attempt number: a program
whose job was taken over changes nothing, so each job finishes once.

The methods are async and never block the trio thread: each call is queued
and run by one connection in a worker thread, in arrival order. Calls that
arrive while a transaction is being committed are committed together in the
next one (group commit): many concurrent submits cost one commit. Should one
of them fail, the others are not undone: the transaction is rolled back and
each call runs again alone.
The subclasses (``_sqlite.py``, ``_postgres.py``) open the connection, keep
the schema and translate their driver's errors into :class:`JobStoreError`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import trio

from .._exceptions import TractorishError

SCHEMA_VERSION = 1
STATUSES = ('pending', 'running', 'done', 'failed')
FINISHED = ('done', 'failed')

JOB_COLUMNS = ('id, fn, args, status, attempts, crashes, owner, worker, lease_until, '
               'result, error, created_at, updated_at, finished_at')
ATTEMPT_COLUMNS = 'job_id, number, owner, worker, started_at, ended_at, outcome, detail'
_IN_CHUNK = 500  # ids per ``IN (...)``: within every database's limit


class JobError(TractorishError):
    """Root of the errors of durable jobs."""


class JobStoreError(JobError):
    """The job store cannot be used: missing, locked, corrupt, from a newer
    version of tractorish, not a job store, or unreachable. The store is
    left as it was."""


class JobNotFound(JobError, LookupError):
    """No job with that id is in the store."""


class JobConflict(JobError, ValueError):
    """A job with that id exists, with another function or other arguments."""


@dataclass(frozen=True)
class JobRecord:
    """One row of ``tractorish_jobs``, as read."""
    id: str
    fn: str
    args: bytes
    status: str
    attempts: int
    crashes: int
    owner: Optional[str]
    worker: Optional[str]
    lease_until: Optional[float]
    result: Optional[bytes]
    error: Optional[bytes]
    created_at: float
    updated_at: float
    finished_at: Optional[float]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> 'JobRecord':
        (id, fn, args, status, attempts, crashes, owner, worker, lease_until,
         result, error, created_at, updated_at, finished_at) = row
        return cls(id, fn, bytes(args), status, attempts, crashes, owner, worker, lease_until,
                   None if result is None else bytes(result),
                   None if error is None else bytes(error),
                   created_at, updated_at, finished_at)


@dataclass(frozen=True)
class Attempt:
    """One attempt at a job: who ran it, where, when, and how it ended.

    ``outcome`` is ``None`` while it runs, then ``'done'``, ``'failed'``,
    ``'crashed'`` (its worker died), ``'lost'`` (its program died and
    another took the job over) or ``'released'`` (its program stopped and
    gave the job back); ``detail`` says more (the crash, who took over).
    """
    job_id: str
    number: int
    owner: str
    worker: Optional[str]
    started_at: float
    ended_at: Optional[float]
    outcome: Optional[str]
    detail: Optional[str]


class Claim(NamedTuple):
    """What to claim: for ``owner``, jobs of the functions ``fns``, one per
    entry of ``workers`` (at most), each held for ``lease`` seconds; pending
    jobs, and with ``expired`` also those whose holder's lease expired."""
    owner: str
    fns: Sequence[str]
    workers: Sequence[str]
    lease: float
    expired: bool = False


class _Op:
    """One queued store call."""
    __slots__ = ('fn', 'write', 'done', 'value', 'error')

    def __init__(self, fn: Callable[[Any, float], Any], write: bool) -> None:
        self.fn = fn
        self.write = write
        self.done = False
        self.value: Any = None
        self.error: Optional[BaseException] = None


class _CallFailed(Exception):
    """A call failed inside its transaction (not the transaction itself)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start:start + _IN_CHUNK]


def _marks(n: int) -> str:
    return ', '.join('?' * n)


class SqlJobStore:
    """The store's operations in SQL both databases speak, ``?`` for a
    parameter; a subclass provides the connection and the dialect."""

    #: appended to the claim query (PostgreSQL: ``FOR UPDATE SKIP LOCKED``)
    claim_suffix = ''
    #: appended to a query reading a row it then changes (PostgreSQL: ``FOR UPDATE``)
    lock_suffix = ''
    #: True while this program is the only one working the store
    exclusive = False

    def __init__(self, description: str) -> None:
        self.description = description
        self._conn: Any = None
        self._lock = trio.Lock()     # one transaction at a time
        self._queue: List[_Op] = []  # calls waiting for the next one
        self._closed = False

    # --- what a subclass provides ---------------------------------------------------

    def _sql(self, text: str) -> str:
        """``text`` in the driver's parameter style."""
        return text

    def _begin(self, write: bool) -> Tuple[Any, float]:
        """Start a transaction; return a cursor and the time, in seconds."""
        raise NotImplementedError

    def _describe(self, err: Exception) -> Optional[str]:
        """The message of the :class:`JobStoreError` for a driver's error;
        ``None`` for any other error."""
        raise NotImplementedError

    def _translate(self, err: Exception) -> Exception:
        """The error to raise for ``err`` (a new object each call)."""
        if isinstance(err, JobStoreError):
            return JobStoreError(str(err))
        message = self._describe(err)
        if message is None:
            return err
        new = JobStoreError(message)
        new.__cause__ = err
        return new

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- checking the schema, for the subclasses' opening -----------------------------

    def _check_version(self, row: Optional[Sequence[Any]]) -> None:
        """Refuse a store whose ``schema_version`` row (``row``) is missing,
        invalid, unknown or newer than this tractorish knows."""
        try:
            version = int(row[0]) if row is not None else None
        except (TypeError, ValueError):
            version = None
        if version is None:
            raise JobStoreError(f'{self.description} is corrupt: its tractorish_meta table '
                                f'has no valid schema_version')
        if version > SCHEMA_VERSION:
            raise JobStoreError(
                f'{self.description} has job store schema version {version}, newer than '
                f'this tractorish knows ({SCHEMA_VERSION}): upgrade tractorish to use it')
        if version < SCHEMA_VERSION:  # no older version was ever released
            raise JobStoreError(f'{self.description} has an unknown job store schema '
                                f'version {version}')

    def _check_tables(self) -> None:
        """Read every column the store uses (raises the driver's error if one
        is missing)."""
        self._conn.execute(f'SELECT {JOB_COLUMNS} FROM tractorish_jobs LIMIT 0')
        self._conn.execute(f'SELECT {ATTEMPT_COLUMNS} FROM tractorish_attempts LIMIT 0')
        self._conn.execute('SELECT fn FROM tractorish_functions LIMIT 0')

    # --- running calls: in order, grouped into transactions --------------------------

    async def _call(self, fn: Callable[[Any, float], Any], *, write: bool = True) -> Any:
        """Run ``fn(cursor, now)`` in a transaction, off the trio thread.

        If cancelled before a transaction takes the call, the call is
        dropped. Once taken, it runs to its end, and so does this: its
        caller gets what it did (a job inserted, jobs claimed) to act on,
        and the cancellation at its next checkpoint. (The transaction runs
        shielded: it holds other callers' calls too. Cancelled while another
        call's transaction runs it, this waits for that one, shielded.)
        """
        if self._closed:
            raise JobStoreError(f'the job store {self.description} is closed')
        op = _Op(fn, write)
        self._queue.append(op)
        try:
            async with self._lock:
                if not op.done:
                    batch, self._queue = self._queue, []
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(self._run_batch, batch)
        except trio.Cancelled:
            if op in self._queue:  # no transaction took it: it never runs
                self._queue.remove(op)
                raise
            if not op.done:  # the transaction running now holds it, and the lock
                with trio.CancelScope(shield=True):
                    async with self._lock:
                        pass
        except BaseException:
            if op in self._queue:
                self._queue.remove(op)
            raise
        if op.error is not None:
            raise op.error
        return op.value

    def _run_batch(self, batch: List[_Op]) -> None:
        """In the store's thread: run ``batch`` in one transaction. If a call
        in it fails, the transaction is rolled back and each call runs again in
        a transaction of its own, so that only the failing one fails; if the
        transaction itself fails (locked, lost), every call fails with it."""
        try:
            try:
                values = self._transaction(batch)
            except _CallFailed as failed:
                self._rollback()
                if len(batch) == 1:
                    batch[0].error = self._translate(failed.error)
                    return
                for op in batch:
                    try:
                        op.value = self._transaction([op])[0]
                    except Exception as err:
                        self._rollback()
                        op.error = self._translate(
                            err.error if isinstance(err, _CallFailed) else err)
            except Exception as err:
                self._rollback()
                for op in batch:
                    op.error = self._translate(err)
            else:
                for op, value in zip(batch, values):
                    op.value = value
        finally:
            for op in batch:
                op.done = True

    def _transaction(self, ops: List[_Op]) -> List[Any]:
        cur, now = self._begin(any(op.write for op in ops))
        try:
            values = []
            for op in ops:
                try:
                    values.append(op.fn(cur, now))
                except Exception as err:
                    raise _CallFailed(err) from err
            self._conn.execute('COMMIT')
        finally:
            cur.close()
        return values

    def _rollback(self) -> None:
        try:
            self._conn.execute('ROLLBACK')
        except Exception:
            pass  # no transaction was open, or the connection is gone

    async def aclose(self) -> None:
        """Close the connection (waits for the call in progress, if any)."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            async with self._lock:
                await trio.to_thread.run_sync(self._close_connection)

    # --- helpers for the operations ----------------------------------------------------

    def _x(self, cur: Any, text: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(text), params)
        return cur

    def _job(self, cur: Any, job_id: str) -> Optional[JobRecord]:
        row = self._x(cur, f'SELECT {JOB_COLUMNS} FROM tractorish_jobs WHERE id = ?',
                      (job_id,)).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def _start_attempt(self, cur: Any, now: float, job_id: str, number: int, owner: str,
                       worker: Optional[str]) -> None:
        self._x(cur, 'INSERT INTO tractorish_attempts (job_id, number, owner, worker, '
                     'started_at) VALUES (?, ?, ?, ?, ?)', (job_id, number, owner, worker, now))

    def _end_attempt(self, cur: Any, now: float, job_id: str, number: int, outcome: str,
                     detail: Optional[str]) -> int:
        return self._x(cur, 'UPDATE tractorish_attempts SET ended_at = ?, outcome = ?, '
                            'detail = ? WHERE job_id = ? AND number = ? AND outcome IS NULL',
                       (now, outcome, detail, job_id, number)).rowcount

    # --- reading ------------------------------------------------------------------------

    async def get(self, job_id: str) -> Optional[JobRecord]:
        return await self._call(lambda cur, now: self._job(cur, job_id), write=False)

    async def get_many(self, ids: Sequence[str]) -> List[JobRecord]:
        def op(cur: Any, now: float) -> List[JobRecord]:
            out: List[JobRecord] = []
            for chunk in _chunks(list(ids)):
                rows = self._x(cur, f'SELECT {JOB_COLUMNS} FROM tractorish_jobs WHERE id IN '
                                    f'({_marks(len(chunk))})', chunk).fetchall()
                out.extend(JobRecord.from_row(row) for row in rows)
            return out
        return await self._call(op, write=False) if ids else []

    async def list(self, status: Optional[str] = None,
                   limit: Optional[int] = None) -> List[JobRecord]:
        """Jobs in submission order, with ``status`` if given, at most ``limit``."""
        where = 'WHERE status = ?' if status else ''
        params: List[Any] = [status] if status else []
        if limit is not None:
            params.append(limit)

        def op(cur: Any, now: float) -> List[JobRecord]:
            rows = self._x(cur, f'SELECT {JOB_COLUMNS} FROM tractorish_jobs {where} ORDER BY seq'
                                + (' LIMIT ?' if limit is not None else ''), params).fetchall()
            return [JobRecord.from_row(row) for row in rows]
        return await self._call(op, write=False)

    async def counts(self) -> Dict[str, int]:
        """The number of jobs per status."""
        def op(cur: Any, now: float) -> Dict[str, int]:
            rows = self._x(cur, 'SELECT status, count(*) FROM tractorish_jobs '
                                'GROUP BY status').fetchall()
            return {status: n for status, n in rows}
        return {status: 0 for status in STATUSES} | await self._call(op, write=False)

    async def attempts(self, job_id: str) -> List[Attempt]:
        def op(cur: Any, now: float) -> List[Attempt]:
            rows = self._x(cur, f'SELECT {ATTEMPT_COLUMNS} FROM tractorish_attempts '
                                f'WHERE job_id = ? ORDER BY number', (job_id,)).fetchall()
            return [Attempt(*row) for row in rows]
        return await self._call(op, write=False)

    async def functions(self) -> List[str]:
        """Every function a job was ever submitted for (a short list: the
        queue looks among them for the ones it can run)."""
        def op(cur: Any, now: float) -> List[str]:
            return [fn for (fn,) in self._x(cur, 'SELECT fn FROM tractorish_functions')]
        return await self._call(op, write=False)

    # --- writing --------------------------------------------------------------------------

    async def insert(self, job_id: str, fn: str, args: bytes, claim: Optional[Claim] = None
                     ) -> Tuple[JobRecord, bool, List[JobRecord]]:
        """Record a pending job, unless one has that id; then, with ``claim``,
        claim jobs as :meth:`claim` does, in the same transaction. Return the
        job as stored, whether it was created, and the jobs claimed."""
        def op(cur: Any, now: float) -> Tuple[JobRecord, bool, List[JobRecord]]:
            created = self._x(
                cur, "INSERT INTO tractorish_jobs (id, fn, args, status, attempts, crashes, "
                     "created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, 0, ?, ?) "
                     "ON CONFLICT (id) DO NOTHING", (job_id, fn, args, now, now)).rowcount == 1
            if created:
                self._x(cur, 'INSERT INTO tractorish_functions (fn) VALUES (?) '
                             'ON CONFLICT (fn) DO NOTHING', (fn,))
            claimed = self._claim(cur, now, claim)
            record = self._job(cur, job_id)
            assert record is not None
            return record, created, claimed
        return await self._call(op)

    async def claim(self, claim: Claim) -> List[JobRecord]:
        """Take up to ``len(claim.workers)`` claimable jobs of the functions
        ``claim.fns``, oldest first, the i-th for ``claim.workers[i]``: each
        becomes ``running``, held by ``claim.owner`` for ``claim.lease``
        seconds, with a new attempt. A job taken from a holder whose lease
        expired ends that holder's attempt as ``lost``."""
        if not claim.fns or not claim.workers:
            return []
        return await self._call(lambda cur, now: self._claim(cur, now, claim))

    def _claim(self, cur: Any, now: float, claim: Optional[Claim]) -> List[JobRecord]:
        if claim is None or not claim.fns or not claim.workers:
            return []
        owner, fns, workers, lease, expired = claim
        among = f'fn IN ({_marks(len(fns))})'
        rows = []
        if expired:  # (only when the queue polls: the claim after each job skips it)
            rows = self._x(cur, f"SELECT {JOB_COLUMNS} FROM tractorish_jobs WHERE status = "
                                f"'running' AND lease_until < ? AND owner <> ? AND {among} "
                                f"ORDER BY lease_until LIMIT ? {self.claim_suffix}",
                           [now, owner, *fns, len(workers)]).fetchall()
        if len(rows) < len(workers):  # each query walks its own index, in order
            rows += self._x(cur, f"SELECT {JOB_COLUMNS} FROM tractorish_jobs WHERE status = "
                                 f"'pending' AND {among} ORDER BY seq LIMIT ? {self.claim_suffix}",
                            [*fns, len(workers) - len(rows)]).fetchall()
        claimed = []
        for row, worker in zip(rows, workers):
            job = JobRecord.from_row(row)
            if job.status == 'running':
                self._end_attempt(cur, now, job.id, job.attempts, 'lost',
                                  f'{job.owner} stopped renewing its lease; taken over '
                                  f'by {owner}')
            number = job.attempts + 1
            self._x(cur, "UPDATE tractorish_jobs SET status = 'running', attempts = ?, "
                         "owner = ?, worker = ?, lease_until = ?, updated_at = ? "
                         "WHERE id = ?", (number, owner, worker, now + lease, now, job.id))
            self._start_attempt(cur, now, job.id, number, owner, worker)
            claimed.append(dataclasses.replace(
                job, status='running', attempts=number, owner=owner, worker=worker,
                lease_until=now + lease, updated_at=now))
        return claimed

    def _fence(self) -> str:
        """The job is still running, in this attempt, held by this owner."""
        return "id = ? AND owner = ? AND attempts = ? AND status = 'running'"

    async def finish(self, job_id: str, owner: str, number: int, status: str, *,
                     result: Optional[bytes] = None, error: Optional[bytes] = None,
                     claim: Optional[Claim] = None
                     ) -> Tuple[Optional[JobRecord], List[JobRecord]]:
        """Store attempt ``number``'s outcome, ``status`` ``done`` (``result``)
        or ``failed`` (``error``); then, with ``claim``, claim jobs as
        :meth:`claim` does, in the same transaction. Return the job as stored
        (``None`` if it is no longer that attempt's: another program took it
        over, and then it is left as it is) and the jobs claimed."""
        assert status in FINISHED

        def op(cur: Any, now: float) -> Tuple[Optional[JobRecord], List[JobRecord]]:
            record = None
            if self._x(cur, f'UPDATE tractorish_jobs SET status = ?, result = ?, error = ?, '
                            f'finished_at = ?, updated_at = ?, lease_until = NULL '
                            f'WHERE {self._fence()}',
                       (status, result, error, now, now, job_id, owner, number)).rowcount == 1:
                self._end_attempt(cur, now, job_id, number, status, None)
                record = self._job(cur, job_id)
            return record, self._claim(cur, now, claim)
        return await self._call(op)

    async def crashed(self, job_id: str, owner: str, number: int, detail: str, error: bytes,
                      next_worker: str, retries: int, lease: float) -> Optional[JobRecord]:
        """Attempt ``number`` ended with its worker's death. Start the next on
        ``next_worker``; or, if the job has crashed more than ``retries`` times
        since it was last retried, fail it with ``error``. Return the job as
        stored; ``None`` if the job is no longer that attempt's (then nothing
        changes)."""
        def op(cur: Any, now: float) -> Optional[JobRecord]:
            row = self._x(cur, f'SELECT crashes FROM tractorish_jobs WHERE {self._fence()} '
                               f'{self.lock_suffix}', (job_id, owner, number)).fetchone()
            if row is None:
                return None
            self._end_attempt(cur, now, job_id, number, 'crashed', detail)
            crashes = row[0] + 1
            if crashes > retries:
                self._x(cur, f"UPDATE tractorish_jobs SET status = 'failed', crashes = ?, "
                             f"error = ?, finished_at = ?, updated_at = ?, lease_until = NULL "
                             f"WHERE {self._fence()}",
                        (crashes, error, now, now, job_id, owner, number))
            else:
                self._x(cur, f'UPDATE tractorish_jobs SET crashes = ?, attempts = ?, '
                             f'worker = ?, lease_until = ?, updated_at = ? WHERE {self._fence()}',
                        (crashes, number + 1, next_worker, now + lease, now, job_id, owner,
                         number))
                self._start_attempt(cur, now, job_id, number + 1, owner, next_worker)
            return self._job(cur, job_id)
        return await self._call(op)

    async def renew(self, owner: str, lease: float) -> int:
        """Extend the lease on every job ``owner`` holds; return how many."""
        return await self._call(lambda cur, now: self._x(
            cur, "UPDATE tractorish_jobs SET lease_until = ? WHERE owner = ? AND "
                 "status = 'running'", (now + lease, owner)).rowcount)

    async def release(self, owner: str, detail: str) -> int:
        """Give every job ``owner`` holds back (``pending``); end their attempts
        as ``released``. Return how many."""
        def op(cur: Any, now: float) -> int:
            self._x(cur, "UPDATE tractorish_attempts SET ended_at = ?, outcome = 'released', "
                         "detail = ? WHERE owner = ? AND outcome IS NULL", (now, detail, owner))
            return self._x(cur, "UPDATE tractorish_jobs SET status = 'pending', owner = NULL, "
                                "worker = NULL, lease_until = NULL, updated_at = ? "
                                "WHERE owner = ? AND status = 'running'", (now, owner)).rowcount
        return await self._call(op)

    async def recover(self, owner: str) -> int:
        """Every running job is pending again, its attempt ``lost``: for a
        store that one program at a time holds, whose earlier holder is gone."""
        def op(cur: Any, now: float) -> int:
            self._x(cur, "UPDATE tractorish_attempts SET ended_at = ?, outcome = 'lost', "
                         "detail = ? WHERE outcome IS NULL",
                    (now, f'its program stopped before the job finished; taken over by {owner}'))
            return self._x(cur, "UPDATE tractorish_jobs SET status = 'pending', owner = NULL, "
                                "worker = NULL, lease_until = NULL, updated_at = ? "
                                "WHERE status = 'running'", (now,)).rowcount
        return await self._call(op)

    async def retry(self, job_id: str) -> Optional[JobRecord]:
        """Make a failed job pending again (crash count reset); return the job
        as it is now, unchanged if it had not failed; ``None`` if unknown."""
        def op(cur: Any, now: float) -> Optional[JobRecord]:
            self._x(cur, "UPDATE tractorish_jobs SET status = 'pending', crashes = 0, "
                         "result = NULL, error = NULL, finished_at = NULL, owner = NULL, "
                         "worker = NULL, updated_at = ? WHERE id = ? AND status = 'failed'",
                    (now, job_id))
            return self._job(cur, job_id)
        return await self._call(op)
