"""Connecting and binding: byte streams to and from addresses.

:func:`connect` opens an authenticated channel (the handshake is in
``_handshake``); :func:`open_listener` binds an address, which
``_listener.serve_listener`` then serves.
"""
from __future__ import annotations

import os
import socket as stdlib_socket
import stat
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, List, Optional, Sequence, Tuple

import trio

from .._exceptions import TransportClosed
from . import _handshake
from ._addr import Address, format_addr, normalize_addr
from ._channel import Channel, open_channel
from ._handshake import NoAnswerError
from ._handshake import handshake as handshake  # (the rehearsal of a spare imports it here)
from ._tls import TLS, channel_binding, wrap_client


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
                  timeout: Optional[float] = None,
                  answer_timeout: Optional[float] = None,
                  tls: Optional[TLS] = None,
                  **chan_kwargs: Any) -> AsyncIterator[Channel]:
    """Connect to ``addr`` and run the handshake; yield the channel.

    With ``tls``, a TCP connection is wrapped in TLS first (mutual
    certificates); the secret handshake then runs inside it, bound to it.
    ``info`` goes to the peer once it has proved the secret.

    Raises :class:`TransportClosed` if nothing accepts at ``addr``;
    :class:`NoAnswerError` (a ``TransportClosed`` and a ``TimeoutError``)
    if the connection or TLS takes more than ``timeout`` seconds (default
    ``HANDSHAKE_TIMEOUT``), if the peer's hello takes more than
    ``answer_timeout`` (default ``ANSWER_TIMEOUT``) or the rest of the
    handshake more than ``timeout``; :class:`AuthenticationError` if the
    peer fails to prove the secret or refuses us.
    """
    # (read at each call, so that tests can shorten them)
    timeout = _handshake.HANDSHAKE_TIMEOUT if timeout is None else timeout
    if answer_timeout is None:
        answer_timeout = _handshake.ANSWER_TIMEOUT
    addr = normalize_addr(addr)
    stream = await _open_secured(addr, tls, timeout)
    async with open_channel(stream, name=format_addr(addr), **chan_kwargs) as chan:
        binding = b''
        if tls is not None and isinstance(stream, trio.SSLStream):
            binding = channel_binding(stream, tls, connector=True)
        await handshake(chan, uid=uid, secret=secret, initiator=True, info=info,
                        binding=binding, answer_timeout=answer_timeout, timeout=timeout)
        yield chan


async def _open_secured(addr: Address, tls: Optional[TLS], timeout: float) -> trio.abc.Stream:
    """A stream to ``addr``, in TLS if ``tls`` is given and it is TCP."""
    stream: Optional[trio.abc.Stream] = None
    with trio.move_on_after(timeout) as scope:
        stream = await open_stream_to(addr)
        if tls is not None and not isinstance(addr, str):
            stream = await wrap_client(stream, tls, addr[0])
        return stream
    if stream is not None:  # connected, but TLS did not finish
        await trio.aclose_forcefully(stream)
    assert scope.cancelled_caught
    raise NoAnswerError(f'no answer from {format_addr(addr)} within {timeout:g} s '
                        f'({"connecting" if stream is None else "in the TLS handshake"})')


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


@asynccontextmanager
async def open_memory_channel_pair(**chan_kwargs: Any) -> AsyncIterator[List[Channel]]:
    """Two connected channels over an in-memory stream, for tests."""
    import trio.testing  # only here: it is slow to import
    left, right = trio.testing.lockstep_stream_pair()
    async with open_channel(left, name='left', **chan_kwargs) as a:
        async with open_channel(right, name='right', **chan_kwargs) as b:
            yield [a, b]
