"""Worker pools: balancing, pinning, fan-out, map, threads, crashes, retries."""
from __future__ import annotations

import os
import signal

import pytest
import trio

import pool_funcs as pf
import tractorish
from tractorish import ActorCrashed, RemoteActorError

MODS = ['pool_funcs']


async def test_pool_starts_named_workers_and_balances_calls():
    async with tractorish.open_actor_pool(3, enable_modules=MODS, name='calc') as pool:
        assert pool.workers == ['calc-0', 'calc-1', 'calc-2']
        await pool.wait_ready()
        assert await pool.run(pf.square, x=7) == 49
        # concurrent slow calls spread over every worker
        results = []

        async def one(i):
            results.append(await pool.run(pf.slow_square, x=i, delay=0.2))
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(one, i)
        assert sorted(r['square'] for r in results) == [i * i for i in range(6)]
        counts = {}
        for r in results:
            counts[r['worker']] = counts.get(r['worker'], 0) + 1
        assert counts == {'calc-0': 2, 'calc-1': 2, 'calc-2': 2}
        # sequential calls go round-robin among equally idle workers
        seen = {await pool.run(pf.whoami) for _ in range(6)}
        assert seen == set(pool.workers)
        # pinning
        assert {await pool.run(pf.whoami, receiver='calc-1') for _ in range(3)} == {'calc-1'}
        with pytest.raises(KeyError):
            await pool.run(pf.whoami, receiver='calc-9')


async def test_concurrency_per_worker():
    async with tractorish.open_actor_pool(1, enable_modules=MODS, concurrency=4) as pool:
        peaks = []

        async def one():
            peaks.append(await pool.run(pf.count_in_flight, delay=0.3))
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(one)
        assert max(peaks) == 4  # four at once in the one worker, never five


async def test_cast_collects_every_worker_and_keeps_errors_apart():
    async with tractorish.open_actor_pool(3, enable_modules=MODS, name='c') as pool:
        assert await pool.cast(pf.whoami) == {'c-0': 'c-0', 'c-1': 'c-1', 'c-2': 'c-2'}
        results = await pool.cast(pf.fail, text='everyone fails')
        assert set(results) == {'c-0', 'c-1', 'c-2'}
        assert all(isinstance(r, RemoteActorError) for r in results.values())
        with pytest.raises(BaseException) as info:
            await pool.cast(pf.fail, text='raise please', raise_errors=True)
        assert isinstance(info.value, tractorish._compat.BaseExceptionGroup)
        assert len(info.value.exceptions) == 3


async def test_cast_nowait_runs_everywhere_and_the_block_waits_for_it(tmp_path):
    path = tmp_path / 'names'
    async with tractorish.open_actor_pool(2, enable_modules=MODS, name='n') as pool:
        pool.cast_nowait(pf.append_name_later, path=str(path), delay=0.3)
        assert not path.exists()  # it returned at once
    assert sorted(path.read_text().split()) == ['n-0', 'n-1']


@pytest.mark.parametrize('ordered', [True, False])
async def test_map_over_many_items(ordered):
    async with tractorish.open_actor_pool(2, enable_modules=MODS, concurrency=2) as pool:
        got = [r async for r in pool.map(pf.square, range(300), ordered=ordered)]
        if ordered:
            assert got == [i * i for i in range(300)]
        else:
            assert sorted(got) == [i * i for i in range(300)]
        kwargs = [{'x': i, 'delay': 0} for i in range(20)]
        got = [r['square'] async for r in pool.starmap(pf.slow_square, kwargs)]
        assert got == [i * i for i in range(20)]


async def test_map_error_stops_and_early_exit_cancels():
    async with tractorish.open_actor_pool(2, enable_modules=MODS) as pool:
        with pytest.raises(RemoteActorError):
            async for _ in pool.map(pf.fail, ['a', 'b', 'c']):
                pass
        async for r in pool.map(pf.slow_square, range(100)):
            if r['x'] == 3:
                break
        with trio.fail_after(10):  # the calls in flight were cancelled
            while sum(pool.busy().values()):
                await trio.sleep(0.01)
        assert await pool.run(pf.square, x=2) == 4


def rows_failing_at(n):
    for i in range(n):
        yield i
    raise ValueError(f'bad input row {n}')


async def test_an_error_of_the_input_is_the_maps_and_the_pool_carries_on():
    async with tractorish.open_actor_pool(2, enable_modules=MODS) as pool:
        got = []
        with pytest.raises(ValueError, match='bad input row 3'):
            async for r in pool.map(pf.square, rows_failing_at(3)):
                got.append(r)
        assert got == [0, 1, 4]  # the results before it, in order
        with pytest.raises(TypeError):
            async for _ in pool.starmap(pf.square, 5):
                pass
        assert await pool.run(pf.square, x=3) == 9


async def test_leaving_a_held_map_early_lets_the_pool_block_end():
    with trio.fail_after(30):
        async with tractorish.open_actor_pool(1, enable_modules=MODS) as pool:
            results = pool.map(pf.square, range(100))  # held: not closed by the loop
            async for _ in results:
                break
    await results.aclose()


async def test_a_plain_function_runs_in_a_thread_without_stalling_the_actor(tmp_path):
    release = tmp_path / 'release'
    outcome = []
    async with tractorish.open_actor_pool(1, enable_modules=MODS, concurrency=2,
                                          name='t') as pool:
        async with trio.open_nursery() as nursery:
            async def blocked():
                outcome.append(await pool.run(pf.block_until_exists, path=str(release)))
            nursery.start_soon(blocked)
            await trio.sleep(0.1)
            # the thread is still blocked (nothing released it), yet the actor answers
            assert await pool.run(pf.square, x=3) == 9
            assert outcome == []
            release.touch()
    assert outcome == ['released']


@pytest.mark.parametrize('kind', ['exit', 'sigkill', 'segfault'])
async def test_a_crashing_worker_is_reported_and_replaced(kind):
    async with tractorish.open_actor_pool(2, enable_modules=MODS, name='w') as pool:
        old_pid = pool._sup.process('w-0').pid
        async with trio.open_nursery() as nursery:
            # a slow call on the other worker is not disturbed by the crash
            other = {}

            async def bystander():
                other['r'] = await pool.run(pf.slow_square, x=5, delay=1.0, receiver='w-1')
            nursery.start_soon(bystander)
            with pytest.raises(ActorCrashed) as info:
                await pool.run(pf.crash, kind=kind, receiver='w-0')
        assert other['r']['square'] == 25
        err = info.value
        assert err.name == 'w-0' and err.pid == old_pid
        expected = {'exit': 13, 'sigkill': -signal.SIGKILL, 'segfault': -signal.SIGSEGV}[kind]
        assert err.returncode == expected
        assert f'about to die by {kind}' in err.stderr_tail
        await pool.wait_ready()
        assert pool._sup.process('w-0').pid != old_pid
        assert await pool.run(pf.whoami, receiver='w-0') == 'w-0'


@pytest.mark.parametrize('kind', ['exit', 'sigkill', 'segfault'])
async def test_map_survives_crashes_with_retries(tmp_path, kind):
    async with tractorish.open_actor_pool(3, enable_modules=MODS, retries=3,
                                          name='m') as pool:
        results = [r async for r in pool.starmap(
            pf.flaky, ({'i': i, 'kind': kind, 'every': 250, 'marker_dir': str(tmp_path)}
                       for i in range(1000)))]
        assert results == list(range(1000))  # every one, exactly once, in order
        assert len(list(tmp_path.iterdir())) == 4  # four crashes happened
        await pool.wait_ready()
        assert len(pool.workers) == 3
        assert sorted((await pool.cast(pf.whoami)).values()) == ['m-0', 'm-1', 'm-2']
        pids = {pool._sup.process(n).pid for n in pool.workers}
        assert len(pids) == 3 and os.getpid() not in pids


async def test_without_retries_the_crash_reaches_the_caller(tmp_path):
    async with tractorish.open_actor_pool(2, enable_modules=MODS) as pool:
        with pytest.raises(ActorCrashed):
            await pool.run(pf.flaky, i=0, kind='exit', every=1, marker_dir=str(tmp_path))
        # retried, the same call succeeds (its marker now exists)
        assert await pool.run(pf.flaky, i=0, kind='exit', every=1,
                              marker_dir=str(tmp_path)) == 0


async def test_a_function_may_have_parameters_named_as_runs_own():
    async with tractorish.open_actor_pool(1, enable_modules=MODS) as pool:
        assert await pool.run(pf.named_like_run, fn='a', fn_name='b', self='c') == \
            ['a', 'b', 'c']
        assert await pool.cast(pf.named_like_run, fn='a', fn_name='b', self='c') == \
            {pool.workers[0]: ['a', 'b', 'c']}
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('named', enable_modules=MODS)
        assert await portal.run(pf.named_like_run, fn='a', fn_name='b', self='c') == \
            ['a', 'b', 'c']
        await portal.cancel_actor()


async def test_bad_pool_arguments():
    with pytest.raises(ValueError):
        async with tractorish.open_actor_pool(0):
            pass
    with pytest.raises(TypeError):
        async with tractorish.open_actor_pool(1, enable_modules='pool_funcs'):
            pass
    with pytest.raises(ValueError, match='retries must be an int'):
        async with tractorish.open_actor_pool(1, retries=-1):
            pass
    async with tractorish.open_actor_pool(1, enable_modules=MODS) as pool:
        with pytest.raises(ValueError, match="retries must be an int >= 0, not -1"):
            await pool.run(pf.square, x=2, retries=-1)
        with pytest.raises(ValueError, match="not '1'"):
            async for _ in pool.map(pf.square, [1], retries='1'):
                pass


async def test_calls_after_a_crash_wait_for_the_replacement(tmp_path):
    async with tractorish.open_actor_pool(1, enable_modules=MODS, name='solo') as pool:
        with pytest.raises(ActorCrashed):
            await pool.run(pf.crash, kind='exit')
        # not the dead worker's stale portal: this waits for the new one
        assert await pool.run(pf.whoami) == 'solo-0'
    async with tractorish.open_actor_pool(1, enable_modules=MODS, retries=2) as pool:
        assert await pool.run(pf.flaky, i=0, kind='sigkill', every=1,
                              marker_dir=str(tmp_path)) == 0



class _CallerWakeups(trio.abc.Instrument):
    """Counts how often the test's caller tasks are scheduled."""

    def __init__(self) -> None:
        self.count = 0

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith('waiting_caller'):
            self.count += 1


async def test_waiting_callers_are_served_one_at_a_time_in_arrival_order():
    # one slot, 150 callers: each end of a call hands the slot to the
    # next caller alone (waking them all made 150 callers cost ~11,000
    # wake-ups, a quadratic bill)
    n = 150
    order = []
    wakeups = _CallerWakeups()
    async with tractorish.open_actor_pool(1, enable_modules=MODS, name='fifo') as pool:
        await pool.wait_ready()

        async def waiting_caller(i: int) -> None:
            if i == 0:  # holds the slot while the others line up
                await pool.run(pf.slow_square, x=0, delay=2.0)
            else:
                assert await pool.run(pf.square, x=i) == i * i
            order.append(i)

        trio.lowlevel.add_instrument(wakeups)
        try:
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(waiting_caller, i)
                    await trio.testing.wait_all_tasks_blocked()
                lined_up = pool.statistics().waiting
        finally:
            trio.lowlevel.remove_instrument(wakeups)
        stats = pool.statistics()
    assert lined_up == n - 1
    assert order == list(range(n))
    assert stats.handoffs == n - 1 and stats.waiting == 0
    assert wakeups.count < 12 * n, wakeups.count
