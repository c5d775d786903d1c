"""``open_entity_cluster``: the workers of an entity type, and their membership.

The cluster starts ``workers`` actors (``name-0`` ...) under a one-for-one
supervisor, with the entity class's module loaded (the program's
``__main__`` too, by path), and starts the worker side in each
(``_host.start``), again in each replacement.
The cluster is the authority on membership: it makes each new view (a
worker died: it leaves; its replacement is up: it joins) and gives it to
every worker (``_host.set_members``). On a join, the other workers get
the view first, and hand over the keys the newcomer now owns, before the
newcomer does: it gets the view once every other live worker has
confirmed it (a worker confirms once each entity it gives away has
finished its message), so no two workers take a key at once. That wait
runs beside the membership loop, which meanwhile goes on with other
workers' deaths and returns. Workers that missed a view (a push timed
out) get it again every ``RESYNC_INTERVAL`` seconds.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Set, Tuple, Union

import trio

from .._exceptions import TransportClosed
from .._groups import collapsing_groups
from ..msg import MAIN_ALIAS
from ..runtime import Portal
from ..workers import Supervisor, open_supervisor
from . import _host
from ._client import EntityClient
from ._errors import EntityError
from ._placement import View
from ._store import prepare

log = logging.getLogger('tractorish.entities')

PUSH_TIMEOUT = 10.0       # s for one worker to take a view
RESYNC_INTERVAL = 1.0     # s between re-sends of the view to workers that missed it
MIN_RETRY = 0.05          # s before starting a replaced worker's host again
PORTAL_WAIT = 1.0         # s a view waits for a worker being replaced


def entity_type_ref(entity_type: Any) -> Tuple[str, str]:
    """``(module, qualname)`` naming ``entity_type`` for the workers."""
    if not isinstance(entity_type, type):
        raise TypeError(f'an entity type is a class, not {entity_type!r}')
    module = '__main__' if entity_type.__module__ == MAIN_ALIAS else entity_type.__module__
    qualname = entity_type.__qualname__
    found: Any = sys.modules.get(entity_type.__module__)
    for part in qualname.split('.'):
        found = getattr(found, part, None)
    if found is not entity_type:
        raise TypeError(f'{qualname} must be defined at the top level of its module '
                        f'(or inside a class there), so that the workers can find it')
    return module, qualname


class EntityCluster(EntityClient):
    """The cluster of an entity type, from :func:`open_entity_cluster`.

    Sends as :class:`EntityClient` does (straight to each key's owner),
    with the membership it makes itself.
    """

    def __init__(self, name: str, nursery: trio.Nursery, supervisor: Supervisor,
                 workers: List[str], host: Dict[str, Any], *, retry: bool) -> None:
        super().__init__(name, nursery, retry=retry)
        self._sup = supervisor
        self._host = host  # what each worker's _host.start is given
        self._workers = list(workers)
        self._registered = list(workers)  # (what status() asks)
        self._up: Set[str] = set()
        self._latest: Optional[View] = None  # the newest view made
        self._acked: Dict[str, int] = {}
        # workers back up, whose admission waits for the others' hand-over
        self._joining: Dict[str, trio.CancelScope] = {}
        self._returning: Set[str] = set()
        self._events_send, self._events = trio.open_memory_channel[Tuple[str, str]](math.inf)
        self._closing = False

    @property
    def workers(self) -> List[str]:
        """Every worker's name, live or being replaced."""
        return list(self._workers)

    @property
    def supervisor(self) -> Supervisor:
        """The supervisor of the workers (one_for_one)."""
        return self._sup

    def worker_pid(self, worker: str) -> Optional[int]:
        """The pid of ``worker``'s current process (None if it has none)."""
        process = self._sup.process(worker)
        return process.pid if process is not None else None

    # --- routing: the cluster's own view ---------------------------------------------------

    def _adopt(self, view: Optional[View]) -> bool:
        return False  # the workers' views come from here

    async def refresh(self) -> None:
        """Nothing to re-read: the cluster makes the membership."""
        await trio.lowlevel.checkpoint()

    async def _stale(self, delay: float) -> None:
        changed = self._view_changed
        with trio.move_on_after(delay):
            await changed.wait()

    @asynccontextmanager
    async def _portal(self, worker: str) -> AsyncIterator[Portal]:
        try:
            portal = await self._sup.portal(worker)  # waits while it is replaced
        except KeyError as err:
            raise EntityError(f'{worker!r} is not a worker of {self.name!r}') from err
        yield portal

    # --- membership ------------------------------------------------------------------------

    def _next_view(self) -> View:
        # a time-based epoch: a client that saw an earlier cluster of this
        # name takes this one's views as newer
        self._latest = View(max(self._epoch + 1, int(time.time() * 1000)), self._up)
        return self._latest

    @property
    def _epoch(self) -> int:
        """The newest view's epoch (0 before the first)."""
        return self._latest.epoch if self._latest is not None else 0

    async def _start_membership(self) -> None:
        self._sup.on_exit.append(self._on_exit)
        async with trio.open_nursery() as nursery:
            for worker in self._workers:
                nursery.start_soon(self._start_host, worker)
        self._up = set(self._workers)
        view = self._next_view()
        await self._push(view, sorted(self._up))
        self._set_view(view)
        self._nursery.start_soon(self._membership_loop)
        self._nursery.start_soon(self._resync_loop)

    def _on_exit(self, spec: Any, error: Optional[BaseException]) -> None:
        if self._closing or spec.name not in self._workers:
            return
        log.info('%s: worker %r ended (%s)', self.name, spec.name, error or 'normally')
        try:
            self._events_send.send_nowait(('down', spec.name))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _membership_loop(self) -> None:
        async for kind, worker in self._events:
            if kind == 'down':
                self._acked[worker] = 0
                admission = self._joining.pop(worker, None)
                if admission is not None:  # it died again before it was admitted
                    admission.cancel()
                if worker in self._up:
                    self._up.discard(worker)
                    view = self._next_view()
                    self._set_view(view)  # its keys go to the others from now on
                    await self._push(view, self._told())
                if worker not in self._returning:
                    self._returning.add(worker)
                    self._nursery.start_soon(self._wait_for_return, worker)
            elif worker not in self._up:
                self._up.add(worker)
                admission = self._joining[worker] = trio.CancelScope()
                await self._push(self._next_view(), self._told())  # they hand over first
                self._nursery.start_soon(self._admit, worker, admission)

    def _told(self) -> List[str]:
        """The live workers that are given each new view: all but those
        joining, which get theirs once admitted (see :meth:`_admit`)."""
        return sorted(self._up - self._joining.keys())

    async def _admit(self, worker: str, admission: trio.CancelScope) -> None:
        """Give the returning ``worker`` the newest view once every other
        live worker has confirmed it, pushing it again to those that have
        not: a worker confirms once the entities it hands over have finished
        their messages. A message running long there delays this join only;
        the membership loop goes on meanwhile."""
        with admission:
            while True:
                view = self._latest
                assert view is not None
                behind = [w for w in self._told()
                          if self._acked.get(w, 0) < view.epoch and self._alive(w)]
                if not behind:
                    break
                log.info('%s: %r joins once %s have handed over (view %d)', self.name,
                         worker, behind, view.epoch)
                await trio.sleep(MIN_RETRY)
                await self._push(view, behind)
            if self._joining.get(worker) is not admission:
                return  # it died again (the loop cancelled this, not yet delivered)
            del self._joining[worker]
            await self._push(view, [worker])
            latest = self._latest
            assert latest is not None
            self._set_view(latest)

    def _alive(self, worker: str) -> bool:
        try:
            process = self._sup.process(worker)
        except KeyError:
            return False
        return process is not None and process.returncode is None

    async def _start_host(self, worker: str) -> None:
        portal = await self._sup.portal(worker)
        await portal.run(_host.start, **self._host, min_epoch=self._epoch)

    async def _wait_for_return(self, worker: str) -> None:
        """Wait for the worker's replacement, start its host; then it joins."""
        try:
            while True:
                try:
                    with trio.fail_after(PUSH_TIMEOUT):
                        await self._start_host(worker)
                    break
                except (TransportClosed, trio.TooSlowError) as err:
                    # the replacement died too: its exit is on its way
                    log.debug('%s: cannot start %r yet: %r', self.name, worker, err)
                    await trio.sleep(MIN_RETRY)
        except KeyError:
            return  # no longer supervised
        except Exception as err:
            log.error('%s: cannot start the entities of %r: %r', self.name, worker, err)
            return
        finally:
            self._returning.discard(worker)
        self._events_send.send_nowait(('up', worker))

    async def _push(self, view: View, workers: Sequence[str]) -> None:
        async def one(worker: str) -> None:
            portal: Optional[Portal] = None
            with trio.move_on_after(PUSH_TIMEOUT):
                try:
                    # a worker being replaced gets the view once it is back
                    with trio.move_on_after(PORTAL_WAIT):
                        portal = await self._sup.portal(worker)
                    if portal is None:
                        return
                    self._acked[worker] = await portal.run(
                        _host.set_members, epoch=view.epoch, members=list(view.members))
                except Exception as err:  # gone meanwhile: its exit is on its way
                    log.debug('%s: %r did not take view %d: %r', self.name, worker,
                              view.epoch, err)
        async with trio.open_nursery() as nursery:
            for worker in workers:
                nursery.start_soon(one, worker)

    async def _resync_loop(self) -> None:
        while True:
            await trio.sleep(RESYNC_INTERVAL)
            view = self._latest
            if view is None:
                continue
            behind = [w for w in self._told() if self._acked.get(w, 0) < view.epoch]
            if behind and view is self._latest:
                await self._push(view, behind)

    async def aclose(self) -> None:
        self._closing = True
        await super().aclose()


@asynccontextmanager
async def open_entity_cluster(entity_type: type, *, workers: int = 4,
                              name: Optional[str] = None,
                              passivate_after: Optional[float] = None,
                              store: Optional[Union[str, 'os.PathLike[str]']] = None,
                              retry: bool = False,
                              max_restarts: int = 100, within: float = 60.0,
                              loglevel: Optional[str] = None,
                              **root_kwargs: Any) -> AsyncIterator[EntityCluster]:
    """Run the entities of ``entity_type`` on ``workers`` actors; yield the cluster.

    ``entity_type`` is a class defined at the top level of a module (the
    program's ``__main__`` too); the instance for a key is made on the
    key's first message as ``entity_type(key)``, and its public methods
    (async or not) handle messages: ``await cluster.ask(key, 'method',
    **kwargs)``. The workers (``name-0`` ..., ``name`` defaulting to the
    class's name in lower case) load the class's module themselves.

    ``passivate_after``: seconds after which an idle entity is dropped
    (its ``on_passivate()`` called first, if it has one). ``store``: a
    SQLite file where each entity's state is saved after each message and
    from which it is restored wherever the key goes next. ``retry``: the
    default of :meth:`EntityClient.ask`'s. A worker that dies is replaced
    (at most ``max_restarts`` times within ``within`` seconds, else
    :class:`SupervisorError`); meanwhile its keys go to the others. Opens
    the root actor first if none runs here (``root_kwargs`` go to it).
    Leaving the block ends the sessions, then stops every worker.
    """
    module, qualname = entity_type_ref(entity_type)
    if workers < 1:
        raise ValueError(f'workers must be at least 1, not {workers}')
    if passivate_after is not None and not 0 < passivate_after < math.inf:
        raise ValueError(f'passivate_after must be a positive number of seconds, '
                         f'not {passivate_after!r}')
    name = name or entity_type.__name__.lower()
    store_path = await trio.to_thread.run_sync(prepare, store) if store is not None else None
    async with open_supervisor('one_for_one', max_restarts=max_restarts, within=within,
                               **root_kwargs) as sup:
        names = [f'{name}-{i}' for i in range(workers)]
        host = dict(cluster=name, module=module, qualname=qualname,
                    passivate_after=passivate_after, store=store_path)
        async with trio.open_nursery() as starter:
            for worker in names:
                starter.start_soon(functools.partial(
                    sup.start_actor, worker, enable_modules=[_host.__name__, module],
                    loglevel=loglevel))
        with collapsing_groups():
            async with trio.open_nursery() as nursery:
                cluster = EntityCluster(name, nursery, sup, names, host, retry=retry)
                await cluster._start_membership()
                try:
                    yield cluster
                finally:
                    with trio.CancelScope(shield=True):
                        await cluster.aclose()
                    nursery.cancel_scope.cancel()
