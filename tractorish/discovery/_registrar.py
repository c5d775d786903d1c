"""The registrar: ``name -> [entries]``, served by one actor of a tree.

An actor registers by opening the :func:`register` context and keeping it
open for its whole life: when it exits, or dies and its channel drops, the
context ends and its entry goes with it. Only the registrar exposes this
module; the lookups are plain functions.
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Tuple

import trio

from ..runtime import Context, context

MODULE = __name__

Uid = Tuple[str, str]


class Registry:
    """The registered actors, in the order they registered."""

    def __init__(self) -> None:
        self._entries: Dict[Uid, dict] = {}
        self._order = itertools.count()
        self._changed = trio.lowlevel.ParkingLot()

    def add(self, entry: dict) -> Tuple[Uid, int]:
        """Register ``entry``; return the key and sequence number that remove it."""
        uid = (entry['uid'][0], entry['uid'][1])
        seq = next(self._order)
        self._entries.pop(uid, None)  # re-registering moves it to the end
        self._entries[uid] = {**entry, 'seq': seq}
        self._changed.unpark_all()
        return uid, seq

    def remove(self, uid: Uid, seq: int) -> None:
        entry = self._entries.get(uid)
        if entry is not None and entry['seq'] == seq:  # not a newer registration
            del self._entries[uid]
            self._changed.unpark_all()

    def find(self, name: str) -> List[dict]:
        return [e for e in self._entries.values() if e['name'] == name]

    def all(self) -> List[dict]:
        return list(self._entries.values())

    async def wait_for(self, name: str) -> List[dict]:
        while not self.find(name):
            await self._changed.park()
        return self.find(name)


REGISTRY = Registry()


def check_entry(entry: object) -> dict:
    """An entry as sent by a registering actor; ``ValueError`` names a bad one."""
    if not isinstance(entry, dict):
        raise ValueError(f'a registry entry must be a map, not {type(entry).__name__}')
    uid = entry.get('uid')
    if not (isinstance(entry.get('name'), str) and isinstance(uid, list) and len(uid) == 2
            and all(isinstance(u, str) for u in uid) and uid[0] == entry['name']):
        raise ValueError('a registry entry needs a name and a matching uid [name, uuid]')
    if not isinstance(entry.get('addrs'), list) or not entry['addrs']:
        raise ValueError('a registry entry needs a non-empty list of addresses')
    return entry


@context
async def register(ctx: Context, entry: dict) -> None:
    """Keep ``entry`` registered while this context stays open."""
    uid, seq = REGISTRY.add(check_entry(entry))
    try:
        await ctx.started(True)
        await trio.sleep_forever()
    finally:
        REGISTRY.remove(uid, seq)


async def find(name: str) -> List[dict]:
    """Every actor registered as ``name``, oldest first."""
    return REGISTRY.find(name)


async def wait_for(name: str) -> List[dict]:
    """Like :func:`find`, but waits until there is at least one."""
    return await REGISTRY.wait_for(name)


async def list_actors() -> List[dict]:
    """Every registered actor, oldest first."""
    return REGISTRY.all()
