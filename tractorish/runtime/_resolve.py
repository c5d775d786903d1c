"""How a ``cmd`` becomes a function to run: loading modules, and what kind
of call each function is.

Nothing here runs per message: the runtime resolves each ``(ns, func)``
once and keeps the answer.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import linecache
import sys
import textwrap
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


# syntax through which a coroutine's own body can suspend
_SUSPENDING_NODES = (ast.Await, ast.AsyncFor, ast.AsyncWith)
# bodies that belong to another function: what they await is not ours
_OTHER_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def never_suspends(fn: Any) -> bool:
    """True if ``fn`` is an ``async def`` function whose body has no
    ``await``, ``async for`` or ``async with`` (nor an async comprehension).

    Its coroutine runs to completion on the first step, so the reader can
    run it in place instead of starting a task: no other task could have
    run in between anyway, and nothing can cancel it. Read from the
    function's source with :mod:`ast` (the language's own syntax, the same
    on every Python): a function whose source cannot be found (made with
    ``exec``, say) is taken to suspend. Called once per function.
    """
    if type(fn) is not types.FunctionType or not inspect.iscoroutinefunction(fn):
        return False
    # the code object, not the function: a decorated function's
    # __wrapped__ is another function, with a body of its own
    code = fn.__code__
    tree = _parse_lines(code) or _parse_block(code)
    if tree is None:
        return False
    node = next((n for n in tree.body if isinstance(n, ast.AsyncFunctionDef)
                 and n.name == fn.__code__.co_name), None)
    if node is None:  # not where the code object said: do not guess
        return False
    return not _suspends(node.body)


def _parse_lines(code: types.CodeType) -> Optional[ast.Module]:
    """The function's source parsed, from its first line to the last its
    code spans; None if that does not parse.

    Cheaper than ``inspect.getsource``, whose tokenizer costs a fresh
    actor's first read more than a call itself. Where the code tells no
    end positions (before 3.11), the last line is the last one holding an
    instruction: what that leaves out holds none (closing brackets, the
    rest of a string), so it cannot suspend, and a statement cut short
    does not parse (then ``inspect`` reads the whole)."""
    last = _last_line(code)
    if not last:
        return None
    lines = linecache.getlines(code.co_filename)[code.co_firstlineno - 1:last]
    try:
        return ast.parse(textwrap.dedent(''.join(lines)))
    except (SyntaxError, ValueError):  # (a body that ends in a nested def, say)
        return None


def _last_line(code: types.CodeType) -> int:
    """The last source line ``code`` spans, as far as its instructions
    tell (0 if they tell nothing)."""
    positions = getattr(code, 'co_positions', None)
    if positions is not None:
        return max((end for _, end, _, _ in positions() if end is not None), default=0)
    return max((line for _, _, line in code.co_lines() if line is not None), default=0)


def _parse_block(code: types.CodeType) -> Optional[ast.Module]:
    """The function's source as ``inspect`` finds it, parsed; None if it
    has none (made with ``exec``, say)."""
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(code)))
    except (OSError, TypeError, SyntaxError):
        return None


def _suspends(nodes: Any) -> bool:
    """True if any of ``nodes`` (statements of one function body) can
    suspend that function, looking into no nested function or class."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, _SUSPENDING_NODES):
            return True
        if isinstance(node, ast.comprehension) and node.is_async:
            return True
        if isinstance(node, _OTHER_SCOPES):
            # only what runs at definition here: defaults and decorators
            todo.extend(getattr(node, 'decorator_list', ()))
            args = getattr(node, 'args', None)
            if args is not None:
                todo.extend(args.defaults)
                todo.extend(d for d in args.kw_defaults if d is not None)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return False


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

