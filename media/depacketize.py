"""RTP payloads back into codec frames, for the recorder. Sans-IO: bytes in, frames out.

``Depacketizer`` takes one producer's RTP packets (as parsed by ``media.rtp``) in arrival
order and gives whole frames in sequence order:

- Packets wait in a small reorder buffer (``reorder_packets``, ``reorder_ms``) keyed by the
  extended sequence number (RFC 3550 §A.1: 16-bit numbers unwrapped against the highest
  seen). A duplicate, or a packet older than what was already released, is dropped.
- A missing packet that the buffer gives up on is *lost*: the frame it belonged to is
  dropped, and so is every frame after it until the next keyframe (a VP8 delta frame
  refers to the frames before it), and ``Released.need_keyframe`` asks the caller to get a
  keyframe from the publisher.
- VP8 (RFC 7741): a frame is the packets of one RTP timestamp from a packet with S=1 and
  partition index 0 (§4.2) up to the packet with the marker bit (§4.1), each one's payload
  descriptor (``media.vp8.parse_descriptor``) stripped. Nothing is released before the
  first keyframe (the P bit of the VP8 frame tag is 0, RFC 6386 §9.1).
- Opus (RFC 7587 §4.2): one packet, one frame; every frame is a "keyframe".
- Timestamps are unwrapped to 64 bits (``Frame.timestamp``), so a 32-bit wrap in the middle
  of a recording keeps time running forward.

Nothing here raises on hostile input: a malformed payload is counted and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from media import rtp, vp8

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
OPUS_CLOCK = 48_000
# RFC 6716 §3.1: the frame size of each TOC configuration, in 48 kHz samples.
_OPUS_FRAME = (
    [480, 960, 1920, 2880] * 3  # SILK NB / MB / WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # Hybrid SWB / FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT NB / WB / SWB / FB: 2.5, 5, 10, 20 ms
)


@dataclass(frozen=True, slots=True)
class Frame:
    timestamp: int  # the RTP timestamp, unwrapped (grows past 2**32)
    data: bytes  # the codec frame (a VP8 frame, an Opus packet)
    keyframe: bool
    arrival_ms: int  # when its first packet arrived


@dataclass(slots=True)
class Released:
    frames: list[Frame] = field(default_factory=list)
    need_keyframe: bool = False  # a loss (or a start without one): ask the publisher for one


@dataclass(frozen=True, slots=True)
class _Packet:
    timestamp: int  # 32-bit, as sent
    marker: bool
    payload: bytes  # b"" for padding-only packets and packets of another payload type
    arrival_ms: int


def unwrap(value: int, reference: int, modulus: int) -> int:
    """``value`` (mod ``modulus``) as the number nearest to ``reference`` (RFC 3550 §A.1)."""
    delta = (value - reference) % modulus
    if delta >= modulus // 2:
        delta -= modulus
    return reference + delta


def vp8_is_keyframe(frame: bytes) -> bool:
    """RFC 6386 §9.1: the frame tag's P bit is 0 and the start code 9d 01 2a follows."""
    return len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == b"\x9d\x01\x2a"


def vp8_size(keyframe: bytes) -> tuple[int, int] | None:
    """A keyframe's width and height (RFC 6386 §9.2; the scaling bits dropped)."""
    if not vp8_is_keyframe(keyframe):
        return None
    width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
    height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def opus_samples(packet: bytes) -> int:
    """RFC 6716 §3.1-3.2: the 48 kHz samples an Opus packet holds (0 when malformed)."""
    if not packet:
        return 0
    toc = packet[0]
    per_frame = _OPUS_FRAME[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            return 0
        frames = packet[1] & 0x3F
    total = frames * per_frame
    return total if 0 < total <= 5760 else 0  # at most 120 ms (§3.2.5)


class Depacketizer:
    """One producer's RTP stream to frames (see the module doc)."""

    def __init__(
        self,
        codec: str,
        *,
        payload_type: int,
        reorder_packets: int = 64,
        reorder_ms: int = 150,
        max_frame_bytes: int = 4 << 20,
    ):
        if codec not in ("vp8", "opus"):
            raise ValueError(f"no depacketizer for {codec}")
        self.codec = codec
        self.payload_type = payload_type
        self.reorder_packets = reorder_packets
        self.reorder_ms = reorder_ms
        self.max_frame_bytes = max_frame_bytes
        self._buffer: dict[int, _Packet] = {}
        self._next: int | None = None  # extended sequence number released next
        self._highest = 0
        self._last_ts: int | None = None  # unwrapped timestamp of the last frame released
        # The frame being assembled (VP8): its timestamp, parts, arrival, size.
        self._parts: list[bytes] = []
        self._part_ts: int | None = None
        self._part_arrival = 0
        self._part_bytes = 0
        self._broken = True  # until a keyframe: nothing is released
        # Counters, for the recorder's report.
        self.packets = 0
        self.lost = 0
        self.duplicates = 0
        self.malformed = 0
        self.frames = 0
        self.dropped_frames = 0

    def push(self, packet: rtp.RtpPacketView, data: bytes, arrival_ms: int) -> Released:
        """One parsed RTP packet (``data`` its bytes): the frames that are now complete."""
        out = Released()
        self.packets += 1
        if self._next is None:
            self._next = self._highest = packet.sequence
            out.need_keyframe = self.codec == "vp8"
        seq = unwrap(packet.sequence, self._highest, SEQ_MOD)
        if seq < self._next or seq in self._buffer:
            self.duplicates += 1
            return out
        self._highest = max(self._highest, seq)
        payload = b""
        if packet.payload_type == self.payload_type:
            payload = bytes(data[packet.payload_offset : packet.payload_end])
        self._buffer[seq] = _Packet(packet.timestamp, packet.marker, payload, arrival_ms)
        self._release(out, arrival_ms)
        return out

    def flush(self) -> Released:
        """The end of the stream: whatever is still buffered and complete."""
        out = Released()
        while self._buffer:
            self._skip_gap(out)
            self._drain(out)
        return out

    # -- the reorder buffer ---------------------------------------------------------------

    def _release(self, out: Released, now_ms: int) -> None:
        self._drain(out)
        while self._buffer and self._gave_up(now_ms):
            self._skip_gap(out)
            self._drain(out)

    def _gave_up(self, now_ms: int) -> bool:
        assert self._next is not None
        if self._highest - self._next >= self.reorder_packets:
            return True
        oldest = min(p.arrival_ms for p in self._buffer.values())
        return now_ms - oldest > self.reorder_ms

    def _skip_gap(self, out: Released) -> None:
        """The packets up to the oldest one buffered are lost."""
        assert self._next is not None
        first = min(self._buffer)
        if first > self._next:
            self.lost += first - self._next
            self._next = first
            self._lose(out)

    def _drain(self, out: Released) -> None:
        assert self._next is not None
        while self._next in self._buffer:
            packet = self._buffer.pop(self._next)
            self._next += 1
            if self.codec == "opus":
                self._opus(packet, out)
            else:
                self._vp8(packet, out)

    # -- frames -----------------------------------------------------------------------------

    def _timestamp(self, ts: int) -> int:
        if self._last_ts is None:
            return ts
        return unwrap(ts, self._last_ts, TS_MOD)

    def _emit(self, out: Released, frame: Frame) -> None:
        self._last_ts = frame.timestamp
        self.frames += 1
        out.frames.append(frame)

    def _opus(self, packet: _Packet, out: Released) -> None:
        if not packet.payload:
            return
        if opus_samples(packet.payload) == 0:
            self.malformed += 1
            return
        ts = self._timestamp(packet.timestamp)
        self._emit(out, Frame(ts, packet.payload, True, packet.arrival_ms))

    def _lose(self, out: Released) -> None:
        """A packet is gone: the frame in progress and every delta frame after it."""
        if self.codec != "vp8":
            return
        if self._parts:
            self.dropped_frames += 1
        self._reset_parts()
        self._broken = True
        out.need_keyframe = True

    def _reset_parts(self) -> None:
        self._parts = []
        self._part_ts = None
        self._part_bytes = 0

    def _vp8(self, packet: _Packet, out: Released) -> None:
        if not packet.payload:
            return  # padding: it takes a sequence number, nothing else
        described = vp8.parse_descriptor(packet.payload)
        if described is None or described.header_offset >= len(packet.payload):
            self.malformed += 1
            self._lose(out)
            return
        size = described.header_offset
        starts = described.start and described.partition_id == 0  # RFC 7741 §4.2
        if starts:
            if self._parts:  # the previous frame never saw its marker: it is incomplete
                self.dropped_frames += 1
                self._lose(out)
            self._part_ts = packet.timestamp
            self._part_arrival = packet.arrival_ms
        elif self._part_ts is None or packet.timestamp != self._part_ts:
            # The middle of a frame whose start we don't have (lost before, or the stream
            # started in the middle of a frame).
            if self._parts:
                self._lose(out)
            return
        self._parts.append(packet.payload[size:])
        self._part_bytes += len(packet.payload) - size
        if self._part_bytes > self.max_frame_bytes:
            self.malformed += 1
            self._lose(out)
            return
        if not packet.marker:
            return
        data = b"".join(self._parts)
        ts = self._timestamp(packet.timestamp)
        arrival = self._part_arrival
        self._reset_parts()
        keyframe = vp8_is_keyframe(data)
        if self._broken and not keyframe:
            self.dropped_frames += 1
            out.need_keyframe = True
            return
        self._broken = False
        self._emit(out, Frame(ts, data, keyframe, arrival))
