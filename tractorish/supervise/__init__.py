"""Actor trees: the root actor and actor nurseries (one cancels all)."""
from ._nursery import ActorNursery as ActorNursery
from ._nursery import open_nursery as open_nursery
from ._root import DEFAULT_REGISTRY_ADDR as DEFAULT_REGISTRY_ADDR
from ._root import default_registry_addrs as default_registry_addrs
from ._root import open_root_actor as open_root_actor
from ._daemon import open_actor_cluster as open_actor_cluster
from ._daemon import run_daemon as run_daemon
