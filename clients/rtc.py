"""A Python call participant with real media, for tests and benchmarks (aiortc).

``RtcParticipant`` joins a call through the websocket SDK (``clients.sdk.Client``) the way a
browser does (PROTOCOL.md, "Media"): its send connection offers sendonly transceivers
(microphone, camera, optionally the screen) with ``call_join``; it answers every
``media_offer`` push with ``call_media_answer``, follows ``slots`` pushes, and counts, per
slot owner (user id and kind), the RTP packets it receives and the frames it decodes. The
media are synthetic: a tone (so the audio level header extension says "speaking" when
``loud``) and small changing pictures, encoded by aiortc (Opus, VP8).

Test helpers: ``flood`` (raw RTP over the send connection, past any rate), ``stop_reading``
(the receive connection's socket is no longer read: a subscriber that never reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import secrets
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from av import AudioFrame, VideoFrame

from clients.sdk import Client
from media import aiortc_hooks as hooks
from media import rtp

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
VIDEO_RATE = 90_000
FPS = 15


class ToneTrack(MediaStreamTrack):
    """20 ms frames of a 440 Hz tone (``loud``) or of near silence, in real time."""

    kind = "audio"

    def __init__(self, loud: bool = True):
        super().__init__()
        self.loud = loud
        self._start: float | None = None
        self._pts = 0
        amplitude = 8000
        wave = [
            int(amplitude * math.sin(2 * math.pi * 440 * i / AUDIO_RATE))
            for i in range(AUDIO_SAMPLES)
        ]
        self._tone = struct.pack(f"<{AUDIO_SAMPLES}h", *wave)
        self._quiet = bytes(2 * AUDIO_SAMPLES)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += AUDIO_SAMPLES
            await asyncio.sleep(self._start + self._pts / AUDIO_RATE - time.time())
        frame = AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(self._tone if self.loud else self._quiet)
        frame.pts = self._pts
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class PictureTrack(MediaStreamTrack):
    """Small (160x120) frames whose brightness changes, ``FPS`` a second, in real time."""

    kind = "video"

    def __init__(self, shade: int = 0):
        super().__init__()
        self.shade = shade
        self._start: float | None = None
        self._pts = 0
        self._n = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        step = VIDEO_RATE // FPS
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += step
            await asyncio.sleep(self._start + self._pts / VIDEO_RATE - time.time())
        self._n += 1
        frame = VideoFrame(width=160, height=120, format="yuv420p")
        luma = (self.shade + 4 * self._n) % 200 + 16
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([luma if i == 0 else 128]) * plane.buffer_size)
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


def _config() -> RTCConfiguration:
    # max-bundle: aiortc's default (balanced) leaves the second m-line of a kind on an
    # unbundled, never started transport when one offer brings two of them.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class RtcParticipant:
    """One participant's two connections and what they received."""

    def __init__(
        self,
        client: Client,
        call_id: str,
        *,
        audio: bool = True,
        video: bool = True,
        screen: bool = False,
        loud: bool = True,
        loopback: bool = True,
        answer_offers: bool = True,
    ):
        if loopback:
            hooks.allow_loopback(True)
        self.client = client
        self.call_id = call_id
        self.want = {"audio": audio, "video": video, "screen": screen}
        self.loud = loud
        self.answer_offers = answer_offers
        self.send_pc, self.recv_pc = self._connections()
        self.tracks: dict[str, str] = {}  # mid -> audio | video | screen (what we send)
        self.slots: dict[str, dict[str, str] | None] = {}  # mid -> who feeds it now
        self.packets: Counter[tuple[str, str]] = Counter()  # (user_id, kind) -> RTP packets
        self.frames: Counter[tuple[str, str]] = Counter()  # (user_id, kind) -> decoded frames
        self.offers: list[dict[str, Any]] = []  # media_offer pushes received
        self.speakers: list[dict[str, Any]] = []  # speaker pushes received
        self.answer_errors: list[str] = []
        self.answered: list[int] = []  # versions of the media offers answered and accepted
        self.joined: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._observed = False
        self._changed = asyncio.Event()
        self.rejoins = 0  # calls joined again after the client reconnected
        client.call_listeners.append(self._on_push)
        client.reconnect_listeners.append(self._on_reconnect)

    def _connections(self) -> tuple[RTCPeerConnection, RTCPeerConnection]:
        """A fresh pair: the one this participant sends on, and the one it receives on."""
        recv_pc = RTCPeerConnection(_config())
        recv_pc.on("track", self._on_track)
        return RTCPeerConnection(_config()), recv_pc

    # -- joining and publishing ---------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        """``call_join`` with an offer for what this participant sends; the answer applied."""
        offer = await self._offer()
        joined = await self.client.call_join(self.call_id, offer, dict(self.tracks) or None)
        self.joined = joined
        if joined.get("answer"):
            await self.send_pc.setRemoteDescription(
                RTCSessionDescription(joined["answer"], "answer")
            )
        return joined

    def _on_reconnect(self) -> None:
        """The server takes a device out of its calls when its connection drops: once the
        client is back, in again with fresh connections and a fresh offer (as the web call
        page does)."""
        if self.joined is not None:
            self._spawn(self._rejoin())

    async def _rejoin(self) -> None:
        async with self._lock:
            old = (self.send_pc, self.recv_pc)
            self.send_pc, self.recv_pc = self._connections()
            self.tracks, self.slots, self._observed = {}, {}, False
        for pc in old:
            await pc.close()
        await self.join()
        self.rejoins += 1
        self._changed.set()

    async def share_screen(self) -> str | None:
        """Add a screen share by renegotiating (``call_publish``); the SFU's answer."""
        self.want["screen"] = True
        offer = await self._offer()
        answer = await self.client.call_publish(self.call_id, offer, dict(self.tracks))
        if answer:
            await self.send_pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return answer

    async def _offer(self) -> str:
        pc = self.send_pc
        have = {t.mid: self.tracks.get(t.mid or "") for t in pc.getTransceivers()}
        kinds = set(have.values())
        added: list[tuple[RTCRtpTransceiver, str]] = []
        for kind in ("audio", "video", "screen"):
            if not self.want[kind] or kind in kinds:
                continue
            track: MediaStreamTrack
            if kind == "audio":
                track = ToneTrack(self.loud)
            else:
                track = PictureTrack(100 if kind == "screen" else 0)
            added.append((pc.addTransceiver(track, direction="sendonly"), kind))
        await pc.setLocalDescription(await pc.createOffer())
        for transceiver, kind in added:
            assert transceiver.mid is not None
            self.tracks[transceiver.mid] = kind
        return pc.localDescription.sdp

    # -- receiving ----------------------------------------------------------------------------

    def _on_push(self, value: dict[str, Any]) -> None:
        if value.get("call_id") != self.call_id:
            return
        kind = value.get("type")
        if kind == "media_offer":
            self.offers.append(value)
            if self.answer_offers:
                self._spawn(self._answer(value))
        elif kind == "slots":
            self.slots = dict(value["slots"])
            self._changed.set()
        elif kind == "speaker":
            self.speakers.append(value)
            self._changed.set()

    async def _answer(self, offer: dict[str, Any]) -> None:
        async with self._lock:
            pc = self.recv_pc
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            self.slots = dict(offer["slots"])
            self._observe()
            try:
                await self.client.call_media_answer(
                    self.call_id, offer["version"], pc.localDescription.sdp
                )
            except Exception as exc:  # recorded: a test may expect a refusal
                self.answer_errors.append(repr(exc))
            else:
                self.answered.append(offer["version"])
            self._changed.set()

    def _observe(self) -> None:
        if self._observed:
            return
        transport = hooks.bundle_transport(self.recv_pc)
        if transport is None:
            return
        self._observed = True
        mid_id = 1  # the SFU offers the MID extension as id 1 (aiortc's numbering)
        for t in self.recv_pc.getTransceivers():
            neg = hooks.negotiated(t)
            if neg is not None:
                mid_id = neg.extensions.get(hooks.MID_URI, mid_id)

        def count(data: bytes, arrival_ms: int) -> None:
            try:
                mid = rtp.read_extension(data, mid_id)
            except rtp.RtpError:
                return
            owner = None if mid is None else self.slots.get(mid.decode("ascii", "replace"))
            if owner is not None:
                self.packets[(owner["user_id"], owner["kind"])] += 1

        hooks.observe(transport, count)

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(
            (t.mid for t in self.recv_pc.getTransceivers() if t.receiver.track is track), None
        )
        if mid is not None:
            self._spawn(self._pull(mid, track))

    async def _pull(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                owner = self.slots.get(mid)
                if owner is not None:
                    self.frames[(owner["user_id"], owner["kind"])] += 1

    # -- waiting ------------------------------------------------------------------------------

    async def wait_for(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        """Until ``check()`` holds (polled as packets arrive), or ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            if loop.time() > deadline:
                raise TimeoutError(
                    f"timed out; packets {dict(self.packets)} frames {dict(self.frames)}"
                    f" slots {self.slots} errors {self.answer_errors}"
                )
            await asyncio.sleep(0.05)

    def received(self, user_id: str, kind: str) -> int:
        return self.packets[(user_id, kind)]

    def decoded(self, user_id: str, kind: str) -> int:
        return self.frames[(user_id, kind)]

    # -- misbehaving on purpose (tests) -------------------------------------------------------

    def flood(self, kind: str, count: int) -> int:
        """Send ``count`` RTP packets at once on the send connection for this participant's
        ``kind`` m-line (its MID and payload type, a stream of its own so the real track's
        SRTP state is untouched); the number handed to the socket."""
        transceiver = next(
            t for t in self.send_pc.getTransceivers() if self.tracks.get(t.mid or "") == kind
        )
        neg = hooks.negotiated(transceiver)
        transport = hooks.bundle_transport(self.send_pc)
        assert neg is not None and transport is not None
        sender = hooks.Sender(transport, max_buffer=1 << 30)
        ext = {neg.extensions[hooks.MID_URI]: neg.mid.encode()}
        ssrc = secrets.randbits(32)
        sent = 0
        for i in range(count):
            packet = rtp.serialize(
                payload_type=neg.payload_type,
                sequence=i & 0xFFFF,
                timestamp=i * 960,
                ssrc=ssrc,
                payload=b"\xf8" + bytes(100),
                extensions=ext,
            )
            sent += sender.send(packet) > 0
        sender.close()
        return sent

    def server_address(self, receiving: bool = False) -> tuple[str, int] | None:
        """The server's UDP address of this participant's send (or receive) connection,
        once connected: where anyone on the network can aim datagrams at it."""
        transport = hooks.bundle_transport(self.recv_pc if receiving else self.send_pc)
        return None if transport is None else hooks.remote_address(transport)

    def stop_reading(self) -> bool:
        transport = hooks.bundle_transport(self.recv_pc)
        return transport is not None and hooks.pause_reading(transport)

    # -- the end ------------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.client.reconnect_listeners.remove(self._on_reconnect)
        await close_media(self.client, self._on_push, self._tasks, (self.send_pc, self.recv_pc))


async def close_media(
    client: Client,
    listener: Callable[[dict[str, Any]], None],
    tasks: set[asyncio.Task[Any]],
    connections: tuple[RTCPeerConnection | None, ...],
) -> None:
    """A participant's media ends: its pushes are no longer read, its tasks are cancelled
    and its connections closed (whatever state they are in)."""
    with contextlib.suppress(ValueError):
        client.call_listeners.remove(listener)
    for task in list(tasks):
        task.cancel()
    for pc in connections:
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()
