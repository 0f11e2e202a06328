"""media/rtp.py: header parsing/rewriting, checked against aiortc's own RtpPacket."""

from __future__ import annotations

import contextlib
import struct

import pytest
from aiortc.rtp import RtpPacket, pack_header_extensions, unpack_header_extensions
from hypothesis import given, settings
from hypothesis import strategies as st

from media import rtp
from media.rtp import RtpError

PT = st.integers(0, 127)
SEQ = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
ONE_BYTE_EXT = st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=6)
ANY_EXT = st.dictionaries(st.integers(1, 255), st.binary(max_size=40), max_size=6)


def _v2(data: bytes) -> bytes:
    """Force version 2 so hypothesis explores past the first check."""
    return bytes((0x80 | (data[0] & 0x3F),)) + data[1:] if data else data


def test_minimal_packet_fields() -> None:
    data = rtp.serialize(
        payload_type=96,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0x12345678,
        payload=b"xyz",
        marker=True,
    )
    view = rtp.parse(data)
    assert view.marker is True
    assert (view.payload_type, view.sequence, view.timestamp, view.ssrc) == (
        96,
        65535,
        0xFFFFFFFF,
        0x12345678,
    )
    assert (view.csrc_count, view.ext_profile, view.extensions) == (0, 0, {})
    assert data[view.payload_offset : view.payload_end] == b"xyz"
    assert rtp.read_extension(data, 1) is None


def test_one_and_two_byte_forms_chosen_per_rfc8285() -> None:
    one = rtp.serialize(
        payload_type=111,
        sequence=1,
        timestamp=2,
        ssrc=3,
        payload=b"p",
        extensions={1: b"\x90", 3: b"mid0"},
    )
    assert rtp.parse(one).ext_profile == rtp.ONE_BYTE_PROFILE
    # An id above 14, an empty value or a value over 16 bytes needs the two-byte form.
    for ext in ({15: b"x"}, {2: b""}, {2: b"y" * 17}):
        two = rtp.serialize(
            payload_type=111, sequence=1, timestamp=2, ssrc=3, payload=b"p", extensions=ext
        )
        view = rtp.parse(two)
        assert view.ext_profile == rtp.TWO_BYTE_PROFILE
        assert view.extensions == ext


def test_one_byte_id_15_terminates_the_block() -> None:
    # RFC 8285 §4.2: id 15 stops processing; what follows is not an element.
    elements = b"\x10\xaa" + b"\xf0" + b"\x20\xbb" + b"\x00\x00\x00"
    data = (
        struct.pack("!BBHII", 0x90, 96, 1, 2, 3)
        + struct.pack("!HH", 0xBEDE, len(elements) // 4)
        + elements
        + b"payload"
    )
    view = rtp.parse(data)
    assert view.extensions == {1: b"\xaa"}
    assert rtp.read_extension(data, 2) is None
    assert data[view.payload_offset :] == b"payload"


def test_two_byte_appbits_profile_is_decoded() -> None:
    elements = b"\x05\x02hi" + b"\x00" * 0
    data = (
        struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + struct.pack("!HH", 0x1003, 1) + elements + b"pl"
    )
    assert rtp.parse(data).extensions == {5: b"hi"}
    assert rtp.read_extension(data, 5) == b"hi"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter"),
        (b"\x80" * 11, "shorter"),
        (b"\x40" + b"\x00" * 11, "version is 1"),
        (b"\x82" + b"\x00" * 11 + b"\x00" * 4, "CSRC"),
        (b"\x90" + b"\x00" * 11 + b"\xbe\xde", "extension header"),
        (b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x02" + b"\x00" * 4, "extension block"),
        (b"\xa0" + b"\x00" * 11 + b"ab\x00", "padding length 0"),
        (b"\xa0" + b"\x00" * 11 + b"ab\x04", "padding length 4"),
    ],
)
def test_malformed_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        rtp.parse(data)
    with pytest.raises(RtpError):
        rtp.rewrite(data, payload_type=1, sequence=1, timestamp=1, ssrc=1, extensions={})


@pytest.mark.parametrize(
    "data",
    [
        b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x01" + b"\x13\x00\x00\x00",
        b"\x90" + b"\x00" * 11 + b"\x10\x00\x00\x01" + b"\x01\x09\x00\x00",
        b"\x90" + b"\x00" * 11 + b"\x10\x00\x00\x01" + b"\x00\x00\x00\x07",
        b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x01" + b"\x01\x00\x00\x00",
    ],
)
def test_malformed_extension_element_is_refused(data: bytes) -> None:
    with pytest.raises(RtpError, match=r"truncated|reserved id 0"):
        rtp.parse(data)
    with pytest.raises(RtpError, match=r"truncated|reserved id 0"):
        rtp.read_extension(data, 14)


def test_rewrite_drops_padding_keeps_csrcs_and_marker() -> None:
    original = rtp.serialize(
        payload_type=100,
        sequence=7,
        timestamp=8,
        ssrc=9,
        payload=b"media",
        marker=True,
        extensions={1: b"\x01\x02"},
        csrcs=(11, 22),
        padding=4,
    )
    assert rtp.parse(original).padding == 4
    out = rtp.rewrite(
        original, payload_type=96, sequence=70, timestamp=80, ssrc=90, extensions={4: b"0"}
    )
    packet = RtpPacket.parse(out)
    assert (packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc) == (
        96,
        70,
        80,
        90,
    )
    assert packet.marker == 1
    assert packet.csrc == [11, 22]
    assert packet.payload == b"media"
    assert packet.padding_size == 0
    assert rtp.parse(out).extensions == {4: b"0"}
    # No extensions: the X bit is cleared. Explicit marker/payload override.
    bare = rtp.rewrite(
        original,
        payload_type=96,
        sequence=1,
        timestamp=2,
        ssrc=3,
        extensions={},
        marker=False,
        payload=b"new",
    )
    view = rtp.parse(bare)
    assert (view.ext_profile, view.marker, bare[view.payload_offset :]) == (0, False, b"new")


def test_prebuilt_extension_block_is_accepted() -> None:
    block = rtp.encode_extensions({3: b"1"})
    original = rtp.serialize(payload_type=1, sequence=1, timestamp=1, ssrc=1, payload=b"x")
    a = rtp.rewrite(original, payload_type=1, sequence=2, timestamp=3, ssrc=4, extensions=block)
    b = rtp.rewrite(original, payload_type=1, sequence=2, timestamp=3, ssrc=4, extensions={3: b"1"})
    assert a == b
    assert rtp.encode_extensions({}) == b""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
    ],
)
def test_out_of_range_fields_are_refused(kwargs: dict[str, int]) -> None:
    fields = {"payload_type": 1, "sequence": 1, "timestamp": 1, "ssrc": 1} | kwargs
    with pytest.raises(RtpError):
        rtp.serialize(
            payload=b"",
            payload_type=fields["payload_type"],
            sequence=fields["sequence"],
            timestamp=fields["timestamp"],
            ssrc=fields["ssrc"],
        )


def test_bad_extension_ids_are_refused() -> None:
    with pytest.raises(RtpError):
        rtp.encode_extensions({0: b"x"})
    with pytest.raises(RtpError):
        rtp.encode_extensions({256: b"x"})
    with pytest.raises(RtpError):
        rtp.encode_extensions({3: b"x" * 256})
    with pytest.raises(RtpError):
        rtp.read_extension(b"\x80" + b"\x00" * 11, 0)


def test_is_rtcp() -> None:
    assert rtp.is_rtcp(bytes((0x80, 200)) + b"\x00" * 6)
    assert not rtp.is_rtcp(
        rtp.serialize(payload_type=96, sequence=1, timestamp=1, ssrc=1, payload=b"")
    )


@given(ext=ANY_EXT)
def test_encode_extensions_matches_aiortc(ext: dict[int, bytes]) -> None:
    profile, value = pack_header_extensions(sorted(ext.items()))
    expected = struct.pack("!HH", profile, len(value) // 4) + value if ext else b""
    assert rtp.encode_extensions(ext) == expected


@given(
    pt=PT,
    seq=SEQ,
    ts=U32,
    ssrc=U32,
    marker=st.booleans(),
    payload=st.binary(max_size=64),
    ext=st.one_of(ONE_BYTE_EXT, ANY_EXT),
    csrcs=st.lists(U32, max_size=15),
    padding=st.integers(0, 255),
)
def test_serialize_parse_roundtrip_against_aiortc(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    marker: bool,
    payload: bytes,
    ext: dict[int, bytes],
    csrcs: list[int],
    padding: int,
) -> None:
    data = rtp.serialize(
        payload_type=pt,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
        extensions=ext,
        csrcs=tuple(csrcs),
        padding=padding,
    )
    view = rtp.parse(data)
    assert (view.payload_type, view.sequence, view.timestamp, view.ssrc, view.marker) == (
        pt,
        seq,
        ts,
        ssrc,
        marker,
    )
    assert view.extensions == ext
    assert view.padding == padding
    assert data[view.payload_offset : view.payload_end] == payload
    for x_id in range(1, 20):
        assert rtp.read_extension(data, x_id) == ext.get(x_id)
    oracle = RtpPacket.parse(data)
    assert (oracle.payload_type, oracle.sequence_number, oracle.timestamp, oracle.ssrc) == (
        pt,
        seq,
        ts,
        ssrc,
    )
    assert oracle.csrc == csrcs
    assert oracle.payload == payload
    assert oracle.padding_size == padding


@settings(max_examples=300)
@given(data=st.binary(max_size=120).map(_v2), x_id=st.integers(1, 255))
def test_arbitrary_bytes_only_raise_rtp_error(data: bytes, x_id: int) -> None:
    _check_any_bytes(data, x_id)


def _has_one_byte_id15(data: bytes, view: rtp.RtpPacketView) -> bool:
    """aiortc does not implement RFC 8285's "id 15 stops the block" rule: skip the oracle."""
    if view.ext_profile != rtp.ONE_BYTE_PROFILE:
        return False
    ext_start = rtp.HEADER_SIZE + 4 * view.csrc_count + 4
    return any(b >> 4 == 15 for b in data[ext_start : view.payload_offset])


def _check_any_bytes(data: bytes, x_id: int) -> None:
    try:
        one = rtp.parse_one(data, x_id)
    except RtpError:
        one = None
    try:
        view = rtp.parse(data)
    except RtpError:
        # rewrite replaces the extension block: it checks framing, not old elements
        with contextlib.suppress(RtpError):
            rtp.rewrite(data, payload_type=1, sequence=1, timestamp=1, ssrc=1, extensions={})
        return
    # Whatever we accept, aiortc accepts and reads the same way.
    if not _has_one_byte_id15(data, view):
        oracle = RtpPacket.parse(data)
        assert (oracle.payload_type, oracle.sequence_number, oracle.timestamp, oracle.ssrc) == (
            view.payload_type,
            view.sequence,
            view.timestamp,
            view.ssrc,
        )
        assert oracle.marker == view.marker
        assert oracle.payload == data[view.payload_offset : view.payload_end]
        if view.ext_profile in (rtp.ONE_BYTE_PROFILE, rtp.TWO_BYTE_PROFILE):
            ext_start = rtp.HEADER_SIZE + 4 * view.csrc_count + 4
            first: dict[int, bytes] = {}
            elements = data[ext_start : view.payload_offset]
            for k, v in unpack_header_extensions(view.ext_profile, elements):
                first.setdefault(k, v)
            assert view.extensions == first
    assert rtp.read_extension(data, x_id) == view.extensions.get(x_id)
    # The forwarding path's parse reads the same header and the one extension asked for.
    assert one is not None
    assert one.extensions == ({x_id: view.extensions[x_id]} if x_id in view.extensions else {})
    assert (one.sequence, one.timestamp, one.payload_offset, one.payload_end) == (
        view.sequence,
        view.timestamp,
        view.payload_offset,
        view.payload_end,
    )
    assert (one.marker, one.payload_type, one.ssrc, one.csrc_count) == (
        view.marker,
        view.payload_type,
        view.ssrc,
        view.csrc_count,
    )
    # rewrite(parse(x)) keeps the payload and the requested header.
    out = rtp.rewrite(
        data,
        payload_type=view.payload_type,
        sequence=view.sequence,
        timestamp=view.timestamp,
        ssrc=view.ssrc,
        extensions=view.extensions,
    )
    again = rtp.parse(out)
    assert again.extensions == view.extensions
    assert out[again.payload_offset :] == data[view.payload_offset : view.payload_end]
    assert again.padding == 0
    assert again.csrc_count == view.csrc_count
    # ... and is a fixed point once padding/unknown extension bytes are normalised away.
    assert (
        rtp.rewrite(
            out,
            payload_type=view.payload_type,
            sequence=view.sequence,
            timestamp=view.timestamp,
            ssrc=view.ssrc,
            extensions=view.extensions,
        )
        == out
    )


@given(data=st.binary(max_size=60).map(_v2), x_id=st.integers(-5, 300))
def test_read_extension_only_raises_rtp_error(data: bytes, x_id: int) -> None:
    with contextlib.suppress(RtpError):
        rtp.read_extension(data, x_id)


@st.composite
def _packets_with_raw_extension_blocks(draw: st.DrawFn) -> bytes:
    """Valid framing, arbitrary extension elements: exercises the element walkers."""
    profile = draw(st.sampled_from([0xBEDE, 0x1000, 0x100F, 0x1234]))
    words = draw(st.integers(0, 6))
    elements = draw(st.binary(min_size=4 * words, max_size=4 * words))
    csrc = draw(st.integers(0, 2))
    header = struct.pack("!BBHII", 0x90 | csrc, 96, 1, 2, 3) + b"\x00" * 4 * csrc
    return header + struct.pack("!HH", profile, words) + elements + draw(st.binary(max_size=8))


@settings(max_examples=300)
@given(data=_packets_with_raw_extension_blocks(), x_id=st.integers(1, 16))
def test_raw_extension_blocks(data: bytes, x_id: int) -> None:
    _check_any_bytes(data, x_id)


@given(
    marker=st.booleans(),
    payload=st.binary(max_size=64),
    ext=st.one_of(ONE_BYTE_EXT, ANY_EXT),
    new_ext=ONE_BYTE_EXT,
    csrcs=st.lists(U32, max_size=15),
    padding=st.integers(0, 255),
    out=st.tuples(PT, SEQ, U32, U32),
)
def test_a_consumers_copy_made_from_the_shared_part(
    marker: bool,
    payload: bytes,
    ext: dict[int, bytes],
    new_ext: dict[int, bytes],
    csrcs: list[int],
    padding: int,
    out: tuple[int, int, int, int],
) -> None:
    """What the SFU sends each subscriber (``outgoing`` once per packet, ``stamp`` per copy)
    is the publisher's packet with the subscriber's header and extensions, read back by
    aiortc: marker, CSRCs and payload kept, padding dropped."""
    data = rtp.serialize(
        payload_type=96,
        sequence=7,
        timestamp=9,
        ssrc=11,
        payload=payload,
        marker=marker,
        extensions=ext,
        csrcs=tuple(csrcs),
        padding=padding,
    )
    shared = rtp.outgoing(data, rtp.parse(data))
    pt, seq, ts, ssrc = out
    copy = rtp.stamp(shared, pt, seq, ts, ssrc, rtp.encode_extensions(new_ext), payload)
    assert copy == rtp.rewrite(
        data, payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, extensions=new_ext
    )
    oracle = RtpPacket.parse(copy)
    assert (oracle.payload_type, oracle.sequence_number, oracle.timestamp, oracle.ssrc) == out
    assert (oracle.marker, oracle.csrc, oracle.payload, oracle.padding_size) == (
        marker,
        csrcs,
        payload,
        0,
    )
    assert rtp.parse(copy).extensions == new_ext
