"""Functions the stats tests run inside actors: a known workload."""
from __future__ import annotations

import os

import trio

import tractorish


async def echo(x):
    return x


async def echo_later(x):  # served in a task of its own (it awaits)
    await trio.sleep(0)
    return x


async def fail_now():  # answered in place: no await
    raise ValueError('fails at once')


async def fail_later():
    await trio.sleep(0)
    raise ValueError('fails after a checkpoint')


async def block():
    await trio.sleep_forever()


async def count(n: int):
    for i in range(n):
        yield i


@tractorish.context
async def send_three(ctx: tractorish.Context) -> None:
    """Sends 3 values once the caller says go: with a window of 2 (granted
    before 'go' arrives), the third send waits for credit exactly once."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        await stream.receive()
        for i in range(3):
            await stream.send(i)


@tractorish.context
async def hold(ctx: tractorish.Context) -> None:
    await ctx.started()
    await trio.sleep_forever()


async def getpid() -> int:
    return os.getpid()


async def local_stats() -> dict:
    return tractorish.current_actor().stats()


async def imported(name: str) -> bool:
    import sys
    return name in sys.modules
