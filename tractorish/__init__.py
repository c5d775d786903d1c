"""tractorish: a structured-concurrency actor runtime built on trio.

Actors are processes spawned under actor nurseries, supervised like trio
tasks, talking one multiplexed msgpack protocol. Everything public is
re-exported here; nothing a user needs lives in an underscore module.
"""
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import List as _List

from ._compat import BaseExceptionGroup as BaseExceptionGroup
from ._exceptions import ActorCrashed as ActorCrashed
from ._exceptions import ActorFailure as ActorFailure
from ._exceptions import ActorTooSlowError as ActorTooSlowError
from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import ContextCancelled as ContextCancelled
from ._exceptions import InternalError as InternalError
from ._exceptions import MessagingError as MessagingError
from ._exceptions import ModuleNotExposed as ModuleNotExposed
from ._exceptions import MsgTypeError as MsgTypeError
from ._exceptions import NoResult as NoResult
from ._exceptions import ProtocolError as ProtocolError
from ._exceptions import RemoteActorError as RemoteActorError
from ._exceptions import RuntimeFailure as RuntimeFailure
from ._exceptions import SecretError as SecretError
from ._exceptions import StreamOverrun as StreamOverrun
from ._exceptions import TractorishError as TractorishError
from ._exceptions import TransportClosed as TransportClosed
from .ipc import Channel as Channel
from .runtime import Actor as Actor
from .runtime import BroadcastReceiver as BroadcastReceiver
from .runtime import Context as Context
from .runtime import MsgStream as MsgStream
from .runtime import NoRuntime as NoRuntime
from .runtime import Portal as Portal
from .runtime import RuntimeConfig as RuntimeConfig
from .runtime import RuntimeVars as RuntimeVars
from .runtime import context as context
from .runtime import current_actor as current_actor
from .runtime import current_ipc_ctx as current_ipc_ctx
from .runtime import debug_mode as debug_mode
from .runtime import get_runtime_vars as get_runtime_vars
from .runtime import is_root_process as is_root_process
from .runtime import stream as stream
from .devx import _observe as _observe
from .discovery import discovery_service as _discovery_service
from .discovery import register_announced as _register_announced
from .runtime._services import install_services as _install_services

# What every actor's runtime runs besides serving calls, from the layers
# above it (the runtime imports no layer above it): its part in discovery
# (registering, and registering the children that announce themselves),
# then its start-up hook for being seen (process title, metrics, tracing;
# nothing is imported for those unless they are asked for).
_install_services(startup=[_discovery_service, _observe.observe],
                  channel_hooks=[_register_announced])

__version__ = '0.1.0'

# Imported on first use: every process (each spawned actor too) imports
# this package, and most actors spawn nothing (supervise, and with it the
# spawn backends), look no other actor up (discovery's client) and run no
# pools or supervisors (workers).
_LAZY = {
    'find_actor': 'discovery', 'find_actors': 'discovery', 'get_registry': 'discovery',
    'get_arbiter': 'discovery', 'list_actors': 'discovery', 'query_actor': 'discovery',
    'wait_for_actor': 'discovery', 'wait_for_actors': 'discovery',
    'ActorNursery': 'supervise', 'open_nursery': 'supervise',
    'open_root_actor': 'supervise', 'open_actor_cluster': 'supervise',
    'run_daemon': 'supervise',
    'ActorPool': 'workers', 'Supervisor': 'workers', 'SupervisorError': 'workers',
    'open_actor_pool': 'workers', 'open_supervisor': 'workers',
    'pause': 'devx', 'pause_from_sync': 'devx', 'post_mortem': 'devx',
    'breakpoint': 'devx',
    'open_job_queue': 'jobs', 'JobQueue': 'jobs', 'Job': 'jobs', 'JobError': 'jobs',
    'JobConflict': 'jobs', 'JobNotFound': 'jobs', 'JobStoreError': 'jobs',
    'open_entity_cluster': 'entities', 'connect_entity_cluster': 'entities',
    'EntityCluster': 'entities', 'EntityClient': 'entities', 'EntityError': 'entities',
    'EntityTimeout': 'entities', 'EntityOwnerLost': 'entities',
}
# a name that is another's under a second name
_ALIASES = {'get_arbiter': 'get_registry'}  # tractor's older name
# tractor's submodules, imported on first use as attributes too
_LAZY_MODULES = frozenset({'asyncio', 'devx', 'log', 'to_asyncio', 'trionics'})

if _TYPE_CHECKING:
    from .discovery import find_actor as find_actor
    from .discovery import find_actors as find_actors
    from .discovery import get_registry as get_registry
    from .discovery import get_registry as get_arbiter
    from .discovery import list_actors as list_actors
    from .discovery import query_actor as query_actor
    from .discovery import wait_for_actor as wait_for_actor
    from .discovery import wait_for_actors as wait_for_actors
    from .supervise import ActorNursery as ActorNursery
    from .supervise import open_nursery as open_nursery
    from .supervise import open_root_actor as open_root_actor
    from .supervise import open_actor_cluster as open_actor_cluster
    from .supervise import run_daemon as run_daemon
    from .devx import breakpoint as breakpoint
    from .devx import pause as pause
    from .devx import pause_from_sync as pause_from_sync
    from .devx import post_mortem as post_mortem
    from .workers import ActorPool as ActorPool
    from .workers import Supervisor as Supervisor
    from .workers import SupervisorError as SupervisorError
    from .workers import open_actor_pool as open_actor_pool
    from .workers import open_supervisor as open_supervisor
    from .jobs import Job as Job
    from .jobs import JobConflict as JobConflict
    from .jobs import JobError as JobError
    from .jobs import JobNotFound as JobNotFound
    from .jobs import JobQueue as JobQueue
    from .jobs import JobStoreError as JobStoreError
    from .jobs import open_job_queue as open_job_queue
    from .entities import EntityClient as EntityClient
    from .entities import EntityCluster as EntityCluster
    from .entities import EntityError as EntityError
    from .entities import EntityOwnerLost as EntityOwnerLost
    from .entities import EntityTimeout as EntityTimeout
    from .entities import connect_entity_cluster as connect_entity_cluster
    from .entities import open_entity_cluster as open_entity_cluster


__all__ = [
    'Actor', 'ActorCrashed', 'ActorFailure', 'ActorTooSlowError', 'AuthenticationError',
    'BaseExceptionGroup', 'BroadcastReceiver', 'Channel', 'Context', 'ContextCancelled',
    'InternalError', 'MessagingError', 'ModuleNotExposed', 'MsgStream', 'MsgTypeError',
    'NoResult', 'NoRuntime', 'Portal', 'ProtocolError', 'RemoteActorError',
    'RuntimeConfig', 'RuntimeFailure', 'RuntimeVars', 'SecretError', 'StreamOverrun',
    'TractorishError', 'TransportClosed', 'context', 'current_actor', 'current_ipc_ctx',
    'debug_mode', 'get_runtime_vars', 'is_root_process', 'stream',
    *_LAZY,  # a star import loads them
]


def __getattr__(name: str) -> _Any:
    import importlib
    if name in _LAZY:
        value = getattr(importlib.import_module(f'.{_LAZY[name]}', __name__),
                        _ALIASES.get(name, name))
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f'.{name}', __name__)
    else:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    globals()[name] = value
    return value


def __dir__() -> _List[str]:
    return sorted(set(globals()) | set(_LAZY) | _LAZY_MODULES)
