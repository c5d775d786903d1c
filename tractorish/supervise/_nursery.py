"""``ActorNursery``: actors supervised like trio tasks (one cancels all).

Each child gets a supervision task in a trio nursery. A child's error (its
``run_in_actor`` function raised, or it died unasked) is raised in that
task, so trio cancels the nursery: the block and every sibling; each
supervision task then reaps its own child on the way out (graceful cancel,
SIGTERM, SIGKILL), concurrently. One error is raised as itself, several as
a ``BaseExceptionGroup``.
"""
from __future__ import annotations

import functools
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple

import trio

from .._exceptions import NoResult, TransportClosed
from .._groups import collapsing_groups
from ..runtime import Actor, Portal, current_actor, function_ref
from ..spawn import ChildProcess, spawn_actor
from ._root import open_root_actor

Job = Tuple[str, str, dict]

# How long to wait for a child whose channel dropped to finish dying, so
# that the error can say how it died.
_EXIT_AFTER_DISCONNECT = 2.0


class ActorNursery:
    """Starts actors and supervises them; made by :func:`open_nursery`."""

    def __init__(self, actor: Actor, nursery: trio.Nursery) -> None:
        self._actor = actor
        self._nursery = nursery
        self._children: Dict[Tuple[str, str], ChildProcess] = {}
        self.cancelled = False

    @property
    def children(self) -> List[ChildProcess]:
        return list(self._children.values())

    async def start_actor(self, name: str, *, enable_modules: Sequence[str] = (),
                          loglevel: Optional[str] = None) -> Portal:
        """Start a daemon actor that serves calls until it is cancelled.

        Returns once the actor has connected back and imported
        ``enable_modules``; raises :class:`RemoteActorError` if an import
        failed. The nursery block waits for daemon actors to end: cancel
        them with ``portal.cancel_actor()`` or :meth:`cancel`.
        """
        return await self._start(name, enable_modules, loglevel, None)

    async def run_in_actor(self, fn: Callable[..., Any], *, name: Optional[str] = None,
                           enable_modules: Sequence[str] = (),
                           loglevel: Optional[str] = None, **kwargs: Any) -> Portal:
        """Start an actor that runs ``fn(**kwargs)`` once and then ends.

        ``await portal.result()`` gives the return value. An error in ``fn``
        is raised out of the nursery (and cancels the siblings).
        """
        ns, func_name = function_ref(fn)
        modules = [ns, *(m for m in enable_modules if m != ns)]
        return await self._start(name or func_name, modules, loglevel,
                                 (ns, func_name, kwargs))

    async def _start(self, name: str, enable_modules: Sequence[str],
                     loglevel: Optional[str], job: Optional[Job]) -> Portal:
        if self.cancelled:
            raise RuntimeError('this actor nursery was cancelled; it starts no more actors')
        if isinstance(enable_modules, str):
            raise TypeError('enable_modules must be a list of module names, not a string')
        child = await spawn_actor(self._actor, name, enable_modules=enable_modules,
                                  loglevel=loglevel)
        if self.cancelled:  # cancel() ran while this one was starting
            await child.reap()
            raise RuntimeError('this actor nursery was cancelled while '
                               f'{name!r} was starting')
        assert child.portal is not None
        if job is not None:
            child.portal._expect_result()
        self._children[child.uid] = child
        self._nursery.start_soon(self._supervise, child, job)
        return child.portal

    async def cancel(self, hard_kill: bool = False) -> None:
        """End every child: graceful cancel, SIGTERM, SIGKILL (or SIGKILL at once).

        Returns when every child process has exited. The nursery starts no
        more actors afterwards.
        """
        self.cancelled = True
        async with trio.open_nursery() as nursery:
            for child in self.children:
                nursery.start_soon(functools.partial(child.reap, graceful=not hard_kill))

    async def _supervise(self, child: ChildProcess, job: Optional[Job]) -> None:
        try:
            if job is not None:
                await self._run_job(child, job)
            else:
                await child.wait()
            if child.returncode != 0 and not child.cancel_requested:
                raise await child.exit_report()
        finally:
            await child.reap()
            self._children.pop(child.uid, None)

    async def _run_job(self, child: ChildProcess, job: Job) -> None:
        portal = child.portal
        assert portal is not None
        ns, func_name, kwargs = job
        try:
            result = await portal.run_from_ns(ns, func_name, **kwargs)
        except TransportClosed as err:
            crashed = await child.exit_report(_EXIT_AFTER_DISCONNECT)
            portal._set_result(error=crashed)
            raise crashed from err
        except Exception as err:
            portal._set_result(error=err)
            raise
        except BaseException:
            portal._set_result(error=NoResult(
                f'actor {child.name!r} was cancelled before it returned'))
            raise
        portal._set_result(result)
        await child.reap()


@asynccontextmanager
async def _open_actor_nursery(actor: Actor) -> AsyncIterator[ActorNursery]:
    with collapsing_groups():
        async with trio.open_nursery() as nursery:
            yield ActorNursery(actor, nursery)


@asynccontextmanager
async def open_nursery(**root_kwargs: Any) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery; opens the root actor first if none runs here.

    ``root_kwargs`` go to :func:`open_root_actor` and are only allowed when
    this call opens it. The block exits once every child has ended; an error
    in the block or in any child cancels all of them first.
    """
    actor = current_actor(err_on_no_runtime=False)
    if actor is not None:
        if root_kwargs:
            raise TypeError(f'{sorted(root_kwargs)} only apply when open_nursery '
                            f'opens the root actor, and one is already running')
        async with _open_actor_nursery(actor) as an:
            yield an
        return
    async with open_root_actor(**root_kwargs) as actor:
        async with _open_actor_nursery(actor) as an:
            yield an
