"""``open_root_actor``: the runtime of the process that starts a tree."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional, Sequence

from .._exceptions import RuntimeFailure
from .._log import configure_logging
from ..ipc import Address, parse_addr
from ..runtime import Actor, RuntimeConfig, current_actor, set_current_actor
from ._tractor_kwargs import debugger_available, root_options

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
                          **tractor_kwargs: Any) -> AsyncIterator[Actor]:
    """Run this process as the root actor of a tree for the block's duration.

    ``enable_modules`` are the modules other actors may call here;
    ``config`` groups the runtime settings (transport, secret, timeouts),
    which every actor of the tree inherits; ``start_method`` overrides its
    spawn backend (``'forkserver'`` or ``'trio'``, or tractor's
    ``'mp_forkserver'`` and ``'mp_spawn'``). On exit, remote tasks running
    here are cancelled and every channel is closed. Raises
    :class:`RuntimeFailure` if this process already runs an actor.

    tractor's keywords work too: ``arbiter_addr`` / ``reg_addr`` (one
    registry address), ``enable_transports=['tcp' | 'uds']``,
    ``rpc_module_paths``, ``enable_stack_on_sig`` (SIGUSR1 prints every
    actor's task tree), ``ensure_registry`` (this root must become the
    registrar), ``hide_tb``, ``maybe_enable_greenback`` (always on in debug
    mode); ``infect_asyncio=True`` raises ``NotImplementedError`` saying what
    to do instead.

    ``debug_mode=True`` turns on the tree debugger in every actor of the
    tree: an error raised in any of them, or a ``breakpoint()``, stops in a
    pdb REPL on this program's terminal, one at a time (docs/debugging.md).
    """
    __tracebackhide__ = tractor_kwargs.get('hide_tb', True)
    if current_actor(err_on_no_runtime=False) is not None:
        raise RuntimeFailure('this process already runs a tractorish actor; '
                             'use open_nursery() inside it instead')
    config = config or RuntimeConfig()
    if loglevel is not None:
        config.loglevel = loglevel
    if start_method is not None:
        config = config.replace(start_method=start_method)
    if debug_mode:
        config = config.replace(debug_mode=True)
    config, addrs, modules = root_options(config, registry_addrs, enable_modules,
                                          tractor_kwargs)
    if config.debug_mode:  # however it was set
        debugger_available()
    configure_logging(config.loglevel, name)
    actor = Actor(name, enable_modules=modules, config=config,
                  is_root=True, registry_addrs=addrs or default_registry_addrs())
    actor.load_modules()
    set_current_actor(actor)
    try:
        async with actor.open_runtime():
            try:
                yield actor
            except BaseException as err:
                if actor.debugger is not None:  # the root's own crash: a REPL first
                    await actor.debugger.post_mortem(err)
                raise
    finally:
        set_current_actor(None)
