"""Packing exceptions into ``error`` payloads and back (sans-I/O).

A packed error is plain data: ``type_str``, ``tb_str``, ``src_uid``,
``boxed_type_path`` (``module.QualName``), ``message`` and ``relay_uids``.
Unpacking looks the type up only among modules this process has already
imported: a peer can name any path, and importing what it names would let
it run module-level code here.
"""
from __future__ import annotations

import builtins
import sys
import traceback
from typing import Any, Optional, Sequence

from .._exceptions import ContextCancelled, RemoteActorError

# the module name a child gives the parent's main script (see spawn)
MAIN_ALIAS = '__mp_main__'


def _type_path(cls: type) -> str:
    module = cls.__module__
    if module == MAIN_ALIAS:
        module = '__main__'
    return f'{module}.{cls.__qualname__}'


def pack_error(exc: BaseException, src_uid: Sequence[str],
               **extra: Any) -> dict:
    """Pack ``exc`` for the wire, as raised in the actor ``src_uid``.

    An already remote error keeps its origin and gains this actor as a relay.
    """
    if isinstance(exc, RemoteActorError):
        payload = dict(exc.payload) if exc.payload else {}
        payload.update(
            type_str=exc.type_str, tb_str=exc.tb_str,
            src_uid=list(exc.src_uid or ()), message=exc.message,
            boxed_type_path=exc.boxed_type_path,
            relay_uids=[list(u) for u in exc.relay_uids] + [list(src_uid)])
        payload.update(extra)
        return payload
    payload = {
        'type_str': type(exc).__name__,
        'tb_str': ''.join(traceback.format_exception(
            type(exc), exc, exc.__traceback__)),
        'src_uid': list(src_uid),
        'boxed_type_path': _type_path(type(exc)),
        'message': str(exc),
        'relay_uids': [],
    }
    payload.update(extra)
    return payload


def resolve_type(path: str) -> Optional[type]:
    """The exception class at ``path`` if it is already imported here."""
    parts = path.split('.')
    # the longest imported module prefix, then the qualname inside it
    for cut in range(len(parts) - 1, 0, -1):
        module_name = '.'.join(parts[:cut])
        if module_name == 'builtins':
            module: Any = builtins
        elif module_name == '__main__':
            module = sys.modules.get(MAIN_ALIAS) or sys.modules.get('__main__')
        else:
            module = sys.modules.get(module_name)
        if module is None:
            continue
        obj: Any = module
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
        return None
    return None


def unpack_error(payload: dict) -> RemoteActorError:
    """Rebuild the :class:`RemoteActorError` described by ``payload``."""
    path = str(payload.get('boxed_type_path', ''))
    boxed = resolve_type(path)
    cls = ContextCancelled if boxed is ContextCancelled else RemoteActorError
    src = payload.get('src_uid')
    return cls(
        str(payload.get('message', '')),
        type_str=str(payload.get('type_str', '')),
        tb_str=str(payload.get('tb_str', '')),
        src_uid=tuple(src) if src else None,  # type: ignore[arg-type]
        boxed_type_path=path, boxed_type=boxed,
        relay_uids=[tuple(u) for u in payload.get('relay_uids') or ()],
        payload=payload)


def pack_cancelled(src_uid: Sequence[str], canceller: Optional[Sequence[str]],
                   what: str) -> dict:
    """The payload telling a caller its remote task was cancelled."""
    who = f'actor {canceller[0]!r}' if canceller else 'its actor shutting down'
    return {
        'type_str': 'ContextCancelled',
        'tb_str': '',
        'src_uid': list(src_uid),
        'boxed_type_path': _type_path(ContextCancelled),
        'message': f'{what} was cancelled by {who}',
        'relay_uids': [],
        'canceller': list(canceller) if canceller else None,
    }
