"""The codec and the framing decoder, fed bytes by hand (no I/O)."""
from __future__ import annotations

import datetime
import math

import msgpack
import pytest

from tractorish._exceptions import MsgTypeError, ProtocolError
from tractorish.msg import (
    DEFAULT_MAX_MSG_SIZE, Decoder, Encoder, auth, check_message, cmd, credit,
    error, functype, hello, return_, started, stop, yield_,
)

UTC = datetime.timezone.utc
CID = 'cid-1'
UID = ['worker', '6f1c']
ERROR_PAYLOAD = {'type_str': 'ValueError', 'tb_str': 'Traceback...',
                 'src_uid': UID, 'boxed_type_path': 'builtins.ValueError'}


def roundtrip(value):
    """Send ``value`` as a yield payload through a fresh encoder/decoder."""
    data = Encoder().encode(yield_(value, CID))
    decoder = Decoder()
    [msg] = decoder.feed(data)
    assert decoder.buffered == 0
    assert msg['cid'] == CID
    return msg['yield']


def packb(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)


def message_of_size(size: int) -> bytes:
    """An encoded, valid message of exactly ``size`` bytes."""
    for n in range(size, -1, -1):
        data = packb(yield_(b'x' * n, CID))
        if len(data) == size:
            return data
    raise AssertionError(f'no message of {size} bytes')


# --- round trips --------------------------------------------------------------

SCALARS = [
    None, True, False,
    0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65535, 65536,
    2**31 - 1, 2**31, -2**31, 2**32, 2**63 - 1, -2**63, 2**64 - 1,
    0.0, 1.5, -2.25, 1e300, -1e-300, math.inf, -math.inf,
    '', 'plain ascii', 'héllo wörld', '日本語テキスト', 'emoji 🎉🐍', 's' * 70_000,
    b'', b'\x00\xff\x80', bytes(range(256)), b'b' * 70_000,
]


@pytest.mark.parametrize('value', SCALARS, ids=lambda v: repr(v)[:30])
def test_scalar_roundtrip_keeps_value_and_type(value):
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_negative_zero_and_nan_roundtrip():
    assert math.copysign(1.0, roundtrip(-0.0)) == -1.0
    assert math.isnan(roundtrip(math.nan))


@pytest.mark.parametrize('value', [
    [],
    [1, 'two', b'three', None, 4.5, True],
    [[[[[]]]]],
    [0] * 70_000,
    {},
    {'a': 1, 'b': [1, 2, {'c': None}]},
    {1: 'one', -2: 'minus two', 2**40: 'big', 0: {3: {4: [5]}}},
    {b'bytes-key': 1, 'str-key': 2, 7: 3},
    {'outer': {'inner': {'deep': [{'k': 'v'}, {9: b'\x00'}]}}},
], ids=lambda v: repr(v)[:30])
def test_container_roundtrip(value):
    assert roundtrip(value) == value


def test_int_keys_stay_ints():
    out = roundtrip({1: 'a', 2: {3: 'b'}})
    assert set(out) == {1, 2}
    assert all(type(k) is int for k in out)
    assert list(out[2]) == [3]


def test_tuples_arrive_as_lists():
    out = roundtrip((1, (2, 3), [4, (5,)]))
    assert out == [1, [2, 3], [4, [5]]]
    assert type(out) is list and type(out[1]) is list and type(out[2][1]) is list


def test_bytearray_and_memoryview_arrive_as_bytes():
    assert roundtrip(bytearray(b'abc')) == b'abc'
    assert type(roundtrip(memoryview(b'xyz'))) is bytes


@pytest.mark.parametrize('value', [
    datetime.datetime(2024, 2, 29, 12, 30, 45, 123456, tzinfo=UTC),
    datetime.datetime(1970, 1, 1, tzinfo=UTC),
    datetime.datetime(1900, 6, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime.datetime(2500, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime.datetime(2024, 7, 1, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
])
def test_tz_aware_datetime_roundtrip(value):
    out = roundtrip(value)
    assert isinstance(out, datetime.datetime)
    assert out.tzinfo is not None
    assert out == value  # the same instant
    assert out.utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize('ext', [
    msgpack.ExtType(0, b''),
    msgpack.ExtType(5, b'payload'),
    msgpack.ExtType(127, b'\x00' * 300),
    msgpack.ExtType(1, b'\xff' * 70_000),
])
def test_ext_type_roundtrip(ext):
    out = roundtrip(ext)
    assert isinstance(out, msgpack.ExtType)
    assert out == ext


def test_every_message_constructor_roundtrips_and_checks():
    msgs = [
        cmd('pkg.mod', 'func', {'a': 1, 'b': [1, 2]}, ('caller', 'uuid-1'), CID),
        functype('asyncfunc', CID), functype('asyncgen', CID), functype('context', CID),
        return_({'r': 1}, CID), started([1, 2], CID), yield_('item', CID), stop(CID),
        credit(1, CID), credit(2**20, CID),
        error(dict(ERROR_PAYLOAD), CID),
        hello(('me', 'uuid-2'), b'\x01' * 16, extra_field=[1, 2]),
        auth(b'\x02' * 32),
    ]
    encoder = Encoder()
    data = b''.join(encoder.encode(m) for m in msgs)
    out = Decoder().feed(data)
    assert out == msgs
    for msg in out:
        assert check_message(msg) is msg


# --- framing ------------------------------------------------------------------

STREAM_MSGS = [
    hello(UID, b'n' * 16),
    cmd('mod', 'fn', {'x': 'é' * 20}, UID, CID),
    functype('asyncgen', CID),
    yield_(b'\x00\x01' * 40, CID),
    yield_({1: [2.5, None, True]}, CID),
    yield_(datetime.datetime(2021, 1, 1, tzinfo=UTC), CID),
    yield_(msgpack.ExtType(3, b'ext'), CID),
    stop(CID),
]


def test_split_at_every_byte_boundary():
    data = b''.join(packb(m) for m in STREAM_MSGS)
    for cut in range(len(data) + 1):
        decoder = Decoder()
        out = decoder.feed(data[:cut])
        out += decoder.feed(data[cut:])
        assert out == STREAM_MSGS, f'split at byte {cut}'
        assert decoder.buffered == 0


def test_one_byte_at_a_time():
    data = b''.join(packb(m) for m in STREAM_MSGS)
    decoder = Decoder()
    out = []
    for i in range(len(data)):
        got = decoder.feed(data[i:i + 1])
        out += got
        # a message is handed out the moment its last byte arrives
        assert len(out) <= len(STREAM_MSGS)
    assert out == STREAM_MSGS


def test_partial_message_is_held_until_complete():
    data = packb(yield_('x' * 100, CID))
    decoder = Decoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.buffered > 0
    assert decoder.feed(data[-1:]) == [yield_('x' * 100, CID)]
    assert decoder.buffered == 0


def test_many_messages_in_one_feed_in_order():
    msgs = [yield_(i, CID) for i in range(5000)]
    data = b''.join(packb(m) for m in msgs)
    assert Decoder().feed(data) == msgs


def test_small_reads_of_whole_and_cut_messages():
    # reads under ONE_SHOT_MAX are decoded whole while nothing is held back;
    # a message cut short there goes on to the streaming unpacker
    from tractorish.msg._codec import ONE_SHOT_MAX
    msgs = [stop(CID), yield_(1, CID), yield_('z' * 30, CID)]
    data = b''.join(packb(m) for m in msgs)
    assert len(data) < ONE_SHOT_MAX
    for cut in range(len(data) + 1):
        decoder = Decoder()
        got = decoder.feed(data[:cut])
        whole = [m for m, end in zip(msgs, _ends(msgs)) if end <= cut]
        assert got == whole, cut
        assert decoder.buffered == cut - (_ends(msgs)[len(whole) - 1] if whole else 0)
        assert got + decoder.feed(data[cut:]) == msgs, cut
        assert decoder.buffered == 0


def _ends(msgs):
    """Where each of ``msgs`` ends in their concatenated encoding."""
    ends, total = [], 0
    for m in msgs:
        total += len(packb(m))
        ends.append(total)
    return ends


def test_a_small_read_is_held_to_the_size_limit_too():
    data = packb(yield_('v' * 80, CID))
    assert 60 < len(data) < 512
    with pytest.raises(ProtocolError, match='limit'):
        Decoder(max_msg_size=60).feed(data)
    lowered = Decoder()  # a limit lowered after the decoder was made
    lowered.max_msg_size = 60
    with pytest.raises(ProtocolError, match='limit'):
        lowered.feed(data)


def test_feed_bigger_than_limit_of_small_messages_is_fine():
    # the limit is per message, not per read
    decoder = Decoder(max_msg_size=200)
    msgs = [yield_('v' * 50, f'c{i}') for i in range(100)]
    data = b''.join(packb(m) for m in msgs)
    assert len(data) > 20 * 200
    assert decoder.feed(data) == msgs


def test_empty_feed_yields_nothing():
    decoder = Decoder()
    assert decoder.feed(b'') == []
    assert decoder.buffered == 0


# --- encoder errors -----------------------------------------------------------

def _recursive_list():
    lst: list = []
    lst.append(lst)
    return lst


@pytest.mark.parametrize('bad', [
    object(), {1, 2}, frozenset(), lambda: None, 1 + 2j, Ellipsis,
    2**64, -2**63 - 1,
    datetime.datetime(2024, 1, 1),  # naive: no instant to encode
    datetime.date(2024, 1, 1),
    [1, 2, object()],
    {'ok': 1, 'bad': {3, 4}},
    _recursive_list(),
], ids=lambda v: type(v).__name__)
def test_encoder_rejects_unencodable_and_stays_usable(bad):
    encoder = Encoder()
    with pytest.raises(MsgTypeError):
        encoder.encode(yield_(bad, CID))
    # no leftover partial output sneaks into the next message
    good = yield_([1, 2, 3], CID)
    data = encoder.encode(good)
    assert data == Encoder().encode(good)
    assert Decoder().feed(data) == [good]


@pytest.mark.parametrize('value', [
    0, -1, 2**63, None, True, 1.5, 'text', 'ü' * 40, b'\x00' * 300,
    [1, [2, [3]]], {'a': {'b': None}}, (1, 2),
    datetime.datetime(2024, 1, 1, tzinfo=UTC),
], ids=repr)
def test_encode_yield_is_the_same_bytes_as_encoding_the_map(value):
    assert Encoder().encode_yield(value, CID) == Encoder().encode(yield_(value, CID))


@pytest.mark.parametrize('shortcut, of_map', [
    (Encoder.encode_yield, yield_), (Encoder.encode_reply, return_),
], ids=['encode_yield', 'encode_reply'])
def test_a_shortcut_keeps_the_nesting_limit_of_the_map(shortcut, of_map):
    # a value packed on its own would get one level more than inside the map
    def outcome(encode):
        try:
            return encode()
        except MsgTypeError:
            return None
    for depth in (1020, 1023, 1024, 1030):
        value: list = []
        for _ in range(depth):
            value = [value]
        ordinary = outcome(lambda: Encoder().encode(of_map(value, CID)))
        short = outcome(lambda: shortcut(Encoder(), value, CID))
        assert (ordinary is None) == (short is None), depth
        if ordinary is not None:  # (encode_reply puts the functype before it)
            assert short.endswith(ordinary), depth


def test_encode_yield_is_right_for_many_call_ids():
    # more ids than the encoder keeps the encoded tails of
    encoder = Encoder()
    for round_ in range(2):
        for i in range(600):
            cid = f'c{i}'
            assert encoder.encode_yield(i, cid) == packb(yield_(i, cid)), (round_, cid)


def test_encode_yield_rejects_unencodable_and_oversize_and_stays_usable():
    encoder = Encoder(max_msg_size=100)
    with pytest.raises(MsgTypeError):
        encoder.encode_yield([1, object()], CID)
    with pytest.raises(MsgTypeError, match='exceeds'):
        encoder.encode_yield(b'x' * 100, CID)
    assert encoder.encode_yield([1, 2], CID) == packb(yield_([1, 2], CID))


@pytest.mark.parametrize('value', [
    0, -1, 2**63, None, True, 1.5, 'text', 'ü' * 40, b'\x00' * 300,
    [1, [2, [3]]], {'a': {'b': None}},
    datetime.datetime(2024, 1, 1, tzinfo=UTC),
], ids=repr)
@pytest.mark.parametrize('cid', ['c0', 'a12345', 'x' * 31, 'x' * 32, 'ü' * 20])
def test_encode_reply_is_the_two_replies_and_decodes_as_them(value, cid):
    replies = [functype('asyncfunc', cid), return_(value, cid)]
    data = Encoder().encode_reply(value, cid)
    assert data == b''.join(packb(m) for m in replies)
    assert Decoder().feed(data) == replies


def test_encode_reply_rejects_unencodable_and_oversize_and_stays_usable():
    encoder = Encoder(max_msg_size=100)
    for bad in (object(), [1, object()]):
        with pytest.raises(MsgTypeError):
            encoder.encode_reply(bad, CID)
    with pytest.raises(MsgTypeError, match='exceeds'):
        encoder.encode_reply(b'x' * 100, CID)
    with pytest.raises(MsgTypeError, match='exceeds'):  # the functype alone is too big
        Encoder(max_msg_size=30).encode_reply(None, 'x' * 10)
    assert encoder.encode_reply(7, CID) == packb(functype('asyncfunc', CID)) + packb(return_(7, CID))


def test_a_plain_calls_replies_decode_cut_anywhere():
    # a read that starts with {'functype': 'asyncfunc', 'cid': ...} is read by
    # hand up to the return; any cut must still give the same messages
    msgs = [functype('asyncfunc', 'c17'), return_({'v': [1, 2]}, 'c17'), stop('c9')]
    data = b''.join(packb(m) for m in msgs)
    assert Decoder().feed(data) == msgs
    for cut in range(len(data) + 1):
        decoder = Decoder()
        got = decoder.feed(data[:cut])
        assert got + decoder.feed(data[cut:]) == msgs, cut
        assert decoder.buffered == 0


@pytest.mark.parametrize('cid_bytes', [
    b'\xa0',                      # an empty cid (a string all the same)
    b'\xd9\x03abc',               # a str8, not a fixstr
])
def test_a_functype_reply_of_another_shape_takes_the_ordinary_path(cid_bytes):
    from tractorish.msg._codec import _FUNCTYPE_CID
    data = _FUNCTYPE_CID + cid_bytes + packb(return_(1, 'abc'))
    cid = msgpack.unpackb(cid_bytes)
    assert Decoder().feed(data) == [functype('asyncfunc', cid), return_(1, 'abc')]


@pytest.mark.parametrize('cid_bytes', [
    b'\xa3\xff\xfe\xfd',            # not UTF-8
    b'\x93\x01\x02\x03',            # not a string at all
])
def test_a_bad_cid_in_a_functype_reply_is_a_protocol_error(cid_bytes):
    from tractorish.msg._codec import _FUNCTYPE_CID
    with pytest.raises(ProtocolError):
        Decoder().feed(_FUNCTYPE_CID + cid_bytes + packb(return_(1, 'abc')))


def test_msg_type_error_is_a_type_error():
    with pytest.raises(TypeError):
        Encoder().encode(object())


def test_encoder_rejects_oversize_and_stays_usable():
    limit = 100
    encoder = Encoder(max_msg_size=limit)
    at_limit = message_of_size(limit)
    assert encoder.encode(msgpack.unpackb(at_limit)) == at_limit
    over = msgpack.unpackb(message_of_size(limit + 1))
    with pytest.raises(MsgTypeError, match='exceeds'):
        encoder.encode(over)
    assert encoder.encode(stop(CID)) == packb(stop(CID))


def test_default_limit_is_32_mib():
    assert DEFAULT_MAX_MSG_SIZE == 32 * 1024 * 1024
    assert Encoder().max_msg_size == DEFAULT_MAX_MSG_SIZE
    assert Decoder().max_msg_size == DEFAULT_MAX_MSG_SIZE


# --- decoder errors -----------------------------------------------------------

def assert_protocol_error(data: bytes, match: 'str | None' = None, *, max_msg_size=DEFAULT_MAX_MSG_SIZE):
    decoder = Decoder(max_msg_size)
    with pytest.raises(ProtocolError, match=match):
        decoder.feed(data)
    # broken for good: even a valid message is refused now
    with pytest.raises(ProtocolError):
        decoder.feed(packb(stop(CID)))
    return decoder


@pytest.mark.parametrize('data', [
    b'\xc1',                                     # the never-used byte
    b'\x81\xa3cid\xc1',                          # ... inside a map
    b'\x81\xa2\xff\xfe\x01',                     # invalid UTF-8 in a str
    b'\x81\x91\x01\x01',                         # unhashable (array) map key
    b'\x81\x81\x01\x01\x01',                     # unhashable (map) map key
    b'\x81\xa5yield\xd7\xff' + b'\xff' * 8,      # timestamp: nanoseconds > 1e9
    b'\x81\xa5yield\xd5\xff\x00\x00',            # timestamp of a bad length
], ids=['c1', 'c1-in-map', 'utf8', 'list-key', 'map-key', 'ts-nanos', 'ts-len'])
def test_malformed_msgpack(data):
    assert_protocol_error(data, 'malformed')


@pytest.mark.parametrize('obj', [
    None, True, 0, -7, 1.5, 'hello', b'bytes', [], [{'cmd': []}],
    msgpack.ExtType(1, b'x'),
], ids=repr)
def test_non_map_message(obj):
    assert_protocol_error(packb(obj), 'must be a map')


@pytest.mark.parametrize('msg', [
    {},
    {'frob': 1},
    {'frob': 1, 'cid': CID},
    {'yield': 1, 'cid': CID, 'extra': 2},
    {'yield': 1, 'cid': 5},                      # cid not a string
    {'yield': 1},                                # no cid
    {'cid': CID, 'hello': {'uid': UID, 'proto': 1, 'nonce': b''}},
    {'cid': CID, 'cmd': ['m', 'f', {}, UID, CID]},
    {'auth': 'not-bytes'},
    {1: 'x', 'cid': CID},
], ids=repr)
def test_unknown_kind_or_shape(msg):
    assert_protocol_error(packb(msg))


@pytest.mark.parametrize('bad_cmd', [
    'mod.func',
    {'ns': 'm'},
    ['m', 'f', {}, UID],
    ['m', 'f', {}, UID, CID, 'extra'],
    [1, 'f', {}, UID, CID],
    ['m', None, {}, UID, CID],
    ['m', 'f', {}, UID, 7],
    ['m', 'f', [], UID, CID],
    ['m', 'f', {1: 'int key'}, UID, CID],
    ['m', 'f', {}, ['only-name'], CID],
    ['m', 'f', {}, ['name', 1], CID],
    ['m', 'f', {}, 'name:uuid', CID],
    ['m', 'f', {}, ['a', 'b', 'c'], CID],
], ids=repr)
def test_bad_cmd_shape(bad_cmd):
    assert_protocol_error(packb({'cmd': bad_cmd}), "'cmd'")


@pytest.mark.parametrize('bad_hello', [
    'hi',
    [UID, 1, b'n'],
    {'proto': 1, 'nonce': b'n'},
    {'uid': ['only'], 'proto': 1, 'nonce': b'n'},
    {'uid': [1, 2], 'proto': 1, 'nonce': b'n'},
    {'uid': UID, 'nonce': b'n'},
    {'uid': UID, 'proto': '1', 'nonce': b'n'},
    {'uid': UID, 'proto': 1.0, 'nonce': b'n'},
    {'uid': UID, 'proto': True, 'nonce': b'n'},
    {'uid': UID, 'proto': 1},
    {'uid': UID, 'proto': 1, 'nonce': 'str-nonce'},
], ids=repr)
def test_bad_hello_shape(bad_hello):
    assert_protocol_error(packb({'hello': bad_hello}), "'hello'")


@pytest.mark.parametrize('kind', ['syncfunc', '', 'ASYNCFUNC', 'generator'])
def test_unknown_functype(kind):
    assert_protocol_error(packb(functype(kind, CID)), 'unknown functype')


@pytest.mark.parametrize('payload', [1, None, ['asyncfunc']])
def test_functype_payload_not_a_string(payload):
    assert_protocol_error(packb({'functype': payload, 'cid': CID}), "bad 'functype'")


@pytest.mark.parametrize('missing', ['type_str', 'tb_str', 'src_uid', 'boxed_type_path'])
def test_error_payload_missing_field(missing):
    payload = {k: v for k, v in ERROR_PAYLOAD.items() if k != missing}
    assert_protocol_error(packb(error(payload, CID)), 'malformed error payload')


@pytest.mark.parametrize('payload', ['ValueError', None, [1, 2]])
def test_error_payload_not_a_map(payload):
    assert_protocol_error(packb({'error': payload, 'cid': CID}), "bad 'error'")


@pytest.mark.parametrize('amount', [0, -1, 2**20 + 1, 2**63, 1.5, '5', True, None, [1]],
                         ids=repr)
def test_bad_credit(amount):
    assert_protocol_error(packb({'credit': amount, 'cid': CID}), 'credit')


def test_bad_message_after_good_ones_in_one_feed():
    data = packb(stop(CID)) + packb({'frob': 1})
    assert_protocol_error(data, 'unknown')


def test_error_is_sticky_and_the_same():
    decoder = Decoder()
    with pytest.raises(ProtocolError) as first:
        decoder.feed(b'\xc1')
    with pytest.raises(ProtocolError) as second:
        decoder.feed(b'')
    assert second.value is first.value


def test_deeply_nested_bad_message_is_a_protocol_error():
    # msgpack happily decodes ~1000 levels of arrays; reporting the bad
    # shape must not blow the Python stack (RecursionError escaping feed)
    nested: list = []
    for _ in range(1000):
        nested = [nested]
    assert_protocol_error(packb({'cmd': nested}), "'cmd'")


def test_too_deep_for_msgpack_is_a_protocol_error():
    assert_protocol_error(b'\x91' * 5000 + b'\xc0', 'malformed')


# --- size limit ---------------------------------------------------------------

LIMIT = 1000


def test_message_exactly_at_limit_is_accepted():
    data = message_of_size(LIMIT)
    decoder = Decoder(LIMIT)
    assert len(decoder.feed(data)) == 1
    decoder = Decoder(LIMIT)
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
    assert len(out) == 1


def test_message_over_limit_in_one_feed():
    assert_protocol_error(message_of_size(LIMIT + 1), 'limit', max_msg_size=LIMIT)


def test_message_over_limit_fed_slowly():
    data = message_of_size(LIMIT + 1)
    decoder = Decoder(LIMIT)
    with pytest.raises(ProtocolError, match='limit'):
        for i in range(len(data)):
            decoder.feed(data[i:i + 1])
            assert decoder.buffered <= LIMIT


def test_messages_at_limit_back_to_back():
    data = message_of_size(LIMIT)
    decoder = Decoder(LIMIT)
    assert len(decoder.feed(data * 5)) == 5
    assert decoder.buffered == 0


@pytest.mark.parametrize('header', [
    b'\xc6' + (10**9).to_bytes(4, 'big'),        # bin32, a gigabyte
    b'\xdb' + (10**9).to_bytes(4, 'big'),        # str32, a gigabyte
    b'\xc6' + (LIMIT).to_bytes(4, 'big'),        # bin32 just over once framed
    b'\xdb' + (LIMIT).to_bytes(4, 'big'),
], ids=['bin-1G', 'str-1G', 'bin-limit', 'str-limit'])
def test_declared_huge_length_fed_slowly(header):
    prefix = b'\x82\xa3cid\xa1c\xa5yield' + header
    decoder = Decoder(LIMIT)
    fed = 0
    with pytest.raises(ProtocolError):
        decoder.feed(prefix)
        fed += len(prefix)
        for _ in range(10 * LIMIT):
            decoder.feed(b'y' * 7)
            fed += 7
            assert decoder.buffered <= LIMIT
    # refused as soon as the message could no longer fit
    assert fed <= LIMIT


def test_many_small_elements_over_limit_is_refused():
    # a message is over the limit however its bytes are split into
    # elements: here an array of 1000 bins of 900 bytes (~900 kB)
    decoder = Decoder(LIMIT)
    element = packb(b'z' * 900)
    fed = 0
    with pytest.raises(ProtocolError, match='limit'):
        decoder.feed(b'\x82\xa3cid\xa1c\xa5yield\xdc' + (1000).to_bytes(2, 'big'))
        for _ in range(1000):
            assert decoder.feed(element) == []
            fed += len(element)
    assert fed <= 2 * LIMIT


def test_buffered_counts_every_byte_of_an_incomplete_message():
    data = packb(yield_([b'a' * 50] * 10, CID))
    decoder = Decoder()
    decoder.feed(data[:-1])
    assert decoder.buffered == len(data) - 1


@pytest.mark.parametrize('field, bad', [('src_uid', 5), ('type_str', 3), ('tb_str', None),
                                        ('relay_uids', [7]), ('message', b'x')])
def test_error_payload_with_wrong_types_is_refused(field, bad):
    payload = {'type_str': 'ValueError', 'tb_str': '', 'src_uid': ['w', 'u'],
               'boxed_type_path': 'builtins.ValueError', 'message': 'm', 'relay_uids': []}
    payload[field] = bad
    assert_protocol_error(packb(error(payload, CID)), 'malformed error payload')
