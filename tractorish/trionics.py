"""Structured-concurrency helpers on plain trio, with ``tractor.trionics``' meaning.

It owns: unwrapping one-error groups (:class:`collapse_eg`), an optional
nursery, entering many async context managers at once, a per-process cache
of shared resources (:func:`maybe_open_context`) and a tokio-style
broadcast channel. Only :func:`maybe_open_context` without ``tn=`` touches
the actor runtime, which it imports then: this module loads nothing but trio.
"""
from __future__ import annotations

import logging
from collections import deque
from contextlib import asynccontextmanager
from types import ModuleType, TracebackType
from typing import (AbstractSet, Any, AsyncContextManager, AsyncIterator, Awaitable,
                    Callable, Deque, Dict, Generic, Hashable, Iterable, List, Optional,
                    Protocol, Tuple, Type, TypeVar, Union)

import trio

from ._compat import BaseExceptionGroup

__all__ = [
    'AsyncReceiver', 'BroadcastReceiver', 'Lagged', 'broadcast_receiver',
    'collapse_eg', 'gather_contexts', 'get_collapsed_eg', 'is_multi_cancelled',
    'maybe_open_context', 'maybe_open_nursery', 'start_or_cancel',
]

log = logging.getLogger(__name__)
T = TypeVar('T')
T_co = TypeVar('T_co', covariant=True)
COLLAPSED_NOTE = '( ^^^ this exc was collapsed from a group ^^^ )'


# --- exception groups ----------------------------------------------------------

def get_collapsed_eg(group: BaseExceptionGroup) -> Optional[BaseException]:
    """``group`` with its one-member groups unwrapped (maybe a group of several
    inside), or ``None`` if ``group`` itself has several members."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return None if exc is group else exc


def is_multi_cancelled(group: BaseException) -> Union[BaseExceptionGroup, bool]:
    """The sub-group of every ``trio.Cancelled`` in ``group``, else ``False``."""
    if not isinstance(group, BaseExceptionGroup):
        return False
    cancelled = group.subgroup(lambda exc: isinstance(exc, trio.Cancelled))
    return cancelled if cancelled is not None else False


class collapse_eg:
    """Raise a group's lone exception, leaving the block, instead of the group.

    Use as ``async with collapse_eg():`` or ``with collapse_eg():``; never a
    checkpoint. A group that comes down to one exception (see
    :func:`get_collapsed_eg`) whose type is not in ``ignore`` is replaced by
    it, raised from its own ``__cause__`` (or from ``None``), with a note
    if ``add_notes`` (3.11+). Other groups leave unchanged, so several
    ``trio.Cancelled`` still reach their cancel scopes. ``hide_tb`` sets
    ``__tracebackhide__`` in these frames.
    """

    def __init__(self, hide_tb: bool = True,
                 ignore: AbstractSet[Type[BaseException]] = frozenset(),
                 add_notes: bool = True) -> None:
        self._hide_tb = hide_tb
        self._ignore = ignore
        self._add_notes = add_notes

    def __enter__(self) -> None:
        return None

    def __exit__(self, etype: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        __tracebackhide__ = self._hide_tb  # noqa: F841 - read by traceback printers
        if not isinstance(exc, BaseExceptionGroup):
            return
        inner = get_collapsed_eg(exc)
        if inner is None or type(inner) in self._ignore:
            return
        # 3.10's exceptions have no add_note, and the backport cannot add one
        if self._add_notes and hasattr(inner, 'add_note') \
                and COLLAPSED_NOTE not in getattr(inner, '__notes__', ()):
            inner.add_note(COLLAPSED_NOTE)
        raise inner from inner.__cause__

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, etype: Optional[Type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        __tracebackhide__ = self._hide_tb  # noqa: F841
        self.__exit__(etype, exc, tb)


# --- nurseries and groups of context managers ----------------------------------

@asynccontextmanager
async def maybe_open_nursery(nursery: Optional[Any] = None, shield: bool = False,
                             lib: ModuleType = trio, **kwargs: Any) -> AsyncIterator[Any]:
    """Yield ``nursery`` if given (unchanged, not waited for), else a new one.

    A given nursery may be anything nursery-like, e.g. an ``ActorNursery``.
    A new ``trio.open_nursery(**kwargs)`` gets ``shield`` on its cancel
    scope and, like any nursery, waits for its tasks on exit; unless
    shielded, cancelling the caller cancels them. ``TypeError`` for a
    ``lib`` other than trio.
    """
    if lib is not trio:
        raise TypeError(f'maybe_open_nursery(): only lib=trio is supported, not {lib!r}')
    if nursery is not None:
        yield nursery
        return
    async with trio.open_nursery(**kwargs) as new_nursery:
        new_nursery.cancel_scope.shield = shield
        yield new_nursery


async def start_or_cancel(nursery: trio.Nursery, async_fn: Callable[..., Awaitable[Any]],
                          *args: Any, name: Optional[str] = None) -> Any:
    """``nursery.start(async_fn, *args)``; if the caller was cancelled while
    the task started, its ``Cancelled``, not trio's ``RuntimeError`` about a
    task that never called ``task_status.started()``."""
    try:
        return await nursery.start(async_fn, *args, name=name)
    except RuntimeError:
        await trio.lowlevel.checkpoint_if_cancelled()
        raise


def _encloses_current_task(nursery: trio.Nursery) -> bool:
    """True if the calling task runs inside ``nursery``."""
    task = trio.lowlevel.current_task()
    if nursery in task.child_nurseries:
        return True
    while task.parent_nursery is not None:
        parent = task.parent_nursery
        opened = parent.parent_task.child_nurseries
        # listed outermost first: those opened inside ours do not contain us
        if nursery in opened and opened.index(nursery) <= opened.index(parent):
            return True
        task = parent.parent_task
    return False


class _Gathering:
    """What :func:`gather_contexts` shares with its one task per manager."""

    def __init__(self, count: int) -> None:
        self.values: List[Any] = [None] * count
        self.to_enter = self.running = count
        self.all_entered, self.exit_now, self.all_exited = trio.Event(), trio.Event(), trio.Event()

    async def hold(self, index: int, mngr: AsyncContextManager[Any]) -> None:
        """Stay inside ``mngr`` until told to exit; errors go to the nursery."""
        try:
            async with mngr as value:
                self.values[index] = value
                self.to_enter -= 1
                if self.to_enter == 0:
                    self.all_entered.set()
                await self.exit_now.wait()
        finally:
            self.running -= 1
            if self.running == 0:
                self.all_exited.set()


@asynccontextmanager
async def gather_contexts(mngrs: Iterable[AsyncContextManager[T]],
                          tn: Optional[trio.Nursery] = None) -> AsyncIterator[Tuple[T, ...]]:
    """Enter every manager at once; yield their values in input order.

    Each manager is entered, held and exited by a task of its own, in
    ``tn`` if given (it must enclose the caller, else ``RuntimeError``),
    else in a new nursery; exits run concurrently, in no set order. If an
    ``__aenter__`` fails, the nursery is cancelled: entered managers exit
    with ``trio.Cancelled``, entering ones are cancelled, and the error
    propagates (out of ``tn`` if given; a lone one as itself, see
    :class:`collapse_eg`). Cancelling
    the caller exits them all the same way; with ``tn``, they may finish
    exiting after this returns. ``ValueError`` if ``mngrs`` is empty.
    """
    mngrs = list(mngrs)
    if not mngrs:
        raise ValueError('gather_contexts() needs at least one async context manager')
    if tn is not None and not _encloses_current_task(tn):
        raise RuntimeError('gather_contexts(tn=...): the nursery must enclose the caller')
    gathering = _Gathering(len(mngrs))
    async with collapse_eg(), maybe_open_nursery(tn) as nursery:
        for index, mngr in enumerate(mngrs):
            nursery.start_soon(gathering.hold, index, mngr, name=f'gather_contexts[{index}]')
        try:
            await gathering.all_entered.wait()
            yield tuple(gathering.values)
        finally:
            gathering.exit_now.set()
            if tn is not None:  # a nursery of our own waits for them anyway
                await gathering.all_exited.wait()


# --- a per-process cache of shared resources ------------------------------------

class _Resource:
    """One cached resource: its value, its users and its holder task's life."""

    def __init__(self) -> None:
        self.value: Any = None
        self.users = 0
        self.no_more_users, self.torn_down = trio.Event(), trio.Event()
        self.teardown_error: Optional[Exception] = None

    async def hold(self, acm_func: Callable[..., AsyncContextManager[Any]],
                   kwargs: Dict[str, Any],
                   task_status: 'trio.TaskStatus[None]' = trio.TASK_STATUS_IGNORED) -> None:
        """Enter the resource, report it started, exit once the last user leaves."""
        entered = False
        try:
            async with acm_func(**kwargs) as value:
                entered, self.value = True, value
                task_status.started()
                await self.no_more_users.wait()
        except Exception as err:
            # a failing __aexit__ is for the last user to hear: raised here
            # it would crash the long-lived nursery instead
            if not (entered and self.no_more_users.is_set()):
                raise
            self.teardown_error = err
        finally:
            self.torn_down.set()


class _Slot:
    """One cache key: a lock, its resource, the tasks waiting for or using it."""

    def __init__(self) -> None:
        self.lock = trio.StrictFIFOLock()
        self.resource: Optional[_Resource] = None  # kept until the next one replaces it
        self.tasks = 0

    async def join(self, start: Callable[..., Awaitable[Any]],
                   acm_func: Callable[..., AsyncContextManager[Any]],
                   kwargs: Dict[str, Any]) -> Tuple[_Resource, bool]:
        """Become a user of the resource, making it first if there is none."""
        async with self.lock:
            resource = self.resource
            hit = resource is not None and not (
                resource.no_more_users.is_set() or resource.torn_down.is_set())
            if not hit:
                if resource is not None:
                    await resource.torn_down.wait()  # never two at once
                resource = _Resource()
                await start(resource.hold, acm_func, kwargs)
                self.resource = resource
            assert resource is not None
            resource.users += 1
        return resource, hit

    async def leave(self, resource: _Resource) -> None:
        """Stop using ``resource``; the last user tears it down and waits for that."""
        resource.users -= 1
        if resource.users > 0:
            return
        resource.no_more_users.set()
        with trio.CancelScope(shield=True):
            await resource.torn_down.wait()
        if resource.teardown_error is not None:
            raise resource.teardown_error


# per trio run, which is per process in an actor: a test's trio.run never
# meets another run's events
_SLOTS: trio.lowlevel.RunVar[Optional[Dict[Hashable, _Slot]]] = trio.lowlevel.RunVar(
    'tractorish.trionics.maybe_open_context')


def _slots() -> Dict[Hashable, _Slot]:
    slots = _SLOTS.get(None)
    if slots is None:
        slots = {}
        _SLOTS.set(slots)
    return slots


def _user_key(kwargs: Dict[str, Any],
              key: Union[Hashable, Callable[..., Hashable], None]) -> Hashable:
    if callable(key):
        return key(**kwargs)
    if key is not None:
        return key
    for name, value in kwargs.items():
        try:
            hash(value)
        except TypeError:
            raise TypeError(f'maybe_open_context(): kwarg {name!r} is unhashable '
                            f'({type(value).__name__}); pass key= to name the resource') from None
    return tuple(sorted(kwargs.items(), key=lambda item: item[0]))


def _resource_starter(tn: Optional[trio.Nursery]) -> Callable[..., Awaitable[Any]]:
    """Where resources start: ``tn``, else the running actor's service nursery."""
    if tn is not None:
        if not _encloses_current_task(tn):
            raise RuntimeError('maybe_open_context(tn=...): the nursery must enclose the caller')
        return tn.start
    from .runtime import NoRuntime, current_actor  # only here: plain trio users never load it
    actor = current_actor(err_on_no_runtime=False)
    if actor is None:
        raise NoRuntime('maybe_open_context() needs tn= (a long-lived trio nursery) '
                        'or a running actor (open_root_actor())')
    return actor.start_service


@asynccontextmanager
async def maybe_open_context(
    acm_func: Callable[..., AsyncContextManager[T]],
    kwargs: Optional[Dict[str, Any]] = None,
    key: Union[Hashable, Callable[..., Hashable], None] = None,
    tn: Optional[trio.Nursery] = None,
) -> AsyncIterator[Tuple[bool, T]]:
    """Share one ``acm_func(**kwargs)`` among the process's tasks; yield ``(cache_hit, value)``.

    The cache key is the function's identity (for a bound method, its
    function's and its object's: a bound method is a new object at each
    access) with ``k``, ``k`` being ``key(**kwargs)``,
    ``key``, or the kwargs sorted by name, which must then be hashable
    (else ``TypeError`` names the kwarg). The first entrant enters the
    manager in a task of ``tn`` (it must enclose the caller, else
    ``RuntimeError``) or of the actor's service nursery (``NoRuntime`` with
    neither) and gets ``(False, value)``; a per-key lock holds the others,
    who get ``(True, value)``. If ``__aenter__`` fails or its entrant is
    cancelled, only that entrant gets the error; the next one tries anew.
    The last user to leave has the manager exit in its task and waits for
    that, shielded; an ``Exception`` from ``__aexit__`` is raised there.
    The next entrant then makes a fresh resource.
    """
    kwargs = dict(kwargs or {})
    cache_key = (id(getattr(acm_func, '__func__', acm_func)),
                 id(getattr(acm_func, '__self__', None)), _user_key(kwargs, key))
    start = _resource_starter(tn)
    slots = _slots()
    slot = slots.setdefault(cache_key, _Slot())
    slot.tasks += 1
    try:
        resource, hit = await slot.join(start, acm_func, kwargs)
        try:
            yield hit, resource.value
        finally:
            await slot.leave(resource)
    finally:
        slot.tasks -= 1
        if slot.tasks == 0:
            del slots[cache_key]


# --- broadcast ------------------------------------------------------------------

class AsyncReceiver(Protocol[T_co]):
    """Anything with an async ``receive()``, e.g. a trio receive channel."""
    async def receive(self) -> T_co: ...


class Lagged(trio.TooSlowError):
    """A broadcast subscriber fell further behind than the shared buffer reaches."""


class _Broadcast(Generic[T]):
    """What one broadcast's subscribers share: numbered values, the newest
    in a ring buffer, and one reader at a time (the others wait in ``lot``)."""

    def __init__(self, receive_afunc: Callable[[], Awaitable[T]], max_buffer_size: int) -> None:
        self.receive_afunc = receive_afunc
        self.buffer: Deque[T] = deque(maxlen=max_buffer_size)
        self.pushed = 0  # the number the next value read will get
        self.ended = False
        self.puller: Optional[BroadcastReceiver[T]] = None
        self.pull_scope: Optional[trio.CancelScope] = None
        self.lot = trio.lowlevel.ParkingLot()

    @property
    def oldest(self) -> int:
        return self.pushed - len(self.buffer)

    async def pull_or_wait(self, receiver: 'BroadcastReceiver[T]') -> None:
        """Read one value for everybody, or wait while someone else does.

        A cancelled reader cancels the underlying (cancel-safe) ``receive()``
        and wakes the others: one of them reads next.
        """
        if self.puller is not None:
            await self.lot.park()
            return
        self.puller = receiver
        try:
            with trio.CancelScope() as self.pull_scope:
                value = await self.receive_afunc()
                self.buffer.append(value)
                self.pushed += 1
        except trio.EndOfChannel:
            self.ended = True
        finally:
            self.puller = self.pull_scope = None
            self.lot.unpark_all()


class BroadcastReceiver(trio.abc.ReceiveChannel[T]):
    """One subscriber of a broadcast, for one task; see :func:`broadcast_receiver`.

    It gets every value read since it subscribed, in order, at its own
    pace. Falling more than the buffer size behind raises :class:`Lagged`
    (or, without ``raise_on_lag``, logs a warning) and goes on from the
    oldest value buffered. ``trio.EndOfChannel`` comes after the buffered
    values; ``async for`` stops there.
    """

    def __init__(self, state: _Broadcast[T], raise_on_lag: bool = True) -> None:
        self._state = state
        self._next = state.pushed
        self._raise_on_lag = raise_on_lag
        self._closed = False

    def receive_nowait(self) -> T:
        """The next buffered value, else ``trio.WouldBlock``; never blocks.

        Raises ``Lagged``, ``trio.EndOfChannel`` (values used up, channel
        ended) or, after :meth:`aclose`, ``trio.ClosedResourceError``.
        """
        if self._closed:
            raise trio.ClosedResourceError('this broadcast receiver was closed')
        state = self._state
        if self._next < state.oldest:
            self._catch_up(state.oldest - self._next)
        if self._next < state.pushed:
            value = state.buffer[self._next - state.oldest]
            self._next += 1
            return value
        if state.ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    def _catch_up(self, missed: int) -> None:
        self._next = self._state.oldest
        if self._raise_on_lag:
            raise Lagged(f'this broadcast receiver missed {missed} values; '
                         f'it goes on from the oldest one still buffered')
        log.warning('broadcast receiver %r lagged: skipped %d values', self, missed)

    async def receive(self) -> T:
        """The next value, reading the underlying channel if nobody is.

        Always a checkpoint. Cancel-safe: a cancelled call takes no value,
        and another subscriber takes over its reading. Raises as
        :meth:`receive_nowait`.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                value = self.receive_nowait()
            except trio.WouldBlock:
                await self._state.pull_or_wait(self)
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return value

    @asynccontextmanager
    async def subscribe(self, raise_on_lag: bool = True) -> AsyncIterator['BroadcastReceiver[T]']:
        """A new receiver of every value read from now on, closed on exit.

        Not a checkpoint; ``trio.ClosedResourceError`` if this one is closed.
        """
        if self._closed:
            raise trio.ClosedResourceError('cannot subscribe through a closed receiver')
        subscriber = BroadcastReceiver(self._state, raise_on_lag)
        try:
            yield subscriber
        finally:
            subscriber._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        state = self._state
        if state.puller is self and state.pull_scope is not None:
            state.pull_scope.cancel()
        state.lot.unpark_all()

    async def aclose(self) -> None:
        """Close this receiver only: the channel and other subscribers go on.

        Its blocked ``receive()`` raises ``trio.ClosedResourceError``. A
        checkpoint; closes even if cancelled.
        """
        self._close()
        await trio.lowlevel.checkpoint()


def broadcast_receiver(recv_chan: AsyncReceiver[T], max_buffer_size: int,
                       receive_afunc: Optional[Callable[[], Awaitable[T]]] = None,
                       raise_on_lag: bool = True) -> BroadcastReceiver[T]:
    """The first receiver of a broadcast of ``recv_chan.receive()`` (or
    ``receive_afunc()``) values; more come from its ``subscribe()``.

    The newest ``max_buffer_size`` values stay buffered for subscribers
    behind. Not a checkpoint; ``ValueError`` if ``max_buffer_size < 1``.
    """
    if max_buffer_size < 1:
        raise ValueError(f'max_buffer_size must be at least 1, not {max_buffer_size}')
    state = _Broadcast(receive_afunc or recv_chan.receive, max_buffer_size)
    return BroadcastReceiver(state, raise_on_lag)
