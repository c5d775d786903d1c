"""An asyncio program that opens an actor tree: ``tractorish.asyncio``.

Plain test functions, each running an asyncio main with ``asyncio.run``;
every main ends by checking that no asyncio task but itself is left.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, List

import psutil
import pytest
import trio

import tractorish
import tractorish.asyncio as trio_guest

INTEGRATION = str(Path(__file__).resolve().parent / 'integration')
if INTEGRATION not in sys.path:  # (it is when the integration tests are collected too)
    sys.path.insert(0, INTEGRATION)

import actor_funcs  # noqa: E402  (children import these by name: they inherit sys.path)
import aio_funcs  # noqa: E402
import stream_funcs  # noqa: E402

MODULES = ['aio_funcs', 'actor_funcs', 'stream_funcs']


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """``asyncio.run(main())``, failing if main leaves an asyncio task behind."""
    async def checked() -> Any:
        result = await main()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return result
    return asyncio.run(checked())


def alive(pids: List[int]) -> List[int]:
    return [pid for pid in pids if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def wait_gone(pids: List[int], timeout: float = 5.0) -> List[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


def test_results_and_remote_errors():
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('worker', enable_modules=MODULES)
            assert await portal.run(actor_funcs.add, a=1, b=2) == 3
            assert await portal.run_from_ns('actor_funcs', 'add', a=2, b=2) == 4
            with pytest.raises(tractorish.RemoteActorError) as info:
                await portal.run(actor_funcs.raise_value_error, text='nope')
            assert info.value.boxed_type is ValueError
            assert info.value.src_uid[0] == 'worker'
            # concurrent calls from several asyncio tasks
            sums = await asyncio.gather(*(portal.run(actor_funcs.add, a=i, b=i)
                                          for i in range(20)))
            assert sums == [2 * i for i in range(20)]
            assert len(an.children) == 1 and not an.cancel_called
            assert await portal.cancel_actor()
    run(main)


def test_asyncio_error_reaches_callee():
    """An error in an asyncio block inside ``open_context`` is sent to the
    callee, as in trio, then raised as itself; unencodable arguments raise
    MsgTypeError here."""
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('callee', enable_modules=MODULES)
            with pytest.raises(ValueError, match='caller gave up'):
                async with portal.open_context(aio_funcs.consume) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        await stream.send('hello')
                        raise ValueError('caller gave up')
            assert await portal.run(aio_funcs.context_ends) == ['caller failed: ValueError']
            with pytest.raises(tractorish.MsgTypeError):
                await portal.run(actor_funcs.add, a=object(), b=1)
            await portal.cancel_actor()
    run(main)


def test_wait_for_timeout_cancels_the_remote_call():
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('sleeper', enable_modules=MODULES)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(portal.run(aio_funcs.sleep_forever), 0.3)
            assert await portal.run(aio_funcs.cancelled_count) == 1
            # a task cancelled outright, too
            task = asyncio.ensure_future(portal.run(aio_funcs.sleep_forever))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await portal.run(aio_funcs.cancelled_count) == 2
            # the tree still works
            one_shot = await an.run_in_actor(actor_funcs.add, a=5, b=6)
            assert await one_shot.result() == 11
            await portal.cancel_actor()
    run(main)


def test_dying_actor_cancels_the_asyncio_block():
    """A daemon actor dying unasked cancels the block (here asleep in
    asyncio) and its ActorCrashed is raised from it, as in trio."""
    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(tractorish.ActorCrashed):
            async with trio_guest.open_nursery() as an:
                await an.start_actor('bystander', enable_modules=MODULES)
                portal = await an.start_actor('doomed', enable_modules=MODULES)
                await portal.run(aio_funcs.exit_soon, seconds=0.2)
                await asyncio.sleep(30)
        return time.monotonic() - started
    assert run(main) < 20


def test_failing_callee_cancels_the_context_block():
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('callee', enable_modules=MODULES)
            with pytest.raises(tractorish.RemoteActorError) as info:
                async with portal.open_context(aio_funcs.fail_after_started) as (_, first):
                    assert first == 'ready'
                    await asyncio.sleep(30)
            assert info.value.boxed_type is KeyError
            # that cancellation was ours to undo: the task is not left cancelling
            task = asyncio.current_task()
            assert task is not None and getattr(task, 'cancelling', lambda: 0)() == 0
            await portal.cancel_actor()
    run(main)


def test_run_in_actor_children_are_gathered():
    async def main() -> None:
        started = time.monotonic()
        async with trio_guest.open_nursery() as an:
            for seconds in (0.3, 0.6):
                portal = await an.run_in_actor(aio_funcs.sleep, seconds=seconds,
                                               name=f'sleep-{seconds}')
        # the block ended at once; its exit waited for both children
        assert time.monotonic() - started >= 0.6
        assert an.children == [] and not an.errors
        with pytest.raises(RuntimeError, match='has ended'):
            await portal.result()  # results are fetched inside the block

        # a call still running in another task when the block ends is cancelled
        async with trio_guest.open_nursery() as an:
            portal = await an.run_in_actor(aio_funcs.sleep, seconds=0.3)
            waiter = asyncio.ensure_future(portal.result())
            await asyncio.sleep(0.1)
        assert waiter.cancelled()

        async with trio_guest.open_nursery() as an:
            portals = [await an.run_in_actor(actor_funcs.add, a=i, b=i, name=f'add-{i}')
                       for i in range(3)]
            assert await asyncio.gather(*(p.result() for p in portals)) == [0, 2, 4]
            assert await portals[0].wait_for_result() == 0  # again
    run(main)


def test_failing_run_in_actor_child_is_raised_at_exit():
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            await an.run_in_actor(actor_funcs.raise_runtime_error_later, seconds=0.2,
                                  name='failing')
            patient = await an.run_in_actor(actor_funcs.add, a=1, b=1, name='patient')
        assert an.errors and await patient.result() == 2
    with pytest.raises(tractorish.RemoteActorError) as info:
        run(main)
    assert info.value.boxed_type is RuntimeError
    assert info.value.src_uid[0] == 'failing'


def test_stream_of_a_thousand_values():
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('counter', enable_modules=MODULES)
            async with portal.open_stream_from(stream_funcs.count, n=1000) as stream:
                values = [value async for value in stream]
            assert values == list(range(1000))
            # leaving early cancels the remote generator; the actor serves on
            async with portal.open_stream_from(stream_funcs.count, n=10**9) as stream:
                async for value in stream:
                    if value == 5:
                        break
            with pytest.raises(tractorish.RemoteActorError) as info:
                async with portal.open_stream_from(stream_funcs.count_then_fail,
                                                   n=3) as stream:
                    assert [value async for value in stream] == 'not reached'
            assert info.value.boxed_type is ValueError
            assert await portal.run(actor_funcs.add, a=1, b=1) == 2
            await portal.cancel_actor()
    run(main)


def test_a_receive_timed_out_loses_no_value():
    """asyncio.wait_for around receive(): a value the trio side took just
    as the wait was cancelled comes with the next receive."""
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('uneven', enable_modules=MODULES)
            got, timeouts = [], 0
            async with portal.open_stream_from(stream_funcs.count_unevenly, n=300,
                                               delay=0.002) as stream:
                while True:
                    try:
                        got.append(await asyncio.wait_for(stream.receive(), 0.0005))
                    except asyncio.TimeoutError:
                        timeouts += 1
                    except trio.EndOfChannel:
                        break
            assert got == list(range(300)) and timeouts > 0
            await portal.cancel_actor()
    run(main)


def test_context_echo():
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('echoer', enable_modules=MODULES)
            async with portal.open_context(stream_funcs.echo_ctx, greeting='hi') as (ctx, first):
                assert first == 'hi'
                async with ctx.open_stream() as stream:
                    for i in range(100):
                        await stream.send(i)
                        assert await stream.receive() == i
            assert await ctx.result() == 100
            await portal.cancel_actor()
    run(main)


def test_error_in_the_block_tears_the_tree_down():
    pids: List[int] = []

    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            for name in ('a', 'b'):
                portal = await an.start_actor(name, enable_modules=MODULES)
                pids.append(await portal.run(actor_funcs.getpid))
            assert alive(pids) == pids
            raise ValueError('the asyncio side gave up') from KeyError('why')
    with pytest.raises(ValueError, match='gave up') as info:
        run(main)
    assert wait_gone(pids, timeout=0.5) == []
    assert isinstance(info.value.__cause__, KeyError)  # raised as itself
    assert info.traceback[-1].name == 'main'


def test_cancelling_the_block_tears_the_tree_down():
    """``asyncio.wait_for`` around the whole tree: every actor is cancelled,
    whether the block is still running or its exit waits for a daemon
    actor nobody cancelled."""
    pids: List[int] = []

    async def tree(leave_block: bool) -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.start_actor('daemon', enable_modules=MODULES)
            pids.append(await portal.run(actor_funcs.getpid))
            if not leave_block:
                await portal.run(aio_funcs.sleep_forever)

    async def main() -> None:
        for leave_block in (False, True):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(tree(leave_block), 2)
            assert wait_gone(pids, timeout=0.5) == []
    run(main)


def test_one_tree_per_process():
    async def main() -> None:
        async with trio_guest.open_nursery():
            with pytest.raises(RuntimeError, match='already open'):
                async with trio_guest.open_nursery():
                    pass  # pragma: no cover
        async with trio_guest.open_nursery() as an:  # one after the other is fine
            portal = await an.run_in_actor(actor_funcs.add, a=1, b=1)
            assert await portal.result() == 2
    run(main)


def test_bad_root_keywords_are_raised():
    async def main() -> None:
        with pytest.raises(TypeError):
            async with trio_guest.open_nursery(no_such_option=1):
                pass  # pragma: no cover
    run(main)


def test_ctrl_c_tears_the_tree_down(tmp_path: Path):
    """asyncio.run cancels the main task (3.11+) or the guest run takes
    the KeyboardInterrupt (3.10): either way the tree goes down."""
    script = tmp_path / 'interrupted.py'
    script.write_text(textwrap.dedent(f'''
        import asyncio, sys
        sys.path.insert(0, {INTEGRATION!r})
        import actor_funcs
        import tractorish.asyncio

        async def main():
            async with tractorish.asyncio.open_nursery() as an:
                portal = await an.start_actor('daemon', enable_modules=['actor_funcs'])
                print(await portal.run(actor_funcs.getpid), flush=True)
                await asyncio.sleep(60)

        if __name__ == '__main__':
            asyncio.run(main())
    '''))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and 'KeyboardInterrupt' in err
    assert wait_gone([child], timeout=1.0) == []


def test_import_alone():
    code = 'import tractorish.asyncio as t, asyncio; print(t.open_nursery.__name__)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=30, env={**os.environ, 'PYTHONPATH': ''})
    assert out.stdout.strip() == 'open_nursery', out.stderr


def test_trio_is_not_disturbed():
    """The guest run leaves nothing behind: a plain trio run works after it."""
    async def main() -> None:
        async with trio_guest.open_nursery() as an:
            portal = await an.run_in_actor(actor_funcs.add, a=2, b=2)
            assert await portal.result() == 4
    run(main)

    async def trio_main() -> int:
        async with tractorish.open_nursery() as an:
            portal = await an.run_in_actor(actor_funcs.add, a=3, b=3)
            return await portal.result()
    assert trio.run(trio_main) == 6
