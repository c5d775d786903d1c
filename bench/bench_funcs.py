"""Functions the benchmark calls inside actors.

This module is imported by the spawned actors (``enable_modules=
['bench_funcs']``), so it must stay importable without side effects.
"""
from __future__ import annotations

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
