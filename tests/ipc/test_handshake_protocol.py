"""Protocol version 2 of the handshake, as docs/protocol.md specifies it.

The test vector is read from the doc itself, so the two cannot drift.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import msgpack
import pytest
import trio

from tractorish._exceptions import AuthenticationError, TransportClosed
from tractorish.ipc import (NoAnswerError, connect, handshake, open_listener,
                            open_memory_channel_pair, serve_listener)
from tractorish.ipc._handshake import make_proofs
from tractorish.msg import PROTOCOL_VERSION, Decoder, cmd, return_

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / 'docs' / 'protocol.md'
SECRET = b'handshake-v2-secret'
SERVER = ('server', 'uuid-server')
CLIENT = ('client', 'uuid-client')
SERVER_INFO = {'pid': 4242, 'addrs': [['127.0.0.1', 1]], 'child_of': ['p', 'q']}
TIMEOUT = 10


def doc_vectors() -> list:
    """Each ``key = value`` block of the doc's test vector section, parsed."""
    text = PROTOCOL_DOC.read_text()
    section = text[text.index('### Test vector'):]
    section = section[:section.index('\n### ', 1)]
    vectors, current = [], {}
    for block in re.findall(r'```text\n(.*?)```', section, re.S):
        for line in block.splitlines():
            name, _, value = (part.strip() for part in line.partition('='))
            if value.startswith(('"', '[')):
                current[name] = json.loads(value)
            else:
                current[name] = b'' if value == '(empty)' else bytes.fromhex(value)
        vectors.append(dict(current))  # a later block changes only what it names
    return vectors


def test_the_proofs_match_the_documented_vectors():
    vectors = doc_vectors()
    assert len(vectors) == 2
    for v in vectors:
        key = v['key'].encode('ascii')
        proof_c, proof_a = make_proofs(key, v['nonce_c'], v['nonce_a'],
                                       v['uid_c'], v['uid_a'], v['binding'])
        assert proof_c.hex() == v['proof_c'].hex()
        assert proof_a.hex() == v['proof_a'].hex()
    # the documented input bytes are what proof_c is the HMAC of
    first = vectors[0]
    input_c = first['input_c']
    assert hmac.new(first['key'].encode(), input_c, hashlib.sha256).digest() == first['proof_c']
    assert input_c.startswith((21).to_bytes(4, 'big') + b'tractorish-v2-connect')
    assert input_c.endswith((0).to_bytes(4, 'big'))  # the empty binding


def test_the_protocol_version_is_2():
    assert PROTOCOL_VERSION == 2


class Server:
    def __init__(self) -> None:
        self.peers: list = []

    async def handler(self, chan) -> None:
        """Answers each ``cmd`` with its kwargs, as a call would."""
        self.peers.append(chan.peer_info)
        async for msg in chan:
            await chan.send(return_(msg['cmd'][2], msg['cmd'][4]))


@asynccontextmanager
async def serving(server: Server, secret: bytes = SECRET, info=SERVER_INFO):
    listener, addr = await open_listener(('127.0.0.1', 0))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_listener, listener, addr, server.handler,
                                    uid=SERVER, secret=secret, info=info))
        yield addr
        nursery.cancel_scope.cancel()


async def messages_until_closed(stream) -> list:
    decoder, messages = Decoder(), []
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return messages
        if not data:
            return messages
        messages.extend(decoder.feed(data))


# --- nothing before authentication ---------------------------------------------

async def test_the_acceptor_hello_holds_only_the_handshake_fields():
    with trio.fail_after(TIMEOUT):
        async with serving(Server()) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(msgpack.packb(
                    {'hello': {'uid': list(CLIENT), 'proto': 2, 'nonce': b'n' * 16}}))
                decoder = Decoder()
                while not (got := decoder.feed(await stream.receive_some(65536))):
                    pass
    [first] = got
    assert first == {'hello': {'uid': list(SERVER), 'proto': 2, 'nonce': first['hello']['nonce']}}
    assert len(first['hello']['nonce']) == 16


async def test_a_wrong_proof_gets_no_info_and_no_proof():
    with trio.fail_after(TIMEOUT):
        async with serving(Server()) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(msgpack.packb(
                    {'hello': {'uid': list(CLIENT), 'proto': 2, 'nonce': b'n' * 16}}))
                await stream.send_all(msgpack.packb({'auth': b'x' * 32}))
                messages = await messages_until_closed(stream)
    assert [list(m) for m in messages] == [['hello']]


async def test_the_info_follows_the_proofs_and_fills_peer_info():
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(server) as addr:
            async with connect(addr, uid=CLIENT, secret=SECRET,
                               info={'pid': 7, 'register': {'x': 1}}) as chan:
                assert chan.peer_info == {**SERVER_INFO, 'uid': list(SERVER), 'proto': 2,
                                          'nonce': chan.peer_info['nonce']}
                await chan.send(cmd('m', 'f', {'k': 1}, CLIENT, 'c0'))
                assert (await chan.receive())['return'] == {'k': 1}
    [seen] = server.peers
    assert seen['pid'] == 7 and seen['register'] == {'x': 1}
    assert seen['uid'] == list(CLIENT)


async def test_the_info_cannot_overwrite_the_authenticated_uid():
    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(
                    handshake, a_chan, uid=SERVER, secret=SECRET, initiator=False))
                await handshake(c_chan, uid=CLIENT, secret=SECRET, initiator=True,
                                info={'uid': ['someone', 'else'], 'proto': 99})
    assert a_chan.peer_uid == CLIENT
    assert a_chan.peer_info['uid'] == list(CLIENT) and a_chan.peer_info['proto'] == 2


async def _against(fake_acceptor):
    """A real connector against a hand-written acceptor; the connector's error."""
    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fake_acceptor, a_chan)
                with pytest.raises(Exception) as info:
                    await handshake(c_chan, uid=CLIENT, secret=SECRET, initiator=True,
                                    answer_timeout=1.0)
                nursery.cancel_scope.cancel()
    return info.value


async def test_an_old_peer_is_told_apart_clearly():
    async def version_1(chan):
        await chan.receive()
        await chan.send({'hello': {'uid': list(SERVER), 'proto': 1, 'nonce': b'n' * 16,
                                   'pid': 1, 'addrs': []}})
        await trio.sleep_forever()

    err = await _against(version_1)
    assert isinstance(err, AuthenticationError)
    assert 'protocol version 1, we speak 2' in str(err)


@pytest.mark.parametrize('size', [0, 8, 15, 65])
async def test_a_nonce_of_the_wrong_size_is_refused(size):
    async def short_nonce(chan):
        await chan.receive()
        await chan.send({'hello': {'uid': list(SERVER), 'proto': 2, 'nonce': b'n' * size}})
        await trio.sleep_forever()

    err = await _against(short_nonce)
    assert isinstance(err, AuthenticationError) and 'nonce' in str(err)


# --- a silent peer is not an impostor --------------------------------------------

async def test_a_silent_acceptor_is_no_answer_not_an_authentication_error():
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)  # the kernel takes the connection; nobody answers
        port = silent.getsockname()[1]
        with trio.fail_after(TIMEOUT):
            with pytest.raises(NoAnswerError) as info:
                async with connect(('127.0.0.1', port), uid=CLIENT, secret=SECRET,
                                   answer_timeout=0.5):
                    pass
    err = info.value
    assert str(err).startswith(f'no answer from 127.0.0.1:{port} within 0.5 s')
    assert isinstance(err, TransportClosed) and isinstance(err, TimeoutError)
    assert not isinstance(err, AuthenticationError)


async def test_an_acceptor_that_stalls_after_its_hello_is_no_answer():
    async def stalls(chan):
        await chan.receive()
        await chan.send({'hello': {'uid': list(SERVER), 'proto': 2, 'nonce': b'n' * 16}})
        await trio.sleep_forever()

    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stalls, a_chan)
                with pytest.raises(NoAnswerError, match='stalled'):
                    await handshake(c_chan, uid=CLIENT, secret=SECRET, initiator=True,
                                    timeout=0.5)
                nursery.cancel_scope.cancel()


# --- through a port forward --------------------------------------------------------

async def forward(listener: trio.SocketListener, target) -> None:
    """Copy bytes both ways between each accepted connection and ``target``,
    as a NAT, an SSH tunnel or ``docker run -p`` would."""
    async def pipe(source, sink) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
            await sink.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def relay(inbound) -> None:
        async with inbound, await trio.open_tcp_stream(*target) as outbound:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipe, inbound, outbound)
                nursery.start_soon(pipe, outbound, inbound)

    await trio.serve_listeners(relay, [listener])


async def test_a_connection_through_a_port_forward_is_accepted():
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(server) as addr:
            [front] = await trio.open_tcp_listeners(0, host='127.0.0.1')
            front_addr = front.socket.getsockname()
            assert front_addr[1] != addr[1]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(forward, front, addr)
                async with connect(front_addr, uid=CLIENT, secret=SECRET) as chan:
                    assert chan.peer_uid == SERVER
                    await chan.send(cmd('mod', 'add', {'a': 1, 'b': 2}, CLIENT, 'c0'))
                    assert await chan.receive() == return_({'a': 1, 'b': 2}, 'c0')
                nursery.cancel_scope.cancel()
    assert [peer['uid'] for peer in server.peers] == [list(CLIENT)]


async def test_a_proven_peer_may_send_a_large_info_but_a_stranger_may_not():
    big = {'startup_error': 'x' * 200_000}  # a long traceback, say
    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(
                    handshake, a_chan, uid=SERVER, secret=SECRET, initiator=False))
                await handshake(c_chan, uid=CLIENT, secret=SECRET, initiator=True, info=big)
    assert a_chan.peer_info['startup_error'] == big['startup_error']

    async def big_hello(chan):
        await chan.receive()
        await chan.send({'hello': {'uid': list(SERVER), 'proto': 2, 'nonce': b'n' * 16,
                                   'padding': 'x' * 100_000}})
        await trio.sleep_forever()

    err = await _against(big_hello)
    assert isinstance(err, AuthenticationError) and 'limit' in str(err)
