"""The per-call dialog tables: which message may follow which."""
from __future__ import annotations

import pytest

from tractorish._exceptions import ProtocolError
from tractorish.msg import Dialog
from tractorish.msg._dialog import CALLEE_START, CALLEE_TABLE, CALLER_TABLE

# every event a peer could send, including ones no table allows anywhere
EVENTS = [
    ('functype', 'asyncfunc'), ('functype', 'asyncgen'), ('functype', 'context'),
    ('functype', 'bogus'), ('functype', ''),
    ('return', ''), ('started', ''), ('yield', ''), ('stop', ''), ('credit', ''),
    ('cmd', ''), ('hello', ''), ('auth', ''),
]


def event_name(kind: str, detail: str) -> str:
    return f'{kind}:{detail}' if detail else kind


def states_of(table) -> set:
    states = {src for src, _ in table} | set(table.values())
    if table is CALLEE_TABLE:
        states |= set(CALLEE_START.values())
    return states


def _ids(row):
    (state, event), new = row
    return f'{state}--{event}->{new}'


# --- the allowed transitions --------------------------------------------------

@pytest.mark.parametrize('row', sorted(CALLER_TABLE.items()), ids=_ids)
def test_caller_transition(row):
    (state, event), expected = row
    kind, _, detail = event.partition(':')
    dialog = Dialog(CALLER_TABLE, state)
    assert dialog.receive(kind, detail) == expected
    assert dialog.state == expected
    assert dialog.done == (expected == 'done')


@pytest.mark.parametrize('row', sorted(CALLEE_TABLE.items()), ids=_ids)
def test_callee_transition(row):
    (state, event), expected = row
    kind, _, detail = event.partition(':')
    dialog = Dialog(CALLEE_TABLE, state)
    assert dialog.receive(kind, detail) == expected
    assert dialog.state == expected


def test_the_rows_docs_protocol_md_describes_are_in_the_tables():
    # the dialogs docs/protocol.md describes; more rows may be added
    # (e.g. flow control), none of these may go
    for row in [
        (('sent', 'functype:asyncfunc'), 'awaiting_return'),
        (('awaiting_return', 'return'), 'done'),
        (('sent', 'functype:asyncgen'), 'streaming'),
        (('streaming', 'yield'), 'streaming'),
        (('streaming', 'stop'), 'done'),
        (('sent', 'functype:context'), 'awaiting_started'),
        (('awaiting_started', 'started'), 'open'),
        (('open', 'yield'), 'open'),
        (('open', 'return'), 'done'),
    ]:
        assert row in CALLER_TABLE.items(), row


def test_every_caller_state_is_reachable_and_can_finish():
    reached = {'sent'}
    frontier = ['sent']
    while frontier:
        state = frontier.pop()
        for (src, _), dst in CALLER_TABLE.items():
            if src == state and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert reached == states_of(CALLER_TABLE)
    assert 'done' in reached


def test_starting_states():
    caller = Dialog.for_caller()
    assert caller.state == 'sent' and not caller.done
    for functype in ('asyncfunc', 'asyncgen', 'context'):
        callee = Dialog.for_callee(functype)
        assert callee.state == CALLEE_START[functype]
        assert not callee.done


def test_every_callee_state_is_reachable_from_a_start():
    reached = set(CALLEE_START.values())
    frontier = list(reached)
    while frontier:
        state = frontier.pop()
        for (src, _), dst in CALLEE_TABLE.items():
            if src == state and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert reached == states_of(CALLEE_TABLE)


# --- whole dialogs ------------------------------------------------------------

def run(dialog: Dialog, events) -> list:
    return [dialog.receive(*e.split(':', 1)) if ':' in e else dialog.receive(e)
            for e in events]


def test_asyncfunc_dialog():
    dialog = Dialog.for_caller()
    assert run(dialog, ['functype:asyncfunc', 'return']) == ['awaiting_return', 'done']
    assert dialog.done


def test_asyncgen_dialog():
    dialog = Dialog.for_caller()
    states = run(dialog, ['functype:asyncgen'] + ['yield'] * 100 + ['stop'])
    assert states[0] == 'streaming'
    assert set(states[1:-1]) == {'streaming'}
    assert dialog.done


def test_context_dialog_with_stream():
    dialog = Dialog.for_caller()
    states = run(dialog, ['functype:context', 'started', 'yield', 'yield', 'stop', 'return'])
    assert states == ['awaiting_started', 'open', 'open', 'open', 'callee_stopped', 'done']


def test_context_dialog_without_stream():
    dialog = Dialog.for_caller()
    assert run(dialog, ['functype:context', 'started', 'return'])[-1] == 'done'


def test_callee_generator_dialog():
    dialog = Dialog.for_callee('asyncgen')
    states = run(dialog, ['credit', 'yield', 'yield', 'credit', 'stop'])
    assert states[-1] == 'done' and len(set(states[:-1])) == 1
    assert dialog.done


def test_callee_context_dialog():
    dialog = Dialog.for_callee('context')
    states = run(dialog, ['credit', 'yield', 'yield', 'stop'])
    assert len(set(states[:-1])) == 1
    # the caller's side of the stream is over; nothing more may stream in
    with pytest.raises(ProtocolError):
        dialog.receive('yield')


def test_callee_of_asyncfunc_accepts_nothing_but_error():
    for kind in ('yield', 'stop', 'credit', 'return', 'started'):
        with pytest.raises(ProtocolError, match=repr(CALLEE_START['asyncfunc'])):
            Dialog.for_callee('asyncfunc').receive(kind)
    dialog = Dialog.for_callee('asyncfunc')
    assert dialog.receive('error') == 'done'


# --- error ends it from any open state ----------------------------------------

@pytest.mark.parametrize('table,state', sorted(
    [('caller', s) for s in states_of(CALLER_TABLE) - {'done'}]
    + [('callee', s) for s in states_of(CALLEE_TABLE) - {'done'}]))
def test_error_ends_dialog_from_any_open_state(table, state):
    dialog = Dialog(CALLER_TABLE if table == 'caller' else CALLEE_TABLE, state)
    assert dialog.receive('error') == 'done'
    assert dialog.done
    # and nothing may follow
    with pytest.raises(ProtocolError, match="'done'"):
        dialog.receive('yield')


def test_error_after_done_is_out_of_order():
    dialog = Dialog.for_caller()
    run(dialog, ['functype:asyncfunc', 'return'])
    with pytest.raises(ProtocolError, match="'error'.*'done'"):
        dialog.receive('error')


# --- everything else is out of order ------------------------------------------

def _out_of_order(table):
    cases = []
    for state in sorted(states_of(table)):
        for kind, detail in EVENTS:
            if (state, event_name(kind, detail)) not in table:
                cases.append((state, kind, detail))
    return cases


@pytest.mark.parametrize('state,kind,detail', _out_of_order(CALLER_TABLE))
def test_caller_out_of_order(state, kind, detail):
    dialog = Dialog(CALLER_TABLE, state)
    with pytest.raises(ProtocolError) as info:
        dialog.receive(kind, detail)
    text = str(info.value)
    assert repr(state) in text
    assert repr(event_name(kind, detail)) in text
    assert dialog.state == state  # a refused message changes nothing


@pytest.mark.parametrize('state,kind,detail', _out_of_order(CALLEE_TABLE))
def test_callee_out_of_order(state, kind, detail):
    dialog = Dialog(CALLEE_TABLE, state)
    with pytest.raises(ProtocolError, match=repr(state)):
        dialog.receive(kind, detail)
    assert dialog.state == state


@pytest.mark.parametrize('events', [
    ['return'],                                   # before functype
    ['yield'],
    ['functype:asyncfunc', 'yield'],              # asyncfunc cannot stream
    ['functype:asyncfunc', 'functype:asyncfunc'], # functype twice
    ['functype:asyncgen', 'return'],              # generators do not return
    ['functype:asyncgen', 'started'],
    ['functype:context', 'yield'],                # stream before started
    ['functype:context', 'return', 'return'],     # return before started
    ['functype:context', 'started', 'started'],
    ['functype:context', 'started', 'stop', 'yield'],
    ['functype:context', 'started', 'stop', 'stop'],
    ['functype:asyncgen', 'stop', 'yield'],
])
def test_caller_sequences_that_break_the_protocol(events):
    dialog = Dialog.for_caller()
    with pytest.raises(ProtocolError, match='unexpected'):
        run(dialog, events)


def test_callee_cannot_be_sent_results():
    for functype in ('asyncfunc', 'asyncgen', 'context'):
        for kind, detail in [('return', ''), ('started', ''),
                             ('functype', 'asyncfunc'), ('functype', 'context')]:
            dialog = Dialog.for_callee(functype)
            with pytest.raises(ProtocolError, match=repr(dialog.state)):
                dialog.receive(kind, detail)
