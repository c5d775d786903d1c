"""msgpack encoding and the framing decoder (sans-I/O).

Messages travel back to back on a byte stream with no length prefix: each
is one msgpack map. :class:`Decoder` is fed whatever bytes arrive and hands
out whole, shape-checked messages. It never buffers more than the size
limit: a message that does not fit is a :class:`ProtocolError`.

This module touches no socket, no trio, no process.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import msgpack

from .._exceptions import MsgTypeError, ProtocolError
from ._types import check_message

DEFAULT_MAX_MSG_SIZE = 32 * 1024 * 1024

# The errors msgpack raises on malformed input; each becomes ProtocolError.
_MSGPACK_ERRORS = (
    msgpack.FormatError, msgpack.StackError, msgpack.BufferFull,
    msgpack.OutOfData, ValueError, TypeError, UnicodeDecodeError,
    OverflowError,
)

# ``{'yield': value, 'cid': cid}`` as bytes is this, then the value, then the
# cid part: a stream's values are encoded without building a map each
_YIELD_HEAD = b'\x82' + msgpack.packb('yield')
_CID_KEY = msgpack.packb('cid')
# and a plain call's two replies, ``{'functype': 'asyncfunc', 'cid': cid}``
# then ``{'return': value, 'cid': cid}``, likewise (see Encoder.encode_reply)
_ASYNCFUNC_HEAD = b'\x82' + msgpack.packb('functype') + msgpack.packb('asyncfunc')
_RETURN_HEAD = b'\x82' + msgpack.packb('return')
# what the first of those starts with, up to the cid's own bytes
_FUNCTYPE_CID = _ASYNCFUNC_HEAD + _CID_KEY
_FUNCTYPE_CID_LEN = len(_FUNCTYPE_CID)
# A read this small is decoded with unpackb, message by message, which costs
# less than the streaming unpacker for the one or two messages of a call's
# round trip; a burst's reads hold many messages, and there one ExtraData
# (and a copy of the rest) per message would cost more.
ONE_SHOT_MAX = 512
_unpackb = msgpack.unpackb
# values that hold no others (see Encoder.encode_yield)
_FLAT = frozenset({int, float, str, bytes, bool, type(None)})
# how many cids' encoded tails an encoder remembers before starting over
_TAILS_KEPT = 256


def check_encodable(values: Dict[str, Any]) -> None:
    """Raise :class:`MsgTypeError` if msgpack cannot encode ``values`` (a
    call's arguments, say, for a sender that learns of no later failure);
    their size is the channel's to check. Plain values are not tried."""
    if all(type(value) in _FLAT for value in values.values()):
        return
    try:
        msgpack.packb(values, use_bin_type=True, datetime=True)
    except (TypeError, ValueError, OverflowError) as err:
        raise MsgTypeError(f'cannot encode to msgpack: {err}') from None


class Encoder:
    """Turns messages into bytes; one per channel (not shared by threads)."""

    def __init__(self, max_msg_size: int = DEFAULT_MAX_MSG_SIZE) -> None:
        self.max_msg_size = max_msg_size
        self._packer = msgpack.Packer(use_bin_type=True, datetime=True)
        self._tails: Dict[str, bytes] = {}  # cid -> its encoded 'cid' entry

    def encode(self, msg: Any) -> bytes:
        """Encode one message; raise :class:`MsgTypeError` if it cannot be."""
        try:
            data = self._packer.pack(msg)
        except (TypeError, ValueError, OverflowError) as err:
            raise self._failed(err) from err
        if len(data) > self.max_msg_size:
            raise self._too_big(data)
        return data

    def encode_yield(self, value: Any, cid: str) -> bytes:
        """``encode({'yield': value, 'cid': cid})``, for a stream's hot path:
        the same bytes, without building the map or packing its keys.

        Only for a value that holds no other: a container packed on its own
        would get one more level of msgpack's nesting limit than inside the
        map, so it goes the ordinary way.
        """
        if type(value) not in _FLAT:
            return self.encode({'yield': value, 'cid': cid})
        tail = self._tails.get(cid)
        if tail is None:
            if len(self._tails) >= _TAILS_KEPT:
                self._tails.clear()
            tail = self._tails[cid] = _CID_KEY + self.encode(cid)
        try:  # (_around, in line: this runs once per value of a stream)
            data = _YIELD_HEAD + self._packer.pack(value) + tail
        except (TypeError, ValueError, OverflowError) as err:
            raise self._failed(err) from err
        if len(data) > self.max_msg_size:
            raise self._too_big(data)
        return data

    def encode_reply(self, value: Any, cid: str) -> bytes:
        """``encode({'functype': 'asyncfunc', 'cid': cid}) + encode({'return':
        value, 'cid': cid})``: a plain call's two replies, which most often
        go out together, without building either map.

        A container goes the ordinary way, as in :meth:`encode_yield`.
        """
        # (each call has a cid of its own: no use remembering its tail)
        tail = _CID_KEY + self.encode(cid)
        if len(_ASYNCFUNC_HEAD) + len(tail) > self.max_msg_size:
            raise self._too_big(_ASYNCFUNC_HEAD + tail)
        if type(value) not in _FLAT:
            return _ASYNCFUNC_HEAD + tail + self.encode({'return': value, 'cid': cid})
        return _ASYNCFUNC_HEAD + tail + self._around(_RETURN_HEAD, value, tail)

    def _around(self, head: bytes, value: Any, tail: bytes) -> bytes:
        """One message: ``head``, then ``value`` packed, then ``tail``."""
        try:
            data = head + self._packer.pack(value) + tail
        except (TypeError, ValueError, OverflowError) as err:
            raise self._failed(err) from err
        if len(data) > self.max_msg_size:
            raise self._too_big(data)
        return data

    def _failed(self, err: Exception) -> MsgTypeError:
        # the packer keeps partial output after a failure; start clean
        self._packer.reset()
        return MsgTypeError(f'cannot encode to msgpack: {err}')

    def _too_big(self, data: bytes) -> MsgTypeError:
        return MsgTypeError(f'message of {len(data)} bytes exceeds the limit '
                            f'of {self.max_msg_size} bytes')


class Decoder:
    """Feed bytes in, take whole messages out.

    After a :class:`ProtocolError` the decoder stays broken: the stream it
    was reading cannot be trusted to be in sync any more.
    """

    def __init__(self, max_msg_size: int = DEFAULT_MAX_MSG_SIZE) -> None:
        self.max_msg_size = max_msg_size
        self._unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, timestamp=3,
            max_buffer_size=max_msg_size)
        self._fed = 0
        self._msg_start = 0  # stream offset where the current message began
        self._error: ProtocolError | None = None
        # whether the last feed()'s first message is a plain call's
        # functype read by hand (``_take_functype``): its shape is known
        self.framed_functype = False

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole message."""
        return self._fed - self._msg_start

    @staticmethod
    def _take_functype(data: 'bytes | bytearray', out: List[dict]) -> 'bytes | bytearray':
        """Take the ``{'functype': 'asyncfunc', 'cid': cid}`` that ``data``
        starts with (a plain call's first reply, most often followed by its
        return) into ``out``; return the rest.

        One-shot decoding of two messages costs an ``ExtraData`` exception
        and a copy; this reads the one with a known shape by hand. Anything
        unexpected leaves ``data`` as it is, for the ordinary path.
        """
        if len(data) <= _FUNCTYPE_CID_LEN:
            return data
        size = data[_FUNCTYPE_CID_LEN] - 0xa0  # a fixstr cid: 0xa0 + length
        end = _FUNCTYPE_CID_LEN + 1 + size
        if not 0 < size < 32 or len(data) < end:
            return data
        try:
            cid = data[_FUNCTYPE_CID_LEN + 1:end].decode()
        except UnicodeDecodeError:
            return data
        out.append({'functype': 'asyncfunc', 'cid': cid})
        return data[end:]

    def feed(self, data: 'bytes | bytearray',
             check: Optional[Callable[[Any], dict]] = check_message) -> List[dict]:
        """Take ``data`` and return every message it completes, in order.

        Each message goes through ``check`` (by default the shape check),
        which returns it or raises :class:`ProtocolError`; ``check=None``
        takes them as they are, for a caller that checks the list itself
        (``Protocol.receive_data``: no call per message).
        """
        self.framed_functype = False
        if self._error is not None:
            raise self._error
        out: List[dict] = []
        unpacker = self._unpacker
        try:
            if (self._fed == self._msg_start and len(data) <= ONE_SHOT_MAX
                    and len(data) <= self.max_msg_size):
                # nothing held back and a small read (a call's request or
                # its replies): decode it in one go; what is cut short or
                # malformed goes on to the streaming unpacker below, which
                # keeps it or says what is wrong
                if data[:_FUNCTYPE_CID_LEN] == _FUNCTYPE_CID:
                    data = self._take_functype(data, out)
                    if out:
                        self.framed_functype = True
                        if check is not None:
                            out[0] = check(out[0])
                    if not data:
                        return out
                while True:
                    try:
                        message = _unpackb(
                            data, raw=False, strict_map_key=False, timestamp=3)
                    except msgpack.ExtraData as extra:  # more after this one
                        out.append(extra.unpacked if check is None else check(extra.unpacked))
                        data = extra.extra
                    except _MSGPACK_ERRORS:
                        break
                    else:
                        out.append(message if check is None else check(message))
                        return out
            if len(data) <= self.max_msg_size - self.buffered:
                # the common case: all of it may be buffered at once; take
                # whole messages while unread bytes remain (no exception at
                # the end of the data unless a message is cut in two)
                unpacker.feed(data)
                self._fed += len(data)
                append, tell = out.append, unpacker.tell
                end = self._msg_start
                # (after the loop tell() would count the pieces of a message
                # cut short, so note where each whole one ends)
                if check is None:  # (a stream's values: the loop per value)
                    for msg in unpacker:
                        end = tell()
                        append(msg)
                else:
                    for msg in unpacker:
                        end = tell()
                        append(check(msg))
                self._msg_start = end
                return out
            view = memoryview(data)
            while view:
                # never hand msgpack more than fits under the limit, so a
                # huge read cannot be refused while its messages are small
                room = self.max_msg_size - self.buffered
                if room <= 0:
                    raise ProtocolError(
                        f'message exceeds the limit of {self.max_msg_size} bytes')
                piece, view = view[:room], view[room:]
                self._unpacker.feed(piece)
                self._fed += len(piece)
                for msg in self._unpacker:
                    self._msg_start = self._unpacker.tell()
                    out.append(msg if check is None else check(msg))
        except ProtocolError as err:
            self._error = err
            raise
        except _MSGPACK_ERRORS as err:
            self._error = ProtocolError(f'malformed msgpack: {err!r}')
            raise self._error from err
        return out
