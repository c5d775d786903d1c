"""tractor's ``to_asyncio``: asyncio inside actors. Not in tractorish yet.

Each name is here so that a tractor program fails where it uses one, with
an error that says what to do instead (``asyncio.run`` in a thread of its
own, from ``trio.to_thread.run_sync``), not at import.
"""
from __future__ import annotations

from typing import Any

from .supervise._tractor_kwargs import NO_ASYNCIO


async def run_task(func: Any, **kwargs: Any) -> Any:
    """Run an asyncio task from trio: not in tractorish yet."""
    raise NotImplementedError(NO_ASYNCIO)


def open_channel_from(target: Any, **kwargs: Any) -> Any:
    """A channel to an asyncio task: not in tractorish yet."""
    raise NotImplementedError(NO_ASYNCIO)


def run_as_asyncio_guest(trio_main: Any, **kwargs: Any) -> Any:
    """trio as a guest of asyncio: not in tractorish yet."""
    raise NotImplementedError(NO_ASYNCIO)


class LinkedTaskChannel:
    """The channel between a trio and an asyncio task: not in tractorish yet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(NO_ASYNCIO)


class AsyncioCancelled(Exception):
    """tractor's: an asyncio task was cancelled (never raised here)."""


class AsyncioTaskExited(Exception):
    """tractor's: an asyncio task ended early (never raised here)."""


class TrioCancelled(Exception):
    """tractor's: the trio side was cancelled (never raised here)."""


class TrioTaskExited(AsyncioCancelled):
    """tractor's: the trio side ended early (never raised here)."""


__all__ = ['AsyncioCancelled', 'AsyncioTaskExited', 'LinkedTaskChannel', 'TrioCancelled',
           'TrioTaskExited', 'open_channel_from', 'run_as_asyncio_guest', 'run_task']
