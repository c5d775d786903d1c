"""With TLS, the proofs are bound to the TLS connection: a relay fails.

A relay here holds a certificate of its own from the tree's CA: it can
terminate TLS with the victim and open TLS to the target, but the proof it
gets from one side is worthless on the other (TLS 1.2: the connections'
``tls-unique`` values differ; TLS 1.3: the certificates do). Without TLS,
the same relay gets through: it is a port forward, as docs/security.md
says.
"""
from __future__ import annotations

import hashlib
import ssl
from functools import partial
from typing import Optional

import pytest
import trio
import trio.testing
import trustme

from tractorish import msg
from tractorish._exceptions import AuthenticationError, TransportClosed
from tractorish.ipc import TLS, connect, open_channel, open_listener, serve_listener
from tractorish.ipc._tls import channel_binding, wrap_client, wrap_server

SECRET = b'the user secret'
B_UID, C_UID = ('B', 'b' * 32), ('C', 'c' * 32)
VERSIONS = {'TLSv1.2': ssl.TLSVersion.TLSv1_2, 'TLSv1.3': ssl.TLSVersion.TLSv1_3}


def make_tls(ca: trustme.CA, tmp_path, name: str, version: str) -> TLS:
    issued = ca.issue_cert('127.0.0.1', 'localhost')
    cert, key, ca_file = (tmp_path / f'{name}-{part}.pem' for part in ('cert', 'key', 'ca'))
    for i, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(str(cert), append=i > 0)
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    tls = TLS(str(cert), str(key), str(ca_file))
    for context in (tls.server, tls.client):
        context.maximum_version = VERSIONS[version]
    return tls


@pytest.fixture(params=sorted(VERSIONS))
def parties(request, tmp_path):
    """TLS settings of B (target), C (victim) and M (relay): one CA, three certificates."""
    ca = trustme.CA()
    return {name: make_tls(ca, tmp_path, name, request.param) for name in 'BCM'}, request.param


async def test_both_ends_compute_the_same_binding(parties):
    tls, version = parties
    left, right = trio.testing.memory_stream_pair()
    client = trio.SSLStream(left, tls['C'].client, server_hostname='127.0.0.1')
    server = trio.SSLStream(right, tls['B'].server, server_side=True)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.do_handshake)
            nursery.start_soon(server.do_handshake)
    assert client.version() == version
    bound = channel_binding(client, tls['C'], connector=True)
    assert bound == channel_binding(server, tls['B'], connector=False)
    if version == 'TLSv1.2':
        assert bound == client.get_channel_binding('tls-unique')
    else:  # the connector's certificate digest, then the acceptor's
        assert bound == (hashlib.sha256(server.getpeercert(binary_form=True)).digest()
                         + hashlib.sha256(client.getpeercert(binary_form=True)).digest())
        assert bound[:32] == tls['C'].cert_digest and bound[32:] == tls['B'].cert_digest


async def serve_b(nursery, served: list, tls: Optional[TLS]):
    async def handler(chan):
        served.append(chan.peer_uid)
        await trio.sleep_forever()

    listener, addr = await open_listener(('127.0.0.1', 0))
    await nursery.start(partial(serve_listener, listener, addr, handler,
                                uid=B_UID, secret=SECRET, tls=tls))
    return addr


async def test_a_direct_tls_connection_binds_and_succeeds(parties):
    tls, version = parties
    served: list = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            b_addr = await serve_b(nursery, served, tls['B'])
            async with connect(b_addr, uid=C_UID, secret=SECRET, tls=tls['C']) as chan:
                assert chan.peer_uid == B_UID
            nursery.cancel_scope.cancel()
    assert served == [C_UID]


async def relay(b_addr, trap: trio.SocketListener, tls_m: Optional[TLS]) -> list:
    """Pose as B to C and as C to B, passing C's proof on; what B answers."""
    to_b: trio.abc.Stream = await trio.open_tcp_stream(*b_addr)
    from_c: trio.abc.Stream = await trap.accept()
    if tls_m is not None:
        to_b = await wrap_client(to_b, tls_m, '127.0.0.1')
        from_c = await wrap_server(from_c, tls_m)
    async with open_channel(to_b) as b, open_channel(from_c) as c:
        hello_b = (await b.receive())['hello']
        hello_c = (await c.receive())['hello']
        await c.send(msg.hello(hello_b['uid'], hello_b['nonce']))
        proof = (await c.receive())['auth']
        await b.send(msg.hello(hello_c['uid'], hello_c['nonce']))
        await b.send(msg.auth(proof))
        answers = []
        try:
            answers.append(await b.receive())
            await b.send(msg.info({}))  # B took the proof: finish as C would
            answers.append(await b.receive())
        except TransportClosed:
            pass
        return answers


async def test_a_tls_relay_cannot_pass_a_proof_on(parties):
    tls, version = parties
    served: list = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            b_addr = await serve_b(nursery, served, tls['B'])
            trap, trap_addr = await open_listener(('127.0.0.1', 0))

            async def victim():
                with pytest.raises(AuthenticationError):
                    async with connect(trap_addr, uid=C_UID, secret=SECRET, tls=tls['C']):
                        pass
            nursery.start_soon(victim)
            answers = await relay(b_addr, trap, tls['M'])
            await trap.aclose()
            nursery.cancel_scope.cancel()
    assert answers == []  # B hung up: no proof of its own, no info
    assert served == []


async def test_without_tls_a_relay_is_a_port_forward():
    # the documented limit (docs/security.md): the proofs do not cover
    # addresses, so that NAT and port forwards work; this is why untrusted
    # networks need TLS
    served: list = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            b_addr = await serve_b(nursery, served, None)
            trap, trap_addr = await open_listener(('127.0.0.1', 0))

            async def victim():
                with pytest.raises(AuthenticationError):
                    async with connect(trap_addr, uid=C_UID, secret=SECRET):
                        pass
            nursery.start_soon(victim)
            answers = await relay(b_addr, trap, None)
            await trap.aclose()
            nursery.cancel_scope.cancel()
    assert [msg.message_kind(a) for a in answers] == ['auth', 'info']
