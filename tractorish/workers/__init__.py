"""Higher layers: supervisors with restart strategies, and worker pools."""
from ._pool import ActorPool as ActorPool
from ._pool import open_actor_pool as open_actor_pool
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorError as SupervisorError
from ._supervisor import open_supervisor as open_supervisor
