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
``yield`` messages (flow control, see docs/flow-control.md).
"""
from __future__ import annotations

from typing import Dict, Tuple

from .._exceptions import ProtocolError

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


class Dialog:
    """Tracks one end of one call and rejects messages out of order."""

    __slots__ = ('state', '_table')

    def __init__(self, table: Dict[Tuple[str, str], str], state: str) -> None:
        self._table = table
        self.state = state

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
        if kind == 'error' and self.state != 'done':
            self.state = 'done'
            return self.state
        event = f'{kind}:{detail}' if detail else kind
        try:
            self.state = self._table[(self.state, event)]
        except KeyError:
            raise ProtocolError(
                f'unexpected {event!r} message in state {self.state!r}') from None
        return self.state
