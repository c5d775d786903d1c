"""``Protocol``: one channel's wire protocol as one object, sans-I/O.

Bytes in, messages out (:meth:`Protocol.receive_data`); messages in, bytes
out (:meth:`Protocol.send`, :meth:`Protocol.send_all`, and
``Protocol.send_yield`` for a stream's values), with the codec's shortcuts
for a stream's values and a plain call's two replies inside. In between it keeps
what the protocol says about each call id open on the channel: its dialog
(which message may follow which: the tables of ``_dialog``) and its credit
(how many more ``yield`` messages each side may send). A message out of
order, or a ``yield`` beyond the credit granted, raises
:class:`ProtocolError` from :meth:`receive_data`, and so does every
call after it: the channel cannot be trusted any more.

Who opens and closes calls is the runtime's business: it opens the
caller's end of a call (:meth:`open_call`) before it sends the ``cmd``,
accepts the callee's end (:meth:`accept_call`) once it knows the called
function's kind, and closes either (:meth:`close_call`) when the call is
over. A ``cmd`` that arrives opens the callee's end in the ``called`` state,
so that nothing of that call is taken before the runtime has accepted it.
Messages for a call id that is not open pass unchecked (a late reply to a
call given up on): whoever routes them drops them.

This module touches no socket, no trio, no task.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional

from .._exceptions import ProtocolError
from ._codec import DEFAULT_MAX_MSG_SIZE, Decoder, Encoder
from ._dialog import CALLED_DIALOG, CALLER_TABLE, FUNCTYPE_EVENTS, Dialog
from ._types import check_message

# a plain call's functype message's event
PLAIN_FUNCTYPE = FUNCTYPE_EVENTS['asyncfunc']


class Protocol:
    """Framing, each call's dialog and each call's credit, for one channel.

    Not shared by threads. ``calls`` maps each open call id to its
    :class:`Dialog` (read it; change it through the methods).

    ``receive_data(data) -> messages``: every message the bytes ``data``
    complete, in order, each checked for its shape and against its call's
    dialog and credit. Raises :class:`ProtocolError` for malformed bytes, an
    unknown shape, an oversize message or a message out of order, and so
    does every call after that.

    ``send_yield(value, cid) -> bytes``: ``send({'yield': value, 'cid':
    cid})`` without building the map (a stream's hot path).
    """

    __slots__ = ('_encoder', '_decoder', '_feed', '_broken', 'calls', 'send_yield')

    def __init__(self, max_msg_size: int = DEFAULT_MAX_MSG_SIZE) -> None:
        self._encoder = Encoder(max_msg_size)
        self._decoder = Decoder(max_msg_size)
        self._feed = self._decoder.feed
        self._broken: Optional[ProtocolError] = None
        self.calls: Dict[str, Dialog] = {}
        # (the codec's own method, with no call of ours around it: it runs
        # once per value of a stream)
        self.send_yield: Callable[[Any, str], bytes] = self._encoder.encode_yield

    @property
    def max_msg_size(self) -> int:
        """The largest message taken from the peer."""
        return self._decoder.max_msg_size

    @max_msg_size.setter
    def max_msg_size(self, value: int) -> None:
        self._decoder.max_msg_size = value

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return self._decoder.buffered

    # --- receiving ------------------------------------------------------------

    def receive_data(self, data: 'bytes | bytearray') -> List[dict]:
        """Every message ``data`` completes, checked (see the class doc)."""
        if self._broken is not None:
            raise self._broken
        messages = self._feed(data, None)  # (framing only: checked below)
        calls = self.calls
        event: Optional[str]
        rest: Iterable[Any] = messages
        try:
            if self._decoder.framed_functype:
                # a plain call's functype, which the decoder read by hand:
                # its shape is known, its dialog is left to step
                rest = iter(messages)
                dialog = calls.get(next(rest)['cid'])
                if dialog is not None:
                    dialog.receive_reply(PLAIN_FUNCTYPE)
            for msg in rest:
                if type(msg) is dict and len(msg) == 2:
                    # the hot paths, in line (no call per message): a
                    # stream's value, a call's functype or return (the
                    # shape check's tests for them), then the dialog's
                    cid = msg.get('cid')
                    if type(cid) is str:
                        if 'yield' in msg:
                            dialog = calls.get(cid)
                            if dialog is not None:
                                # (credit is left only in a state that takes values)
                                if dialog.receive_credit > 0:
                                    dialog.receive_credit -= 1
                                else:
                                    dialog.receive_message(msg)
                            continue
                        if 'return' in msg:
                            event = 'return'
                        else:
                            functype = msg.get('functype')  # (a str: anything hashes)
                            event = (FUNCTYPE_EVENTS.get(functype) if type(functype) is str
                                     else None)
                        if event is not None:
                            dialog = calls.get(cid)
                            if dialog is not None:
                                dialog.receive_reply(event)
                            continue
                # any other message: its shape, then its dialog's rules
                check_message(msg)
                cid = msg.get('cid')
                if cid is not None:
                    dialog = calls.get(cid)
                    if dialog is not None:
                        dialog.receive_message(msg)
                elif 'cmd' in msg:  # a call's start: it opens the callee's end
                    cid = msg['cmd'][4]
                    if cid in calls:
                        raise ProtocolError(f'call id {cid!r} is already in use')
                    calls[cid] = CALLED_DIALOG
        except ProtocolError as err:
            self._broken = err
            raise
        return messages

    # --- sending --------------------------------------------------------------

    def send(self, msg: Any) -> bytes:
        """``msg`` as bytes; :class:`MsgTypeError` if it cannot be encoded.

        A ``credit`` sent is counted in its call's dialog: the peer may
        send that many more ``yield`` messages. A ``yield`` is encoded
        without packing its map's keys (``Encoder.encode_yield``: a
        stream's hot path).
        """
        if type(msg) is dict and len(msg) == 2:
            if 'yield' in msg:
                return self._encoder.encode_yield(msg['yield'], msg['cid'])
            if 'credit' in msg:
                data = self._encoder.encode(msg)
                dialog = self.calls.get(msg['cid'])
                if dialog is not None:
                    dialog.granted(msg['credit'])
                return data
        return self._encoder.encode(msg)

    def send_reply(self, value: Any, cid: str) -> bytes:
        """``send_all([functype('asyncfunc', cid), return_(value, cid)])``
        without building the maps: a plain call's two replies (the callee's
        hot path); :class:`MsgTypeError` if ``value`` cannot be encoded."""
        return self._encoder.encode_reply(value, cid)

    def send_all(self, messages: List[Any]) -> bytes:
        """The bytes of ``messages``, back to back (all or, if one cannot
        be encoded, none: :class:`MsgTypeError`).

        A plain call's two replies alone, its ``functype``
        (``'asyncfunc'``) then its ``return`` (what a call's task sends last),
        are encoded as :meth:`send_reply` does.
        """
        if len(messages) == 2:  # (most often: a plain call's two replies)
            first, second = messages
            if (type(first) is dict and first.get('functype') == 'asyncfunc'
                    and type(second) is dict and 'return' in second and len(first) == 2
                    and len(second) == 2 and second.get('cid') == first['cid']):
                return self._encoder.encode_reply(second['return'], first['cid'])
        return b''.join([self.send(msg) for msg in messages])

    # --- calls ----------------------------------------------------------------

    def open_call(self, cid: str) -> Dialog:
        """The caller's end of a call whose ``cmd`` is about to be sent."""
        if cid in self.calls:
            raise ProtocolError(f'call id {cid!r} is already in use')
        dialog = self.calls[cid] = Dialog(CALLER_TABLE, 'sent')  # (for_caller, in line)
        return dialog

    def accept_call(self, cid: str, functype: str) -> Dialog:
        """The callee's end of a call whose ``cmd`` arrived, now that its
        function is known to be a ``functype``."""
        if self.calls.get(cid) is not CALLED_DIALOG:
            raise ProtocolError(f'no call {cid!r} to accept: its cmd did not come, '
                                f'or the call was accepted already')
        dialog = self.calls[cid] = Dialog.for_callee(functype)
        return dialog

    def close_call(self, cid: str) -> None:
        """Forget call ``cid`` (either end): it is over, or given up on."""
        self.calls.pop(cid, None)
