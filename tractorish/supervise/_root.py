"""``open_root_actor``: the runtime of the process that starts a tree."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import AsyncIterator, Optional, Sequence

from .._log import configure_logging
from ..ipc import Address, normalize_addr, parse_addr
from ..runtime import Actor, RuntimeConfig, current_actor, set_current_actor

REGISTRY_ENV = 'TRACTORISH_REGISTRY'
DEFAULT_REGISTRY_ADDR: Address = ('127.0.0.1', 1616)


def default_registry_addrs() -> list:
    """``$TRACTORISH_REGISTRY`` (``host:port``) or ``127.0.0.1:1616``."""
    env = os.environ.get(REGISTRY_ENV)
    return [parse_addr(env)] if env else [DEFAULT_REGISTRY_ADDR]


@asynccontextmanager
async def open_root_actor(name: str = 'root', *,
                          registry_addrs: Optional[Sequence[Address]] = None,
                          enable_modules: Sequence[str] = (),
                          loglevel: Optional[str] = None,
                          config: Optional[RuntimeConfig] = None,
                          start_method: Optional[str] = None,
                          debug_mode: bool = False,
                          ) -> AsyncIterator[Actor]:
    """Run this process as the root actor of a tree for the block's duration.

    ``enable_modules`` are the modules other actors may call here;
    ``config`` groups the runtime settings (transport, secret, timeouts),
    which every actor of the tree inherits; ``start_method`` (tractor's
    name) overrides its spawn backend. On exit, remote tasks running
    here are cancelled and every channel is closed. Raises ``RuntimeError``
    if this process already runs an actor.
    """
    if current_actor(err_on_no_runtime=False) is not None:
        raise RuntimeError('this process already runs a tractorish actor; '
                           'use open_nursery() inside it instead')
    if debug_mode:
        raise NotImplementedError('debug_mode (a multi-process debugger) is not '
                                  'available in tractorish')
    config = config or RuntimeConfig()
    if loglevel is not None:
        config.loglevel = loglevel
    if start_method is not None:
        config = config.replace(start_method=start_method)
    configure_logging(config.loglevel, name)
    addrs = [normalize_addr(a) for a in registry_addrs] if registry_addrs \
        else default_registry_addrs()
    actor = Actor(name, enable_modules=enable_modules, config=config,
                  is_root=True, registry_addrs=addrs)
    actor.load_modules()
    set_current_actor(actor)
    try:
        async with actor.open_runtime():
            yield actor
    finally:
        set_current_actor(None)
