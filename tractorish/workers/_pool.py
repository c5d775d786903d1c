"""Worker pools: load-balanced calls over a supervised set of actors.

``open_actor_pool(size, ...)`` starts ``size`` workers (``name-0`` ...)
under a one-for-one supervisor, so a worker that dies is replaced under the
same name. Each call goes to the least busy worker (round-robin among
equals); a worker runs up to ``concurrency`` calls at once.

A call whose worker dies raises :class:`ActorCrashed` (name, pid, exit code
or signal, the end of its stderr). With ``retries=N`` such a call is sent
again to another worker, up to N times: delivery is then at least once,
so the function may run more than once and should be idempotent.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
from contextlib import asynccontextmanager
from collections import deque
from typing import (Any, AsyncIterator, Callable, Deque, Dict, Iterable, Iterator, List,
                    Mapping, Optional, Sequence, Set)

import trio

from .._compat import BaseExceptionGroup
from .._exceptions import ActorCrashed, TransportClosed
from .._groups import collapsing_groups
from ._supervisor import Supervisor, check_modules, open_supervisor

log = logging.getLogger('tractorish.workers')


class _Waiter:
    """A caller waiting for a worker: served in arrival order."""

    __slots__ = ('task', 'receiver', 'exclude', 'name')

    def __init__(self, receiver: Optional[str], exclude: Sequence[str]) -> None:
        self.task = trio.lowlevel.current_task()
        self.receiver = receiver
        self.exclude = exclude
        self.name: Optional[str] = None  # the worker it was handed

    def takes(self, name: str) -> bool:
        if self.receiver is not None:
            return self.receiver == name
        return name not in self.exclude


class PoolStatistics:
    """What :meth:`ActorPool.statistics` reports: calls in flight per
    worker, callers waiting for one, and how many waiters were woken (each
    is woken once, handed its worker)."""

    __slots__ = ('busy', 'waiting', 'handoffs')

    def __init__(self, busy: Dict[str, int], waiting: int, handoffs: int) -> None:
        self.busy = busy
        self.waiting = waiting
        self.handoffs = handoffs

    def __repr__(self) -> str:
        return (f'PoolStatistics(busy={self.busy}, waiting={self.waiting}, '
                f'handoffs={self.handoffs})')


class ActorPool:
    """A set of worker actors behind one calling interface."""

    def __init__(self, supervisor: Supervisor, names: List[str], nursery: trio.Nursery,
                 concurrency: int, retries: int) -> None:
        self._sup = supervisor
        self._nursery = nursery
        self._maps: Set[trio.CancelScope] = set()  # the maps still running
        self.concurrency = concurrency
        self.retries = retries
        self._busy: Dict[str, int] = {name: 0 for name in names}
        # callers waiting for room, in arrival order: a call's end hands its
        # slot to the first that can use it, waking that one alone
        self._waiters: Deque[_Waiter] = deque()
        self._handoffs = 0
        self._next = 0

    @property
    def workers(self) -> List[str]:
        """The workers' names."""
        return list(self._busy)

    @property
    def size(self) -> int:
        return len(self._busy)

    def busy(self) -> Dict[str, int]:
        """Calls in flight, per worker."""
        return dict(self._busy)

    def statistics(self) -> PoolStatistics:
        """Calls in flight per worker, callers waiting, waiters woken so far."""
        return PoolStatistics(dict(self._busy), len(self._waiters), self._handoffs)

    async def wait_ready(self) -> None:
        """Wait until every worker is up (after restarts, too)."""
        await self._sup.wait_ready()

    # --- choosing a worker --------------------------------------------------------

    def _pick(self, exclude: Sequence[str]) -> Optional[str]:
        names = self.workers
        start, self._next = self._next, (self._next + 1) % len(names)
        best = None
        for offset in range(len(names)):  # round-robin among the least busy
            name = names[(start + offset) % len(names)]
            if name in exclude or self._busy[name] >= self.concurrency:
                continue
            if best is None or self._busy[name] < self._busy[best]:
                best = name
        return best

    async def _acquire(self, receiver: Optional[str], exclude: Sequence[str]) -> str:
        if receiver is not None and receiver not in self._busy:
            raise KeyError(f'no worker named {receiver!r} in this pool ({self.workers})')
        if len(exclude) >= self.size:
            exclude = ()
        if receiver is not None:
            name = receiver if self._busy[receiver] < self.concurrency else None
        else:
            name = self._pick(exclude)
        if name is not None:
            self._busy[name] += 1
            return name
        waiter = _Waiter(receiver, exclude)
        self._waiters.append(waiter)

        def abort(_: Any) -> Any:
            self._waiters.remove(waiter)
            return trio.lowlevel.Abort.SUCCEEDED
        await trio.lowlevel.wait_task_rescheduled(abort)
        assert waiter.name is not None
        return waiter.name

    def _release(self, name: str) -> None:
        """A call on ``name`` ended: its slot goes to the first waiter that
        can use it (arrival order), else back to the pool."""
        for waiter in self._waiters:
            if waiter.takes(name):
                self._waiters.remove(waiter)
                waiter.name = name
                self._handoffs += 1
                trio.lowlevel.reschedule(waiter.task)
                return
        self._busy[name] -= 1

    # --- calling ----------------------------------------------------------------------

    async def run(self, fn: Callable[..., Any], /, *, receiver: Optional[str] = None,
                  retries: Optional[int] = None, **kwargs: Any) -> Any:
        """Run ``fn(**kwargs)`` on the least busy worker (or on ``receiver``).

        Waits while every eligible worker is at its concurrency. Raises the
        remote error as :class:`RemoteActorError`, or :class:`ActorCrashed`
        if the worker died (after ``retries`` more tries elsewhere).
        Cancelling it cancels the remote call.
        """
        if retries is not None:
            _check_retries(retries)
        attempts = 1 + (self.retries if retries is None else retries)
        tried: List[str] = []
        for attempt in range(attempts):
            name = await self._acquire(receiver, tried)
            try:
                portal = await self._sup.portal(name)
                process = self._sup.process(name)
                try:
                    return await portal.run(fn, **kwargs)
                except TransportClosed as err:
                    crash = await process.exit_report(5.0) if process else ActorCrashed(
                        f'worker {name!r} went away', name=name)
                    if attempt + 1 >= attempts:
                        raise crash from err
                    log.warning('retrying a call to %s elsewhere: %s', fn.__name__, crash)
                    tried.append(name)
            finally:
                self._release(name)
        raise AssertionError('unreachable')  # pragma: no cover

    async def cast(self, fn: Callable[..., Any], /, *, raise_errors: bool = False,
                   **kwargs: Any) -> Dict[str, Any]:
        """Run ``fn(**kwargs)`` on every worker; return ``{worker: result}``.

        A worker's failure is its entry's value (the exception), without
        losing the others' results; with ``raise_errors=True`` it is raised
        instead (several as a group), after every call has finished.
        """
        results: Dict[str, Any] = {}

        async def one(name: str) -> None:
            try:
                results[name] = await self.run(fn, receiver=name, retries=0, **kwargs)
            except Exception as err:
                results[name] = err

        async with trio.open_nursery() as nursery:
            for name in self.workers:
                nursery.start_soon(one, name)
        errors = [r for r in results.values() if isinstance(r, Exception)]
        if raise_errors and errors:
            raise errors[0] if len(errors) == 1 else BaseExceptionGroup(
                f'{len(errors)} workers failed', errors)
        return {name: results[name] for name in self.workers}

    def cast_nowait(self, fn: Callable[..., Any], /, **kwargs: Any) -> None:
        """Start ``fn(**kwargs)`` on every worker and return at once.

        Failures are logged (nobody waits for them); the pool's block waits
        for these calls to finish before it stops the workers.
        """
        async def fire() -> None:
            results = await self.cast(fn, **kwargs)
            for name, result in results.items():
                if isinstance(result, Exception):
                    log.warning('cast_nowait(%s) failed on %s: %s', fn.__name__, name, result)
        self._nursery.start_soon(fire)

    async def map(self, fn: Callable[..., Any], iterable: Iterable[Any], *,
                  ordered: bool = True, retries: Optional[int] = None) -> AsyncIterator[Any]:
        """Yield ``fn(item)`` for each item, ``size * concurrency`` calls at a time.

        Each item is passed as ``fn``'s first parameter, by name. Results
        come in input order if ``ordered``, else as they finish. Calls in
        flight plus results not yet read stay within ``size * concurrency``,
        so a slow reader slows the map down. The first error stops the map
        and is raised here, as is an error of ``iterable`` itself (after
        the results before it, if ``ordered``); leaving the loop early
        cancels the calls in flight, and so does leaving the pool's block.
        """
        param = _first_parameter(fn)
        async for result in self.starmap(fn, ({param: item} for item in iterable),
                                         ordered=ordered, retries=retries):
            yield result

    async def starmap(self, fn: Callable[..., Any], iterable: Iterable[Mapping[str, Any]], *,
                      ordered: bool = True, retries: Optional[int] = None) -> AsyncIterator[Any]:
        """Like :meth:`map`, each item being the keyword arguments of one call."""
        if retries is not None:
            _check_retries(retries)
        items = iter(iterable)
        # a slot is taken per call and given back when its result is read:
        # calls in flight plus results waiting for us stay within the limit
        slots = trio.Semaphore(self.size * self.concurrency)
        send, receive = trio.open_memory_channel[Any](math.inf)
        scope = trio.CancelScope()
        self._maps.add(scope)
        self._nursery.start_soon(self._drive_map, fn, items, ordered, retries,
                                 slots, send, scope)
        try:
            async with receive:
                async for outcome in receive:
                    slots.release()
                    index, ok, value = outcome
                    if not ok:
                        raise value
                    yield value
        finally:
            scope.cancel()

    async def _drive_map(self, fn: Callable[..., Any], items: Iterator[Mapping[str, Any]],
                         ordered: bool, retries: Optional[int], slots: trio.Semaphore,
                         send: trio.MemorySendChannel, scope: trio.CancelScope) -> None:
        done: Dict[int, tuple] = {}
        next_out = 0

        def hand_on(index: int, outcome: tuple) -> None:
            nonlocal next_out
            try:
                if not ordered:
                    send.send_nowait(outcome)
                    return
                done[index] = outcome
                while next_out in done:
                    send.send_nowait(done.pop(next_out))
                    next_out += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                scope.cancel()  # the consumer left

        async def one(index: int, kwargs: Mapping[str, Any]) -> None:
            try:
                outcome = (index, True, await self.run(fn, retries=retries, **kwargs))
            except Exception as err:
                outcome = (index, False, err)
            hand_on(index, outcome)

        try:
            with scope:
                async with send:
                    async with trio.open_nursery() as nursery:
                        index = 0
                        while True:
                            await slots.acquire()
                            try:
                                kwargs = next(items)
                            except StopIteration:
                                break
                            except Exception as err:  # the input's own: the map's error
                                hand_on(index, (index, False, err))
                                break
                            nursery.start_soon(one, index, kwargs)
                            index += 1
        finally:
            self._maps.discard(scope)

    def _stop_maps(self) -> None:
        """Cancel the maps still running: a loop left early whose generator
        is still held (and so not closed) would otherwise keep its map
        waiting for a reader, and the pool's block with it."""
        for scope in self._maps:
            scope.cancel()


def _check_retries(retries: Any) -> None:
    if type(retries) is not int or retries < 0:
        raise ValueError(f'retries must be an int >= 0, not {retries!r}')


def _first_parameter(fn: Callable[..., Any]) -> str:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as err:
        raise TypeError(f'cannot map over {fn!r}: {err}') from err
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            inspect.Parameter.KEYWORD_ONLY):
        raise TypeError(f'map passes each item as the first named parameter of '
                        f'{fn.__name__}, which has none; use starmap')
    return params[0].name


@asynccontextmanager
async def open_actor_pool(size: int, *, enable_modules: Sequence[str] = (),
                          name: str = 'pool', concurrency: int = 1, retries: int = 0,
                          max_restarts: int = 100, within: float = 60.0,
                          loglevel: Optional[str] = None, infect_asyncio: bool = False,
                          **root_kwargs: Any) -> AsyncIterator[ActorPool]:
    """Start ``size`` workers named ``name-0`` ... and yield the pool.

    With ``infect_asyncio`` the workers run asyncio, trio as its guest, so
    their functions may use asyncio libraries (``tractorish.to_asyncio``).

    Workers are restarted when they die (at most ``max_restarts`` times
    within ``within`` seconds, else :class:`SupervisorError`). Leaving the
    block waits for ``cast_nowait`` calls, then stops every worker. Opens
    the root actor first if none runs here (``root_kwargs`` go to it).
    """
    if size < 1 or concurrency < 1:
        raise ValueError('size and concurrency must be at least 1')
    _check_retries(retries)
    check_modules(enable_modules)
    async with open_supervisor('one_for_one', max_restarts=max_restarts, within=within,
                               **root_kwargs) as sup:
        names = [f'{name}-{i}' for i in range(size)]
        async with trio.open_nursery() as starter:
            for worker in names:
                starter.start_soon(functools.partial(
                    sup.start_actor, worker, enable_modules=enable_modules,
                    loglevel=loglevel, infect_asyncio=infect_asyncio))
        with collapsing_groups():
            async with trio.open_nursery() as nursery:
                pool = ActorPool(sup, names, nursery, concurrency, retries)
                try:
                    yield pool
                finally:
                    pool._stop_maps()
