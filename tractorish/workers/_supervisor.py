"""Supervisors with restart strategies, as in Erlang/OTP.

A supervisor starts child actors and, when one ends, decides by the
child's restart type and the supervisor's strategy what to restart:

==============  ==========================================================
strategy        on a child's exit that calls for a restart
==============  ==========================================================
one_for_one     restart that child
one_for_all     stop every other child, then restart them all, in order
rest_for_one    stop the children started after it, restart it and them
==============  ==========================================================

==============  ==========================================================
restart type    restarted when it ends...
==============  ==========================================================
permanent       always
transient       only abnormally (a crash, or its function raised)
temporary       never
==============  ==========================================================

More than ``max_restarts`` restarts within ``within`` seconds: the
supervisor gives up, stops every child and raises :class:`SupervisorError`,
which propagates like any other error. A restarted actor is a new process
with a new uid under the same name: it registers again, so discovery finds
it, but portals to the old one fail with ``TransportClosed``; ask
:meth:`Supervisor.portal` for the current one.
"""
from __future__ import annotations

import collections
import logging
import math
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Deque, List, Optional, Sequence, Tuple

import trio

from .._exceptions import TractorishError, TransportClosed
from .._groups import collapsing_groups
from ..runtime import Actor, FinalResult, Portal, current_actor, function_ref
from ..spawn import ChildProcess, spawn_actor
from ..supervise import open_root_actor

log = logging.getLogger('tractorish.workers')

STRATEGIES = ('one_for_one', 'one_for_all', 'rest_for_one')
RESTART_TYPES = ('permanent', 'transient', 'temporary')


class SupervisorError(TractorishError):
    """A supervisor gave up: its children failed more often than it allows.

    ``failures`` holds the errors of the exits that used up the intensity.
    """

    def __init__(self, message: str, failures: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


def check_modules(enable_modules: Sequence[str]) -> None:
    if isinstance(enable_modules, str):
        raise TypeError(f'enable_modules must be a list of module names, not the string '
                        f'{enable_modules!r}')


class ChildSpec:
    """How to (re)start one supervised child, and its current incarnation."""

    def __init__(self, name: str, enable_modules: Sequence[str], restart: str,
                 job: Optional[Tuple[str, str, dict]], loglevel: Optional[str],
                 infect_asyncio: bool = False) -> None:
        self.name = name
        self.infect_asyncio = infect_asyncio
        self.enable_modules = list(enable_modules)
        self.restart = restart
        self.job = job
        self.loglevel = loglevel
        self.process: Optional[ChildProcess] = None
        self.portal: Optional[Portal] = None
        self.exited = trio.Event()     # set when the current incarnation ended
        self.ready = trio.Event()      # set while an incarnation is up
        self.last_error: Optional[BaseException] = None
        self.stopping = False          # ended on purpose: no restart
        self.removed = False
        self.starting: Optional[trio.Event] = None  # while an incarnation starts
        self.restarts = 0

    def __repr__(self) -> str:
        return f'<ChildSpec {self.name!r} {self.restart}>'


class Supervisor:
    """Starts and restarts children; made by :func:`open_supervisor`."""

    def __init__(self, actor: Actor, nursery: trio.Nursery, strategy: str,
                 max_restarts: int, within: float) -> None:
        self._actor = actor
        self._nursery = nursery
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within = within
        self._specs: List[ChildSpec] = []
        self._restart_times: Deque[float] = collections.deque()
        # the errors that may be reported when it gives up: the last few
        self._failures: List[BaseException] = []
        self._lock = trio.Lock()
        self.on_exit: List[Callable[[ChildSpec, Optional[BaseException]], None]] = []

    # --- starting ---------------------------------------------------------------

    async def start_actor(self, name: str, *, enable_modules: Sequence[str] = (),
                          restart: str = 'permanent',
                          loglevel: Optional[str] = None,
                          infect_asyncio: bool = False) -> Portal:
        """Start a supervised daemon actor; return a portal to it.

        The portal is to this incarnation; after a restart use
        :meth:`portal` (or discovery) to reach the new one. With
        ``infect_asyncio`` it runs asyncio, trio as its guest (see
        ``tractorish.to_asyncio``).
        """
        check_modules(enable_modules)
        return await self._add(ChildSpec(name, enable_modules, restart, None, loglevel,
                                         infect_asyncio))

    async def run_in_actor(self, fn: Callable[..., Any], *, name: Optional[str] = None,
                           restart: str = 'transient', enable_modules: Sequence[str] = (),
                           loglevel: Optional[str] = None, infect_asyncio: bool = False,
                           **kwargs: Any) -> Portal:
        """Start a supervised actor that runs ``fn(**kwargs)``.

        It ends when ``fn`` returns (normally) or raises (abnormally); its
        restart type says whether that restarts it, running ``fn`` again.
        ``await portal.result()`` gives this incarnation's outcome.
        """
        check_modules(enable_modules)
        ns, func_name = function_ref(fn)
        modules = [ns, *(m for m in enable_modules if m != ns)]
        spec = ChildSpec(name or func_name, modules, restart, (ns, func_name, kwargs), loglevel,
                         infect_asyncio)
        return await self._add(spec)

    async def _add(self, spec: ChildSpec) -> Portal:
        if spec.restart not in RESTART_TYPES:
            raise ValueError(f'restart must be one of {RESTART_TYPES}, not {spec.restart!r}')
        self._specs.append(spec)  # start order, even when started concurrently
        try:
            await self._start(spec)
        except BaseException:
            self._forget(spec)
            raise
        assert spec.portal is not None
        return spec.portal

    async def _start(self, spec: ChildSpec) -> None:
        """Start an incarnation of ``spec`` and its watcher. A first start
        runs outside the lock: stopped meanwhile (:meth:`stop`, the block's
        end), the new process is reaped and this raises."""
        spec.starting = started = trio.Event()
        try:
            child = await spawn_actor(self._actor, spec.name,
                                      enable_modules=spec.enable_modules,
                                      loglevel=spec.loglevel, infect_asyncio=spec.infect_asyncio)
            if spec.stopping or spec.removed:
                await child.reap()
                raise TractorishError(f'supervised actor {spec.name!r} was stopped '
                                      f'while it started')
        finally:
            spec.starting = None
            started.set()
        spec.process, spec.portal = child, child.portal
        if spec.job is not None:
            child.portal.final_result = FinalResult()  # type: ignore[union-attr]
        spec.exited = trio.Event()
        spec.ready.set()
        self._nursery.start_soon(self._watch, spec, child)

    # --- watching -------------------------------------------------------------------

    async def _watch(self, spec: ChildSpec, child: ChildProcess) -> None:
        """Wait for one incarnation to end; then apply the restart rules."""
        error: Optional[BaseException] = None
        try:
            error = await self._run_incarnation(spec, child)
        finally:
            await child.reap()
            if spec.process is child:
                spec.ready = trio.Event()
                spec.last_error = error
                spec.exited.set()
        for callback in self.on_exit:
            callback(spec, error)
        if spec.stopping or spec.removed or spec.process is not child:
            return
        abnormal = error is not None
        if spec.restart == 'permanent' or (spec.restart == 'transient' and abnormal):
            await self._restart(spec, child, error)
        else:
            if abnormal:
                log.warning('supervised actor %r ended abnormally and is %s: %s',
                            spec.name, spec.restart, error)
            self._forget(spec)

    async def _run_incarnation(self, spec: ChildSpec,
                               child: ChildProcess) -> Optional[BaseException]:
        """Run until the child ends; return its error, or None if normal."""
        if spec.job is not None:
            ns, func_name, kwargs = spec.job
            assert child.portal is not None and child.portal.final_result is not None
            outcome = child.portal.final_result
            try:
                result = await child.portal.run_from_ns(ns, func_name, **kwargs)
            except TransportClosed:
                crash = await child.exit_report()
                outcome.set_error(crash)
                return crash
            except Exception as err:
                outcome.set_error(err)
                return err
            outcome.set_value(result)
            child.cancel_requested = True  # its work is done: ending is normal
            await child.reap()
            return None
        code = await child.wait()
        if code != 0 and not child.cancel_requested:
            return await child.exit_report()
        return None

    def _forget(self, spec: ChildSpec) -> None:
        spec.removed = True
        spec.ready.set()  # wake portal() waiters: they find it gone
        if spec in self._specs:
            self._specs.remove(spec)

    # --- restarting -------------------------------------------------------------------

    async def _restart(self, failed: ChildSpec, child: ChildProcess,
                       error: Optional[BaseException]) -> None:
        """Apply the strategy to the end of ``failed``'s incarnation ``child``."""
        async with self._lock:
            if failed.removed or failed.stopping or failed.process is not child:
                return  # stopped, or restarted meanwhile (with a group, say)
            self._note_restart(failed, error)
            index = self._specs.index(failed)
            if self.strategy == 'one_for_one':
                group = [failed]
            elif self.strategy == 'one_for_all':
                group = list(self._specs)
            else:  # rest_for_one
                group = self._specs[index:]
            # (one still on its first start comes up fresh: its starter has it)
            group = [spec for spec in group if spec.starting is None]
            # stop the others in reverse start order, as OTP does
            for spec in reversed(group):
                if spec is not failed:
                    await self._stop(spec)
                    if spec.restart == 'temporary':  # stopped, never restarted
                        self._forget(spec)
            for spec in (s for s in group if not s.removed):
                spec.restarts += 1
                self._actor.counters.restarts += 1  # for stats()
                log.info('restarting %r (%s, strategy %s)', spec.name, spec.restart,
                         self.strategy)
                spec.stopping = False
                await self._start(spec)

    def _note_restart(self, spec: ChildSpec, error: Optional[BaseException]) -> None:
        now = trio.current_time()
        self._restart_times.append(now)
        if error is not None:
            self._failures.append(error)
            del self._failures[:-(self.max_restarts + 1)]
        while self._restart_times and now - self._restart_times[0] > self.within:
            self._restart_times.popleft()
        if len(self._restart_times) > self.max_restarts:
            raise SupervisorError(
                f'supervisor gave up: more than {self.max_restarts} restarts within '
                f'{self.within} s (last: {spec.name!r}: {error})', self._failures)

    async def _stop(self, spec: ChildSpec) -> None:
        spec.stopping = True
        if spec.starting is not None:  # on its first start: its starter reaps it
            await spec.starting.wait()
            return
        if spec.process is None:  # its first start failed
            return
        await spec.process.reap()
        await spec.exited.wait()

    # --- using ------------------------------------------------------------------------------

    @property
    def children(self) -> List[str]:
        """The names of the supervised children, in start order."""
        return [spec.name for spec in self._specs]

    def _spec(self, name: str) -> ChildSpec:
        for spec in self._specs:
            if spec.name == name:
                return spec
        raise KeyError(f'no supervised actor named {name!r}')

    async def portal(self, name: str) -> Portal:
        """A portal to the current incarnation of ``name``, waiting while it restarts."""
        while True:
            spec = self._spec(name)
            await spec.ready.wait()
            if spec.removed:
                raise KeyError(f'{name!r} is no longer supervised')
            if self._is_up(spec):
                assert spec.portal is not None
                return spec.portal
            # dead, but its watcher has not said so yet: wait for the restart
            await spec.exited.wait()

    @staticmethod
    def _is_up(spec: ChildSpec) -> bool:
        return (spec.process is not None and spec.process.returncode is None
                and spec.portal is not None and not spec.portal.channel.closed)

    def process(self, name: str) -> Optional[ChildProcess]:
        """The process of the current incarnation of ``name``."""
        return self._spec(name).process

    async def wait_ready(self) -> None:
        """Wait until every child has an incarnation up."""
        for spec in list(self._specs):
            if not spec.removed:
                try:
                    await self.portal(spec.name)
                except KeyError:
                    pass  # it ended for good meanwhile

    async def stop(self, name: str) -> None:
        """Stop ``name`` for good (graceful, then forceful); no restart."""
        spec = self._spec(name)
        async with self._lock:
            self._forget(spec)
            await self._stop(spec)

    async def aclose(self) -> None:
        """Stop every child, last started first."""
        async with self._lock:
            for spec in reversed(list(self._specs)):
                self._forget(spec)
                await self._stop(spec)


@asynccontextmanager
async def open_supervisor(strategy: str = 'one_for_one', *, max_restarts: int = 3,
                          within: float = 5.0, **root_kwargs: Any) -> AsyncIterator[Supervisor]:
    """Supervise actors with a restart ``strategy`` for the block's duration.

    Leaving the block stops every child. If the restart intensity is
    exceeded, every child is stopped and :class:`SupervisorError` is
    raised. Opens the root actor first if none runs here (``root_kwargs``
    go to it).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'strategy must be one of {STRATEGIES}, not {strategy!r}')
    if type(max_restarts) is not int or max_restarts < 0:
        raise ValueError(f'max_restarts must be an int >= 0, not {max_restarts!r}')
    if not isinstance(within, (int, float)) or not within > 0 or math.isinf(within):
        raise ValueError(f'within must be a positive number of seconds, not {within!r}')
    actor = current_actor(err_on_no_runtime=False)
    if actor is not None and root_kwargs:
        raise TypeError(f'{sorted(root_kwargs)} only apply when open_supervisor opens the '
                        f'root actor, and one is already running')
    if actor is None:
        async with open_root_actor(**root_kwargs):
            async with open_supervisor(strategy, max_restarts=max_restarts,
                                       within=within) as sup:
                yield sup
        return
    with collapsing_groups():
        async with trio.open_nursery() as nursery:
            sup = Supervisor(actor, nursery, strategy, max_restarts, within)
            try:
                yield sup
            finally:
                with trio.CancelScope(shield=True):
                    await sup.aclose()

