"""The per-call dialog: which message may follow which (sans-I/O).

All the rules live in the two tables below, one for each end of a call.
A state is a string; an event is a message kind (``functype`` events are
refined by the functype, e.g. ``functype:asyncgen``). ``error`` ends the
dialog from any open state, so it is not listed row by row.

What the caller may receive from the callee::

    sent --functype:asyncfunc--> awaiting_return --return--> done
    sent --functype:asyncgen---> streaming --yield--> streaming --stop--> done
    sent --functype:context----> awaiting_started --started--> open
    open --yield|credit--> open --stop--> callee_stopped --return--> done
    open --return--> done

What the callee may receive from the caller: nothing for an ``asyncfunc``;
for an ``asyncgen``, credit and values for its ``yield`` (two-way
generators); for a ``context``, its stream::

    generator --credit|yield--> generator --stop--> done
    context --credit|yield--> context --stop--> caller_stopped

``credit`` grants the receiver of it the right to send that many more
``yield`` messages (flow control, see docs/flow-control.md). A dialog
counts credit both ways: ``send_credit``, the ``yield`` messages the peer
still lets us send, and ``receive_credit``, those we still let it send
(what we granted, less what came). A ``yield`` beyond our grants is a
protocol error. The one exception is a generator's callee, whose caller
sends values with ``asend`` without credit, each followed by one
``credit``: there a ``yield`` must come after a ``credit`` (or first).

A callee's dialog is ``called`` from the ``cmd``'s arrival (nothing may
follow it yet) until the runtime has resolved the function; then it starts
at its functype's start (``Protocol.accept_call``).
"""
from __future__ import annotations

from typing import Dict, Tuple

from .._exceptions import ProtocolError
from ._types import FUNCTYPES, message_kind

CALLER_TABLE: Dict[Tuple[str, str], str] = {
    ('sent', 'functype:asyncfunc'): 'awaiting_return',
    ('sent', 'functype:asyncgen'): 'streaming',
    ('sent', 'functype:context'): 'awaiting_started',
    ('awaiting_return', 'return'): 'done',
    ('streaming', 'yield'): 'streaming',
    ('streaming', 'stop'): 'done',
    ('awaiting_started', 'started'): 'open',
    ('open', 'yield'): 'open',
    ('open', 'credit'): 'open',
    ('open', 'stop'): 'callee_stopped',
    ('open', 'return'): 'done',
    ('callee_stopped', 'credit'): 'callee_stopped',
    ('callee_stopped', 'return'): 'done',
}

CALLEE_TABLE: Dict[Tuple[str, str], str] = {
    ('generator', 'credit'): 'generator',
    ('generator', 'yield'): 'generator',
    ('generator', 'stop'): 'done',
    ('context', 'credit'): 'context',
    ('context', 'yield'): 'context',
    ('context', 'stop'): 'caller_stopped',
    ('caller_stopped', 'credit'): 'caller_stopped',
}

# where the callee's dialog starts, by functype
CALLEE_START = {'asyncfunc': 'no_stream', 'asyncgen': 'generator',
                'context': 'context'}
# where it is before that: the ``cmd`` arrived, its function is not resolved
CALLED = 'called'

# a functype message's event, by functype (each functype a message may name)
FUNCTYPE_EVENTS = {functype: f'functype:{functype}' for functype in FUNCTYPES}
# states in which a ``yield`` leaves the state as it is (the hot path)
STREAMING = frozenset(state for (state, event), new in
                      {**CALLER_TABLE, **CALLEE_TABLE}.items()
                      if event == 'yield' and new == state)


class Dialog:
    """Tracks one end of one call: rejects messages out of order and
    ``yield`` messages beyond the credit granted, and counts credit.
    (``Protocol.receive_data`` counts a ``yield`` within the credit in line;
    the tests hold it to :meth:`receive_message`.)"""

    __slots__ = ('state', '_table', 'send_credit', 'receive_credit')

    def __init__(self, table: Dict[Tuple[str, str], str], state: str) -> None:
        self._table = table
        self.state = state
        self.send_credit = 0     # yields the peer still lets us send
        # yields we still let the peer send (see the module doc)
        self.receive_credit = 1 if state == 'generator' else 0

    @classmethod
    def for_caller(cls) -> 'Dialog':
        return cls(CALLER_TABLE, 'sent')

    @classmethod
    def for_callee(cls, functype: str) -> 'Dialog':
        return cls(CALLEE_TABLE, CALLEE_START[functype])

    @property
    def done(self) -> bool:
        return self.state == 'done'

    def receive(self, kind: str, detail: str = '') -> str:
        """Advance on a message of ``kind``; return the new state."""
        return self._advance(f'{kind}:{detail}' if detail else kind)

    def _advance(self, event: str) -> str:
        if event == 'error' and self.state != 'done':  # (from any open state)
            self.state = 'done'
        else:
            try:
                self.state = self._table[(self.state, event)]
            except KeyError:
                raise ProtocolError(
                    f'unexpected {event!r} message in state {self.state!r}') from None
        if self.state not in STREAMING:  # no more values: none may come
            self.receive_credit = 0
        return self.state

    def receive_message(self, msg: dict) -> None:
        """Advance on a whole (shape-checked) message from the peer,
        counting its credit; :class:`ProtocolError` if it is out of order."""
        if 'yield' in msg:
            if self.state in STREAMING:  # the hot path: the state stays
                self.receive_credit -= 1
                if self.receive_credit < 0:
                    self.receive_credit = 0
                    raise ProtocolError(
                        f'peer sent more values than it was granted ({msg["cid"]!r})')
                return
            event = 'yield'  # (refused: no other state takes one)
        elif 'return' in msg or 'functype' in msg:
            self.receive_reply('return' if 'return' in msg else FUNCTYPE_EVENTS.get(
                msg['functype'], 'functype'))
            return
        else:
            event = message_kind(msg)
        self._advance(event)
        if event == 'credit':
            self.send_credit += msg['credit']
            if self.state == 'generator':  # room for one asend value
                self.receive_credit = 1

    def receive_reply(self, event: str) -> None:
        """Advance on a call's reply: ``'return'``, or a functype message's
        event (``FUNCTYPE_EVENTS``); :class:`ProtocolError` if out of order.
        (The hot path of :meth:`receive_message`.)"""
        try:
            self.state = self._table[(self.state, event)]
        except KeyError:
            self._advance(event)  # (which says why)
        # no reply leaves credit: a return ends the call, and a functype
        # starts it with none (credit is granted after)
        self.receive_credit = 0

    def granted(self, n: int) -> None:
        """We sent the peer ``n`` more credit (counted only while it may
        send values: ``receive_credit`` is 0 in every other state)."""
        if self.state in STREAMING and self.state != 'generator':
            self.receive_credit += n

    def take_credit(self) -> bool:
        """Use one of the peer's grants to send a ``yield``; False if none."""
        if self.send_credit > 0:
            self.send_credit -= 1
            return True
        return False


class _Called(Dialog):
    """Where a callee's dialog is from its ``cmd``'s arrival until the runtime
    accepts the call (``Protocol.accept_call``, which starts a dialog of the
    call's functype): nothing the peer sends may come yet. Holding no state,
    one serves every call in that state."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(CALLEE_TABLE, CALLED)

    def _advance(self, event: str) -> str:
        raise ProtocolError(f'unexpected {event!r} message in state {CALLED!r}')

    def granted(self, n: int) -> None:
        pass


CALLED_DIALOG = _Called()
