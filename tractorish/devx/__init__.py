"""Around the tree: task dumps on a signal, crash handlers, the debugger's API.

tractor's ``tractor.devx`` names, with tractor's meaning where tractorish
has the feature: ``enable_stack_on_sig`` (SIGUSR1 prints every actor's
task tree), ``open_crash_handler`` / ``maybe_open_crash_handler`` (a local
pdb post-mortem on a crash in this process). The tree debugger (``pause``,
``breakpoint``, ``post_mortem``, ``pause_from_sync``) is not here yet:
calling them raises ``NotImplementedError`` saying what to do instead.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, AbstractSet, Any, Iterator, Optional, Type

import trio

from ..runtime._stackdump import DEFAULT_SIGNAL
# every actor's start-up hooks (process title, metrics, tracing): every
# actor imports this package, so pdb and the rest load on first use only
from . import _observe as _observe

if TYPE_CHECKING:
    import pdb as _pdb


def _no_debugger() -> NotImplementedError:
    from ..supervise._tractor_kwargs import NO_DEBUGGER
    return NotImplementedError(NO_DEBUGGER)


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

    ``pdb=None`` means debug mode, which tractorish does not have: nothing.
    """
    __tracebackhide__ = hide_tb
    if pdb:
        with open_crash_handler(hide_tb=hide_tb, **kwargs) as boxed:
            yield boxed
    else:
        yield BoxedMaybeException(kwargs.get('raise_on_exit', True))


def mk_pdb() -> _pdb.Pdb:
    """A pdb for this process's terminal."""
    import pdb
    return pdb.Pdb()


async def pause(**kwargs: Any) -> None:
    """The tree debugger's breakpoint: not in tractorish yet."""
    raise _no_debugger()


def pause_from_sync(**kwargs: Any) -> None:
    """The tree debugger's breakpoint from sync code: not in tractorish yet."""
    raise _no_debugger()


async def breakpoint(**kwargs: Any) -> None:  # noqa: A001 - tractor's name
    """tractor's older name of :func:`pause`: not in tractorish yet."""
    raise _no_debugger()


async def post_mortem(**kwargs: Any) -> None:
    """The tree debugger's post-mortem: not in tractorish yet. In one
    process, :func:`open_crash_handler` gives pdb's."""
    raise _no_debugger()


async def maybe_wait_for_debugger(**kwargs: Any) -> None:
    """Wait until no actor holds the debugger: with no tree debugger, none
    ever does; a checkpoint."""
    await trio.lowlevel.checkpoint()


__all__ = ['BoxedMaybeException', 'breakpoint', 'enable_stack_on_sig', 'maybe_open_crash_handler',
           'maybe_wait_for_debugger', 'mk_pdb', 'open_crash_handler', 'pause',
           'pause_from_sync', 'post_mortem']
