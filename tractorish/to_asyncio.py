"""asyncio inside an actor: tractor's ``to_asyncio``.

An actor started with ``infect_asyncio=True`` runs an asyncio event loop
with trio as its guest (``trio.lowlevel.start_guest_run``): the actor's
runtime, calls, streams and cancellation are trio's as in any actor, and
its trio code reaches asyncio through two calls:

- ``await run_task(fn, **kwargs)`` runs ``fn(**kwargs)`` as an asyncio
  task and returns its result (or raises its error, with its traceback);
- ``async with open_channel_from(fn, **kwargs) as (first, chan):`` runs
  ``fn(chan, **kwargs)`` as a long-lived asyncio task linked to the block
  by a two-way channel.

Either side's error or cancellation ends both sides, and leaving the block
leaves no asyncio task behind. Both work wherever trio runs as asyncio's
guest (an infected actor, or a tree opened by an asyncio program with
``tractorish.asyncio.open_nursery``); anywhere else they say so.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional, Tuple

import trio

from ._exceptions import TractorishError

# how long a cancelled asyncio task may take to finish before we stop
# waiting for it (it is cancelled; it may still be running its cleanup)
CANCEL_WAIT = 5.0

log = logging.getLogger('tractorish.asyncio')


class AsyncioCancelled(TractorishError):
    """The asyncio task was cancelled by asyncio, not by the trio side."""


class AsyncioTaskExited(TractorishError):
    """The asyncio task of a channel returned while the trio side still
    expected its first value."""


class TrioCancelled(TractorishError):
    """tractor's: the trio side was cancelled (never raised here: the
    asyncio task gets asyncio's own ``CancelledError``)."""


class TrioTaskExited(AsyncioCancelled):
    """tractor's: the trio side ended first (never raised here)."""


NOT_INFECTED = ('this actor does not run asyncio: start it with '
                'start_actor(..., infect_asyncio=True) (or open the tree from an '
                'asyncio program with tractorish.asyncio.open_nursery())')


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(NOT_INFECTED) from None


async def _wait_for(task: 'asyncio.Future[Any]') -> Any:
    """Wait from trio for an asyncio task (or future); its outcome here.

    Cancelling this cancels the task and waits (shielded, up to
    ``CANCEL_WAIT`` s) for it to end before ``Cancelled`` goes on.
    """
    done = _done_event(task)
    try:
        await done.wait()
    except BaseException:
        task.cancel()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CANCEL_WAIT):
                await done.wait()
        raise
    if task.cancelled():
        raise AsyncioCancelled(f'the asyncio task {_name(task)} was cancelled by '
                               f'asyncio, not by its trio caller')
    return task.result()  # (raises its error, with its own traceback)


def _done_event(task: 'asyncio.Future[Any]') -> trio.Event:
    """A trio event set when ``task`` is done."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    task.add_done_callback(lambda _: token.run_sync_soon(done.set))
    return done


def _name(task: 'asyncio.Future[Any]') -> str:
    get_name = getattr(task, 'get_name', None)
    return repr(get_name()) if get_name is not None else repr(task)


async def run_task(func: Callable[..., Awaitable[Any]], *, qsize: int = 1,
                   **kwargs: Any) -> Any:
    """Run ``func(**kwargs)`` as an asyncio task; return its result.

    Its exception is raised here, with its asyncio traceback; an asyncio
    task cancelled by someone else raises :class:`AsyncioCancelled`.
    Cancelling this call cancels the task (and waits for it to end).
    ``qsize`` is tractor's and changes nothing.
    """
    loop = _running_loop()
    if not callable(func):
        raise TypeError(f'run_task() takes an async function, not {func!r}')
    coro = func(**kwargs)
    if not inspect.isawaitable(coro):
        raise TypeError(f'{func!r} returned {coro!r}, not something asyncio can await')
    return await _wait_for(loop.create_task(coro))  # type: ignore[arg-type]


class LinkedTaskChannel(trio.abc.Channel[Any]):
    """The two ends of a channel between a trio task and an asyncio task.

    trio side: ``await send(value)``, ``await receive()`` (and ``async
    for``), ending with ``trio.EndOfChannel`` once the asyncio task has
    returned. asyncio side: ``started_nowait(value)`` once, first;
    ``send_nowait(value)`` (``trio.WouldBlock`` if ``qsize`` values are
    waiting unread); ``await get()`` for what trio sent.
    """

    def __init__(self, qsize: int) -> None:
        self._to_trio, self._from_aio = trio.open_memory_channel[Any](qsize)
        self._to_aio: 'asyncio.Queue[Any]' = asyncio.Queue()
        self._token = trio.lowlevel.current_trio_token()
        self._started = False
        self._task: Optional['asyncio.Task[Any]'] = None
        self._cancelling = False  # the trio side cancels the task

    # --- the asyncio side ----------------------------------------------------

    def started_nowait(self, value: Any = None) -> None:
        """Hand the trio side its first value (asyncio side; once, first)."""
        if self._started:
            raise RuntimeError('started_nowait() was already called on this channel')
        self._started = True
        self._to_trio.send_nowait(value)

    def send_nowait(self, value: Any) -> None:
        """Send ``value`` to the trio side (asyncio side)."""
        if not self._started:
            raise RuntimeError('call chan.started_nowait(first) before sending')
        self._to_trio.send_nowait(value)

    async def get(self) -> Any:
        """The next value the trio side sent (asyncio side)."""
        return await self._to_aio.get()

    # --- the trio side -------------------------------------------------------

    async def send(self, value: Any) -> None:
        """Send ``value`` to the asyncio task (trio side). A checkpoint."""
        await trio.lowlevel.checkpoint()
        self._to_aio.put_nowait(value)

    async def receive(self) -> Any:
        """The next value the asyncio task sent; ``trio.EndOfChannel`` once
        it has returned (its error, if it failed; :class:`AsyncioCancelled`
        if asyncio cancelled it)."""
        try:
            return await self._from_aio.receive()
        except trio.EndOfChannel:
            failure = self._failure()
            if failure is not None:
                raise failure from None
            raise

    def _failure(self) -> Optional[BaseException]:
        """The ended task's error, or AsyncioCancelled if asyncio (not the
        trio side) cancelled it; None if it returned or still runs."""
        task = self._task
        if task is None or not task.done():
            return None
        if task.cancelled():
            return None if self._cancelling else AsyncioCancelled(
                f'the asyncio task {_name(task)} was cancelled by asyncio, not by the '
                f'trio side')
        return task.exception()

    async def aclose(self) -> None:
        """Stop receiving (trio side)."""
        await self._from_aio.aclose()

    async def wait_for_result(self) -> Any:
        """Wait for the asyncio task to end; its result (or error)."""
        assert self._task is not None
        return await _wait_for(self._task)

    def cancel_asyncio_task(self, msg: str = '') -> None:
        """Cancel the asyncio task now (trio side)."""
        if self._task is not None:
            self._cancelling = True
            self._task.cancel(msg or None)

    def closed(self) -> bool:
        return self._task is not None and self._task.done()


def _target_kwargs(target: Callable[..., Any], chan: LinkedTaskChannel,
                   kwargs: dict) -> dict:
    """Hand the channel as ``chan``, or tractor's older ``to_trio`` /
    ``from_trio`` pair, as ``target`` asks."""
    params = inspect.signature(target).parameters
    if 'chan' in params:
        return {**kwargs, 'chan': chan}
    if 'to_trio' in params:
        extra: Dict[str, Any] = {'to_trio': chan._to_trio}
        if 'from_trio' in params:
            extra['from_trio'] = chan._to_aio
        return {**kwargs, **extra}
    raise TypeError(f'{getattr(target, "__qualname__", target)} must take a `chan` '
                    f'parameter (or tractor\'s older `to_trio`) to be run with '
                    f'open_channel_from()')


@asynccontextmanager
async def open_channel_from(target: Callable[..., Awaitable[Any]], *, qsize: int = 2**8,
                            suppress_graceful_exits: bool = True,
                            **kwargs: Any) -> AsyncIterator[Tuple[Any, LinkedTaskChannel]]:
    """Run ``target(chan, **kwargs)`` as an asyncio task; yield ``(first, chan)``.

    ``first`` is what the task passed to ``chan.started_nowait()``. The
    block is cancelled if the task fails, and its error is raised at the
    block's exit (:class:`AsyncioCancelled` if asyncio cancelled it);
    leaving the block cancels the task if it still runs and waits (up to
    ``CANCEL_WAIT`` s) for it to end. An error or cancel in
    the block is raised as itself. (tractor's order, ``(first, chan)``.)
    """
    loop = _running_loop()
    chan = LinkedTaskChannel(qsize)
    call_kwargs = _target_kwargs(target, chan, kwargs)

    async def run_target() -> Any:
        try:
            return await target(**call_kwargs)
        finally:
            chan._token.run_sync_soon(chan._to_trio.close)

    task = chan._task = loop.create_task(run_target())
    with trio.CancelScope() as body:
        def on_done(_: Any) -> None:
            if chan._failure() is not None:  # its error (or asyncio's cancel) ends the block
                chan._token.run_sync_soon(body.cancel)
        task.add_done_callback(on_done)
        try:
            try:
                first = await chan._from_aio.receive()
            except trio.EndOfChannel:
                await _wait_for(task)  # its error, if it failed
                raise AsyncioTaskExited(f'{getattr(target, "__qualname__", target)} '
                                        f'returned before chan.started_nowait()') from None
            yield first, chan
        finally:
            if not task.done():
                chan._cancelling = True
            with trio.CancelScope(shield=True):
                await _end(task)
    failure = chan._failure()
    if failure is not None:
        raise failure


async def _end(task: 'asyncio.Task[Any]') -> None:
    """Cancel ``task`` if it still runs; wait (bounded) for it to end."""
    if task.done():
        return
    done = _done_event(task)
    task.cancel()
    with trio.move_on_after(CANCEL_WAIT):  # (its outcome is its caller's business)
        await done.wait()


def run_as_asyncio_guest(trio_main: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run ``trio_main(*args)`` as a guest of a new asyncio event loop;
    return its result. An infected actor's start.

    As ``asyncio.run`` does, except at the end: the asyncio tasks left are
    cancelled and waited for up to ``CANCEL_WAIT`` seconds, not for ever,
    so one that ignores its cancellation cannot keep the actor alive.
    """
    async def host() -> Any:
        loop = asyncio.get_running_loop()
        done: 'asyncio.Future[Any]' = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main, *args,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: loop.call_soon_threadsafe(done.set_result, outcome),
            host_uses_signal_set_wakeup_fd=True)
        outcome = await asyncio.shield(done)
        return outcome.unwrap()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(host())
    finally:
        try:
            _cancel_left(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(asyncio.wait(
                [loop.create_task(loop.shutdown_default_executor())], timeout=CANCEL_WAIT))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_left(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on ``loop``; wait (bounded) for them."""
    left = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not left:
        return
    for task in left:
        task.cancel()
    loop.run_until_complete(asyncio.wait(left, timeout=CANCEL_WAIT))
    stubborn = [task for task in left if not task.done()]
    if stubborn:
        log.warning('%d asyncio task(s) ignored their cancellation for %g s; leaving '
                    'them: %s', len(stubborn), CANCEL_WAIT,
                    ', '.join(repr(task.get_coro()) for task in stubborn))
    for task in left:
        if task.done() and not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({'message': 'an asyncio task failed as the '
                                         'actor ended', 'exception': task.exception(),
                                         'task': task})


__all__ = ['AsyncioCancelled', 'AsyncioTaskExited', 'LinkedTaskChannel', 'TrioCancelled',
           'TrioTaskExited', 'open_channel_from', 'run_as_asyncio_guest', 'run_task']
