"""WebRTC transports: one aiortc ``RTCPeerConnection`` each (ICE, DTLS, SRTP; no trickle: the
descriptions carry every candidate), in mediasoup's sense.

A participant has up to two:

- ``SendTransport``: the participant offers (sendonly m-lines), the SFU answers. Each
  sending m-line becomes a ``Producer`` (made by the SFU); packets are demultiplexed by SSRC,
  learned from the MID header extension of the first packets.
- ``RecvTransport``: the SFU offers one sendonly m-line per receive slot (a ``Consumer``),
  the participant answers; it grows by renegotiation when more slots are needed.

Both are tapped (``aiortc_hooks.tap``): RTP and RTCP come to the SFU decrypted and nothing
is decoded or encoded. A transport that is not connected ``connect_timeout_s`` after its
first description, or that fails later (ICE consent lost), is reported through
``on_failed`` once; ``close`` frees it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy

from media import aiortc_hooks as hooks
from media import rtcp
from media.consumer import BytesOutput, Consumer, Output
from media.errors import MediaRefused
from media.offer import AUDIO_CODEC, VIDEO_CODEC, Track
from media.producer import Producer
from media.router import now_ms
from media.settings import MediaSettings

SRS_PER_PACKET = 32  # sender reports in one compound RTCP packet: 32 x 28 bytes fit any MTU

log = logging.getLogger(__name__)


class SilentTrack(MediaStreamTrack):
    """The track of a receive slot's sender: aiortc negotiates an SSRC for it and waits on
    ``recv`` forever, so it never encodes anything; the SFU sends the RTP itself."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> None:  # type: ignore[override]
        await self._never


def _preferences(kind: str, receiving: bool) -> list[object]:
    caps = (RTCRtpReceiver if receiving else RTCRtpSender).getCapabilities(kind)
    assert caps is not None
    wanted = AUDIO_CODEC if kind == "audio" else VIDEO_CODEC
    return [c for c in caps.codecs if c.mimeType.lower() == wanted.lower()]


class WebRtcTransport:
    def __init__(self, settings: MediaSettings, on_failed: Callable[[WebRtcTransport], None]):
        self.settings = settings
        self.on_failed = on_failed
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.sender: hooks.Sender | None = None
        self.connected = False
        self.closed = False
        self.failed = False
        self.rtcp_errors = 0
        self._watchdog: asyncio.Task[None] | None = None
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected = True
        elif state in ("failed", "closed"):
            self._fail(f"connection {state}")

    def _fail(self, why: str) -> None:
        if self.closed or self.failed:
            return
        self.failed = True
        log.info("media transport failed: %s", why)
        self.on_failed(self)

    def start_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        await asyncio.sleep(self.settings.connect_timeout_s)
        if not self.connected:
            self._fail(f"not connected within {self.settings.connect_timeout_s} s")

    def tap(self) -> None:
        dtls = hooks.bundle_transport(self.pc)
        if dtls is None or hooks.is_tapped(dtls):
            return
        hooks.tap(dtls, self.on_rtp, self.on_rtcp, now_ms)
        self.sender = hooks.Sender(dtls, self.settings.max_send_buffer_bytes)

    def send(self, data: bytes) -> int:
        sender = self.sender
        return 0 if sender is None else sender.send(data)

    def send_rtcp(self, data: bytes) -> int:
        sender = self.sender
        return 0 if sender is None else sender.send(data, rtcp=True)

    def decoded(self) -> int:
        """Packets aiortc's decoding path saw (0: the SFU forwards without decoding)."""
        return hooks.decoded_packets(self.pc)

    def on_rtp(self, data: bytes, arrival_ms: int) -> None:
        pass

    def on_rtcp(self, data: bytes) -> None:
        """A compound RTCP packet from the peer: a malformed one is counted and dropped."""
        try:
            items = rtcp.parse(data)
        except rtcp.RtcpError:
            self.rtcp_errors += 1
            return
        self.on_rtcp_items(items)

    def on_rtcp_items(self, items: list[rtcp.RtcpItem]) -> None:
        pass

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()

        try:
            await self.pc.close()
        except Exception:
            log.exception("closing a peer connection failed")
        if self.sender is not None:
            self.sender.close()


async def _apply(pc: RTCPeerConnection, sdp: str, kind: str, what: str) -> None:
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    except MediaRefused:
        raise
    except Exception as exc:
        if "send parameters" in str(exc) or "receive parameters" in str(exc):
            raise MediaRefused("unsupported_codec", f"the {what} has no codec in common") from None
        raise MediaRefused("bad_sdp", f"the {what} was refused: {exc}"[:300]) from None


class SendTransport(WebRtcTransport):
    """The participant's publishing connection."""

    def __init__(self, settings: MediaSettings, on_failed: Callable[[WebRtcTransport], None]):
        super().__init__(settings, on_failed)
        self.by_mid: dict[str, Producer] = {}
        self.by_ssrc: dict[int, Producer] = {}
        self.mid_id: int | None = None
        self.unknown = 0  # packets no producer claimed

    async def negotiate(
        self, offer: str, tracks: list[Track]
    ) -> tuple[str, dict[str, hooks.Negotiated]]:
        """Answer the participant's offer; the negotiated codec of each sending m-line."""
        from media.offer import parse, reject_stopped

        pc = self.pc
        desc = parse(offer, "offer")
        known = {t.mid for t in pc.getTransceivers()}
        for m in desc.media:
            if m.rtp.muxId in known:
                continue
            transceiver = pc.addTransceiver(m.kind, direction="recvonly")
            transceiver.setCodecPreferences(_preferences(m.kind, True))  # type: ignore[arg-type]
        await _apply(pc, offer, "offer", "offer")
        self.tap()
        try:
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            raise MediaRefused("bad_sdp", f"no answer to this offer: {exc}"[:300]) from None
        self.start_watchdog()
        out: dict[str, hooks.Negotiated] = {}
        wanted = {t.mid for t in tracks}
        for transceiver in pc.getTransceivers():
            neg = hooks.negotiated(transceiver)
            if neg is not None and neg.mid in wanted:
                out[neg.mid] = neg
                self.mid_id = neg.extensions.get(hooks.MID_URI, self.mid_id)
        stopped = {m.rtp.muxId for m in desc.media if m.port == 0}
        return reject_stopped(pc.localDescription.sdp, stopped), out

    def bind(self, producer: Producer) -> None:
        self.by_mid[producer.mid] = producer
        if producer.info.ssrc:
            self.by_ssrc[producer.info.ssrc] = producer

    def unbind(self, producer: Producer) -> None:
        if self.by_mid.get(producer.mid) is producer:
            del self.by_mid[producer.mid]
        for ssrc, p in list(self.by_ssrc.items()):
            if p is producer:
                del self.by_ssrc[ssrc]

    def _rtcp_ssrc(self, mid: str) -> int:
        for t in self.pc.getTransceivers():
            if t.mid == mid:
                return hooks.sender_ssrc(t.sender)
        return 1

    def pli_sender(self, mid: str) -> Callable[[int], None]:
        """A function sending a PLI for a media SSRC of this connection."""

        def send_pli(media_ssrc: int) -> None:
            self.send_rtcp(rtcp.pli(self._rtcp_ssrc(mid), media_ssrc))

        return send_pli

    def nack_sender(self, mid: str) -> Callable[[int, list[int]], None]:
        """A function sending a NACK for lost packets of a media SSRC of this connection."""

        def send_nack(media_ssrc: int, lost: list[int]) -> None:
            self.send_rtcp(rtcp.nack(self._rtcp_ssrc(mid), media_ssrc, lost))

        return send_nack

    def on_rtp(self, data: bytes, arrival_ms: int) -> None:
        if len(data) < 12:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        producer = self.by_ssrc.get(ssrc)
        if producer is None:
            producer = self._learn(ssrc, data, arrival_ms)
            if producer is None:
                self.unknown += 1
                return
        producer.receive(data, arrival_ms)

    def _learn(self, ssrc: int, data: bytes, arrival_ms: int) -> Producer | None:
        """An SSRC seen for the first time: its MID extension names the m-line (only for the
        m-line's media payload type: an RTX stream is not the producer)."""
        from media import rtp

        if self.mid_id is None:
            return None
        try:
            mid = rtp.read_extension(data, self.mid_id)
        except rtp.RtpError:
            return None
        if mid is None:
            return None
        producer = self.by_mid.get(mid.decode("ascii", "replace"))
        if producer is None or data[1] & 0x7F != producer.info.payload_type:
            return None
        if producer.info.ssrc:
            self.by_ssrc.pop(producer.info.ssrc, None)
        producer.learn_ssrc(ssrc, arrival_ms)
        self.by_ssrc[ssrc] = producer
        return producer

    def on_rtcp_items(self, items: list[rtcp.RtcpItem]) -> None:
        for item in items:
            if isinstance(item, rtcp.SenderReport):
                producer = self.by_ssrc.get(item.ssrc)
                if producer is not None:
                    producer.on_sender_report(item.ntp, item.rtp_ts)


class RecvTransport(WebRtcTransport):
    """The participant's receiving connection: one consumer per m-line (slot)."""

    def __init__(self, settings: MediaSettings, on_failed: Callable[[WebRtcTransport], None]):
        super().__init__(settings, on_failed)
        self.consumers: dict[str, Consumer] = {}  # by mid, in m-line order
        self.by_ssrc: dict[int, Consumer] = {}
        self.version = 0
        self.pending: int | None = None  # the version of the offer awaiting an answer
        self.pending_mids: list[str] = []
        # Sender reports by slot SSRC: (ntp, rtp_ts, packets, octets), sent together.
        self.reports: dict[int, tuple[int, int, int, int]] = {}
        self._reporting: asyncio.Task[None] | None = None

    def slots(self) -> dict[str, dict[str, str] | None]:
        out: dict[str, dict[str, str] | None] = {}
        for mid, c in self.consumers.items():
            p = c.producer
            out[mid] = None if p is None else {"user_id": p.user_id, "kind": p.kind}
        return out

    def capacity(self, media: str) -> int:
        """Slots of this media, counting those of an offer not answered yet."""
        return sum(1 for t in self.pc.getTransceivers() if t.kind == media)

    async def offer(self, audio: int, video: int) -> str:
        """A new offer (version + 1) with ``audio`` and ``video`` more slots."""
        pc = self.pc
        new: list[RTCRtpTransceiver] = []
        for kind, n in (("audio", audio), ("video", video)):
            for _ in range(n):
                transceiver = pc.addTransceiver(SilentTrack(kind), direction="sendonly")
                hooks.quiet_rtcp(transceiver.sender)
                transceiver.setCodecPreferences(_preferences(kind, False))  # type: ignore[arg-type]
                new.append(transceiver)
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        self.version += 1
        self.pending = self.version
        self.pending_mids = [t.mid for t in pc.getTransceivers() if t.mid is not None]
        self.tap()
        self.start_watchdog()
        return pc.localDescription.sdp

    async def accept(self, answer: str) -> list[Consumer]:
        """The participant's answer to the pending offer; the slots it adds (configured)."""
        await _apply(self.pc, answer, "answer", "answer")
        self.pending = None
        self.tap()
        added: list[Consumer] = []
        # The slots write their copies into the sender's own buffer (tapped above).
        output: Output = BytesOutput(self.send) if self.sender is None else self.sender
        for transceiver in self.pc.getTransceivers():
            neg = hooks.negotiated(transceiver)
            if neg is None:
                continue
            consumer = self.consumers.get(neg.mid)
            if consumer is None:
                ssrc = hooks.sender_ssrc(transceiver.sender)
                consumer = Consumer(neg.mid, neg.kind, ssrc, output, self._reporter(ssrc))
                self.consumers[neg.mid] = consumer
                self.by_ssrc[ssrc] = consumer
                added.append(consumer)
            consumer.configure(neg.payload_type, neg.extensions)
        if self._reporting is None:
            self._reporting = asyncio.create_task(self._send_reports())
        return added

    def _reporter(self, ssrc: int) -> Callable[[int, int, int, int], None]:
        def report(ntp: int, rtp_ts: int, packets: int, octets: int) -> None:
            self.reports[ssrc] = (ntp, rtp_ts, packets, octets)

        return report

    async def close(self) -> None:
        if self._reporting is not None:
            self._reporting.cancel()
        await super().close()

    async def _send_reports(self) -> None:
        """The slots' sender reports, all in compound packets of at most ``SRS_PER_PACKET``,
        at RFC 3550's randomised interval of about a second."""
        while not self.closed:
            await asyncio.sleep(0.5 + random.random())
            reports = [rtcp.sender_report(ssrc, *r) for ssrc, r in self.reports.items()]
            for i in range(0, len(reports), SRS_PER_PACKET):
                self.send_rtcp(b"".join(reports[i : i + SRS_PER_PACKET]))

    def on_rtcp_items(self, items: list[rtcp.RtcpItem]) -> None:
        now = now_ms()
        for item in items:
            if isinstance(item, rtcp.Pli):
                consumer = self.by_ssrc.get(item.media_ssrc)
                if consumer is not None and consumer.producer is not None:
                    consumer.producer.request_keyframe(now)
            elif isinstance(item, rtcp.Fir):
                for ssrc, _ in item.entries:
                    consumer = self.by_ssrc.get(ssrc)
                    if consumer is not None and consumer.producer is not None:
                        consumer.producer.request_keyframe(now)
            elif isinstance(item, rtcp.Nack):
                consumer = self.by_ssrc.get(item.media_ssrc)
                if consumer is not None:
                    consumer.nack(item.lost)
