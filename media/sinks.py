"""Taps on a router's incoming RTP, for the recorder (and anything else that must see the
packets a room's producers send without being a WebRTC subscriber).

A sink is added to a router (``Router.add_sink`` / ``Sfu.add_sink``). From then on it gets
every RTP packet of every producer of that router, decrypted and exactly as the publisher
sent it (the publisher's SSRC, payload type, sequence numbers and header extensions), and a
call when a producer goes away. Packets of a paused producer are not delivered. A sink may
ask for a keyframe with ``router.request_keyframe(producer_id)`` (rate-limited per producer,
like a subscriber's PLI).

``on_rtp`` runs on the event loop in the forwarding path: it must be quick and must not
raise (an exception is logged and the sink removed). ``arrival_ms`` is aiortc's arrival
stamp: wall-clock milliseconds since the NTP epoch (``media.router.now_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    """What a sink needs to know about the producer a packet came from."""

    producer_id: str
    user_id: str
    kind: str  # "audio" | "video" | "screen"
    mime_type: str  # "audio/opus", "video/VP8", ...
    clock_rate: int
    payload_type: int
    ssrc: int


class RtpSink(Protocol):
    def on_rtp(self, producer: ProducerInfo, packet: bytes, arrival_ms: int) -> None: ...

    def on_producer_closed(self, producer_id: str) -> None: ...
