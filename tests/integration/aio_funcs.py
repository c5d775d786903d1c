"""Functions the asyncio-main tests (``test_asyncio_main.py``) run inside actors.

Kept apart from the test module so that children import only this (and
not pytest) when they expose it.
"""
from __future__ import annotations

import os
import threading

import trio

import tractorish

_cancelled = 0


async def sleep_forever() -> None:
    """Sleep until cancelled; count the cancellations (see :func:`cancelled_count`)."""
    global _cancelled
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        _cancelled += 1
        raise


async def cancelled_count() -> int:
    return _cancelled


async def exit_soon(seconds: float, code: int = 3) -> None:
    """Return now; end this actor's process without any cleanup ``seconds`` later."""
    threading.Timer(seconds, os._exit, (code,)).start()


@tractorish.context
async def fail_after_started(ctx: tractorish.Context) -> None:
    await ctx.started('ready')
    await trio.sleep(0.1)
    raise KeyError('context failed')


_context_ends: list = []


@tractorish.context
async def consume(ctx: tractorish.Context) -> None:
    """Read the stream until the caller stops; record how that ended."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        try:
            async for _ in stream:
                pass
        except tractorish.RemoteActorError as err:
            _context_ends.append(f'caller failed: {err.type_str}')
            raise
        except trio.Cancelled:
            _context_ends.append('cancelled')
            raise


async def context_ends() -> list:
    return list(_context_ends)


async def sleep(seconds: float) -> float:
    await trio.sleep(seconds)
    return seconds
