"""The per-message machinery on its own, with no process."""
from __future__ import annotations

import pytest
import trio
import trio.testing

from tractorish.ipc import open_channel, open_memory_channel_pair
from tractorish.msg import Encoder, credit, functype, return_, stop, yield_
from tractorish.runtime._call import Call, ChanState, Inbox
from tractorish.runtime._stream import MsgStream
from tractorish.runtime._woken import WOKEN

CID = 'c1'


def arrive(call: Call, message: dict) -> None:
    """``message`` reaches ``call`` as the reader hands it over: as bytes
    through its channel's protocol (which moves the call's dialog), then
    routed to the call."""
    [received] = call.chan.protocol.receive_data(Encoder().encode(message))
    call.deliver(received)


async def test_inbox_wakes_its_reader_and_keeps_order():
    inbox = Inbox()
    got = []

    async def reader():
        for _ in range(3):
            got.append(await inbox.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert inbox.has_reader
        for i in range(3):
            inbox.put({'n': i})
            await trio.testing.wait_all_tasks_blocked()
    assert got == [{'n': 0}, {'n': 1}, {'n': 2}]
    assert not inbox.has_reader


async def test_one_woken_outcome_serves_every_wake_up():
    # a Value(None) may be unwrapped once; the runtime wakes its parked
    # tasks with one object, every time
    task = None
    woken = []

    async def sleeper():
        nonlocal task
        task = trio.lowlevel.current_task()
        for _ in range(100):
            woken.append(await trio.lowlevel.wait_task_rescheduled(
                lambda _: trio.lowlevel.Abort.SUCCEEDED))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        for _ in range(100):
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.reschedule(task, WOKEN)
    assert woken == [None] * 100
    assert WOKEN.unwrap() is None and WOKEN.unwrap() is None

    def gen():
        got = yield
        yield got
    started = gen()
    next(started)
    assert WOKEN.send(started) is None


async def test_inbox_serves_two_readers_at_once():
    inbox = Inbox()
    got = []

    async def reader(name):
        got.append((name, await inbox.get()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader, 'a')
        nursery.start_soon(reader, 'b')
        await trio.testing.wait_all_tasks_blocked()
        inbox.put({'n': 1})
        inbox.put({'n': 2})
    assert sorted(m['n'] for _, m in got) == [1, 2]
    assert sorted(name for name, _ in got) == ['a', 'b']


async def test_a_cancelled_reader_is_forgotten():
    inbox = Inbox()
    with trio.move_on_after(0.01):
        await inbox.get()
    assert not inbox.has_reader
    inbox.put({'n': 1})  # must not wake the task that left
    await trio.lowlevel.checkpoint()
    assert await inbox.get() == {'n': 1}


async def test_inbox_failure_reaches_every_reader_after_the_messages():
    inbox = Inbox()
    inbox.put({'n': 1})
    errors = []

    async def reader():
        try:
            await inbox.get()
        except KeyError as err:
            errors.append(err)

    assert await inbox.get() == {'n': 1}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        inbox.fail(KeyError('gone'))
    assert len(errors) == 2


async def test_send_nowait_passes_the_high_water_mark_and_keeps_the_order():
    async with open_memory_channel_pair(high_water=100) as (left, right):
        left.send_nowait(yield_(b'x' * 200, CID))
        assert not left.has_room  # a send() would wait now; a control message does not
        left.send_nowait(credit(1, CID))
        left.send_nowait([yield_(1, CID), stop(CID)])  # several, in one go
        got = []
        while len(got) < 4:
            got.extend(await right.receive(batch=True))
        assert left.statistics().messages_sent == 4
    assert got == [yield_(b'x' * 200, CID), credit(1, CID), yield_(1, CID), stop(CID)]


async def test_a_consumer_hands_its_credit_grant_to_the_kernel_at_once(monkeypatch):
    # A consumer with values in hand must not leave its grant to the writer
    # task, which runs only once the consumer waits: the producer would be
    # out of credit meanwhile, and the stream would stall.
    import tractorish.ipc._socket_io as socket_io
    a, b = trio.socket.socketpair()
    with trio.fail_after(10):
        async with open_channel(trio.SocketStream(a)) as left, \
                open_channel(trio.SocketStream(b)) as right:
            call = Call(None, ChanState(left), CID, 'mod', 'gen')
            call.deliver(functype('asyncgen', CID))
            for i in range(8):
                call.deliver(yield_(i, CID))
            assert await call.receive_functype() == 'asyncgen'
            # a stream flowing with a window of 8 (as a context's stream, or
            # a generator's once its caller has kept on receiving)
            stream = MsgStream(call, window=8)
            assert await stream.receive() == 0
            writes = []
            real_write = socket_io.os.write

            def counting_write(fd, data):
                writes.append(bytes(data))
                return real_write(fd, data)

            monkeypatch.setattr(socket_io.os, 'write', counting_write)
            assert [stream.receive_nowait() for _ in range(3)] == [1, 2, 3]
            # half the window consumed, and not one checkpoint since: the
            # grant is in the kernel already
            monkeypatch.undo()
            assert len(writes) == 1
            got = []
            while not got:
                got.extend(await right.receive(batch=True))
    assert got == [credit(4, CID)]


async def test_a_bulk_reader_with_values_waiting_is_still_cancellable():
    async with open_memory_channel_pair() as (left, right):
        call = Call(None, ChanState(left), CID, 'mod', 'gen')
        call.deliver(functype('asyncgen', CID))
        assert await call.receive_functype() == 'asyncgen'
        stream = MsgStream(call, window=16, generator_caller=True)
        for i in range(10):
            call.deliver(yield_(i, CID))
        got = []
        with trio.CancelScope() as scope:
            async for value in stream:
                got.append(value)
                if value == 2:
                    scope.cancel()
        assert got == [0, 1, 2]  # the next value waited, but the cancel came first
        assert scope.cancelled_caught


# --- calls answered in place ---------------------------------------------------

_ran = []


async def _records(x):
    _ran.append(x)
    return x


async def _lost_a_peer():
    from tractorish._exceptions import TransportClosed
    raise TransportClosed('lost the channel to actor "elsewhere"')


async def test_a_call_answered_in_place_is_not_run_when_nobody_can_hear_the_answer():
    from tractorish._exceptions import TransportClosed
    from tractorish.runtime._actor import Actor
    actor = Actor('inline')
    async with open_memory_channel_pair() as (left, right):
        left._io.send_error = TransportClosed('peer gone')  # as after a failed write
        actor._states[left] = ChanState(left)
        _ran.clear()
        actor._run_inline(left, _records, {'x': 1}, 'a1')
        assert _ran == [] and left.statistics().messages_sent == 0


async def test_a_transport_error_of_the_function_itself_is_its_answer():
    # (and not taken for the channel closing under it, which would leave the
    # caller waiting for good)
    from tractorish.runtime._actor import Actor
    actor = Actor('inline')
    async with open_memory_channel_pair() as (left, right):
        actor._states[left] = ChanState(left)
        actor._run_inline(left, _lost_a_peer, {}, 'a1')
        with trio.fail_after(5):
            first, second = await right.receive(), await right.receive()
    assert first == functype('asyncfunc', 'a1')
    assert second['cid'] == 'a1' and second['error']['type_str'] == 'TransportClosed'


async def test_a_plain_calls_functype_is_taken_on_arrival_and_wakes_nobody():
    with trio.fail_after(10):
        async with open_memory_channel_pair() as (left, _):
            call = Call(None, ChanState(left), CID, 'mod', 'fn')
            got = []

            async def waiter():
                got.append(await call.result())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                arrive(call, functype('asyncfunc', CID))
                assert len(call.inbox) == 0 and call.inbox.has_reader  # not woken
                assert (call.functype, call.dialog.state) == ('asyncfunc', 'awaiting_return')
                arrive(call, return_(7, CID))
            assert got == [7]
            assert call.dialog.state == 'done'
            # asking for the functype after the fact still answers
            assert await call.receive_functype() == 'asyncfunc'


async def test_waiting_for_a_return_from_something_else_names_what_it_is():
    with trio.fail_after(10):
        async with open_memory_channel_pair() as (left, _):
            call = Call(None, ChanState(left), CID, 'mod', 'gen')
            call.deliver(functype('asyncgen', CID))
            with pytest.raises(TypeError, match='mod.gen is a remote asyncgen'):
                await call.result()
            # a functype asked for while the callee's answer is in flight
            other = Call(None, ChanState(left), 'c2', 'mod', 'fn')
            async with trio.open_nursery() as nursery:
                nursery.start_soon(other.receive_functype)
                await trio.testing.wait_all_tasks_blocked()
                other.deliver(functype('asyncfunc', 'c2'))
                other.deliver(return_(1, 'c2'))
            assert other.functype == 'asyncfunc'


async def _returns_unencodable():
    return object()


async def test_a_reads_replies_go_together_and_one_that_cannot_travel_is_an_error():
    from tractorish.runtime._actor import Actor
    actor = Actor('inline')
    async with open_memory_channel_pair() as (left, right):
        actor._states[left] = ChanState(left)
        left.cork()  # (as the reader does while it handles a read)
        actor._run_inline(left, _records, {'x': 1}, 'a1')
        actor._run_inline(left, _returns_unencodable, {}, 'a2')
        actor._run_inline(left, _records, {'x': 3}, 'a3')
        held = left.statistics()
        assert (held.messages_sent, held.bytes_sent) == (6, 0)  # encoded, not written
        left.uncork()
        got = []
        with trio.fail_after(5):
            while len(got) < 6:
                got.extend(await right.receive(batch=True))
    assert got[:2] == [functype('asyncfunc', 'a1'), return_(1, 'a1')]
    assert got[2] == functype('asyncfunc', 'a2')
    assert got[3]['cid'] == 'a2' and got[3]['error']['type_str'] == 'MsgTypeError'
    assert got[4:] == [functype('asyncfunc', 'a3'), return_(3, 'a3')]
    assert actor.counters.calls_failed == 1


def test_a_function_whose_source_cannot_be_read_runs_in_a_task(monkeypatch):
    # the second call of an async def reads its source to learn whether it
    # may be answered in place; a read that fails leaves it to a task, for
    # good, instead of failing that call and every one after it
    from tractorish.runtime import _rpc

    class Runner(_rpc.CallRunner):
        debugger = None

        def __init__(self):
            self._resolved = {}

    async def fn():
        return 1

    def unreadable(_):
        raise RecursionError('too deep for the parser')

    monkeypatch.setattr(_rpc, 'never_suspends', unreadable)
    runner = Runner()
    assert runner._read_function('mod', 'fn', fn) == 'asyncfunc'
    assert runner._resolved[('mod', 'fn')] == (fn, 'asyncfunc')
    monkeypatch.setattr(_rpc, 'never_suspends', lambda _: True)
    assert Runner()._read_function('mod', 'fn', fn) == 'inline'
