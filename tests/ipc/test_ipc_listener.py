"""Listeners and connectors over real loopback TCP and Unix sockets."""
from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import msgpack
import pytest
import trio

import tractorish.ipc._handshake as handshake_module
import tractorish.ipc._transport as transport_module
from tractorish._exceptions import AuthenticationError, TransportClosed
from tractorish.ipc import connect, load_secret, open_listener, serve_listener
from tractorish.msg import Decoder, yield_

SERVER = ('server', 'uuid-server')
CLIENT = ('client', 'uuid-client')
TIMEOUT = 10
LOOPBACK = ('127.0.0.1', 0)


@pytest.fixture
def secret() -> bytes:
    return load_secret()  # the per-test secret from conftest's environment


class Server:
    """Echoes every message back; remembers who authenticated."""

    def __init__(self) -> None:
        self.peers: list = []

    async def handler(self, chan) -> None:
        self.peers.append(chan.peer_uid)
        async for msg in chan:
            await chan.send(msg)


@asynccontextmanager
async def serving(addr, secret: bytes, server: Server):
    listener, bound = await open_listener(addr)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(
            serve_listener, listener, bound, server.handler,
            uid=SERVER, secret=secret))
        yield bound
        nursery.cancel_scope.cancel()


async def echo_once(addr, secret: bytes, text: str = 'ping') -> None:
    async with connect(addr, uid=CLIENT, secret=secret) as chan:
        assert chan.peer_uid == SERVER
        await chan.send(yield_(text, 'c-1'))
        assert await chan.receive() == yield_(text, 'c-1')


async def read_until_closed(stream) -> bytes:
    """Everything the server sends before it closes the connection."""
    received = b''
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # closed with a reset
            return received
        if not data:
            return received
        received += data


def uds_path(tmp_path: Path, name: str = 's.sock') -> str:
    path = str(tmp_path / name)
    assert len(path.encode()) < 104, f'socket path too long for AF_UNIX: {path}'
    return path


# --- TCP ----------------------------------------------------------------------

async def test_tcp_listener_binds_loopback_on_a_free_port():
    listener, bound = await open_listener(LOOPBACK)
    try:
        assert bound[0] == '127.0.0.1'
        assert bound[1] != 0
        assert listener.socket.getsockname() == bound
    finally:
        await listener.aclose()


async def test_tcp_handshake_succeeds(secret):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as addr:
            async with connect(addr, uid=CLIENT, secret=secret) as chan:
                assert chan.peer_uid == SERVER
                assert chan.peer_info['uid'] == list(SERVER)
                for i in range(50):
                    await chan.send(yield_(i, 'c-1'))
                for i in range(50):
                    assert await chan.receive() == yield_(i, 'c-1')
            assert server.peers == [CLIENT]


async def test_tcp_address_forms_are_accepted(secret):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as (host, port):
            await echo_once([host, port], secret)  # as it travels on the wire
            await echo_once((host, port), secret)
            assert server.peers == [CLIENT, CLIENT]


_NO_IDNA_SCRIPT = """
import sys, trio
from functools import partial
from tractorish.ipc import connect, open_listener, serve_listener
async def main():
    listener, addr = await open_listener(('127.0.0.1', 0))
    async def handler(chan):
        await chan.send(await chan.receive())
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_listener, listener, addr, handler,
                                    uid=('s', '1'), secret=b'k' * 32))
        async with connect(addr, uid=('c', '1'), secret=b'k' * 32) as chan:
            await chan.send({'yield': 1, 'cid': 'c0'})
            assert await chan.receive() == {'yield': 1, 'cid': 'c0'}
        nursery.cancel_scope.cancel()
trio.run(main)
print('encodings.idna' in sys.modules)
"""


def test_numeric_tcp_addresses_skip_the_idna_codec():
    # resolving a str host imports the IDNA codec (stringprep, unicodedata):
    # milliseconds of every fresh actor's start, for nothing on loopback
    out = subprocess.run([sys.executable, '-c', _NO_IDNA_SCRIPT], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'


async def test_a_non_ascii_host_name_is_still_resolved_as_a_name():
    with trio.fail_after(TIMEOUT):
        with pytest.raises(TransportClosed, match='cannot connect to b\u00fccher.invalid'):
            await transport_module.open_stream_to(('b\u00fccher.invalid', 1))


async def test_an_ip_address_is_connected_to_as_given(monkeypatch):
    # no resolver, no happy-eyeballs race for one address: a millisecond of
    # every forked actor's start
    async def no_racing(*args, **kwargs):
        raise AssertionError('open_tcp_stream used for an IP address')

    listener, (host, port) = await open_listener(LOOPBACK)
    async with listener:
        with trio.fail_after(TIMEOUT):
            monkeypatch.setattr(trio, 'open_tcp_stream', no_racing)
            async with await transport_module.open_stream_to((host, port)) as stream, \
                    await listener.accept() as accepted:
                assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                await stream.send_all(b'x')
                assert await accepted.receive_some(1) == b'x'
            monkeypatch.undo()
            # a name still goes to the resolver
            async with await transport_module.open_stream_to(('localhost', port)), \
                    await listener.accept():
                pass


def test_ip_families_are_told_apart():
    assert transport_module._ip_family('127.0.0.1') == socket.AF_INET
    assert transport_module._ip_family('::1') == socket.AF_INET6
    assert transport_module._ip_family('localhost') is None
    assert transport_module._ip_family('fe80::1%eth0') is None  # scoped: resolved
    assert transport_module._ip_family('b\u00fccher.invalid') is None


async def test_wrong_secret_is_refused_and_listener_goes_on(secret, caplog):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as addr:
            with caplog.at_level(logging.WARNING, logger='tractorish.ipc'):
                with pytest.raises(AuthenticationError):
                    async with connect(addr, uid=CLIENT, secret=b'not-the-secret'):
                        pytest.fail('connected with a wrong secret')
                await echo_once(addr, secret)
            assert server.peers == [CLIENT]  # the refused one never got in
    assert 'refused a connection' in caplog.text


async def test_garbage_is_disconnected_and_listener_goes_on(secret):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(b'\xc1GET / HTTP/1.1\r\n\r\n')
                received = await read_until_closed(stream)
            # all it got was the server's hello, nothing more
            if received:
                [msg] = Decoder().feed(received)
                assert msg['hello']['uid'] == list(SERVER)
            await echo_once(addr, secret)
            assert server.peers == [CLIENT]


async def test_commands_before_handshake_are_refused(secret):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(msgpack.packb(
                    {'cmd': ['os', 'system', {'command': 'true'}, list(CLIENT), 'c']}))
                await read_until_closed(stream)
            assert server.peers == []
            await echo_once(addr, secret)


async def test_silent_client_is_dropped_after_handshake_timeout(secret, monkeypatch):
    monkeypatch.setattr(handshake_module, 'HELLO_TIMEOUT', 0.5)
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            started = trio.current_time()
            async with stream:
                await read_until_closed(stream)
            waited = trio.current_time() - started
            assert waited >= 0.4, f'dropped after {waited:.2f} s, before its deadline'
            await echo_once(addr, secret)
            assert server.peers == [CLIENT]


async def test_many_clients_at_once(secret):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(LOOPBACK, secret, server) as addr:
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(echo_once, addr, secret, f'client {i}')
            assert len(server.peers) == 10


async def test_connect_to_nobody_is_transport_closed():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with trio.fail_after(TIMEOUT):
        with pytest.raises(TransportClosed, match=str(port)):
            async with connect(('127.0.0.1', port), uid=CLIENT, secret=b's'):
                pass


# --- Unix sockets -------------------------------------------------------------

async def test_uds_handshake_succeeds(secret, tmp_path):
    path = uds_path(tmp_path)
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(path, secret, server) as addr:
            assert addr == path
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            await echo_once(addr, secret)
            assert server.peers == [CLIENT]
        # the listener removes its socket file when it stops
        assert not os.path.exists(path)


async def test_uds_wrong_secret_is_refused(secret, tmp_path):
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(uds_path(tmp_path), secret, server) as addr:
            with pytest.raises(AuthenticationError):
                async with connect(addr, uid=CLIENT, secret=b'wrong'):
                    pass
            await echo_once(addr, secret)


async def test_stale_uds_socket_file_is_replaced(secret, tmp_path):
    path = uds_path(tmp_path)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # left behind, as by a process that was killed
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(path, secret, server) as addr:
            await echo_once(addr, secret)


async def test_live_uds_listener_is_not_stolen(secret, tmp_path):
    path = uds_path(tmp_path)
    server = Server()
    with trio.fail_after(TIMEOUT):
        async with serving(path, secret, server):
            with pytest.raises(OSError, match='in use'):
                await open_listener(path)
            await echo_once(path, secret)  # the first one still serves


async def test_uds_path_that_is_not_a_socket_is_left_alone(tmp_path):
    path = uds_path(tmp_path)
    Path(path).write_text('precious data')
    with pytest.raises(OSError, match='not a socket'):
        await open_listener(path)
    assert Path(path).read_text() == 'precious data'


async def test_uds_silent_client_is_dropped(secret, tmp_path, monkeypatch):
    monkeypatch.setattr(handshake_module, 'HELLO_TIMEOUT', 0.3)
    with trio.fail_after(TIMEOUT):
        async with serving(uds_path(tmp_path), secret, Server()) as addr:
            stream = await trio.open_unix_socket(addr)
            async with stream:
                await read_until_closed(stream)
            await echo_once(addr, secret)


async def test_tcp_channels_detect_a_vanished_host_with_keepalive():
    import socket as stdlib_socket
    from tractorish.ipc import open_stream_to, open_channel as open_chan
    from tractorish.ipc._channel import KEEPALIVE_IDLE
    listener, addr = await open_listener(('127.0.0.1', 0))
    async with listener:
        stream = await open_stream_to(addr)
        async with open_chan(stream) as chan:
            sock = chan.socket
            assert sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_KEEPALIVE)
            if hasattr(stdlib_socket, 'TCP_KEEPIDLE'):
                assert sock.getsockopt(stdlib_socket.IPPROTO_TCP,
                                       stdlib_socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE
