"""RTP packet header (RFC 3550 §5.1) with RFC 8285 header extensions, sans-IO.

Deviation from the media contract: ``rewrite`` validates the framing of ``data`` (version,
CSRC/extension/padding lengths) but does not decode the elements of the extension block it
replaces (``parse``/``read_extension`` do); ``extensions`` may also be a prebuilt block.

The SFU touches every forwarded packet, so this module works on the raw bytes: it reads
fields with precompiled ``struct.Struct`` objects at fixed offsets. What all copies of a
packet share is cut out once (``outgoing``); each subscriber's copy is then one header pack and
one ``bytes.join`` (``stamp``). Only ``parse`` builds the whole extension dict;
``read_extension`` walks the extension block and stops at the wanted id.

Everything malformed raises ``RtpError`` (a ``ValueError``): version != 2, a header, CSRC
list or extension block running past the end, bad padding, a truncated extension element.

Helpers beyond the media contract: ``RtpPacketView.payload_end`` (payload without padding is
``data[view.payload_offset:view.payload_end]``), ``payload_bounds(data)`` (header walk without
building the extension dict), ``encode_extensions(ext)`` (a prebuilt extension block that
``rewrite``/``serialize`` accept instead of a dict, so a consumer can cache its constant MID
block), and the optional ``marker``/``payload`` keywords of ``rewrite`` (the VP8 rewriter
changes the payload descriptor).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ONE_BYTE_PROFILE",
    "TWO_BYTE_PROFILE",
    "Outgoing",
    "RtpError",
    "RtpPacketView",
    "encode_extensions",
    "is_rtcp",
    "outgoing",
    "parse",
    "parse_one",
    "payload_bounds",
    "read_extension",
    "rewrite",
    "serialize",
    "stamp",
]

# RFC 3550 §5.1: V=2 P X CC | M PT | sequence | timestamp | SSRC.
_HEADER = struct.Struct("!BBHII")
_U32 = struct.Struct("!I")
_EXT_HEADER = struct.Struct("!HH")  # "defined by profile" + length in 32-bit words (§5.3.1)
HEADER_SIZE = 12
_ZEROS = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")

# RFC 8285 §4.2 one-byte form is announced by 0xBEDE; §4.3 two-byte form by 0x100 followed by
# 4 "appbits" (0x1000-0x100F): the low nibble carries application data and is ignored.
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
_TWO_BYTE_MASK = 0xFFF0


class RtpError(ValueError):
    """The bytes are not a well-formed RTP packet (or an extension cannot be encoded)."""


@dataclass(slots=True)  # not frozen: one is made per packet, and frozen init costs twice
class RtpPacketView:
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrc_count: int
    ext_profile: int  # 0 when the X bit is clear
    extensions: dict[int, bytes]
    payload_offset: int
    padding: int  # number of padding bytes at the end (RFC 3550 §5.1 "P"), 0 if none
    payload_end: int  # = len(data) - padding


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: on a muxed port, payload types 64-95 (marker included) are RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def payload_bounds(data: bytes) -> tuple[int, int, int, int]:
    """Walk the header: (ext_profile, ext_start, payload_offset, payload_end).

    ``ext_start``/``payload_offset`` delimit the extension *elements* (after the 4-byte
    extension header) when ``ext_profile`` != 0. Raises ``RtpError`` on any malformation.
    """
    size = len(data)
    if size < HEADER_SIZE:
        raise RtpError(f"RTP packet is {size} bytes, shorter than its 12-byte header")
    first = data[0]
    if first >> 6 != 2:
        raise RtpError(f"RTP version is {first >> 6}, expected 2")
    pos = HEADER_SIZE + 4 * (first & 0x0F)
    if pos > size:
        raise RtpError("RTP packet has a truncated CSRC list")
    profile = 0
    ext_start = pos
    if first & 0x10:
        if pos + 4 > size:
            raise RtpError("RTP packet has a truncated extension header")
        profile, words = _EXT_HEADER.unpack_from(data, pos)
        ext_start = pos + 4
        pos = ext_start + 4 * words
        if pos > size:
            raise RtpError("RTP packet has a truncated extension block")
    end = size
    if first & 0x20:
        # §5.1: the last octet counts the padding octets, itself included.
        pad = data[-1]
        if pad == 0 or pad > size - pos:
            raise RtpError(f"RTP padding length {pad} is invalid")
        end = size - pad
    return profile, ext_start, pos, end


def _walk_extensions(
    data: bytes, profile: int, pos: int, end: int, wanted: int
) -> bytes | dict[int, bytes] | None:
    """Decode extension elements in data[pos:end].

    ``wanted`` > 0: return that id's value (first occurrence) or None, building nothing else.
    ``wanted`` == -1: return the dict of all elements (a repeated id keeps its first value,
    as ``read_extension`` does).
    """
    found: dict[int, bytes] | None = {} if wanted == -1 else None
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            b = data[pos]
            if b == 0:  # RFC 8285 §4.2: padding byte between/after elements
                pos += 1
                continue
            x_id = b >> 4
            if x_id == 0:
                # §4.2: id 0 is reserved for padding, whose byte is all zero.
                raise RtpError("RTP one-byte extension uses the reserved id 0")
            if x_id == 15:
                # §4.2: id 15 is reserved; "processing of the entire extension MUST terminate".
                break
            length = (b & 0x0F) + 1
            pos += 1
            if pos + length > end:
                raise RtpError(f"RTP one-byte extension {x_id} is truncated")
            if x_id == wanted:
                return bytes(data[pos : pos + length])
            if found is not None and x_id not in found:
                found[x_id] = bytes(data[pos : pos + length])
            pos += length
    elif profile & _TWO_BYTE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            x_id = data[pos]
            if x_id == 0:  # §4.3: padding byte
                pos += 1
                continue
            if pos + 2 > end:
                raise RtpError(f"RTP two-byte extension {x_id} is truncated")
            length = data[pos + 1]
            pos += 2
            if pos + length > end:
                raise RtpError(f"RTP two-byte extension {x_id} is truncated")
            if x_id == wanted:
                return bytes(data[pos : pos + length])
            if found is not None and x_id not in found:
                found[x_id] = bytes(data[pos : pos + length])
            pos += length
    # Any other profile (RFC 3550 §5.3.1 non-8285 extension) carries no elements we know.
    return found


def parse(data: bytes) -> RtpPacketView:
    """Parse and validate a whole RTP packet (header fields + every extension element)."""
    profile, ext_start, offset, end = payload_bounds(data)
    extensions: dict[int, bytes] = {}
    if profile:
        walked = _walk_extensions(data, profile, ext_start, offset, -1)
        assert isinstance(walked, dict)
        extensions = walked
    return _view(data, profile, extensions, offset, end)


def parse_one(data: bytes, ext_id: int | None) -> RtpPacketView:
    """``parse`` for the forwarding path: the header is validated as there, but only the
    extension ``ext_id`` (None: none) is looked for, and only the elements before it are
    walked. The SFU writes its own extension block on every copy, so it needs nothing else
    of the publisher's (a browser's audio packet carries four or five)."""
    profile, ext_start, offset, end = payload_bounds(data)
    extensions: dict[int, bytes] = {}
    if profile and ext_id is not None:
        found = _walk_extensions(data, profile, ext_start, offset, ext_id)
        if isinstance(found, bytes):
            extensions[ext_id] = found
    return _view(data, profile, extensions, offset, end)


def _view(
    data: bytes, profile: int, extensions: dict[int, bytes], offset: int, end: int
) -> RtpPacketView:
    _, m_pt, sequence, timestamp, ssrc = _HEADER.unpack_from(data, 0)
    return RtpPacketView(
        m_pt & 0x80 != 0,
        m_pt & 0x7F,
        sequence,
        timestamp,
        ssrc,
        data[0] & 0x0F,
        profile,
        extensions,
        offset,
        len(data) - end,
        end,
    )


def read_extension(data: bytes, ext_id: int) -> bytes | None:
    """One extension's value, or None when absent: the per-packet fast path (no dict).

    Validates the header as ``parse`` does, and the elements it walks past.
    """
    if not 1 <= ext_id <= 255:
        raise RtpError(f"RTP extension id {ext_id} is out of range 1-255")
    profile, ext_start, offset, _ = payload_bounds(data)
    if not profile:
        return None
    found = _walk_extensions(data, profile, ext_start, offset, ext_id)
    return found if isinstance(found, bytes) else None


def encode_extensions(extensions: Mapping[int, bytes]) -> bytes:
    """The extension block (4-byte header + elements + zero padding), b"" when empty.

    RFC 8285 §4.2 one-byte form when every id is 1-14 and every value 1-16 bytes long,
    otherwise the §4.3 two-byte form (ids 1-255, values 0-255 bytes). Elements are written
    in ascending id order so the same dict always gives the same bytes.
    """
    if not extensions:
        return b""
    one_byte = True
    for x_id, value in extensions.items():
        if not 1 <= x_id <= 255:
            raise RtpError(f"RTP extension id {x_id} is out of range 1-255")
        if len(value) > 255:
            raise RtpError(f"RTP extension {x_id} value is {len(value)} bytes, over 255")
        if x_id > 14 or not 1 <= len(value) <= 16:
            one_byte = False
    buf = bytearray(4)  # the profile/length header is filled in last
    for x_id in sorted(extensions):
        value = extensions[x_id]
        if one_byte:
            buf.append((x_id << 4) | (len(value) - 1))
        else:
            buf.append(x_id)
            buf.append(len(value))
        buf += value
    # §4.1: the block is padded with zero bytes to a multiple of 32 bits.
    buf += _ZEROS[-len(buf) % 4]
    _EXT_HEADER.pack_into(
        buf, 0, ONE_BYTE_PROFILE if one_byte else TWO_BYTE_PROFILE, (len(buf) - 4) // 4
    )
    return bytes(buf)


def _ext_block(extensions: Mapping[int, bytes] | bytes) -> bytes:
    if isinstance(extensions, bytes | bytearray):
        return bytes(extensions)
    return encode_extensions(extensions)


def _check_fields(payload_type: int, sequence: int, timestamp: int, ssrc: int) -> None:
    if not 0 <= payload_type <= 127:
        raise RtpError(f"RTP payload type {payload_type} is out of range 0-127")
    if not 0 <= sequence <= 0xFFFF:
        raise RtpError(f"RTP sequence {sequence} is out of range")
    if not 0 <= timestamp <= 0xFFFFFFFF or not 0 <= ssrc <= 0xFFFFFFFF:
        raise RtpError("RTP timestamp/SSRC is out of the 32-bit range")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What every consumer's copy of one incoming packet shares, taken out of it once (not
    once per subscriber): the copies differ only in the 12-byte header, the extension block
    and, for video, the payload descriptor."""

    flags: int  # the first octet: version 2 and the CSRC count (no P, no X)
    marker: int  # 0x80 or 0
    csrcs: bytes
    payload: bytes  # without padding


def outgoing(data: bytes, view: RtpPacketView) -> Outgoing:
    """The shared part of ``data``, whose ``parse`` is ``view``."""
    count = view.csrc_count
    return Outgoing(
        flags=0x80 | count,
        marker=0x80 if view.marker else 0,
        csrcs=data[HEADER_SIZE : HEADER_SIZE + 4 * count] if count else b"",
        payload=data[view.payload_offset : view.payload_end],
    )


def stamp_into(
    buf: memoryview,
    out: Outgoing,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    block: bytes,
) -> int:
    """Writes one consumer's header, the CSRCs and its extension ``block``
    (``encode_extensions``) at the start of ``buf``; returns where the payload goes. The
    per-packet per-subscriber path writes straight into the sender's buffer, so nothing is
    checked here: the fields come masked from the mappers and the negotiation
    (``struct.error`` otherwise), and ``buf`` must have room (``ValueError`` otherwise)."""
    _HEADER.pack_into(
        buf,
        0,
        out.flags | (0x10 if block else 0),
        out.marker | payload_type,
        sequence,
        timestamp,
        ssrc,
    )
    at = HEADER_SIZE
    csrcs = out.csrcs
    if csrcs:
        end = at + len(csrcs)
        buf[at:end] = csrcs
        at = end
    if block:
        end = at + len(block)
        buf[at:end] = block
        at = end
    return at


def stamp(
    out: Outgoing,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    block: bytes,
    payload: bytes,
) -> bytes:
    """One consumer's copy as bytes: ``stamp_into``'s header around ``payload``."""
    head = bytearray(HEADER_SIZE + len(out.csrcs) + len(block))
    stamp_into(memoryview(head), out, payload_type, sequence, timestamp, ssrc, block)
    return b"".join((head, payload))


def rewrite(
    data: bytes,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    extensions: Mapping[int, bytes] | bytes,
    marker: bool | None = None,
    payload: bytes | None = None,
) -> bytes:
    """A copy of ``data`` for one consumer: new PT/seq/ts/SSRC and extension block.

    Kept from ``data``: the marker bit (unless ``marker`` is given), the CSRC list and the
    payload (unless ``payload`` is given). Padding is dropped (it only served the sender's
    SRTP/bitrate needs, RFC 3550 §5.1). ``extensions`` is a dict or the bytes of
    ``encode_extensions`` (cache it when it never changes). Malformed framing of ``data``
    (version, lengths, padding) raises ``RtpError``; the elements of the extension block it
    replaces are not decoded (the caller has read what it needs with ``read_extension``).
    """
    _check_fields(payload_type, sequence, timestamp, ssrc)
    first = data[0] if data else 0
    _, _, offset, end = payload_bounds(data)
    count = first & 0x0F
    m = data[1] & 0x80 if marker is None else (0x80 if marker else 0)
    shared = Outgoing(0x80 | count, m, data[HEADER_SIZE : HEADER_SIZE + 4 * count], b"")
    body = data[offset:end] if payload is None else payload
    return stamp(shared, payload_type, sequence, timestamp, ssrc, _ext_block(extensions), body)


def serialize(
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    extensions: Mapping[int, bytes] | bytes = b"",
    csrcs: tuple[int, ...] = (),
    padding: int = 0,
) -> bytes:
    """Build an RTP packet from fields (tests, probes, synthetic publishers)."""
    _check_fields(payload_type, sequence, timestamp, ssrc)
    if len(csrcs) > 15:
        raise RtpError("RTP packet carries at most 15 CSRCs")
    if not 0 <= padding <= 255:
        raise RtpError(f"RTP padding {padding} is out of range 0-255")
    block = _ext_block(extensions)
    header = _HEADER.pack(
        0x80 | (0x20 if padding else 0) | (0x10 if block else 0) | len(csrcs),
        (0x80 if marker else 0) | payload_type,
        sequence,
        timestamp,
        ssrc,
    )
    tail = b"\x00" * (padding - 1) + bytes((padding,)) if padding else b""
    return b"".join((header, *(_U32.pack(c) for c in csrcs), block, payload, tail))
