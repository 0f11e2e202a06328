"""VP8 RTP payload descriptor (RFC 7741 §4.2) reading and rewriting, sans-IO.

Deviations from the media contract: none in signatures; ``Vp8Rewriter.rewrite`` returns a
payload it cannot read unchanged instead of raising, and never inserts a missing picture id.

A consumer slot may be fed by different publishers over time; each numbers its pictures on
its own. A receiver's VP8 depacketizer keys frame assembly and loss detection on the picture
id, and on TL0PICIDX for temporal layers, so (Jitsi's "SSRC rewriting principles", mediasoup's
VP8 EncodingContext) the SFU rewrites both to one continuous series per consumer:

- each source gets a fixed offset when its first packet with a picture id arrives, chosen so
  that its first picture follows the last one sent (+1), and TL0PICIDX likewise;
- a 7-bit picture id is widened to 15 bits (the M bit set) by unwrapping it against the
  source's previous one, so the output is always the 15-bit form (RFC 7741 §4.2: "M: ... 15
  bits"), whatever mix of sources feeds the slot;
- a retransmitted (older) packet of the current source maps to the same output as the
  original, since the offset is fixed and unwrapping is relative to the newest id seen.

Payloads without a picture id (I=0) or without TL0PICIDX keep those fields absent: inserting
them would need frame-boundary tracking, and browsers always send picture ids for VP8.
KEYIDX is passed through (no browser sends it). A payload whose descriptor is malformed is
returned unchanged by ``Vp8Rewriter.rewrite`` (the receiver's depacketizer will drop it).

Helpers beyond the media contract: ``Vp8Descriptor.non_reference``/``layer_sync``/
``picture_id_bits``, ``Vp8Rewriter.picture_id_offset``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Vp8Descriptor", "Vp8Rewriter", "Vp8Split", "is_keyframe", "parse_descriptor", "split"]

_U16 = struct.Struct("!H")
MAX_HEAD = 5  # a rewritten descriptor before the tail: 2 octets, picture id (2), TL0PICIDX

# First octet: X R N S R PID(3). Extension octet: I L T K RSV(4).
_X = 0x80
_N = 0x20
_S = 0x10
_I = 0x80
_L = 0x40
_T = 0x20
_K = 0x10
_M = 0x80

# RFC 6386 §9.1: a key frame's uncompressed data chunk carries this start code at bytes 3-5.
_KEY_START_CODE = b"\x9d\x01\x2a"


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    start: bool  # S: first packet of a VP8 partition
    partition_id: int  # PID (3 bits)
    picture_id: int | None
    picture_id_bits: int  # 7 or 15 when present, 0 otherwise
    tl0picidx: int | None
    tid: int | None
    layer_sync: bool  # Y bit (False when T is absent)
    keyidx: int | None
    non_reference: bool  # N bit
    header_offset: int  # where the VP8 payload header starts (= descriptor size)


def parse_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """The payload descriptor, or None if ``payload`` is too short for what it announces."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]
    pos = 1
    picture_id: int | None = None
    bits = 0
    tl0: int | None = None
    tid: int | None = None
    sync = False
    keyidx: int | None = None
    if first & _X:
        if size < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & _I:
            if size < 3:
                return None
            if payload[2] & _M:
                if size < 4:
                    return None
                picture_id = _U16.unpack_from(payload, 2)[0] & 0x7FFF
                bits = 15
                pos = 4
            else:
                picture_id = payload[2]
                bits = 7
                pos = 3
        if ext & _L:
            if size <= pos:
                return None
            tl0 = payload[pos]
            pos += 1
        if ext & (_T | _K):
            if size <= pos:
                return None
            tk = payload[pos]
            if ext & _T:
                tid = tk >> 6
                sync = bool(tk & 0x20)
            if ext & _K:
                keyidx = tk & 0x1F
            pos += 1
    return Vp8Descriptor(
        start=bool(first & _S),
        partition_id=first & 0x07,
        picture_id=picture_id,
        picture_id_bits=bits,
        tl0picidx=tl0,
        tid=tid,
        layer_sync=sync,
        keyidx=keyidx,
        non_reference=bool(first & _N),
        header_offset=pos,
    )


def is_keyframe(payload: bytes) -> bool:
    """Is this the first packet of a key frame? (S=1, PID=0, and the VP8 payload header's
    inverse key frame flag P clear, RFC 7741 §4.3, with the key frame start code present)."""
    d = parse_descriptor(payload)
    if d is None or not d.start or d.partition_id != 0:
        return False
    at = d.header_offset
    if len(payload) < at + 10:  # 3-byte frame tag + 7 bytes of key frame header
        return False
    return not payload[at] & 0x01 and payload[at + 3 : at + 6] == _KEY_START_CODE


@dataclass(frozen=True, slots=True)
class Vp8Split:
    """A payload cut around the two fields a consumer rewrites."""

    head: bytes  # the first two octets (X... and I L T K)
    picture_id: int | None
    bits: int  # 7 or 15 (0 without a picture id)
    tl0: int | None
    tail: bytes  # the T/K octet (if any) and the VP8 data, forwarded unchanged


def split(payload: bytes) -> Vp8Split | None:
    """The payload cut for ``Vp8Rewriter.rewrite_split``; None when there is nothing to
    rewrite (no picture id and no TL0PICIDX) or the descriptor is malformed (the payload is
    then forwarded unchanged and the receiver's depacketizer drops it).

    Inline descriptor walk (no ``Vp8Descriptor``): this runs for every forwarded packet."""
    size = len(payload)
    if size < 2 or not payload[0] & _X:
        return None
    ext = payload[1]
    if not ext & (_I | _L):
        return None
    # Check the whole descriptor fits before anything is mapped.
    pos = 2
    if ext & _I:
        if size < 3:
            return None
        pos = 4 if payload[2] & _M else 3
    need = pos + (1 if ext & _L else 0) + (1 if ext & (_T | _K) else 0)
    if size < need:
        return None
    pid: int | None = None
    bits = 0
    if ext & _I:
        if pos == 4:
            pid, bits = _U16.unpack_from(payload, 2)[0] & 0x7FFF, 15
        else:
            pid, bits = payload[2], 7
    tl0: int | None = None
    if ext & _L:
        tl0 = payload[pos]
        pos += 1
    return Vp8Split(payload[:2], pid, bits, tl0, payload[pos:])


def _unwrap(value: int, last: int, bits: int) -> int:
    """The extended counter nearest to ``last`` whose low ``bits`` equal ``value``."""
    mod = 1 << bits
    delta = (value - last) & (mod - 1)
    if delta >= mod >> 1:
        delta -= mod
    return last + delta


class Vp8Rewriter:
    """Rewrites picture id (15-bit output) and TL0PICIDX to one series per consumer."""

    __slots__ = (
        "_pic_in_max",
        "_pic_off",
        "_pic_out_max",
        "_tl0_in_max",
        "_tl0_off",
        "_tl0_out_max",
    )

    def __init__(self) -> None:
        # Extended (unbounded) counters; "in" is per source, "out" spans sources.
        self._pic_in_max: int | None = None  # None: current source has given no picture id
        self._pic_off = 0
        self._pic_out_max: int | None = None
        self._tl0_in_max: int | None = None
        self._tl0_off = 0
        self._tl0_out_max: int | None = None

    @property
    def picture_id_offset(self) -> int:
        """outgoing picture id = (incoming, widened + offset) mod 2**15, current source."""
        return self._pic_off & 0x7FFF

    def switch_source(self) -> None:
        """The next payload comes from a new (or resumed) source: its first picture id and
        TL0PICIDX will follow the last ones sent."""
        self._pic_in_max = None
        self._tl0_in_max = None

    def rewrite(self, payload: bytes) -> bytes:
        """``payload`` with picture id (as 15 bits) and TL0PICIDX mapped; the rest unchanged."""
        parts = split(payload)
        return payload if parts is None else self.rewrite_split(parts)

    def rewrite_split(self, parts: Vp8Split) -> bytes:
        """``rewrite`` of a payload already cut by ``split``."""
        buf = bytearray(len(parts.tail) + MAX_HEAD)
        end = self.write_split(memoryview(buf), 0, parts)
        return bytes(buf[:end])

    def write_split(self, buf: memoryview, at: int, parts: Vp8Split) -> int:
        """Writes the rewritten payload of ``parts`` (cut once for all consumers by ``split``)
        into ``buf`` from ``at``, and returns where it ends: at most ``MAX_HEAD`` bytes more
        than the tail (the sender's buffer, no payload copy made per consumer)."""
        buf[at : at + 2] = parts.head
        at += 2
        if parts.picture_id is not None:
            _U16.pack_into(buf, at, 0x8000 | self._map_picture_id(parts.picture_id, parts.bits))
            at += 2
        if parts.tl0 is not None:
            buf[at] = self._map_tl0(parts.tl0)
            at += 1
        end = at + len(parts.tail)
        buf[at:end] = parts.tail
        return end

    def _map_picture_id(self, pid: int, bits: int) -> int:
        last = self._pic_in_max
        if last is None:
            # First picture of this source: continue the output series (or start it as is).
            ext = pid
            out_first = pid if self._pic_out_max is None else self._pic_out_max + 1
            self._pic_off = out_first - ext
            self._pic_in_max = ext
        else:
            ext = _unwrap(pid, last, bits)
            if ext > last:
                self._pic_in_max = ext
        out = ext + self._pic_off
        if self._pic_out_max is None or out > self._pic_out_max:
            self._pic_out_max = out
        return out & 0x7FFF

    def _map_tl0(self, tl0: int) -> int:
        last = self._tl0_in_max
        if last is None:
            ext = tl0
            out_first = tl0 if self._tl0_out_max is None else self._tl0_out_max + 1
            self._tl0_off = out_first - ext
            self._tl0_in_max = ext
        else:
            ext = _unwrap(tl0, last, 8)
            if ext > last:
                self._tl0_in_max = ext
        out = ext + self._tl0_off
        if self._tl0_out_max is None or out > self._tl0_out_max:
            self._tl0_out_max = out
        return out & 0xFF
