"""Channel: framed messages over an in-memory stream, no sockets."""
from __future__ import annotations

import hashlib
import socket
import time
from contextlib import asynccontextmanager

import msgpack
import pytest
import trio
import trio.testing

from tractorish._exceptions import MsgTypeError, ProtocolError, TransportClosed
from tractorish.ipc import Channel, open_channel, open_memory_channel_pair
from tractorish.ipc._socket_io import SocketIO
from tractorish.msg import stop, yield_

CID = 'c-1'
TIMEOUT = 10


def payload_for(task: int, i: int) -> bytes:
    # sizes vary so messages straddle batch and read boundaries
    size = 1 + (task * 7919 + i * 104729) % 20_000
    seed = hashlib.sha256(f'{task}/{i}'.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


# --- basics -------------------------------------------------------------------

async def test_send_and_receive_both_ways():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            await left.send(yield_('ping', CID))
            assert await right.receive() == yield_('ping', CID)
            await right.send(yield_({'n': [1, 2]}, CID))
            assert await left.receive() == yield_({'n': [1, 2]}, CID)


async def test_messages_keep_their_order():
    msgs = [yield_(i, CID) for i in range(2000)]
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            async with trio.open_nursery() as nursery:
                async def send_all():
                    for msg in msgs:
                        await left.send(msg)
                nursery.start_soon(send_all)
                got = [await right.receive() for _ in msgs]
    assert got == msgs


async def test_many_concurrent_senders_do_not_interleave():
    tasks, per_task = 20, 30
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair(high_water=64 * 1024) as (left, right):
            async def sender(task):
                for i in range(per_task):
                    await left.send({'yield': [task, i, payload_for(task, i)],
                                     'cid': f'task-{task}'})
                    if i % 5 == 0:
                        await trio.sleep(0)

            got = []
            async with trio.open_nursery() as nursery:
                for task in range(tasks):
                    nursery.start_soon(sender, task)
                for _ in range(tasks * per_task):
                    got.append(await right.receive())

    seen = {}
    for msg in got:
        task, i, data = msg['yield']
        assert msg['cid'] == f'task-{task}'
        assert data == payload_for(task, i), f'message {task}/{i} corrupted'
        seen.setdefault(task, []).append(i)
    # each sender's own messages arrive in the order it sent them
    assert seen == {t: list(range(per_task)) for t in range(tasks)}


async def test_iteration_ends_on_clean_close():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            async def send_then_close():
                for i in range(3):
                    await left.send(yield_(i, CID))
                await left.send(stop(CID))
                await left.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_then_close)
                got = [msg async for msg in right]
    assert got == [yield_(0, CID), yield_(1, CID), yield_(2, CID), stop(CID)]


async def test_receive_after_peer_close_raises_transport_closed():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            async def send_then_close():
                await left.send(yield_('last', CID))
                await left.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_then_close)
                assert await right.receive() == yield_('last', CID)
                with pytest.raises(TransportClosed):
                    await right.receive()
                # and it stays that way
                with pytest.raises(TransportClosed):
                    await right.receive()


async def test_transport_closed_is_a_connection_error():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            await left.aclose()
            with pytest.raises(ConnectionError):
                await right.receive()


async def test_send_on_closed_channel_raises():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            assert not left.closed
            await left.aclose()
            assert left.closed
            with pytest.raises(TransportClosed):
                await left.send(yield_(1, CID))
            await left.aclose()  # closing twice is fine


async def test_send_after_peer_closed_eventually_raises():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            await right.aclose()
            with pytest.raises(TransportClosed):
                for _ in range(1000):
                    await left.send(yield_(b'x' * 100, CID))
                    await trio.sleep(0.001)
            assert left.closed


async def test_unencodable_message_leaves_channel_usable():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            with pytest.raises(MsgTypeError):
                await left.send(yield_(object(), CID))
            await left.send(yield_('fine', CID))
            assert await right.receive() == yield_('fine', CID)


async def test_oversize_message_refused_at_sender():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair(max_msg_size=1000) as (left, right):
            with pytest.raises(MsgTypeError):
                await left.send(yield_(b'x' * 2000, CID))
            await left.send(yield_(b'x' * 900, CID))
            assert await right.receive() == yield_(b'x' * 900, CID)


async def test_send_checkpoints_when_cancelled():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair() as (left, right):
            with trio.CancelScope() as scope:
                scope.cancel()
                await left.send(yield_('never', CID))
            assert scope.cancelled_caught
            await left.send(yield_('after', CID))
            assert await right.receive() == yield_('after', CID)


async def test_closing_waits_until_the_peer_takes_the_bytes():
    with trio.fail_after(TIMEOUT):
        a, b = trio.testing.lockstep_stream_pair()  # no buffer at all
        async with open_channel(a) as sender, open_channel(b) as reader:
            await sender.send(yield_('flush me', CID))
            closed = trio.Event()

            async def close():
                await sender.aclose()
                closed.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(close)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert not closed.is_set()
                assert await reader.receive() == yield_('flush me', CID)
                await closed.wait()


# --- bad input from a raw peer ------------------------------------------------

async def test_garbage_from_peer_is_protocol_error():
    with trio.fail_after(TIMEOUT):
        ours, theirs = trio.testing.memory_stream_pair()
        async with open_channel(ours) as chan:
            await theirs.send_all(msgpack.packb(stop(CID)) + b'\xc1\xc1')
            with pytest.raises(ProtocolError):
                await chan.receive()


async def test_peer_over_the_size_limit_is_protocol_error():
    with trio.fail_after(TIMEOUT):
        ours, theirs = trio.testing.memory_stream_pair()
        async with open_channel(ours, max_msg_size=1000) as chan:
            await theirs.send_all(msgpack.packb(yield_(b'y' * 5000, CID)))
            with pytest.raises(ProtocolError):
                await chan.receive()


@pytest.mark.parametrize('partial', [
    b'\x82\xa3ci',                    # inside a key
    b'\x82\xa3cid\xa1c\xa5yi',        # inside the second key
    b'\x82\xa3cid\xa1c',              # right after a whole key/value pair
    b'\x82\xa3cid\xa1c\xa5yield\x92\x01',  # inside an array, after an item
], ids=['in-key', 'in-second-key', 'after-pair', 'in-array'])
async def test_peer_vanishing_mid_message_is_protocol_error(partial):
    with trio.fail_after(TIMEOUT):
        ours, theirs = trio.testing.memory_stream_pair()
        async with open_channel(ours) as chan:
            await theirs.send_all(msgpack.packb(stop(CID)) + partial)
            await theirs.aclose()
            assert await chan.receive() == stop(CID)
            with pytest.raises(ProtocolError, match='middle of a message'):
                await chan.receive()


# --- flow control -------------------------------------------------------------

HIGH_WATER = 4096
MSG_BYTES = 1000


@pytest.fixture
def quick_close(monkeypatch):
    # these tests close channels whose peer never reads what is queued
    import tractorish.ipc._channel as channel_module
    monkeypatch.setattr(channel_module, 'CLOSE_FLUSH_TIMEOUT', 0.2)


async def _sender_stalls(sender: Channel, reader: Channel) -> None:
    """With nobody reading, a sender must block after about HIGH_WATER bytes."""
    sent = 0
    msg = yield_(b'x' * MSG_BYTES, CID)
    cap = 500  # 500 kB: far beyond any sane bound, and quick to reach

    async def send_until_cap():
        nonlocal sent
        while sent < cap:
            await sender.send(msg)
            sent += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_until_cap)
        with trio.move_on_after(2):
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        stalled_at = sent
        await trio.sleep(0.2)
        assert sent == stalled_at, 'sender kept going while nobody reads'
        # bounded: one batch in the stream plus the queue, each about
        # HIGH_WATER plus one message
        assert 0 < stalled_at * MSG_BYTES <= 2 * (HIGH_WATER + 2 * MSG_BYTES), (
            f'{stalled_at} messages of {MSG_BYTES} bytes accepted while nobody '
            f'reads, with high_water={HIGH_WATER}')
        assert sender.statistics().bytes_queued <= HIGH_WATER + 2 * MSG_BYTES

        # a slow reader: every message still arrives, in order
        for _ in range(stalled_at + 20):
            assert await reader.receive() == msg
            await trio.sleep(0)
        nursery.cancel_scope.cancel()


async def test_slow_reader_blocks_sender_over_a_stream_without_buffer(quick_close):
    with trio.fail_after(TIMEOUT):
        a, b = trio.testing.lockstep_stream_pair()
        async with open_channel(a, high_water=HIGH_WATER) as sender:
            async with open_channel(b) as reader:
                await _sender_stalls(sender, reader)


async def test_slow_reader_blocks_sender_over_memory_pair(quick_close):
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair(high_water=HIGH_WATER) as (sender, reader):
            await _sender_stalls(sender, reader)


async def test_batched_sends_stop_at_a_high_water_mark_below_a_batch(quick_close):
    # a batched send joins the queue at once only while the queue is short
    # of both a batch and the high-water mark
    with trio.fail_after(TIMEOUT):
        a, b = trio.testing.lockstep_stream_pair()
        async with open_channel(a, high_water=300) as sender, open_channel(b):
            msg = yield_(b'x' * 90, CID)
            sent = 0

            async def fill():
                nonlocal sent
                while sent < 200:
                    await sender.send(msg, batch=True)
                    sent += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(fill)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert 0 < sent < 200
                assert sender.statistics().bytes_queued < 300 + len(msgpack.packb(msg))
                nursery.cancel_scope.cancel()


async def test_cancelled_blocked_sender_sends_nothing(quick_close):
    with trio.fail_after(TIMEOUT):
        a, b = trio.testing.lockstep_stream_pair()
        async with open_channel(a, high_water=HIGH_WATER) as sender:
            async with open_channel(b) as reader:
                filler = yield_(b'f' * MSG_BYTES, CID)
                queued = 0
                async with trio.open_nursery() as nursery:
                    async def fill():
                        nonlocal queued
                        while True:
                            await sender.send(filler)
                            queued += 1
                    nursery.start_soon(fill)
                    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                    # the filler is now parked waiting for room
                    nursery.cancel_scope.cancel()
                assert queued > 0

                got = []
                async with trio.open_nursery() as nursery:
                    async def read_to_the_end():
                        while True:
                            msg = await reader.receive()
                            got.append(msg)
                            if msg == stop('the-end'):
                                return
                    nursery.start_soon(read_to_the_end)
                    await sender.send(stop('the-end'))
                assert got == [filler] * queued + [stop('the-end')]


async def test_closing_wakes_a_blocked_sender(quick_close):
    with trio.fail_after(TIMEOUT):
        a, b = trio.testing.lockstep_stream_pair()
        async with open_channel(a, high_water=HIGH_WATER) as sender:
            async with open_channel(b):
                raised = []

                async def fill():
                    try:
                        while True:
                            await sender.send(yield_(b'f' * MSG_BYTES, CID))
                    except TransportClosed as err:
                        raised.append(err)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fill)
                    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                    await sender.aclose()
                assert len(raised) == 1


async def test_receive_of_a_batch_keeps_order_and_ends_empty_at_eof():
    from tractorish.ipc import open_memory_channel_pair
    async with open_memory_channel_pair() as (a, b):
        with trio.fail_after(5):
            for i in range(500):
                await a.send({'yield': i, 'cid': 'c0'})
            await a.aclose()
            got = []
            while True:
                batch = await b.receive(batch=True)
                if not batch:
                    break
                got.extend(m['yield'] for m in batch)
        assert got == list(range(500))


# --- the direct socket path ---------------------------------------------------

@asynccontextmanager
async def socket_channel_pair(**kwargs):
    """Two channels over a real socket pair: the direct read/write path."""
    a, b = trio.socket.socketpair()
    async with open_channel(trio.SocketStream(a), **kwargs) as left:
        async with open_channel(trio.SocketStream(b), **kwargs) as right:
            yield left, right


async def test_socket_channel_keeps_order_across_reads_and_writes():
    msgs = [{'yield': [i, payload_for(1, i)], 'cid': CID} for i in range(300)]
    with trio.fail_after(TIMEOUT):
        async with socket_channel_pair() as (left, right):
            assert left.reads_directly and right.reads_directly
            async with trio.open_nursery() as nursery:
                async def send_all():
                    for msg in msgs:
                        await left.send(msg)
                nursery.start_soon(send_all)
                got = []
                while len(got) < len(msgs):
                    got.extend(await right.receive(batch=True))
    assert got == msgs


async def test_a_peer_that_never_pauses_does_not_starve_other_tasks(monkeypatch):
    # Data is always waiting, so a reader that only yields when the socket
    # is empty would never let the ticker run.
    import tractorish.ipc._socket_io as socket_io
    monkeypatch.setattr(socket_io, 'READ_SIZE', 64)
    n = 2000
    data = b''.join(msgpack.packb(yield_(i, CID)) for i in range(n))
    with trio.fail_after(TIMEOUT):
        a, b = socket.socketpair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(data) * 4)
        with a:
            async with open_channel(
                    trio.SocketStream(trio.socket.from_stdlib_socket(b))) as reader:
                a.sendall(data)  # all of it into the kernel's buffer, up front
                ticks = 0

                async def ticker():
                    nonlocal ticks
                    while True:
                        ticks += 1
                        await trio.sleep(0)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ticker)
                    await trio.sleep(0)
                    ticks = 0
                    for i in range(n):
                        assert await reader.receive() == yield_(i, CID)
                    nursery.cancel_scope.cancel()
    reads = len(data) // 64
    # the reader lets others run every FAIR_READS (16) reads: half that is
    # plenty of margin, and none at all is what starving looks like
    assert ticks >= reads // 32, (
        f'other tasks ran {ticks} times during {reads} reads')


async def test_receive_after_close_never_reads_a_reused_descriptor():
    with trio.fail_after(TIMEOUT):
        async with socket_channel_pair() as (left, right):
            await left.aclose()
            # the descriptor number is free now: take it with something else
            # that has data waiting, which the channel must never read
            c, d = trio.socket.socketpair()
            with c, d:
                await c.send(msgpack.packb(yield_('stranger', CID)))
                with pytest.raises(TransportClosed):
                    await left.receive()
                assert await d.recv(100)


@pytest.fixture
def count_writes(monkeypatch):
    """Start counting the channel's direct writes (their sizes); returns
    ``(writes, stop)``."""
    import tractorish.ipc._socket_io as socket_io
    writes = []
    real_write = socket_io.os.write

    def counting_write(fd, data):
        writes.append(len(data))
        return real_write(fd, data)

    def start():
        monkeypatch.setattr(socket_io.os, 'write', counting_write)
        return writes, monkeypatch.undo
    return start


async def test_a_list_of_messages_goes_to_the_kernel_in_one_write(count_writes):
    # (the replies a reader makes for a whole read)
    with trio.fail_after(TIMEOUT):
        async with socket_channel_pair() as (left, right):
            await trio.testing.wait_all_tasks_blocked()  # the writer is idle
            await trio.sleep(0.001)  # (and no burst is going on)
            writes, stop = count_writes()
            left.send_nowait([yield_(i, CID) for i in range(10)])
            stop()
            assert len(writes) == 1
            assert left.statistics().messages_sent == 10
            got = []
            while len(got) < 10:
                got.extend(await right.receive(batch=True))
    assert got == [yield_(i, CID) for i in range(10)]


async def test_a_batch_goes_out_once_it_can_keep_the_peer_busy(count_writes):
    # batched sends wait for the writer, except that once about a kilobyte
    # is queued the next send hands it all to the kernel, so the peer can
    # work on it while more is made
    msgs = [yield_(b'x' * 400, CID) for _ in range(4)]
    with trio.fail_after(TIMEOUT):
        async with socket_channel_pair() as (left, right):
            writes, stop = count_writes()
            for msg in msgs[:3]:
                await left.send(msg, batch=True)
            assert writes == []  # not yet: under the threshold, for the writer
            await left.send(msgs[3], batch=True)
            stop()
            assert len(writes) == 1 and writes[0] > 3 * 400
            got = []
            while len(got) < 4:
                got.extend(await right.receive(batch=True))
    assert got == msgs


@pytest.fixture
def count_waits(monkeypatch):
    """Count the channel's waits for its socket to become readable."""
    waits = []
    real_wait = trio.lowlevel.wait_readable

    async def counting_wait(sock):
        waits.append(sock)
        await real_wait(sock)

    monkeypatch.setattr(trio.lowlevel, 'wait_readable', counting_wait)
    return waits


async def test_after_a_read_of_a_burst_the_next_read_tries_the_socket_first(count_waits):
    import tractorish.ipc._socket_io as socket_io
    big = [yield_(b'x' * 200, CID) for _ in range(10)]   # a short read, but a burst
    small = [yield_(1, CID)]                            # a short read, and alone
    assert len(msgpack.packb(big[0])) * 10 >= socket_io.BURST_READ
    with trio.fail_after(TIMEOUT):
        a, b = socket.socketpair()
        with a:
            async with open_channel(
                    trio.SocketStream(trio.socket.from_stdlib_socket(b))) as reader:

                async def read(msgs):
                    got = []
                    while len(got) < len(msgs):
                        got.extend(await reader.receive(batch=True))
                    assert got == msgs

                a.sendall(b''.join(msgpack.packb(m) for m in big))
                await read(big)
                count_waits.clear()
                a.sendall(b''.join(msgpack.packb(m) for m in big))
                await read(big)
                assert count_waits == []  # read at once: no wait, no scheduler pass
                a.sendall(msgpack.packb(small[0]))
                await read(small)
                count_waits.clear()
                a.sendall(msgpack.packb(small[0]))
                await read(small)
                # after a small read the socket is most likely empty: wait for
                # it rather than make a read that fails
                assert len(count_waits) == 1


def _write_later(sock, data, delay):
    """Write ``data`` to ``sock`` from a thread after ``delay`` seconds: a
    peer that answers while the reader's task (and its trio run) is busy."""
    import threading
    thread = threading.Thread(target=lambda: (time.sleep(delay), sock.sendall(data)))
    thread.start()
    return thread


@pytest.fixture
def count_spins(monkeypatch):
    """Count the channel's polls of its socket (and what each found)."""
    spins = []
    real_spin = SocketIO._spin

    def counting_spin(self, fd, start):
        data = real_spin(self, fd, start)
        spins.append(data is not None)
        return data

    monkeypatch.setattr(SocketIO, '_spin', counting_spin)
    return spins


@asynccontextmanager
async def reader_of_a_socket():
    """A channel reading one end of a socket pair; the other end (stdlib)."""
    a, b = socket.socketpair()
    with a:
        async with open_channel(
                trio.SocketStream(trio.socket.from_stdlib_socket(b))) as reader:
            await trio.testing.wait_all_tasks_blocked()  # (its writer has started)
            yield a, reader


POLLED = msgpack.packb(yield_(1, CID))


@asynccontextmanager
async def polling_reader():
    """``reader_of_a_socket``, the reader set to poll its next wait (as if
    its peer had just answered at once), after one message read."""
    async with reader_of_a_socket() as (peer, reader):
        reader.spin_ns = 5 * 10**9  # a poll ends as soon as the data comes
        reader._io._last_wait = 0
        peer.sendall(POLLED)
        await reader.receive()
        yield peer, reader


async def answered_after(peer, reader, delay):
    """Receive what ``peer`` writes from a thread ``delay`` seconds later."""
    thread = _write_later(peer, POLLED, delay)
    try:
        assert await reader.receive() == yield_(1, CID)
    finally:
        thread.join()


async def test_a_reader_whose_peer_answers_soon_polls_instead_of_waiting(
        count_waits, count_spins, monkeypatch):
    import tractorish.ipc._socket_io as socket_io
    monkeypatch.setattr(socket_io, 'SPIN_BUDGET_NS', 60 * 10**9)  # (see below)
    with trio.fail_after(TIMEOUT):
        async with reader_of_a_socket() as (peer, reader):
            reader.spin_ns = 5 * 10**9  # ends as soon as the data comes
            peer.sendall(POLLED)
            assert await reader.receive() == yield_(1, CID)
            # the next read parks: this reader has never waited yet
            await answered_after(peer, reader, 0.01)
            assert len(count_waits) == 1 and count_spins == []
            # it waited less than the spin: the next reads poll, and the
            # answer is read without parking
            for _ in range(3):
                await answered_after(peer, reader, 0.01)
            assert len(count_waits) == 1 and count_spins == [True] * 3


async def test_a_reader_that_polls_in_vain_backs_off(count_spins):
    with trio.fail_after(TIMEOUT):
        async with reader_of_a_socket() as (peer, reader):
            peer.sendall(POLLED)
            await reader.receive()
            # each miss doubles the waits that park at once (the answers come
            # later than any poll of 1 ns could see them)
            pattern = []
            for _ in range(8):
                count_spins.clear()
                reader.spin_ns = 1
                reader._io._last_wait = 0  # (as if the peer had answered at once)
                await answered_after(peer, reader, 0.05)
                pattern.append(len(count_spins))
            assert pattern == [1, 0, 0, 1, 0, 0, 0, 0]
            # a poll that finds data ends the back-off
            reader._io._spin_skips = 0
            reader.spin_ns = 5 * 10**9
            reader._io._last_wait = 0
            count_spins.clear()
            await answered_after(peer, reader, 0.05)
            assert count_spins == [True]
            assert reader._io._spin_skips == reader._io._spin_misses == 0


async def test_a_reader_parks_once_it_has_polled_for_a_while(count_waits, count_spins):
    # however well polling goes, the scheduler must run now and then (timers,
    # other sockets): past SPIN_BUDGET_NS of polling the reader parks
    import tractorish.ipc._socket_io as socket_io
    with trio.fail_after(TIMEOUT):
        async with polling_reader() as (peer, reader):
            delay = 2 * socket_io.SPIN_BUDGET_NS / 1e9
            await answered_after(peer, reader, delay)   # polled for long
            assert count_spins == [True] and count_waits == []
            await answered_after(peer, reader, delay)   # so this one parks
            assert count_spins == [True] and len(count_waits) == 1
            await answered_after(peer, reader, delay)   # and polling resumes
            assert count_spins == [True, True] and len(count_waits) == 1


async def test_a_reader_never_polls_while_another_task_is_queued(count_spins):
    with trio.fail_after(TIMEOUT):
        async with polling_reader() as (peer, reader):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep, 0)  # queued, not run yet
                await answered_after(peer, reader, 0.01)
            assert count_spins == []


async def test_receive_after_close_following_a_read_is_transport_closed():
    # after a short read the next one waits for the socket: on a socket that
    # was closed meanwhile that wait must say "closed", and leave trio no
    # stale registration that fails the next closed channel's reader too
    with trio.fail_after(TIMEOUT):
        for _ in range(2):
            async with socket_channel_pair() as (left, right):
                await right.send(yield_(1, CID))
                assert await left.receive() == yield_(1, CID)
                await left.aclose()
                with pytest.raises(TransportClosed):
                    await left.receive()


async def test_a_sender_waiting_for_room_after_send_nowait_gets_its_turn():
    # send_nowait goes past the high-water mark; a send() then waits for the
    # writer to make room, and goes out behind what was queued
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair(high_water=1000) as (left, right):
            for i in range(2):
                left.send_nowait(yield_(b'x' * 600, CID))
            assert not left.has_room
            with trio.fail_after(2):
                await left.send(yield_(b'late', CID))
            got = []
            while len(got) < 3:
                got.extend(await right.receive(batch=True))
    assert [m['yield'] for m in got] == [b'x' * 600, b'x' * 600, b'late']


async def test_a_streams_values_respect_the_high_water_mark_and_control_messages_pass():
    with trio.fail_after(TIMEOUT):
        async with open_memory_channel_pair(high_water=100) as (left, right):
            left.send_nowait(b'x' * 200, stream=CID)  # (there was room)
            with pytest.raises(trio.WouldBlock):
                left.send_nowait(1, stream=CID)       # nothing queued
            left.send_nowait(stop(CID))               # a control message goes
            got = []
            while len(got) < 2:
                got.extend(await right.receive(batch=True))
            assert left.statistics().messages_sent == 2
    assert got == [yield_(b'x' * 200, CID), stop(CID)]
