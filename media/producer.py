"""A Producer: one incoming track of a participant (microphone, camera or screen).

It owns what is per incoming stream: the negotiated codec and the publisher's SSRC (learned
from the first packet carrying its MID), the flood limit (``max_packets_per_s``: the excess
of any second is dropped and counted), the packet history that answers subscribers' NACKs,
the keyframe gate (PLI/FIR reach the publisher at most once per interval), the publisher's
last sender report, the consumers it feeds and its counters. ``paused`` (a revoked
capability, a force mute, the participant's own "off") drops its packets on arrival: nothing
reaches a subscriber or a sink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from media import rtp, vp8
from media.history import PacketHistory
from media.keyframes import KeyframeGate
from media.sinks import ProducerInfo

if TYPE_CHECKING:
    from media.consumer import Consumer
    from media.router import Router

KeyframeSender = Callable[[int], None]  # sends a PLI for this media SSRC to the publisher
NackSender = Callable[[int, list[int]], None]  # sends a NACK (media SSRC, lost) upstream
MAX_NACK_GAP = 32  # a bigger upstream gap is not NACKed: a video producer gets a keyframe
FORCED_DEDUP_MS = 100  # forced requests (a consumer starting) closer than this are one


class Producer:
    __slots__ = (
        "_count",
        "_forced_ms",
        "_last_seq",
        "_window",
        "audio_level_id",
        "closed",
        "consumers",
        "dropped_flood",
        "dropped_malformed",
        "dropped_other",
        "dropped_paused",
        "gate",
        "history",
        "info",
        "keyframe_requests",
        "last_sr",
        "max_pps",
        "mid",
        "nacks_sent",
        "octets",
        "packets",
        "paused",
        "router",
        "send_nack",
        "send_pli",
    )

    def __init__(
        self,
        info: ProducerInfo,
        mid: str,
        *,
        paused: bool,
        history_packets: int,
        history_max_age_ms: int,
        keyframe_interval_ms: int,
        max_pps: int,
        audio_level_id: int | None,
        send_pli: KeyframeSender,
        send_nack: NackSender | None = None,
    ):
        self.info = info
        self.mid = mid
        self.paused = paused
        self.closed = False
        self.history = PacketHistory(history_packets, history_max_age_ms)
        self.gate = KeyframeGate(keyframe_interval_ms)
        self.audio_level_id = audio_level_id
        self.consumers: list[Consumer] = []
        self.router: Router | None = None
        self.send_pli = send_pli
        self.max_pps = max_pps
        self.last_sr: tuple[int, int] | None = None  # the publisher's (ntp, rtp_ts)
        self.packets = 0
        self.octets = 0
        self.dropped_flood = 0
        self.dropped_malformed = 0
        self.dropped_paused = 0
        self.dropped_other = 0
        self.keyframe_requests = 0
        self._window = -1
        self._count = 0
        self._forced_ms: int | None = None
        self._last_seq: int | None = None
        self.send_nack = send_nack
        self.nacks_sent = 0

    @property
    def producer_id(self) -> str:
        return self.info.producer_id

    @property
    def user_id(self) -> str:
        return self.info.user_id

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def is_video(self) -> bool:
        return self.info.kind != "audio"

    def learn_ssrc(self, ssrc: int, now_ms: int) -> None:
        """The publisher's SSRC, from its first packets: consumers that started before it was
        known get their keyframe request now."""
        if ssrc == self.info.ssrc:
            return
        first = not self.info.ssrc
        self.info = replace(self.info, ssrc=ssrc)
        if first and self.consumers:
            self.request_keyframe(now_ms, force=True)

    def receive(self, data: bytes, arrival_ms: int) -> None:
        """One decrypted RTP packet of this producer: checked, kept, forwarded."""
        second = arrival_ms // 1000
        if second != self._window:
            self._window = second
            self._count = 0
        self._count += 1
        if self._count > self.max_pps:
            self.dropped_flood += 1
            return
        try:
            view = rtp.parse_one(data, self.audio_level_id)
        except rtp.RtpError:
            self.dropped_malformed += 1
            return
        if view.payload_type != self.info.payload_type:
            self.dropped_other += 1  # RTX, FEC, or a codec we did not accept
            return
        self._track_loss(view.sequence, arrival_ms)
        if self.paused:
            self.dropped_paused += 1
            return
        self.packets += 1
        self.octets += len(data)
        self.history.put(view.sequence, data, arrival_ms)
        level = None
        if self.audio_level_id is not None:
            level = view.extensions.get(self.audio_level_id)
        router = self.router
        if router is None or router.forwards(self, level, arrival_ms):
            # What the copies share is cut out once per packet, not once per subscriber.
            out = rtp.outgoing(data, view)
            parts = vp8.split(out.payload) if self.is_video else None
            for consumer in self.consumers:
                consumer.forward(view, out, parts, arrival_ms, level)
        if router is not None:
            router.delivered(self, data, arrival_ms, level)

    def _track_loss(self, seq: int, now_ms: int) -> None:
        """Packets lost on the way from the publisher: asked again (NACK; both browsers and
        aiortc resend), or for a long gap in video, a keyframe (the history cannot help
        subscribers with what never arrived)."""
        last = self._last_seq
        if last is None:
            self._last_seq = seq
            return
        gap = (seq - last) & 0xFFFF
        if gap == 0 or gap >= 0x8000:
            return  # a duplicate, a late or a resent packet
        self._last_seq = seq
        if gap == 1:
            return
        if gap <= MAX_NACK_GAP + 1 and self.send_nack is not None and self.info.ssrc:
            self.nacks_sent += 1
            self.send_nack(self.info.ssrc, [(last + i) & 0xFFFF for i in range(1, gap)])
        elif self.is_video:
            self.request_keyframe(now_ms)

    def request_keyframe(self, now_ms: int, *, force: bool = False) -> bool:
        """Ask the publisher for a keyframe (PLI), at most once per interval unless
        ``force`` (a consumer starting or resuming: those close together share one). True
        when one was sent."""
        if not self.is_video or self.closed or self.paused or not self.info.ssrc:
            return False
        if force:
            # Consumers starting together (a newcomer's slots, a resume) share one request.
            if self._forced_ms is not None and 0 <= now_ms - self._forced_ms < FORCED_DEDUP_MS:
                return False
            self._forced_ms = now_ms
        elif not self.gate.allow(now_ms):
            return False
        self.keyframe_requests += 1
        self.send_pli(self.info.ssrc)
        return True

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        self.last_sr = (ntp, rtp_ts)
        for consumer in self.consumers:
            consumer.sender_report(ntp, rtp_ts)

    def stats(self) -> dict[str, object]:
        return {
            "producer_id": self.producer_id,
            "user_id": self.user_id,
            "kind": self.kind,
            "mime_type": self.info.mime_type,
            "ssrc": self.info.ssrc,
            "paused": self.paused,
            "packets": self.packets,
            "octets": self.octets,
            "dropped_flood": self.dropped_flood,
            "dropped_malformed": self.dropped_malformed,
            "dropped_paused": self.dropped_paused,
            "dropped_other": self.dropped_other,
            "keyframe_requests": self.keyframe_requests,
            "nacks_sent": self.nacks_sent,
            "history": len(self.history),
            "consumers": len(self.consumers),
        }
