"""``Context``: a call with a start value, a two-way stream and a result.

The callee is a ``@context`` function. It hands the caller a first value
with ``ctx.started()``; then either side may ``open_stream()``, and the
callee's return value ends the call. Cancellation: ``ctx.cancel()`` on the
caller cancels the callee and is not raised back at the caller; a cancel
asked for by anyone else reaches the caller as :class:`ContextCancelled`.

As in tractor, every remote task has a context: :func:`current_ipc_ctx`
gives the one of the call the running code serves (made on first use for
a plain call, which has no stream).
"""
from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Optional, Tuple, TypeVar

import trio

from .. import msg
from .._exceptions import (ContextCancelled, InternalError, MsgTypeError, RemoteActorError,
                           TransportClosed)
from ._state import CURRENT_CALL
from ._stream import DEFAULT_WINDOW, MsgStream, open_msg_stream, send_yield

if TYPE_CHECKING:
    from ._actor import Actor
    from ._call import Call, RpcTask

CONTEXT_ATTR = '_tractorish_context'


F = TypeVar('F', bound=Callable[..., Any])


def context(fn: Optional[F] = None, *, pld_spec: Any = None,
            dec_hook: Any = None, enc_hook: Any = None) -> Any:
    """Mark an async function as a context: called with ``ctx`` first.

    Callers reach it with ``Portal.open_context(fn, **kwargs)``. Used bare
    (``@context``) or called (``@context()``); tractor's typed-payload
    options (``pld_spec``, ``dec_hook``, ``enc_hook``) raise
    ``NotImplementedError``: messages here are plain msgpack.
    """
    if pld_spec is not None or dec_hook is not None or enc_hook is not None:
        raise NotImplementedError('typed payloads (pld_spec, dec_hook, enc_hook) are '
                                  "tractor's; tractorish sends plain msgpack values")
    if fn is None:
        return context
    if not callable(fn):
        raise TypeError(f'@context decorates a function, not {fn!r}')
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f'@context decorates an async def function (not a generator), '
                        f'not {getattr(fn, "__qualname__", fn)!r}')
    setattr(fn, CONTEXT_ATTR, True)
    return fn


class Context:
    """One side of a call: a context call's, or any remote task's.

    ``side`` is ``'caller'`` or ``'callee'``; ``kind`` is the call's: a
    ``'context'`` (the full protocol), ``'asyncgen'`` (a legacy ``@stream``
    function sends with :meth:`send_yield`), or ``'asyncfunc'``.
    """

    def __init__(self, actor: 'Actor', end: 'Call | RpcTask', *, side: str,
                 window: int = DEFAULT_WINDOW, kind: str = 'context',
                 portal: Any = None) -> None:
        self._actor = actor
        self._end = end
        self.side = side
        self.kind = kind
        self._window = window
        self._started = side == 'caller'  # the caller gets one only once started
        self._stream_opened = False
        self._stream: Optional[MsgStream] = None
        self._stop_sent = False
        self._final: Optional[dict] = None
        self._cancel_called = False
        self.portal = portal  # the caller's portal, on the caller's side

    def __repr__(self) -> str:
        return f'<Context {self.side} cid={self.cid} peer={self.peer_uid}>'

    @property
    def cid(self) -> str:
        return self._end.cid

    @property
    def chan(self) -> Any:
        return self._end.chan

    @property
    def peer_uid(self) -> Optional[Tuple[str, str]]:
        return self.chan.peer_uid

    @property
    def peer_side(self) -> str:
        return 'callee' if self.side == 'caller' else 'caller'

    @property
    def cancel_called(self) -> bool:
        """True once this side called :meth:`cancel`."""
        return self._cancel_called

    @property
    def canceller(self) -> Optional[Tuple[str, str]]:
        """The uid of whoever cancelled the call, once known."""
        if self.side == 'callee':
            return self._end.canceller  # type: ignore[union-attr]
        error = self.maybe_error
        return error.canceller if isinstance(error, ContextCancelled) else None

    @property
    def cancelled_caught(self) -> bool:
        """True if the call ended cancelled (the callee's scope caught it, or
        the caller got the callee's cancellation)."""
        if self.side == 'callee':
            return self._end.scope.cancelled_caught  # type: ignore[union-attr]
        return isinstance(self.maybe_error, ContextCancelled)

    @property
    def cancel_acked(self) -> bool:
        """True if this caller's own :meth:`cancel` was confirmed by the callee."""
        return (self.side == 'caller' and self._cancel_called
                and self.canceller == self._actor.uid)

    @property
    def maybe_error(self) -> Optional[RemoteActorError]:
        """The callee's error, once it has arrived (caller side); else None."""
        if self._final is None or 'error' not in self._final:
            return None
        return msg.unpack_error(self._final['error'])

    @property
    def has_outcome(self) -> bool:
        """True once the callee's return value or error has arrived (caller side)."""
        return self._final is not None

    @property
    def outcome(self) -> Any:
        """The callee's return value or error once arrived; None before."""
        if self._final is None:
            return None
        return self._final['return'] if 'return' in self._final else self.maybe_error

    async def started(self, value: Any = None, validate_pld_spec: bool = True,
                      strict_pld_parity: bool = False, hide_tb: bool = True) -> None:
        """Send the caller its first value; call it exactly once, first.

        Raises ``RuntimeError`` on the caller's side, when called twice, or
        after the stream was opened. The other keywords are tractor's and
        change nothing (no payload specs here).
        """
        if self.side != 'callee':
            raise RuntimeError('only the called side of a context calls started()')
        if self.kind != 'context':
            raise RuntimeError(f'started() is for @context functions; this call is '
                               f'an {self.kind}')
        if self._started:
            raise RuntimeError('ctx.started() was already called for this context')
        self._started = True
        await self.chan.send(msg.started(value, self.cid))

    @asynccontextmanager
    async def open_stream(self, allow_overruns: bool = False,
                          msg_buffer_size: Optional[int] = None) -> AsyncIterator[MsgStream]:
        """Open this side's end of the context's two-way stream.

        Leaving the block normally sends ``stop``: the other side's
        iteration ends. Leaving it with an error sends nothing here: the
        error ends the whole call instead (if the caller's block handles
        that error and goes on, :meth:`result` or the block's end tells the
        callee its stream is done). Once per context, and on the
        callee only after ``started()``. ``allow_overruns`` and
        ``msg_buffer_size`` are tractor's and change nothing: credit flow
        control means a sender waits instead of overrunning its receiver.
        """
        if self.kind != 'context':
            raise RuntimeError(f'open_stream() is for @context calls; this call is '
                               f'an {self.kind}')
        if not self._started:
            raise RuntimeError('call ctx.started() before ctx.open_stream()')
        if self._stream_opened:
            raise RuntimeError('the stream of this context was already opened')
        self._stream_opened = True
        async with open_msg_stream(self._end, window=self._window, context=self,
                                   on_outcome=self._keep_outcome,
                                   on_close=self._stream_closed) as stream:
            self._stream = stream
            yield stream

    def _keep_outcome(self, message: dict) -> None:
        self._final = message

    async def _stream_closed(self) -> None:
        self._send_stop()

    def _send_stop(self) -> None:
        """Tell the other side our stream is done (once)."""
        if self._stop_sent:
            return
        self._stop_sent = True
        try:  # a control message: never waits behind data, so never hangs
            self.chan.send_nowait(msg.stop(self.cid))
        except TransportClosed:
            pass

    async def cancel(self, timeout: Optional[float] = None) -> None:
        """Cancel the callee's task.

        On the caller this asks the callee to cancel and waits (shielded,
        for up to ``timeout`` seconds) for it to confirm; the resulting
        :class:`ContextCancelled` is not raised here nor at the end of
        ``open_context``. On the callee it cancels its own task; the caller
        then sees ``ContextCancelled``.
        """
        self._cancel_called = True
        if self.side == 'caller':
            await self._end.cancel_remote(timeout)  # type: ignore[union-attr]
        else:
            self._end.cancel(self._actor.uid)  # type: ignore[union-attr]
            await trio.lowlevel.checkpoint()

    async def result(self, hide_tb: bool = True) -> Any:
        """Wait for the callee's return value (caller side).

        Stream values not read by then are dropped. Raises the callee's
        error as :class:`RemoteActorError`, or :class:`ContextCancelled` if
        someone other than this caller cancelled it; returns ``None`` after
        this caller's own :meth:`cancel`.
        """
        if self.side != 'caller':
            raise RuntimeError('only the calling side of a context has a result')
        stream = self._stream
        if stream is not None and not stream.closed:
            # read the values left through the stream (they are dropped), so
            # that credit flows back and a callee still sending can finish
            try:
                while self._final is None:
                    await stream.receive()
            except trio.EndOfChannel:
                pass
            except Exception:
                if self._final is None:
                    raise
        elif stream is not None and not self._end.dialog.done:
            # the stream's block was left by an error handled since, which
            # told the callee nothing: it would wait on its stream forever
            self._send_stop()
        while self._final is None:
            message = await self._end.inbox.get()
            if 'return' in message or 'error' in message:
                self._final = message
        if 'return' in self._final:
            return self._final['return']
        error = msg.unpack_error(self._final['error'])
        if (isinstance(error, ContextCancelled) and self._cancel_called
                and error.canceller == self._actor.uid):
            return None
        raise error

    async def wait_for_result(self, hide_tb: bool = True) -> Any:
        """Alias of :meth:`result`."""
        return await self.result()

    def maybe_raise(self) -> None:
        """Raise the callee's error if it has arrived (caller side)."""
        error = self.maybe_error
        if error is not None and not (self.cancel_acked
                                      and isinstance(error, ContextCancelled)):
            raise error

    async def send_yield(self, value: Any) -> None:
        """Send one value of a legacy ``@stream`` function (its callee side).

        Waits while the caller has no room (credit flow control); raises
        ``trio.BrokenResourceError`` once the caller stopped reading.
        """
        if self.kind != 'asyncgen' or self.side != 'callee':
            raise RuntimeError('send_yield() is for the called side of a @stream '
                               'function; a @context uses ctx.open_stream()')
        await send_yield(self._end, value)  # type: ignore[arg-type]


async def run_context(actor: 'Actor', fn: Callable[..., Any], kwargs: dict,
                      task: 'RpcTask') -> Any:
    """The callee's side of a context call; returns what ``fn`` returns."""
    ctx = Context(actor, task, side='callee', window=actor.config.stream_window)
    task.context = ctx
    result = await fn(ctx, **kwargs)
    if not ctx._started:
        raise RuntimeError(f'{getattr(fn, "__qualname__", fn)} returned without '
                           f'calling ctx.started()')
    return result


@asynccontextmanager
async def open_context_from(actor: 'Actor', call: 'Call',
                            portal: Any = None) -> AsyncIterator[Tuple[Context, Any]]:
    """The caller's side of a context call whose ``cmd`` was sent as ``call``."""
    async with call:
        functype = await call.receive_functype()
        if functype != 'context':
            raise TypeError(f'{call.ns}.{call.func} is a remote {functype}, '
                            f'not a @context function')
        first = (await call.receive())['started']
        ctx = Context(actor, call, side='caller', window=actor.config.stream_window,
                      portal=portal)
        token = CURRENT_CALL.set(ctx)
        try:
            with trio.CancelScope() as body:
                def on_remote_error() -> None:
                    # the callee failed: like a failing child task, that cancels
                    # the block, unless a stream read is about to raise it anyway
                    # or we cancelled the callee ourselves
                    if not ctx._cancel_called and not call.awaited:
                        body.cancel()
                call.on_error = on_remote_error
                if call.errored:  # it failed before we were listening
                    on_remote_error()
                try:
                    yield ctx, first
                except Exception as err:
                    if not (isinstance(err, ContextCancelled) and ctx._cancel_called
                            and err.canceller == actor.uid):
                        if not call.dialog.done:  # tell the callee why it is cancelled
                            try:
                                call.chan.send_nowait(msg.error(
                                    msg.pack_error(err, actor.uid), call.cid))
                            except (TransportClosed, MsgTypeError):
                                pass
                        raise
                    # our own cancel, confirmed, raised by a read after it:
                    # not news (see Context.cancel); result() gives None
                if not ctx._stream_opened and not call.dialog.done:
                    # we will never read: a callee that streams gets a clear
                    # BrokenResourceError instead of waiting for credit forever
                    ctx._send_stop()
            await ctx.result()  # the callee's error, if that is what cancelled us
        finally:
            try:
                CURRENT_CALL.reset(token)
            except ValueError:  # closed from another context (collected): nothing to undo
                pass


def current_ipc_ctx(error_on_not_set: bool = False) -> Optional[Context]:
    """The :class:`Context` of the call the running code serves.

    In a remote task (any functype), its callee side; inside
    ``Portal.open_context``, the caller side. ``None`` elsewhere, or
    :class:`RuntimeError` if ``error_on_not_set``.
    """
    from ._call import ChanState, RpcTask
    from ._state import current_actor
    current = CURRENT_CALL.get()
    if isinstance(current, Context):
        return current
    if isinstance(current, ChanState):  # a call run inline in the reader
        current = current.inline_task()
    if isinstance(current, RpcTask):
        if current.context is None:
            current.context = Context(current_actor(), current, side='callee',
                                                      kind=current.functype or 'asyncfunc')
        return current.context
    if error_on_not_set:
        raise InternalError('no IPC context here: current_ipc_ctx() is for code '
                            'serving a remote call or inside Portal.open_context()')
    return None
