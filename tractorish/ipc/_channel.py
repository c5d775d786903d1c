"""``Channel``: framed msgpack messages over one trio byte stream.

This is the only module where trio's and the OS's stream errors become
:class:`TransportClosed`. Writes go through one writer task per channel,
which coalesces whatever messages are queued into one ``send_all``: a lone
message is written at once, a burst costs one syscall per batch, and a
sender cancelled while waiting for room never leaves half a message on the
wire. Senders wait while more than ``high_water`` bytes are queued, so a
slow peer slows its senders down instead of growing this process.
"""
from __future__ import annotations

import os
import select
import socket
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Deque, List, Optional, Tuple

import trio

from .._exceptions import ProtocolError, TransportClosed
from .._checkpoints import free_to_spin, nothing_to_raise
from .._groups import collapsing_groups
from ..msg import DEFAULT_MAX_MSG_SIZE, Aid, Decoder, Encoder

READ_SIZE = 256 * 1024
HIGH_WATER = 1024 * 1024
CLOSE_FLUSH_TIMEOUT = 2.0
# a send within this long of the previous one is part of a burst: batch it
BURST_GAP_NS = 50_000
# queued bytes that a batched send hands to the kernel at once
BATCH_FLUSH = 1024
# a read at least this big (but short of READ_SIZE) is taken for part of a
# burst: the next read tries the socket before waiting for it
BURST_READ = 1024
# reads that found data, in a row, before the reader lets other tasks run
FAIR_READS = 16
# what a reader that has not waited yet takes its last wait to have been
_NEVER_WAITED = 1 << 62
# after n polls in a row found nothing, the next 2**n (n at most this) waits
# park at once: on a machine short of CPU the peer answers late, and polling
# would take the CPU it needs
MAX_SPIN_BACKOFF_SHIFT = 10
# polling time after which a reader parks (lets the scheduler run timers
# and other sockets) even if it could poll again
SPIN_BUDGET_NS = 1_000_000

_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class ChannelStatistics:
    """What a channel has carried so far (:meth:`Channel.statistics`)."""

    __slots__ = ('messages_received', 'messages_sent', 'bytes_received', 'bytes_sent',
                 'bytes_queued')

    def __init__(self, messages_received: int, messages_sent: int, bytes_received: int,
                 bytes_sent: int, bytes_queued: int) -> None:
        self.messages_received = messages_received
        self.messages_sent = messages_sent  # queued to send, written or not
        self.bytes_received = bytes_received
        self.bytes_sent = bytes_sent        # handed to the kernel
        self.bytes_queued = bytes_queued    # waiting to be written

    def __repr__(self) -> str:
        return 'ChannelStatistics(' + ', '.join(
            f'{name}={getattr(self, name)}' for name in self.__slots__) + ')'


# A TCP peer whose host vanished (no FIN, no RST) is given up after about
# KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT seconds of silence.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3


def _keep_alive(sock: Any) -> None:
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (('TCP_KEEPIDLE', KEEPALIVE_IDLE),
                              ('TCP_KEEPINTVL', KEEPALIVE_INTERVAL),
                              ('TCP_KEEPCNT', KEEPALIVE_COUNT)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    except OSError:
        pass  # not every platform or socket takes every option


class Channel:
    """A bidirectional message channel to one peer.

    Use it through :func:`open_channel` (or the ipc connect/serve helpers),
    which run its writer task. ``peer_uid`` and ``peer_info`` are set by the
    handshake.
    """

    def __init__(self, stream: trio.abc.Stream, *,
                 max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
                 high_water: int = HIGH_WATER, name: str = '') -> None:
        self._stream = stream
        # a plain socket stream can be written without the writer task
        sock = getattr(stream, 'socket', None)
        # (its fileno() is asked each time: -1 once closed, never a reused fd)
        self._direct: Any = sock
        # the socket under it all (under TLS too), for the handshake's binding
        self.socket = sock if sock is not None else getattr(
            getattr(stream, 'transport_stream', None), 'socket', None)
        _keep_alive(self.socket)
        self._last_direct = 0
        # A reader that found the socket empty polls it for up to this long
        # before parking, if its last wait was no longer (a peer answering
        # at once): see _read_direct. 0 (the default here) never polls.
        self.spin_ns = 0
        self._last_wait = _NEVER_WAITED
        self._spin_misses = 0  # polls in a row that found nothing
        self._spin_skips = 0   # waits left to park without polling
        self._spun = 0         # ns spent polling since the scheduler last ran
        self._reads_in_a_row = 0
        self._drained = False
        self._encoder = Encoder(max_msg_size)
        self._decoder = Decoder(max_msg_size)
        self._received: Deque[dict] = deque()
        self._pending = bytearray()
        # for statistics(): bytes once per read and per write, messages
        # received once per read, sent once per send (queue_yield's in bulk)
        self._messages_in = self._messages_out = self._bytes_in = self._bytes_out = 0
        self._high_water = high_water
        # how much a batched send may find queued and still just join it
        self._batch_room = min(BATCH_FLUSH, high_water)
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._space_lot = trio.lowlevel.ParkingLot()
        self._flushed_lot = trio.lowlevel.ParkingLot()
        self._writing = False
        self._writer_parked = False
        self._send_error: Optional[TransportClosed] = None
        self._eof = False
        self._closed = False
        self.name = name
        self.peer_uid: Optional[Tuple[str, str]] = None
        self.peer_info: dict = {}
        # which end connected: call ids are namespaced by it (see runtime)
        self.initiator = False

    def __repr__(self) -> str:
        peer = self.peer_uid[0] if self.peer_uid else '?'
        return f'<Channel {self.name or id(self)} peer={peer}>'

    @property
    def aid(self) -> Optional[Aid]:
        """The peer's id (name, uuid, pid), once the handshake has run."""
        if self.peer_uid is None:
            return None
        pid = self.peer_info.get('pid')
        return Aid(self.peer_uid[0], self.peer_uid[1], pid if isinstance(pid, int) else None)

    @property
    def uid(self) -> Optional[Tuple[str, str]]:
        """The peer's ``(name, uuid)`` (tractor's older name of ``peer_uid``)."""
        return self.peer_uid

    @property
    def raddr(self) -> Any:
        """The peer's socket address (``(host, port)`` or a socket path), if any."""
        return self._sockname(remote=True)

    @property
    def laddr(self) -> Any:
        """Our end's socket address (``(host, port)`` or a socket path), if any."""
        return self._sockname(remote=False)

    def _sockname(self, *, remote: bool) -> Any:
        if self.socket is None:
            return None
        try:
            name = self.socket.getpeername() if remote else self.socket.getsockname()
        except OSError:  # closed already
            return None
        return tuple(name[:2]) if isinstance(name, tuple) else name

    def connected(self) -> bool:
        """True while the channel is open (tractor's spelling of ``not closed``)."""
        return not self.closed

    @property
    def max_msg_size(self) -> int:
        """The largest message this channel will take from its peer."""
        return self._decoder.max_msg_size

    @max_msg_size.setter
    def max_msg_size(self, value: int) -> None:
        self._decoder.max_msg_size = value

    @property
    def closed(self) -> bool:
        return self._closed or self._send_error is not None

    def statistics(self) -> ChannelStatistics:
        """Messages and bytes carried each way so far, and bytes queued."""
        return ChannelStatistics(self._messages_in, self._messages_out, self._bytes_in,
                                 self._bytes_out, len(self._pending))

    # --- sending ------------------------------------------------------------

    async def send(self, msg: Any, *, batch: bool = False) -> None:
        """Queue ``msg`` for the writer.

        Raises :class:`MsgTypeError` if ``msg`` cannot be encoded and
        :class:`TransportClosed` if the channel is closed. Blocks only while
        the peer is not keeping up; cancelling it then sends nothing.

        ``batch=True`` says more sends are likely to follow at once (say,
        many calls in flight): the message then waits for the writer's next
        write instead of costing a write of its own.
        """
        if not nothing_to_raise():
            await trio.lowlevel.checkpoint_if_cancelled()
        if len(self._pending) >= self._high_water:
            # wait before encoding: a sender waiting for room holds no bytes
            await self._wait_for_room_to_send()
        data = self._encoder.encode(msg)
        self._messages_out += 1
        pending = self._pending
        if batch:
            if len(pending) < self._batch_room and self._send_error is None \
                    and not self._closed:
                # the usual case in a burst: join the queued batch
                pending += data
                self._wake_writer()
                return
            # a batch big enough to keep the peer busy goes now: it works on
            # these while we make the rest (two processes, both working)
            direct = len(pending) >= BATCH_FLUSH
        else:
            now = time.perf_counter_ns()
            direct = now - self._last_direct > BURST_GAP_NS
            self._last_direct = now
        if direct and self._direct is not None and not self._writing \
                and self._send_error is None and not self._closed \
                and len(self._pending) < self._high_water:
            # a lone message with the writer idle: hand it (and anything
            # queued) to the kernel now, with no writer wake-up; messages in
            # a burst go to the writer instead, which sends them in batches
            if self._pending:  # behind what is queued, nothing copied
                self._pending += data
                self._write_pending_now()
                if not self._pending:
                    return
                self._wake_writer()
                return
            data = self._write_now(data)
            if not data:
                return
        if self._send_error is not None or self._closed:
            raise self._why_closed()
        self._pending += data
        self._wake_writer()

    async def _wait_for_room_to_send(self) -> None:
        while len(self._pending) >= self._high_water:
            if self._send_error is not None or self._closed:
                raise self._why_closed()
            # what is queued must go out for room to come: corked replies
            # (which wake nobody) may be what filled the queue
            self._wake_writer()
            await self._space_lot.park()

    @property
    def has_pending(self) -> bool:
        """True while messages wait for the writer (a burst is going on)."""
        return bool(self._pending) or self._writing

    def queue_yield(self, value: Any, cid: str) -> bool:
        """Queue ``{'yield': value, 'cid': cid}`` behind others already
        waiting, without awaiting.

        For a producer in the middle of a burst: if messages are queued (or
        being written) and there is room, the value joins them and this
        returns True. Otherwise (the channel closed too) it returns False,
        having done nothing, and the caller uses :meth:`send`, which says
        why. Raises :class:`MsgTypeError` if ``value`` cannot be encoded.
        The message is not counted in :meth:`statistics` here: the producer
        counts what it queued in bulk, with :meth:`count_queued`.
        """
        pending = self._pending
        if not (pending or self._writing) or len(pending) >= self._high_water \
                or self._send_error is not None or self._closed:
            return False
        pending += self._encoder.encode_yield(value, cid)
        self._wake_writer()
        return True

    def count_queued(self, count: int) -> None:
        """Count ``count`` messages queued with :meth:`queue_yield` as sent."""
        self._messages_out += count

    def send_corked(self, msg: Any) -> None:
        """Queue ``msg`` to go out with the next send (or close).

        For a reply that may as well travel with the one after it, such as a
        call's ``functype`` before its ``return``: one write instead of two.
        """
        self._cork(self._encoder.encode(msg))
        self._messages_out += 1

    def cork_reply(self, value: Any, cid: str) -> None:
        """``send_corked`` of a plain call's two replies, its ``functype``
        (``'asyncfunc'``) and its ``return`` of ``value``, encoded in one go."""
        self._cork(self._encoder.encode_reply(value, cid))
        self._messages_out += 2

    def _cork(self, data: bytes) -> None:
        if self._send_error is not None or self._closed:
            raise self._why_closed()
        self._pending += data
        if self._direct is None:  # no direct path: the writer must see it
            self._wake_writer()

    def _wake_writer(self) -> None:
        """Wake the writer if it is parked (once: it is then on its way)."""
        if self._writer_parked:
            self._writer_parked = False
            self._writer_lot.unpark()

    def flush_now(self) -> None:
        """Hand what is queued to the kernel now, without waiting.

        For the reader, once it has queued (corked) the replies to a whole
        read's worth of calls: one write for all of them. What the kernel
        does not take now is left to the writer. Nothing is copied: a
        queue the kernel has no room for costs one failed write.
        """
        if not self._pending or self._send_error is not None:
            return
        if self._direct is not None and not self._writing:
            try:
                self._write_pending_now()
            except TransportClosed:
                self._space_lot.unpark_all()
                self._flushed_lot.unpark_all()
                return
            # room now: a send() may be waiting for it (as after a writer
            # batch), and a flush() for everything to be out
            if self._space_lot:
                self._space_lot.unpark_all()
            if not self._pending:
                if self._flushed_lot:
                    self._flushed_lot.unpark_all()
                return
        self._wake_writer()

    def _write_pending_now(self) -> None:
        """Write what the kernel takes of the queue now; keep the rest queued.

        (Deleting from the front of a bytearray moves no bytes.)
        """
        del self._pending[:self._os_write(self._pending)]

    def _why_closed(self) -> TransportClosed:
        """A fresh error saying why nothing more can be sent: each task that
        raises it gets its own (one object raised by many tasks grows one
        traceback without bound)."""
        if self._send_error is not None:
            return TransportClosed(str(self._send_error))
        return TransportClosed(f'{self!r} is closed')

    def _write_now(self, data: Any) -> Any:
        """Write what the kernel takes of ``data`` (bytes or a memoryview)
        now; return the rest."""
        sent = self._os_write(data)
        return data[sent:] if sent < len(data) else b''

    def _os_write(self, data: Any) -> int:
        """One write to the socket; how much the kernel took (0 when full).

        A failed write marks the channel broken and raises TransportClosed.
        """
        try:
            sent = os.write(self._direct.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as err:
            self._send_error = TransportClosed(f'{self!r}: send failed: {err!r}')
            raise self._why_closed() from err
        self._bytes_out += sent
        return sent

    @property
    def reads_directly(self) -> bool:
        """True for a plain socket, read with ``os.read``: a read cancelled
        halfway loses nothing (unlike, say, TLS), so any task may read."""
        return self._direct is not None

    @property
    def has_room(self) -> bool:
        """True if a send would not wait for the peer to catch up."""
        return len(self._pending) < self._high_water

    def peer_hung_up(self) -> bool:
        """True if the peer has closed its end (or the socket failed), even
        with unread data still queued to us. (False where the OS cannot
        tell without reading: then reading finds out.)"""
        if self.closed:
            return True
        if self.socket is None or not hasattr(select, 'POLLRDHUP'):
            return False
        poller = select.poll()
        poller.register(self.socket.fileno(),
                        select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))

    async def wait_for_room(self) -> None:
        """Wait until a send would not wait (or the channel is closed)."""
        while len(self._pending) >= self._high_water and not self.closed:
            self._wake_writer()
            await self._space_lot.park()

    def send_nowait(self, msg: Any) -> None:
        """Queue a small control message now, past the high-water mark.

        For flow-control grants, which must never wait behind the data they
        unblock. Raises like :meth:`send`.
        """
        if self._send_error is not None or self._closed:
            raise self._why_closed()
        self._pending += self._encoder.encode(msg)
        self._messages_out += 1
        self._wake_writer()

    async def flush(self) -> None:
        """Wait until everything queued so far is handed to the OS."""
        while (self._pending or self._writing) and self._send_error is None:
            await self._flushed_lot.park()

    @trio.lowlevel.enable_ki_protection
    async def _write_loop(self) -> None:
        # Shielded: queued messages still go out while the scope that owns
        # the channel is being cancelled (e.g. a cancel request to a peer).
        # It ends once the channel is closed and drained, or the stream broke;
        # aclose() closes the stream under a stuck send_all to guarantee that.
        with trio.CancelScope(shield=True):
            while True:
                while not self._pending:
                    if self._closed:
                        self._flushed_lot.unpark_all()  # (flush_now may have emptied it)
                        return
                    self._writer_parked = True
                    try:
                        await self._writer_lot.park()
                    finally:
                        self._writer_parked = False  # (if not woken by us)
                batch, self._pending = self._pending, bytearray()
                self._space_lot.unpark_all()
                self._writing = True
                try:
                    if self._direct is not None:
                        await self._write_direct(batch)
                    else:
                        await self._stream.send_all(batch)
                        self._bytes_out += len(batch)
                except TransportClosed:
                    return  # _write_now has said why
                except _STREAM_ERRORS as err:
                    self._send_error = TransportClosed(
                        f'{self!r}: send failed: {err!r}')
                    return
                finally:
                    self._writing = False
                    self._flushed_lot.unpark_all()
                    self._space_lot.unpark_all()

    async def _write_direct(self, data: bytearray) -> None:
        """``send_all`` on the plain socket, without its scheduler pass after
        each write: the writer waits only when the kernel's buffer is full."""
        rest: Any = memoryview(data)
        while rest:
            rest = self._write_now(rest)
            if rest:
                await trio.lowlevel.wait_writable(self._direct)

    # --- receiving ----------------------------------------------------------

    async def receive(self) -> dict:
        """The next message; :class:`TransportClosed` once the peer is gone.

        A malformed message raises :class:`ProtocolError`; the channel is
        useless after that and should be closed.
        """
        if not self._received:
            self._received.extend(await self.receive_batch(at_eof_empty=False))
        return self._received.popleft()

    async def _read_direct(self) -> bytes:
        """Read a plain socket with no scheduler pass when data is waiting.

        ``SocketStream.receive_some`` yields to the scheduler after every
        successful read; on the per-message path that is a whole extra
        scheduler pass per round trip. This yields only when the socket is
        empty (waiting for it) or after ``FAIR_READS`` reads in a row that
        found data, so a peer that never pauses cannot starve other tasks.
        """
        sock = self._direct
        data: Optional[bytes] = None
        if self._drained:
            # the last read took less than it could: the socket is most
            # likely empty, so wait for it rather than ask it (and fail);
            # the wait is the cancellation point
            self._drained = False
            fd = sock.fileno()
            if fd < 0:
                # closed since (by aclose): trio would take -1 for a
                # descriptor and fail with a ValueError
                raise trio.ClosedResourceError(f'{self!r} is closed')
            start = time.perf_counter_ns()
            if self._last_wait <= self.spin_ns:
                if self._spin_skips:
                    self._spin_skips -= 1
                elif (self._reads_in_a_row < FAIR_READS and self._spun < SPIN_BUDGET_NS
                        and free_to_spin()):
                    data = self._spin(fd, start)
            if data is None:
                await trio.lowlevel.wait_readable(sock)
                self._last_wait = time.perf_counter_ns() - start
                self._reads_in_a_row = self._spun = 0  # other tasks ran while we waited
        else:
            if not nothing_to_raise():
                await trio.lowlevel.checkpoint_if_cancelled()
            if self._reads_in_a_row >= FAIR_READS:
                self._reads_in_a_row = self._spun = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
        while data is None:
            try:
                data = os.read(sock.fileno(), READ_SIZE)
            except BlockingIOError:
                self._reads_in_a_row = self._spun = 0
                start = time.perf_counter_ns()
                await trio.lowlevel.wait_readable(sock)
                self._last_wait = time.perf_counter_ns() - start
        self._reads_in_a_row += 1
        # a short read most likely emptied the socket, unless it was part of
        # a burst: a peer streaming to us has likely written more by the
        # time we have handled this much
        self._drained = len(data) < BURST_READ
        return data

    def _spin(self, fd: int, start: int) -> Optional[bytes]:
        """Poll the socket for up to ``spin_ns``: what it read, or None.

        For a reader whose peer answered within the spin last time: parking
        costs a wake-up when the answer comes (and, on a virtual machine,
        caches gone cold), which can take longer than the answer itself.
        """
        end = start + self.spin_ns
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                if time.perf_counter_ns() < end:
                    continue
                # not this time: park, and poll less until a poll finds data
                self._spin_misses = min(self._spin_misses + 1, MAX_SPIN_BACKOFF_SHIFT)
                self._spin_skips = 1 << self._spin_misses
                return None
            self._last_wait = time.perf_counter_ns() - start
            self._spun += self._last_wait
            self._spin_misses = 0
            return data

    async def recv(self) -> dict:
        """tractor's name of :meth:`receive`."""
        return await self.receive()

    async def receive_batch(self, *, at_eof_empty: bool = True) -> List[dict]:
        """Every message already decoded (at least one); ``[]`` at a clean EOF.

        For the runtime's reader, which handles messages in a plain loop
        instead of paying for an async iteration per message. With
        ``at_eof_empty=False`` the end of the stream raises
        :class:`TransportClosed` (saying why) instead.
        """
        if self._received:  # left by receive()
            batch = list(self._received)
            self._received.clear()
            return batch
        while True:  # (the read loop in line: one coroutine less per read)
            if self._eof:
                if at_eof_empty:
                    return []
                raise TransportClosed(f'{self!r}: peer closed the connection')
            data: 'bytes | bytearray'
            try:
                if self._direct is not None:
                    data = await self._read_direct()
                else:
                    data = await self._stream.receive_some(READ_SIZE)
            except _STREAM_ERRORS as err:
                self._eof = True
                if at_eof_empty:
                    return []
                raise TransportClosed(f'{self!r}: receive failed: {err!r}') from err
            if not data:
                self._eof = True
                if self._decoder.buffered:
                    raise ProtocolError(
                        f'{self!r}: peer closed in the middle of a message')
                continue
            messages = self._decoder.feed(data)
            self._bytes_in += len(data)
            if messages:
                self._messages_in += len(messages)
                return messages

    def __aiter__(self) -> AsyncIterator[dict]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict]:
        """Messages until the peer closes cleanly."""
        while True:
            try:
                msg = await self.receive()
            except TransportClosed:
                if self._eof and not self._received:
                    return
                raise
            yield msg

    # --- closing ------------------------------------------------------------

    async def aclose(self) -> None:
        """Flush what is queued (for up to 2 s), then close the stream.

        Safe to call twice; runs even inside a cancelled scope.
        """
        if self._closed:
            return
        self._closed = True
        self._writer_lot.unpark_all()
        self._space_lot.unpark_all()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT):
                await self.flush()
            try:
                await self._stream.aclose()
            except _STREAM_ERRORS:
                pass


@asynccontextmanager
async def open_channel(stream: trio.abc.Stream, **kwargs: Any) -> AsyncIterator[Channel]:
    """Run a :class:`Channel` over ``stream``; close both on exit."""
    chan = Channel(stream, **kwargs)
    try:
        with collapsing_groups():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(chan._write_loop)
                try:
                    yield chan
                finally:
                    await chan.aclose()
                    nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
