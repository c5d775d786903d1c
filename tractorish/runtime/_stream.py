"""``MsgStream``: a stream of values inside one call, with credit flow control.

Flow control (docs/flow-control.md): a side may send a ``yield`` only
against credit the receiving side granted. A receiver grants its window
when it opens its end of the stream, and grants again each time it has
consumed half a window, so a producer that keeps ahead of its consumer
stops after one window instead of growing anyone's memory, while a consumer
that keeps up never makes it wait. Credit is per call id: one slow stream
never stalls the other calls on its channel.

Two-way generators: the caller of an ``asyncgen`` drives it as Python's
protocol says, ``receive()`` being ``asend(None)``: each value sent with
:meth:`MsgStream.asend` arrives as the result of the remote ``yield`` and
grants exactly one reply. The generator must not run ahead of an ``asend``
the program may still make, so a generator caller's credit starts small
(slow start): the first ``receive()`` calls grant one value each, and only
a caller that keeps calling ``receive()`` lets the grants grow, doubling,
each made once the last is used up, until the stream flows with the full
window. An ``asend`` is refused, saying why, only once the generator has
truly run ahead.
"""
from __future__ import annotations

import inspect
from collections import deque
from contextlib import asynccontextmanager
from typing import (TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Deque, List,
                    Optional, Union)

import trio

from .. import msg
from .._exceptions import ProtocolError, TransportClosed
from ..msg import Dialog, unpack_error
from ._stats import count_credit_wait

if TYPE_CHECKING:
    from ._call import Call, RpcTask
    from ._context import Context

DEFAULT_WINDOW = 1024

# How many receive() calls in a row a generator caller makes, each granting
# one value, before the generator may run ahead of it (see the module doc).
LOCKSTEP_RECEIVES = 8


class SendCredit:
    """Waiting for the credit to send a ``yield``: the count is the call's
    dialog's (the channel's protocol counts the peer's grants); this adds
    the wait for the next grant, and the end of sending."""

    __slots__ = ('_dialog', '_lot', '_closed')

    def __init__(self, dialog: Dialog) -> None:
        self._dialog = dialog
        self._lot = trio.lowlevel.ParkingLot()
        self._closed: Optional[BaseException] = None

    @property
    def credit(self) -> int:
        """How many more ``yield`` messages the peer lets us send now."""
        return self._dialog.send_credit

    def wake(self) -> None:
        """The peer granted more: senders waiting for it try again."""
        self._lot.unpark_all()

    def refund(self) -> None:
        """Give back a credit taken for a ``yield`` that was not sent."""
        self._dialog.send_credit += 1

    def close(self, reason: BaseException) -> None:
        """No more sending: the peer stopped reading or went away."""
        if self._closed is None:
            self._closed = reason
        self._lot.unpark_all()

    @property
    def closed(self) -> bool:
        """True once sending has ended (the peer stopped reading or went away)."""
        return self._closed is not None

    def take_nowait(self) -> bool:
        """Take one credit if there is one and sending is still open; True
        if taken. The usual case of :meth:`acquire`, without an await."""
        dialog = self._dialog  # (Dialog.take_credit, in line: once per value)
        if dialog.send_credit > 0 and self._closed is None:
            dialog.send_credit -= 1
            return True
        return False

    async def acquire(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            if self._closed is not None:
                raise self._closed
            if self._dialog.take_credit():
                return
            if not waited:  # one wait per send, however many grants it takes
                waited = True
                count_credit_wait()
            await self._lot.park()


End = Union['Call', 'RpcTask']


class _Iterable:
    """``async for`` over ``receive()`` until ``trio.EndOfChannel``."""

    async def receive(self) -> Any:  # pragma: no cover - always overridden
        raise NotImplementedError

    def __aiter__(self) -> '_Iterable':
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class MsgStream(_Iterable):
    """One side's end of a stream of values within a call.

    ``receive()`` raises ``trio.EndOfChannel`` once the other side has
    stopped, and a :class:`RemoteActorError` if it failed; ``send()`` waits
    for credit when the other side is not keeping up and raises
    ``trio.BrokenResourceError`` once the other side has closed its end.
    """

    def __init__(self, end: End, *, window: int = DEFAULT_WINDOW,
                 context: Optional['Context'] = None,
                 generator_caller: bool = False,
                 on_outcome: Optional[Callable[[dict], None]] = None,
                 on_close: Optional[Callable[[], Awaitable[None]]] = None) -> None:
        self._end = end
        self._chan = end.chan
        self._cid = end.cid
        self._window = max(2, window)
        self._half_window = self._window // 2
        self._context = context
        # a context's: told the call's outcome if this stream reads it, and
        # asked to tell the other side when this end closes
        self._on_outcome = on_outcome
        self._on_close = on_close
        self._generator_caller = generator_caller
        # a generator caller's credit: granted and values taken in all, the
        # receive() calls since the last asend(), and the next grant's size
        self._granted = 0
        self._taken = 0
        self._receive_run = 0
        self._ramp = 2
        self._consumed = 0
        self._eof = False
        self._closed = False
        # values are read in bulk and the stream is open: __anext__ may take
        # a waiting value in one step (for a generator caller, only once
        # its grants have grown to the full window; False once closed or ended)
        self._flowing = not generator_caller
        self._waiting = end.inbox.items
        self._broadcaster: Optional[_Broadcaster] = None

    def __repr__(self) -> str:
        return f'<MsgStream cid={self._cid} on {self._chan!r}>'

    async def __anext__(self) -> Any:
        # receive() for a bulk reader with a value waiting, in one step;
        # everything else (and every corner case) goes through receive()
        if self._flowing and not self._end.errored:
            await trio.lowlevel.checkpoint_if_cancelled()
            waiting = self._waiting
            if waiting and 'yield' in waiting[0]:
                message = waiting.popleft()
                self._consumed += 1  # as _after_consume does, in bulk
                if self._consumed >= self._half_window:
                    self._grant_back()
                return message['yield']
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ctx(self) -> Optional['Context']:
        """The context this stream belongs to (None for a generator's stream)."""
        return self._context

    @property
    def chan(self) -> Any:
        """The channel the stream's messages travel on."""
        return self._chan

    # --- receiving ------------------------------------------------------------

    async def _grant_initial(self) -> None:
        await self._chan.send(msg.credit(self._window, self._cid))

    def _take(self, message: dict) -> Any:
        """Interpret one inbound message: a value, the end, or an error."""
        if 'yield' in message:
            return message['yield']
        self._eof = True
        self._flowing = False
        if self._on_outcome is not None and ('error' in message or 'return' in message):
            # the outcome, for ctx.result() (and the end of open_context),
            # which would otherwise wait for a message already taken here
            self._on_outcome(message)
        if 'error' in message:
            raise unpack_error(message['error'])
        raise trio.EndOfChannel(f'the other side of {self!r} has stopped')

    def _after_consume(self) -> None:
        """Count a value taken; grant credit back every half window."""
        if not self._flowing:
            self._taken += 1
            return
        self._consumed += 1
        if self._consumed >= self._half_window:
            self._grant_back()

    def _grant_back(self) -> None:
        granted, self._consumed = self._consumed, 0
        try:
            # now, not when this task next waits: a consumer with values in
            # hand would otherwise hold the grant until it ran dry, and the
            # producer, out of credit meanwhile, would stall the stream
            self._chan.send_nowait(msg.credit(granted, self._cid))
        except TransportClosed:
            pass  # the next receive reports the lost channel

    async def receive(self) -> Any:
        """The next value; ``trio.EndOfChannel`` when the sender is done.

        A cancellation point, except once the other side has failed: then
        what it sent before failing, and its error, come out first (an
        error is news that a cancellation must not hide).
        """
        if not self._end.errored:
            await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError(f'{self!r} is closed')
        if self._eof:
            raise trio.EndOfChannel(f'the other side of {self!r} has stopped')
        if self._generator_caller and not self._flowing:
            await self._grant_for_receive()
        value = self._take(await self._end.next_message())
        self._after_consume()
        return value

    async def _grant_for_receive(self) -> None:
        """A generator caller's ``receive()``: credit for the next value if
        none is on its way, as much as the slow start allows."""
        self._receive_run += 1
        if self._granted > self._taken or self._end.inbox.items:
            return  # a value (or the end) is on its way already
        if self._receive_run <= LOCKSTEP_RECEIVES:
            grant = 1
        else:
            grant, self._ramp = self._ramp, self._ramp * 2
        if grant >= self._window:  # grown up: flow, granting back as we go
            self._flowing = True
            self._consumed = 0
            await self._grant_initial()
            return
        await self._chan.send(msg.credit(grant, self._cid))
        self._granted += grant

    def receive_nowait(self) -> Any:
        """The next value if one is already here, else ``trio.WouldBlock``.

        """
        if self._closed:
            raise trio.ClosedResourceError(f'{self!r} is closed')
        if self._eof:
            raise trio.EndOfChannel(f'the other side of {self!r} has stopped')
        message = self._end.inbox.get_nowait()
        if message is None:
            raise trio.WouldBlock
        value = self._take(message)
        self._after_consume()
        return value

    # --- sending --------------------------------------------------------------

    async def send(self, value: Any, hide_tb: bool = True) -> None:
        """Send ``value`` to the other side (contexts only).

        Waits while the other side has no room (no credit); raises
        ``trio.BrokenResourceError`` if it closed its end.
        """
        if self._generator_caller:
            raise TypeError('a generator stream is driven with asend(), not send()')
        if self._closed:
            raise trio.ClosedResourceError(f'{self!r} is closed')
        credit = self._end.send_credit
        if not credit.take_nowait():  # (if taken, the send is the checkpoint)
            await credit.acquire()
        try:
            await self._chan.send(msg.yield_(value, self._cid))
        except BaseException:
            credit.refund()  # nothing was sent (cancelled, unencodable)
            raise

    async def asend(self, value: Any) -> Any:
        """Resume the remote generator with ``value``; return what it yields next.

        Only for streams from ``Portal.open_stream_from``. As with a local
        async generator, ``asend(None)`` is ``receive()`` (and the first
        value sent must be ``None``: ``TypeError`` otherwise), and the end
        of the generator raises ``StopAsyncIteration``. ``asend`` may follow
        any number of ``asend`` calls and up to ``LOCKSTEP_RECEIVES``
        ``receive()`` calls in a row; after more, the generator may have
        run ahead (values it made with ``None`` sent in, not yet read):
        then ``RuntimeError`` says so, and nothing is sent.
        """
        if not self._generator_caller:
            raise TypeError('asend() drives a remote generator; use send() here')
        if self._closed:
            raise trio.ClosedResourceError(f'{self!r} is closed')
        if value is None:  # a step, as anext() is: it grows nothing
            self._receive_run = 0
            try:
                return await self.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        if self._eof:
            raise StopAsyncIteration
        if not self._granted and not self._flowing:
            raise TypeError("can't send non-None value to a just-started async generator")
        if self._flowing or self._granted > self._taken:
            raise RuntimeError(
                f'the remote generator of {self!r} has run ahead: after '
                f'{LOCKSTEP_RECEIVES} receive() calls in a row it makes values '
                f'before they are asked for, so a value sent now would not reach '
                f'the yield it answers; call asend() within {LOCKSTEP_RECEIVES} '
                f'receive() calls of the start or of the last asend()')
        await trio.lowlevel.checkpoint_if_cancelled()
        self._receive_run = 0
        self._ramp = 2
        await self._chan.send(msg.yield_(value, self._cid))
        await self._chan.send(msg.credit(1, self._cid))
        self._granted += 1
        try:
            value = self._take(await self._end.next_message())
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        self._taken += 1
        return value

    # --- closing --------------------------------------------------------------

    async def aclose(self) -> None:
        """Close our end: the other side's iteration ends. Idempotent."""
        if self._closed:
            return
        self._close_quietly()
        if self._on_close is not None:
            await self._on_close()

    def _close_quietly(self) -> None:
        """Closed for us, without telling the other side."""
        self._closed = True
        self._flowing = False

    async def __aenter__(self) -> 'MsgStream':
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- local fan-out ----------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self, max_buffer: int = 256) -> AsyncIterator['BroadcastReceiver']:
        """A receiver that gets every value from now on, as do its siblings.

        Several local tasks may each subscribe; the stream is read once and
        every value goes to every subscriber. The slowest subscriber sets the
        pace (up to ``max_buffer`` values may wait for it), so nothing is
        dropped. Leaving the block unsubscribes.
        """
        if self._broadcaster is None:
            self._broadcaster = _Broadcaster(self)
        receiver = BroadcastReceiver(self._broadcaster, max_buffer)
        self._broadcaster.subscribers.append(receiver)
        try:
            yield receiver
        finally:
            self._broadcaster.subscribers.remove(receiver)
            self._broadcaster.lot.unpark_all()


@asynccontextmanager
async def open_msg_stream(end: End, *, window: int, context: 'Context',
                          on_outcome: Callable[[dict], None],
                          on_close: Callable[[], Awaitable[None]]
                          ) -> AsyncIterator[MsgStream]:
    """A context's stream, open for the block: the other side is granted
    its window at once. Leaving the block normally closes it (the other side
    is told); leaving it with an error closes it without telling: the error
    (or cancel) that ends the call tells the other side, which must not take
    it for a normal end."""
    stream = MsgStream(end, window=window, context=context,
                       on_outcome=on_outcome, on_close=on_close)
    await stream._grant_initial()
    try:
        yield stream
    except BaseException:
        stream._close_quietly()
        raise
    await stream.aclose()


class _Broadcaster:
    def __init__(self, stream: MsgStream) -> None:
        self.stream = stream
        self.subscribers: List['BroadcastReceiver'] = []
        self.pulling = False
        self.ended: Optional[BaseException] = None
        self.lot = trio.lowlevel.ParkingLot()

    def full(self) -> bool:
        return any(len(s._queue) >= s._max for s in self.subscribers)


class BroadcastReceiver(_Iterable):
    """One subscriber's view of a broadcast stream (see ``MsgStream.subscribe``)."""

    def __init__(self, broadcaster: _Broadcaster, max_buffer: int) -> None:
        self._b = broadcaster
        self._max = max(1, max_buffer)
        self._queue: Deque[Any] = deque()

    async def receive(self) -> Any:
        """The next value; ``trio.EndOfChannel`` at the end of the stream."""
        b = self._b
        while not self._queue:
            if b.ended is not None:
                raise _fresh(b.ended)
            if b.pulling or b.full():
                await b.lot.park()
                continue
            b.pulling = True
            try:
                value = await b.stream.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError, ProtocolError,
                    TransportClosed, Exception) as err:
                b.ended = err
            else:
                for subscriber in b.subscribers:
                    subscriber._queue.append(value)
            finally:
                b.pulling = False
                b.lot.unpark_all()
        value = self._queue.popleft()
        b.lot.unpark_all()  # room again: a puller may be waiting for it
        return value



def _fresh(err: BaseException) -> BaseException:
    """A copy of a shared error, so each raiser gets its own traceback."""
    import copy
    return copy.copy(err).with_traceback(None)


STREAM_ATTR = '_tractorish_stream'


def stream(fn: Any) -> Any:
    """Mark ``fn`` as a legacy one-way stream function, as tractor's ``@stream``.

    ``fn`` is an ``async def`` taking a ``ctx`` (or ``stream``) parameter;
    it sends each value with ``await ctx.send_yield(value)`` and returns
    at the end. Callers read it with ``Portal.open_stream_from``, as they
    read an async generator (new code should write one: it is the same
    stream, flow-controlled the same way).
    """
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f'@stream decorates an async function, not {fn!r}')
    params = inspect.signature(fn).parameters
    if 'ctx' in params:
        setattr(fn, STREAM_ATTR, 'ctx')
    elif 'stream' in params:
        setattr(fn, STREAM_ATTR, 'stream')
    else:
        raise TypeError(f'{fn.__qualname__} must take a `ctx` parameter to be a @stream '
                        f'function (it sends with ctx.send_yield)')
    return fn


async def send_yield(task: 'RpcTask', value: Any) -> None:
    """Send one value of a legacy stream function, against the caller's credit."""
    credit = task.send_credit
    if not credit.take_nowait():
        await credit.acquire()
    try:
        await task.chan.send(msg.yield_(value, task.cid))
    except BaseException:
        credit.refund()  # nothing was sent (cancelled, unencodable)
        raise


async def drive_stream_function(fn: Any, kwargs: dict, task: 'RpcTask',
                                ctx: 'Context') -> None:
    """The callee's side of a legacy ``@stream`` function: run it with its
    ``ctx``, then end the stream."""
    try:
        await fn(**{**kwargs, getattr(fn, STREAM_ATTR): ctx})
    except trio.BrokenResourceError:
        if not task.send_credit.closed:
            raise
        return  # the caller stopped reading: nothing more to say
    await task.chan.send(msg.stop(task.cid))


# A generator with credit to spare yields to the scheduler this often.
YIELD_EVERY = 128

# How long a cancelled generator's ``finally`` blocks may still await.
GENERATOR_CLOSE_GRACE = 2.0


async def drive_generator(fn: Any, kwargs: dict, task: 'RpcTask') -> None:
    """The callee's side of an ``asyncgen`` call.

    Steps the generator once per credit the caller grants: with bulk credit
    it runs ahead up to a window; a two-way caller grants one credit per
    ``asend``, preceded by the value, which goes into the generator.
    """
    agen = fn(**kwargs)
    chan, cid = task.chan, task.cid
    credit, waiting = task.send_credit, task.inbox.items
    step, send_nowait = agen.__anext__, chan.send_nowait
    until_checkpoint = YIELD_EVERY
    try:
        while True:
            until_checkpoint -= 1
            if not until_checkpoint:
                # values go out without a checkpoint each (below): let the
                # writer ship what we queued, and other tasks run
                until_checkpoint = YIELD_EVERY
                await trio.lowlevel.checkpoint()
            try:
                if not credit.take_nowait():
                    await credit.acquire()
            except trio.BrokenResourceError:
                break  # the caller stopped: close the generator
            try:
                if not waiting:
                    out = await step()
                else:  # a two-way caller's value for the yield
                    message = waiting.popleft()
                    if 'error' in message:
                        raise unpack_error(message['error'])
                    value = message.get('yield')
                    out = await (agen.asend(value) if value is not None else step())
            except StopAsyncIteration:
                break
            try:  # no await while the send would not wait
                send_nowait(out, stream=cid)
            except trio.WouldBlock:  # the channel is full: wait for room
                await chan.send(msg.yield_(out, cid))
        await chan.send(msg.stop(cid))
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + GENERATOR_CLOSE_GRACE
            await agen.aclose()
