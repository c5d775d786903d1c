"""Process backends: start a child actor, hand it its bootstrap, reap it."""
from ._child_process import ChildProcess as ChildProcess
from ._spawn import SpawnStatistics as SpawnStatistics
from ._spawn import main_module_ref as main_module_ref
from ._spawn import spawn_actor as spawn_actor
from ._spawn import spawn_statistics as spawn_statistics
