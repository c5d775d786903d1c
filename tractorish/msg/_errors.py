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
from types import CodeType
from typing import Any, Dict, Optional, Sequence, Tuple

from .._compat import BaseExceptionGroup
from .._exceptions import ContextCancelled, RemoteActorError

# the module name a child gives the parent's main script (see spawn)
MAIN_ALIAS = '__mp_main__'

# The formatted frames of tracebacks already seen, by the file, code and
# instruction of each frame: what traceback prints of a frame follows from
# those alone (its file, line, function, source line and markers), and
# formatting them (reading the source, parsing it for the markers) is most
# of a remote error's cost (docs/performance.md). (The file, because equal
# code objects compiled from two files compare equal.) Bounded; code
# objects live as long as their functions anyway.
_FRAMES: Dict[Tuple[Tuple[str, CodeType, int], ...], str] = {}
_FRAMES_KEPT = 256
_TRACEBACK_HEAD = 'Traceback (most recent call last):\n'


def format_traceback(exc: BaseException) -> str:
    """``''.join(traceback.format_exception(exc))``, remembering the frames.

    An exception with a cause or context, or a group, is formatted in full
    each time: its text is more than its own frames; so is any while
    ``sys.tracebacklimit`` is set. A source file edited while the process
    runs keeps showing the lines it had when its frame was first formatted
    (which are the ones that ran).
    """
    tb = exc.__traceback__
    if (tb is None or exc.__cause__ is not None or isinstance(exc, BaseExceptionGroup)
            or (exc.__context__ is not None and not exc.__suppress_context__)
            or getattr(sys, 'tracebacklimit', None) is not None):
        return ''.join(traceback.format_exception(type(exc), exc, tb))
    where = []
    while tb is not None:
        code = tb.tb_frame.f_code
        where.append((code.co_filename, code, tb.tb_lasti))
        tb = tb.tb_next
    key = tuple(where)
    frames = _FRAMES.get(key)
    if frames is None:
        frames = ''.join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
        if len(_FRAMES) >= _FRAMES_KEPT:
            _FRAMES.clear()
        _FRAMES[key] = frames
    return _TRACEBACK_HEAD + frames + ''.join(traceback.format_exception_only(type(exc), exc))


def _type_path(cls: type) -> str:
    module = cls.__module__
    if module == MAIN_ALIAS:
        module = '__main__'
    return f'{module}.{cls.__qualname__}'


def _safely(describe: Any, exc: BaseException) -> str:
    """``describe(exc)``, or a text saying it failed: an exception whose
    ``__str__`` raises must still travel."""
    try:
        return describe(exc)
    except Exception as err:
        return (f'<{type(exc).__name__} object: its text could not be made '
                f'({type(err).__name__}: {err!r:.200})>')


def _encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot hold (lone surrogates) escaped."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return text.encode('utf-8', 'backslashreplace').decode('utf-8')
    return text


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
        'tb_str': _encodable(_safely(format_traceback, exc)),
        'src_uid': list(src_uid),
        'boxed_type_path': _type_path(type(exc)),
        'message': _encodable(_safely(str, exc)),
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
