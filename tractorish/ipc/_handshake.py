"""The authenticated handshake (protocol version 2) on one channel.

docs/protocol.md#handshake specifies it byte by byte, with a test vector.
For connector C and acceptor A::

    C -> A  hello{uid, proto, nonce}        A -> C  hello{uid, proto, nonce}
    C -> A  auth(proof_c)
            A checks proof_c; if it is wrong, A closes without proving anything
    A -> C  auth(proof_a)
            C checks proof_a; if it is wrong, C closes
    C -> A  info{...}
    A -> C  info{...}

Before the peer's proof is checked, a side tells it only what the proofs
need: its uid, the protocol version and a fresh nonce. What the caller
passes as ``info`` (pid, listening addresses, registration, ...) follows in
a message of its own once the peer has proved the secret.

Both proofs cover both nonces, both uids and a channel binding: with TLS,
the TLS connection itself (see ``_tls.channel_binding``); without TLS,
nothing, so connections through NAT, port forwards and proxies work. The
direction label stops a peer from reflecting one side's proof back at it;
the fresh nonces stop replays. Nothing but these messages is read before
the handshake completes, and nothing larger than ``HANDSHAKE_MAX_MSG``
before the peer's proof is checked.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Optional, Sequence, Tuple

import trio

from .._exceptions import AuthenticationError, ProtocolError, TransportClosed
from ..msg import PROTOCOL_VERSION, auth, hello, info as info_message, message_kind
from ._addr import format_addr
from ._channel import Channel
from ._secret import macs_equal, make_mac
from ._tls import PeerLeft

CONNECT_LABEL = b'tractorish-v2-connect'
ACCEPT_LABEL = b'tractorish-v2-accept'
NONCE_SIZE = 16
MAX_NONCE_SIZE = 64
HANDSHAKE_MAX_MSG = 64 * 1024
# A connector waits this long for the acceptor's hello, which an actor
# sends the moment it accepts: longer, and the acceptor is stopped or hung.
ANSWER_TIMEOUT = 5.0
# The rest of the handshake, once the peer has answered (connector); the
# whole of it, TLS included, from the moment of accepting (acceptor).
HANDSHAKE_TIMEOUT = 5.0
# An acceptor drops a connection whose hello has not come this long after
# it was accepted (see _listener).
HELLO_TIMEOUT = 2.0


class NoAnswerError(TransportClosed, TimeoutError):
    """The peer took the connection but did not answer in time.

    A stopped, hung or overloaded process, or something that is not an
    actor at all: not an authentication failure. A :class:`TransportClosed`
    (so discovery takes such a registry for an absent one) and a
    ``TimeoutError``.
    """


def make_proofs(secret: bytes, nonce_c: bytes, nonce_a: bytes,
                uid_c: Sequence[str], uid_a: Sequence[str],
                binding: bytes = b'') -> Tuple[bytes, bytes]:
    """``(proof_c, proof_a)``: the connector's and the acceptor's proofs."""
    parts = (nonce_c, nonce_a, uid_c[0].encode(), uid_c[1].encode(),
             uid_a[0].encode(), uid_a[1].encode(), binding)
    return make_mac(secret, CONNECT_LABEL, *parts), make_mac(secret, ACCEPT_LABEL, *parts)


def _who(chan: Channel) -> str:
    if chan.name:
        return chan.name
    raddr = chan.raddr
    if isinstance(raddr, tuple):
        return format_addr((str(raddr[0]), int(raddr[1])))
    return raddr or 'the peer'


async def _receive_kind(chan: Channel, kind: str, initiator: bool) -> Any:
    try:
        msg = await chan.receive()
    except TransportClosed as err:
        if kind == 'info':
            raise TransportClosed(
                f'{_who(chan)} closed the connection at the end of the handshake') from err
        if kind == 'hello' or not initiator:
            # a connector that hangs up never proved anything: a port probe
            # or a process dying mid-start, not an attack worth a warning
            raise PeerLeft(f'{_who(chan)} closed the connection during the handshake, '
                           f'before it authenticated') from err
        raise AuthenticationError(
            f'{_who(chan)} closed the connection during the handshake: it refused '
            f'us (a different secret?) or is not a tractorish actor') from err
    if message_kind(msg) != kind:
        raise AuthenticationError(
            f'expected {kind!r} during the handshake, got {message_kind(msg)!r}')
    return msg[kind]


def _check_peer_hello(peer: dict) -> Tuple[str, str]:
    if peer['proto'] != PROTOCOL_VERSION:
        raise AuthenticationError(
            f'the peer speaks protocol version {peer["proto"]}, we speak '
            f'{PROTOCOL_VERSION}: both ends need a tractorish of the same protocol')
    if not NONCE_SIZE <= len(peer['nonce']) <= MAX_NONCE_SIZE:
        raise AuthenticationError(
            f'bad handshake message: a nonce of {len(peer["nonce"])} bytes '
            f'(want {NONCE_SIZE} to {MAX_NONCE_SIZE})')
    return peer['uid'][0], peer['uid'][1]


Step = Callable[[str], None]


async def handshake(chan: Channel, *, uid: Sequence[str], secret: bytes,
                    initiator: bool, info: Optional[dict] = None,
                    binding: bytes = b'', answer_timeout: float = math.inf,
                    timeout: float = math.inf,
                    on_step: Optional[Step] = None) -> dict:
    """Exchange hellos, prove the shared secret, then exchange ``info``.

    Returns the peer's info with its ``uid``, ``proto`` and ``nonce`` added,
    and sets ``chan.peer_uid`` and ``chan.peer_info`` to it. ``binding`` is
    the channel binding both ends must share (``b''`` without TLS).

    Raises :class:`NoAnswerError` if the peer's hello has not come within
    ``answer_timeout`` seconds or the rest does not within ``timeout``;
    :class:`AuthenticationError` on any failure of the peer to prove the
    secret or follow the protocol; :class:`TransportClosed` if it left at
    the very end. The caller closes the channel. ``on_step('hello')`` and
    ``on_step('proven')`` report progress (for the listener's bookkeeping).
    """
    limit = chan.max_msg_size
    chan.max_msg_size = min(limit, HANDSHAKE_MAX_MSG)  # strangers get little room
    nonce = os.urandom(NONCE_SIZE)
    await chan.send(hello(uid, nonce))
    try:
        with trio.move_on_after(answer_timeout) as waiting:
            peer = await _receive_kind(chan, 'hello', initiator)
        if waiting.cancelled_caught:
            raise NoAnswerError(
                f'no answer from {_who(chan)} within {answer_timeout:g} s: it took the '
                f'connection but sent nothing (a stopped or hung process?)')
        peer_uid = _check_peer_hello(peer)
        if on_step is not None:
            on_step('hello')
        with trio.move_on_after(timeout) as waiting:
            peer_info = await _prove(chan, secret, uid, peer_uid, nonce, peer['nonce'],
                                     binding, initiator, info or {}, on_step, limit)
        if waiting.cancelled_caught:
            raise NoAnswerError(f'no answer from {_who(chan)} within {timeout:g} s '
                                f'after its hello: the handshake stalled')
    except ProtocolError as err:
        raise AuthenticationError(f'bad handshake message: {err}') from err
    # the hello's fields win over anything the info might claim
    peer_info.update(uid=peer['uid'], proto=peer['proto'], nonce=peer['nonce'])
    chan.peer_uid = peer_uid
    chan.peer_info = peer_info
    chan.initiator = initiator
    return peer_info


async def _prove(chan: Channel, secret: bytes, uid: Sequence[str], peer_uid: Tuple[str, str],
                 nonce: bytes, peer_nonce: bytes, binding: bytes, initiator: bool,
                 info: dict, on_step: Optional[Step], limit: int) -> dict:
    """The proofs, then the infos; the peer's info.

    Each message here waits for the one before it from the other side, so
    the peer's info is not read (nor buffered) before its proof is checked:
    only then does the channel take messages up to ``limit`` again.
    """
    if initiator:
        mine, expected = make_proofs(secret, nonce, peer_nonce, uid, peer_uid, binding)
        await chan.send(auth(mine))
        proof = await _receive_kind(chan, 'auth', initiator)
    else:
        expected, mine = make_proofs(secret, peer_nonce, nonce, peer_uid, uid, binding)
        proof = await _receive_kind(chan, 'auth', initiator)
    if not macs_equal(proof, expected):
        raise AuthenticationError(
            f'peer {peer_uid[0]!r} failed authentication (wrong secret'
            f'{", or a TLS connection through a relay" if binding else ""})')
    chan.max_msg_size = limit  # a proven peer: its info may be large
    if on_step is not None:
        on_step('proven')
    if initiator:
        await chan.send(info_message(info))
        return dict(await _receive_kind(chan, 'info', initiator))
    # The acceptor is done once the connector's info has come, before the
    # connector can be: a connector that says its piece and hangs up (a
    # child reporting that it cannot start) is heard before it is gone.
    await chan.send(auth(mine))
    peer_info = dict(await _receive_kind(chan, 'info', initiator))
    await chan.send(info_message(info))
    return peer_info
