"""Which worker owns a key: rendezvous (highest-random-weight) hashing.

Pure code, no I/O. Every party (the cluster, each worker, each zero-hop
client) computes the owner of a key from the same :class:`View` and gets
the same answer: the member whose hash of ``member + key`` is highest.
Removing a member moves only the keys it owned (each to the member that
scored second for it); adding one moves only the keys it now wins. The
hash is blake2b, the same in every process (Python's ``hash()`` of a
string is salted per process, so it cannot be used here).
"""
from __future__ import annotations

from hashlib import blake2b
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

_SEPARATOR = b'\x00'  # a member name never contains it: ('a', 'bc') != ('ab', 'c')


def score(member: str, key: str) -> int:
    """The weight of ``member`` for ``key``: 64 bits of blake2b."""
    digest = blake2b(member.encode() + _SEPARATOR + key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big')


def owner_of(key: str, members: Sequence[str]) -> str:
    """The member that owns ``key``: the highest score, ties to the greater name.

    Raises ``LookupError`` if there are no members.
    """
    if not members:
        raise LookupError(f'no live worker to own key {key!r}')
    return max(members, key=lambda member: (score(member, key), member))


class View:
    """One version of a cluster's membership: an epoch and the live workers.

    Epochs only grow: the cluster that runs the workers makes a new view,
    with the next epoch, each time a worker leaves or joins; a party that
    holds two views keeps the one with the higher epoch.
    """

    __slots__ = ('epoch', 'members', '_owners')

    # owners computed under this view, kept up to this many keys
    CACHE_SIZE = 65536

    def __init__(self, epoch: int, members: Iterable[str]) -> None:
        self.epoch = epoch
        self.members: Tuple[str, ...] = tuple(sorted(set(members)))
        self._owners: Dict[str, str] = {}

    def __repr__(self) -> str:
        return f'View(epoch={self.epoch}, members={list(self.members)})'

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, View) and other.epoch == self.epoch
                and other.members == self.members)

    def owner(self, key: str) -> str:
        """The member owning ``key`` in this view (``LookupError`` if none)."""
        try:
            return self._owners[key]
        except KeyError:
            pass
        member = owner_of(key, self.members)
        if len(self._owners) >= self.CACHE_SIZE:
            self._owners.clear()
        self._owners[key] = member
        return member

    def newer_than(self, other: Optional['View']) -> bool:
        return other is None or self.epoch > other.epoch

    def to_wire(self) -> Dict[str, Any]:
        return {'epoch': self.epoch, 'members': list(self.members)}

    @classmethod
    def from_wire(cls, data: Any) -> Optional['View']:
        """A view sent by a worker (``None`` for none, or a malformed one)."""
        if not isinstance(data, dict):
            return None
        epoch, members = data.get('epoch'), data.get('members')
        if not isinstance(epoch, int) or not isinstance(members, list) \
                or not all(isinstance(m, str) for m in members):
            return None
        return cls(epoch, members)
