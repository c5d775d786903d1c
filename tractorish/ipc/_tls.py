"""TLS for TCP channels: both ends prove themselves with certificates.

Every actor both connects and accepts, so TLS here is mutual: each side
presents a certificate signed by the tree's CA and checks the other's. The
shared-secret handshake still runs inside the encrypted stream.
"""
from __future__ import annotations

import ssl
from typing import Optional

import trio

from .._exceptions import AuthenticationError


class TLS:
    """The two SSL contexts an actor needs, built from PEM file paths."""

    def __init__(self, cert: str, key: str, ca: str) -> None:
        try:
            self.server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
            self.server.verify_mode = ssl.CERT_REQUIRED
            self.server.load_cert_chain(cert, key)
            self.client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
            self.client.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as err:
            raise ValueError(f'cannot load TLS files (cert={cert!r}, key={key!r}, '
                             f'ca={ca!r}): {err}') from err

    @classmethod
    def from_paths(cls, cert: Optional[str], key: Optional[str],
                   ca: Optional[str]) -> Optional['TLS']:
        """``None`` if TLS is off (no paths); ``ValueError`` if half set."""
        if not (cert or key or ca):
            return None
        if not (cert and key and ca):
            raise ValueError('TLS needs all three of tls_cert, tls_key and tls_ca')
        return cls(cert, key, ca)


class PeerLeft(AuthenticationError):
    """The peer hung up before the handshake began: a port probe, not an attack."""


def _failure(err: BaseException) -> AuthenticationError:
    cause = err.__cause__ or err
    if isinstance(cause, ssl.SSLEOFError) or 'UNEXPECTED_EOF' in str(cause):
        return PeerLeft(f'the peer closed the connection before the TLS handshake: {cause}')
    return AuthenticationError(f'TLS handshake failed: {cause}')


async def _handshake(wrapped: trio.SSLStream) -> trio.SSLStream:
    try:
        await wrapped.do_handshake()
    except (trio.BrokenResourceError, ssl.SSLError) as err:
        await trio.aclose_forcefully(wrapped)
        raise _failure(err) from err
    return wrapped


async def wrap_client(stream: trio.abc.Stream, tls: TLS, host: str) -> trio.SSLStream:
    return await _handshake(trio.SSLStream(stream, tls.client, server_hostname=host))


async def wrap_server(stream: trio.abc.Stream, tls: TLS) -> trio.SSLStream:
    return await _handshake(trio.SSLStream(stream, tls.server, server_side=True))
