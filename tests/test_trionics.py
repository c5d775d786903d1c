"""``tractorish.trionics``: trio helpers with tractor's meaning.

Everything here runs on plain trio with pytest-trio's ``autojump_clock``
(virtual time: sleeps cost nothing and a hang fails at its ``fail_after``
at once), except one test that caches a resource in a real root actor's
service nursery, which runs trio itself on the real clock.
"""
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator, List

import pytest
import trio
import trio.testing

import tractorish
from tractorish._compat import BaseExceptionGroup, ExceptionGroup
from tractorish.trionics import (
    COLLAPSED_NOTE, BroadcastReceiver, Lagged, broadcast_receiver, collapse_eg, gather_contexts,
    get_collapsed_eg, is_multi_cancelled, maybe_open_context, maybe_open_nursery,
)

# --- collapse_eg -------------------------------------------------------------------


async def _fail(exc: BaseException) -> None:
    raise exc  # no checkpoint first: a sibling's error cannot cancel this one


async def test_collapse_eg_unwraps_a_one_error_nursery_group(autojump_clock):
    cause = KeyError('why')
    err = ValueError('boom')
    err.__cause__ = cause
    with pytest.raises(ValueError) as info:
        async with collapse_eg():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_fail, err)
    assert info.value is err
    assert info.value.__cause__ is cause
    if sys.version_info >= (3, 11):  # 3.10 exceptions cannot carry notes
        assert err.__notes__ == [COLLAPSED_NOTE]


async def test_collapse_eg_without_a_cause_raises_from_none_and_notes_can_be_off(autojump_clock):
    with pytest.raises(ValueError) as info:
        async with collapse_eg(add_notes=False):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_fail, ValueError('boom'))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert not getattr(info.value, '__notes__', None)


async def test_collapse_eg_keeps_a_two_error_group(autojump_clock):
    with pytest.raises(BaseExceptionGroup) as info:
        async with collapse_eg():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_fail, ValueError('one'))
                nursery.start_soon(_fail, KeyError('two'))
    assert sorted(type(e).__name__ for e in info.value.exceptions) == ['KeyError', 'ValueError']


async def test_collapse_eg_respects_ignore(autojump_clock):
    with pytest.raises(BaseExceptionGroup) as info:
        async with collapse_eg(ignore={ValueError}):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_fail, ValueError('kept in its group'))
    assert isinstance(info.value.exceptions[0], ValueError)


def test_collapse_eg_works_as_a_plain_with_and_collapses_recursively():
    inner = RuntimeError('deep')
    with pytest.raises(RuntimeError) as info:
        with collapse_eg():
            raise ExceptionGroup('outer', [ExceptionGroup('inner', [inner])])
    assert info.value is inner
    with collapse_eg():
        pass  # nothing raised, nothing to do


def test_a_one_group_around_a_many_group_comes_down_to_the_many_group():
    many = ExceptionGroup('many', [ValueError(), KeyError()])
    assert get_collapsed_eg(ExceptionGroup('one', [many])) is many
    assert get_collapsed_eg(many) is None
    with pytest.raises(ExceptionGroup) as info:
        with collapse_eg():
            raise ExceptionGroup('one', [many])
    assert info.value is many


async def test_is_multi_cancelled_returns_the_cancelled_subgroup(autojump_clock):
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep_forever()
        except trio.Cancelled as exc:
            cancelled = exc
            group = BaseExceptionGroup('mixed', [cancelled, ValueError()])
            found = is_multi_cancelled(group)
            assert found and list(found.exceptions) == [cancelled]
            raise
    assert is_multi_cancelled(ExceptionGroup('none', [ValueError()])) is False
    assert is_multi_cancelled(ValueError()) is False


# --- maybe_open_nursery ----------------------------------------------------------


async def test_maybe_open_nursery_yields_a_given_nursery_unchanged(autojump_clock):
    async with trio.open_nursery() as outer:
        async with maybe_open_nursery(outer) as nursery:
            assert nursery is outer
        # not waited for: the given nursery's task is still running
        outer.start_soon(trio.sleep_forever)
        async with maybe_open_nursery(outer):
            pass
        outer.cancel_scope.cancel()


async def test_maybe_open_nursery_opens_a_shielded_one_if_asked(autojump_clock):
    done: List[str] = []
    async with maybe_open_nursery(shield=True) as nursery:
        assert isinstance(nursery, trio.Nursery)
        assert nursery.cancel_scope.shield
        nursery.start_soon(lambda: _append_later(done))
    assert done == ['ran']  # the new nursery was waited for
    async with maybe_open_nursery() as plain:
        assert not plain.cancel_scope.shield
    with pytest.raises(TypeError, match='only lib=trio'):
        async with maybe_open_nursery(lib=pytest):
            pass


async def _append_later(done: List[str]) -> None:
    await trio.sleep(1)
    done.append('ran')


# --- gather_contexts ---------------------------------------------------------------


@asynccontextmanager
async def tracked(name: str, log: List[str], wait_for: trio.Event = None,
                  sets: trio.Event = None, fail: bool = False) -> AsyncIterator[str]:
    log.append(f'enter {name}')
    if wait_for is not None:
        await wait_for.wait()
    await trio.lowlevel.checkpoint()
    if fail:
        raise ValueError(f'{name} failed')
    if sets is not None:
        sets.set()  # entered
    try:
        yield name
    finally:
        log.append(f'exit {name}')


async def test_gather_contexts_enters_concurrently_and_yields_in_order(autojump_clock):
    log: List[str] = []
    b_entered = trio.Event()
    mngrs = (tracked(n, log, **kw) for n, kw in [
        ('a', {'wait_for': b_entered}),  # can only finish entering if b runs meanwhile
        ('b', {'sets': b_entered}),
        ('c', {}),
    ])
    with trio.fail_after(10):
        async with gather_contexts(mngrs) as values:
            assert values == ('a', 'b', 'c')
            assert sorted(log) == ['enter a', 'enter b', 'enter c']
    assert sorted(log[3:]) == ['exit a', 'exit b', 'exit c']


async def test_gather_contexts_in_a_given_nursery_waits_for_the_exits(autojump_clock):
    log: List[str] = []
    async with trio.open_nursery() as tn:
        async with gather_contexts([tracked('x', log), tracked('y', log)], tn=tn) as values:
            assert values == ('x', 'y')
        assert sorted(log[2:]) == ['exit x', 'exit y']


async def test_an_error_entering_one_exits_the_others_and_propagates_alone(autojump_clock):
    log: List[str] = []
    never, ok_entered = trio.Event(), trio.Event()
    mngrs = [tracked('ok', log, sets=ok_entered), tracked('bad', log, wait_for=ok_entered, fail=True),
             tracked('stuck', log, wait_for=never)]
    body_ran = False
    with pytest.raises(ValueError, match='bad failed'):
        async with gather_contexts(mngrs):
            body_ran = True
    assert not body_ran
    assert 'exit ok' in log
    assert 'exit stuck' not in log  # cancelled while entering, never entered


async def test_cancelling_the_body_exits_every_manager(autojump_clock):
    log: List[str] = []
    with trio.move_on_after(1) as scope:
        async with gather_contexts([tracked('p', log), tracked('q', log)]):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert sorted(log[2:]) == ['exit p', 'exit q']


async def test_gather_contexts_needs_managers_and_an_enclosing_nursery(autojump_clock):
    with pytest.raises(ValueError):
        async with gather_contexts([]):
            pass
    async with trio.open_nursery() as outer:
        stray = await outer.start(_nursery_elsewhere)
        with pytest.raises(RuntimeError, match='enclose'):
            async with gather_contexts([tracked('z', [])], tn=stray):
                pass
        outer.cancel_scope.cancel()


async def _nursery_elsewhere(task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


# --- maybe_open_context ------------------------------------------------------------


class Resources:
    """An acm factory that counts what it made and can fail its teardown."""

    def __init__(self, fail_teardown: bool = False) -> None:
        self.made = 0
        self.closed = 0
        self.fail_teardown = fail_teardown
        # one bound method object: the cache knows a function by its id()
        self.open = self._open

    @asynccontextmanager
    async def _open(self, name: str = 'r') -> AsyncIterator[str]:
        self.made += 1
        value = f'{name}-{self.made}'
        await trio.sleep(0.1)  # room for others to pile up behind the lock
        try:
            yield value
        finally:
            await trio.sleep(0.1)
            self.closed += 1
            if self.fail_teardown:
                raise OSError('teardown failed')


async def test_maybe_open_context_shares_one_resource_among_ten_tasks(autojump_clock):
    res = Resources()
    got: List[tuple] = []
    all_in = trio.Event()

    async def user() -> None:
        async with maybe_open_context(res.open, kwargs={'name': 'db'}, tn=tn) as (hit, value):
            got.append((hit, value))
            if len(got) == 10:
                all_in.set()
            await all_in.wait()

    async with trio.open_nursery() as tn:
        async with trio.open_nursery() as users:
            for _ in range(10):
                users.start_soon(user)
    assert res.made == 1 and res.closed == 1
    assert sorted(got) == [(False, 'db-1')] + [(True, 'db-1')] * 9


async def test_the_last_user_tears_down_and_the_next_one_makes_a_fresh_resource(autojump_clock):
    res = Resources()
    async with trio.open_nursery() as tn:
        async with maybe_open_context(res.open, tn=tn) as (hit, first):
            assert (hit, first) == (False, 'r-1')
            async with maybe_open_context(res.open, tn=tn) as (hit2, second):
                assert (hit2, second) == (True, 'r-1')
            assert res.closed == 0  # one user is left
        assert res.closed == 1  # the last user waited for the teardown
        async with maybe_open_context(res.open, tn=tn) as (hit, fresh):
            assert (hit, fresh) == (False, 'r-2')
        # other kwargs are another resource
        async with maybe_open_context(res.open, {'name': 'a'}, tn=tn) as (hit, a):
            async with maybe_open_context(res.open, {'name': 'b'}, tn=tn) as (hit_b, b):
                assert (hit, hit_b, a, b) == (False, False, 'a-3', 'b-4')


async def test_a_teardown_error_is_raised_at_the_last_users_exit(autojump_clock):
    res = Resources(fail_teardown=True)
    async with trio.open_nursery() as tn:
        left_inner = False
        with pytest.raises(OSError, match='teardown failed'):
            async with maybe_open_context(res.open, tn=tn):
                async with maybe_open_context(res.open, tn=tn):
                    pass
                left_inner = True  # not the last user: nothing raised there
        assert left_inner and res.closed == 1


async def test_a_first_entrant_cancelled_while_entering_leaves_no_entry(autojump_clock):
    res = Resources()
    async with trio.open_nursery() as tn:
        with trio.move_on_after(0.05):  # entering takes 0.1
            async with maybe_open_context(res.open, tn=tn):
                pytest.fail('entered despite the cancellation')
        async with maybe_open_context(res.open, tn=tn) as (hit, value):
            assert (hit, value) == (False, 'r-2')


async def test_a_failed_enter_reaches_the_first_entrant_and_others_retry(autojump_clock):
    attempts: List[int] = []

    @asynccontextmanager
    async def flaky() -> AsyncIterator[int]:
        attempts.append(len(attempts))
        await trio.sleep(0.1)
        if len(attempts) == 1:
            raise ConnectionError('first try fails')
        yield len(attempts)

    outcomes: List[object] = []

    async def user() -> None:
        try:
            async with maybe_open_context(flaky, tn=tn) as (hit, value):
                outcomes.append((hit, value))
                await trio.sleep(0.5)
        except ConnectionError as err:
            outcomes.append(err)

    async with trio.open_nursery() as tn:
        async with trio.open_nursery() as users:
            for _ in range(3):
                users.start_soon(user)
    assert isinstance(outcomes[0], ConnectionError)
    assert sorted(outcomes[1:]) == [(False, 2), (True, 2)]


async def test_maybe_open_context_key_rules(autojump_clock):
    res = Resources()
    with pytest.raises(TypeError, match="'tags'"):
        async with maybe_open_context(res.open, kwargs={'name': 'x', 'tags': ['a']}):
            pass
    with pytest.raises(tractorish.NoRuntime, match='tn='):
        async with maybe_open_context(res.open):
            pass
    async with trio.open_nursery() as tn:
        # a key names the resource whatever the kwargs
        async with maybe_open_context(res.open, {'name': 'p'}, key='k', tn=tn) as (_, one):
            async with maybe_open_context(res.open, {'name': 'q'}, key=lambda name: 'k',
                                          tn=tn) as (hit, two):
                assert hit and one == two == 'p-1'


def test_maybe_open_context_uses_the_actors_service_nursery():
    # a trio run of its own, on the real clock: the runtime does real I/O
    res = Resources()

    async def main() -> None:
        async with tractorish.open_root_actor():
            async with maybe_open_context(res.open) as (hit, value):
                async with maybe_open_context(res.open) as (hit2, value2):
                    assert (hit, hit2, value, value2) == (False, True, 'r-1', 'r-1')
            assert res.closed == 1  # torn down in the service nursery, before it closed

    trio.run(main)


# --- broadcast_receiver ------------------------------------------------------------


async def _collect(receiver: BroadcastReceiver, out: List[int]) -> None:
    async for value in receiver:
        out.append(value)


async def test_every_subscriber_gets_every_value_in_order_then_end_of_channel(autojump_clock):
    send, recv = trio.open_memory_channel(0)
    first = broadcast_receiver(recv, 8)
    results: List[List[int]] = [[], [], []]
    with trio.fail_after(10):
        async with first.subscribe() as second, first.subscribe() as third:
            async with trio.open_nursery() as nursery:
                for receiver, out in zip((first, second, third), results):
                    nursery.start_soon(_collect, receiver, out)
                async with send:
                    for value in range(20):
                        await send.send(value)
    assert results == [list(range(20))] * 3  # async for ended: EndOfChannel reached all


async def test_a_lagging_subscriber_gets_lagged_then_resumes_from_the_oldest(autojump_clock):
    send, recv = trio.open_memory_channel(100)
    fast = broadcast_receiver(recv, 4)
    async with fast.subscribe() as slow:
        for value in range(10):
            send.send_nowait(value)
        assert [await fast.receive() for _ in range(10)] == list(range(10))
        with pytest.raises(Lagged):
            await slow.receive()
        assert [slow.receive_nowait() for _ in range(4)] == [6, 7, 8, 9]
        with pytest.raises(trio.WouldBlock):
            slow.receive_nowait()


async def test_without_raise_on_lag_a_subscriber_skips_ahead(autojump_clock):
    send, recv = trio.open_memory_channel(100)
    fast = broadcast_receiver(recv, 3)
    async with fast.subscribe(raise_on_lag=False) as slow:
        for value in range(6):
            send.send_nowait(value)
        for _ in range(6):
            await fast.receive()
        assert [await slow.receive() for _ in range(3)] == [3, 4, 5]


async def test_closing_one_subscriber_leaves_the_others_alone(autojump_clock):
    send, recv = trio.open_memory_channel(100)
    first = broadcast_receiver(recv, 8)
    async with first.subscribe() as second:
        send.send_nowait('a')
        await second.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await second.receive()
        assert await first.receive() == 'a'
        send.send_nowait('b')
        assert await first.receive() == 'b'
    send.send_nowait('c')  # the underlying channel is still open
    assert await first.receive() == 'c'


async def test_closing_a_receiver_wakes_its_blocked_reader(autojump_clock):
    _send, recv = trio.open_memory_channel(0)
    first = broadcast_receiver(recv, 8)
    async with first.subscribe() as second:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                async def reader() -> None:
                    with pytest.raises(trio.ClosedResourceError):
                        await first.receive()  # the one reading the channel
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await first.aclose()
    with pytest.raises(trio.ClosedResourceError):
        async with first.subscribe():
            pass


async def test_cancelling_the_reading_task_lets_another_take_over(autojump_clock):
    send, recv = trio.open_memory_channel(0)
    first = broadcast_receiver(recv, 8)
    got: List[str] = []
    async with first.subscribe() as second:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                async def reads_first() -> None:
                    with reader_scope:
                        await first.receive()

                async def reads_second() -> None:
                    got.append(await second.receive())

                reader_scope = trio.CancelScope()
                nursery.start_soon(reads_first)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(reads_second)  # waits: `first` is reading
                await trio.testing.wait_all_tasks_blocked()
                reader_scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                await send.send('after the handover')
    assert got == ['after the handover']
    # the cancelled reader lost nothing: the value is still there for it
    assert first.receive_nowait() == 'after the handover'


async def test_broadcast_receiver_validates_its_buffer_size(autojump_clock):
    _send, recv = trio.open_memory_channel(0)
    with pytest.raises(ValueError):
        broadcast_receiver(recv, 0)


async def test_receive_afunc_replaces_the_channels_receive(autojump_clock):
    values = iter([1, 2])

    async def next_value() -> int:
        await trio.lowlevel.checkpoint()
        try:
            return next(values)
        except StopIteration:
            raise trio.EndOfChannel from None

    receiver = broadcast_receiver(None, 2, receive_afunc=next_value)
    out: List[int] = []
    await _collect(receiver, out)
    assert out == [1, 2]
