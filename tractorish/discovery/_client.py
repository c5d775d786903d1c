"""Finding actors by name through the registrar.

Several actors may share a name. :func:`find_actor`, :func:`wait_for_actor`
and :func:`query_actor` then pick the one that registered last (after a
restart, the new one); :func:`find_actors` gives all of them.

:func:`find_actor`, :func:`find_actors` and :func:`query_actor` take a
registry that cannot be reached for an empty one, and so one that takes
the connection but does not answer (stopped, hung): that one with a
warning, since it is likely to be a problem.
"""
from __future__ import annotations

import logging
import math
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Tuple

import trio

from .._exceptions import TransportClosed
from ..ipc import Address, NoAnswerError, _handshake, format_addr, normalize_addr
from ..runtime import Portal, current_actor
from . import _registrar

log = logging.getLogger('tractorish.discovery')


def _registry_addrs(registry_addrs: Optional[Sequence[Address]]) -> List[Address]:
    if isinstance(registry_addrs, str) or (
            isinstance(registry_addrs, tuple) and len(registry_addrs) == 2
            and isinstance(registry_addrs[0], str) and isinstance(registry_addrs[1], int)):
        raise TypeError(f'registry_addrs is a list of addresses, not one address: '
                        f'[{registry_addrs!r}]')
    if registry_addrs:
        return [normalize_addr(a) for a in registry_addrs]
    return list(current_actor().registry_addrs)


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f'an actor name is a string, not {name!r}')


async def _answer(registry: Portal, fn: Any, **kwargs: Any) -> Any:
    """A registrar's answer to a lookup, which it gives at once: a peer that
    took the handshake and then stays silent raises :class:`NoAnswerError`
    after ``ANSWER_TIMEOUT``, as one silent from the start does."""
    timeout = _handshake.ANSWER_TIMEOUT
    with trio.move_on_after(timeout):
        return await registry.run(fn, **kwargs)
    raise NoAnswerError(f'no answer from {format_addr(registry.channel.raddr)} within '
                        f'{timeout:g} s: it took the lookup but did not answer')


@asynccontextmanager
async def get_registry(addr: Optional[Address] = None) -> AsyncIterator[Portal]:
    """A portal to the registrar at ``addr`` (default: this tree's registry).

    Raises :class:`TransportClosed` if nothing answers there.
    """
    actor = current_actor()
    target = normalize_addr(addr) if addr is not None else actor.registry_addrs[0]
    async with actor.connect_to(target) as chan:
        yield Portal(actor, chan)


def _unreachable(addr: Address, err: TransportClosed) -> None:
    """Say why the registry at ``addr`` is taken for an absent one."""
    if isinstance(err, NoAnswerError):
        log.warning('taking the registry at %s for absent: %s', format_addr(addr), err)
    else:
        log.debug('no registry at %s: %s', format_addr(addr), err)


async def _lookup(name: str, registry_addrs: Optional[Sequence[Address]]) -> List[dict]:
    """Entries for ``name`` from the first registry that has any."""
    _check_name(name)
    for addr in _registry_addrs(registry_addrs):
        try:
            async with get_registry(addr) as registry:
                entries = await _answer(registry, _registrar.find, name=name)
        except TransportClosed as err:
            _unreachable(addr, err)
            continue
        if entries:
            return entries
    return []


@asynccontextmanager
async def _portal_to(entry: dict) -> AsyncIterator[Portal]:
    actor = current_actor()
    uid = (entry['uid'][0], entry['uid'][1])
    async with actor.connect_to(normalize_addr(entry['addrs'][0]), uid=uid) as chan:
        yield Portal(actor, chan)


@asynccontextmanager
async def query_actor(name: str, registry_addrs: Optional[Sequence[Address]] = None,
                      regaddr: Optional[Address] = None,
                      ) -> AsyncIterator[Tuple[Optional[Address], Optional[Portal]]]:
    """``(address, registrar)``: where the actor called ``name`` listens
    (``None`` if no registrar knows it), and a portal to the registrar that
    answered (``None`` if none did); no connection to the actor is made.

    ``regaddr`` is tractor's way to name one registry address.
    """
    _check_name(name)
    if regaddr is not None:
        registry_addrs = [regaddr]
    for addr in _registry_addrs(registry_addrs):
        async with AsyncExitStack() as stack:
            try:
                registry = await stack.enter_async_context(get_registry(addr))
                entries = await _answer(registry, _registrar.find, name=name)
            except TransportClosed as err:
                _unreachable(addr, err)
                continue
            if entries:
                # (outside the try: an error in the caller's block is its own)
                yield normalize_addr(entries[-1]['addrs'][0]), registry
                return
    yield None, None


@asynccontextmanager
async def find_actor(name: str, registry_addrs: Optional[Sequence[Address]] = None,
                     enable_transports: Optional[Sequence[str]] = None,
                     only_first: bool = True, raise_on_none: bool = False,
                     ) -> AsyncIterator[Any]:
    """A portal to the actor called ``name``, or ``None`` if none is registered.

    The connection is closed when the block exits (a channel we already had
    to that actor, e.g. to our own child, is reused and left open). As in
    tractor: ``only_first=False`` gives a list of portals to every actor of
    that name (as :func:`find_actors`), ``raise_on_none=True`` raises
    ``RuntimeError`` instead of giving ``None``; ``enable_transports`` is
    accepted, each actor being reached on the address it registered.
    """
    entries = await _lookup(name, registry_addrs)
    if not entries and raise_on_none:
        raise RuntimeError(f'no actor registered as {name!r}')
    if not only_first:
        async with AsyncExitStack() as stack:
            yield [await stack.enter_async_context(_portal_to(e)) for e in entries]
        return
    if not entries:
        yield None
        return
    async with _portal_to(entries[-1]) as portal:
        yield portal


@asynccontextmanager
async def find_actors(name: str, registry_addrs: Optional[Sequence[Address]] = None,
                      ) -> AsyncIterator[List[Portal]]:
    """Portals to every actor registered as ``name`` (maybe none), oldest first."""
    entries = await _lookup(name, registry_addrs)
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(_portal_to(e)) for e in entries]


@asynccontextmanager
async def wait_for_actor(name: str, registry_addr: Optional[Address] = None,
                         ) -> AsyncIterator[Portal]:
    """Wait until an actor called ``name`` is registered; yield a portal to it.

    Cancellable; bound it with ``trio.fail_after`` or use
    :func:`wait_for_actors` with a timeout.
    """
    _check_name(name)
    async with get_registry(registry_addr) as registry:
        entries = await registry.run(_registrar.wait_for, name=name)
    async with _portal_to(entries[-1]) as portal:
        yield portal


@asynccontextmanager
async def wait_for_actors(*names: str, timeout: Optional[float] = None,
                          registry_addr: Optional[Address] = None,
                          ) -> AsyncIterator[Dict[str, Portal]]:
    """Wait for several actors at once; yield ``{name: portal}``.

    Raises ``TimeoutError`` naming the ones still missing after ``timeout``
    seconds (:class:`NoAnswerError`, also a ``TimeoutError``, if by then
    the registry had not even answered the connection).
    """
    for name in names:
        _check_name(name)
    found: Dict[str, dict] = {}
    reached = False
    with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
        async with get_registry(registry_addr) as registry:
            reached = True
            async def wait_one(name: str) -> None:
                found[name] = (await registry.run(_registrar.wait_for, name=name))[-1]
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(wait_one, name)
    if scope.cancelled_caught and not reached:
        addr = registry_addr if registry_addr is not None else current_actor().registry_addrs[0]
        raise NoAnswerError(f'the registry at {format_addr(normalize_addr(addr))} did not '
                            f'answer within {timeout} s')
    if scope.cancelled_caught:
        missing = [n for n in names if n not in found]
        raise TimeoutError(f'no actor registered as {", ".join(map(repr, missing))} '
                           f'within {timeout} s')
    async with AsyncExitStack() as stack:
        yield {name: await stack.enter_async_context(_portal_to(found[name]))
               for name in names}


async def list_actors(registry_addr: Optional[Address] = None) -> List[dict]:
    """Every actor the registrar knows (name, uid, addrs, pid, host, parent, started_at)."""
    async with get_registry(registry_addr) as registry:
        return await _answer(registry, _registrar.list_actors)
