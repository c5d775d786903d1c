"""``Portal``: the calling side's handle on one remote actor."""
from __future__ import annotations

import inspect
import logging
import warnings
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Optional, Tuple

import trio

from .._exceptions import ActorTooSlowError, NoResult, TransportClosed, fresh_copy
from ..msg import MAIN_ALIAS
from ._context import CONTEXT_ATTR, Context, open_context_from
from ._stream import STREAM_ATTR, MsgStream

if TYPE_CHECKING:
    from ..ipc import Channel
    from ._actor import Actor

log = logging.getLogger('tractorish.runtime')


# Functions already checked by Portal.run, with their wire names. Only
# module-level functions get in, which live as long as their modules, so
# plain references keep nothing alive that would otherwise go (a weak
# mapping cost a weak reference per call); bounded all the same.
_RUNNABLE: Dict[Any, Tuple[str, str]] = {}
_RUNNABLE_KEPT = 4096


class FinalResult:
    """The outcome of the function an actor was started to run: set once
    by whoever started it (``run_in_actor``, a supervisor), awaited through
    :meth:`Portal.wait_for_result`."""

    __slots__ = ('_done', '_value', '_error')

    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def set_value(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def set_error(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    async def wait(self) -> Any:
        """The value, or the error raised (a copy with a traceback of its
        own each time: the nursery knows it for the one error it is)."""
        await self._done.wait()
        if self._error is not None:
            raise fresh_copy(self._error)
        return self._value


def _check_runnable(fn: Any) -> None:
    """Refuse what Portal.run cannot call, saying what to use instead."""
    if inspect.isasyncgenfunction(fn) or getattr(fn, STREAM_ATTR, None):
        raise TypeError(f'{fn.__name__} is a stream function: use Portal.open_stream_from, '
                        f'not run')
    if getattr(fn, CONTEXT_ATTR, False):
        raise TypeError(f'{fn.__name__} is a context: use Portal.open_context, not run')


def function_ref(fn: Callable[..., Any]) -> Tuple[str, str]:
    """The ``(ns, func)`` pair naming ``fn`` on the wire."""
    module = getattr(fn, '__module__', None)
    name = getattr(fn, '__name__', None)
    if not module or not name or getattr(fn, '__qualname__', name) != name:
        raise TypeError(f'{fn!r} is not a module-level function, so no actor '
                        f'can look it up by name')
    return ('__main__' if module == MAIN_ALIAS else module), name


class Portal:
    """Call functions in one remote actor over one channel.

    Obtained from :meth:`ActorNursery.start_actor`, ``run_in_actor`` or
    discovery. Every call is independent: many may run at once, each on its
    own call id.
    """

    # how long cancel_actor waits by default (None: the runtime's
    # cancel_timeout); tractor programs may set it, on the class or a portal
    cancel_timeout: Optional[float] = None

    def __init__(self, actor: 'Actor', channel: 'Channel') -> None:
        self.actor = actor
        self.channel = channel
        # the outcome of the function this actor was started to run, set by
        # whoever started it (run_in_actor); None for any other portal
        self.final_result: Optional[FinalResult] = None

    def __repr__(self) -> str:
        peer = self.channel.peer_uid[0] if self.channel.peer_uid else '?'
        return f'<Portal to {peer!r}>'

    @property
    def peer_uid(self) -> Optional[Tuple[str, str]]:
        return self.channel.peer_uid

    @property
    def chan(self) -> 'Channel':
        """The channel to the remote actor (tractor's newer name of ``channel``)."""
        return self.channel

    async def run(self, fn: Callable[..., Any], fn_name: Optional[str] = None, /,
                  **kwargs: Any) -> Any:
        """Run the async function ``fn(**kwargs)`` in the remote actor.

        ``fn`` must be defined at module level in a module the remote actor
        exposes. Returns its result; a remote exception is raised here as
        :class:`RemoteActorError`. If the caller is cancelled while waiting,
        the remote task is cancelled too (and this waits, shielded, up to a
        few seconds for the remote side to confirm) before ``Cancelled``
        propagates.

        A function with no ``await``, ``async for`` or ``async with`` cannot
        suspend: from its second call on, the remote actor runs it to
        completion as soon as it reads the call, without starting a task for
        it (with a copy of the context variables a task would have had).

        tractor's older form ``run('module.path', 'function', **kwargs)``
        works too (with a ``DeprecationWarning``): it is :meth:`run_from_ns`.
        """
        if fn_name is not None and not isinstance(fn, str):
            raise TypeError(f'Portal.run({getattr(fn, "__name__", fn)}, {fn_name!r}): the '
                            f"function's arguments go by keyword, e.g. "
                            f'portal.run(fn, x=1)')
        try:
            ns, name = _RUNNABLE[fn]
        except (KeyError, TypeError):
            if isinstance(fn, str):
                return await self._run_by_name(fn, fn_name, kwargs)
            _check_runnable(fn)
            ns, name = function_ref(fn)
            if len(_RUNNABLE) >= _RUNNABLE_KEPT:
                _RUNNABLE.clear()
            try:
                _RUNNABLE[fn] = (ns, name)
            except TypeError:  # unhashable: just do not cache it
                pass
        return await self._run(ns, name, kwargs)

    async def _run_by_name(self, ns: str, fn_name: Optional[str], kwargs: dict) -> Any:
        if not fn_name:
            raise TypeError("Portal.run('module', 'function') needs the function's "
                            "name too; better, pass the function itself")
        warnings.warn("Portal.run('module', 'function') is tractor's older form: pass "
                      "the function itself, or use Portal.run_from_ns",
                      DeprecationWarning, stacklevel=3)
        return await self._run(ns, fn_name, kwargs)

    async def run_from_ns(self, namespace_path: str, function_name: str, /,
                          **kwargs: Any) -> Any:
        """Run ``namespace_path.function_name(**kwargs)`` remotely.

        As :meth:`run`, naming the function by module path and name;
        ``'self'`` names the remote runtime's own methods.
        """
        return await self._run(namespace_path, function_name, kwargs)

    async def _run(self, namespace_path: str, function_name: str, kwargs: dict) -> Any:
        # ``async with call: return await call.result()``, with the exit
        # awaited only when there is something to cancel (the per-call path)
        call = await self.actor.start_call(
            self.channel, namespace_path, function_name, kwargs)
        try:
            result = await call.result()
        except BaseException as exc:
            await call.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if not call.forget_if_done():
            await call.__aexit__(None, None, None)
        return result

    @asynccontextmanager
    async def open_stream_from(self, async_gen_func: Callable[..., Any],
                               **kwargs: Any) -> AsyncIterator[MsgStream]:
        """Stream the values of a remote async generator.

        ``async for value in stream`` reads them (flow-controlled: the
        generator runs at most a window ahead of us); ``await
        stream.asend(value)`` instead drives it in lock-step, the value
        arriving as the result of the remote ``yield``. Leaving the block
        before the generator is exhausted (break, error, cancellation)
        cancels it remotely and waits, shielded and bounded, for its
        ``finally`` blocks to run.
        """
        if not (inspect.isasyncgenfunction(async_gen_func)
                or getattr(async_gen_func, STREAM_ATTR, None)):
            raise TypeError(f'{async_gen_func!r} is not an async generator function '
                            f'(nor a @stream function)')
        ns, name = function_ref(async_gen_func)
        call = await self.actor.start_call(self.channel, ns, name, kwargs)
        async with call:
            functype = await call.receive_functype()
            if functype != 'asyncgen':
                raise TypeError(f'{ns}.{name} is a remote {functype}, not an async generator')
            yield MsgStream(call, window=self.actor.config.stream_window,
                            generator_caller=True)

    @asynccontextmanager
    async def open_context(self, fn: Callable[..., Any], allow_overruns: bool = False,
                           hide_tb: bool = True,
                           **kwargs: Any) -> AsyncIterator[Tuple[Context, Any]]:
        """Call the ``@context`` function ``fn``; yield ``(ctx, first)``.

        ``first`` is the value the callee passed to ``ctx.started()``.
        Leaving the block normally waits for the callee to return (see
        :meth:`Context.result`); leaving it with an error sends the error to
        the callee and cancels it; a remote error is raised here.
        ``allow_overruns`` is tractor's and changes nothing (flow control
        makes a sender wait instead of overrunning its receiver);
        ``hide_tb`` hides this frame from pytest's tracebacks.
        """
        __tracebackhide__ = hide_tb
        if not getattr(fn, CONTEXT_ATTR, False):
            raise TypeError(f'{fn!r} is not decorated with @tractorish.context')
        ns, name = function_ref(fn)
        call = await self.actor.start_call(self.channel, ns, name, kwargs)
        async with open_context_from(self.actor, call, portal=self) as pair:
            yield pair

    async def stats(self) -> Dict[str, Any]:
        """The remote actor's live counters: calls served, failed and in
        flight, open streams and contexts, messages and bytes each way (in
        all, and per channel), credit waits, restarts, memory, uptime (the
        keys are listed in docs/observability.md).

        A runtime call like any other: cancelling it cancels it remotely.
        """
        return await self._run('self', '_stats', {})

    # --- run_in_actor results ----------------------------------------------

    async def wait_for_result(self, hide_tb: bool = True) -> Any:
        """The result of the function this actor was started to run.

        Only for portals from :meth:`ActorNursery.run_in_actor`; raises
        :class:`NoResult` otherwise. Re-raises the remote error, if any.
        Cancelling the wait leaves the actor running.
        """
        if self.final_result is None:
            raise NoResult(f'{self!r} was not started by run_in_actor: it has no result')
        return await self.final_result.wait()

    async def result(self, hide_tb: bool = True) -> Any:
        """Alias of :meth:`wait_for_result` (tractor's older name)."""
        return await self.wait_for_result()

    # --- lifetime -----------------------------------------------------------

    async def cancel_actor(self, timeout: Optional[float] = None,
                           raise_on_timeout: bool = False) -> bool:
        """Ask the remote actor to shut down gracefully.

        Returns True if it acknowledged within ``timeout`` (default: the
        runtime's ``cancel_timeout``), False if it did not or is already
        gone; with ``raise_on_timeout``, no acknowledgement in time raises
        :class:`ActorTooSlowError` instead. Shielded from the caller's
        cancellation for that long.
        """
        if self.channel.closed:
            return False
        if timeout is None:
            timeout = (self.cancel_timeout if self.cancel_timeout is not None
                       else self.actor.config.cancel_timeout)
        log.info('asking actor %r to cancel', self.channel.peer_uid[0]
                 if self.channel.peer_uid else '?')
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + timeout
            try:
                call = await self.actor.start_call(self.channel, 'self', 'cancel', {})
                call.cancel_on_exit = False
                async with call:
                    return bool(await call.result())
            except TransportClosed:
                return False
        if raise_on_timeout:
            raise ActorTooSlowError(f'{self!r} did not acknowledge cancel within {timeout}s')
        log.warning('%r did not acknowledge cancel within %.1fs', self, timeout)
        return False

    async def aclose(self) -> None:
        """tractor's: close the portal's streams. Each stream here is closed
        by its own ``async with`` block, so there is nothing left to close;
        a checkpoint."""
        await trio.lowlevel.checkpoint()

