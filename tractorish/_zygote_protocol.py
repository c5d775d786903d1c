"""The control messages between a spawning actor and its zygote, defined once.

The actor (``spawn/_zygote_client.py``) and its zygote (``_zygote.py``)
talk over a Unix ``SOCK_SEQPACKET`` socket, the zygote's stdin: one msgpack
map per packet. A request is also handed, packet and all, to the child
that serves it (``_child.run_spare``). Every message is built by
:func:`pack` and read by :func:`unpack`, both checked against
:data:`MESSAGES`; a message that breaks the table is a
:class:`ControlMessageError` that quotes it.

This module knows no sockets and no processes.
"""
from __future__ import annotations

import reprlib
from typing import Any, Dict, Tuple, Union

import msgpack

from ._exceptions import InternalError

REQUEST = 'request'  # actor -> zygote (-> the child that serves it)
REPLY = 'reply'      # zygote -> actor

# A message's kind is the one key of the table it holds; the value under
# that key comes first in its field list. A message holds exactly its
# kind's fields, of these types.
MESSAGES: Dict[str, Tuple[str, Dict[str, Union[type, Tuple[type, ...]]]]] = {
    # start an actor from ``boot`` (its bootstrap); the request's id under
    # ``fork``; the child's stderr pipe travels with it (SCM_RIGHTS)
    'fork': (REQUEST, {'fork': int, 'boot': dict}),
    # once, when the zygote has imported what every actor needs: its pid
    'ready': (REPLY, {'ready': int}),
    # request ``forked`` is served by the child ``pid``
    'forked': (REPLY, {'forked': int, 'pid': int}),
    # request ``failed`` could not be served (None: a request the zygote
    # could not read, so it cannot say which)
    'failed': (REPLY, {'failed': (int, type(None)), 'error': str}),
    # the child ``exited`` ended with ``code`` (negative: killed by a signal)
    'exited': (REPLY, {'exited': int, 'code': int}),
}

# what the zygote learns from its environment, read and removed at its
# start: the pid it must die with, and whether it keeps a spare ('1' or '0')
PARENT_ENV = 'TRACTORISH_ZYGOTE_PARENT'
SPARE_ENV = 'TRACTORISH_ZYGOTE_SPARE'

# the largest request packet: the zygote reads it, and the child it is
# handed to reads it again
REQUEST_MAX = 1 << 20

_quote = reprlib.Repr()
_quote.maxstring = _quote.maxother = 200


class ControlMessageError(InternalError):
    """A control message between an actor and its zygote breaks
    :data:`MESSAGES`; the text quotes the message."""


def pack(kind: str, **fields: Any) -> bytes:
    """The packet of a ``kind`` message with these fields.

    Raises :class:`ControlMessageError` if they are not the kind's fields.
    """
    message = {kind: fields.pop(kind, None), **fields}
    _check(message, _direction_of(kind))
    return msgpack.packb(message, use_bin_type=True)


def unpack(data: bytes, direction: str) -> Tuple[str, Dict[str, Any]]:
    """The kind and the fields of a packet sent in ``direction``
    (:data:`REQUEST` or :data:`REPLY`).

    Raises :class:`ControlMessageError` if it is not msgpack or not one of
    that direction's messages.
    """
    try:
        message = msgpack.unpackb(data, raw=False)
    except Exception as err:
        raise ControlMessageError(
            f'a zygote {direction} that is not msgpack ({err}): {_quote.repr(data)}') from None
    return _check(message, direction), message


def request_id(data: bytes) -> Any:
    """The id of a request packet, if it has one, however malformed the
    rest (for the reply that says it failed); else None."""
    try:
        message = msgpack.unpackb(data, raw=False)
    except Exception:
        return None
    found = message.get('fork') if isinstance(message, dict) else None
    return found if type(found) is int else None


def _direction_of(kind: str) -> str:
    try:
        return MESSAGES[kind][0]
    except KeyError:
        raise ControlMessageError(f'no zygote message is called {kind!r}') from None


def _check(message: Any, direction: str) -> str:
    """The kind of ``message``; raises if it breaks the table."""
    if not isinstance(message, dict):
        raise ControlMessageError(f'a zygote {direction} is not a map: {_quote.repr(message)}')
    kinds = [k for k in message if k in MESSAGES and MESSAGES[k][0] == direction]
    if len(kinds) != 1:
        raise ControlMessageError(
            f'a zygote {direction} must hold exactly one of '
            f'{sorted(k for k, (d, _) in MESSAGES.items() if d == direction)}: '
            f'{_quote.repr(message)}')
    kind = kinds[0]
    fields = MESSAGES[kind][1]
    if set(message) != set(fields):
        raise ControlMessageError(
            f'a zygote {kind!r} message must hold the fields {sorted(fields)}, '
            f'not {sorted(map(str, message))}: {_quote.repr(message)}')
    for name, types in fields.items():
        value = message[name]
        # bool is an int to isinstance, never to this protocol
        if isinstance(value, bool) or not isinstance(value, types):
            raise ControlMessageError(
                f'field {name!r} of a zygote {kind!r} message is {_quote.repr(value)}: '
                f'not {_type_names(types)}')
    return kind


def _type_names(types: Union[type, Tuple[type, ...]]) -> str:
    listed = types if isinstance(types, tuple) else (types,)
    return ' or '.join('None' if t is type(None) else t.__name__ for t in listed)
