"""Discovery: the registrar, and finding actors by name."""
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import List as _List

# every actor's runtime runs these: the package root installs them (see
# runtime/_services.py and docs/discovery.md)
from ._service import discovery_service as discovery_service
from ._service import register_announced as register_announced

# Finding actors (``_client``) is imported on first use: every actor
# imports this package, and most never look another one up.
_CLIENT = frozenset({'find_actor', 'find_actors', 'get_registry', 'list_actors',
                     'query_actor', 'wait_for_actor', 'wait_for_actors'})

if _TYPE_CHECKING:
    from ._client import find_actor as find_actor
    from ._client import find_actors as find_actors
    from ._client import get_registry as get_registry
    from ._client import list_actors as list_actors
    from ._client import query_actor as query_actor
    from ._client import wait_for_actor as wait_for_actor
    from ._client import wait_for_actors as wait_for_actors


# (a star import loads them too)
__all__ = ['discovery_service', 'register_announced', *sorted(_CLIENT)]


def __getattr__(name: str) -> _Any:
    if name not in _CLIENT:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    from . import _client
    value = getattr(_client, name)
    globals()[name] = value
    return value


def __dir__() -> _List[str]:
    return sorted(set(globals()) | _CLIENT)
