"""``Aid``: an actor's identity as tractor names it (sans-I/O, plain data)."""
from __future__ import annotations

from typing import Any, Optional, Tuple


class Aid:
    """An actor's id: its ``name``, ``uuid`` and, when known, ``pid``.

    ``uid`` is the ``(name, uuid)`` pair the wire protocol and older
    tractor code use. Two ids are equal when their ``uid`` is: the pid is
    what the peer said of itself, not part of who it is.
    """

    __slots__ = ('name', 'uuid', 'pid')
    name: str
    uuid: str
    pid: Optional[int]

    def __init__(self, name: str, uuid: str, pid: Optional[int] = None) -> None:
        object.__setattr__(self, 'name', name)
        object.__setattr__(self, 'uuid', uuid)
        object.__setattr__(self, 'pid', pid)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError('an Aid is read-only')

    @property
    def uid(self) -> Tuple[str, str]:
        return (self.name, self.uuid)

    def reprol(self, sin_uuid: bool = True) -> str:
        """A one-line form: ``name@pid``, or ``name[uuid]@pid`` if asked."""
        text = self.name if sin_uuid else f'{self.name}[{self.uuid[:8]}]'
        return f'{text}@{self.pid}' if self.pid is not None else text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Aid):
            return self.uid == other.uid
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.uid)

    def __repr__(self) -> str:
        return f'Aid(name={self.name!r}, uuid={self.uuid!r}, pid={self.pid!r})'
