"""The worker side of an entity cluster: the entities of the keys it owns.

The cluster calls :func:`start` on each worker it starts: it finds the
entity class in the module the cluster gave the worker (loaded at
start-up as any exposed module is, the program's ``__main__`` by path),
opens the store, and keeps this worker's entities in the runtime's
nursery for the actor's life. (Not in a call that lasts as long: a
channel with one call in flight is read by that call's own task, and the
sessions are the calls that should have that.)

Senders talk to it through :func:`session`, a context with a two-way
stream per sender. Each value on the stream is a list of messages
(``_outbox``: whatever was ready to go at once):

=================================  ==========================================
sender -> worker                   meaning
=================================  ==========================================
``['a', id, key, method, kwargs]`` ask: one reply follows
``['t', id, key, method, kwargs]`` tell: no reply, unless it is refused
``['v', id]``                      which view do you hold?
``['q']``                          the sender is done: end the session
=================================  ==========================================

=====================================  ======================================
worker -> sender                       meaning
=====================================  ======================================
``[id, 'ok', value]``                  the method's result
``[id, 'err', error]``                 its exception (packed as on the wire)
``[id, 'refused', view, message]``     not this worker's key under ``view``;
                                       ``message`` is the refused tell (None
                                       for an ask): send it to the owner
``[id, 'view', view]``                 the view this worker holds
=====================================  ======================================

A session's messages are taken in the order they arrive, each appended to
its entity's mailbox before the next is read, so an entity handles one
sender's messages in the order they were sent. An entity handles one
message at a time (a task drains its mailbox while it has any; a handler
that cannot suspend, found idle, runs at once instead, as the runtime runs
such functions); entities of different keys run concurrently.

The cluster gives every worker the membership with :func:`set_members`. A
worker takes only the keys it owns under that view and refuses the others
(a refusal is always safe to send again: nothing was done). When the view
changes, it drops the entities it no longer owns, once their current
message is done, before :func:`set_members` returns.
"""
from __future__ import annotations

import collections
import inspect
import logging
import os
import sys
from typing import Any, Deque, Dict, List, Optional, OrderedDict, Tuple

import trio

from ..msg import MAIN_ALIAS, pack_error
from ..runtime import Context, context, current_actor
from ..runtime._resolve import never_suspends  # the runtime's test, for its shortcut
from ._errors import EntityError
from ._outbox import SEND_ERRORS, Outbox
from ._placement import View
from ._store import StateStore, decode, encode, restore, state_of

log = logging.getLogger('tractorish.entities')

# messages of one sender taken but not yet answered, before the worker
# stops reading that sender's stream (whose credit then holds the sender)
MAX_IN_FLIGHT = 4096


class _Peer:
    """One sender's session, on the worker's side."""

    __slots__ = ('outbox', 'in_flight', 'room', 'closed', 'uid')

    def __init__(self, stream: Any, nursery: trio.Nursery) -> None:
        self.outbox = Outbox(stream, nursery, self._unsent, self._unencodable)
        self.in_flight = 0
        self.room: Optional[trio.Event] = None
        self.closed = False
        self.uid = current_actor().uid

    async def send(self, replies: List[list], gather: bool = False) -> None:
        if self.closed:
            return
        try:
            await self.outbox.send(replies, gather)
        except SEND_ERRORS:
            self.closed = True  # the sender went away: nobody to tell

    def _unsent(self, replies: List[list], error: BaseException) -> None:
        self.closed = True

    def _unencodable(self, reply: list, error: BaseException) -> None:
        failure = EntityError(f'the result cannot be sent back: {error}')
        self.outbox.queue_nowait([reply[0], 'err', pack_error(failure, self.uid)])

    def done_one(self) -> None:
        self.in_flight -= 1
        if self.room is not None and self.in_flight < MAX_IN_FLIGHT:
            self.room.set()
            self.room = None

    async def wait_for_room(self) -> None:
        if self.in_flight >= MAX_IN_FLIGHT:
            self.room = trio.Event()
            await self.room.wait()


class _Entity:
    """The live entity of one key: its instance, mailbox and state."""

    __slots__ = ('key', 'instance', 'mailbox', 'busy', 'last_used', 'leaving', 'saved',
                 'gone')

    def __init__(self, key: str) -> None:
        self.key = key
        self.instance: Any = None      # None until activated, and once passivated
        self.mailbox: Deque[Tuple[_Peer, str, int, str, dict]] = collections.deque()
        self.busy = False              # a task is draining the mailbox
        self.last_used = 0.0
        self.leaving = False           # no longer this worker's key
        self.saved: Optional[bytes] = None  # the state as last saved
        self.gone: Optional[trio.Event] = None


class EntityHost:
    """This worker's entities, under the view the cluster gave it."""

    def __init__(self, cluster: str, cls: type, passivate_after: Optional[float],
                 store: Optional[StateStore], nursery: trio.Nursery,
                 min_epoch: int = 0) -> None:
        actor = current_actor()
        self.name = actor.name
        self.uid = actor.uid
        self.cluster = cluster
        self.cls = cls
        self.passivate_after = passivate_after
        self.store = store
        self.view: Optional[View] = None
        self.view_ready = trio.Event()
        # views older than the cluster's when this host started are stale:
        # pushed to this worker's previous process, which they still list
        self.min_epoch = min_epoch
        # least recently used first (each entity moves to the end when idle again)
        self.entities: OrderedDict[str, _Entity] = collections.OrderedDict()
        self.handled = 0
        self.passivated = 0
        self._nursery = nursery
        self._inline_cache: Dict[Tuple[type, str], bool] = {}

    # --- taking messages --------------------------------------------------------------

    def accept(self, peer: _Peer, message: Any) -> Optional[list]:
        """Take one message of a session, in order; return what to answer at once."""
        if not isinstance(message, list) or not message or message[0] not in ('a', 't', 'v'):
            raise EntityError(f'malformed entity message: {message!r:.200}')
        assert self.view is not None
        if message[0] == 'v':
            return [message[1], 'view', self.view.to_wire()]
        try:
            op, rid, key, method, kwargs = message
        except ValueError:
            raise EntityError(f'malformed entity message: {message!r:.200}') from None
        if not (isinstance(key, str) and isinstance(method, str) and isinstance(kwargs, dict)):
            error = TypeError(f'an entity message is (key: str, method: str, kwargs: dict), '
                              f'not {message[2:]!r:.200}')
            return [rid, 'err', pack_error(error, self.uid)] if op == 'a' else None
        entity = self.entities.get(key)
        if entity is None or entity.leaving:
            if entity is not None or self.view.owner(key) != self.name:
                return [rid, 'refused', self.view.to_wire(), message if op == 't' else None]
            entity = self.entities[key] = _Entity(key)
        elif not entity.busy and entity.instance is not None and self.store is None:
            fn = self._inline(entity.instance, method)
            if fn is not None:  # idle, and the handler cannot suspend: run it now
                return self._run_inline(entity, fn, op, rid, method, kwargs)
        entity.mailbox.append((peer, op, rid, method, kwargs))
        peer.in_flight += 1
        if not entity.busy:
            entity.busy = True
            self._nursery.start_soon(self._drain, entity)
        return None

    def _inline(self, instance: Any, method: Any) -> Any:
        """The bound handler if it is an ``async def`` that cannot suspend
        (no await, async for or async with), else None."""
        cache_key = (type(instance), method)
        inline = self._inline_cache.get(cache_key)
        if inline is None:
            try:
                fn = self._method(instance, method)
            except AttributeError:
                return None  # the usual path reports it
            inline = never_suspends(getattr(fn, '__func__', None))
            self._inline_cache[cache_key] = inline
        return getattr(instance, method) if inline else None

    def _run_inline(self, entity: _Entity, fn: Any, op: str, rid: int, method: str,
                    kwargs: Any) -> Optional[list]:
        """Run a handler that cannot suspend to its end, at once: nothing
        else could run in between anyway (the runtime does the same for
        such functions), and it saves starting a task."""
        try:
            coro = fn(**kwargs)
            try:
                coro.send(None)
            except StopIteration as done:
                outcome: Tuple[bool, Any] = (True, done.value)
            else:  # pragma: no cover - it cannot suspend
                coro.close()
                raise RuntimeError(f'{method} suspended')
        except Exception as err:
            outcome = (False, pack_error(err, self.uid))
        self.handled += 1
        entity.last_used = trio.current_time()
        self.entities.move_to_end(entity.key)
        if op == 'a':
            return [rid, 'ok' if outcome[0] else 'err', outcome[1]]
        if not outcome[0]:
            log.warning('%s: tell %s to %r failed: %s: %s', self.name, method, entity.key,
                        outcome[1].get('type_str'), outcome[1].get('message'))
        return None

    # --- one entity ---------------------------------------------------------------------

    async def _drain(self, entity: _Entity, passivate: bool = False) -> None:
        """Handle the entity's messages one at a time while it has any."""
        try:
            if passivate:
                await self._deactivate(entity)
            while True:
                if entity.leaving:
                    await self._deactivate(entity)
                    await self._refuse_all(entity)
                if not entity.mailbox:
                    if entity.instance is None:
                        self._remove(entity)
                    return
                if entity.instance is None:
                    await self._activate(entity)
                    continue
                await self._handle_next(entity)
        finally:
            entity.busy = False
            entity.last_used = trio.current_time()
            if self.entities.get(entity.key) is entity:
                self.entities.move_to_end(entity.key)

    async def _activate(self, entity: _Entity) -> None:
        """Make the instance (``cls(key)``) and restore its saved state, if
        any; on failure every waiting message gets the error."""
        try:
            instance = self.cls(entity.key)
            if self.store is not None:
                blob = await self.store.load(entity.key)
                if blob is not None:
                    restore(instance, decode(blob))
                entity.saved = blob
        except Exception as err:
            error = pack_error(err, self.uid)
            while entity.mailbox:
                peer, op, rid, method, _ = entity.mailbox.popleft()
                await self._answer(peer, op, rid, method, entity.key, (False, error))
            return
        entity.instance = instance

    async def _handle_next(self, entity: _Entity) -> None:
        peer, op, rid, method, kwargs = entity.mailbox.popleft()
        outcome: Tuple[bool, Any]
        try:
            result = self._method(entity.instance, method)(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            outcome = (True, result)
        except Exception as err:
            outcome = (False, pack_error(err, self.uid))
        if self.store is not None:
            try:  # saved whatever the outcome: the state is what it is now
                blob = encode(state_of(entity.instance))
                if blob != entity.saved:
                    await self.store.save(entity.key, blob)
                    entity.saved = blob
            except Exception as err:
                outcome = (False, pack_error(err, self.uid))
        self.handled += 1
        await self._answer(peer, op, rid, method, entity.key, outcome)

    def _method(self, instance: Any, method: Any) -> Any:
        fn = getattr(instance, method, None) if isinstance(method, str) else None
        if fn is None or method.startswith('_') or not callable(fn):
            raise AttributeError(f'{type(instance).__name__} has no message handler '
                                 f'{method!r} (a public method)')
        return fn

    async def _answer(self, peer: _Peer, op: str, rid: int, method: str, key: str,
                      outcome: Tuple[bool, Any]) -> None:
        ok, value = outcome
        try:
            if op == 'a':
                reply = [rid, 'ok' if ok else 'err', value]
                await peer.send([reply], gather=peer.in_flight > 1)
            elif not ok:
                log.warning('%s: tell %s to %r failed: %s: %s', self.name, method, key,
                            value.get('type_str'), value.get('message'))
        finally:
            peer.done_one()

    async def _refuse_all(self, entity: _Entity) -> None:
        assert self.view is not None
        view = self.view.to_wire()
        while entity.mailbox:
            peer, op, rid, method, kwargs = entity.mailbox.popleft()
            try:
                told = ['t', rid, entity.key, method, kwargs] if op == 't' else None
                await peer.send([[rid, 'refused', view, told]])
            finally:
                peer.done_one()

    async def _deactivate(self, entity: _Entity) -> None:
        """Drop the instance, calling its ``on_passivate`` hook first."""
        instance, entity.instance, entity.saved = entity.instance, None, None
        if instance is None:
            return
        self.passivated += 1
        hook = getattr(instance, 'on_passivate', None)
        if callable(hook):
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception as err:
                log.warning('%s: on_passivate of %r failed: %r', self.name, entity.key, err)

    def _remove(self, entity: _Entity) -> None:
        if self.entities.get(entity.key) is entity:
            del self.entities[entity.key]
        if entity.gone is not None:
            entity.gone.set()

    # --- passivation and membership ---------------------------------------------------------

    async def passivate_idle(self) -> None:
        """Passivate the entities idle for ``passivate_after`` s, until cancelled."""
        assert self.passivate_after is not None
        interval = min(max(self.passivate_after / 4, 0.01), 1.0)
        while True:
            await trio.sleep(interval)
            cutoff = trio.current_time() - self.passivate_after
            for entity in self.entities.values():  # least recently used first
                if entity.busy:
                    continue
                if entity.last_used > cutoff:
                    break
                entity.busy = True
                self._nursery.start_soon(self._drain, entity, True)

    async def set_view(self, view: View) -> int:
        """Take ``view`` if it is newer; drop the entities it gives to others.
        Returns the epoch now held, once every entity leaving this worker
        (for this view or an earlier one) has finished its current message:
        so a view sent again while its hand-over runs is confirmed only when
        that is done."""
        taken = view.epoch >= self.min_epoch and view.newer_than(self.view)
        if taken:
            self.view = view
            self.view_ready.set()
            for entity in self.entities.values():
                if not entity.leaving and view.owner(entity.key) != self.name:
                    entity.leaving = True
                    entity.gone = trio.Event()
                    if not entity.busy:
                        entity.busy = True
                        self._nursery.start_soon(self._drain, entity)
        leaving = [entity.gone for entity in self.entities.values()
                   if entity.leaving and entity.gone is not None]
        for gone in leaving:
            await gone.wait()
        if taken:
            log.info('%s: view %d %s; %d entities handed over', self.name, view.epoch,
                     list(view.members), len(leaving))
        return self.view.epoch if self.view is not None else 0

    def info(self) -> dict:
        return {'worker': self.name, 'pid': os.getpid(), 'cluster': self.cluster,
                'entity_type': self.cls.__qualname__, 'entities': len(self.entities),
                'busy': sum(1 for e in self.entities.values() if e.busy),
                'handled': self.handled, 'passivated': self.passivated,
                'view': self.view.to_wire() if self.view is not None else None,
                'store': self.store.path if self.store is not None else None}


# --- this worker's host, and the functions senders call ----------------------------------

_current: Optional[EntityHost] = None
_current_ready = trio.Event()


async def _host() -> EntityHost:
    await _current_ready.wait()
    assert _current is not None
    return _current


def entity_class(module_name: str, qualname: str) -> type:
    """The entity class ``module_name.qualname``, from a module this actor
    exposes (loaded at start-up; nothing is imported here)."""
    if module_name not in current_actor().enable_modules:
        raise EntityError(f'module {module_name!r} is not loaded by this worker')
    if module_name == '__main__':
        module = sys.modules.get(MAIN_ALIAS) or sys.modules['__main__']
    else:
        module = sys.modules[module_name]
    obj: Any = module
    for part in qualname.split('.'):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        raise EntityError(f'{module_name}.{qualname} is not a class')
    return obj


async def start(cluster: str, module: str, qualname: str, passivate_after: Optional[float],
                store: Optional[str], min_epoch: int = 0) -> str:
    """Start hosting entities here, in the runtime's nursery, for the actor's
    life; return this worker's name. The cluster calls it on each worker it
    starts (again after each restart); a second call changes nothing.
    ``min_epoch``: the cluster's epoch now; an older view is not taken."""
    actor = current_actor()
    if _current is None:
        cls = entity_class(module, qualname)
        await actor.start_service(_host_entities, cluster, cls, passivate_after, store,
                                  min_epoch)
    return actor.name


async def _host_entities(cluster: str, cls: type, passivate_after: Optional[float],
                         store: Optional[str], min_epoch: int,
                         task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    global _current
    state_store = await StateStore.open(store, cluster) if store else None
    try:
        async with trio.open_nursery() as nursery:
            _current = EntityHost(cluster, cls, passivate_after, state_store, nursery,
                                  min_epoch)
            _current_ready.set()
            if passivate_after is not None:
                nursery.start_soon(_current.passivate_idle)
            task_status.started()
            await trio.sleep_forever()
    finally:
        if state_store is not None:
            with trio.CancelScope(shield=True):
                await state_store.aclose()


@context
async def session(ctx: Context) -> None:
    """One sender's session (see the module's docstring): started with the
    view this worker holds, once it holds one."""
    host = await _host()
    await host.view_ready.wait()
    assert host.view is not None
    await ctx.started(host.view.to_wire())
    async with ctx.open_stream() as stream:
        peer = _Peer(stream, host._nursery)
        try:
            async for batch in stream:
                if not isinstance(batch, list):
                    raise EntityError(f'malformed entity messages: {batch!r:.200}')
                replies = []
                for message in batch:
                    if message == ['q']:
                        return
                    reply = host.accept(peer, message)
                    if reply is not None:
                        replies.append(reply)
                if replies:
                    await peer.send(replies)
                await peer.wait_for_room()
        finally:
            peer.closed = True


async def set_members(epoch: int, members: List[str]) -> int:
    """Take the cluster's membership ``(epoch, members)`` if it is newer than
    the one held (and not older than the cluster's when this host started);
    return the epoch held (0: none). Returns once the entities this worker
    no longer owns are dropped."""
    host = await _host()
    return await host.set_view(View(epoch, members))


async def info() -> dict:
    """This worker's state: its live entities, messages handled, its view."""
    return (await _host()).info()
