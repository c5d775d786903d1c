"""Connecting, listening and the authenticated handshake.

The handshake (DESIGN sections 3 and 5), for connector C and acceptor A::

    C -> A  hello{uid, proto, nonce_c}      A -> C  hello{uid, proto, nonce_a}
    C -> A  auth(HMAC(secret, "connect", nonce_a, nonce_c))
    A checks it; on failure A closes without proving anything itself
    A -> C  auth(HMAC(secret, "accept", nonce_c, nonce_a))

The direction label stops a peer from reflecting one side's proof back at
it; the fresh nonces stop replays. Each proof also covers both uids and
the endpoint the connection was made to (the address C dialled, which A
sees as its own end of the accepted socket), so a proof obtained by
getting some actor to connect to an impostor is worthless anywhere else:
relaying it to the real actor fails. (One consequence: a connection
through NAT or a port forward, where the two ends see different addresses,
is refused.) Nothing but ``hello`` and ``auth`` is read before the
handshake completes, and nothing larger than ``HANDSHAKE_MAX_MSG`` bytes.
"""
from __future__ import annotations

import logging
import os
import socket as stdlib_socket
import stat
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional, Sequence, Tuple

import trio


from .._exceptions import AuthenticationError, ProtocolError, TransportClosed
from ..msg import PROTOCOL_VERSION, auth, hello, message_kind
from ._addr import Address, format_addr, normalize_addr
from ._channel import Channel, open_channel
from ._secret import macs_equal, make_mac
from ._tls import TLS, PeerLeft, wrap_client, wrap_server

log = logging.getLogger('tractorish.ipc')

HANDSHAKE_TIMEOUT = 10.0
HANDSHAKE_MAX_MSG = 64 * 1024
MAX_HANDSHAKES = 64  # connections per listener not yet authenticated
_CONNECT_LABEL = b'tractorish-connect'
_ACCEPT_LABEL = b'tractorish-accept'


async def _receive_kind(chan: Channel, kind: str, initiator: bool) -> Any:
    try:
        msg = await chan.receive()
    except TransportClosed as err:
        if kind == 'hello' or not initiator:
            # a connector that hangs up never proved anything: a port probe
            # or a process dying mid-start, not an attack worth a warning
            raise PeerLeft('the peer closed the connection during the handshake, '
                           'before it authenticated') from err
        raise AuthenticationError(
            'the peer closed the connection during the handshake: it refused '
            'us (a different secret?) or is not a tractorish actor') from err
    if message_kind(msg) != kind:
        raise AuthenticationError(
            f'expected {kind!r} during the handshake, got {message_kind(msg)!r}')
    return msg[kind]


async def handshake(chan: Channel, *, uid: Sequence[str], secret: bytes,
                    initiator: bool, info: Optional[dict] = None) -> dict:
    """Exchange hellos and prove the shared secret; return the peer's hello.

    Raises :class:`AuthenticationError` on any failure; the caller closes
    the channel. Sets ``chan.peer_uid`` and ``chan.peer_info``.
    """
    nonce = os.urandom(16)  # (what secrets.token_bytes does, without importing it)
    limit = chan.max_msg_size
    chan.max_msg_size = min(limit, HANDSHAKE_MAX_MSG)  # strangers get little room
    await chan.send(hello(uid, nonce, **(info or {})))
    try:
        peer = await _receive_kind(chan, 'hello', initiator)
        if peer['proto'] != PROTOCOL_VERSION:
            raise AuthenticationError(
                f'peer speaks protocol {peer["proto"]}, we speak {PROTOCOL_VERSION}')
        me, them = '\0'.join(uid).encode(), '\0'.join(peer['uid']).encode()
        # connector's nonce, acceptor's nonce, connector's uid, acceptor's uid
        if initiator:
            parts = (nonce, peer['nonce'], me, them, _endpoint(chan, initiator))
            await chan.send(auth(make_mac(secret, _CONNECT_LABEL, *parts)))
            proof = await _receive_kind(chan, 'auth', initiator)
            expected = make_mac(secret, _ACCEPT_LABEL, *parts)
        else:
            parts = (peer['nonce'], nonce, them, me, _endpoint(chan, initiator))
            proof = await _receive_kind(chan, 'auth', initiator)
            expected = make_mac(secret, _CONNECT_LABEL, *parts)
    except ProtocolError as err:
        raise AuthenticationError(f'bad handshake message: {err}') from err
    if not macs_equal(proof, expected):
        raise AuthenticationError(
            f'peer {peer["uid"][0]!r} failed authentication (wrong secret)')
    if not initiator:
        await chan.send(auth(make_mac(secret, _ACCEPT_LABEL, *parts)))
    chan.max_msg_size = limit
    chan.peer_uid = (peer['uid'][0], peer['uid'][1])
    chan.peer_info = peer
    chan.initiator = initiator
    return peer


def _endpoint(chan: Channel, initiator: bool) -> bytes:
    """The acceptor's end of the connection, as this side sees it."""
    sock = chan.socket
    if sock is None:  # an in-memory stream: nothing to bind to
        return b''
    try:
        name = sock.getpeername() if initiator else sock.getsockname()
    except OSError:
        return b''
    if isinstance(name, tuple):
        name = f'{name[0]}:{name[1]}'
    return name.encode() if isinstance(name, str) else bytes(name)


async def open_stream_to(addr: Address) -> trio.abc.Stream:
    """A raw byte stream to ``addr``; :class:`TransportClosed` if refused."""
    try:
        if isinstance(addr, str):
            return await trio.open_unix_socket(addr)
        family = _ip_family(addr[0])
        if family is not None:
            return await _connect_ip(family, addr)
        return await trio.open_tcp_stream(_resolvable(addr[0]), addr[1])
    except OSError as err:
        raise TransportClosed(
            f'cannot connect to {format_addr(addr)}: {err.strerror or err}') from err


@asynccontextmanager
async def connect(addr: Address, *, uid: Sequence[str], secret: bytes,
                  info: Optional[dict] = None,
                  timeout: float = HANDSHAKE_TIMEOUT,
                  tls: Optional[TLS] = None,
                  **chan_kwargs: Any) -> AsyncIterator[Channel]:
    """Connect to ``addr`` and run the handshake; yield the channel.

    With ``tls``, a TCP connection is wrapped in TLS first (mutual
    certificates); the secret handshake then runs inside it.
    """
    addr = normalize_addr(addr)
    with trio.move_on_after(timeout) as scope:
        stream = await open_stream_to(addr)
        if tls is not None and not isinstance(addr, str):
            stream = await wrap_client(stream, tls, addr[0])
    if scope.cancelled_caught:
        raise TransportClosed(f'connecting to {format_addr(addr)} timed out')
    async with open_channel(stream, name=format_addr(addr), **chan_kwargs) as chan:
        with trio.move_on_after(timeout) as scope:
            await handshake(chan, uid=uid, secret=secret, initiator=True, info=info)
        if scope.cancelled_caught:
            raise AuthenticationError(f'handshake with {format_addr(addr)} timed out')
        yield chan


async def open_listener(addr: Address) -> Tuple[trio.SocketListener, Address]:
    """Bind ``addr`` (port 0 picks a free port); return it and the real address."""
    addr = normalize_addr(addr)
    if isinstance(addr, str):
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        try:
            _remove_stale_socket(addr)
            await sock.bind(addr)
            os.chmod(addr, 0o600)
            sock.listen(512)
        except BaseException:
            sock.close()
            raise
        return trio.SocketListener(sock), addr
    listeners = await trio.open_tcp_listeners(addr[1], host=_resolvable(addr[0]))
    for extra in listeners[1:]:  # one address family is enough
        await extra.aclose()
    bound = listeners[0].socket.getsockname()
    return listeners[0], (advertised_host(addr[0]), bound[1])


def _ip_family(host: str) -> Optional[int]:
    """``AF_INET`` or ``AF_INET6`` if ``host`` is an IP address, else None."""
    for family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
        try:
            stdlib_socket.inet_pton(family, host)
            return family
        except (OSError, ValueError):
            continue
    return None


async def _connect_ip(family: int, addr: Tuple[str, int]) -> trio.SocketStream:
    """Connect to an IP address as given: no resolving, nothing to race.

    ``trio.open_tcp_stream`` resolves the host and races the addresses it
    gets (happy eyeballs), with a nursery and a task per attempt, for one
    address here: a millisecond of a forked actor's start. The stream is
    the same (``SocketStream`` sets ``TCP_NODELAY`` itself).
    """
    sock = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
    try:
        await sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def _resolvable(host: str) -> 'str | bytes':
    """``host`` as handed to the resolver: an ASCII name or address as
    bytes, which ``getaddrinfo`` takes as is. Given a ``str`` it encodes it
    with the IDNA codec, whose import (``stringprep``, ``unicodedata``) was
    a few milliseconds of every fresh actor's start. Other names stay
    ``str``, for trio to encode."""
    return host.encode('ascii') if host.isascii() else host


def advertised_host(host: str) -> str:
    """The address others should use for a listener bound to ``host``.

    A wildcard (``0.0.0.0``, ``::``, ``''``) is no address to connect to:
    use this machine's name as the resolver sees it, or loopback.
    """
    if host not in ('0.0.0.0', '::', ''):
        return host
    try:
        return stdlib_socket.gethostbyname(stdlib_socket.gethostname())
    except OSError:
        return '127.0.0.1'


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f'{path} exists and is not a socket')
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: left over by a dead process
        return
    finally:
        probe.close()
    raise OSError(f'{path} is in use by a live listener')


Handler = Callable[[Channel], Awaitable[None]]


async def serve_listener(listener: trio.SocketListener, addr: Address,
                         handler: Handler, *, uid: Sequence[str], secret: bytes,
                         info: Optional[dict] = None,
                         handler_nursery: Optional[trio.Nursery] = None,
                         tls: Optional[TLS] = None,
                         task_status: Any = trio.TASK_STATUS_IGNORED,
                         **chan_kwargs: Any) -> None:
    """Accept connections forever; run ``handler`` on each authenticated one.

    A connection that fails the handshake is logged and closed; the listener
    goes on. Removes a UDS path when it stops.
    """
    handshakes = trio.Semaphore(MAX_HANDSHAKES)

    async def on_stream(stream: trio.abc.Stream) -> None:
        try:
            handshakes.acquire_nowait()
        except trio.WouldBlock:  # too many strangers at once: turn this one away
            await trio.aclose_forcefully(stream)
            return
        held = True
        try:
            if tls is not None and not isinstance(addr, str):
                try:
                    with trio.fail_after(HANDSHAKE_TIMEOUT):
                        stream = await wrap_server(stream, tls)
                except PeerLeft:
                    return
                except (AuthenticationError, trio.TooSlowError) as err:
                    log.warning('refused a connection on %s: %s', format_addr(addr), err)
                    return
            async with open_channel(stream, **chan_kwargs) as chan:
                try:
                    with trio.fail_after(HANDSHAKE_TIMEOUT):
                        await handshake(chan, uid=uid, secret=secret,
                                        initiator=False, info=info)
                except PeerLeft:
                    return
                except (AuthenticationError, ProtocolError, TransportClosed,
                        trio.TooSlowError) as err:
                    log.warning('refused a connection on %s: %s', format_addr(addr), err)
                    return
                held = False
                handshakes.release()
                await handler(chan)
        finally:
            if held:
                handshakes.release()

    try:
        await trio.serve_listeners(
            on_stream, [listener], handler_nursery=handler_nursery,
            task_status=task_status)
    finally:
        if isinstance(addr, str):
            try:
                os.unlink(addr)
            except OSError:
                pass


@asynccontextmanager
async def open_memory_channel_pair(**chan_kwargs: Any) -> AsyncIterator[List[Channel]]:
    """Two connected channels over an in-memory stream, for tests."""
    import trio.testing  # only here: it is slow to import
    left, right = trio.testing.lockstep_stream_pair()
    async with open_channel(left, name='left', **chan_kwargs) as a:
        async with open_channel(right, name='right', **chan_kwargs) as b:
            yield [a, b]
