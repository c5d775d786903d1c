"""Every actor's part in discovery, run as a runtime startup service.

A root with no registry answering becomes the registrar (it listens on the
registry address too and exposes the registrar module). Every actor then
registers, and keeps re-registering with backoff if the registrar goes away,
so a restarted registrar is repopulated.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
from typing import Any, Callable, Optional

import trio

from .._exceptions import AuthenticationError, RemoteActorError, TransportClosed
from ..ipc import Address, NoAnswerError, addr_to_wire, format_addr, open_stream_to
from ..runtime import Actor, Portal
from . import _registrar

log = logging.getLogger('tractorish.discovery')

PROBE_TIMEOUT = 1.0
RETRY_MIN, RETRY_MAX = 0.2, 5.0
# s for an attempt to register (see keep_registered): one that neither
# registers nor fails by then (a registry that takes the connection and the
# handshake and then says nothing) is retried
REGISTRATION_TIMEOUT = 5.0


def own_entry(actor: Actor) -> dict:
    return {
        'name': actor.name,
        'uid': list(actor.uid),
        'addrs': [addr_to_wire(a) for a in actor.listen_addrs],
        'pid': os.getpid(),
        'host': socket.gethostname(),
        'parent': list(actor.parent_uid) if actor.parent_uid else None,
        'started_at': actor.started_at,
    }


async def answers(addr: Address) -> bool:
    """True if something accepts connections at ``addr``."""
    with trio.move_on_after(PROBE_TIMEOUT):
        try:
            stream = await open_stream_to(addr)
        except TransportClosed:
            return False
        await stream.aclose()
        return True
    return False


def is_registrar(actor: Actor) -> bool:
    return _registrar.MODULE in actor.enable_modules


async def become_registrar(actor: Actor, addr: Address) -> None:
    await actor.listen_on(addr)
    actor.expose_module(_registrar.MODULE)
    actor.registrar_addr = addr  # children it spawns register in their hello
    log.info('%r is the registrar at %s', actor, format_addr(addr))


async def discovery_service(actor: Actor, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    mode = actor.config.discovery
    if mode == 'off' or not actor.registry_addrs:
        task_status.started()
        return
    addr = actor.registry_addrs[0]
    if actor.is_root and (mode == 'serve' or (mode == 'auto' and not await answers(addr))):
        try:
            await become_registrar(actor, addr)
        except OSError as err:
            if mode == 'serve':
                raise OSError(err.errno, f'cannot serve the registry at '
                                         f'{format_addr(addr)}: {err.strerror or err}') from err
            log.debug('another root became the registrar first: %s', err)
    if mode == 'client':
        task_status.started()
        return
    if is_registrar(actor):
        uid, seq = _registrar.REGISTRY.add(own_entry(actor))
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            _registrar.REGISTRY.remove(uid, seq)
        return
    async with trio.open_nursery() as nursery:
        for registry_addr in actor.registry_addrs:
            if registers_through_parent(actor) and registry_addr == actor.parent_registrar_addr:
                continue  # our hello to the parent registers us there
            await nursery.start(keep_registered, actor, registry_addr)
        task_status.started()


def registers_through_parent(actor: Actor) -> bool:
    """True if ``actor`` registers in its handshake with its parent, the registrar.

    A child of the registrar would otherwise open a second connection to
    its parent's process, and a context on it, only to register: the
    handshake's ``info`` message carries the entry instead, and the registrar keeps it while the channel
    to its child lasts (the child's life: it ends without its parent).
    """
    return (actor.parent_addr is not None and actor.parent_registrar_addr is not None
            and actor.config.discovery not in ('off', 'client')
            and actor.parent_registrar_addr in actor.registry_addrs)


def registration_for_parent(actor: Actor) -> dict:
    """What ``actor`` adds to its hello to its parent to register there."""
    return {'register': own_entry(actor)} if registers_through_parent(actor) else {}


def register_announced(actor: Actor, chan: Any) -> Optional[Callable[[], None]]:
    """Channel hook: keep the entry a peer's hello carried while its channel
    lasts, if this actor is the registrar (see :func:`registers_through_parent`)."""
    entry = chan.peer_info.get('register')
    if entry is None or not is_registrar(actor):
        return None
    try:
        _registrar.check_entry(entry)
        if tuple(entry['uid']) != chan.peer_uid:
            raise ValueError(f'the entry is for {entry["uid"]}, not for the peer')
    except ValueError as err:
        log.warning('%r: not registering %r from its hello: %s', actor, chan.peer_uid, err)
        return None
    uid, seq = _registrar.REGISTRY.add(entry)
    return functools.partial(_registrar.REGISTRY.remove, uid, seq)


async def keep_registered(actor: Actor, addr: Address,
                          task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Stay registered at ``addr`` for the actor's life; reconnect if it drops.

    Reports started after the first attempt, whether it worked or not, so a
    missing registry delays an actor's start by at most a few seconds: the
    first attempt, connecting included, is bounded by
    ``REGISTRATION_TIMEOUT``; a later one is bounded by it once connected
    (connecting has its own time limits), so a slow registry is waited for.
    """
    reported = refused = silent = False
    delay = RETRY_MIN
    while True:
        try:
            with trio.CancelScope() as scope:
                if not reported:
                    scope.deadline = trio.current_time() + REGISTRATION_TIMEOUT
                async with actor.connect_to(addr) as chan:
                    if reported:
                        scope.deadline = trio.current_time() + REGISTRATION_TIMEOUT
                    portal = Portal(actor, chan)
                    async with portal.open_context(
                            _registrar.register, entry=own_entry(actor)) as (ctx, _):
                        scope.deadline = float('inf')
                        delay = RETRY_MIN
                        refused = silent = False
                        if not reported:
                            reported = True
                            task_status.started()
                        await trio.sleep_forever()
            if scope.cancelled_caught:
                silent = _say_silent(actor, addr, silent, f'no registration within '
                                                          f'{REGISTRATION_TIMEOUT:g} s')
        except AuthenticationError as err:
            # a wrong secret will not fix itself: say so once, loudly
            (log.debug if refused else log.warning)(
                '%r: the registry at %s refused us: %s', actor, format_addr(addr), err)
            refused = True
        except NoAnswerError as err:
            silent = _say_silent(actor, addr, silent, str(err))
        except (TransportClosed, RemoteActorError, OSError) as err:
            log.debug('%r: registry at %s unavailable: %s', actor, format_addr(addr), err)
        if not reported:
            reported = True
            task_status.started()
        await trio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)


def _say_silent(actor: Actor, addr: Address, said: bool, why: str) -> bool:
    """Log, once loudly, that the registry at ``addr`` takes connections but
    does not answer (stopped or hung); we run unregistered meanwhile."""
    (log.debug if said else log.warning)(
        '%r: the registry at %s does not answer (%s); running unregistered, '
        'retrying', actor, format_addr(addr), why)
    return True
