"""``ActorNursery``: actors supervised like trio tasks.

Each child gets a supervision task in a trio nursery. The two kinds of
child differ as tractor's do:

- a ``run_in_actor`` child runs its function to its own result. Its error
  is recorded (and raised by ``portal.result()``), not raised at once: the
  other ``run_in_actor`` children run on. Once the block has ended and all
  of them have finished, the daemon actors are cancelled if any error was
  recorded, and the errors are raised at the nursery's exit;
- a daemon actor (``start_actor``) that dies unasked is an error at once:
  it cancels the block and every sibling.

An error in the block itself, :meth:`ActorNursery.cancel`, a cancelled
scope or Ctrl-C cancels every child at once; each supervision task reaps
its own child on the way out (graceful cancel, SIGTERM, SIGKILL),
concurrently. One error is raised as itself, several as one
``BaseExceptionGroup``, each failure once.
"""
from __future__ import annotations

import functools
import inspect
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple

import trio

from .._exceptions import ContextCancelled, NoResult, TransportClosed
from .._groups import combine_errors, holds_keyboard_interrupt
from ..runtime import (CONTEXT_ATTR, STREAM_ATTR, Actor, FinalResult, Portal, current_actor,
                       function_ref)
from ..spawn import ChildProcess, spawn_actor
from ._interrupt import watch_interrupted_teardown
from ._root import open_root_actor
from ._tractor_kwargs import (child_bind_addrs, modules_with_alias, refuse_proc_kwargs,
                              transport_of)

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
        # run_in_actor children still running, and what they failed with
        self._jobs_running = 0
        self._jobs_done = trio.lowlevel.ParkingLot()
        self.errors: Dict[Tuple[str, str], BaseException] = {}
        self._cancel_called = False
        self._cancel_done = False
        self._all_reaped = trio.Event()
        self.exited = trio.Event()  # set once the nursery's block has exited

    @property
    def children(self) -> List[ChildProcess]:
        return list(self._children.values())

    @property
    def cancel_called(self) -> bool:
        """True once :meth:`cancel` was called (or the nursery cancelled
        its children because of an error)."""
        return self._cancel_called

    @property
    def cancelled(self) -> bool:
        """tractor's older name of :attr:`cancel_called`."""
        return self._cancel_called

    @property
    def cancelled_caught(self) -> bool:
        """True once a :meth:`cancel` has ended every child."""
        return self._cancel_done

    async def start_actor(self, name: str, *, enable_modules: Sequence[str] = (),
                          loglevel: Optional[str] = None,
                          bind_addrs: Optional[Sequence[Any]] = None,
                          enable_transports: Optional[Sequence[str]] = None,
                          rpc_module_paths: Optional[Sequence[str]] = None,
                          debug_mode: Optional[bool] = None,
                          infect_asyncio: bool = False,
                          inherit_parent_main: bool = True,
                          proc_kwargs: Optional[Dict[str, Any]] = None) -> Portal:
        """Start a daemon actor that serves calls until it is cancelled.

        Returns once the actor has connected back and imported
        ``enable_modules``; raises :class:`RemoteActorError` if an import
        failed. The nursery block waits for daemon actors to end: cancel
        them with ``portal.cancel_actor()`` or :meth:`cancel`. Cancelling
        this call kills the half-started actor.

        ``bind_addrs`` are the addresses the actor listens on (default: a
        free port, or a socket file); ``enable_transports=['uds']`` (or
        ``['tcp']``) picks its transport. ``inherit_parent_main=False``
        keeps it from loading this program's main module. With
        ``infect_asyncio`` it runs asyncio, trio as its guest, so its
        functions may use asyncio libraries (``tractorish.to_asyncio``;
        such an actor always starts as a fresh interpreter). tractor's
        ``rpc_module_paths`` is an older ``enable_modules``; ``debug_mode``
        is the tree's (``open_root_actor(debug_mode=True)``): True here in a
        tree without it raises; ``proc_kwargs`` raises, saying what to do
        instead.
        """
        if debug_mode and not self._actor.config.debug_mode:
            raise ValueError('debug_mode is set for the whole tree: open the root with '
                             'open_nursery(debug_mode=True) or open_root_actor(debug_mode=True)')
        refuse_proc_kwargs(proc_kwargs)
        options = dict(enable_modules=modules_with_alias(enable_modules, rpc_module_paths),
                       loglevel=loglevel, bind_addrs=child_bind_addrs(bind_addrs),
                       transport=transport_of(enable_transports),
                       inherit_main=inherit_parent_main, infect_asyncio=infect_asyncio)
        return await self._start(name, options, None)

    async def run_in_actor(self, fn: Callable[..., Any], *, name: Optional[str] = None,
                           enable_modules: Sequence[str] = (),
                           loglevel: Optional[str] = None,
                           bind_addrs: Optional[Sequence[Any]] = None,
                           enable_transports: Optional[Sequence[str]] = None,
                           rpc_module_paths: Optional[Sequence[str]] = None,
                           infect_asyncio: bool = False,
                           inherit_parent_main: bool = True,
                           proc_kwargs: Optional[Dict[str, Any]] = None,
                           **kwargs: Any) -> Portal:
        """Start an actor that runs ``fn(**kwargs)`` once and then ends.

        ``await portal.result()`` gives the return value, or raises the
        error. An error in ``fn`` does not cancel the other children: it is
        raised at the nursery's exit, once every ``run_in_actor`` child has
        finished (and the daemon actors have been cancelled). The other
        keywords are :meth:`start_actor`'s.
        """
        if (inspect.isasyncgenfunction(fn) or getattr(fn, STREAM_ATTR, None)
                or getattr(fn, CONTEXT_ATTR, False)):
            raise TypeError(f'run_in_actor runs a function to its result; {fn!r} is a '
                            f'stream or a context: start_actor, then open_stream_from '
                            f'or open_context on its portal')
        refuse_proc_kwargs(proc_kwargs)
        ns, func_name = function_ref(fn)
        modules = modules_with_alias(enable_modules, rpc_module_paths)
        options = dict(enable_modules=[ns, *(m for m in modules if m != ns)],
                       loglevel=loglevel, bind_addrs=child_bind_addrs(bind_addrs),
                       transport=transport_of(enable_transports),
                       inherit_main=inherit_parent_main, infect_asyncio=infect_asyncio)
        return await self._start(name or func_name, options, (ns, func_name, kwargs))

    async def _start(self, name: str, options: Dict[str, Any],
                     job: Optional[Job]) -> Portal:
        if self._cancel_called:
            raise RuntimeError('this actor nursery was cancelled; it starts no more actors')
        child = await spawn_actor(self._actor, name, **options)
        if self._cancel_called:  # cancel() ran while this one was starting
            await child.reap()
            raise RuntimeError('this actor nursery was cancelled while '
                               f'{name!r} was starting')
        assert child.portal is not None
        if job is not None:
            child.portal.final_result = FinalResult()
            self._jobs_running += 1
        self._children[child.uid] = child
        if self._all_reaped.is_set():  # an earlier set of children was all reaped
            self._all_reaped = trio.Event()
        self._nursery.start_soon(self._supervise, child, job)
        return child.portal

    async def cancel(self, hard_kill: bool = False) -> None:
        """End every child: graceful cancel, SIGTERM, SIGKILL (or SIGKILL at once).

        Returns when every child process has exited; shielded from
        cancellation meanwhile (bounded by the runtime's timeouts). The
        nursery starts no more actors afterwards. A ``run_in_actor`` child
        cancelled this way has no result: its ``portal.result()`` raises
        :class:`NoResult`, and the nursery reports no error for it.
        """
        self._cancel_called = True
        async with trio.open_nursery() as nursery:
            for child in self.children:
                nursery.start_soon(functools.partial(child.reap, graceful=not hard_kill))
        self._cancel_done = True

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
            if not self._children:
                self._all_reaped.set()
            if job is not None:
                self._jobs_running -= 1
                self._jobs_done.unpark_all()

    async def _run_job(self, child: ChildProcess, job: Job) -> None:
        """Run a ``run_in_actor`` child's function; record its outcome.

        Its error goes to ``portal.result()`` and :attr:`errors`. A child we
        asked to end has no result; only an error of its own (say, in its
        cleanup) is recorded then, not the cancellation we caused.
        """
        portal = child.portal
        assert portal is not None and portal.final_result is not None
        outcome = portal.final_result
        ns, func_name, kwargs = job
        try:
            result = await portal.run_from_ns(ns, func_name, **kwargs)
        except (TransportClosed, ContextCancelled) as err:
            if child.cancel_requested:
                outcome.set_error(self._no_result(child))
            elif isinstance(err, ContextCancelled):  # someone else cancelled it
                self._record(child, err)
            else:
                self._record(child, await child.exit_report(_EXIT_AFTER_DISCONNECT))
        except Exception as err:
            self._record(child, err)
        except BaseException:
            outcome.set_error(self._no_result(child))
            raise
        else:
            outcome.set_value(result)

    def _record(self, child: ChildProcess, error: BaseException) -> None:
        self.errors[child.uid] = error
        assert child.portal is not None and child.portal.final_result is not None
        child.portal.final_result.set_error(error)

    @staticmethod
    def _no_result(child: ChildProcess) -> NoResult:
        return NoResult(f'actor {child.name!r} was cancelled before it returned')

    async def _wait_for_jobs(self) -> None:
        """Wait for every ``run_in_actor`` child to finish."""
        while self._jobs_running:
            await self._jobs_done.park()

    async def _finish(self) -> None:
        """The block has ended well: wait for the ``run_in_actor`` children;
        if any failed, cancel the daemon actors too."""
        await self._wait_for_jobs()
        if self.errors:
            with trio.CancelScope(shield=True):
                await self.cancel()


@asynccontextmanager
async def _open_actor_nursery(actor: Actor) -> AsyncIterator[ActorNursery]:
    an: Optional[ActorNursery] = None
    raised: List[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            an = ActorNursery(actor, nursery)
            try:
                yield an
            except BaseException as error:
                an._cancel_called = True  # one cancels all
                if holds_keyboard_interrupt(error) and an._children:
                    nursery.start_soon(watch_interrupted_teardown, an._children,
                                       an._all_reaped)
                raise
            await an._finish()
    except BaseException as error:
        raised.append(error)
    assert an is not None
    an.exited.set()
    # each child's error once (the block may re-raise one of them, from
    # ``portal.result()``), Ctrl-C above all
    final = combine_errors([*an.errors.values(), *raised])
    if final is None:
        return
    if raised and final is raised[0]:
        raise final
    raise final from None


@asynccontextmanager
async def open_nursery(**root_kwargs: Any) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery; opens the root actor first if none runs here.

    ``root_kwargs`` go to :func:`open_root_actor` and are only allowed when
    this call opens it. The block exits once every child has ended; an error
    in the block cancels all of them first (see :class:`ActorNursery`).
    """
    __tracebackhide__ = root_kwargs.get('hide_tb', True)
    actor = current_actor(err_on_no_runtime=False)
    if actor is not None:
        root_kwargs.pop('hide_tb', None)  # pytest's business: fine anywhere
        if root_kwargs.get('debug_mode') == actor.config.debug_mode:
            root_kwargs.pop('debug_mode')  # what the tree has already
        if root_kwargs:
            raise TypeError(f'{sorted(root_kwargs)} only apply when open_nursery '
                            f'opens the root actor, and one is already running')
        async with _open_actor_nursery(actor) as an:
            yield an
        return
    async with open_root_actor(**root_kwargs) as actor:
        async with _open_actor_nursery(actor) as an:
            yield an
