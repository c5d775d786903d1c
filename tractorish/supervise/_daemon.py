"""tractor's two conveniences over the tree: a cluster of workers, a daemon root."""
from __future__ import annotations

import importlib
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence

import trio

from ..runtime import Portal, current_actor
from ._nursery import open_nursery
from ._root import open_root_actor


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        return os.cpu_count() or 1


@asynccontextmanager
async def open_actor_cluster(modules: Sequence[str], count: Optional[int] = None,
                             names: Optional[List[str]] = None, hard_kill: bool = False,
                             **runtime_kwargs: Any) -> AsyncIterator[Dict[str, Portal]]:
    """Start ``count`` daemon actors (one per usable CPU by default) exposing
    ``modules``; yield their portals by actor name.

    The actors are named ``<this actor's name>.<name>``, ``names`` being
    ``worker_0``, ``worker_1``... unless given (as many as ``count``). They
    start concurrently; leaving the block cancels them all (SIGKILL at once
    with ``hard_kill``), an error in it too. ``runtime_kwargs`` go to
    :func:`open_nursery` (and to the root actor, if this opens it).
    """
    if isinstance(modules, str):
        raise TypeError('modules must be a list of module names, not a string')
    count = _cpu_count() if count is None else count
    names = names if names is not None else [f'worker_{i}' for i in range(count)]
    if len(names) != count:
        raise ValueError(f'{len(names)} names given for {count} actors')
    portals: Dict[str, Portal] = {}
    async with open_nursery(**runtime_kwargs) as an:
        async def start(name: str) -> None:
            full = f'{current_actor().name}.{name}'
            portals[full] = await an.start_actor(full, enable_modules=list(modules))

        async with trio.open_nursery() as starter:
            for name in names:
                starter.start_soon(start, name)
        prefix = current_actor().name
        yield {f'{prefix}.{name}': portals[f'{prefix}.{name}'] for name in names}
        await an.cancel(hard_kill=hard_kill)


def run_daemon(enable_modules: Sequence[str], name: str = 'root',
               registry_addrs: Optional[Sequence[Any]] = None,
               start_method: Optional[str] = None, debug_mode: bool = False,
               **kwargs: Any) -> None:
    """Run this process as a root actor exposing ``enable_modules``, serving
    calls until it is cancelled (Ctrl-C, or a peer's ``cancel_actor``).

    Blocks: it runs ``trio.run`` itself. The modules are imported first,
    here, so a missing one fails at once.
    """
    if isinstance(enable_modules, str):
        raise TypeError('enable_modules must be a list of module names, not a string')
    for module in enable_modules:
        importlib.import_module(module)

    async def serve() -> None:
        async with open_root_actor(name, registry_addrs=registry_addrs,
                                   enable_modules=list(enable_modules),
                                   start_method=start_method, debug_mode=debug_mode,
                                   **kwargs) as actor:
            await actor.wait_for_shutdown()

    trio.run(serve)
