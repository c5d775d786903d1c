"""The ``cmd`` message's optional ``meta`` field (a trace context)."""
import pytest

from tractorish import msg
from tractorish._exceptions import ProtocolError
from tractorish.msg import Decoder, Encoder, check_message

TRACE = {'trace': {'traceparent': '00-' + '1' * 32 + '-' + '2' * 16 + '-01'}}


def test_a_cmd_without_meta_is_as_before():
    assert msg.cmd('mod', 'fn', {}, ('a', 'b'), 'c0') == {'cmd': ['mod', 'fn', {}, ['a', 'b'], 'c0']}


def test_a_cmd_with_meta_travels_and_is_checked():
    message = msg.cmd('mod', 'fn', {'x': 1}, ('a', 'b'), 'c0', TRACE)
    assert message == {'cmd': ['mod', 'fn', {'x': 1}, ['a', 'b'], 'c0'], 'meta': TRACE}
    [decoded] = Decoder().feed(Encoder().encode(message))
    assert decoded == message


@pytest.mark.parametrize('bad', [
    {'cmd': ['mod', 'fn', {}, ['a', 'b'], 'c0'], 'meta': 'trace'},      # not a map
    {'cmd': ['mod', 'fn', {}, ['a', 'b'], 'c0'], 'meta': {1: 'x'}},     # a key not a string
    {'cmd': ['mod', 'fn', {}, ['a', 'b']], 'meta': {}},                 # a bad cmd still
    {'cmd': ['mod', 'fn', {}, ['a', 'b'], 'c0'], 'other': {}},          # an unknown key
])
def test_malformed_meta_is_a_protocol_error(bad):
    with pytest.raises(ProtocolError):
        check_message(bad)
