"""Around the tree: task dumps on a signal, crash handlers, the tree debugger.

tractor's ``tractor.devx`` names, with tractor's meaning: ``enable_stack_on_sig``
(SIGUSR1 prints every actor's task tree), ``open_crash_handler`` /
``maybe_open_crash_handler`` (a local pdb post-mortem on a crash in this
process), and the tree debugger of ``debug_mode=True`` (``pause``,
``pause_from_sync``, ``breakpoint``, ``post_mortem``,
``maybe_wait_for_debugger``), which is loaded only in debug mode
(``_debug``; docs/debugging.md).
"""
from __future__ import annotations

from contextlib import contextmanager
import sys
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, AbstractSet, Any, Iterator, Optional, Type

import trio

from ..runtime._stackdump import DEFAULT_SIGNAL
# every actor's start-up hooks (process title, metrics, tracing): every
# actor imports this package, so pdb and the rest load on first use only
from . import _observe as _observe

if TYPE_CHECKING:
    import pdb as _pdb


def enable_stack_on_sig(sig: int = DEFAULT_SIGNAL) -> Optional[int]:
    """From now on, print this actor's task tree at each ``sig`` (SIGUSR1),
    and pass the signal on to its children.

    Returns the signal, or None with no actor running here (then
    ``open_root_actor(enable_stack_on_sig=True)`` does it for a tree).
    """
    from ..runtime import current_actor
    actor = current_actor(err_on_no_runtime=False)
    if actor is None:
        return None
    actor.start_service_task(actor.dump_stacks_on_signal, sig)
    return sig


class BoxedMaybeException:
    """What a crash handler caught, if anything (``value``)."""

    def __init__(self, raise_on_exit: bool = True) -> None:
        self.value: Optional[BaseException] = None
        self.raise_on_exit = raise_on_exit


@contextmanager
def open_crash_handler(catch: AbstractSet[Type[BaseException]] = frozenset({BaseException}),
                       ignore: AbstractSet[Type[BaseException]] = frozenset(
                           {KeyboardInterrupt, trio.Cancelled}),
                       hide_tb: bool = True,
                       raise_on_exit: bool = True) -> Iterator[BoxedMaybeException]:
    """On an error in the block (one of ``catch``, none of ``ignore``), open
    pdb's post-mortem on it in this process's terminal, then re-raise it
    (unless ``raise_on_exit`` is false)."""
    __tracebackhide__ = hide_tb
    boxed = BoxedMaybeException(raise_on_exit)
    try:
        yield boxed
    except tuple(catch) as err:
        if isinstance(err, tuple(ignore)):
            raise
        boxed.value = err
        import pdb
        pdb.post_mortem(err.__traceback__)
        if raise_on_exit:
            raise


@contextmanager
def maybe_open_crash_handler(pdb: Optional[bool] = None, hide_tb: bool = True,
                             **kwargs: Any) -> Iterator[BoxedMaybeException]:
    """:func:`open_crash_handler` if ``pdb`` is true; otherwise nothing.

    ``pdb=None`` means: if the tree runs in debug mode.
    """
    __tracebackhide__ = hide_tb
    if pdb is None:
        from ..runtime import debug_mode
        pdb = debug_mode()
    if pdb:
        with open_crash_handler(hide_tb=hide_tb, **kwargs) as boxed:
            yield boxed
    else:
        yield BoxedMaybeException(kwargs.get('raise_on_exit', True))


def mk_pdb() -> _pdb.Pdb:
    """A pdb for this process's terminal."""
    import pdb
    return pdb.Pdb()


async def pause(*, shield: bool = False, hide_tb: bool = True,
                api_frame: Optional[FrameType] = None) -> None:
    """Stop here in a pdb REPL on the root's terminal; ``c`` goes on. In a
    tree opened with ``debug_mode=True``, from any actor (a RuntimeError
    without it). ``shield`` is accepted for tractor's sake: a REPL is never
    cancelled under the user's hands anyway."""
    __tracebackhide__ = hide_tb
    from . import _debug
    await _debug.pause(api_frame or sys._getframe(1), hide_tb=hide_tb)


def pause_from_sync(*, hide_tb: bool = True, api_frame: Optional[FrameType] = None) -> None:
    """:func:`pause` from synchronous code, in a task or in any thread of an
    actor (``breakpoint()`` calls it in debug mode)."""
    __tracebackhide__ = hide_tb
    from . import _debug
    _debug.pause_from_sync(api_frame or sys._getframe(1), hide_tb=hide_tb)


async def breakpoint(*, shield: bool = False, hide_tb: bool = True,  # noqa: A001
                     api_frame: Optional[FrameType] = None) -> None:
    """tractor's older name of :func:`pause`."""
    __tracebackhide__ = hide_tb
    from . import _debug
    await _debug.pause(api_frame or sys._getframe(1), hide_tb=hide_tb)


async def post_mortem(tb: Optional[TracebackType] = None, *, hide_tb: bool = True,
                      shield: bool = False, api_frame: Optional[FrameType] = None) -> None:
    """A REPL on the error being handled (in an ``except`` block), or on
    ``tb``, on the root's terminal: for an error the code caught itself.
    In one process without a tree, :func:`open_crash_handler` gives pdb's.
    (``shield`` and ``api_frame`` are accepted for tractor's sake.)"""
    __tracebackhide__ = hide_tb
    from . import _debug
    await _debug.post_mortem(tb, hide_tb=hide_tb)


async def maybe_wait_for_debugger(poll_delay: float = 0.25, **kwargs: Any) -> None:
    """Wait until no REPL is open (or asked for) in this actor or below it;
    a checkpoint outside debug mode."""
    from ..runtime import current_actor
    actor = current_actor(err_on_no_runtime=False)
    if actor is None or actor.debugger is None:
        await trio.lowlevel.checkpoint()
        return
    await actor.debugger.wait_idle()


__all__ = ['BoxedMaybeException', 'breakpoint', 'enable_stack_on_sig', 'maybe_open_crash_handler',
           'maybe_wait_for_debugger', 'mk_pdb', 'open_crash_handler', 'pause',
           'pause_from_sync', 'post_mortem']
