"""Discovery: the registrar, and finding actors by name."""
from ..runtime import _actor as _runtime_actor
from ._client import find_actor as find_actor
from ._client import find_actors as find_actors
from ._client import get_registry as get_registry
from ._client import list_actors as list_actors
from ._client import query_actor as query_actor
from ._client import wait_for_actor as wait_for_actor
from ._client import wait_for_actors as wait_for_actors
from ._service import discovery_service, register_announced

# every actor's runtime takes part in discovery (see docs/discovery.md)
if discovery_service not in _runtime_actor.STARTUP_SERVICES:
    _runtime_actor.STARTUP_SERVICES.append(discovery_service)
if register_announced not in _runtime_actor.CHANNEL_HOOKS:
    _runtime_actor.CHANNEL_HOOKS.append(register_announced)
