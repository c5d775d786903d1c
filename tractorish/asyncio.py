"""An actor tree opened from an asyncio program: trio runs as the loop's guest.

``async with tractorish.asyncio.open_nursery() as an:`` starts trio inside
the running asyncio loop (``trio.lowlevel.start_guest_run``), opens
:func:`tractorish.open_nursery` there and hands back asyncio-side wrappers:
every ``await`` on them runs the trio-side call in a task of its own in the
guest run, under its own cancel scope, and its outcome comes back through
an asyncio future. This module owns that bridge and nothing else: the
supervision, the calls and their cancellation are the trio runtime's.

Every trio task and every trio-side object lives in the loop's thread (a
guest run executes its tasks in the host's callbacks), so asyncio code may
read their plain attributes; what changes them goes through the trio token.
No asyncio task is created: only futures.
"""
from __future__ import annotations

import asyncio
import collections
import functools
from contextlib import asynccontextmanager
from typing import (Any, AsyncContextManager, AsyncIterator, Callable, Deque, Dict, List,
                    Optional, Tuple)

import outcome
import trio

from ._groups import combine_errors
from .runtime import current_actor
from .supervise import open_nursery as open_trio_nursery

__all__ = ['ActorNursery', 'Context', 'MsgStream', 'Portal', 'open_nursery']

_ENDED = 'the actor tree of this tractorish.asyncio nursery has ended'

# The guest run of this process: the root actor is process-wide, so there
# is one tree (and one guest run) per process.
_active: Optional['_GuestRun'] = None


class _Link:
    """One trio task working for asyncio: its cancel scope, its futures, its owner.

    ``done`` gets the task's outcome (cancelled if the task was). A task
    that holds a context manager open for an asyncio block also has
    ``first`` (the value entered), ``released`` (set by asyncio when the
    block ends normally or with ``error``) and an ``owner``: the asyncio
    task in the block, cancelled if the trio side ends the block first.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, held: bool = False) -> None:
        self.scope = trio.CancelScope()
        self.done: asyncio.Future = loop.create_future()
        self.first: Optional[asyncio.Future] = loop.create_future() if held else None
        self.owner = asyncio.current_task() if held else None
        self.released = trio.Event()
        self.error: Optional[BaseException] = None
        self.releasing = False
        self.owner_cancelled = False

    def set_first(self, value: Any) -> None:
        assert self.first is not None
        _settle(self.first, outcome.Value(value))

    def set_done(self, result: Optional[outcome.Outcome]) -> None:
        """Settle ``done`` (``None``: cancelled); an unentered ``first`` too."""
        if self.first is not None and not self.first.done():
            _settle(self.first, result)
            result = None if result is None else outcome.Value(None)
        _settle(self.done, result)

    def cancel_owner(self) -> None:
        """The trio side ended the block: cancel the asyncio task still in it."""
        if (not self.releasing and not self.owner_cancelled and self.owner is not None
                and not self.owner.done()):
            self.owner_cancelled = self.owner.cancel()


def _settle(future: asyncio.Future, result: Optional[outcome.Outcome]) -> None:
    if future.done():
        return
    if result is None:
        future.cancel()
    elif isinstance(result, outcome.Error):
        future.set_exception(result.error)
    elif isinstance(result, outcome.Value):
        future.set_result(result.value)


class _GuestRun:
    """The trio guest run of one ``open_nursery``, and the calls into it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._token: Optional[trio.lowlevel.TrioToken] = None
        self._calls: Optional[trio.Nursery] = None

    # --- asyncio side -----------------------------------------------------

    @asynccontextmanager
    async def open(self, root_kwargs: Dict[str, Any]) -> AsyncIterator[Any]:
        """Start the guest run, opening the trio actor nursery; yield it."""
        link = _Link(self.loop, held=True)
        trio.lowlevel.start_guest_run(
            self._main, link, root_kwargs,
            run_sync_soon_threadsafe=self.loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=self.loop.call_soon,
            done_callback=link.set_done,
            # leave the wakeup fd to asyncio (servers set signal handlers);
            # trio's signal receivers still work through its token
            host_uses_signal_set_wakeup_fd=True)
        async with self._held(link) as nursery:
            yield nursery

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` in a trio task; its result or error here.

        If the awaiting asyncio task is cancelled, the trio task is cancelled
        and waited for, then ``CancelledError`` is raised.
        """
        return await self.call_keeping(None, functools.partial(fn, *args, **kwargs))

    async def call_keeping(self, keep: Optional[Callable[[Any], None]],
                           fn: Callable[[], Any]) -> Any:
        """:meth:`call` of ``fn()``, for a call that takes something (a
        stream's next value): if the awaiting task is cancelled after the
        trio call took it, ``keep(result)`` is given it before
        ``CancelledError`` goes on."""
        link = _Link(self.loop)
        self._start(link, fn)
        return await self._result(link, link.done, keep)

    @asynccontextmanager
    async def hold(self, make_cm: Callable[[], Any],
                   wrap: Callable[[Any], Any]) -> AsyncIterator[Any]:
        """Enter the trio context manager ``make_cm()`` in a trio task for
        the asyncio block; leave it as the block ends (see ``_release``)."""
        link = _Link(self.loop, held=True)
        self._start(link, functools.partial(self._hold, make_cm, link))
        async with self._held(link) as value:
            yield wrap(value)

    @asynccontextmanager
    async def _held(self, link: _Link) -> AsyncIterator[Any]:
        try:
            assert link.first is not None
            yield await self._result(link, link.first)
        except BaseException as error:
            final = await self._release(link, error)
            assert final is not None  # (a block's error always gives one)
            if final is error:
                raise
            raise final
        final = await self._release(link, None)
        if final is not None:
            raise final

    def _start(self, link: _Link, fn: Callable[[], Any]) -> None:
        if not self._soon(self._spawn, link, fn):
            link.set_done(outcome.Error(RuntimeError(_ENDED)))

    async def _result(self, link: _Link, future: asyncio.Future,
                      keep: Optional[Callable[[Any], None]] = None) -> Any:
        """What ``future`` holds; if cancelled first, cancel the trio task,
        wait for it to end and raise ``CancelledError`` (giving ``keep`` what
        the task returned, if it ended with a value all the same)."""
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            self._cancel(link)
            await self._settled(link)
            done = link.done
            if (keep is not None and done.done() and not done.cancelled()
                    and done.exception() is None):
                keep(done.result())
            raise
        return future.result()

    async def _settled(self, link: _Link) -> bool:
        """Wait for the trio task to end, cancelling it if we are cancelled
        meanwhile (and waiting on); True if we were."""
        interrupted = False
        while not link.done.done():
            try:
                await asyncio.wait({link.done})
            except asyncio.CancelledError:
                interrupted = True
                self._cancel(link)
        if not link.done.cancelled():
            link.done.exception()  # retrieved: asyncio logs no "never retrieved"
        return interrupted

    async def _release(self, link: _Link,
                       error: Optional[BaseException]) -> Optional[BaseException]:
        """End a held block; return what to raise (None: nothing).

        An ``Exception`` from the block is raised inside the trio context
        manager, as it would be in trio; ``CancelledError`` (or any other
        ``BaseException``) cancels the trio task instead. Then, as in trio:
        an error of the trio side's exit replaces the block's cancellation
        (Ctrl-C above all); otherwise the block's error stands.
        """
        link.releasing = True
        as_raised: Tuple[Any, ...] = () if error is None else (
            error.__traceback__, error.__cause__, error.__context__,
            error.__suppress_context__)
        if error is None or isinstance(error, Exception):
            link.error = error
            self._soon(link.released.set)
        else:
            self._cancel(link)
        interrupted = await self._settled(link)
        if link.owner_cancelled and hasattr(link.owner, 'uncancel'):
            link.owner.uncancel()  # type: ignore[union-attr]  # we cancelled it (3.11+)
        exit_error = None if link.done.cancelled() else link.done.exception()
        final = _final_error(error, exit_error, interrupted)
        if final is error and error is not None:
            # as raised here: without the trio side's frames nor its "from None"
            (error.__traceback__, error.__cause__, error.__context__,
             error.__suppress_context__) = as_raised
        return final

    def _soon(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` in the trio run; False if it has ended."""
        assert self._token is not None
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            return False
        return True

    def _cancel(self, link: _Link) -> None:
        if self._token is None:  # the run has not started: the scope is not entered
            link.scope.cancel()
        else:
            self._soon(link.scope.cancel)

    # --- trio side --------------------------------------------------------

    async def _main(self, link: _Link, root_kwargs: Dict[str, Any]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with link.scope:
            await self._hold(functools.partial(self._open_tree, root_kwargs), link)

    @asynccontextmanager
    async def _open_tree(self, root_kwargs: Dict[str, Any]) -> AsyncIterator[Any]:
        async with open_trio_nursery(**root_kwargs) as nursery:
            async with trio.open_nursery() as calls:
                self._calls = calls
                try:
                    yield nursery
                finally:  # calls still running when the block ended are cancelled
                    self._calls = None
                    calls.cancel_scope.cancel()

    def _spawn(self, link: _Link, fn: Callable[[], Any]) -> None:
        if self._calls is None:
            self._finish(link, outcome.Error(RuntimeError(_ENDED)))
        else:
            self._calls.start_soon(self._serve, link, fn)

    async def _serve(self, link: _Link, fn: Callable[[], Any]) -> None:
        result: Optional[outcome.Outcome] = None  # stays None if cancelled
        try:
            with link.scope:
                result = outcome.Value(await fn())
        except Exception as error:
            result = outcome.Error(error)
        finally:
            self._finish(link, result)

    async def _hold(self, make_cm: Callable[[], Any], link: _Link) -> None:
        async with make_cm() as value:
            self.loop.call_soon_threadsafe(link.set_first, value)
            try:
                await link.released.wait()
            except BaseException:  # the trio side ended the block, as trio would
                self.loop.call_soon_threadsafe(link.cancel_owner)
                raise
            if link.error is not None:
                raise link.error

    def _finish(self, link: _Link, result: Optional[outcome.Outcome]) -> None:
        self.loop.call_soon_threadsafe(link.set_done, result)


def _final_error(error: Optional[BaseException], exit_error: Optional[BaseException],
                 interrupted: bool) -> Optional[BaseException]:
    """What leaving a held block raises, as trio would: the trio side's exit
    error replaces the block's cancellation and joins its real error (a
    KeyboardInterrupt above all); ``CancelledError`` if the wait for the
    exit was cancelled and nothing else is to be raised."""
    if exit_error is None or exit_error is error:
        if error is None and interrupted:
            return asyncio.CancelledError()
        return error
    if error is None or isinstance(error, asyncio.CancelledError):
        return exit_error
    if isinstance(error, KeyboardInterrupt):
        return error
    return combine_errors([exit_error, error])


def _claim(loop: asyncio.AbstractEventLoop) -> _GuestRun:
    global _active
    if _active is not None:
        raise RuntimeError('tractorish.asyncio.open_nursery is already open in this '
                           'process: one actor tree (one trio guest run, one root actor) '
                           'per process; start more actors from that nursery instead')
    if current_actor(err_on_no_runtime=False) is not None:
        raise RuntimeError('this process already runs a tractorish actor in trio; '
                           'tractorish.asyncio.open_nursery opens a root actor of its own')
    _active = _GuestRun(loop)
    return _active


@asynccontextmanager
async def open_nursery(**root_kwargs: Any) -> AsyncIterator['ActorNursery']:
    """Open an actor tree from asyncio code; yield its :class:`ActorNursery`.

    Must run inside a running asyncio loop. Starts trio as a guest of the
    loop and opens :func:`tractorish.open_nursery` (and with it the root
    actor: ``root_kwargs`` are its keywords) there; the guest run ends with
    the block. One per process: a second one while this is open raises
    ``RuntimeError``.

    The block's exit mirrors the trio nursery's. Ending normally waits for
    the ``run_in_actor`` children and for the daemon actors, which must be
    cancelled by the program (``portal.cancel_actor()`` or
    ``an.cancel()``), as in trio. An error in the block, or the block's
    task being cancelled (``asyncio.wait_for``, Ctrl-C under
    ``asyncio.run``), cancels every actor, then the error is re-raised
    with any error of the children. An actor failing (a daemon actor
    dying, say) cancels the asyncio task in the block, and its error is
    raised at the exit instead of that ``CancelledError``. Cancelling the
    task while the exit waits cancels every actor too.
    """
    global _active
    run = _claim(asyncio.get_running_loop())
    try:
        async with run.open(root_kwargs) as nursery:
            yield ActorNursery(run, nursery)
    finally:  # (the guest run has ended: the exit waited for it)
        _active = None


class ActorNursery:
    """asyncio's face of a :class:`tractorish.ActorNursery` (see :func:`open_nursery`).

    Each async method runs the trio one and returns its result; cancelling
    the awaiting asyncio task cancels that call in trio, waits for it to
    end and raises ``CancelledError``.
    """

    def __init__(self, run: _GuestRun, nursery: Any) -> None:
        self._run = run
        self._nursery = nursery

    @property
    def cancel_called(self) -> bool:
        """True once :meth:`cancel` was called, or an error cancelled the children."""
        return bool(self._nursery.cancel_called)

    @property
    def cancelled_caught(self) -> bool:
        """True once a :meth:`cancel` has ended every child."""
        return bool(self._nursery.cancelled_caught)

    @property
    def children(self) -> List[Any]:
        """The child processes still running (each has ``name``, ``pid``, ``uid``)."""
        return list(self._nursery.children)

    @property
    def errors(self) -> Dict[Tuple[str, str], BaseException]:
        """The errors of the ``run_in_actor`` children, by actor uid."""
        return dict(self._nursery.errors)

    async def start_actor(self, name: str, **kwargs: Any) -> 'Portal':
        """Start a daemon actor (:meth:`tractorish.ActorNursery.start_actor`'s
        keywords); its :class:`Portal`. Cancelling this call kills the
        half-started actor."""
        portal = await self._run.call(self._nursery.start_actor, name, **kwargs)
        return Portal(self._run, portal)

    async def run_in_actor(self, fn: Callable[..., Any], **kwargs: Any) -> 'Portal':
        """Start an actor that runs ``fn(**kwargs)`` once (as
        :meth:`tractorish.ActorNursery.run_in_actor`); its :class:`Portal`,
        whose :meth:`Portal.result` gives the result."""
        portal = await self._run.call(self._nursery.run_in_actor, fn, **kwargs)
        return Portal(self._run, portal)

    async def cancel(self, hard_kill: bool = False) -> None:
        """End every child; returns when every process has exited. The trio
        side is shielded (bounded by the runtime's timeouts), so cancelling
        this wait still waits for it."""
        await self._run.call(self._nursery.cancel, hard_kill)


class Portal:
    """asyncio's face of a :class:`tractorish.Portal`.

    Cancelling an awaiting asyncio task cancels the call in trio (and so
    the remote task, as in trio), waits for that to end, then raises
    ``CancelledError``. A remote error is raised as
    :class:`tractorish.RemoteActorError`.
    """

    def __init__(self, run: _GuestRun, portal: Any) -> None:
        self._run = run
        self._portal = portal

    def __repr__(self) -> str:
        return f'<asyncio {self._portal!r}>'

    @property
    def peer_uid(self) -> Optional[Tuple[str, str]]:
        return self._portal.peer_uid  # type: ignore[no-any-return]

    async def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Run the async (trio) function ``fn(**kwargs)`` in the actor; its result."""
        return await self._run.call(self._portal.run, fn, **kwargs)

    async def run_from_ns(self, namespace_path: str, function_name: str,
                          **kwargs: Any) -> Any:
        """Run ``namespace_path.function_name(**kwargs)`` in the actor; its result."""
        return await self._run.call(self._portal.run_from_ns, namespace_path,
                                    function_name, **kwargs)

    async def wait_for_result(self) -> Any:
        """The result of a ``run_in_actor`` actor's function, or its error.
        Cancelling the wait leaves the actor running."""
        return await self._run.call(self._portal.wait_for_result)

    result = wait_for_result  # tractor's older name

    async def cancel_actor(self, timeout: Optional[float] = None) -> bool:
        """Ask the actor to shut down; True if it acknowledged within
        ``timeout`` (default: the runtime's). Shielded in trio for that long."""
        return bool(await self._run.call(self._portal.cancel_actor, timeout))

    def open_stream_from(self, async_gen_func: Callable[..., Any],
                         **kwargs: Any) -> 'AsyncContextManager[MsgStream]':
        """``async with portal.open_stream_from(gen, **kw) as stream:`` stream
        the values of a remote async generator (``async for``).

        Leaving the block early (break, error, cancellation) cancels the
        remote generator, as in trio; an error in the block is raised again
        after that.
        """
        return self._run.hold(
            lambda: self._portal.open_stream_from(async_gen_func, **kwargs),
            lambda stream: MsgStream(self._run, stream))

    def open_context(self, fn: Callable[..., Any],
                     **kwargs: Any) -> 'AsyncContextManager[Tuple[Context, Any]]':
        """``async with portal.open_context(fn, **kw) as (ctx, first):`` call
        the ``@tractorish.context`` function ``fn``.

        As in trio: leaving normally waits for the callee's result; an error
        in the block is sent to the callee, which is cancelled; a remote
        error cancels the asyncio task in the block and is raised at its
        exit instead of that ``CancelledError``.
        """
        return self._run.hold(
            lambda: self._portal.open_context(fn, **kwargs),
            lambda pair: (Context(self._run, pair[0]), pair[1]))


class Context:
    """asyncio's face of the caller's side of a :class:`tractorish.Context`."""

    def __init__(self, run: _GuestRun, context: Any) -> None:
        self._run = run
        self._context = context

    @property
    def cid(self) -> str:
        return self._context.cid  # type: ignore[no-any-return]

    @property
    def cancel_called(self) -> bool:
        return bool(self._context.cancel_called)

    def open_stream(self) -> 'AsyncContextManager[MsgStream]':
        """``async with ctx.open_stream() as stream:`` the context's two-way
        stream; leaving the block normally ends the callee's iteration."""
        return self._run.hold(self._context.open_stream,
                              lambda stream: MsgStream(self._run, stream))

    async def result(self) -> Any:
        """Wait for the callee's return value, or raise its error."""
        return await self._run.call(self._context.result)

    async def cancel(self) -> None:
        """Cancel the callee's task and wait (bounded) for it to confirm."""
        await self._run.call(self._context.cancel)


class MsgStream:
    """asyncio's face of a :class:`tractorish.MsgStream`: ``async for``,
    :meth:`receive`, :meth:`send`. Cancelling a wait cancels that
    ``receive`` or ``send`` in trio."""

    def __init__(self, run: _GuestRun, stream: Any) -> None:
        self._run = run
        self._stream = stream
        # values received in trio for a wait cancelled meanwhile: the next ones
        self._kept: Deque[Any] = collections.deque()

    @property
    def closed(self) -> bool:
        return bool(self._stream.closed)

    async def receive(self) -> Any:
        """The next value; ``trio.EndOfChannel`` once the other side stopped,
        a :class:`tractorish.RemoteActorError` if it failed. A wait
        cancelled (a timeout) loses no value: one taken meanwhile comes next."""
        if self._kept:
            return self._kept.popleft()
        return await self._run.call_keeping(self._kept.append, self._stream.receive)

    async def send(self, value: Any) -> None:
        """Send ``value`` (context streams); waits while the other side has
        no room; ``trio.BrokenResourceError`` if it closed its end."""
        await self._run.call(self._stream.send, value)

    async def aclose(self) -> None:
        """Close our end (idempotent); the other side's iteration ends."""
        await self._run.call(self._stream.aclose)

    def __aiter__(self) -> 'MsgStream':
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

