"""Functions the integration tests run inside actors.

Kept apart from the test modules so that children import only this (and
not pytest) when they expose it.
"""
from __future__ import annotations

import contextvars
import os
import sys
from pathlib import Path

import trio

import tractorish

_cancelled_count = 0


async def echo(value):
    return value


async def add(a: int, b: int) -> int:
    return a + b


_swapped: contextvars.ContextVar = contextvars.ContextVar('swapped', default='unset')


async def swap_context_var(value: str) -> str:
    """Set a context variable; return what it held (never suspends)."""
    old = _swapped.get()
    _swapped.set(value)
    return old


async def call_parent(func: str, **kwargs):
    """Call ``actor_funcs.<func>`` in the parent, over the parent's channel."""
    actor = tractorish.current_actor()
    portal = tractorish.Portal(actor, actor.parent_chan)
    return await portal.run_from_ns('actor_funcs', func, **kwargs)


async def task_name_in_place() -> str:
    """The serving task's name, from a function that never suspends."""
    return trio.lowlevel.current_task().name


async def task_name_in_task() -> str:
    """The serving task's name, from a function that awaits."""
    await trio.lowlevel.checkpoint()
    return trio.lowlevel.current_task().name


async def getpid() -> int:
    return os.getpid()


async def raise_value_error(text: str = 'bad value'):
    raise ValueError(text)


async def raise_runtime_error_later(text: str = 'failed later', seconds: float = 0.2):
    await trio.sleep(seconds)
    raise RuntimeError(text)


class CustomError(Exception):
    """An error class only this module defines."""


async def raise_custom():
    raise CustomError('custom failure')


async def is_imported(module: str) -> bool:
    return module in sys.modules


async def sleep_forever_counting_cancels():
    global _cancelled_count
    try:
        await trio.sleep_forever()
    finally:
        _cancelled_count += 1


async def cancelled_count() -> int:
    return _cancelled_count


async def sleep(seconds: float) -> float:
    await trio.sleep(seconds)
    return seconds


async def return_unencodable():
    return object()


async def parent_channel_spin_ns() -> int:
    return tractorish.current_actor().parent_chan.spin_ns


async def actor_info() -> dict:
    actor = tractorish.current_actor()
    return {'name': actor.name, 'is_root': tractorish.is_root_process(),
            'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd()}


async def spawn_grandchild_result(a: int, b: int) -> list:
    """Open a nursery here and return a grandchild's result with our name."""
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(grandchild_add, a=a, b=b)
        result = await portal.result()
    return [tractorish.current_actor().name, result]


async def grandchild_add(a: int, b: int) -> dict:
    return {'sum': a + b, 'name': tractorish.current_actor().name,
            'ppid': os.getppid()}


async def hold_tree(pidfile: str, depth: int, forked: bool = False) -> None:
    """Start a chain of ``depth`` more actors below us; write every pid.
    ``forked``: each forked by its parent's zygote (forkserver backend)."""
    with open(pidfile, 'a') as f:
        f.write(f'{os.getpid()}\n')
    if depth <= 0:
        await trio.sleep_forever()
    async with tractorish.open_nursery() as an:
        if forked:
            portal = await start_forked(an, f'level{depth}', enable_modules=[__name__])
        else:
            portal = await an.start_actor(f'level{depth}', enable_modules=[__name__])
        await portal.run(hold_tree, pidfile=pidfile, depth=depth - 1, forked=forked)


async def wait_for_zygote(timeout: float = 30) -> int:
    """The pid of this actor's zygote once it is ready (it must be started)."""
    from tractorish.spawn import spawn_statistics
    with trio.fail_after(timeout):
        while not spawn_statistics().zygote_ready:
            await trio.sleep(0.01)
    pid = spawn_statistics().zygote_pid
    assert pid is not None
    return pid


async def start_forked(an, name: str, **options) -> tractorish.Portal:
    """Start an actor forked by this actor's zygote (forkserver backend).

    A runtime's first spawn starts a fresh interpreter while the zygote
    starts: if no zygote is there yet, an actor is started and cancelled
    first; then the zygote is waited for.
    """
    from tractorish.spawn import spawn_statistics
    if spawn_statistics().zygote_pid is None:
        warmup = await an.start_actor(f'{name}-warmup')
        await warmup.cancel_actor()
    await wait_for_zygote()
    forked = spawn_statistics().forked
    portal = await an.start_actor(name, **options)
    assert spawn_statistics().forked == forked + 1
    return portal


async def exit_hard(code: int = 3) -> None:
    os._exit(code)


async def leave_work_for_exit(path: str) -> None:
    """Leave what an interpreter's exit must finish: a non-daemon thread, a
    thread pool never shut down and an ``atexit`` handler; each notes in
    ``path`` when it ran."""
    import atexit
    import concurrent.futures
    import threading
    import time

    def note(text: str) -> None:
        with open(path, 'a') as f:
            f.write(text + '\n')

    atexit.register(note, 'atexit')
    threading.Thread(target=lambda: (time.sleep(0.3), note('thread'))).start()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    pool.submit(note, 'pool').result()


def write_marker(path: str) -> None:
    Path(path).write_text('imported')


async def fail_when_cancelled(text: str = 'failed while cancelled'):
    """Sleep; when cancelled, fail in cleanup (an error that must not be lost)."""
    try:
        await trio.sleep_forever()
    finally:
        raise RuntimeError(text)


async def say_then_die(text: str, code: int = 5) -> None:
    sys.stderr.write(text + '\n')
    sys.stderr.flush()
    os._exit(code)


async def registry_view_with_a_child() -> list:
    """Start a child, return what the registry says while it lives."""
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('leaf', enable_modules=[__name__])
        entries = await tractorish.list_actors()
        await portal.cancel_actor()
    return entries


async def process_state() -> dict:
    """What a fresh actor process should look like (forkserver isolation)."""
    import signal as _signal
    import threading
    fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))
    kinds = {}
    for fd in fds:
        try:
            kinds[fd] = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            kinds[fd] = '?'
    def handler(signum):
        current = _signal.getsignal(signum)
        return {_signal.SIG_IGN: 'ignore', _signal.SIG_DFL: 'default'}.get(current, 'handler')
    return {
        'threads': [t.name for t in threading.enumerate()],
        'sigint': handler(_signal.SIGINT),
        'sigterm': handler(_signal.SIGTERM),
        'sigchld': handler(_signal.SIGCHLD),
        'fds': kinds,
        'sid_is_self': os.getsid(0) == os.getpid(),
        'ppid': os.getppid(),
        'pid': os.getpid(),
        'cwd': os.getcwd(),
    }


async def raise_huge(size: int) -> None:
    raise ValueError('x' * size)


# --- errors of every kind, on each path: a task, inline, a thread ------------------

class NotAnException(BaseException):
    """A BaseException a user's code might define."""


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError('no text for you')


def _make_error(kind: str) -> BaseException:
    return {
        'keyboard': KeyboardInterrupt('user code raised it'),
        'exit': SystemExit(3),
        'base': NotAnException('a BaseException of our own'),
        'unprintable': UnprintableError(),
        'surrogate': ValueError('lone surrogate: \udc80 here'),
    }[kind]


async def raise_in_task(kind: str) -> None:
    await trio.sleep(0)
    raise _make_error(kind)


async def raise_inline(kind: str) -> None:
    raise _make_error(kind)


def raise_in_thread(kind: str) -> None:
    raise _make_error(kind)


async def blob_task(size: int) -> bytes:
    """A reply of ``size`` bytes, from a task of its own (it awaits)."""
    await trio.sleep(0)
    return b'x' * size


async def fail_in_task(text: str) -> None:
    await trio.sleep(0)
    raise ValueError(text * 20)



async def bytes_keys() -> dict:
    """A result JSON cannot hold (keys of bytes)."""
    return {b'k': 1}
