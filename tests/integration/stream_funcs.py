"""Generators and contexts the streaming tests run inside actors."""
from __future__ import annotations

import os
from pathlib import Path

import trio

import tractorish

_events: list = []


async def count(n: int):
    for i in range(n):
        yield i


async def count_then_fail(n: int):
    for i in range(n):
        yield i
    raise ValueError(f'failed after {n}')


async def endless_with_cleanup(marker: str):
    i = 0
    try:
        while True:
            yield i
            i += 1
            await trio.sleep(0)
    finally:
        _events.append(f'cleaned up after {i}')
        Path(marker).write_text(f'cleaned up after {i}')


async def events() -> list:
    return list(_events)


async def not_a_generator() -> int:
    return 1


async def payloads(n: int, size: int):
    blob = b'x' * size
    for i in range(n):
        yield [i, blob]


async def accumulator(start: int = 0):
    """A two-way generator: adds what it is sent to a running total."""
    total = start
    while True:
        sent = yield total
        if sent is None:
            continue
        total += sent


async def fast_producer(n: int):
    blob = b'y' * 1024
    for i in range(n):
        yield (i, blob)


async def rss() -> int:
    import psutil
    return psutil.Process().memory_info().rss


@tractorish.context
async def echo_ctx(ctx: tractorish.Context, greeting: str):
    await ctx.started(greeting)
    received = 0
    async with ctx.open_stream() as stream:
        async for value in stream:
            received += 1
            await stream.send(value)
    return received


@tractorish.context
async def just_return(ctx: tractorish.Context, value):
    await ctx.started('ok')
    return value


@tractorish.context
async def started_twice(ctx: tractorish.Context):
    await ctx.started(1)
    await ctx.started(2)


@tractorish.context
async def never_started(ctx: tractorish.Context):
    return 'forgot'


@tractorish.context
async def sleep_in_ctx(ctx: tractorish.Context, marker: str = ''):
    await ctx.started(os.getpid())
    try:
        await trio.sleep_forever()
    finally:
        if marker:
            Path(marker).write_text('cancelled')


@tractorish.context
async def fail_in_ctx(ctx: tractorish.Context, after: int):
    await ctx.started('ready')
    async with ctx.open_stream() as stream:
        for i in range(after):
            await stream.send(i)
        raise KeyError('callee failed mid-stream')


@tractorish.context
async def send_n_then_close(ctx: tractorish.Context, n: int):
    await ctx.started(None)
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
    return 'closed'


@tractorish.context
async def receive_until_error(ctx: tractorish.Context, marker: str):
    await ctx.started(None)
    async with ctx.open_stream() as stream:
        try:
            async for _ in stream:
                pass
        except tractorish.RemoteActorError as err:
            Path(marker).write_text(f'{err.type_str}: {err.message}')
            raise


@tractorish.context
async def cancel_myself(ctx: tractorish.Context):
    await ctx.started(None)
    await ctx.cancel()
    await trio.sleep_forever()


async def chain_sleep(depth: int, pidfile: str, marker_dir: str):
    """A chain of actors, each blocked in a call to the next; the last sleeps."""
    with open(pidfile, 'a') as f:
        f.write(f'{os.getpid()}\n')
    me = tractorish.current_actor().name
    try:
        if depth == 0:
            await trio.sleep_forever()
        async with tractorish.open_nursery() as an:
            portal = await an.start_actor(f'chain-{depth - 1}', enable_modules=[__name__])
            await portal.run(chain_sleep, depth=depth - 1, pidfile=pidfile,
                             marker_dir=marker_dir)
    finally:
        Path(marker_dir, me).write_text('cancelled')


async def echo_sent():
    """Yields how many values it made before, and what the last yield got."""
    made, sent = 0, None
    while True:
        sent = yield (made, sent)
        made += 1


@tractorish.context
async def fail_soon(ctx: tractorish.Context, after: float):
    await ctx.started('ready')
    await trio.sleep(after)
    raise KeyError('callee failed on its own')


@tractorish.context
async def count_forever(ctx: tractorish.Context):
    await ctx.started(None)
    async with ctx.open_stream() as stream:
        i = 0
        while True:
            await stream.send(i)
            i += 1
            await trio.sleep(0.01)


async def count_unevenly(n: int, delay: float):
    """0 .. n-1, each after up to ``delay`` seconds."""
    import random
    for i in range(n):
        await trio.sleep(random.random() * delay)
        yield i
