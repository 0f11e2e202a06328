"""RTCP compound packets (RFC 3550 §6, RFC 4585, RFC 5104, REMB draft), sans-IO.

Deviations from the media contract: ``Remb`` has a third field ``sender_ssrc``;
``SenderReport``/``ReceiverReport`` carry their report blocks (``reports``); ``Bye`` keeps
only the SSRCs (no reason); an empty NACK or FIR FCI is refused (RFC 4585 §6.2.1).

``parse`` turns one (compound) RTCP packet into typed items, keeping only what the SFU acts
on: sender/receiver reports, PLI, FIR, generic NACK, REMB and BYE. Anything else (SDES, APP,
XR, transport-cc, unknown feedback formats) is skipped after its length is checked. Any
malformation raises ``RtcpError`` (a ``ValueError``): version != 2, a length running past the
end, a body too short for its count, a bad padding count.

Leniency where the RFCs ask for it: report packets may carry profile-specific extensions
after their report blocks (RFC 3550 §6.4.1), and a compound need not start with SR/RR
(RFC 5506 reduced-size RTCP, which browsers use for feedback).

The builders return ready-to-protect bytes. Helpers beyond the media contract:
``ReportBlock``, ``remb``, ``bye``, ``receiver_report``; ``Remb`` also carries the sender SSRC
(after the contract's ``bitrate, ssrcs``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Bye",
    "Fir",
    "Nack",
    "Pli",
    "ReceiverReport",
    "Remb",
    "ReportBlock",
    "RtcpError",
    "RtcpItem",
    "SenderReport",
    "bye",
    "fir",
    "nack",
    "parse",
    "pli",
    "receiver_report",
    "remb",
    "sender_report",
]

# RFC 3550 §12.1 / RFC 4585 §6.1 packet types.
PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204
PT_RTPFB = 205
PT_PSFB = 206

FMT_NACK = 1  # RFC 4585 §6.2.1 generic NACK
FMT_PLI = 1  # RFC 4585 §6.3.1
FMT_FIR = 4  # RFC 5104 §4.3.1
FMT_AFB = 15  # RFC 4585 §6.4 application layer feedback (REMB lives here)

_HEADER = struct.Struct("!BBH")  # V P count/FMT | PT | length in 32-bit words minus one
_U32 = struct.Struct("!I")
_TWO_SSRC = struct.Struct("!II")
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, NTP (64), RTP ts, packet count, octet count
_REPORT_BLOCK = struct.Struct("!IB3sIIII")
_NACK_FCI = struct.Struct("!HH")
_FIR_FCI = struct.Struct("!IB3x")
_REMB_HEAD = struct.Struct("!4sBBH")  # "REMB", num SSRC, exp(6)|mantissa(18)


class RtcpError(ValueError):
    """The bytes are not a well-formed RTCP packet."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block."""

    ssrc: int
    fraction_lost: int
    packets_lost: int  # 24-bit signed cumulative count
    highest_seq: int  # extended highest sequence number received
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp (RFC 3550 §4)
    rtp_ts: int
    packets: int
    octets: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class Fir:
    sender_ssrc: int
    entries: list[tuple[int, int]]  # (media SSRC, command sequence number)


@dataclass(frozen=True, slots=True)
class Nack:
    sender_ssrc: int
    media_ssrc: int
    lost: list[int]  # sequence numbers, PID/BLP expanded, in packet order


@dataclass(frozen=True, slots=True)
class Remb:
    bitrate: int  # bits per second
    ssrcs: list[int]
    sender_ssrc: int = 0


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: list[int]


RtcpItem = SenderReport | ReceiverReport | Pli | Fir | Nack | Remb | Bye


def _report_blocks(data: bytes, pos: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for _ in range(count):
        ssrc, fraction, lost_raw, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = int.from_bytes(lost_raw, "big", signed=True)
        blocks.append(ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr))
        pos += 24
    return tuple(blocks)


def parse(data: bytes) -> list[RtcpItem]:
    """All SFU-relevant items of a compound RTCP packet, in order."""
    items: list[RtcpItem] = []
    size = len(data)
    if size == 0:
        raise RtcpError("RTCP packet is empty")
    pos = 0
    while pos < size:
        if pos + 4 > size:
            raise RtcpError(f"RTCP header at byte {pos} is truncated")
        first, ptype, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version is {first >> 6}, expected 2")
        body = pos + 4
        end = body + 4 * words
        if end > size:
            raise RtcpError(f"RTCP packet type {ptype} is truncated")
        count = first & 0x1F
        stop = end
        if first & 0x20:
            # RFC 3550 §6.4.1: padding only in the last packet of a compound; the last
            # octet counts the padding octets, itself included.
            if end != size:
                raise RtcpError("RTCP padding is only allowed in the last packet")
            pad = data[end - 1] if end > body else 0
            if pad == 0 or pad > end - body:
                raise RtcpError(f"RTCP padding length {pad} is invalid")
            stop = end - pad
        length = stop - body
        if ptype == PT_SR:
            if length < 24 + 24 * count:
                raise RtcpError(f"RTCP SR with {count} reports is too short")
            ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, body)
            reports = _report_blocks(data, body + 24, count)
            items.append(SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports))
        elif ptype == PT_RR:
            if length < 4 + 24 * count:
                raise RtcpError(f"RTCP RR with {count} reports is too short")
            (ssrc,) = _U32.unpack_from(data, body)
            items.append(ReceiverReport(ssrc, _report_blocks(data, body + 4, count)))
        elif ptype == PT_BYE:
            if length < 4 * count:
                raise RtcpError(f"RTCP BYE with {count} sources is too short")
            items.append(Bye([_U32.unpack_from(data, body + 4 * i)[0] for i in range(count)]))
        elif ptype in (PT_RTPFB, PT_PSFB):
            # RFC 4585 §6.1: sender SSRC, media SSRC, then the FCI.
            if length < 8:
                raise RtcpError(f"RTCP feedback (type {ptype}) is too short")
            sender, media = _TWO_SSRC.unpack_from(data, body)
            item = _feedback(data, ptype, count, sender, media, body + 8, stop)
            if item is not None:
                items.append(item)
        pos = end
    return items


def _feedback(
    data: bytes, ptype: int, fmt: int, sender: int, media: int, fci: int, stop: int
) -> RtcpItem | None:
    fci_len = stop - fci
    if ptype == PT_RTPFB:
        if fmt != FMT_NACK:
            return None  # e.g. transport-cc (fmt 15): not negotiated by aiortc
        if fci_len % 4 or not fci_len:
            # §6.2.1: at least one PID/BLP pair.
            raise RtcpError("RTCP NACK FCI is not a whole, non-zero number of PID/BLP pairs")
        lost: list[int] = []
        for at in range(fci, stop, 4):
            # RFC 4585 §6.2.1: PID is lost, and bit i of BLP means PID + i + 1 is lost.
            pid, blp = _NACK_FCI.unpack_from(data, at)
            lost.append(pid)
            while blp:
                low = blp & -blp
                lost.append((pid + low.bit_length()) & 0xFFFF)
                blp ^= low
        return Nack(sender, media, lost)
    if fmt == FMT_PLI:
        return Pli(sender, media)
    if fmt == FMT_FIR:
        # RFC 5104 §4.3.1.2: FCI entries of SSRC + command seq nr + 24 reserved bits.
        if fci_len % 8 or not fci_len:
            raise RtcpError("RTCP FIR FCI is not a whole, non-zero number of entries")
        entries: list[tuple[int, int]] = []
        for at in range(fci, stop, 8):
            ssrc, seqnr = _FIR_FCI.unpack_from(data, at)
            entries.append((ssrc, seqnr))
        return Fir(sender, entries)
    if fmt == FMT_AFB and fci_len >= 8 and data[fci : fci + 4] == b"REMB":
        # draft-alvestrand-rmcat-remb §2.2: num SSRC, BR Exp (6 bits), BR Mantissa (18 bits).
        _, num, b1, b23 = _REMB_HEAD.unpack_from(data, fci)
        if fci_len < 8 + 4 * num:
            raise RtcpError(f"RTCP REMB with {num} SSRCs is too short")
        mantissa = ((b1 & 0x03) << 16) | b23
        bitrate = mantissa << (b1 >> 2)
        ssrcs = [_U32.unpack_from(data, fci + 8 + 4 * i)[0] for i in range(num)]
        return Remb(bitrate, ssrcs, sender)
    return None


# -- builders ---------------------------------------------------------------------------------


def _packet(ptype: int, count: int, body: bytes) -> bytes:
    # Every body built here is a multiple of 4 bytes (RFC 3550 §6.4.1 length rule).
    return _HEADER.pack(0x80 | count, ptype, len(body) // 4) + body


def pli(sender: int, media: int) -> bytes:
    """RFC 4585 §6.3.1 Picture Loss Indication."""
    return _packet(PT_PSFB, FMT_PLI, _TWO_SSRC.pack(sender, media))


def fir(sender: int, media: int, seqnr: int) -> bytes:
    """RFC 5104 §4.3.1 Full Intra Request for ``media``; ``seqnr`` is taken modulo 256 and
    must grow by one per new request (a repeat with the same number is a retransmission)."""
    # §4.3.1.2: the common "media source" SSRC is unused and SHALL be 0; the target is in FCI.
    return _packet(PT_PSFB, FMT_FIR, _TWO_SSRC.pack(sender, 0) + _FIR_FCI.pack(media, seqnr & 0xFF))


def nack(sender: int, media: int, lost: Iterable[int]) -> bytes:
    """RFC 4585 §6.2.1 generic NACK, packing ``lost`` sequence numbers into PID/BLP pairs.

    Numbers are ordered by RFC 1982 serial arithmetic from the first one, so a loss run
    across the 16-bit wrap still packs tightly. An empty ``lost`` is refused.
    """
    seqs = [s & 0xFFFF for s in lost]
    if not seqs:
        raise RtcpError("a NACK needs at least one lost sequence number")
    anchor = seqs[0]
    ordered = sorted(set(seqs), key=lambda s: (s - anchor) & 0xFFFF)
    fci: list[bytes] = []
    pid = ordered[0]
    blp = 0
    for seq in ordered[1:]:
        d = (seq - pid - 1) & 0xFFFF
        if d < 16:
            blp |= 1 << d
        else:
            fci.append(_NACK_FCI.pack(pid, blp))
            pid, blp = seq, 0
    fci.append(_NACK_FCI.pack(pid, blp))
    return _packet(PT_RTPFB, FMT_NACK, _TWO_SSRC.pack(sender, media) + b"".join(fci))


def sender_report(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    """RFC 3550 §6.4.1 SR without report blocks (the SFU reports reception separately)."""
    return _packet(
        PT_SR,
        0,
        _SENDER_INFO.pack(
            ssrc,
            ntp & 0xFFFFFFFFFFFFFFFF,
            rtp_ts & 0xFFFFFFFF,
            packets & 0xFFFFFFFF,
            octets & 0xFFFFFFFF,
        ),
    )


def receiver_report(ssrc: int, reports: Iterable[ReportBlock] = ()) -> bytes:
    """RFC 3550 §6.4.2 RR (at most 31 report blocks)."""
    blocks = list(reports)
    if len(blocks) > 31:
        raise RtcpError("an RR carries at most 31 report blocks")
    body = [_U32.pack(ssrc)]
    for b in blocks:
        lost = max(-(1 << 23), min(b.packets_lost, (1 << 23) - 1))
        body.append(
            _REPORT_BLOCK.pack(
                b.ssrc,
                b.fraction_lost,
                lost.to_bytes(3, "big", signed=True),
                b.highest_seq,
                b.jitter,
                b.lsr,
                b.dlsr,
            )
        )
    return _packet(PT_RR, len(blocks), b"".join(body))


def remb(sender: int, bitrate: int, ssrcs: Iterable[int]) -> bytes:
    """REMB (draft-alvestrand-rmcat-remb §2.2): the bitrate as an 18-bit mantissa and 6-bit
    exponent, rounded down."""
    targets = list(ssrcs)
    if bitrate < 0 or len(targets) > 255:
        raise RtcpError("REMB bitrate must be >= 0 and name at most 255 SSRCs")
    exp = max(0, bitrate.bit_length() - 18)
    if exp > 63:
        raise RtcpError("REMB bitrate is too large")
    mantissa = bitrate >> exp
    fci = _REMB_HEAD.pack(
        b"REMB", len(targets), (exp << 2) | (mantissa >> 16), mantissa & 0xFFFF
    ) + b"".join(_U32.pack(s) for s in targets)
    return _packet(PT_PSFB, FMT_AFB, _TWO_SSRC.pack(sender, 0) + fci)


def bye(ssrcs: Iterable[int]) -> bytes:
    """RFC 3550 §6.6 BYE without a reason."""
    sources = list(ssrcs)
    if len(sources) > 31:
        raise RtcpError("a BYE names at most 31 sources")
    return _packet(PT_BYE, len(sources), b"".join(_U32.pack(s) for s in sources))
