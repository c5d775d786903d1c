"""Functions the benchmark calls inside actors and in the other process pools.

This module is imported by the spawned actors (``enable_modules=
['bench_funcs']``) and by the workers of ProcessPoolExecutor,
multiprocessing.Pool and trio-parallel, so it must stay importable without
side effects.
"""
from __future__ import annotations

import math
import signal
import time
from typing import Any, AsyncIterator

import tractorish


async def echo(x: Any = None) -> Any:
    """Return the argument unchanged: the smallest useful round trip."""
    return x


async def count(n: int) -> AsyncIterator[int]:
    """Yield ``0 .. n-1``: one-way stream throughput of small ints."""
    for i in range(n):
        yield i


async def blobs(n: int, size: int = 1024) -> AsyncIterator[bytes]:
    """Yield ``n`` payloads of ``size`` bytes: one-way stream throughput in bytes."""
    blob = b'x' * size
    for _ in range(n):
        yield blob


@tractorish.context
async def echo_ctx(ctx: tractorish.Context) -> int:
    """Send back every value received on the context's stream."""
    await ctx.started()
    received = 0
    async with ctx.open_stream() as stream:
        async for value in stream:
            received += 1
            await stream.send(value)
    return received


async def fail(msg: str = 'bench') -> None:
    """Raise: the cost of a remote error reaching the caller."""
    raise ValueError(msg)


def echo_sync(x: Any = None) -> Any:
    """:func:`echo` as a plain function, for the pools that take no async ones."""
    return x


def count_primes(start: int, stop: int) -> int:
    """The primes in ``[start, stop)`` by trial division: pure CPU work."""
    found = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, math.isqrt(n) + 1)):
            found += 1
    return found


def sleep_sync(seconds: float) -> None:
    """Hold a worker for a moment (warm-ups: makes every worker of a pool start)."""
    time.sleep(seconds)


def ignore_sigint() -> None:
    """Pool worker initializer: a terminal's Ctrl-C is the benchmark's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
