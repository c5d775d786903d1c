"""Sending to entities: routing by key, straight to the owning worker.

:class:`EntityClient` holds a view of the cluster's membership, computes
each key's owner from it (``_placement``) and sends the message on its
session with that worker (one context stream per worker, ``_host``). It
serves both :func:`connect_entity_cluster` (a separate program: workers
found through discovery, the view learnt from them) and the cluster that
runs the workers (``_cluster``: the view is its own, it makes them).

Delivery: a message that was never sent (the owner unreachable, or it
refused the key under a newer view) is sent again, to the owner of the
moment, until the caller's timeout. A message sent to a worker that then
went away fails with :class:`EntityOwnerLost`, unless ``retry=True``:
then it is sent again to the key's owner once the membership has changed
(delivered at least once).
"""
from __future__ import annotations

import itertools
import logging
import math
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence

import trio

from .._exceptions import MsgTypeError, TransportClosed
from .._groups import collapsing_groups
from ..discovery import find_actor, list_actors
from ..ipc import Address
from ..msg import check_encodable, unpack_error
from ..runtime import Portal, RuntimeConfig, current_actor
from . import _host
from ._errors import EntityError, EntityOwnerLost, EntityTimeout
from ._outbox import SEND_ERRORS, Outbox
from ._placement import View

log = logging.getLogger('tractorish.entities')

MIN_BACKOFF, MAX_BACKOFF = 0.01, 0.5   # s between tries of an undelivered message
TELL_RESEND_TIMEOUT = 10.0             # s to deliver a refused tell elsewhere
CLOSE_TIMEOUT = 2.0                    # s for sessions to end gracefully
STATUS_TIMEOUT = 5.0
REFRESH_TIMEOUT = 2.0                  # s for one worker to give its view
MIN_REFRESH_GAP = 0.05                 # s between re-reads of the membership

class _NotSent(Exception):
    """The message did not leave: sending it again cannot duplicate it."""


class _Reply:
    __slots__ = ('rid', 'event', 'status', 'value')

    def __init__(self, rid: int) -> None:
        self.rid = rid
        self.event = trio.Event()
        self.status = ''
        self.value: Any = None


class _Session:
    """A session with one worker, on the sender's side."""

    def __init__(self, worker: str, stream: Any, client: 'EntityClient') -> None:
        self.worker = worker
        self.stream = stream
        self.outbox = Outbox(stream, client._nursery, self._unsent, self._unencodable)
        self._client = client
        self._ids = itertools.count(1)
        self._pending: Dict[int, _Reply] = {}
        self.lost: Optional[BaseException] = None
        self.ended = trio.Event()

    async def send(self, message: list, expect_reply: bool) -> Optional[_Reply]:
        """Send ``message`` (its id filled in); the reply to wait for, if one is due."""
        if self.lost is not None:
            raise _NotSent(f'the session with {self.worker!r} is lost: {self.lost}')
        rid = message[1] = next(self._ids)
        reply = None
        if expect_reply:
            reply = self._pending[rid] = _Reply(rid)
        try:
            # (several requests in flight: others may be about to send too)
            await self.outbox.send([message], gather=len(self._pending) > 1)
        except BaseException as err:
            if isinstance(err, SEND_ERRORS):
                self._pending.pop(rid, None)
                self.lose(err)
                raise _NotSent(f'cannot send to {self.worker!r}: {err}') from err
            raise  # (cancelled: the message is still sent, its reply ignored)
        return reply

    async def wait(self, reply: _Reply) -> _Reply:
        try:
            await reply.event.wait()
        finally:
            self._pending.pop(reply.rid, None)
        return reply

    def _settle(self, rid: int, status: str, value: Any) -> None:
        reply = self._pending.pop(rid, None)
        if reply is not None:
            reply.status, reply.value = status, value
            reply.event.set()

    async def read_replies(self) -> None:
        async for batch in self.stream:
            for message in batch:
                if message[1] == 'refused' and message[3] is not None:
                    self._client._refused_tell(message[2], message[3])
                self._settle(message[0], message[1], message[2])

    def _unsent(self, messages: List[list], error: BaseException) -> None:
        """Messages that never left: safe to send again, elsewhere."""
        for message in messages:
            if message[0] == 't':
                self._client._resend(message, False)
            elif len(message) > 1:
                self._settle(message[1], 'unsent', error)

    def _unencodable(self, message: list, error: BaseException) -> None:
        if message[0] == 't':
            log.warning('%s: a tell of %r to %r cannot be sent: %s', self._client.name,
                        message[3], message[2], error)
        else:
            self._settle(message[1], 'raise', error)

    def lose(self, error: BaseException) -> None:
        """The session is over: every reply still due is lost."""
        if self.lost is None:
            self.lost = error
        for reply in self._pending.values():
            reply.status, reply.value = 'lost', error
            reply.event.set()
        self._pending.clear()
        self.ended.set()


class _Opening:
    __slots__ = ('event', 'error')

    def __init__(self) -> None:
        self.event = trio.Event()
        self.error: Optional[BaseException] = None


def _check(key: Any, method: Any) -> None:
    if not isinstance(key, str):
        raise TypeError(f'an entity key is a string, not {type(key).__name__}')
    if not isinstance(method, str) or not method or method.startswith('_'):
        raise TypeError(f'the method is the name of a public method, not {method!r}')


class EntityClient:
    """Asks and tells to the entities of one cluster, by key.

    From :func:`connect_entity_cluster` (and, as :class:`EntityCluster`,
    from ``open_entity_cluster``). Each message goes straight to the worker
    that owns its key under the current view of the membership.
    """

    def __init__(self, name: str, nursery: trio.Nursery, *, retry: bool = False,
                 registry_addrs: Optional[Sequence[Address]] = None) -> None:
        self.name = name
        self.retry = retry
        self._nursery = nursery
        self._registry_addrs = list(registry_addrs) if registry_addrs else None
        self._view: Optional[View] = None
        self._view_changed = trio.Event()
        self._sessions: Dict[str, _Session] = {}
        self._opening: Dict[str, _Opening] = {}
        self._registered: List[str] = []
        self._refreshing: Optional[trio.Event] = None
        self._last_refresh = -math.inf
        self._closed = False

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self.name!r} {self._view}>'

    # --- membership ---------------------------------------------------------------------

    @property
    def view(self) -> Optional[View]:
        """The membership messages are routed by: an epoch and the live workers."""
        return self._view

    @property
    def members(self) -> List[str]:
        """The live workers, as far as this client knows."""
        return list(self._view.members) if self._view is not None else []

    def owner(self, key: str) -> str:
        """The worker that owns ``key`` under the current view (``LookupError`` if none)."""
        if self._view is None:
            raise LookupError(f'no view of the membership of {self.name!r} yet')
        return self._view.owner(key)

    def _set_view(self, view: View) -> None:
        self._view = view
        self._view_changed.set()
        self._view_changed = trio.Event()

    def _adopt(self, view: Optional[View]) -> bool:
        """Take a worker's view if it is newer; True if taken."""
        if view is not None and view.newer_than(self._view):
            log.debug('%s: now routing by %s', self.name, view)
            self._set_view(view)
            return True
        return False

    def _worker_pattern(self) -> 're.Pattern[str]':
        return re.compile(re.escape(self.name) + r'-\d+')

    async def refresh(self) -> None:
        """Re-read the membership: the workers registered under the
        cluster's name, and the newest view any of them holds."""
        entries = await list_actors(self._registry_addrs[0] if self._registry_addrs else None)
        pattern = self._worker_pattern()
        self._registered = sorted({e['name'] for e in entries if pattern.fullmatch(e['name'])})
        async with trio.open_nursery() as nursery:
            for worker in self._registered:
                nursery.start_soon(self._fetch_view, worker)
        self._last_refresh = trio.current_time()

    async def _fetch_view(self, worker: str) -> None:
        with trio.move_on_after(REFRESH_TIMEOUT):
            try:
                fresh = worker not in self._sessions
                session = await self._session(worker)  # a new session brings the view
                if not fresh:
                    reply = await session.send(['v', 0], True)
                    assert reply is not None
                    await session.wait(reply)
                    if reply.status == 'view':
                        self._adopt(View.from_wire(reply.value))
            except (_NotSent, EntityError) as err:
                log.debug('%s: no view from %s: %s', self.name, worker, err)

    async def _stale(self, delay: float) -> None:
        """The membership may have changed: re-read it (at most every
        ``MIN_REFRESH_GAP`` s, callers sharing one re-read), then let
        ``delay`` s pass unless the view changes first."""
        changed = self._view_changed
        if self._refreshing is not None:
            await self._refreshing.wait()
        elif trio.current_time() - self._last_refresh >= MIN_REFRESH_GAP:
            self._refreshing = trio.Event()
            try:
                with trio.move_on_after(REFRESH_TIMEOUT):
                    await self.refresh()
            except (TransportClosed, OSError) as err:
                log.debug('%s: cannot re-read the membership: %s', self.name, err)
            finally:
                self._refreshing.set()
                self._refreshing = None
        with trio.move_on_after(delay):
            await changed.wait()

    async def _refresh_periodically(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            try:
                with trio.move_on_after(REFRESH_TIMEOUT * 2):
                    await self.refresh()
            except Exception as err:  # a registry gone for a moment, say: try later
                log.debug('%s: periodic re-read of the membership failed: %r', self.name, err)

    # --- sessions -----------------------------------------------------------------------

    @asynccontextmanager
    async def _portal(self, worker: str) -> AsyncIterator[Portal]:
        """A portal to ``worker`` (its newest registration) for the block."""
        async with find_actor(worker, registry_addrs=self._registry_addrs) as portal:
            if portal is None:
                raise EntityError(f'no worker registered as {worker!r}')
            yield portal

    async def _session(self, worker: str) -> _Session:
        """The open session with ``worker``, opening one if need be."""
        while True:
            session = self._sessions.get(worker)
            if session is not None and session.lost is None:
                return session
            opening = self._opening.get(worker)
            if opening is None:
                break
            await opening.event.wait()
            if opening.error is not None:
                raise _NotSent(f'cannot reach {worker!r}: {opening.error}')
        if self._closed:
            raise EntityError(f'the client of {self.name!r} is closed')
        opening = self._opening[worker] = _Opening()
        try:
            return await self._nursery.start(self._run_session, worker)
        except Exception as err:
            opening.error = err
            raise _NotSent(f'cannot reach {worker!r}: {err}') from err
        finally:
            del self._opening[worker]
            opening.event.set()

    async def _run_session(self, worker: str,
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        session: Optional[_Session] = None
        try:
            async with self._portal(worker) as portal:
                async with portal.open_context(_host.session) as (ctx, first):
                    self._adopt(View.from_wire(first))
                    async with ctx.open_stream() as stream:
                        session = _Session(worker, stream, self)
                        self._sessions[worker] = session
                        task_status.started(session)
                        await session.read_replies()
        except Exception as err:
            if session is None:
                raise  # to the opener
            log.debug('%s: session with %s ended: %r', self.name, worker, err)
            session.lose(err)
        finally:
            if session is not None:
                session.lose(EntityError(f'the session with {worker!r} ended'))
                if self._sessions.get(worker) is session:
                    del self._sessions[worker]

    async def aclose(self) -> None:
        """End every session gracefully (bounded); no more messages can be sent."""
        self._closed = True
        sessions = list(self._sessions.values())
        for session in sessions:
            if session.lost is None:
                try:
                    with trio.move_on_after(CLOSE_TIMEOUT):
                        await session.outbox.send([['q']])
                except SEND_ERRORS:
                    pass
        with trio.move_on_after(CLOSE_TIMEOUT):
            for session in sessions:
                await session.ended.wait()

    # --- sending --------------------------------------------------------------------------

    async def ask(self, key: str, method: str, /, *, timeout: Optional[float] = None,
                  retry: Optional[bool] = None, **kwargs: Any) -> Any:
        """Call ``method(**kwargs)`` on the entity of ``key``; return its result.

        The entity is created on its first message, as ``EntityType(key)``.
        Its exception is raised here as :class:`RemoteActorError`. Raises
        :class:`EntityTimeout` if no reply came within ``timeout`` seconds
        (``None``: no limit; the message may still be handled later), and
        :class:`EntityOwnerLost` if the owner went away with the message in
        flight, unless ``retry`` (default: the cluster's) sends it again to
        the new owner. ``timeout`` and ``retry`` are therefore not passed
        to the method. Cancelling the ask stops the waiting, not the entity:
        a message on its way is still delivered, and its reply dropped.
        """
        _check(key, method)
        retry = self.retry if retry is None else retry
        problem: List[str] = []
        if timeout is None:
            return await self._deliver(key, method, kwargs, retry, problem)
        with trio.move_on_after(timeout):
            return await self._deliver(key, method, kwargs, retry, problem)
        raise EntityTimeout(f'no reply from the entity {key!r} of {self.name!r} to '
                            f'{method!r} within {timeout} s'
                            + (f' (last problem: {problem[-1]})' if problem else ''))

    async def tell(self, key: str, method: str, /, *, timeout: Optional[float] = None,
                   **kwargs: Any) -> None:
        """Send ``method(**kwargs)`` to the entity of ``key`` without waiting
        for it to be handled.

        Returns once the message is on its way to the owner; raises
        :class:`EntityTimeout` if the owner could not be reached within
        ``timeout`` seconds. Delivery is at most once: a message in flight
        when its worker dies is lost. An exception of the method is logged
        by the worker. Cancelled while the message is being handed over, it
        may still be sent. Arguments that msgpack cannot encode raise
        :class:`MsgTypeError` here, and nothing is sent.
        """
        _check(key, method)
        try:
            check_encodable(kwargs)  # (a tell has nobody to raise it to later)
        except MsgTypeError as err:
            raise MsgTypeError(f'the arguments of a tell of {method!r} to {key!r} '
                               f'cannot be sent: {err}') from None
        problem: List[str] = []
        with trio.move_on_after(math.inf if timeout is None else timeout):
            await self._send_tell(key, method, kwargs, problem)
            return
        raise EntityTimeout(f'could not reach the owner of the entity {key!r} of '
                            f'{self.name!r} within {timeout} s'
                            + (f' (last problem: {problem[-1]})' if problem else ''))

    async def _owner_for(self, key: str, delay: float, problem: List[str]) -> str:
        while True:
            view = self._view
            if view is not None and view.members:
                return view.owner(key)
            problem[:] = [f'no live worker in the cluster {self.name!r}']
            await self._stale(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _deliver(self, key: str, method: str, kwargs: dict, retry: bool,
                       problem: List[str]) -> Any:
        delay = MIN_BACKOFF
        while True:
            worker = await self._owner_for(key, delay, problem)
            try:
                session = await self._session(worker)
                reply = await session.send(['a', 0, key, method, kwargs], True)
                assert reply is not None
            except _NotSent as err:
                problem[:] = [str(err)]
            else:
                await session.wait(reply)
                if reply.status == 'ok':
                    return reply.value
                if reply.status == 'err':
                    raise unpack_error(reply.value)
                if reply.status == 'raise':
                    raise reply.value
                if reply.status == 'refused':
                    problem[:] = [f'{worker!r} does not own {key!r}']
                    if self._adopt(View.from_wire(reply.value)):
                        continue  # a newer view: its owner, at once
                elif reply.status == 'unsent':
                    problem[:] = [f'cannot send to {worker!r}: {reply.value}']
                elif not retry:
                    raise EntityOwnerLost(
                        f'{worker!r}, the owner of the entity {key!r} of {self.name!r}, '
                        f'went away while handling {method!r} ({reply.value}); it may or '
                        f'may not have been handled (retry=True sends it again to the new '
                        f'owner)', key=key, worker=worker)
                else:
                    problem[:] = [f'{worker!r} went away during {method!r}']
            await self._stale(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _send_tell(self, key: str, method: str, kwargs: dict,
                         problem: List[str]) -> None:
        delay = MIN_BACKOFF
        while True:
            worker = await self._owner_for(key, delay, problem)
            try:
                session = await self._session(worker)
                await session.send(['t', 0, key, method, kwargs], False)
                return
            except _NotSent as err:
                problem[:] = [str(err)]
            await self._stale(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _refused_tell(self, view: Any, message: list) -> None:
        """A worker refused a tell (not its key): send it to the owner."""
        self._resend(message, self._adopt(View.from_wire(view)))

    def _resend(self, message: list, at_once: bool) -> None:
        """Send a tell that did not reach its entity to the key's owner."""
        if not self._closed:
            self._nursery.start_soon(self._resend_tell, message, at_once)

    async def _resend_tell(self, message: list, at_once: bool) -> None:
        _, _, key, method, kwargs = message
        if not at_once:
            await self._stale(MIN_BACKOFF * 5)
        try:
            await self.tell(key, method, timeout=TELL_RESEND_TIMEOUT, **kwargs)
        except EntityError as err:
            log.warning('%s: a tell of %r to %r was lost: %s', self.name, method, key, err)

    # --- looking -------------------------------------------------------------------------------

    async def status(self, timeout: float = STATUS_TIMEOUT) -> List[dict]:
        """Each worker's state, by name: ``entities`` (live now), ``handled``,
        ``passivated``, ``pid``, ``view``; a worker that cannot say has
        ``error`` instead. Each worker is given ``timeout`` seconds."""
        workers = sorted(set(self.members) | set(self._registered))
        results: Dict[str, dict] = {}

        async def one(worker: str) -> None:
            results[worker] = {'worker': worker, 'error': f'no answer within {timeout:g} s'}
            with trio.move_on_after(timeout):
                try:
                    async with self._portal(worker) as portal:
                        results[worker] = await portal.run(_host.info)
                except Exception as err:
                    results[worker] = {'worker': worker, 'error': str(err) or repr(err)}
        async with trio.open_nursery() as nursery:
            for worker in workers:
                nursery.start_soon(one, worker)
        return [results[w] for w in workers]


@asynccontextmanager
async def connect_entity_cluster(name: str, *,
                                 registry_addrs: Optional[Sequence[Address]] = None,
                                 retry: bool = False, timeout: float = 5.0,
                                 refresh_interval: float = 2.0,
                                 **root_kwargs: Any) -> AsyncIterator[EntityClient]:
    """Talk to the entity cluster ``name`` run by another program.

    Finds its workers (``name-0``, ``name-1``...) through discovery, learns
    the membership from them and sends each message straight to the owner
    of its key. The membership is re-read when a send fails or a worker
    refuses a key, and every ``refresh_interval`` seconds. Raises
    :class:`EntityError` if no worker of the cluster is found within
    ``timeout`` seconds. Opens a root actor first if none runs here (one
    that does not register; ``root_kwargs`` go to it). Leaving the block
    ends the sessions with the workers.
    """
    if current_actor(err_on_no_runtime=False) is None:
        from ..supervise import open_root_actor
        root_kwargs.setdefault('config', RuntimeConfig(discovery='client'))
        async with open_root_actor(f'{name}-client', registry_addrs=registry_addrs,
                                   **root_kwargs):
            async with connect_entity_cluster(name, registry_addrs=registry_addrs,
                                              retry=retry, timeout=timeout,
                                              refresh_interval=refresh_interval) as client:
                yield client
        return
    with collapsing_groups():
        async with trio.open_nursery() as nursery:
            client = EntityClient(name, nursery, retry=retry, registry_addrs=registry_addrs)
            await _first_view(client, timeout)
            nursery.start_soon(client._refresh_periodically, refresh_interval)
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                nursery.cancel_scope.cancel()


async def _first_view(client: EntityClient, timeout: float) -> None:
    """Read the membership until it names a live worker (at least once)."""
    deadline = trio.current_time() + timeout
    while True:
        with trio.move_on_at(max(deadline, trio.current_time() + REFRESH_TIMEOUT)):
            try:
                await client.refresh()
            except (TransportClosed, OSError) as err:
                log.debug('%s: no registry yet: %s', client.name, err)
        if client.members:
            return
        if trio.current_time() >= deadline:
            break
        await trio.sleep(0.05)
    if client._registered:
        raise EntityError(f'the workers of the entity cluster {client.name!r} '
                          f'({", ".join(client._registered)}) are registered but none '
                          f'answered within {max(timeout, REFRESH_TIMEOUT):g} s')
    raise EntityError(f'no worker of the entity cluster {client.name!r} is registered '
                      f'(none named {client.name}-0, {client.name}-1 ...'
                      + (f' within {timeout:g} s)' if timeout > 0 else ')'))
