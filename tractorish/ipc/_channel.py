"""``Channel``: framed msgpack messages over one trio byte stream.

A channel speaks messages: its :class:`~tractorish.msg.Protocol` turns
them into bytes and back (and keeps each call's dialog and credit), its
:class:`~tractorish.ipc._socket_io.SocketIO` moves the bytes, with the
socket shortcuts and the writer task. One way to send (:meth:`Channel.send`,
and :meth:`Channel.send_nowait` for what must not wait), one way to
receive (:meth:`Channel.receive`). This module and ``_socket_io`` are the
only places where trio's and the OS's stream errors become
:class:`TransportClosed`.
"""
from __future__ import annotations

import select
import socket
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Deque, List, Literal, Optional, Tuple, overload

import trio

from .._exceptions import ProtocolError, TransportClosed
from .._groups import collapsing_groups
from ..msg import DEFAULT_MAX_MSG_SIZE, Aid, Protocol
from ._socket_io import HIGH_WATER, STREAM_ERRORS, SocketIO

CLOSE_FLUSH_TIMEOUT = 2.0


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
    handshake; ``protocol`` is the channel's :class:`~tractorish.msg.Protocol`
    (the runtime opens and closes its calls there).
    """

    def __init__(self, stream: trio.abc.Stream, *,
                 max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
                 high_water: int = HIGH_WATER, name: str = '') -> None:
        self._io = SocketIO(stream, high_water=high_water, describe=self.__repr__)
        # the socket under it all (under TLS too), for the handshake's binding
        self.socket = self._io.direct if self._io.direct is not None else getattr(
            getattr(stream, 'transport_stream', None), 'socket', None)
        _keep_alive(self.socket)
        # framing, and each call's dialog and credit (sans-I/O)
        self.protocol = Protocol(max_msg_size)
        self._received: Deque[dict] = deque()
        # for statistics(): messages received once per read, sent once per send
        self._messages_in = self._messages_out = 0
        self._eof = False
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
        return self.protocol.max_msg_size

    @max_msg_size.setter
    def max_msg_size(self, value: int) -> None:
        self.protocol.max_msg_size = value

    @property
    def spin_ns(self) -> int:
        """How long a read that finds the socket empty polls it before
        parking, when the peer answered that fast last time (0: never)."""
        return self._io.spin_ns

    @spin_ns.setter
    def spin_ns(self, value: int) -> None:
        self._io.spin_ns = value

    @property
    def closed(self) -> bool:
        return self._io.closed or self._io.send_error is not None

    @property
    def has_room(self) -> bool:
        """True if a :meth:`send` would not wait for the peer to catch up."""
        io = self._io  # (read in line: a producer asks once per value)
        return len(io.pending) < io.high_water

    @property
    def reads_directly(self) -> bool:
        """True for a plain socket, read with ``os.read``: a read cancelled
        halfway loses nothing (unlike, say, TLS), so any task may read."""
        return self._io.direct is not None

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

    def statistics(self) -> ChannelStatistics:
        """Messages and bytes carried each way so far, and bytes queued."""
        return ChannelStatistics(self._messages_in, self._messages_out, self._io.bytes_in,
                                 self._io.bytes_out, len(self._io.pending))

    # --- sending ------------------------------------------------------------

    async def send(self, msg: Any, *, batch: bool = False) -> None:
        """Send ``msg`` (a message, or a list of messages to go together).

        A checkpoint. Raises :class:`MsgTypeError` if ``msg`` cannot be
        encoded and :class:`TransportClosed` if the channel is closed.
        Waits only while the peer is not keeping up (more than the
        high-water mark queued); cancelled then, it sends nothing.

        ``batch=True`` says more sends are likely to follow at once (say,
        many calls in flight): the message then waits for the writer's next
        write instead of costing a write of its own.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        io = self._io
        if len(io.pending) >= io.high_water:
            # wait before encoding: a sender waiting for room holds no bytes
            await io.wait_for_room()
        if type(msg) is list:
            data = self.protocol.send_all(msg)
            self._messages_out += len(msg)
        else:
            data = self.protocol.send(msg)
            self._messages_out += 1
        if batch:
            io.write_batched(data)
        else:
            io.write_soon(data)

    def send_nowait(self, msg: Any, *, stream: Optional[str] = None,
                    reply: Optional[str] = None) -> None:
        """:meth:`send` without waiting: not a checkpoint, and never blocks.
        Raises like :meth:`send`.

        For what must not wait behind the data queued: flow-control grants
        and a stream's end (which unblock that data), the replies a reader
        makes to the calls it answers in place. These go past the
        high-water mark, to the kernel at once (or, between :meth:`cork`
        and :meth:`uncork`, in one write at the uncork).

        ``reply=cid``: ``msg`` is the return value of plain call ``cid``:
        its ``functype`` and its ``return`` go (a callee's hot path: the
        maps are never built).

        ``stream=cid``: ``msg`` is the next value of call ``cid``'s stream,
        ``{'yield': msg, 'cid': cid}`` (a producer's hot path: the map is
        never built). More are likely to follow at once, so it may wait for
        the writer's next write; and it respects the high-water mark: when
        a :meth:`send` would wait, it raises ``trio.WouldBlock`` having
        queued nothing, and the producer awaits :meth:`send` instead.
        """
        if stream is not None:  # a producer's value: the hot path
            self._io.write_in_burst(self.protocol.send_yield(msg, stream))
            self._messages_out += 1
        elif reply is not None:
            self._io.write_at_once(self.protocol.send_reply(msg, reply))
            self._messages_out += 2
        elif type(msg) is list:
            self._io.write_at_once(self.protocol.send_all(msg))
            self._messages_out += len(msg)
        else:
            self._io.write_at_once(self.protocol.send(msg))
            self._messages_out += 1

    def cork(self) -> None:
        """Hold what :meth:`send_nowait` sends until :meth:`uncork`, which
        writes it in one go (the runtime's reader, answering the calls of
        one read in place). Not for what a task awaits: call ``uncork``
        before anything that waits."""
        self._io.cork()

    def uncork(self) -> None:
        """Write what :meth:`cork` held. Never raises: a failed write
        breaks the channel, and the next send raises."""
        self._io.uncork()

    # --- receiving ----------------------------------------------------------

    @overload
    async def receive(self) -> dict: ...
    @overload
    async def receive(self, *, batch: Literal[False], poll: bool = True) -> dict: ...
    @overload
    async def receive(self, *, batch: Literal[True], poll: bool = True) -> List[dict]: ...

    async def receive(self, *, batch: bool = False, poll: bool = True) -> Any:
        """The next message; :class:`TransportClosed` once the peer is gone.

        Waits (a checkpoint) only when no message is decoded yet; cancelled
        while waiting, it loses nothing. A malformed message, or one out of
        order for its call, raises :class:`ProtocolError`; the channel is
        useless after that and should be closed.

        ``batch=True``: every message already decoded (at least one) as a
        list, ``[]`` once the peer is gone (cleanly or not); for the
        runtime's reader, which handles a read's messages in a plain loop.
        ``poll=False``: a read that finds the socket empty parks at once,
        without polling it first (see :attr:`spin_ns`).
        """
        if self._received:  # decoded by an earlier read, not taken yet
            if not batch:
                return self._received.popleft()
            messages = list(self._received)
            self._received.clear()
            return messages
        # (the read loop in line: one coroutine less per read)
        while True:
            if self._eof:
                if batch:
                    return []
                raise TransportClosed(f'{self!r}: peer closed the connection')
            try:
                data = await self._io.read(poll)
            except STREAM_ERRORS as err:
                self._eof = True
                if batch:
                    return []
                raise TransportClosed(f'{self!r}: receive failed: {err!r}') from err
            if not data:
                self._eof = True
                if self.protocol.buffered:
                    raise ProtocolError(
                        f'{self!r}: peer closed in the middle of a message')
                continue
            messages = self.protocol.receive_data(data)
            if messages:
                self._messages_in += len(messages)
                if batch:
                    return messages
                self._received.extend(messages)
                return self._received.popleft()

    async def recv(self) -> dict:
        """tractor's name of :meth:`receive`."""
        return await self.receive()

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
        if self._io.closed:
            return
        self._io.close()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT):
                await self._io.drain()
            try:
                await self._io.stream.aclose()
            except STREAM_ERRORS:
                pass


@asynccontextmanager
async def open_channel(stream: trio.abc.Stream, **kwargs: Any) -> AsyncIterator[Channel]:
    """Run a :class:`Channel` over ``stream``; close both on exit."""
    chan = Channel(stream, **kwargs)
    try:
        with collapsing_groups():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(chan._io.write_loop)
                try:
                    yield chan
                finally:
                    await chan.aclose()
                    nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
