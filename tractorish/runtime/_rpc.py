"""Running the calls a peer makes: each ``cmd`` in a task of its own, or
in place when its function never suspends.

``CallRunner`` is the part of :class:`~tractorish.runtime.Actor` that
resolves a ``cmd`` to a function (once per function), starts the task that
serves it (or answers it in the reader, see ``_run_inline``), and sends the
call's replies and errors.
"""
from __future__ import annotations

import contextvars
import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Sequence, Tuple, cast

import trio

from .. import msg
from .._exceptions import MsgTypeError, ProtocolError, TransportClosed
from .._groups import is_cancellation
from ..ipc import Channel
from ._call import ChanState, RpcTask
from ._context import Context, run_context
from ._resolve import functype_of, never_suspends, shortened_error
from ._state import CURRENT_CALL
from ._stats import ActorCounters
from ._stream import drive_generator, drive_stream_function

if TYPE_CHECKING:
    from ._actor import Actor

log = logging.getLogger('tractorish.runtime')

# The functype of an ``async def`` called once so far: that call ran in a
# task, and the next one reads its source (``never_suspends``) to learn
# whether it may be answered in place. A function called once (say, by
# ``run_in_actor``) is never read: reading its module's file and parsing
# it costs an actor's first call several times what answering in place
# saves. (Two calls of it in one read may then end out of order, the first
# in a task, the second in place, as calls in one read always could: calls
# made concurrently were never ordered.)
UNREAD = 'unread'


class CallRunner:
    """Serving calls: the callee half of ``Actor``'s runtime."""

    # (the Actor's, set in its __init__)
    uid: Tuple[str, str]
    counters: ActorCounters
    debugger: Any
    _service: Any
    _resolved: Dict[Tuple[str, str], Tuple[Callable[..., Any], str]]
    _resolve: Callable[[str, str], Callable[..., Any]]
    _states: Dict[Channel, ChanState]

    def _as_actor(self) -> 'Actor':
        """This runtime as the ``Actor`` it is part of."""
        return cast('Actor', self)

    def _start_rpc(self, state: ChanState, message: dict) -> None:
        """Start serving one ``cmd``: in a task, or answered in place (its
        replies then go with the rest of its read's, in one write: the
        reader corks the channel while it handles a read of several
        messages)."""
        command = message.get('cmd')
        if command is None:
            raise ProtocolError(
                f'unexpected {msg.message_kind(message)!r} message after the handshake')
        ns, func_name, kwargs, caller, cid = command
        if cid in state.tasks or cid.startswith(state.cid_prefix):
            raise ProtocolError(f'call id {cid!r} is already in use or is one of ours')
        state.served += 1
        if log.isEnabledFor(logging.DEBUG):  # (nothing formatted unless shown)
            log.debug('%r: call %s %s.%s from %r', self, cid, ns, func_name, caller[0])
        assert self._service is not None
        # resolved here, not in the task, so that the call's dialog is set
        # before the caller's next message (say, stream credit) is read
        try:
            resolved = self._resolved.get((ns, func_name))
            if resolved is None:
                fn = self._resolve(ns, func_name)
                functype = 'asyncfunc' if ns == 'self' else functype_of(fn)
                self._resolved[(ns, func_name)] = (
                    fn, UNREAD if functype == 'asyncfunc' and ns != 'self' else functype)
            else:
                fn, functype = resolved
                if functype == UNREAD:
                    functype = self._read_function(ns, func_name, fn)
        except Exception as err:
            state.chan.protocol.close_call(cid)
            self._service.start_soon(self._send_error, state.chan, err, cid)
            return
        if functype == 'inline':
            if state.chan.has_room:
                state.inline_cid, state.inline_caller = cid, caller
                state.chan.protocol.close_call(cid)  # (over once this returns)
                self._run_inline(state.chan, fn, kwargs, cid)
                return
            functype = 'asyncfunc'  # the reply would wait for room: in a task
        task = RpcTask(state, cid, (caller[0], caller[1]),
                       'asyncfunc' if functype == 'syncfunc' else
                       'asyncgen' if functype == 'legacystream' else functype,
                       is_runtime_call=ns == 'self')
        state.tasks[cid] = task
        self._service.start_soon(self._run_rpc, task, fn, functype, ns, func_name, kwargs)

    def _read_function(self, ns: str, func_name: str, fn: Callable[..., Any]) -> str:
        """At the second call of an ``async def``: whether it may be answered
        in place (``'inline'``) or runs in a task (``'asyncfunc'``), from
        now on. Its first call ran in a task: reading a function's source
        costs a fresh process more than the call (see ``UNREAD``)."""
        try:
            inline = self.debugger is None and never_suspends(fn)  # (a REPL needs a task)
        except Exception:  # a source the parser cannot take: the task always works
            log.debug('could not read %s.%s: it runs in a task', ns, func_name, exc_info=True)
            inline = False
        functype = 'inline' if inline else 'asyncfunc'
        self._resolved[(ns, func_name)] = (fn, functype)
        return functype

    def _run_inline(self, chan: Channel, fn: Callable[..., Any], kwargs: dict,
                    cid: str) -> None:
        """Run an ``async def`` that never suspends to completion, here.

        It sees what a task of its own would: a copy of the reader's context
        variables, and no chance to be cancelled (it has no checkpoint). Its
        replies go with the read's others (the reader corks the channel
        for a read of several messages).
        """
        if chan.closed:  # nobody to answer: do not run it
            log.debug('not running call %s: %r is closed', cid, chan)
            return
        error: BaseException
        try:
            try:
                contextvars.copy_context().run(fn(**kwargs).send, None)
            except StopIteration as done:
                try:
                    chan.send_nowait(done.value, reply=cid)
                    return
                except MsgTypeError as err:  # the return value cannot travel
                    error = err
                except TransportClosed:
                    log.debug('could not answer call %s: %r is closed', cid, chan)
                    return
            else:
                error = RuntimeError(f'{fn.__qualname__} suspended')  # never_suspends() said not
        except BaseException as err:  # the function's (any kind: it never ends the actor)
            error = err
        self.counters.calls_failed += 1
        self._reply_error_now(chan, msg.pack_error(error, self.uid), cid)

    def _reply_error_now(self, chan: Channel, payload: dict, cid: str) -> None:
        """Answer call ``cid`` run in place with its ``functype`` and an
        error (a short version, if the error is too big to travel)."""
        try:
            try:
                chan.send_nowait([msg.functype('asyncfunc', cid), msg.error(payload, cid)])
            except MsgTypeError as err:
                chan.send_nowait([msg.functype('asyncfunc', cid),
                                  msg.error(shortened_error(payload, err), cid)])
        except TransportClosed:
            log.debug('could not report an error for call %s: %r is closed', cid, chan)

    @trio.lowlevel.enable_ki_protection
    async def _run_rpc(self, task: RpcTask, fn: Callable[..., Any], functype: str,
                       ns: str, func_name: str, kwargs: dict) -> None:
        # (protected from Ctrl-C, with the user code it runs: trio raises a
        # KeyboardInterrupt in the root's main task instead, so one raised
        # here is the function's own, an error to report like any other)
        chan, cid = task.chan, task.cid
        CURRENT_CALL.set(task)
        # what goes out before the task's last reply, with it: a plain
        # call's functype travels with its return (or its error)
        before: List[dict] = []
        try:
            with task.scope:
                if functype == 'asyncfunc' or functype == 'syncfunc':
                    before = [msg.functype('asyncfunc', cid)]
                    if ns == 'self':
                        result = await fn(task, **kwargs)
                    elif functype == 'asyncfunc':
                        result = await fn(**kwargs)
                    else:  # a plain function: in a thread, so it cannot stall us
                        result = await trio.to_thread.run_sync(
                            functools.partial(fn, **kwargs), abandon_on_cancel=True)
                    await chan.send([*before, msg.return_(result, cid)])
                    before = []
                elif functype == 'asyncgen':
                    await chan.send(msg.functype(functype, cid))
                    await drive_generator(fn, kwargs, task)
                elif functype == 'legacystream':
                    await chan.send(msg.functype('asyncgen', cid))
                    task.context = Context(self._as_actor(), task, side='callee', kind='asyncgen')
                    await drive_stream_function(fn, kwargs, task, task.context)
                else:
                    await chan.send(msg.functype(functype, cid))
                    await chan.send(msg.return_(await run_context(self._as_actor(), fn, kwargs, task), cid))
            if task.scope.cancelled_caught:
                await self._send_payload(chan, msg.pack_cancelled(
                    self.uid, task.canceller, f'{ns}.{func_name}'), cid, before)
        except BaseException as err:
            if is_cancellation(err):  # the runtime's, not the function's
                raise
            if self.debugger is not None:  # a REPL at the frame that raised, first
                await self.debugger.post_mortem(err, chan)
            await self._send_error(chan, err, cid, before)
        finally:
            state = task.state
            task.finish()
            if state.reading_held:  # the reader waits for calls to end
                state.wake_held_reader()

    async def _send_error(self, chan: Channel, err: BaseException, cid: str,
                          before: Sequence[dict] = ()) -> None:
        self.counters.calls_failed += 1
        if chan.closed:  # nobody to tell (and no traceback worth formatting)
            log.debug('could not report an error for call %s: %r is closed', cid, chan)
            return
        await self._send_payload(chan, msg.pack_error(err, self.uid), cid, before)

    async def _send_payload(self, chan: Channel, payload: dict, cid: str,
                            before: Sequence[dict] = ()) -> None:
        """Send an error reply (after ``before``). It waits for room as any
        reply does: a caller that stops reading holds up its own calls, not
        our memory."""
        try:
            try:
                await chan.send([*before, msg.error(payload, cid)])
            except MsgTypeError as err:  # too big to send: a short version instead
                await chan.send([*before, msg.error(shortened_error(payload, err), cid)])
        except TransportClosed:
            log.debug('could not report an error for call %s: %r is closed', cid, chan)
