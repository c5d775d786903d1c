"""The zygote's control messages: built and read against one table."""
from __future__ import annotations

import msgpack
import pytest

from tractorish import _zygote_protocol as protocol
from tractorish._exceptions import InternalError
from tractorish._zygote_protocol import REPLY, REQUEST, ControlMessageError

EXAMPLES = {
    'fork': {'fork': 3, 'boot': {'uid': ['a', 'b']}},
    'ready': {'ready': 1234},
    'forked': {'forked': 3, 'pid': 1235},
    'failed': {'failed': 3, 'error': 'fork failed: no memory'},
    'exited': {'exited': 1235, 'code': -9},
}


def test_every_message_of_the_table_has_an_example():
    assert set(EXAMPLES) == set(protocol.MESSAGES)


@pytest.mark.parametrize('kind', sorted(EXAMPLES))
def test_each_message_goes_through(kind):
    direction = protocol.MESSAGES[kind][0]
    packet = protocol.pack(kind, **EXAMPLES[kind])
    assert msgpack.unpackb(packet, raw=False) == EXAMPLES[kind]
    assert protocol.unpack(packet, direction) == (kind, EXAMPLES[kind])


def test_a_failure_without_a_request_id():
    packet = protocol.pack('failed', failed=None, error='unreadable')
    assert protocol.unpack(packet, REPLY) == ('failed', {'failed': None, 'error': 'unreadable'})


def raw(message):
    return msgpack.packb(message, use_bin_type=True)


@pytest.mark.parametrize('message, direction, names', [
    ({'forked': 3}, REPLY, ['forked', 'pid']),                       # a field missing
    ({'ready': 1, 'pid': 2}, REPLY, ['ready', 'pid']),               # a field too many
    ({'exited': 'x', 'code': 0}, REPLY, ["'exited'", "'x'", 'int']),  # a wrong type
    ({'exited': 5, 'code': True}, REPLY, ["'code'", 'True']),        # bool is no int here
    ({'ready': 1, 'exited': 2, 'code': 0}, REPLY, ['exactly one']),  # two kinds
    ({'fork': 1, 'boot': {}}, REPLY, ['exactly one']),               # the wrong direction
    ({'hello': 1}, REQUEST, ["'hello'"]),                            # no kind at all
    ([1, 2], REQUEST, ['not a map']),
])
def test_a_malformed_message_is_named(message, direction, names):
    with pytest.raises(ControlMessageError) as info:
        protocol.unpack(raw(message), direction)
    for name in names:
        assert name in str(info.value)


def test_bytes_that_are_not_msgpack():
    with pytest.raises(ControlMessageError, match='not msgpack'):
        protocol.unpack(b'\xc1', REPLY)


def test_pack_refuses_what_unpack_would():
    with pytest.raises(ControlMessageError, match="'pid'"):
        protocol.pack('forked', forked=1)
    with pytest.raises(ControlMessageError, match="no zygote message is called 'fork_me'"):
        protocol.pack('fork_me', x=1)
    with pytest.raises(ControlMessageError, match="'boot'"):
        protocol.pack('fork', fork=1, boot='not a map')


def test_the_error_is_a_bug_of_ours():
    assert issubclass(ControlMessageError, InternalError)


def test_a_long_message_is_quoted_short():
    with pytest.raises(ControlMessageError) as info:
        protocol.unpack(raw({'ready': 'x' * 100_000}), REPLY)
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize('packet, found', [
    (raw({'fork': 7, 'boot': 'wrong'}), 7),
    (raw({'fork': 'seven'}), None),
    (raw([7]), None),
    (b'\xc1', None),
])
def test_the_id_of_a_malformed_request(packet, found):
    assert protocol.request_id(packet) == found
