"""A Router: one room's media space (a call's main room, or one of its breakout rooms).

It holds the producers of the participants placed in its room, the RTP sinks (the recorder)
and the active speaker of the room. Rooms never leak: the SFU binds a consumer only to a
producer of the router its subscriber is in, and a participant's producers move with them
when they change rooms.
"""

from __future__ import annotations

import logging
import time

from media.loudest import DROP, RESUME, LoudestAudio
from media.producer import Producer
from media.sinks import RtpSink
from media.speaker import ActiveSpeaker, audio_level

log = logging.getLogger(__name__)


NTP_EPOCH_OFFSET_MS = 2_208_988_800_000  # 1900-01-01 to 1970-01-01


def now_ms() -> int:
    """The packets' time base: wall-clock milliseconds since the NTP epoch (what aiortc
    stamps an arriving packet with)."""
    return int(time.time() * 1000) + NTP_EPOCH_OFFSET_MS


class Router:
    def __init__(self, call_id: str, room_id: str, loudest_audio: int = 0):
        self.call_id = call_id
        self.room_id = room_id
        # [media] loudest_audio: only the N loudest microphones reach the consumers.
        self.loudest = LoudestAudio(loudest_audio) if loudest_audio > 0 else None
        self.producers: dict[str, Producer] = {}
        self.sinks: list[RtpSink] = []
        self.speaker = ActiveSpeaker()
        self.current_speaker: str | None = None

    def add_producer(self, producer: Producer) -> None:
        self.producers[producer.producer_id] = producer
        producer.router = self

    def remove_producer(self, producer: Producer) -> None:
        if self.producers.pop(producer.producer_id, None) is None:
            return
        producer.router = None
        if producer.kind == "audio":
            self.speaker.remove(producer.user_id)
            if self.loudest is not None:
                self.loudest.remove(producer.user_id)
            if self.current_speaker == producer.user_id:
                self.current_speaker = None
        for sink in list(self.sinks):
            try:
                sink.on_producer_closed(producer.producer_id)
            except Exception:
                log.exception("an RTP sink failed; it is removed")
                self.remove_sink(sink)

    def forwards(self, producer: Producer, level: bytes | None, arrival_ms: int) -> bool:
        """Whether this packet goes to ``producer``'s consumers: with ``loudest_audio`` an
        audio packet does only while its sender is among the loudest of the room or is the
        active speaker (sinks and the speaker detection get every packet regardless). A
        stream let through again resumes its consumers (sequence numbers without a gap)."""
        loudest = self.loudest
        if loudest is None or not level:
            return True
        decision = loudest.decide(
            producer.user_id, level[0] & 0x7F, arrival_ms, self.current_speaker
        )
        if decision == RESUME:
            for consumer in producer.consumers:
                consumer.resume(arrival_ms)
        return decision != DROP

    def delivered(
        self, producer: Producer, data: bytes, arrival_ms: int, level: bytes | None
    ) -> None:
        """A packet ``producer`` forwarded: to the sinks, and its audio level to the speaker
        detection."""
        if level is not None:
            try:
                _voice, dbov = audio_level(level)
            except ValueError:
                pass
            else:
                self.speaker.feed(producer.user_id, dbov, arrival_ms)
        for sink in self.sinks:
            try:
                sink.on_rtp(producer.info, data, arrival_ms)
            except Exception:
                log.exception("an RTP sink failed; it is removed")
                self.remove_sink(sink)

    def add_sink(self, sink: RtpSink) -> None:
        if sink not in self.sinks:
            self.sinks.append(sink)
        now = now_ms()
        for producer in self.producers.values():
            producer.request_keyframe(now, force=True)

    def remove_sink(self, sink: RtpSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    def request_keyframe(self, producer_id: str) -> bool:
        """A sink asks for a keyframe; rate-limited per producer like a subscriber's PLI."""
        producer = self.producers.get(producer_id)
        return producer is not None and producer.request_keyframe(now_ms())

    def update_speaker(self, now: int) -> str | None:
        """The new dominant speaker when it changed (and is still in this room)."""
        key = self.speaker.update(now)
        if key is None or key == self.current_speaker:
            return None
        if not any(p.user_id == key for p in self.producers.values()):
            return None
        self.current_speaker = key
        return key

    def close(self) -> None:
        for producer in list(self.producers.values()):
            self.remove_producer(producer)
        self.sinks.clear()
