"""The two ends of one call id on one channel.

:class:`Call` is the caller's end: it queues what the callee sends and on
an early exit asks the callee to cancel through ``_cancel_task``.
:class:`RpcTask` is the callee's end: the cancel scope of the task serving
the call and the queue of what the caller sends into a context stream.
Each end's dialog and credit count belong to the channel's
:class:`~tractorish.msg.Protocol`, which checks every message before it
gets here: an end opens, accepts and closes its call there, and only
routes what arrives (:meth:`_End.deliver`). :class:`ChanState` is what the
runtime keeps per channel, including who reads it (``_read_turn``).
"""
from __future__ import annotations

import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Optional, Tuple

import trio

from .._exceptions import ContextCancelled, RemoteActorError, TransportClosed
from ..ipc import Channel
from ..msg import Dialog, unpack_error
from ._read_turn import ReadTurn
from ._state import CURRENT_CALL
from ._stream import SendCredit
from ._woken import WOKEN

if TYPE_CHECKING:
    from ._actor import Actor

log = logging.getLogger('tractorish.runtime')

# How long a cancelled caller waits for the callee to confirm the remote
# task is gone before giving up on it.
CANCEL_ACK_TIMEOUT = 3.0

_current_task = trio.lowlevel.current_task
_reschedule = trio.lowlevel.reschedule
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled


class Inbox:
    """An unbounded FIFO of messages, read by one task (usually).

    The one parked reader is woken directly, with no parking lot on the
    per-message path; a second concurrent reader (a context's stream and
    its ``result()`` read from two tasks) waits in a lot made for it.
    """

    __slots__ = ('items', 'waiter', '_lot', '_error')

    def __init__(self) -> None:
        self.items: Deque[dict] = deque()  # (for the hot paths to use as is)
        # the task parked first for the next message, if any
        self.waiter: Optional[trio.lowlevel.Task] = None
        self._lot: Optional[trio.lowlevel.ParkingLot] = None
        self._error: Optional[BaseException] = None

    def put(self, msg: dict) -> None:
        self.items.append(msg)
        if self.waiter is not None or self._lot:  # only a parked reader needs waking
            self._wake_one()

    def _wake_one(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            _reschedule(waiter, WOKEN)
        elif self._lot:
            self._lot.unpark()

    def fail(self, error: BaseException) -> None:
        """No more messages will come; readers get ``error`` once drained."""
        self._error = error
        self._wake_one()
        if self._lot is not None:
            self._lot.unpark_all()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_reader(self) -> bool:
        """True while a task is parked waiting for the next message."""
        return self.waiter is not None or bool(self._lot)

    def get_nowait(self) -> Optional[dict]:
        return self.items.popleft() if self.items else None

    def _abort(self, _: Any) -> Any:
        self.waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    @property
    def error(self) -> Optional[BaseException]:
        """Why no more messages will come, once that is known."""
        return self._error

    async def wait(self) -> None:
        """Park until a message arrives or the inbox fails; take nothing.

        Another reader may take the message first: check again after.
        """
        if self.items or self._error is not None:
            return
        if self.waiter is None:
            self.waiter = _current_task()
            await _wait_task_rescheduled(self._abort)
        else:
            if self._lot is None:
                self._lot = trio.lowlevel.ParkingLot()
            await self._lot.park()

    async def get(self) -> dict:
        while not self.items:
            if self._error is not None:
                raise self._error
            await self.wait()
        return self.items.popleft()


class ChanState(ReadTurn):
    """What the runtime tracks per served channel, by call id, and who
    reads it (its :class:`~tractorish.runtime._read_turn.ReadTurn`).

    Both ends of a channel start calls, and replies are routed by call id
    alone, so the two ends draw their ids from disjoint sets: the end that
    connected uses ``c0, c1, ...``, the end that accepted ``a0, a1, ...``.
    """

    __slots__ = ('calls', 'tasks', 'cid_prefix', '_counter', 'inline_cid', 'inline_caller',
                 'reading_held', '_task_ended', 'served')

    def __init__(self, chan: Channel) -> None:
        ReadTurn.__init__(self, chan)
        self.context.run(CURRENT_CALL.set, self)  # (for the calls run inline)
        self.calls: Dict[str, 'Call'] = {}
        self.tasks: Dict[str, 'RpcTask'] = {}
        self.cid_prefix = 'c' if chan.initiator else 'a'
        self._counter = itertools.count()
        self.served = 0  # calls the peer made here (the one counter bumped per call)
        # the reader holds off reading until a task ends (see Actor._hold_reading)
        self.reading_held = False
        self._task_ended = trio.lowlevel.ParkingLot()
        # the call running inline in the reader now (see Actor._run_inline)
        self.inline_cid = ''
        self.inline_caller: Tuple[str, str] = ('', '')

    async def wait_for_a_task_to_end(self) -> None:
        self.reading_held = True
        try:
            await self._task_ended.park()
        finally:
            self.reading_held = False

    def wake_held_reader(self) -> None:
        self._task_ended.unpark_all()

    def only_end(self) -> bool:
        """True if one call (either side of it) is all that is in flight, on
        a channel any task may read: its task may read for itself."""
        return (len(self.calls) + len(self.tasks) == 1 and self.direct_call is None
                and self.chan.reads_directly)

    def next_cid(self) -> str:
        return f'{self.cid_prefix}{next(self._counter)}'

    def inline_task(self) -> 'RpcTask':
        """The callee's end of the call running inline in the reader now, made
        on demand (for ``current_ipc_ctx``): such a call has no task, and its
        dialog, closed before it ran, is not the channel's any more."""
        caller = self.inline_caller  # (as the cmd carried it: a list)
        return RpcTask(self, self.inline_cid, (caller[0], caller[1]), 'asyncfunc',
                       dialog=Dialog.for_callee('asyncfunc'))


# the reason sending stopped when the other side ended normally (a marker:
# most calls never send, so the exception is made only when one tries)
_PEER_ENDED = BaseException('the other side ended the call')


class _End:
    """What both ends of a call share: the inbox, send credit, the dialog."""

    __slots__ = ('state', 'cid', 'dialog', 'inbox', '_send_credit', 'on_error',
                 'errored', '_closed_reason', 'functype')

    def __init__(self, state: ChanState, cid: str, dialog: Dialog) -> None:
        # called when the other side reports an error, before anyone reads it
        self.on_error: Optional[Callable[[], None]] = None
        self.errored = False  # the other side failed, or the channel did
        self.state = state
        self.cid = cid
        self.dialog = dialog
        self.inbox = Inbox()
        # made on first use: most calls never stream
        self._send_credit: Optional[SendCredit] = None
        self._closed_reason: Optional[BaseException] = None
        # the caller's: the functype the callee named, once it has
        self.functype: Optional[str] = None

    @property
    def chan(self) -> Channel:
        return self.state.chan

    @property
    def send_credit(self) -> SendCredit:
        if self._send_credit is None:
            self._send_credit = SendCredit(self.dialog)
            if self._closed_reason is not None:
                self._send_credit.close(self._reason())
        return self._send_credit

    def _reason(self) -> BaseException:
        if self._closed_reason is _PEER_ENDED:
            self._closed_reason = trio.BrokenResourceError(
                f'the other side of call {self.cid} closed its stream')
        assert self._closed_reason is not None
        return self._closed_reason

    def _close_sending(self, reason: BaseException) -> None:
        """No more sending: ``reason`` is why (``_PEER_ENDED``: the other
        side stopped or returned; its exception is made only if needed)."""
        if self._closed_reason is None:
            self._closed_reason = reason
        if self._send_credit is not None:
            self._send_credit.close(self._reason())

    @property
    def awaited(self) -> bool:
        """True while a task waits for this call's next message, parked on
        its inbox or reading the channel for it."""
        return self.inbox.has_reader or self.state.reading_for(self)

    async def next_message(self) -> dict:
        """The next message for this call, from its inbox; while this call is
        all that is in flight on its channel, read from the channel by this
        task itself (no hand-over from the reader task)."""
        inbox = self.inbox
        if inbox.items:  # most often one is here already
            return inbox.items.popleft()
        state = self.state
        if not state.only_end():
            return await inbox.get()
        try:
            return await state.read_for(self)
        finally:
            state.stop_reading_for(self)

    def deliver(self, msg: dict) -> None:
        """Route one inbound message for this call id (the reader's hot path).

        The channel's protocol has checked it against this call's dialog
        and counted its credit already; this hands it to whoever waits.
        """
        if 'yield' in msg:
            # (within the credit we granted: the protocol refused any more,
            # so the inbox holds at most a window's worth)
            self.inbox.put(msg)
            return
        functype = msg.get('functype')
        if functype is not None:
            if functype == 'asyncfunc':
                # a plain call's first reply: taken here, not queued (nothing
                # wakes for it); the return or an error is what its task waits for
                self.functype = functype
                return
            self.inbox.put(msg)
            return
        if 'credit' in msg:
            if self._send_credit is not None:  # (counted by the dialog)
                self._send_credit.wake()
            return
        if 'return' in msg or 'stop' in msg:
            # the other side stopped or ended: nobody will take more values
            self._close_sending(_PEER_ENDED)
        elif 'error' in msg:
            # a sender waiting for credit learns why
            self._close_sending(unpack_error(msg['error']))
            self.errored = True
            if self.on_error is not None:
                self.on_error()
        self.inbox.put(msg)

    def fail(self, error: BaseException) -> None:
        """The channel is gone: wake every reader and sender with ``error``."""
        self.inbox.fail(error)
        self._close_sending(error)
        self.errored = True
        if self.on_error is not None:
            self.on_error()


class RpcTask(_End):
    """The callee's end of one call: the task serving it and its scope."""

    __slots__ = ('caller_uid', 'scope', 'canceller', '_done', 'finished',
                 'is_runtime_call', 'context')

    def __init__(self, state: ChanState, cid: str, caller_uid: Tuple[str, str],
                 functype: str, is_runtime_call: bool = False,
                 dialog: Optional[Dialog] = None) -> None:
        # (the channel's protocol opened the dialog when the cmd came)
        super().__init__(state, cid, dialog if dialog is not None
                         else state.chan.protocol.accept_call(cid, functype))
        self.is_runtime_call = is_runtime_call
        self.caller_uid = caller_uid
        self.scope = trio.CancelScope()
        self.canceller: Optional[Tuple[str, str]] = None
        self._done: Optional[trio.Event] = None  # made only if someone waits
        self.finished = False
        self.context: Any = None  # its Context, once one is asked for
        self.functype = functype

    def finish(self) -> None:
        """The task serving the call has ended: the call is forgotten."""
        self.state.tasks.pop(self.cid, None)
        self.chan.protocol.close_call(self.cid)
        self.finished = True
        if self._done is not None:
            self._done.set()

    async def wait_finished(self) -> None:
        if not self.finished:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()

    def cancel(self, canceller: Optional[Tuple[str, str]]) -> None:
        if self.canceller is None:
            self.canceller = canceller
        self.scope.cancel()


class Call(_End):
    """The caller's end of one call; use as ``async with`` to clean up."""

    __slots__ = ('actor', 'cancel_on_exit', 'ns', 'func')

    def __init__(self, actor: 'Actor', state: ChanState, cid: str,
                 ns: str, func: str) -> None:
        _End.__init__(self, state, cid, state.chan.protocol.open_call(cid))
        self.actor = actor
        self.ns = ns
        self.func = func
        self.cancel_on_exit = True

    async def receive(self) -> dict:
        """The callee's next message; a remote error is raised here."""
        return raise_if_error(await self.next_message())

    async def receive_functype(self) -> str:
        """The functype the callee named.

        An ``asyncfunc``'s is taken on arrival (see :meth:`deliver`); any
        other is the first message queued. (If an ``asyncfunc``'s arrives
        while this waits, what this takes is its return, dropped: whoever
        asks for the functype of such a call has no use for it.)
        """
        if self.functype is None:
            msg = await self.receive()
            if self.functype is None:
                self.functype = msg['functype']
        return self.functype

    async def result(self) -> Any:
        """Wait for the ``return`` of an ``asyncfunc`` call (its functype
        is taken on arrival: see :meth:`deliver`)."""
        msg = await self.next_message()
        if 'return' not in msg:  # an error, or the functype of something else
            raise_if_error(msg)
            raise TypeError(f'{self.ns}.{self.func} is a remote {msg["functype"]}: '
                            f'use open_stream_from / open_context, not run')
        return msg['return']

    async def __aenter__(self) -> 'Call':
        return self

    def forget_if_done(self) -> bool:
        """What ``__aexit__`` does when there is nothing to cancel, without
        awaiting: True if so (the call is forgotten), else False."""
        if self.cancel_on_exit and not self.dialog.done:
            return False
        self.forget()
        return True

    def forget(self) -> None:
        """The call is over (or given up on): its replies are dropped."""
        state = self.state
        state.calls.pop(self.cid, None)
        state.chan.protocol.close_call(self.cid)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.cancel_on_exit and not self.dialog.done:
                await self.cancel_remote()
            if self.cancel_on_exit and isinstance(exc, trio.Cancelled):
                failure = self._failure_during_cancel()
                if failure is not None:
                    # the remote task failed before (or while) the caller
                    # was cancelled, its error unread: an error is news,
                    # never swallowed
                    raise failure
        finally:
            self.forget()

    def _failure_during_cancel(self) -> Optional[RemoteActorError]:
        """The remote error left in the inbox, if it was not the cancel's."""
        while True:
            msg = self.inbox.get_nowait()
            if msg is None:
                return None
            if 'error' in msg:
                error = unpack_error(msg['error'])
                return None if isinstance(error, ContextCancelled) else error

    async def cancel_remote(self, timeout: Optional[float] = None) -> bool:
        """Ask the callee to cancel this call's task and wait (bounded) for it.

        Shielded: runs even when the caller is being cancelled, for up to
        ``timeout`` seconds (default ``CANCEL_ACK_TIMEOUT``). Returns True
        if the callee confirmed.
        """
        log.debug('asking %r to cancel call %s (%s.%s)', self.chan.peer_uid[0]
                  if self.chan.peer_uid else '?', self.cid, self.ns, self.func)
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + (
                CANCEL_ACK_TIMEOUT if timeout is None else timeout)
            try:
                ack = await self.actor.start_call(
                    self.chan, 'self', '_cancel_task', {'cid': self.cid})
                ack.cancel_on_exit = False
                async with ack:
                    return bool(await ack.result())
            except TransportClosed:
                return False
        return False

def raise_if_error(msg: dict) -> dict:
    """``msg``, unless it carries the callee's error: then that, raised."""
    if 'error' in msg:
        raise unpack_error(msg['error'])
    return msg


def channel_gone(chan: Channel) -> TransportClosed:
    who = chan.peer_uid[0] if chan is not None and chan.peer_uid else repr(chan)
    return TransportClosed(f'lost the channel to actor {who!r}')
