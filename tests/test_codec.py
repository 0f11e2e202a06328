"""The codecs (msgpack, JSON) and the server's websocket frame builder: pure, no sockets."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import JSON, MSGPACK, SUBPROTOCOLS, ErrorCode, ProtocolError, codec_for, wsframe

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GARBAGE = settings(max_examples=500, deadline=None)

# Plain values both codecs carry: what event content and frames are made of.
INTS = st.integers(-(2**53), 2**53)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | st.text(max_size=20)
PLAIN = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids, max_size=5)
    ),
    max_leaves=15,
)
MAPS = st.dictionaries(st.text(max_size=10), PLAIN, max_size=4)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells True from 1 and 1 from 1.0, which == does not."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return struct.pack("!d", a) == struct.pack("!d", b)  # keeps -0.0 apart from 0.0
    return bool(a == b)


def bad_frame(codec: Any, data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        codec.decode(data)
    assert info.value.code is ErrorCode.BAD_FRAME
    return info.value


# -- round trips ---------------------------------------------------------------------------


@SETTINGS
@given(PLAIN)
def test_msgpack_round_trip(value: Any) -> None:
    data = MSGPACK.encode(value)
    assert isinstance(data, bytes)
    assert same(MSGPACK.decode(data), value)


@SETTINGS
@given(PLAIN)
def test_json_round_trip(value: Any) -> None:
    data = JSON.encode(value)
    assert isinstance(data, bytes)
    data.decode("utf-8")  # a text frame must be valid UTF-8
    assert same(JSON.decode(data), value)


def test_json_keeps_non_ascii_text_readable() -> None:
    data = JSON.encode({"body": "Привет, 7Б! 👋"})
    assert "Привет, 7Б! 👋".encode() in data
    assert JSON.decode(data) == {"body": "Привет, 7Б! 👋"}


def test_subprotocols_choose_their_codec_and_frame_kind() -> None:
    assert codec_for("sferum.v1.msgpack") is MSGPACK
    assert codec_for("sferum.v1.json") is JSON
    assert codec_for("sferum.v2.msgpack") is None
    assert codec_for("") is None
    assert set(SUBPROTOCOLS) == {"sferum.v1.msgpack", "sferum.v1.json"}
    assert MSGPACK.binary is True
    assert JSON.binary is False


# -- garbage in: only ever bad_frame -------------------------------------------------------


@GARBAGE
@given(st.binary(max_size=200))
@example(b"")
@example(b"\xc1")  # the one byte msgpack never uses
@example(b"\xdd\xff\xff\xff\xff")  # an array claiming 4 billion items in 5 bytes
@example(b"\xdf\xff\xff\xff\xff")  # same for a map
@example(b"\xdb\xff\xff\xff\xff")  # a string claiming 4 GiB
@example(b"\x91" * 5000)  # deeply nested arrays
@example(b"\x81\x01\x02")  # a map with an integer key
@example(b"\xff\xfe\x00")
@example(b"[" * 100_000)
@example(b'{"a":')
@example(b'"\\ud800"')
@example(b"1" * 5000)  # an integer too long for int()
def test_garbage_is_bad_frame_and_nothing_else(data: bytes) -> None:
    for codec in (MSGPACK, JSON):
        try:
            codec.decode(data)
        except ProtocolError as err:
            assert err.code is ErrorCode.BAD_FRAME
            assert err.message


JSONISH = st.text(alphabet='{}[]",:0123456789.eE+-truefalsnNIinfy\\ud8 \n', max_size=60)


@GARBAGE
@given(JSONISH)
def test_json_like_garbage_is_bad_frame_and_nothing_else(text: str) -> None:
    try:
        JSON.decode(text.encode())
    except ProtocolError as err:
        assert err.code is ErrorCode.BAD_FRAME


@SETTINGS
@given(PLAIN, st.data())
def test_truncated_msgpack_is_bad_frame(value: Any, data: st.DataObject) -> None:
    encoded = MSGPACK.encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    bad_frame(MSGPACK, encoded[:cut])  # msgpack is prefix-free: no prefix is a whole value


@settings(max_examples=60, deadline=None)
@given(MAPS, st.data())
def test_truncated_json_map_is_bad_frame(value: dict[str, Any], data: st.DataObject) -> None:
    encoded = JSON.encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    bad_frame(JSON, encoded[:cut])


@SETTINGS
@given(PLAIN, st.binary(min_size=1, max_size=10))
def test_msgpack_trailing_bytes_are_bad_frame(value: Any, tail: bytes) -> None:
    bad_frame(MSGPACK, MSGPACK.encode(value) + tail)


def test_msgpack_map_keys_must_be_strings() -> None:
    bad_frame(MSGPACK, msgpack.packb({1: "x"}))
    bad_frame(MSGPACK, msgpack.packb({"a": {2.5: "x"}}))


def test_msgpack_invalid_utf8_string_is_bad_frame() -> None:
    bad_frame(MSGPACK, b"\xa2\xff\xfe")  # fixstr of 2 bytes that are not UTF-8


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb(msgpack.ExtType(5, b"abc")),
        msgpack.packb(msgpack.ExtType(1, b"")),  # an empty ext payload is still an ext type
        msgpack.packb({"content": msgpack.ExtType(42, b"\x00" * 16)}),
        b"\x92\x01\xc7\x00\xfb",  # [1, ext8 of type -5 with no payload]
        msgpack.packb(msgpack.Timestamp(1, 0), datetime=False),  # the reserved ext type -1
    ],
    ids=["ext", "empty-ext", "ext-in-map", "empty-ext-in-list", "timestamp"],
)
def test_msgpack_ext_types_are_refused(data: bytes) -> None:
    bad_frame(MSGPACK, data)


@pytest.mark.parametrize(
    "text",
    [
        '{"x":NaN}',
        '{"x":Infinity}',
        '{"x":-Infinity}',
        "NaN",
        "[1,Infinity]",
    ],
)
def test_json_nan_and_infinity_are_refused(text: str) -> None:
    err = bad_frame(JSON, text.encode())
    assert "not valid JSON" in err.message


@pytest.mark.parametrize(
    "text",
    [
        '{"body":"\\ud800"}',  # a lone high surrogate
        '{"body":"abc\\udfff"}',  # a lone low surrogate
        '{"\\ud83d":1}',  # half an emoji as a key
        '{"id":"\\uDC00","op":"ping"}',
    ],
)
def test_json_lone_surrogates_are_bad_frame(text: str) -> None:
    # They decode to Python strings that cannot be encoded again (not in SQLite, not in an
    # echoed frame), so they must stop at the edge.
    bad_frame(JSON, text.encode())


def test_json_escaped_surrogate_pair_is_one_character() -> None:
    assert JSON.decode(b'{"body":"\\ud83d\\udc4b"}') == {"body": "👋"}
    assert JSON.decode(b'{"body":"\\\\ud800"}') == {"body": "\\ud800"}  # an escaped backslash


def test_json_invalid_utf8_is_bad_frame() -> None:
    bad_frame(JSON, b'{"body":"\xff"}')


def test_json_trailing_garbage_is_bad_frame() -> None:
    bad_frame(JSON, b'{"a":1} x')
    bad_frame(JSON, b'{"a":1}{"a":2}')


def test_json_encoder_emits_compact_standard_json() -> None:
    data = JSON.encode({"a": [1, 2.5, None, True], "b": "x"})
    assert data == b'{"a":[1,2.5,null,true],"b":"x"}'
    assert json.loads(data) == {"a": [1, 2.5, None, True], "b": "x"}


# -- server websocket frames (RFC 6455 section 5.2) ---------------------------------------


def parse_server_frame(data: bytes) -> tuple[bool, int, bytes]:
    """An independent RFC 6455 frame reader; asserts what a server frame must look like."""
    assert len(data) >= 2
    b0, b1 = data[0], data[1]
    fin = bool(b0 & 0x80)
    assert b0 & 0x70 == 0, "RSV1-3 must be zero without extensions"
    opcode = b0 & 0x0F
    assert not b1 & 0x80, "a server must not mask its frames (RFC 6455 5.1)"
    length = b1 & 0x7F
    offset = 2
    if length == 126:
        (length,) = struct.unpack("!H", data[2:4])
        assert length >= 126, "the minimal length encoding must be used"
        offset = 4
    elif length == 127:
        (length,) = struct.unpack("!Q", data[2:10])
        assert length >= 1 << 16, "the minimal length encoding must be used"
        assert length < 1 << 63, "the most significant bit must be 0"
        offset = 10
    payload = data[offset:]
    assert len(payload) == length, "the frame holds exactly its payload"
    return fin, opcode, payload


SIZES = [0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 65537, 200_000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_wsframe_is_a_valid_server_frame(size: int, binary: bool) -> None:
    payload = bytes(i % 251 for i in range(size))
    data = wsframe.frame(payload, binary)
    fin, opcode, body = parse_server_frame(data)
    assert fin
    assert opcode == (0x2 if binary else 0x1)
    assert body == payload
    header = 2 if size <= 125 else 4 if size <= 65535 else 10
    assert len(data) == header + size


@SETTINGS
@given(PLAIN)
def test_wsframe_carries_an_encoded_value(value: Any) -> None:
    for codec in (MSGPACK, JSON):
        fin, opcode, body = parse_server_frame(wsframe.frame(codec.encode(value), codec.binary))
        assert fin
        assert opcode == (0x2 if codec.binary else 0x1)
        assert same(codec.decode(body), value)
