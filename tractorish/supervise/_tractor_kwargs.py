"""tractor's keywords for starting a tree or an actor, translated.

tractor programs pass keywords that have another name here, or a
``RuntimeConfig`` setting, or no counterpart at all. This module turns the
first two into ours and refuses the rest at the call with an error that
says what to use instead; nothing is accepted and then ignored, except
where there is nothing to do: ``hide_tb`` affects pytest's tracebacks
only, ``debug_filter`` and ``maybe_enable_greenback`` serve a debugger
that here always filters its own frames and always uses greenback, and overruns
(``allow_overruns``, ``msg_buffer_size``) cannot happen under flow control.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..ipc import Address, normalize_addr
from ..runtime import RuntimeConfig

TRANSPORTS = ('tcp', 'uds')

# the root's tractor keywords: those with a meaning here, and how to get the others
ROOT_KEYWORDS = frozenset({
    'arbiter_addr', 'reg_addr', 'enable_transports', 'rpc_module_paths', 'hide_tb',
    'enable_stack_on_sig', 'ensure_registry', 'maybe_enable_greenback', 'debug_filter',
    'infect_asyncio'})

NO_ASYNCIO = ('this process already runs trio: it cannot become asyncio\'s guest. '
              'Start a child with start_actor(..., infect_asyncio=True), or open the '
              'tree from an asyncio program with tractorish.asyncio.open_nursery()')


def transport_of(enable_transports: Optional[Sequence[str]]) -> Optional[str]:
    """The one transport ``enable_transports`` names (None: the default)."""
    if enable_transports is None:
        return None
    if isinstance(enable_transports, str) or len(enable_transports) != 1 \
            or enable_transports[0] not in TRANSPORTS:
        raise ValueError(f"enable_transports takes one of {list(TRANSPORTS)} in a list, "
                         f"e.g. ['uds'], not {enable_transports!r}")
    return enable_transports[0]


def modules_with_alias(enable_modules: Sequence[str],
                       rpc_module_paths: Optional[Sequence[str]]) -> List[str]:
    """``enable_modules`` plus tractor's deprecated ``rpc_module_paths``."""
    if isinstance(enable_modules, str) or isinstance(rpc_module_paths, str):
        raise TypeError('enable_modules must be a list of module names, not a string')
    modules = list(enable_modules or ())
    if rpc_module_paths:
        warnings.warn('rpc_module_paths is tractor\'s older name: use enable_modules',
                      DeprecationWarning, stacklevel=4)
        modules += [m for m in rpc_module_paths if m not in modules]
    return modules


def debugger_available() -> None:
    """Raise a clear ``ImportError`` if the tree debugger's one extra
    dependency (greenback, which lets pdb's reads await) is missing."""
    try:
        import greenback  # noqa: F401
    except ImportError:
        raise ImportError("debug_mode=True needs greenback: pip install "
                          "'tractorish[debug]'") from None


def refuse_unavailable(*, infect_asyncio: bool = False,
                       maybe_enable_greenback: bool = False) -> None:
    if maybe_enable_greenback:
        debugger_available()
    if infect_asyncio:
        raise NotImplementedError(NO_ASYNCIO)


def root_options(config: RuntimeConfig, registry_addrs: Optional[Sequence[Any]],
                 enable_modules: Sequence[str],
                 extra: Dict[str, Any]) -> Tuple[RuntimeConfig, Optional[List[Address]],
                                                 List[str]]:
    """Apply tractor's root keywords ``extra`` to our settings.

    Returns the config, the registry addresses (None: the default) and
    the modules to expose; raises ``TypeError`` for a keyword neither
    tractor nor tractorish has.
    """
    unknown = sorted(set(extra) - ROOT_KEYWORDS)
    if unknown:
        raise TypeError(f'open_root_actor() got unexpected keyword(s) {unknown}; '
                        f'settings of ours go in config=RuntimeConfig(...)')
    refuse_unavailable(infect_asyncio=extra.get('infect_asyncio', False),
                       maybe_enable_greenback=extra.get('maybe_enable_greenback', False))
    for alias in ('arbiter_addr', 'reg_addr'):
        if extra.get(alias) is not None:
            if registry_addrs is not None:
                raise TypeError(f'give registry_addrs or {alias}, not both')
            registry_addrs = [extra[alias]]
    addrs = [normalize_addr(a) for a in registry_addrs] if registry_addrs else None
    transport = transport_of(extra.get('enable_transports'))
    changes: Dict[str, Any] = {}
    if transport is not None:
        changes['transport'] = transport
    if extra.get('enable_stack_on_sig'):
        changes['stack_on_signal'] = True
    if extra.get('ensure_registry'):
        changes['discovery'] = 'serve'  # this root must be the registrar
    if changes:
        config = config.replace(**changes)
    modules = modules_with_alias(enable_modules, extra.get('rpc_module_paths'))
    return config, addrs, modules


def child_bind_addrs(bind_addrs: Optional[Sequence[Any]]) -> Optional[List[Address]]:
    if bind_addrs is None:
        return None
    if isinstance(bind_addrs, (str, tuple)) and not isinstance(bind_addrs, list):
        bind_addrs = [bind_addrs]
    return [normalize_addr(a) for a in bind_addrs]


def refuse_proc_kwargs(proc_kwargs: Optional[Dict[str, Any]]) -> None:
    if proc_kwargs:
        raise TypeError(f'proc_kwargs {sorted(proc_kwargs)} configure a '
                        f'multiprocessing or trio process, which tractorish does not '
                        f'use: the environment and working directory are the '
                        f"parent's, and RuntimeConfig holds the runtime's settings")
