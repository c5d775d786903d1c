"""Process backends: start a child actor, hand it its bootstrap, reap it."""
from ._trio import ChildProcess as ChildProcess
from ._trio import main_module_ref as main_module_ref
from ._trio import spawn_actor as spawn_actor
