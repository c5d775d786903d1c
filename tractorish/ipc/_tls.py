"""TLS for TCP channels: both ends prove themselves with certificates.

Every actor both connects and accepts, so TLS here is mutual: each side
presents a certificate signed by the tree's CA and checks the other's. The
shared-secret handshake still runs inside the encrypted stream, its proofs
bound to the TLS connection by :func:`channel_binding`.
"""
from __future__ import annotations

import hashlib
import re
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
            # (the stdlib tells a connection its peer's certificate, never
            # its own: channel_binding needs both)
            self.cert_digest = hashlib.sha256(_leaf_der(cert)).digest()
        except (OSError, ssl.SSLError, ValueError) as err:
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


_PEM_CERT = re.compile(
    rb'-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----', re.DOTALL)


def _leaf_der(path: str) -> bytes:
    """The DER bytes of the first certificate (the leaf) in a PEM file."""
    with open(path, 'rb') as f:
        found = _PEM_CERT.search(f.read())
    if found is None:
        raise ValueError(f'no PEM certificate in {path}')
    return ssl.PEM_cert_to_DER_cert(found.group().decode('ascii'))


def channel_binding(stream: trio.SSLStream, tls: TLS, *, connector: bool) -> bytes:
    """What both ends' proofs are bound to on this TLS connection.

    The stdlib has no TLS exporter (RFC 5705/9266) up to Python 3.13. On
    TLS 1.2 this is the connection's ``tls-unique`` value (RFC 5929: the
    first Finished message). ``tls-unique`` is not defined for TLS 1.3
    (RFC 8446, appendix C.5), so there it is the SHA-256 digests of the
    connector's certificate then the acceptor's (DER, 32 bytes each): a
    relay must then hold the private keys of both real peers' certificates.
    """
    if stream.version() == 'TLSv1.2':
        unique = stream.get_channel_binding('tls-unique')
        if unique:
            return bytes(unique)
    peer = stream.getpeercert(binary_form=True)
    if not peer:
        raise AuthenticationError('the TLS peer presented no certificate')
    theirs = hashlib.sha256(peer).digest()
    return tls.cert_digest + theirs if connector else theirs + tls.cert_digest


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
