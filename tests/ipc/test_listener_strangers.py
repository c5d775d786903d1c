"""Unauthenticated connections are bounded, and never crowd out the others.

``PendingHandshakes`` decides whom to shed (no sockets needed); the
listener tests check that it is what ``serve_listener`` does.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial

import msgpack
import pytest
import trio

from tractorish.ipc import _handshake, connect, load_secret, open_listener, serve_listener
from tractorish.ipc._listener import (MAX_PENDING, MAX_PENDING_PER_SOURCE,
                                      PendingHandshakes, source_of)
from tractorish.msg import yield_

SERVER = ('server', 'uuid-server')
CLIENT = ('client', 'uuid-client')
TIMEOUT = 10


class Scope:
    """Stands in for a connection's cancel scope."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def admit_all(pending: PendingHandshakes, source, *names: str) -> dict:
    return {name: pending.admit(source, Scope(name)) for name in names}


def shed(records: dict) -> list:
    return sorted(name for name, r in records.items() if r.scope.cancelled)


def test_the_documented_limits():
    assert (MAX_PENDING, MAX_PENDING_PER_SOURCE) == (512, 128)
    assert (_handshake.HELLO_TIMEOUT, _handshake.HANDSHAKE_TIMEOUT) == (2.0, 5.0)


def test_a_new_connection_is_never_refused_the_oldest_is_shed():
    pending = PendingHandshakes(limit=10, per_source=3)
    records = admit_all(pending, 'x', 'a', 'b', 'c', 'd', 'e')
    assert shed(records) == ['a', 'b']
    assert pending.count('x') == 3 and len(pending) == 3
    assert all(records[n].shed for n in 'ab') and not records['e'].shed


def test_one_that_said_hello_goes_after_the_silent_ones():
    pending = PendingHandshakes(limit=10, per_source=3)
    records = admit_all(pending, 'x', 'a', 'b', 'c')
    pending.said_hello(records['a'])
    records.update(admit_all(pending, 'x', 'd', 'e'))
    assert shed(records) == ['b', 'c']  # not 'a', the oldest, which talks
    pending.said_hello(records['d'])
    pending.said_hello(records['e'])
    records.update(admit_all(pending, 'x', 'f'))
    assert shed(records) == ['a', 'b', 'c']  # all talk now: the oldest goes


def test_one_source_cannot_push_out_another():
    pending = PendingHandshakes(limit=6, per_source=3)
    mine = admit_all(pending, 'good', 'g1')
    flood = {f'f{i}': pending.admit('bad', Scope(f'f{i}')) for i in range(100)}
    assert shed(mine) == []
    assert len(shed(flood)) == 97 and pending.count('bad') == 3
    # over the global limit, the oldest of all goes, whatever its source
    more = {f's{i}': pending.admit(f'src{i}', Scope(f's{i}')) for i in range(3)}
    assert len(pending) == 6 and shed(more) == []
    pending.admit('late', Scope('late'))
    assert shed(mine) == ['g1']


def test_done_frees_the_place_once():
    pending = PendingHandshakes(limit=2, per_source=2)
    records = admit_all(pending, 'x', 'a', 'b')
    pending.done(records['a'])
    pending.done(records['a'])
    pending.said_hello(records['a'])  # (late news of a connection gone)
    assert len(pending) == 1 and pending.count('x') == 1
    records.update(admit_all(pending, 'x', 'c'))
    assert shed(records) == []
    pending.done(records['b'])
    pending.done(records['c'])
    assert len(pending) == 0 and pending.count('x') == 0


async def test_sources_are_hosts_not_connections():
    listener, addr = await open_listener(('127.0.0.1', 0))
    async with listener:
        one = await trio.open_tcp_stream(*addr)
        two = await trio.open_tcp_stream(*addr)
        async with one, two, await listener.accept() as a, await listener.accept() as b:
            assert source_of(a) == source_of(b) == '127.0.0.1'
    left, right = trio.socket.socketpair()
    with left, right:
        assert source_of(trio.SocketStream(left)) == 'local'


# --- on a real listener ------------------------------------------------------------

@pytest.fixture
def secret() -> bytes:
    return load_secret()


@asynccontextmanager
async def serving(secret: bytes, pending: PendingHandshakes):
    served: list = []

    async def handler(chan) -> None:
        served.append(chan.peer_uid)
        async for message in chan:
            await chan.send(message)

    listener, addr = await open_listener(('127.0.0.1', 0))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_listener, listener, addr, handler,
                                    uid=SERVER, secret=secret, pending=pending))
        yield addr, served
        nursery.cancel_scope.cancel()


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """Read what the server sent; True if it hung up, False if it is waiting."""
    with trio.move_on_after(0.2):
        while True:
            try:
                if not await stream.receive_some(65536):
                    return True
            except trio.BrokenResourceError:
                return True
    return False


async def echo_once(addr, secret: bytes) -> None:
    async with connect(addr, uid=CLIENT, secret=secret) as chan:
        await chan.send(yield_('ping', 'c0'))
        assert await chan.receive() == yield_('ping', 'c0')


async def test_idle_connections_are_shed_and_a_good_client_gets_in(secret):
    pending = PendingHandshakes(limit=16, per_source=4)
    with trio.fail_after(TIMEOUT):
        async with serving(secret, pending) as (addr, served):
            idle = [await trio.open_tcp_stream(*addr) for _ in range(40)]
            try:
                await echo_once(addr, secret)
                assert served == [CLIENT]
                closed = [await closed_by_server(s) for s in idle]
                assert sum(not c for c in closed) <= 4  # the rest were shed
                assert not any(closed[-3:])  # the newest are kept
                assert pending.count('127.0.0.1') <= 4
                assert pending.statistics().shed >= 36
            finally:
                for stream in idle:
                    await stream.aclose()


async def test_a_stranger_that_said_hello_outlives_silent_ones(secret):
    pending = PendingHandshakes(limit=16, per_source=4)
    with trio.fail_after(TIMEOUT):
        async with serving(secret, pending) as (addr, _):
            talking = await trio.open_tcp_stream(*addr)
            await talking.send_all(msgpack.packb(
                {'hello': {'uid': list(CLIENT), 'proto': 2, 'nonce': b'n' * 16}}))
            while not pending.statistics().talking:  # until the server has read it
                await trio.sleep(0.01)
            silent = [await trio.open_tcp_stream(*addr) for _ in range(10)]
            try:
                await echo_once(addr, secret)
                assert not await closed_by_server(talking)
                assert sum([await closed_by_server(s) for s in silent]) >= 7
            finally:
                for stream in (talking, *silent):
                    await stream.aclose()


async def test_a_silent_connection_is_dropped_after_the_hello_deadline(secret, monkeypatch):
    monkeypatch.setattr(_handshake, 'HELLO_TIMEOUT', 0.3)
    with trio.fail_after(TIMEOUT):
        async with serving(secret, PendingHandshakes()) as (addr, served):
            async with await trio.open_tcp_stream(*addr) as silent:
                while await silent.receive_some(65536):  # its hello, then the end
                    pass
            await echo_once(addr, secret)
            assert served == [CLIENT]
