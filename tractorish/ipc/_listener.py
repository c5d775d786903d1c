"""Serving a listener: every connection is a stranger until it proves the secret.

Strangers must never starve the peers that do authenticate, whoever opens
them and however many (docs/security.md#connections-before-authentication):

- A stranger's hello must come within ``HELLO_TIMEOUT`` (2 s) of its
  connection being accepted, and the whole handshake, TLS included, must
  be done within ``HANDSHAKE_TIMEOUT`` (5 s).
- At most ``MAX_PENDING_PER_SOURCE`` connections from one source (an IPv4
  address, an IPv6 /64, or all Unix-socket peers together) and
  ``MAX_PENDING`` in all are unauthenticated at once.
- A new connection is always taken. Over either limit, the oldest
  unauthenticated connection (of that source, for the first limit) is shed
  to make room: one that has sent nothing yet before one that has sent its
  hello. A genuine peer sends its hello at once and is done in a round
  trip, so idle or slow connections are the ones that go.
"""
from __future__ import annotations

import logging
import math
import os
import socket as stdlib_socket
from typing import (Any, Awaitable, Callable, Dict, Hashable, NamedTuple, Optional,
                    Sequence, Tuple)

import trio

from .._exceptions import AuthenticationError, ProtocolError, TransportClosed
from . import _handshake
from ._addr import Address, format_addr
from ._channel import Channel, open_channel
from ._handshake import NoAnswerError, handshake
from ._tls import TLS, PeerLeft, channel_binding, wrap_server

log = logging.getLogger('tractorish.ipc')

MAX_PENDING = 512
MAX_PENDING_PER_SOURCE = 128
# how often, at most, a listener warns that it is shedding connections
SHED_WARNING_INTERVAL = 60.0

Handler = Callable[[Channel], Awaitable[None]]


class PendingStatistics(NamedTuple):
    pending: int  # unauthenticated connections now
    talking: int  # of which have sent their hello
    shed: int     # connections shed so far to make room


class Pending:
    """One connection not authenticated yet."""

    __slots__ = ('source', 'scope', 'accepted', 'talking', 'shed')

    def __init__(self, source: Hashable, scope: Any, accepted: float) -> None:
        self.source = source
        self.scope = scope  # cancelled to shed it
        self.accepted = accepted
        self.talking = False  # its hello has come
        self.shed = False


# connections in arrival order (dicts keep insertion order): (silent, talking)
_Queues = Tuple[Dict[Pending, None], Dict[Pending, None]]


def _oldest(queues: _Queues) -> Pending:
    silent, talking = queues
    return next(iter(silent or talking))


class PendingHandshakes:
    """The unauthenticated connections of one listener, and who to shed.

    :meth:`admit` never refuses: it sheds (cancels the scope of) the oldest
    connection of the newcomer's source when that source is at
    ``per_source``, then the oldest of all when ``limit`` are pending; a
    silent one before one that has said hello.
    """

    def __init__(self, limit: int = MAX_PENDING,
                 per_source: int = MAX_PENDING_PER_SOURCE) -> None:
        self.limit = limit
        self.per_source = per_source
        self.shed_count = 0
        self._all: _Queues = ({}, {})
        self._sources: Dict[Hashable, _Queues] = {}

    def __len__(self) -> int:
        return len(self._all[0]) + len(self._all[1])

    def statistics(self) -> PendingStatistics:
        return PendingStatistics(len(self), len(self._all[1]), self.shed_count)

    def count(self, source: Hashable) -> int:
        queues = self._sources.get(source)
        return len(queues[0]) + len(queues[1]) if queues else 0

    def admit(self, source: Hashable, scope: Any, now: float = 0.0) -> Pending:
        if self.count(source) >= self.per_source:
            self._shed(_oldest(self._sources[source]))
        if len(self) >= self.limit:
            self._shed(_oldest(self._all))
        pending = Pending(source, scope, now)
        self._all[0][pending] = None
        self._sources.setdefault(source, ({}, {}))[0][pending] = None
        return pending

    def said_hello(self, pending: Pending) -> None:
        """``pending`` has sent its hello: shed it only after silent ones."""
        queues = self._sources.get(pending.source)
        if pending.talking or queues is None or pending not in queues[0]:
            return
        pending.talking = True
        for silent, talking in (self._all, queues):
            del silent[pending]
            talking[pending] = None

    def done(self, pending: Pending) -> None:
        """``pending`` authenticated, failed or left: it holds no place now."""
        queues = self._sources.get(pending.source)
        if queues is None or pending not in queues[pending.talking]:
            return
        del queues[pending.talking][pending]
        del self._all[pending.talking][pending]
        if not (queues[0] or queues[1]):
            del self._sources[pending.source]

    def _shed(self, pending: Pending) -> None:
        self.done(pending)
        pending.shed = True
        self.shed_count += 1
        pending.scope.cancel()


def source_of(stream: trio.abc.Stream) -> Hashable:
    """Whom a connection counts against: its IPv4 address, its IPv6 /64,
    or ``'local'`` for a Unix socket (or a stream with no socket)."""
    sock = getattr(stream, 'socket', None)
    if sock is None or sock.family not in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
        return 'local'
    try:
        host = sock.getpeername()[0]
    except OSError:
        return 'local'
    if sock.family == stdlib_socket.AF_INET6:
        try:
            return stdlib_socket.inet_pton(stdlib_socket.AF_INET6, host.split('%')[0])[:8]
        except OSError:
            return host
    return host


class _Acceptor:
    """What ``serve_listener`` does with each accepted connection."""

    def __init__(self, addr: Address, handler: Handler, uid: Sequence[str], secret: bytes,
                 info: Optional[dict], tls: Optional[TLS], pending: PendingHandshakes,
                 chan_kwargs: dict) -> None:
        self.addr, self.handler, self.uid, self.secret = addr, handler, uid, secret
        self.info, self.tls, self.pending, self.chan_kwargs = info, tls, pending, chan_kwargs
        self._shed_reported = 0
        self._shed_warned_at = -math.inf

    async def on_stream(self, stream: trio.abc.Stream) -> None:
        now = trio.current_time()
        with trio.CancelScope(deadline=now + _handshake.HANDSHAKE_TIMEOUT) as scope:
            pending = self.pending.admit(source_of(stream), scope, now)
            self._report_shedding()
            try:
                await self._serve(stream, pending, scope)
            finally:
                self.pending.done(pending)
                await trio.aclose_forcefully(stream)
        if scope.cancelled_caught:
            log.debug('dropped an unauthenticated connection on %s: %s',
                      format_addr(self.addr),
                      'shed to make room for newer ones' if pending.shed else
                      f'no handshake within {_handshake.HANDSHAKE_TIMEOUT:g} s')

    async def _serve(self, stream: trio.abc.Stream, pending: Pending,
                     scope: trio.CancelScope) -> None:
        binding = b''
        if self.tls is not None and not isinstance(self.addr, str):
            try:
                stream = await wrap_server(stream, self.tls)
                binding = channel_binding(stream, self.tls, connector=False)
            except PeerLeft:
                return
            except AuthenticationError as err:
                log.warning('refused a connection on %s: %s', format_addr(self.addr), err)
                return
        async with open_channel(stream, **self.chan_kwargs) as chan:
            if await self._authenticate(chan, pending, binding):
                scope.deadline = math.inf  # authenticated: no deadline, never shed
                await self.handler(chan)

    async def _authenticate(self, chan: Channel, pending: Pending, binding: bytes) -> bool:
        def on_step(step: str) -> None:
            if step == 'hello':
                self.pending.said_hello(pending)
            else:
                self.pending.done(pending)

        left = pending.accepted + _handshake.HELLO_TIMEOUT - trio.current_time()
        try:
            await handshake(chan, uid=self.uid, secret=self.secret, initiator=False,
                            info=self.info, binding=binding,
                            answer_timeout=max(left, 0.0), on_step=on_step)
        except PeerLeft:
            return False
        except NoAnswerError as err:  # port scanners and idle sockets: no warning
            log.debug('dropped a connection on %s: %s', format_addr(self.addr), err)
            return False
        except (AuthenticationError, ProtocolError, TransportClosed) as err:
            log.warning('refused a connection on %s: %s', format_addr(self.addr), err)
            return False
        return True

    def _report_shedding(self) -> None:
        shed = self.pending.shed_count
        now = trio.current_time()
        if shed == self._shed_reported or now - self._shed_warned_at < SHED_WARNING_INTERVAL:
            return
        log.warning(
            'listener %s: %d unauthenticated connection(s) shed to make room for '
            'new ones (more than %d at once, or %d from one source)',
            format_addr(self.addr), shed - self._shed_reported,
            self.pending.limit, self.pending.per_source)
        self._shed_reported, self._shed_warned_at = shed, now


async def serve_listener(listener: trio.SocketListener, addr: Address,
                         handler: Handler, *, uid: Sequence[str], secret: bytes,
                         info: Optional[dict] = None,
                         handler_nursery: Optional[trio.Nursery] = None,
                         tls: Optional[TLS] = None,
                         pending: Optional[PendingHandshakes] = None,
                         task_status: Any = trio.TASK_STATUS_IGNORED,
                         **chan_kwargs: Any) -> None:
    """Accept connections forever; run ``handler`` on each authenticated one.

    A connection that fails the handshake is logged and closed; one that
    stays silent is dropped, or shed for newer ones (module docstring); the
    listener goes on. ``info`` is sent to each peer once it has proved the
    secret. Removes a UDS path when it stops.
    """
    acceptor = _Acceptor(addr, handler, uid, secret, info, tls,
                         pending if pending is not None else PendingHandshakes(),
                         chan_kwargs)
    try:
        await trio.serve_listeners(
            acceptor.on_stream, [listener], handler_nursery=handler_nursery,
            task_status=task_status)
    finally:
        if isinstance(addr, str):
            try:
                os.unlink(addr)
            except OSError:
                pass
