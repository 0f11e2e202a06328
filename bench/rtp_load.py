"""Synthetic RTP load for the SFU benchmark: pre-encoded media replayed on a steady clock over
real DTLS/SRTP connections, and subscribers that count what arrives without decoding.

- ``encode_video`` / ``encode_audio`` encode a few seconds of VP8 (aiortc's encoder, so the
  payloads carry the RFC 7741 descriptor aiortc writes) and Opus ONCE; what is sent later is
  these payloads, replayed in a loop. The client's CPU goes to sending, not encoding.
- ``OutStream`` sends one such stream as raw RTP on a connected aiortc connection (its SSRC,
  payload type and MID/audio-level extension ids as negotiated) through the synchronous
  ``aiortc_hooks.Sender``: one SRTP protect and one ``sendto`` per packet. Every payload
  ends with an 8-byte marker, the ``time_ns`` just before the send; the SFU forwards
  payloads unchanged at the end (the VP8 descriptor it rewrites is at the start). A PLI or
  FIR from the SFU makes the next frame a keyframe (the replay jumps to the loop's start).
- ``Pacer`` sends every stream's frames at their due times, one task for all streams, each
  stream with its own random phase; video packets are paced as a browser's libwebrtc
  paces them (2.5 x the bitrate, at most 5 ms worth at once), audio goes at once.
- ``Counter`` is a subscriber's receive connection: each SRTP packet is counted still
  encrypted (``aiortc_hooks.count_srtp``); a random ``sample`` share of them is decrypted
  and its marker read, giving the latency from the publisher's send to the moment the
  datagram reached the subscriber's socket: the kernel's receive timestamp
  (``aiortc_hooks.arrival_ns``), read before decryption and matched by the clear RTP header,
  so neither the time the datagram waits for this (busy) process's event loop nor the
  decryption is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from av import AudioFrame, VideoFrame

from media import aiortc_hooks as hooks
from media import rtcp, rtp

MARKER = struct.Struct("!Q")
PACING_FACTOR = 2.5  # libwebrtc's default: the pacer sends at 2.5 x the target bitrate
PACING_WINDOW_S = 0.005  # and at most 5 ms worth of bytes at once (its burst limit)
AUDIO_RATE = 48_000
VIDEO_RATE = 90_000
# Levels (RFC 6464: -dBov, 0 loudest, 127 silence) a synthetic microphone reports.
SPEAKING = 25
BACKGROUND = (70, 100)

LevelFn = Callable[[float], tuple[bool, int]]  # seconds since start -> (voice, level)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A loop of encoded frames: each frame's RTP payloads; which frames are keyframes."""

    kind: str  # audio | video
    clock_rate: int
    frame_ticks: int  # RTP timestamp units per frame
    frames: tuple[tuple[bytes, ...], ...]
    keyframes: tuple[int, ...]

    @property
    def fps(self) -> float:
        return self.clock_rate / self.frame_ticks

    @property
    def packets_per_s(self) -> float:
        return sum(len(f) for f in self.frames) / len(self.frames) * self.fps

    @property
    def bitrate(self) -> float:
        size = sum(len(p) for f in self.frames for p in f)
        return size * 8 / len(self.frames) * self.fps


def _picture(width: int, height: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A moving gradient with a noisy square: enough detail for the encoder to use its rate."""
    y = np.arange(height, dtype=np.int32)[:, None]
    x = np.arange(width, dtype=np.int32)[None, :]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = ((x + 3 * n) % 256).astype(np.uint8)
    img[..., 1] = ((y + 2 * n) % 256).astype(np.uint8)
    img[..., 2] = ((x + y + n) % 256).astype(np.uint8)
    side = min(width, height) // 3
    ox = (5 * n) % max(1, width - side)
    oy = (3 * n) % max(1, height - side)
    img[oy : oy + side, ox : ox + side] = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    return img


def encode_video(
    width: int, height: int, fps: int, seconds: float, bitrate: int, keyframe_every_s: float
) -> Encoded:
    encoder = Vp8Encoder()
    encoder.target_bitrate = bitrate
    rng = np.random.default_rng(7)
    ticks = VIDEO_RATE // fps
    count = max(1, round(seconds * fps))
    every = max(1, round(keyframe_every_s * fps))
    frames: list[tuple[bytes, ...]] = []
    keyframes: list[int] = []
    for n in range(count):
        frame = VideoFrame.from_ndarray(_picture(width, height, n, rng), format="rgb24")
        frame.pts = n * ticks
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        key = n % every == 0
        payloads, _ = encoder.encode(frame, force_keyframe=key)
        if key:
            keyframes.append(len(frames))
        frames.append(tuple(payloads))
    return Encoded("video", VIDEO_RATE, ticks, tuple(frames), tuple(keyframes))


def encode_audio(seconds: float, bitrate: int = 32_000) -> Encoded:
    encoder = OpusEncoder()
    encoder.codec.bit_rate = bitrate
    samples = 960  # 20 ms
    frames: list[tuple[bytes, ...]] = []
    for n in range(max(1, round(seconds * 50)) + 2):
        t = np.arange(n * samples, (n + 1) * samples) / AUDIO_RATE
        wave = (6000 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
        frame = AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        payloads, _ = encoder.encode(frame)
        if payloads:
            frames.append(tuple(payloads))
    return Encoded("audio", AUDIO_RATE, samples, tuple(frames), (0,))


def steady_level(level: int, voice: bool = True) -> LevelFn:
    return lambda t: (voice, level)


def turn_level(index: int, turns: int, turn_s: float, seed: int) -> LevelFn:
    """A pupil's microphone: background noise, except during its turn to speak (one of
    ``turns`` in rotation, ``turn_s`` each)."""
    rng = random.Random(seed)
    noise = [rng.randint(*BACKGROUND) for _ in range(64)]

    def level(t: float) -> tuple[bool, int]:
        slot = int(t / turn_s)
        if slot % turns == index % turns:
            return True, SPEAKING + noise[slot % 64] % 8
        return False, noise[int(t * 50) % 64]

    return level


class OutStream:
    """One outgoing RTP stream of a publisher's connection."""

    def __init__(
        self,
        media: Encoded,
        sender: hooks.Sender,
        *,
        ssrc: int,
        payload_type: int,
        mid: str,
        mid_id: int | None,
        level_id: int | None,
        level: LevelFn | None,
    ):
        self.media = media
        self.sender = sender
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.level_id = level_id
        self.level = level
        self._mid = {mid_id: mid.encode()} if mid_id is not None else {}
        self._blocks: dict[int, bytes] = {}
        self._plain = rtp.encode_extensions(self._mid)
        self.index = 0
        self.seq = random.randrange(1 << 16)
        self.ts = random.randrange(1 << 32)
        self.sent = 0
        self.not_sent = 0
        self.keyframe_requests = 0
        self.due = 0.0  # perf_counter seconds of the next frame
        self.start = 0.0
        self.queue: deque[tuple[int, int, bool, bytes, bytes]] = deque()
        self.budget = 0.0  # pacing: bytes that may be sent now (negative: owed)
        self.budget_at = 0.0

    def _block(self, t: float) -> bytes:
        if self.level is None or self.level_id is None:
            return self._plain
        voice, level = self.level(t)
        key = (0x80 if voice else 0) | level
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = rtp.encode_extensions(
                {**self._mid, self.level_id: bytes((key,))}
            )
        return block

    def keyframe(self) -> None:
        self.keyframe_requests += 1
        self.index = 0

    def send_frame(self) -> None:
        """Queues the next frame's packets (``release`` sends them)."""
        frames = self.media.frames
        payloads = frames[self.index]
        self.index = (self.index + 1) % len(frames)
        block = self._block(self.due - self.start)
        last = len(payloads) - 1
        video = self.media.kind == "video"
        for i, payload in enumerate(payloads):
            self.seq = (self.seq + 1) & 0xFFFF
            self.queue.append((self.seq, self.ts, video and i == last, block, payload))
        self.ts = (self.ts + self.media.frame_ticks) & 0xFFFFFFFF

    def release(self, now: float, rate: float) -> float | None:
        """Sends queued packets: all of them (``rate`` 0), or as a leaky bucket of ``rate``
        bytes per second that saves up at most ``PACING_WINDOW_S`` of budget. Returns when
        the next queued packet may go (None: the queue is empty). Each payload gets its
        marker (the time of its actual send) here."""
        if rate > 0:
            saved = self.budget + rate * (now - self.budget_at)
            self.budget = min(saved, rate * PACING_WINDOW_S)
            self.budget_at = now
        queue, pack, clock = self.queue, MARKER.pack, time.time_ns
        while queue and (rate <= 0 or self.budget > 0):
            seq, ts, marker, block, payload = queue.popleft()
            packet = rtp.serialize(
                payload_type=self.payload_type,
                sequence=seq,
                timestamp=ts,
                ssrc=self.ssrc,
                marker=marker,
                extensions=block,
                payload=payload + pack(clock()),
            )
            if self.sender.send(packet) > 0:
                self.sent += 1
            else:
                self.not_sent += 1
            self.budget -= len(packet)
        if not queue:
            return None
        return now + -self.budget / rate


class Pacer:
    """Sends every stream's frames at their due times until stopped.

    Video is paced as libwebrtc's pacer does it in a browser (its "paced sender": a leaky
    bucket at ``pacing_factor`` x the stream's bitrate, 2.5 by default there), so a
    keyframe's dozen packets leave over tens of milliseconds instead of in one burst; audio
    goes at once. ``pacing_factor`` 0 sends every frame's packets at once (an unpaced
    sender such as aiortc's)."""

    def __init__(self, pacing_factor: float = PACING_FACTOR) -> None:
        self.streams: list[OutStream] = []
        self.pacing_factor = pacing_factor
        self.late_frames = 0  # frames sent more than 20 ms after they were due
        self.skipped_frames = 0  # frames dropped after the loop fell > 200 ms behind
        self._task: asyncio.Task[None] | None = None
        self._stopped_at: float | None = None

    def rate(self, stream: OutStream) -> float:
        """Pacing rate in bytes per second (0: not paced)."""
        if stream.media.kind != "video" or self.pacing_factor <= 0:
            return 0.0
        return self.pacing_factor * stream.media.bitrate / 8

    def add(self, stream: OutStream) -> None:
        now = time.perf_counter()
        stream.start = now
        stream.due = now + random.random() * stream.media.frame_ticks / stream.media.clock_rate
        self.streams.append(stream)

    def start(self) -> None:
        """Start (or restart after ``stop``: the streams' RTP clocks advance by the pause,
        as a muted microphone's would, and sending resumes at once)."""
        now = time.perf_counter()
        for s in self.streams:
            if self._stopped_at is not None:
                ticks = int((now - self._stopped_at) * s.media.clock_rate)
                s.ts = (s.ts + ticks) & 0xFFFFFFFF
            s.due = now + random.random() * s.media.frame_ticks / s.media.clock_rate
            s.queue.clear()
            s.budget, s.budget_at = 0.0, now
        self._stopped_at = None
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._stopped_at = time.perf_counter()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            now = time.perf_counter()
            wake = now + 0.02
            for s in self.streams:
                interval = s.media.frame_ticks / s.media.clock_rate
                if now - s.due > 0.2:  # far behind (the machine stalled): do not burst
                    skipped = int((now - s.due) / interval)
                    self.skipped_frames += skipped
                    s.due += skipped * interval
                    s.ts = (s.ts + skipped * s.media.frame_ticks) & 0xFFFFFFFF
                while s.due <= now:
                    if now - s.due > 0.02:
                        self.late_frames += 1
                    s.send_frame()
                    s.due += interval
                paced = s.release(now, self.rate(s))
                wake = min(wake, s.due) if paced is None else min(wake, s.due, paced)
            await asyncio.sleep(max(0.0, wake - time.perf_counter()))


def stream_for(
    pc: RTCPeerConnection,
    transceiver: RTCRtpTransceiver,
    media: Encoded,
    sender: hooks.Sender,
    level: LevelFn | None,
) -> OutStream:
    neg = hooks.negotiated(transceiver)
    if neg is None:
        raise RuntimeError(f"transceiver {transceiver.mid} negotiated nothing")
    return OutStream(
        media,
        sender,
        ssrc=hooks.sender_ssrc(transceiver.sender),
        payload_type=neg.payload_type,
        mid=neg.mid,
        mid_id=neg.extensions.get(hooks.MID_URI),
        level_id=neg.extensions.get(hooks.AUDIO_LEVEL_URI),
        level=level,
    )


def answer_keyframe_requests(pc: RTCPeerConnection, streams: list[OutStream]) -> None:
    """PLI/FIR arriving on ``pc`` (a publisher's connection) restart the replay of the
    video stream they name at its keyframe."""
    transport = hooks.bundle_transport(pc)
    if transport is None:
        return
    by_ssrc = {s.ssrc: s for s in streams if s.media.kind == "video"}

    def on_rtcp(data: bytes) -> None:
        try:
            items = rtcp.parse(data)
        except rtcp.RtcpError:
            return
        for item in items:
            if isinstance(item, rtcp.Pli) and item.media_ssrc in by_ssrc:
                by_ssrc[item.media_ssrc].keyframe()
            elif isinstance(item, rtcp.Fir):
                for ssrc, _ in item.entries:
                    if ssrc in by_ssrc:
                        by_ssrc[ssrc].keyframe()

    hooks.tap(transport, lambda data, arrival_ms: None, on_rtcp)


class Counter:
    """A subscriber's receive connection: counts SRTP packets, samples latency markers."""

    def __init__(self, sample: float, record: Callable[[float], None]):
        self.sample = sample
        self.record = record  # gets each latency sample, in seconds
        self.packets = 0
        self.octets = 0
        self.by_ssrc: dict[bytes, int] = {}
        self._arrivals: dict[bytes, int] = {}
        self.installed = False
        self.sampled = 0
        self.kernel_stamped = 0  # samples whose arrival the kernel stamped
        self._transport: Any = None

    def install(self, pc: RTCPeerConnection) -> bool:
        if self.installed:
            return True
        transport = hooks.bundle_transport(pc)
        if transport is None:
            return False
        self._transport = transport
        # Tapped first: count_srtp then sees each packet before the tap decrypts it.
        hooks.tap(transport, self._decrypted, lambda data: None)
        hooks.count_srtp(transport, self._keep)
        self.installed = True
        return True

    def _keep(self, data: bytes) -> bool:
        self.packets += 1
        self.octets += len(data)
        ssrc = data[8:12]
        self.by_ssrc[ssrc] = self.by_ssrc.get(ssrc, 0) + 1
        if random.random() < self.sample:
            arrivals = self._arrivals
            if len(arrivals) > 4096:  # kept but never decrypted (a failed unprotect)
                arrivals.clear()
            arrivals[data[2:4] + ssrc], kernel = hooks.arrival_ns(self._transport)
            self.sampled += 1
            self.kernel_stamped += kernel
            return True
        return False

    def _decrypted(self, data: bytes, arrival_ms: int) -> None:
        arrived = self._arrivals.pop(data[2:4] + data[8:12], None)
        if arrived is None or len(data) < 20:
            return
        self.record((arrived - MARKER.unpack_from(data, len(data) - 8)[0]) / 1e9)
