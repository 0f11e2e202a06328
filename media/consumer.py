"""A Consumer: one receive slot of a subscriber (one m-line of the receive transport, one
outgoing SSRC) and the producer that feeds it now.

What a subscriber sees is one continuous RTP stream per slot whatever feeds it: when the
slot is remapped to another producer (someone leaves, a breakout move) or its producer is
resumed, ``SeqTsMapper.switch_source`` keeps sequence numbers and timestamps continuous and
``Vp8Rewriter.switch_source`` the VP8 picture id and TL0PICIDX, and a video slot forwards
nothing until the new source's next keyframe (asked for at once). Per packet the slot writes
the subscriber's SSRC, payload type and MID (and the audio level, when the subscriber
negotiated it) and sends; NACKs are answered from the producer's history; the publisher's
sender reports are passed on with the slot's timestamp offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from media import rtp
from media.clock import SrMapper
from media.seqts import SeqTsMapper
from media.vp8 import MAX_HEAD, Vp8Rewriter, Vp8Split, is_keyframe

if TYPE_CHECKING:
    from media.producer import Producer

Send = Callable[[bytes], int]  # 1 sent, 0 not connected, -1 dropped (buffer full)
Report = Callable[[int, int, int, int], None]  # (ntp, rtp_ts, packets, octets) -> next SR
ROOM = 1500  # the largest RTP packet a slot sends (an Ethernet MTU)


class Output(Protocol):
    """Where a slot's copies go: each copy is written into ``view`` (from offset 0, at most
    ``room`` bytes) and sent from there by ``send_written``, so no bytes object is made per
    copy (the transport's ``aiortc_hooks.Sender`` protects and sends it in place).
    ``send_written`` returns 1 sent, 0 not connected, -1 dropped (the buffer is full)."""

    @property
    def view(self) -> memoryview: ...

    @property
    def room(self) -> int: ...

    def send_written(self, size: int) -> int: ...


class BytesOutput:
    """An ``Output`` handing each copy to a function as bytes (tests, other transports)."""

    __slots__ = ("room", "send", "view")

    def __init__(self, send: Send, room: int = ROOM):
        self.send = send
        self.room = room
        self.view = memoryview(bytearray(room))

    def send_written(self, size: int) -> int:
        return self.send(bytes(self.view[:size]))


class Consumer:
    __slots__ = (
        "_block",
        "_level_blocks",
        "audio_level_id",
        "dropped",
        "mapper",
        "media",
        "mid",
        "mid_id",
        "octets",
        "output",
        "packets",
        "payload_type",
        "producer",
        "report",
        "retransmitted",
        "ssrc",
        "vp8",
        "waiting_keyframe",
    )

    def __init__(self, mid: str, media: str, ssrc: int, output: Output, report: Report):
        self.mid = mid
        self.media = media  # audio | video (the m-line's kind)
        self.ssrc = ssrc
        self.output = output
        self.report = report
        self.payload_type: int | None = None  # known once the subscriber answered
        self.mid_id: int | None = None
        self.audio_level_id: int | None = None
        self.producer: Producer | None = None
        self.mapper = SeqTsMapper()
        self.vp8 = Vp8Rewriter() if media == "video" else None
        self.waiting_keyframe = False
        self.packets = 0
        self.octets = 0
        self.dropped = 0  # the transport's send buffer was full
        self.retransmitted = 0
        self._block = b""
        self._level_blocks: dict[bytes, bytes] = {}  # audio level -> extension block

    def configure(self, payload_type: int, extensions: dict[str, int]) -> None:
        """The subscriber's negotiated payload type and header extension ids."""
        from media.aiortc_hooks import AUDIO_LEVEL_URI, MID_URI

        self.payload_type = payload_type
        self.mid_id = extensions.get(MID_URI)
        self.audio_level_id = extensions.get(AUDIO_LEVEL_URI)
        block: dict[int, bytes] = {}
        if self.mid_id is not None:
            block[self.mid_id] = self.mid.encode()
        self._block = rtp.encode_extensions(block)
        self._level_blocks.clear()

    def attach(self, producer: Producer | None, now_ms: int) -> None:
        """Feed this slot from ``producer`` (None: idle) from the next packet on."""
        if producer is self.producer:
            return
        old = self.producer
        if old is not None and self in old.consumers:
            old.consumers.remove(self)
        self.producer = producer
        self.mapper.switch_source(now_ms)
        if self.vp8 is not None:
            self.vp8.switch_source()
        if producer is not None:
            producer.consumers.append(self)
            self.resume(now_ms)

    def resume(self, now_ms: int) -> None:
        """The source starts again (attached, or its producer resumed): a video slot waits
        for a keyframe, and one is asked for."""
        producer = self.producer
        if producer is None:
            return
        self.mapper.switch_source(now_ms)
        if self.vp8 is not None:
            self.vp8.switch_source()
            self.waiting_keyframe = True
            producer.request_keyframe(now_ms, force=True)

    def forward(
        self,
        view: rtp.RtpPacketView,
        out: rtp.Outgoing,
        parts: Vp8Split | None,
        arrival_ms: int,
        level: bytes | None,
    ) -> None:
        """One packet of the producer: ``out`` and ``parts`` (its VP8 payload cut, video
        only) are made once for all the producer's consumers. The copy is written straight
        into the output's buffer: this runs once per packet per subscriber."""
        pt = self.payload_type
        if pt is None:
            return
        producer = self.producer
        assert producer is not None
        vp8 = self.vp8
        if vp8 is not None:
            if self.waiting_keyframe:
                if not is_keyframe(out.payload):
                    producer.request_keyframe(arrival_ms)
                    return
                self.waiting_keyframe = False
            clock_rate = 90000
        else:
            clock_rate = producer.info.clock_rate
        mapped = self.mapper.map(view.sequence, view.timestamp, arrival_ms, clock_rate)
        if mapped is None:
            return
        if vp8 is None or parts is None:
            self._send(out, pt, mapped[0], mapped[1], level, out.payload)
            return
        output = self.output
        buf = output.view
        at = rtp.stamp_into(buf, out, pt, mapped[0], mapped[1], self.ssrc, self._block_for(level))
        if at + len(parts.tail) + MAX_HEAD > output.room:
            self.dropped += 1
            return
        end = vp8.write_split(buf, at, parts)
        self._sent(output.send_written(end), end)

    def _send(
        self, out: rtp.Outgoing, pt: int, seq: int, ts: int, level: bytes | None, payload: bytes
    ) -> None:
        """A copy whose payload is ready (audio, a payload with nothing to rewrite, a
        retransmission)."""
        output = self.output
        buf = output.view
        at = rtp.stamp_into(buf, out, pt, seq, ts, self.ssrc, self._block_for(level))
        end = at + len(payload)
        if end > output.room:
            self.dropped += 1
            return
        buf[at:end] = payload
        self._sent(output.send_written(end), end)

    def _block_for(self, level: bytes | None) -> bytes:
        if level is None or self.audio_level_id is None:
            return self._block
        return self._level_blocks.get(level) or self._level_block(level)

    def _sent(self, sent: int, size: int) -> None:
        if sent <= 0:
            if sent < 0:
                self.dropped += 1
            elif self.vp8 is not None:
                self.waiting_keyframe = True  # not connected yet: start with a keyframe
            return
        self.packets += 1
        self.octets += size

    def _level_block(self, level: bytes) -> bytes:
        """The extension block carrying this audio level (and the MID), built once per level:
        encoding it per packet per subscriber was a measurable share of forwarding audio."""
        assert self.audio_level_id is not None
        elements = {self.audio_level_id: level}
        if self.mid_id is not None:
            elements[self.mid_id] = self.mid.encode()
        block = rtp.encode_extensions(elements)
        if len(level) == 1:  # RFC 6464's one byte: at most 256 blocks are ever kept
            self._level_blocks[level] = block
        return block

    def nack(self, lost: list[int]) -> None:
        """The subscriber lost these (outgoing) sequence numbers: resend what the producer's
        history still has."""
        producer, pt = self.producer, self.payload_type
        if producer is None or pt is None:
            return
        for out_seq in lost:
            seq = self.mapper.unmap_seq(out_seq)
            if seq is None:
                continue
            data = producer.history.get(seq)
            if data is None:
                continue
            try:
                view = rtp.parse(data)
            except rtp.RtpError:
                continue
            ts = (view.timestamp + self.mapper.ts_offset) & 0xFFFFFFFF
            out = rtp.outgoing(data, view)
            payload = out.payload if self.vp8 is None else self.vp8.rewrite(out.payload)
            level = None
            if producer.audio_level_id is not None:
                level = view.extensions.get(producer.audio_level_id)
            self.retransmitted += 1
            self._send(out, pt, out_seq, ts, level, payload)

    def sender_report(self, ntp: int, rtp_ts: int) -> None:
        """The publisher's SR, mapped to this slot's timestamps, for the next SR we send."""
        ntp_out, ts_out = SrMapper.map(ntp, rtp_ts, self.mapper.ts_offset)
        self.report(ntp_out, ts_out, self.packets, self.octets)

    def stats(self) -> dict[str, object]:
        p = self.producer
        return {
            "mid": self.mid,
            "kind": self.media,
            "producer_id": None if p is None else p.producer_id,
            "packets": self.packets,
            "octets": self.octets,
            "dropped": self.dropped,
            "retransmitted": self.retransmitted,
            "waiting_keyframe": self.waiting_keyframe,
        }
