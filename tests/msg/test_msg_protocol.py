"""``Protocol`` driven with bytes only: framing, dialogs, credit."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tractorish._exceptions import ProtocolError
from tractorish.msg import (Protocol, cmd, credit, error, functype, pack_error, return_,
                            started, stop, yield_)

CID = 'c0'
UID = ['peer', 'f' * 32]


def packb(*messages: dict) -> bytes:
    return b''.join(msgpack.packb(m, use_bin_type=True) for m in messages)


def caller(functype_: str = 'context') -> Protocol:
    """A caller's protocol with call ``CID`` open and its functype in."""
    protocol = Protocol()
    protocol.open_call(CID)
    protocol.receive_data(packb(functype(functype_, CID)))
    return protocol


def test_a_plain_call_from_request_to_return():
    callee, caller_ = Protocol(), Protocol()
    caller_.open_call(CID)
    [request] = callee.receive_data(caller_.send(cmd('mod', 'fn', {}, UID, CID)))
    assert callee.calls[CID].state == 'called'
    callee.accept_call(CID, 'asyncfunc')
    replies = caller_.receive_data(callee.send_all([functype('asyncfunc', CID),
                                                    return_(3, CID)]))
    assert replies == [functype('asyncfunc', CID), return_(3, CID)]
    assert caller_.calls[CID].done
    caller_.close_call(CID)
    assert caller_.calls == {}
    # a late message for a call given up on passes, unchecked
    assert caller_.receive_data(packb(return_(4, CID))) == [return_(4, CID)]


def test_a_plain_calls_two_replies_in_one_read_step_its_dialog():
    # the decoder reads a plain call's functype by hand (its shape known):
    # the dialog still steps on it, and refuses it out of order
    from tractorish.msg import Encoder
    pair = Encoder().encode_reply(5, CID)
    protocol = Protocol()
    protocol.open_call(CID)
    assert protocol.receive_data(pair) == [functype('asyncfunc', CID), return_(5, CID)]
    assert protocol.calls[CID].done
    with pytest.raises(ProtocolError, match="unexpected 'functype:asyncfunc'"):
        protocol.receive_data(pair)  # a second answer to a call that is over
    # for a call not open here (given up on), the pair passes unchecked
    late = Protocol()
    assert late.receive_data(pair) == [functype('asyncfunc', CID), return_(5, CID)]
    assert late.calls == {}


@pytest.mark.parametrize('out_of_order', [
    [return_(1, CID)],                                     # before its functype
    [functype('asyncfunc', CID), yield_(1, CID)],          # a value from a plain call
    [functype('context', CID), return_(1, CID), stop(CID)],  # after the end
    [functype('asyncgen', CID), started(1, CID)],
], ids=['return-first', 'yield-in-asyncfunc', 'after-done', 'started-in-asyncgen'])
def test_a_message_out_of_order_is_a_protocol_error_and_stays_one(out_of_order):
    protocol = Protocol()
    protocol.open_call(CID)
    with pytest.raises(ProtocolError, match='unexpected'):
        protocol.receive_data(packb(*out_of_order))
    with pytest.raises(ProtocolError):  # the stream is out of sync for good
        protocol.receive_data(packb(functype('asyncfunc', 'c9')))


def test_nothing_of_a_call_is_taken_before_the_runtime_accepts_it():
    protocol = Protocol()
    with pytest.raises(ProtocolError, match="'credit' message in state 'called'"):
        protocol.receive_data(packb(cmd('mod', 'gen', {}, UID, CID), credit(1, CID)))


def test_a_call_id_in_use_cannot_be_called_again():
    protocol = Protocol()
    protocol.open_call(CID)
    with pytest.raises(ProtocolError, match='already in use'):
        protocol.receive_data(packb(cmd('mod', 'fn', {}, UID, CID)))
    with pytest.raises(ProtocolError, match='already in use'):
        protocol.open_call(CID)


def test_an_error_ends_a_call_from_any_open_state():
    protocol = caller('context')
    payload = pack_error(ValueError('x'), ('peer', 'f' * 32))
    protocol.receive_data(packb(error(payload, CID)))
    assert protocol.calls[CID].done


def test_values_beyond_the_credit_granted_are_a_protocol_error():
    protocol = caller('context')
    protocol.receive_data(packb(started(None, CID)))
    with pytest.raises(ProtocolError, match='more values than it was granted'):
        protocol.receive_data(packb(yield_(0, CID)))


def test_credit_is_counted_both_ways():
    protocol = caller('context')
    protocol.receive_data(packb(started(None, CID)))
    dialog = protocol.calls[CID]
    protocol.send(credit(3, CID))
    protocol.send(credit(2, CID))
    assert dialog.receive_credit == 5
    protocol.receive_data(packb(*[yield_(i, CID) for i in range(5)]))
    assert dialog.receive_credit == 0
    protocol.receive_data(packb(credit(4, CID)))   # the peer's grant to us
    assert dialog.send_credit == 4
    assert [dialog.take_credit() for _ in range(5)] == [True] * 4 + [False]
    with pytest.raises(ProtocolError, match='more values'):
        protocol.receive_data(packb(yield_(5, CID)))


def test_a_generators_caller_sends_each_value_with_one_credit():
    protocol = Protocol()
    protocol.receive_data(packb(cmd('mod', 'gen', {}, UID, CID)))
    protocol.accept_call(CID, 'asyncgen')
    # asend: a value, then one credit for the reply; the first may come at once
    protocol.receive_data(packb(credit(1, CID), yield_('a', CID), credit(1, CID),
                                yield_('b', CID), credit(1, CID)))
    assert protocol.calls[CID].send_credit == 3
    protocol.receive_data(packb(yield_('c', CID)))
    with pytest.raises(ProtocolError, match='more values'):
        protocol.receive_data(packb(yield_('d', CID)))  # two values, no credit between


@settings(max_examples=200, deadline=None)
@given(grants=st.lists(st.integers(1, 50), min_size=1, max_size=8),
       extra=st.integers(0, 3), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_credit_accounting_holds_however_the_bytes_are_cut(grants, extra, cuts):
    protocol = caller('asyncgen')
    for grant in grants:
        protocol.send(credit(grant, CID))
    allowed = sum(grants)
    data = packb(*[yield_(i, CID) for i in range(allowed + extra)])
    got, failed = [], None
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        cut = min(cut, len(data))
        try:
            got.extend(protocol.receive_data(data[start:cut]))
        except ProtocolError as err:
            failed = err
            break
        start = max(start, cut)
    assert [m['yield'] for m in got][:allowed] == list(range(min(len(got), allowed)))
    if extra:
        assert failed is not None and len(got) <= allowed
    else:
        assert failed is None and len(got) == allowed


def test_the_fast_paths_are_the_same_bytes_as_the_maps():
    protocol = Protocol()
    for value in (7, 'x', b'y', None, [1, {'a': 2}]):
        assert protocol.send(yield_(value, CID)) == packb(yield_(value, CID))
        replies = [functype('asyncfunc', CID), return_(value, CID)]
        assert protocol.send_all(replies) == packb(*replies)
    several = [functype('asyncfunc', 'a1'), return_(1, 'a1'), functype('asyncfunc', 'a2'),
               error(pack_error(ValueError('x'), ('p', 'u')), 'a2'), return_(3, 'a3'),
               functype('asyncfunc', 'a4'), return_(4, 'a5')]
    assert protocol.send_all(several) == packb(*several)


def test_credit_left_over_when_the_values_end_admits_no_more():
    protocol = caller('context')
    protocol.receive_data(packb(started(None, CID)))
    protocol.send(credit(5, CID))
    protocol.receive_data(packb(yield_(0, CID), stop(CID)))
    dialog = protocol.calls[CID]
    assert (dialog.state, dialog.receive_credit) == ('callee_stopped', 0)
    protocol.send(credit(5, CID))  # (a grant sent late counts for nothing)
    with pytest.raises(ProtocolError, match="unexpected 'yield'"):
        protocol.receive_data(packb(yield_(1, CID)))


@pytest.mark.parametrize('bad', [{'functype': ['asyncfunc'], 'cid': CID},
                                 {'functype': 'coroutine', 'cid': CID},
                                 {'functype': None, 'cid': CID}],
                         ids=['unhashable', 'unknown', 'none'])
def test_a_functype_that_names_no_functype_is_a_protocol_error(bad):
    protocol = Protocol()
    protocol.open_call(CID)
    with pytest.raises(ProtocolError, match='functype'):
        protocol.receive_data(packb(bad))


REPLY_SEQUENCES = [
    [functype('asyncfunc', CID), return_(1, CID)],
    [functype('asyncgen', CID), yield_(1, CID)],
    [functype('context', CID), started(None, CID), return_(2, CID)],
    [return_(1, CID)],
    [functype('asyncfunc', CID), functype('asyncfunc', CID)],
    [functype('asyncfunc', CID), return_(1, CID), return_(1, CID)],
    [functype('context', CID), return_(1, CID)],
]


@pytest.mark.parametrize('messages', REPLY_SEQUENCES)
def test_the_protocols_in_line_checks_agree_with_the_dialogs_own(messages):
    # Protocol.receive_data takes a call's replies and values in line, the
    # others through Dialog.receive_message: both ways end in the same state
    # (or refuse the same message)
    from tractorish.msg._dialog import Dialog

    def through(step):
        states = []
        for message in messages:
            try:
                states.append(step(message))
            except ProtocolError as err:
                states.append(('refused', 'unexpected' in str(err) or 'more values' in str(err)))
                break
        return states

    protocol = Protocol()
    protocol.open_call(CID)
    dialog = Dialog.for_caller()

    def by_protocol(message):
        protocol.receive_data(packb(message))
        d = protocol.calls[CID]
        return (d.state, d.receive_credit)

    def by_dialog(message):
        dialog.receive_message(message)
        return (dialog.state, dialog.receive_credit)

    assert through(by_protocol) == through(by_dialog)
