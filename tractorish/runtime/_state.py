"""Process-wide runtime state: the one actor this process runs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .._exceptions import TractorishError

if TYPE_CHECKING:
    from ._actor import Actor

_current: Optional['Actor'] = None


class NoRuntime(TractorishError, RuntimeError):
    """No actor runtime is running in this process."""


def current_actor(err_on_no_runtime: bool = True) -> 'Actor':
    """The actor this process runs; :class:`NoRuntime` if there is none."""
    if _current is None and err_on_no_runtime:
        raise NoRuntime('no tractorish runtime here: use open_root_actor() '
                        'or open_nursery() first')
    return _current  # type: ignore[return-value]


def is_root_process() -> bool:
    """True in the process that opened the root actor (or with no runtime)."""
    return _current is None or _current.is_root


def set_current_actor(actor: Optional['Actor']) -> Optional['Actor']:
    global _current
    previous, _current = _current, actor
    return previous
