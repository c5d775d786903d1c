"""Functions the pool and supervisor tests run in worker actors."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

import trio

import tractorish


async def square(x: int) -> int:
    return x * x


async def slow_square(x: int, delay: float = 0.05) -> dict:
    await trio.sleep(delay)
    return {'x': x, 'square': x * x, 'worker': tractorish.current_actor().name}


async def whoami() -> str:
    return tractorish.current_actor().name


async def fail(text: str) -> None:
    raise ValueError(text)


def die(kind: str) -> None:
    sys.stderr.write(f'about to die by {kind}\n')
    sys.stderr.flush()
    if kind == 'exit':
        os._exit(13)
    elif kind == 'sigkill':
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == 'segfault':
        ctypes.string_at(0)
    raise ValueError(f'unknown way to die: {kind}')


async def crash(kind: str) -> None:
    die(kind)


async def flaky(i: int, kind: str, every: int, marker_dir: str) -> int:
    """Crash (once per i) on every ``every``-th item; else return i."""
    if i % every == every - 1:
        marker = Path(marker_dir, str(i))
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return i
        os.close(fd)
        die(kind)
    return i


async def note_start(path: str) -> None:
    """Append our name and pid to ``path``, then serve forever."""
    with open(path, 'a') as f:
        f.write(f'{tractorish.current_actor().name} {os.getpid()}\n')
    await trio.sleep_forever()


async def finish_after(seconds: float) -> str:
    await trio.sleep(seconds)
    return 'finished'


async def append_name_later(path: str, delay: float) -> None:
    await trio.sleep(delay)
    with open(path, 'a') as f:
        f.write(tractorish.current_actor().name + '\n')


async def block_the_loop(seconds: float) -> None:
    """Hold this actor's event loop: it answers nothing, a cancel included."""
    time.sleep(seconds)


async def named_like_run(fn: str, fn_name: str, self: str) -> list:
    """Parameters named as Portal.run's and ActorPool.run's own."""
    return [fn, fn_name, self]


async def getpid() -> int:
    return os.getpid()


async def supervise_a_crasher() -> None:
    """In a child: a supervisor whose child keeps crashing gives up."""
    async with tractorish.open_supervisor(max_restarts=1, within=30) as sup:
        await sup.run_in_actor(crash, name='crasher', restart='permanent', kind='exit',
                               enable_modules=[__name__])
        await trio.sleep_forever()


_in_flight = 0
_peak = 0


async def count_in_flight(delay: float) -> int:
    """Note how many of these run at once in this worker; return the peak."""
    global _in_flight, _peak
    _in_flight += 1
    _peak = max(_peak, _in_flight)
    try:
        await trio.sleep(delay)
    finally:
        _in_flight -= 1
    return _peak


def block_until_exists(path: str) -> str:
    """A plain function that blocks its thread until ``path`` appears."""
    for _ in range(3000):
        if os.path.exists(path):
            return 'released'
        time.sleep(0.01)
    return 'gave up'
