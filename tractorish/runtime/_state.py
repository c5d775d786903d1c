"""Process-wide runtime state: the one actor this process runs."""
from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Optional

from .._exceptions import TractorishError

if TYPE_CHECKING:
    from ._actor import Actor

_current: Optional['Actor'] = None

# What the running code serves, for current_ipc_ctx(): a remote task
# (RpcTask), a context (Context), or, in a channel's reader, the ChanState
# whose inline call runs there. Set once per task: nothing per message.
CURRENT_CALL: ContextVar[Any] = ContextVar('tractorish_current_call', default=None)


class NoRuntime(TractorishError, RuntimeError):
    """No actor runtime is running in this process."""


def current_actor(err_on_no_runtime: bool = True) -> 'Actor':
    """The actor this process runs; :class:`NoRuntime` if there is none."""
    if _current is None and err_on_no_runtime:
        raise NoRuntime('no tractorish runtime here: use open_root_actor() '
                        'or open_nursery() first')
    return _current  # type: ignore[return-value]


def is_root_process() -> bool:
    """True in the process that runs the root actor of a tree (as in
    tractor, False while no actor runs here)."""
    return _current is not None and _current.is_root


def set_current_actor(actor: Optional['Actor']) -> Optional['Actor']:
    global _current
    previous, _current = _current, actor
    return previous


class RuntimeVars:
    """tractor's runtime variables of this process, as attributes."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f'RuntimeVars({self.__dict__!r})'


def get_runtime_vars(as_dict: bool = True, clear_values: bool = False) -> Any:
    """tractor's runtime variables: a fresh dict (or :class:`RuntimeVars`).

    ``_is_root``, ``_root_mailbox`` (the root actor's first address),
    ``_root_addrs``, ``_registry_addrs``, ``_enable_tpts`` (this actor's
    transport), ``_debug_mode`` and ``use_greenback`` (the tree debugger's),
    ``_is_infected_aio`` (``Actor.is_infected_aio()``) and ``repl_fixture``
    (False). With ``clear_values``, or no actor running, the values of a
    process that runs none.
    """
    actor = None if clear_values else _current
    values: dict = {
        '_is_root': actor.is_root if actor is not None else False,
        '_root_mailbox': (None, None),
        '_root_addrs': [],
        '_registry_addrs': [],
        '_enable_tpts': ['tcp'],
        '_debug_mode': False,
        '_is_infected_aio': False,
        'use_greenback': False,  # (both True in debug mode)
        'repl_fixture': False,
    }
    if actor is not None:
        values['_root_addrs'] = list(actor.root_addrs)
        if actor.root_addrs:
            values['_root_mailbox'] = actor.root_addrs[0]
        values['_registry_addrs'] = list(actor.registry_addrs)
        values['_enable_tpts'] = [actor.config.transport]
        values['_debug_mode'] = values['use_greenback'] = bool(actor.config.debug_mode)
        values['_is_infected_aio'] = actor.is_infected_aio()
    return values if as_dict else RuntimeVars(**values)


def debug_mode() -> bool:
    """True if this actor's tree runs with the tree debugger (``debug_mode=True``)."""
    return _current is not None and bool(_current.config.debug_mode)
