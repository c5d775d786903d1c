"""Property tests: whatever bytes arrive, in whatever chunks, the decoder
either hands out well-formed messages or raises ProtocolError."""
from __future__ import annotations

import datetime

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tractorish._exceptions import ProtocolError
from tractorish.msg import (
    Decoder, Encoder, auth, check_message, cmd, credit, error, functype, hello,
    return_, started, stop, yield_,
)

MAX = 512  # small, so generated streams cross the limit now and then

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

utc_datetimes = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.just(datetime.timezone.utc))

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2**63, max_value=2**64 - 1),
    st.floats(allow_nan=False), st.text(max_size=40), st.binary(max_size=300),
    utc_datetimes,
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-5, 5)),
                        inner, max_size=5)),
    max_leaves=20)

names = st.text(max_size=12)
uids = st.tuples(names, names)
cids = st.text(min_size=1, max_size=10)
error_payloads = st.fixed_dictionaries({
    'type_str': names, 'tb_str': st.text(max_size=50), 'src_uid': uids.map(list),
    'boxed_type_path': names,
})

messages = st.one_of(
    st.builds(cmd, names, names,
              st.dictionaries(st.text(max_size=8), values, max_size=3), uids, cids),
    st.builds(functype, st.sampled_from(['asyncfunc', 'asyncgen', 'context']), cids),
    st.builds(return_, values, cids),
    st.builds(started, values, cids),
    st.builds(yield_, values, cids),
    st.builds(stop, cids),
    st.builds(credit, st.integers(1, 2**20), cids),
    st.builds(error, error_payloads, cids),
    st.builds(hello, uids, st.binary(min_size=16, max_size=16)),
    st.builds(auth, st.binary(min_size=32, max_size=32)),
)

# bulky messages: several elements of a few hundred bytes, often over MAX
# in total while every single element fits
bulky_messages = st.builds(
    yield_, st.lists(st.binary(min_size=100, max_size=300), min_size=1, max_size=4),
    cids)


def encode(msg) -> bytes:
    return msgpack.packb(msg, use_bin_type=True, datetime=True)


def chunk(data: bytes, cuts: list) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def feed_all(decoder: Decoder, pieces: list) -> 'tuple[list, ProtocolError | None]':
    """Feed every piece; check the invariants after each feed."""
    out: list = []
    for piece in pieces:
        try:
            got = decoder.feed(piece)
        except ProtocolError as err:
            # and it stays broken
            with pytest.raises(ProtocolError):
                decoder.feed(encode(stop('c')))
            return out, err
        # anything else than ProtocolError escaping is a failure
        for msg in got:
            assert check_message(msg) is msg
        assert 0 <= decoder.buffered <= decoder.max_msg_size
        out += got
    return out, None


# a stream made of valid messages, damaged in one of several ways
pieces_of_stream = st.one_of(
    st.lists(messages, max_size=6).map(lambda ms: b''.join(map(encode, ms))),
    st.binary(max_size=600),
    st.tuples(st.lists(messages, min_size=1, max_size=4), st.integers(0, 10**6)).map(
        lambda t: b''.join(map(encode, t[0]))[: t[1] % (len(b''.join(map(encode, t[0]))) + 1)]),
    st.tuples(messages, st.binary(min_size=1, max_size=4), st.integers(0, 10**6)).map(
        lambda t: _splice(encode(t[0]), t[1], t[2])),
)


def _splice(data: bytes, junk: bytes, at: int) -> bytes:
    at %= len(data) + 1
    return data[:at] + junk + data[at:]


@SETTINGS
@given(parts=st.lists(pieces_of_stream, max_size=5),
       cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_decoder_yields_valid_messages_or_protocol_error(parts, cuts):
    data = b''.join(parts)
    feed_all(Decoder(MAX), chunk(data, cuts))


@SETTINGS
@given(data=st.binary(max_size=2000),
       cuts=st.lists(st.integers(0, 10**6), max_size=30))
def test_random_bytes_never_escape_as_other_errors(data, cuts):
    feed_all(Decoder(MAX), chunk(data, cuts))


@SETTINGS
@given(msgs=st.lists(st.one_of(messages, bulky_messages), max_size=8),
       cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_valid_stream_in_random_chunks_comes_out_whole_and_in_order(msgs, cuts):
    encoded = [encode(m) for m in msgs]
    data = b''.join(encoded)
    out, err = feed_all(Decoder(MAX), chunk(data, cuts))
    fits = [len(e) <= MAX for e in encoded]
    if all(fits):
        assert err is None
        assert out == msgs
    else:
        # everything before the first oversize message, then the error:
        # an oversize message is never handed out
        first_big = fits.index(False)
        assert err is not None, (
            f'a message of {len(encoded[first_big])} bytes passed a limit of {MAX}')
        assert out == msgs[:len(out)]
        assert len(out) <= first_big


@SETTINGS
@given(msgs=st.lists(messages, min_size=1, max_size=6))
def test_encoder_output_decodes_to_the_same_messages(msgs):
    encoder = Encoder()
    data = b''.join(encoder.encode(m) for m in msgs)
    assert Decoder().feed(data) == msgs
