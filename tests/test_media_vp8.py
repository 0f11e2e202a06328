"""media/vp8.py: RFC 7741 descriptor parsing and picture id / TL0PICIDX rewriting.

Oracles: aiortc's VpxPayloadDescriptor parser, and aiortc's libvpx encoder and decoder (a real
VP8 stream, rewritten across a source switch, still decodes).
"""

from __future__ import annotations

import fractions
import itertools
import struct
from collections.abc import Iterator

import av
import pytest
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, VpxPayloadDescriptor, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from media.vp8 import Vp8Rewriter, is_keyframe, parse_descriptor


def _descriptor(
    *,
    start: bool = True,
    pid: int | None = None,
    bits: int = 15,
    tl0: int | None = None,
    tid: int | None = None,
    keyidx: int | None = None,
    partition: int = 0,
) -> bytes:
    first = (0x10 if start else 0) | partition
    ext = (
        (0x80 if pid is not None else 0)
        | (0x40 if tl0 is not None else 0)
        | (0x20 if tid is not None else 0)
        | (0x10 if keyidx is not None else 0)
    )
    if not ext:
        return bytes((first,))
    out = bytes((0x80 | first, ext))
    if pid is not None:
        out += struct.pack("!H", 0x8000 | pid) if bits == 15 else bytes((pid & 0x7F,))
    if tl0 is not None:
        out += bytes((tl0,))
    if tid is not None or keyidx is not None:
        out += bytes((((tid or 0) << 6) | 0x20 | (keyidx or 0),))
    return out


def _frames(count: int, keyframes: set[int]) -> Iterator[list[bytes]]:
    enc = Vp8Encoder()
    for i in range(count):
        frame = av.VideoFrame(width=160, height=120, format="yuv420p")
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = enc.encode(frame, force_keyframe=i in keyframes)
        yield payloads


def test_descriptor_fields() -> None:
    d = parse_descriptor(_descriptor(pid=300, tl0=7, tid=2, keyidx=5, partition=3) + b"xyz")
    assert d is not None
    assert (d.start, d.partition_id, d.picture_id, d.picture_id_bits) == (True, 3, 300, 15)
    assert (d.tl0picidx, d.tid, d.layer_sync, d.keyidx, d.header_offset) == (7, 2, True, 5, 6)
    short = parse_descriptor(_descriptor(pid=100, bits=7, start=False) + b"z")
    assert short is not None
    assert (short.start, short.picture_id, short.picture_id_bits, short.header_offset) == (
        False,
        100,
        7,
        3,
    )
    bare = parse_descriptor(b"\x10abc")
    assert bare is not None
    assert (bare.picture_id, bare.tl0picidx, bare.header_offset) == (None, None, 1)


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x80\x40"])
def test_truncated_descriptor_is_none(data: bytes) -> None:
    assert parse_descriptor(data) is None
    assert not is_keyframe(data)
    assert Vp8Rewriter().rewrite(data) == data


@settings(max_examples=400)
@given(data=st.binary(max_size=12))
def test_descriptor_matches_aiortc(data: bytes) -> None:
    ours = parse_descriptor(data)
    try:
        theirs, rest = VpxPayloadDescriptor.parse(data)
    except ValueError:
        assert ours is None
        return
    assert ours is not None
    assert ours.start == bool(theirs.partition_start)
    assert ours.partition_id == theirs.partition_id & 0x07  # RFC 7741: PID is 3 bits
    assert ours.picture_id == theirs.picture_id
    assert ours.tl0picidx == theirs.tl0picidx
    assert (ours.tid, ours.layer_sync) == (
        (theirs.tid[0], bool(theirs.tid[1])) if theirs.tid else (None, False)
    )
    assert ours.keyidx == theirs.keyidx
    assert data[ours.header_offset :] == rest
    # The rewriter never raises and keeps the VP8 data after the descriptor.
    out = Vp8Rewriter().rewrite(data)
    again = parse_descriptor(out)
    assert again is not None
    assert out[again.header_offset :] == rest
    assert again.picture_id_bits in (0, 15)


def test_keyframes_of_a_real_encoder() -> None:
    flags = [[is_keyframe(p) for p in payloads] for payloads in _frames(4, {0, 2})]
    assert flags[0][0] and flags[2][0]
    assert not any(flags[1]) and not any(flags[3])
    assert not any(f for frame in flags for f in frame[1:])


def test_seven_bit_ids_are_widened_and_continue_across_the_7_bit_wrap() -> None:
    rw = Vp8Rewriter()
    out = []
    for pid in [125, 126, 127, 0, 1]:
        d = parse_descriptor(rw.rewrite(_descriptor(pid=pid, bits=7) + b"v"))
        assert d is not None
        assert d.picture_id_bits == 15
        out.append(d.picture_id)
    assert out == [125, 126, 127, 128, 129]


def test_switch_continues_picture_id_and_tl0picidx() -> None:
    rw = Vp8Rewriter()

    def send(pid: int, tl0: int, bits: int = 15) -> tuple[int | None, int | None]:
        d = parse_descriptor(rw.rewrite(_descriptor(pid=pid, tl0=tl0, tid=0, bits=bits) + b"x"))
        assert d is not None
        return d.picture_id, d.tl0picidx

    assert send(32766, 254) == (32766, 254)
    assert send(32767, 255) == (32767, 255)
    assert send(0, 0) == (0, 0)  # 15-bit and 8-bit wrap
    rw.switch_source()
    assert send(5000, 17) == (1, 1)
    assert send(5000, 17) == (1, 1)  # second packet of the same picture
    assert send(5001, 18) == (2, 2)
    rw.switch_source()
    assert send(90, 3, bits=7) == (3, 3)
    assert send(91, 3, bits=7) == (4, 3)
    # A retransmitted packet of this source maps exactly as the first time.
    assert send(90, 3, bits=7) == (3, 3)
    assert rw.picture_id_offset == (3 - 90) & 0x7FFF


def test_payload_without_picture_id_is_left_alone() -> None:
    rw = Vp8Rewriter()
    data = _descriptor(keyidx=3) + b"payload"
    assert rw.rewrite(data) == data
    assert rw.rewrite(b"\x10payload") == b"\x10payload"


PICTURES = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 3)),  # (picture id step, packets per picture)
    min_size=1,
    max_size=15,
)


@settings(max_examples=150)
@given(
    sources=st.lists(
        st.tuples(st.integers(0, 0x7FFF), st.sampled_from([7, 15]), st.integers(0, 255), PICTURES),
        min_size=1,
        max_size=5,
    )
)
def test_picture_ids_are_continuous_across_any_switches(
    sources: list[tuple[int, int, int, list[tuple[int, int]]]],
) -> None:
    rw = Vp8Rewriter()
    prev: tuple[int, int] | None = None  # (picture id, tl0picidx) last sent
    for index, (start, bits, tl0_start, pictures) in enumerate(sources):
        if index:
            rw.switch_source()
        pid, tl0 = start, tl0_start
        for n, (step, packets) in enumerate(pictures):
            if n:
                pid += step
                tl0 += 1
            for k in range(packets):
                data = _descriptor(
                    start=k == 0, pid=pid & ((1 << bits) - 1), bits=bits, tl0=tl0 & 0xFF, tid=0
                )
                out = rw.rewrite(data + b"body")
                d = parse_descriptor(out)
                assert d is not None
                assert d.picture_id is not None and d.tl0picidx is not None
                assert d.picture_id_bits == 15
                assert out[d.header_offset :] == b"body"
                here = (d.picture_id, d.tl0picidx)
                if prev is not None:
                    pid_step = (here[0] - prev[0]) & 0x7FFF
                    tl0_step = (here[1] - prev[1]) & 0xFF
                    if k:
                        assert (pid_step, tl0_step) == (0, 0)
                    elif n:
                        assert (pid_step, tl0_step) == (step, 1)
                    else:  # first picture after a switch follows the last one sent
                        assert (pid_step, tl0_step) == (1, 1)
                prev = here


def test_rewritten_real_stream_still_decodes_across_a_switch() -> None:
    """Two encoders (two publishers) feed one consumer; aiortc's decoder decodes it all."""
    rw = Vp8Rewriter()
    decoder = Vp8Decoder()
    decoded = 0
    seen_ids: list[int] = []
    for source in range(2):
        if source:
            rw.switch_source()
        for i, payloads in enumerate(_frames(3, {0})):
            out = [rw.rewrite(p) for p in payloads]
            d = parse_descriptor(out[0])
            assert d is not None and d.picture_id is not None
            seen_ids.append(d.picture_id)
            frame = b"".join(vp8_depayload(p) for p in out)
            decoded += len(decoder.decode(JitterFrame(frame, timestamp=(source * 3 + i) * 3000)))
    assert decoded == 6
    assert [(b - a) & 0x7FFF for a, b in itertools.pairwise(seen_ids)] == [1] * 5


def test_truncated_descriptor_does_not_disturb_the_mapping() -> None:
    rw = Vp8Rewriter()
    assert rw.rewrite(_descriptor(pid=10) + b"a") != b""
    rw.switch_source()
    broken = _descriptor(pid=500, tl0=1, tid=0)[:-1]  # T/K octet missing
    assert rw.rewrite(broken) == broken
    d = parse_descriptor(rw.rewrite(_descriptor(pid=900) + b"b"))
    assert d is not None
    assert d.picture_id == 11  # still "first picture of the new source"
