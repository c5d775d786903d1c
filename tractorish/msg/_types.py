"""Message shapes: constructors and validation (sans-I/O).

The rules, as data (docs/protocol.md). Every message is one map:

=================  ============================================  ===========
kind               shape                                          direction
=================  ============================================  ===========
``hello``          ``{'hello': {'uid': [name, uuid], 'proto': 2,  each way,
                   'nonce': bytes}}``                             first
``auth``           ``{'auth': bytes}``                            handshake
``info``           ``{'info': {str: value, ...}}``                handshake,
                                                                  after auth
``cmd``            ``{'cmd': [ns, func, kwargs, uid, cid]}``,     caller→callee
                   or with ``'meta': {str: value}`` too (a trace
                   context: ``{'trace': {'traceparent': ...}}``)
``functype``       ``{'functype': t, 'cid': cid}``                callee→caller
``return``         ``{'return': value, 'cid': cid}``              callee→caller
``started``        ``{'started': value, 'cid': cid}``             callee→caller
``yield``          ``{'yield': value, 'cid': cid}``               both ways
``stop``           ``{'stop': True, 'cid': cid}``                 both ways
``credit``         ``{'credit': n, 'cid': cid}``                  both ways
``error``          ``{'error': {...}, 'cid': cid}``               both ways
=================  ============================================  ===========

:func:`check_message` is on the per-message path: it does the least work
that still rejects every shape a handler could trip over.
"""
from __future__ import annotations

import reprlib
from typing import Any, Dict, Optional, Sequence

from .._exceptions import ProtocolError

# 2: proofs bind no socket address, and nothing but the uid goes out
# before the peer's proof is checked (the rest follows in 'info')
PROTOCOL_VERSION = 2

FUNCTYPES = frozenset({'asyncfunc', 'asyncgen', 'context'})
FUNCTYPE_LIST = tuple(sorted(FUNCTYPES))  # (for the hot paths; see check_message)

# kinds keyed by cid, with the type their payload must have (None: any)
_CID_KINDS: Dict[str, Optional[type]] = {
    'functype': str,
    'return': None,
    'started': None,
    'yield': None,
    'stop': None,
    'error': dict,
    'credit': int,
}
MAX_CREDIT = 1 << 20
# the error payload's required fields
ERROR_FIELDS = ('type_str', 'tb_str', 'src_uid', 'boxed_type_path')


_short_repr = reprlib.Repr()
_short_repr.maxlevel = 4
_short_repr.maxstring = _short_repr.maxother = 60


def _fail(msg: Any, why: str) -> ProtocolError:
    text = _short_repr.repr(msg)
    return ProtocolError(f'{why}: {text}')


def check_message(msg: Any) -> dict:
    """Return ``msg`` if it has a valid shape, else raise ProtocolError."""
    if type(msg) is not dict:
        raise _fail(msg, 'a message must be a map')
    if len(msg) == 2:
        if type(msg.get('cid')) is str:
            # the most common messages first: any payload goes (and a tuple's
            # `in` compares, so a functype that is no str is no error here)
            if 'yield' in msg or 'return' in msg or msg.get('functype') in FUNCTYPE_LIST:
                return msg
            for kind, payload in msg.items():
                if kind == 'cid':
                    continue
                if kind not in _CID_KINDS:
                    raise _fail(msg, f'unknown message kind {kind!r}')
                want = _CID_KINDS[kind]
                if want is not None and type(payload) is not want:
                    raise _fail(msg, f'bad {kind!r} payload')
                if kind == 'functype' and payload not in FUNCTYPES:
                    raise _fail(msg, f'unknown functype {payload!r}')
                if kind == 'error' and not _error_payload_ok(payload):
                    raise _fail(msg, 'malformed error payload')
                if kind == 'credit' and not 0 < payload <= MAX_CREDIT:
                    raise _fail(msg, 'credit must be between 1 and 2**20')
            return msg
        if 'cmd' in msg and _check_info(msg.get('meta')):  # a call with metadata
            _check_cmd(msg)
            return msg
    elif len(msg) == 1:
        if 'cmd' in msg:
            _check_cmd(msg)
            return msg
        if 'hello' in msg:
            _check_hello(msg)
            return msg
        if 'auth' in msg and type(msg['auth']) is bytes:
            return msg
        if 'info' in msg and _check_info(msg['info']):
            return msg
    raise _fail(msg, 'unknown message shape')


def _error_payload_ok(payload: dict) -> bool:
    if not all(type(payload.get(f)) is str for f in ('type_str', 'tb_str', 'boxed_type_path')):
        return False
    src = payload.get('src_uid', 0)
    relays = payload.get('relay_uids', [])
    return ((src is None or _check_uid(src) or src == [])
            and type(relays) is list and all(_check_uid(u) for u in relays)
            and type(payload.get('message', '')) is str)


def _check_uid(uid: Any) -> bool:
    return (type(uid) is list and len(uid) == 2
            and type(uid[0]) is str and type(uid[1]) is str)


def _check_cmd(msg: dict) -> None:
    cmd = msg['cmd']
    if not (type(cmd) is list and len(cmd) == 5):
        raise _fail(msg, "'cmd' must be [ns, func, kwargs, uid, cid]")
    ns, func, kwargs, uid, cid = cmd
    if type(ns) is not str or type(func) is not str or type(cid) is not str:
        raise _fail(msg, "'cmd' ns, func and cid must be strings")
    if type(kwargs) is not dict:
        raise _fail(msg, "'cmd' kwargs must be a map with string keys")
    for key in kwargs:  # (a loop, not all(): this runs for every call)
        if type(key) is not str:
            raise _fail(msg, "'cmd' kwargs must be a map with string keys")
    if not _check_uid(uid):
        raise _fail(msg, "'cmd' uid must be [name, uuid]")


def _check_hello(msg: dict) -> None:
    hello = msg['hello']
    if type(hello) is not dict or not _check_uid(hello.get('uid')):
        raise _fail(msg, "'hello' must carry a uid [name, uuid]")
    if type(hello.get('proto')) is not int or type(hello.get('nonce')) is not bytes:
        raise _fail(msg, "'hello' must carry an int proto and a bytes nonce")


def _check_info(info: Any) -> bool:
    return type(info) is dict and all(type(key) is str for key in info)


def message_kind(msg: dict) -> str:
    """The kind of a checked message (its non-``cid`` key)."""
    for key in msg:
        if key != 'cid':
            return key
    raise _fail(msg, 'message has no kind')


# --- constructors -----------------------------------------------------------

def cmd(ns: str, func: str, kwargs: dict, uid: Sequence[str], cid: str,
        meta: Optional[dict] = None) -> dict:
    """A call; ``meta`` is its optional metadata (a trace context)."""
    if meta is None:
        return {'cmd': [ns, func, kwargs, list(uid), cid]}
    return {'cmd': [ns, func, kwargs, list(uid), cid], 'meta': meta}


def functype(kind: str, cid: str) -> dict:
    return {'functype': kind, 'cid': cid}


def return_(value: Any, cid: str) -> dict:
    return {'return': value, 'cid': cid}


def started(value: Any, cid: str) -> dict:
    return {'started': value, 'cid': cid}


def yield_(value: Any, cid: str) -> dict:
    return {'yield': value, 'cid': cid}


def stop(cid: str) -> dict:
    return {'stop': True, 'cid': cid}


def credit(n: int, cid: str) -> dict:
    return {'credit': n, 'cid': cid}


def error(payload: dict, cid: str) -> dict:
    return {'error': payload, 'cid': cid}


def hello(uid: Sequence[str], nonce: bytes, **extra: Any) -> dict:
    """The first message each way. The runtime sends no ``extra``: what
    else it says about itself waits for :func:`info`, after the proofs."""
    return {'hello': {'uid': list(uid), 'proto': PROTOCOL_VERSION,
                      'nonce': nonce, **extra}}


def auth(mac: bytes) -> dict:
    return {'auth': mac}


def info(fields: Dict[str, Any]) -> dict:
    """The last handshake message each way, sent once the peer's proof has
    been checked: what the sender tells an authenticated peer about itself."""
    return {'info': dict(fields)}
