"""Durable calls on a worker pool: ``open_job_queue`` and :class:`JobQueue`.

A job is a call with an id, recorded in a store before it runs. The queue
claims recorded jobs from the store, as many as its pool has room for,
and runs each on a worker of the pool it picks (the least busy with this
queue's jobs). Every attempt is recorded with its worker; a worker that
dies mid-call has the job run again on another (at least once); the
outcome is stored once, fenced by the attempt, so each job finishes once.

Layers: this sits on ``workers`` (it calls ``ActorPool.run``) and on the
store interface (``_store.py``); it never blocks the trio thread on
storage, and reaches into no lower layer's private state.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import uuid
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, List, Optional,
                    Sequence, Set, Tuple, Union)

import trio

from .._exceptions import ActorCrashed, MsgTypeError, TransportClosed
from .._groups import collapsing_groups
from ..runtime import current_actor
from ._job import Job, decode, encode, error_payload, function_path, resolve
from ._store import (FINISHED, Attempt, Claim, JobConflict, JobError, JobNotFound, JobRecord,
                     SqlJobStore)

if TYPE_CHECKING:
    from ..workers import ActorPool

log = logging.getLogger('tractorish.jobs')

CLOSE_TIMEOUT = 5.0  # s to give the held jobs back when the queue closes
# keywords of ActorPool.run, which runs each job: no job argument may take them
RESERVED_ARGUMENTS = frozenset({'receiver', 'retries'})


@dataclass(frozen=True)
class JobQueueStatistics:
    """What :meth:`JobQueue.statistics` reports: this program's jobs in
    flight and room for them, jobs it finished, and worker crashes it saw."""
    in_flight: int
    capacity: int
    finished: int
    crashes: int


class JobQueue:
    """Submit, run and look up durable jobs; made by :func:`open_job_queue`.

    Each call that reads or writes the store is a checkpoint; its
    transaction runs in a thread and is never left half done. A call that
    is cancelled took effect whole, or not at all: cancelled before its
    transaction started, not at all.
    """

    def __init__(self, pool: Optional['ActorPool'], store: SqlJobStore, *, lease: float,
                 poll_interval: float, retries: int, capacity: int) -> None:
        self._pool = pool
        self._store = store
        self.lease = lease
        self.poll_interval = poll_interval
        self.retries = retries
        self.capacity = capacity
        #: this program, as the store names the holder of a job
        self.owner = f'{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}'
        self._nursery: Optional[trio.Nursery] = None
        self._closed = False
        self._jobs: 'weakref.WeakValueDictionary[str, Job]' = weakref.WeakValueDictionary()
        self._functions: Dict[str, Callable[..., Any]] = {}
        self._unknown: Set[str] = set()    # stored functions not imported here
        self._waiters: Dict[str, trio.Event] = {}
        self._wake = trio.Event()
        self._maybe_more = True            # claimable jobs may be waiting
        self._on_worker: Dict[str, int] = {name: 0 for name in (pool.workers if pool else ())}
        self._next_worker = 0
        self._in_flight = 0
        self._worked = False               # this queue has held jobs
        self._finished = 0
        self._crashes = 0

    @property
    def store(self) -> str:
        """The store, as a path or a URL without its password."""
        return self._store.description

    def statistics(self) -> JobQueueStatistics:
        """This program's jobs in flight, room, jobs finished, crashes seen."""
        return JobQueueStatistics(self._in_flight, self.capacity, self._finished, self._crashes)

    # --- the public calls -----------------------------------------------------------------

    async def submit(self, fn: Callable[..., Any], /, *, id: str, **kwargs: Any) -> Job:
        """Record the job ``id``, a call of ``fn(**kwargs)``, and return it; this
        queue's pool starts it as soon as it has room.

        The job is committed to the store when this returns. An id that
        exists already returns that job as it is (a finished job never runs
        again) if it has the same function and arguments, and raises
        :class:`JobConflict` if not. Arguments that msgpack cannot encode
        raise :class:`MsgTypeError` and nothing is stored. If cancelled, the
        job may or may not have been recorded: submitting again is safe.
        """
        self._check_open()
        if not isinstance(id, str) or not id:
            raise TypeError(f'a job id is a non-empty string, not {id!r}')
        reserved = sorted(RESERVED_ARGUMENTS.intersection(kwargs))
        if reserved:
            name = getattr(fn, '__name__', fn)
            raise TypeError(f'a job cannot take arguments named {reserved}: the pool that '
                            f'runs it takes them (rename them in {name})')
        path = function_path(fn)
        args = encode(dict(sorted(kwargs.items())), f'the arguments of job {id!r}')
        self._functions.setdefault(path, fn)
        self._unknown.discard(path)
        # with room on the pool, the oldest pending job is claimed in the
        # same transaction: often this one, and then it costs one commit less
        claim = self._reserve(1)
        try:
            record, created, claimed = await self._store.insert(id, path, args, claim)
        except BaseException:
            self._start_claimed(claim, [])
            raise
        self._start_claimed(claim, claimed)
        if not created:
            self._check_same(record, path, args)
        if record.status == 'pending':
            self._maybe_more = True
            self._wake.set()
        return self._job_for(record)

    async def run(self, fn: Callable[..., Any], /, *, id: str, **kwargs: Any) -> Any:
        """``await (await submit(fn, id=id, **kwargs)).result()``."""
        job = await self.submit(fn, id=id, **kwargs)
        return await job.result()

    async def get(self, id: str) -> Job:
        """The job ``id`` as stored; :class:`JobNotFound` if there is none."""
        return self._job_for(await self._store_get(id))

    async def list(self, status: Optional[str] = None, limit: Optional[int] = None
                   ) -> List[Job]:
        """The jobs in submission order; only those with ``status`` if given."""
        return [self._job_for(record) for record in await self._store.list(status, limit)]

    async def counts(self) -> Dict[str, int]:
        """How many jobs the store holds, per status."""
        return await self._store.counts()

    async def retry(self, id: str) -> Job:
        """Make the failed job ``id`` pending again, to run anew; return it.

        A pending job is returned as it is. A running or done job raises
        :class:`JobError` (a finished job never runs again), an unknown id
        :class:`JobNotFound`.
        """
        self._check_open()
        record = await self._store.retry(id)
        if record is None:
            raise self._not_found(id)
        if record.status in ('running', 'done'):
            what = (f'running (attempt {record.attempts} on {record.worker})'
                    if record.status == 'running' else 'done, and a finished job never runs again')
            raise JobError(f'job {id!r} is {what}: only a failed job can be retried')
        self._maybe_more = True
        self._wake.set()
        return self._job_for(record)

    # --- jobs and their waiters -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise JobError(f'the job queue on {self.store} is closed')

    def _not_found(self, id: str) -> JobNotFound:
        return JobNotFound(f'no job with id {id!r} in {self.store}')

    def _check_same(self, record: JobRecord, path: str, args: bytes) -> None:
        if record.fn != path:
            raise JobConflict(f'job {record.id!r} exists, as a call of {record.fn}, not of '
                              f'{path}: a job id names one call')
        if record.args != args and decode(record.args) != decode(args):
            raise JobConflict(f'job {record.id!r} exists with other arguments: '
                              f'{_short(decode(record.args))}, not {_short(decode(args))}')

    def _job_for(self, record: JobRecord) -> Job:
        job = self._jobs.get(record.id)
        if job is None:
            job = self._jobs[record.id] = Job(self, record)
        else:
            job._update(record)
        return job

    def _changed(self, record: JobRecord) -> None:
        """``record`` is the job's new state: update its Job, wake its waiters."""
        job = self._jobs.get(record.id)
        if job is not None:
            job._update(record)
        if record.status in FINISHED:
            event = self._waiters.pop(record.id, None)
            if event is not None:
                event.set()

    async def _store_get(self, id: str) -> JobRecord:
        self._check_open()
        record = await self._store.get(id)
        if record is None:
            raise self._not_found(id)
        return record

    async def _attempts(self, id: str) -> List[Attempt]:
        self._check_open()
        return await self._store.attempts(id)

    async def _wait_for(self, job: Job) -> None:
        """Wait until ``job`` may have finished: this program finished it, or
        the poll found it finished elsewhere."""
        self._check_open()
        if job.owner != self.owner:  # not running here: it may have finished elsewhere
            self._changed(await self._store_get(job.id))
            if job.done:
                return
        event = self._waiters.get(job.id)
        if event is None:
            event = self._waiters[job.id] = trio.Event()
        await event.wait()
        self._check_open()

    async def _poll_waiters(self) -> None:
        """Read the jobs someone waits for; wake those that finished."""
        if not self._waiters:
            return
        for record in await self._store.get_many(list(self._waiters)):
            self._changed(record)

    # --- claiming and running (only with a pool) ---------------------------------------

    async def _dispatch(self) -> None:
        """Claim jobs while there is room, and poll now and then: for jobs
        submitted elsewhere, leases that expired, jobs finished elsewhere."""
        polled = -math.inf
        while True:
            poll = trio.current_time() - polled >= self.poll_interval
            if poll:
                polled = trio.current_time()
                self._maybe_more = True
                await self._learn_functions()
                await self._poll_waiters()
            await self._claim(expired=poll)
            with trio.move_on_after(self.poll_interval):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _poll(self) -> None:
        """Without a pool: only the waiters' poll."""
        while True:
            await self._poll_waiters()
            await trio.sleep(self.poll_interval)

    async def _learn_functions(self) -> None:
        for path in await self._store.functions():
            if path in self._functions or path in self._unknown:
                continue
            fn = resolve(path)
            if fn is None:
                self._unknown.add(path)
                log.info('the jobs of %s in %s are left for other programs: its module '
                         'is not imported in this one', path, self.store)
            else:
                self._functions[path] = fn

    async def _claim(self, expired: bool) -> None:
        if not self._maybe_more:
            return
        claim = self._reserve(self.capacity)
        if claim is None:
            return
        claim = claim._replace(expired=expired)
        try:
            claimed = await self._store.claim(claim)
        except BaseException:
            self._start_claimed(claim, [])
            raise
        self._maybe_more = len(claimed) == len(claim.workers)
        self._start_claimed(claim, claimed)

    def _reserve(self, n: int) -> Optional[Claim]:
        """Room for up to ``n`` more of our jobs on the pool's workers, taken
        now (before the store is asked: concurrent claims never take more
        than there is room for), as a claim to make."""
        room = min(n, self.capacity - self._in_flight)
        if self._pool is None or self._closed or room <= 0 or not self._functions:
            return None
        workers = self._pick_workers(room)
        self._in_flight += room
        for worker in workers:
            self._on_worker[worker] += 1
        return Claim(self.owner, list(self._functions), workers, self.lease)

    def _start_claimed(self, claim: Optional[Claim], claimed: List[JobRecord]) -> None:
        """Start a task for each job ``claim`` got; give back the room it did not use."""
        if claim is None:
            return
        unused = list(claim.workers)
        assert self._nursery is not None
        self._worked = self._worked or bool(claimed)
        for record in claimed:
            unused.remove(record.worker)  # type: ignore[arg-type]
            self._changed(record)
            self._nursery.start_soon(self._run_job, record)
        for worker in unused:
            self._in_flight -= 1
            self._on_worker[worker] -= 1

    def _pick_workers(self, n: int, exclude: Sequence[str] = ()) -> List[str]:
        """``n`` workers, least loaded with our jobs first, round-robin among equals."""
        names = list(self._on_worker)
        allowed = [w for w in names if w not in exclude] or names
        load = dict(self._on_worker)
        picked = []
        for _ in range(n):
            start, self._next_worker = self._next_worker, self._next_worker + 1
            order = [allowed[(start + i) % len(allowed)] for i in range(len(allowed))]
            name = min(order, key=lambda w: load[w])
            load[name] += 1
            picked.append(name)
        return picked

    async def _run_job(self, record: JobRecord) -> None:
        """Run ``record``, then each job claimed as one ends, in one slot of
        the pool (on one worker, unless it dies: then on the one taking over)."""
        assert record.worker is not None
        slot = _Slot(record.worker)
        try:
            next_record: Optional[JobRecord] = record
            while next_record is not None:
                next_record = await self._run_one(next_record, slot)
        finally:
            self._in_flight -= 1
            self._on_worker[slot.worker] -= 1
            self._wake.set()

    async def _run_one(self, record: JobRecord, slot: '_Slot') -> Optional[JobRecord]:
        """Run the attempts of one job until it ends; store its outcome and
        claim the next job for this slot in the same transaction."""
        assert self._pool is not None
        fn = self._functions[record.fn]
        kwargs = decode(record.args)
        number, tried = record.attempts, []
        while True:
            try:
                value = await self._pool.run(fn, receiver=slot.worker, retries=0, **kwargs)
            except (ActorCrashed, TransportClosed) as crash:
                self._crashes += 1
                tried.append(slot.worker)
                next_worker = self._pick_workers(1, exclude=tried)[0]
                self._on_worker[slot.worker] -= 1
                self._on_worker[next_worker] += 1
                slot.worker = next_worker
                new = await self._store.crashed(
                    record.id, self.owner, number, f'{type(crash).__name__}: {crash}',
                    self._error(crash), next_worker, self.retries, self.lease)
                if new is None or new.status != 'running':
                    self._settled(record.id, number, new)
                    return None
                number = new.attempts
                self._changed(new)
                log.warning('job %r: its worker died (%s); attempt %d on %s',
                            record.id, crash, number, next_worker)
                continue
            except Exception as err:
                status, result, error = self._failure(err)
            else:
                status, result, error = self._outcome(value)
            claim = Claim(self.owner, list(self._functions), [slot.worker], self.lease)
            stored, claimed = await self._store.finish(
                record.id, self.owner, number, status, result=result, error=error,
                claim=None if self._closed else claim)
            self._settled(record.id, number, stored)
            if claimed:
                self._changed(claimed[0])
                return claimed[0]
            return None

    def _outcome(self, value: Any) -> Tuple[str, Optional[bytes], Optional[bytes]]:
        """The status, result and error to store for a call that returned ``value``."""
        try:
            return 'done', encode(value, 'the result'), None
        except MsgTypeError as err:
            return self._failure(err)

    def _failure(self, err: BaseException) -> Tuple[str, Optional[bytes], Optional[bytes]]:
        return 'failed', None, self._error(err)

    def _settled(self, id: str, number: int, record: Optional[JobRecord]) -> None:
        if record is None:
            log.warning('job %r was taken over by another program during attempt %d: '
                        'this attempt\'s outcome is dropped', id, number)
            return
        self._finished += 1
        self._changed(record)

    def _error(self, err: BaseException) -> bytes:
        actor = current_actor(err_on_no_runtime=False)
        here = actor.uid if actor is not None else ('jobs', self.owner)
        return encode(error_payload(err, here), 'the error')

    async def _renew_leases(self) -> None:
        while True:
            await trio.sleep(self.lease / 3)
            await self._store.renew(self.owner, self.lease)


class _Slot:
    """Room for one job on a worker, held by a task running one job after another."""
    __slots__ = ('worker',)

    def __init__(self, worker: str) -> None:
        self.worker = worker


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


async def _open_store(store: Union[str, 'os.PathLike[str]'], *, working: bool,
                      lock_timeout: float) -> SqlJobStore:
    text = os.fspath(store)
    if text.startswith(('postgresql://', 'postgres://')):
        from ._postgres import PostgresJobStore
        return await PostgresJobStore.open(text, create=working, lock_timeout=lock_timeout)
    from ._sqlite import SqliteJobStore
    return await SqliteJobStore.open(text, exclusive=working, create=working,
                                     lock_timeout=lock_timeout)


@asynccontextmanager
async def open_job_queue(pool: Optional['ActorPool'],
                         store: Union[str, 'os.PathLike[str]'] = 'jobs.db', *,
                         lease: float = 30.0, poll_interval: float = 1.0, retries: int = 10,
                         max_in_flight: Optional[int] = None,
                         lock_timeout: float = 5.0) -> AsyncIterator[JobQueue]:
    """Open the job store ``store`` and work its jobs on ``pool`` for the block.

    ``store`` is a SQLite file (created if missing; one program at a time
    works it) or a ``postgresql://`` URL (shared by any number of programs;
    needs psycopg 3, the ``postgres`` extra). On opening, jobs left
    unfinished by a program that died are taken up again: at once with
    SQLite, once their ``lease`` (seconds, renewed while they run) expires
    with PostgreSQL. At most ``max_in_flight`` jobs (default: the pool's
    size times its concurrency) run at once; a job whose worker dies is run
    again on another, at most ``retries`` more times, then fails with the
    crash as its error. ``poll_interval`` is how often the store is read for
    jobs submitted or finished by other programs.

    With ``pool=None`` the queue only reads and administers an existing
    store (``get``, ``list``, ``retry``; ``submit`` records jobs for a
    program with a pool), and takes no lock.

    A store that is locked (for more than ``lock_timeout`` s), corrupt, not
    a job store or from a newer tractorish raises :class:`JobStoreError`,
    and is left as it was. Leaving the block cancels the jobs running here
    and gives them back to the store as ``pending``, for the next program.
    """
    from ..workers import ActorPool
    if pool is not None and not isinstance(pool, ActorPool):
        raise TypeError(f'open_job_queue takes an ActorPool (or None) first, then the store, '
                        f'not {pool!r}')
    if lease <= 0 or poll_interval <= 0 or lock_timeout <= 0:
        raise ValueError('lease, poll_interval and lock_timeout must be positive')
    if type(retries) is not int or retries < 0:
        raise ValueError(f'retries must be an int >= 0, not {retries!r}')
    if max_in_flight is not None and (type(max_in_flight) is not int or max_in_flight < 1):
        raise ValueError(f'max_in_flight must be an int >= 1, not {max_in_flight!r}')
    if pool is not None and not pool.workers:
        raise ValueError('the pool has no workers')
    capacity = max_in_flight or (pool.size * pool.concurrency if pool is not None else 0)
    job_store = await _open_store(store, working=pool is not None, lock_timeout=lock_timeout)
    queue = JobQueue(pool, job_store, lease=lease, poll_interval=poll_interval,
                     retries=retries, capacity=capacity)
    try:
        if pool is not None and job_store.exclusive:
            # a store one program works at a time: its last holder is gone
            taken = await job_store.recover(queue.owner)
            if taken:
                log.info('%d unfinished jobs in %s taken up again', taken, queue.store)
        with collapsing_groups():
            async with trio.open_nursery() as nursery:
                queue._nursery = nursery
                if pool is not None:
                    nursery.start_soon(queue._dispatch)
                    nursery.start_soon(queue._renew_leases)
                else:
                    nursery.start_soon(queue._poll)
                try:
                    yield queue
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        queue._closed = True
        for event in queue._waiters.values():
            event.set()
        with trio.CancelScope(shield=True):
            try:
                if queue._worked:
                    with trio.move_on_after(CLOSE_TIMEOUT):
                        await job_store.release(queue.owner, 'its program closed the queue')
            finally:
                await job_store.aclose()
