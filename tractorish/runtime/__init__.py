"""One process's runtime: ``Actor`` (callee side) and ``Portal`` (caller side)."""
from ._actor import Actor as Actor
from ._actor import load_main_module as load_main_module
from ._actor import new_uid_tail as new_uid_tail
from ._config import RuntimeConfig as RuntimeConfig
from ._context import CONTEXT_ATTR as CONTEXT_ATTR
from ._context import Context as Context
from ._context import context as context
from ._stream import BroadcastReceiver as BroadcastReceiver
from ._stream import MsgStream as MsgStream
from ._portal import Portal as Portal
from ._portal import function_ref as function_ref
from ._state import NoRuntime as NoRuntime
from ._state import current_actor as current_actor
from ._state import is_root_process as is_root_process
from ._state import set_current_actor as set_current_actor
