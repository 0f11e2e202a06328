"""media/rtcp.py: compound RTCP parsing and builders, checked against aiortc's RTCP code."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from media import rtcp
from media.rtcp import Bye, Fir, Nack, Pli, ReceiverReport, Remb, ReportBlock, RtcpError

U32 = st.integers(0, 0xFFFFFFFF)
U16 = st.integers(0, 0xFFFF)


def _info(ssrc: int, lost: int = -3) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=12,
        packets_lost=lost,
        highest_sequence=70000,
        jitter=5,
        lsr=6,
        dlsr=7,
    )


def test_aiortc_compound_is_read_item_by_item() -> None:
    sr = RtcpSrPacket(
        ssrc=1,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=0x0123456789ABCDEF, rtp_timestamp=99, packet_count=5, octet_count=600
        ),
        reports=[_info(2)],
    )
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=1, items=[(1, b"cname")])])
    rr = RtcpRrPacket(ssrc=3, reports=[_info(4, lost=100)])
    pli = RtcpPsfbPacket(fmt=1, ssrc=5, media_ssrc=6)
    nack = RtcpRtpfbPacket(fmt=1, ssrc=7, media_ssrc=8, lost=[100, 101, 105, 140])
    remb = RtcpPsfbPacket(fmt=15, ssrc=9, media_ssrc=0, fci=pack_remb_fci(1_500_000, [10, 11]))
    bye = RtcpByePacket(sources=[12, 13])
    data = b"".join(bytes(p) for p in (sr, sdes, rr, pli, nack, remb, bye))
    items = rtcp.parse(data)
    block = ReportBlock(2, 12, -3, 70000, 5, 6, 7)
    assert items == [
        rtcp.SenderReport(1, 0x0123456789ABCDEF, 99, 5, 600, (block,)),
        ReceiverReport(3, (ReportBlock(4, 12, 100, 70000, 5, 6, 7),)),
        Pli(5, 6),
        Nack(7, 8, [100, 101, 105, 140]),
        Remb(unpack_remb_fci(remb.fci)[0], [10, 11], 9),
        Bye([12, 13]),
    ]


def test_builders_are_read_by_aiortc() -> None:
    (p,) = RtcpPacket.parse(rtcp.pli(1, 2))
    assert isinstance(p, RtcpPsfbPacket)
    assert (p.fmt, p.ssrc, p.media_ssrc, p.fci) == (1, 1, 2, b"")
    (f,) = RtcpPacket.parse(rtcp.fir(3, 4, 300))
    assert isinstance(f, RtcpPsfbPacket)
    assert (f.fmt, f.ssrc, f.media_ssrc) == (4, 3, 0)
    assert f.fci == struct.pack("!IB3x", 4, 300 & 0xFF)
    (n,) = RtcpPacket.parse(rtcp.nack(5, 6, [10, 12, 40, 11]))
    assert isinstance(n, RtcpRtpfbPacket)
    assert sorted(n.lost) == [10, 11, 12, 40]
    (s,) = RtcpPacket.parse(rtcp.sender_report(7, 1 << 63, 8, 9, 10))
    assert isinstance(s, RtcpSrPacket)
    assert (s.ssrc, s.sender_info.ntp_timestamp, s.sender_info.rtp_timestamp) == (7, 1 << 63, 8)
    assert (s.sender_info.packet_count, s.sender_info.octet_count, s.reports) == (9, 10, [])
    (r,) = RtcpPacket.parse(rtcp.remb(11, 2_000_000, [12]))
    assert isinstance(r, RtcpPsfbPacket)
    assert unpack_remb_fci(r.fci) == (2_000_000, [12])
    (b,) = RtcpPacket.parse(rtcp.bye([1, 2]))
    assert isinstance(b, RtcpByePacket)
    assert b.sources == [1, 2]
    (rr,) = RtcpPacket.parse(rtcp.receiver_report(3, [ReportBlock(4, 5, -6, 7, 8, 9, 10)]))
    assert isinstance(rr, RtcpRrPacket)
    assert rr.reports[0].packets_lost == -6


def test_fir_round_trip() -> None:
    assert rtcp.parse(rtcp.fir(1, 2, 257)) == [Fir(1, [(2, 1)])]


def test_nack_across_the_16_bit_wrap_packs_in_one_pair() -> None:
    data = rtcp.nack(1, 2, [65534, 65535, 0, 3])
    assert len(data) == 16  # header + two SSRCs + one PID/BLP
    assert rtcp.parse(data) == [Nack(1, 2, [65534, 65535, 0, 3])]
    with pytest.raises(RtcpError):
        rtcp.nack(1, 2, [])


def test_remb_rounds_large_bitrates_down() -> None:
    (item,) = rtcp.parse(rtcp.remb(1, 123_456_789, []))
    assert isinstance(item, Remb)
    assert 123_456_789 - item.bitrate < 123_456_789 >> 17
    with pytest.raises(RtcpError):
        rtcp.remb(1, -1, [])


def test_others_are_skipped() -> None:
    app = struct.pack("!BBH", 0x80, 204, 2) + b"NAME" + b"data"
    tcc = struct.pack("!BBHII", 0x80 | 15, 205, 3, 1, 2) + b"\x00" * 4
    sli = struct.pack("!BBHII", 0x80 | 2, 206, 2, 1, 2)
    afb = struct.pack("!BBHII", 0x80 | 15, 206, 3, 1, 2) + b"ABCD"
    assert rtcp.parse(app + tcc + sli + afb + rtcp.pli(1, 2)) == [Pli(1, 2)]


def test_sr_with_profile_extension_and_padding_in_last_packet() -> None:
    sr = rtcp.sender_report(1, 2, 3, 4, 5)
    extended = struct.pack("!BBH", 0x80, 200, 7) + sr[4:] + b"ext!"
    padded = struct.pack("!BBHII", 0xA0 | 1, 206, 3, 7, 8) + b"\x00\x00\x00\x04"
    items = rtcp.parse(extended + padded)
    assert items == [rtcp.SenderReport(1, 2, 3, 4, 5), Pli(7, 8)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x80\xc8\x00", "truncated"),
        (b"\x40\xc8\x00\x00", "version"),
        (b"\x80\xc8\x00\x01", "truncated"),
        (b"\x81\xc8\x00\x06" + b"\x00" * 24, "SR with 1 reports"),
        (b"\x81\xc9\x00\x01" + b"\x00" * 4, "RR with 1 reports"),
        (b"\x82\xcb\x00\x01" + b"\x00" * 4, "BYE with 2"),
        (b"\x81\xcd\x00\x01" + b"\x00" * 4, "feedback"),
        (b"\x81\xcd\x00\x02" + b"\x00" * 8 + b"", "NACK"),
        (b"\xa1\xcd\x00\x03" + b"\x00" * 8 + b"\x00\x00\x00\x02", "NACK"),
        (b"\x84\xce\x00\x02" + b"\x00" * 8, "FIR"),
        (b"\x84\xce\x00\x03" + b"\x00" * 12, "FIR"),
        (b"\x8f\xce\x00\x04" + b"\x00" * 8 + b"REMB\x02\x00\x00\x00", "REMB"),
        (b"\xa1\xce\x00\x02" + b"\x00" * 8, "padding length 0"),
        (b"\xa1\xce\x00\x02" + b"\x00" * 7 + b"\x09", "padding length 9"),
        (b"\xa1\xce\x00\x02" + b"\x00" * 7 + b"\x04" + rtcp.pli(1, 2), "last packet"),
    ],
)
def test_malformed_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(RtcpError, match=message):
        rtcp.parse(data)


@given(sender=U32, media=U32, lost=st.lists(U16, min_size=1, max_size=60))
def test_nack_round_trip(sender: int, media: int, lost: list[int]) -> None:
    (item,) = rtcp.parse(rtcp.nack(sender, media, lost))
    assert isinstance(item, Nack)
    assert (item.sender_ssrc, item.media_ssrc) == (sender, media)
    assert sorted(set(item.lost)) == sorted(set(lost))
    assert len(item.lost) == len(set(lost))
    # aiortc reads the same numbers (without masking to 16 bits past the wrap).
    (oracle,) = RtcpPacket.parse(rtcp.nack(sender, media, lost))
    assert isinstance(oracle, RtcpRtpfbPacket)
    assert sorted(x & 0xFFFF for x in oracle.lost) == sorted(set(lost))


@given(
    ssrc=U32,
    ntp=st.integers(0, (1 << 64) - 1),
    ts=U32,
    packets=U32,
    octets=U32,
)
def test_sender_report_round_trip(ssrc: int, ntp: int, ts: int, packets: int, octets: int) -> None:
    assert rtcp.parse(rtcp.sender_report(ssrc, ntp, ts, packets, octets)) == [
        rtcp.SenderReport(ssrc, ntp, ts, packets, octets)
    ]


@given(
    bitrate=st.integers(0, (1 << 18) - 1) | st.integers(0, 1 << 40), ssrcs=st.lists(U32, max_size=5)
)
def test_remb_matches_aiortc(bitrate: int, ssrcs: list[int]) -> None:
    data = rtcp.remb(1, bitrate, ssrcs)
    (item,) = rtcp.parse(data)
    assert isinstance(item, Remb)
    (oracle,) = RtcpPacket.parse(data)
    assert isinstance(oracle, RtcpPsfbPacket)
    assert unpack_remb_fci(oracle.fci) == (item.bitrate, ssrcs)
    assert item.bitrate <= bitrate
    if bitrate < 1 << 18:
        assert item.bitrate == bitrate


def _v2(data: bytes) -> bytes:
    return bytes((0x80 | (data[0] & 0x3F),)) + data[1:] if data else data


@st.composite
def _framed(draw: st.DrawFn) -> bytes:
    """Compound packets with valid headers and lengths but arbitrary bodies."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        words = draw(st.integers(0, 12))
        first = 0x80 | draw(st.integers(0, 31))
        ptype = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206, 207, 99]))
        parts.append(
            struct.pack("!BBH", first, ptype, words)
            + draw(st.binary(min_size=4 * words, max_size=4 * words))
        )
    return b"".join(parts)


@settings(max_examples=400)
@given(data=st.binary(max_size=200).map(_v2) | _framed())
def test_arbitrary_bytes_only_raise_rtcp_error(data: bytes) -> None:
    try:
        items = rtcp.parse(data)
    except RtcpError:
        return
    # What we accept, re-built with our builders, reads back the same.
    for item in items:
        if isinstance(item, Pli):
            assert rtcp.parse(rtcp.pli(item.sender_ssrc, item.media_ssrc)) == [item]
        elif isinstance(item, Nack):
            again = rtcp.parse(rtcp.nack(item.sender_ssrc, item.media_ssrc, item.lost))
            assert isinstance(again[0], Nack)
            assert set(again[0].lost) == set(item.lost)
        elif isinstance(item, Bye) and len(item.ssrcs) < 32:
            assert rtcp.parse(rtcp.bye(item.ssrcs)) == [item]
