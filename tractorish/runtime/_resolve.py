"""How a ``cmd`` becomes a function to run: loading modules, and what kind
of call each function is.

Nothing here runs per message: the runtime resolves each ``(ns, func)``
once and keeps the answer.
"""
from __future__ import annotations

import dis
import importlib
import importlib.util
import inspect
import sys
import types
from types import ModuleType
from typing import Any, Optional

from .. import msg
from .._exceptions import ModuleNotExposed
from ._context import CONTEXT_ATTR
from ._stream import STREAM_ATTR


def load_main_module(main_ref: Optional[dict]) -> ModuleType:
    """Load the root program's main module without running it as __main__."""
    if not main_ref:
        raise ModuleNotExposed('the parent program has no importable main module')
    if msg.MAIN_ALIAS in sys.modules:
        return sys.modules[msg.MAIN_ALIAS]
    spec_name = main_ref.get('spec')
    if spec_name:
        module = importlib.import_module(spec_name)
        sys.modules[msg.MAIN_ALIAS] = module
        return module
    path = main_ref['path']
    spec = importlib.util.spec_from_file_location(msg.MAIN_ALIAS, path)
    if spec is None or spec.loader is None:
        raise ModuleNotExposed(f'cannot load the main module from {path!r}')
    module = importlib.util.module_from_spec(spec)
    sys.modules[msg.MAIN_ALIAS] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as err:
        del sys.modules[msg.MAIN_ALIAS]
        if isinstance(err, RuntimeError) and 'from inside a run()' in str(err):
            raise RuntimeError(
                f"{path} starts trio when it is imported: guard your module's "
                f"trio.run(...) with `if __name__ == '__main__':` (each actor "
                f"loads this module to find its functions, which runs its "
                f"top-level code)") from None
        raise
    return module


# opcodes through which a coroutine can suspend (await, async for/with, yield)
_SUSPENDING_OPS = frozenset({
    'YIELD_VALUE', 'YIELD_FROM', 'SEND', 'GET_AWAITABLE', 'BEFORE_ASYNC_WITH',
    'GET_AITER', 'GET_ANEXT', 'END_ASYNC_FOR'})


def never_suspends(fn: Any) -> bool:
    """True if ``fn`` is an ``async def`` function whose body has no
    ``await``, ``async for`` or ``async with``.

    Its coroutine runs to completion on the first step, so the reader can
    run it in place instead of starting a task: no other task could have
    run in between anyway, and nothing can cancel it.
    """
    if type(fn) is not types.FunctionType:
        return False
    code = fn.__code__
    if not code.co_flags & inspect.CO_COROUTINE:
        return False
    return not any(ins.opname in _SUSPENDING_OPS for ins in dis.get_instructions(code))


def functype_of(fn: Any) -> str:
    """How a function is called remotely: a wire functype, ``'syncfunc'``
    for a plain function (an ``asyncfunc`` on the wire, run in a thread) or
    ``'legacystream'`` for a ``@stream`` function (an ``asyncgen``)."""
    if getattr(fn, CONTEXT_ATTR, False):
        return 'context'
    if getattr(fn, STREAM_ATTR, None):
        return 'legacystream'  # an asyncgen on the wire
    if inspect.isasyncgenfunction(fn):
        return 'asyncgen'
    if inspect.iscoroutinefunction(fn):
        return 'asyncfunc'
    if inspect.isfunction(fn):
        return 'syncfunc'
    raise TypeError(f'{fn!r} is not a function, async generator or context')


def shortened_error(payload: dict, err: Exception) -> dict:
    """An error payload cut down to fit, saying why."""
    return {**payload, 'message': payload.get('message', '')[:2000],
            'tb_str': payload.get('tb_str', '')[-8000:] +
            f'\n(the full error could not be sent: {err})'}

