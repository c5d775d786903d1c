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


# --- asyncio in an actor (the 'asyncio' group; the actor has infect_asyncio) ---

async def aio_noop() -> None:
    """An asyncio coroutine that returns at once."""
    return None


async def aio_counter(chan: Any, n: int) -> None:
    """asyncio side of a channel: send ``0 .. n-1`` to trio, waiting when full."""
    import asyncio

    import trio
    chan.started_nowait(n)
    for i in range(n):
        while True:
            try:
                chan.send_nowait(i)
                break
            except trio.WouldBlock:
                await asyncio.sleep(0)


async def time_run_task(n: int) -> float:
    """Seconds per ``to_asyncio.run_task`` round trip, over ``n``."""
    import time

    from tractorish import to_asyncio
    start = time.perf_counter()
    for _ in range(n):
        await to_asyncio.run_task(aio_noop)
    return (time.perf_counter() - start) / n


async def time_channel(n: int) -> float:
    """Values per second from an asyncio task over ``open_channel_from``."""
    import time

    from tractorish import to_asyncio
    start = time.perf_counter()
    async with to_asyncio.open_channel_from(aio_counter, n=n) as (_, chan):
        got = 0
        async for value in chan:
            if value != got:
                raise RuntimeError(f'channel: expected {got}, got {value}')
            got += 1
    if got != n:
        raise RuntimeError(f'channel: {got} values of {n}')
    return n / (time.perf_counter() - start)


async def time_trio_channel(n: int) -> float:
    """Values per second through a trio memory channel between two tasks."""
    import time

    import trio
    send, receive = trio.open_memory_channel[int](256)

    async def produce() -> None:
        async with send:
            for i in range(n):
                await send.send(i)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        got = 0
        async with receive:
            async for value in receive:
                if value != got:
                    raise RuntimeError(f'trio channel: expected {got}, got {value}')
                got += 1
    return n / (time.perf_counter() - start)


async def time_trio_call(n: int) -> float:
    """Seconds per plain trio call of an async function that yields once."""
    import time

    import trio

    async def noop() -> None:
        await trio.lowlevel.checkpoint()
    start = time.perf_counter()
    for _ in range(n):
        await noop()
    return (time.perf_counter() - start) / n


# --- an entity type (the 'entities' group: open_entity_cluster) ---

class BenchEntity:
    """A keyed entity: ``echo`` leaves its state alone, ``incr`` changes it
    (so that, with a store, every message saves a new state)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.count = 0

    async def echo(self, x: Any = None) -> Any:
        return x

    async def incr(self, x: Any = None) -> Any:
        self.count += 1
        return x
