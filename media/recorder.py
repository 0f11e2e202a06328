"""``Recorder``: a router's sink (``media.sinks.RtpSink``) that writes a call to a WebM file.

What it records (R20): one camera video, the screen share as a second video stream when
someone shares, and one audio stream.

- Camera: the ``preferred_user``'s camera (the call's owner, the teacher) when it sends;
  otherwise the active speaker's (``active_speaker``, asked every ``CHOOSE_INTERVAL_MS``);
  otherwise the first camera heard.
  A producer that has sent nothing for ``stale_ms`` (paused, gone) no longer counts. The
  recording switches to a better camera at that camera's next keyframe (asked for at once),
  so the video stays decodable without re-encoding. The screen: the same rule.
- Audio: every audio producer (``media.mixer.AudioTrack``: one voice kept as it is, several
  mixed and encoded again).
- Timeline: each producer's RTP timestamps (unwrapped, ``media.depacketize``) are anchored to
  the arrival time of its first frame, relative to the recording's start (the first packet
  heard), and re-anchored when they drift more than a second from the wall clock (a sender
  that jumps its timestamps cannot stretch the file).

Threads: ``on_rtp`` runs on the event loop and only parses and depacketizes (cheap, pure);
frames go through a bounded queue (``queue_frames``) to a worker thread that mixes audio and
appends to the spool (``media.spool``). A full queue drops the frame and counts it (a dropped
video frame makes that stream wait for a keyframe, asked for at once); nothing grows without
bound. ``close`` finishes the worker and muxes the spool into the WebM file in a thread.

Limits: ``max_bytes`` (spool size) and ``max_duration_ms``: at either the recorder stops
taking frames and calls ``on_limit`` ("size" or "duration") once, on the event loop. A
frame whose media time is past ``max_duration_ms`` is not written either (the first frames
may arrive late, leaving the media clock ahead of arrival), so the file is never longer.
Hostile packets (malformed RTP, nonsense payloads) are counted and dropped; ``on_rtp`` never
raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from media import rtp
from media.depacketize import OPUS_CLOCK, Depacketizer, Frame
from media.mixer import AudioTrack
from media.sinks import ProducerInfo
from media.spool import (
    AUDIO,
    CAMERA,
    SCREEN,
    VIDEO_RATE,
    RecordingResult,
    SpoolWriter,
    finalise,
    spool_path,
)

log = logging.getLogger(__name__)

OUTPUT_OF_KIND = {"video": CAMERA, "screen": SCREEN}
KEYFRAME_INTERVAL_MS = 1000  # at most one keyframe request per producer per second
CHOOSE_INTERVAL_MS = 250  # how often the camera / screen choice is looked at again
DRIFT_TICKS_S = 1  # re-anchor a producer whose timestamps drift this far from the clock
FLUSH_INTERVAL_S = 0.5  # the spool is flushed this often while frames come (what a crash loses)


@dataclass(slots=True)
class _Source:
    info: ProducerInfo
    depack: Depacketizer
    rate: int
    output: int  # CAMERA, SCREEN or AUDIO
    first_seen_ms: int
    last_seen_ms: int
    anchor: tuple[int, int] | None = None  # (unwrapped RTP timestamp, pts) of one frame
    keyframe_asked_ms: int | None = None


@dataclass(slots=True)
class _Choice:
    """Which producer feeds one video output now, and which one it waits to switch to."""

    current: str | None = None
    wanted: str | None = None
    chosen_ms: int | None = None
    need_keyframe: bool = False  # a frame of the current one was dropped


@dataclass(slots=True)
class RecorderStats:
    packets: int = 0
    malformed: int = 0  # not RTP
    unsupported: int = 0  # a codec the recorder does not take
    queue_dropped: int = 0  # frames dropped because the worker was behind
    keyframe_waits: int = 0  # video frames dropped waiting for a keyframe after such a drop
    beyond_limit: int = 0  # frames whose media time is past max_duration_ms: not written
    spool_full: bool = False  # set by the worker thread at max_bytes
    errors: int = 0  # packets (loop) or frames (worker) that hit an unexpected failure
    frames: dict[str, int] = field(default_factory=dict)  # frames queued, per output


Job = tuple[int, str, int, bool, bytes] | tuple[int, str] | None


class Recorder:
    def __init__(
        self,
        path: Path,
        *,
        preferred_user: str | None = None,
        max_bytes: int = 2 << 30,
        max_duration_ms: int = 4 * 3600 * 1000,
        queue_frames: int = 2000,
        stale_ms: int = 2000,
        request_keyframe: Callable[[str], None] | None = None,
        on_limit: Callable[[str], None] | None = None,
        active_speaker: Callable[[], str | None] | None = None,
    ):
        self.path = path
        self.spool_path = spool_path(path)
        self.preferred_user = preferred_user
        self.max_bytes = max_bytes
        self.max_duration_ms = max_duration_ms
        self.stale_ms = stale_ms
        self.request_keyframe = request_keyframe
        self.on_limit = on_limit
        self.active_speaker = active_speaker
        self.stats = RecorderStats()
        self.start_ms: int | None = None
        self.limit: str | None = None  # "size" or "duration" once one was reached
        self._sources: dict[str, _Source] = {}
        self._choices = {CAMERA: _Choice(), SCREEN: _Choice()}
        self._closing = False
        self._failed: BaseException | None = None
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_frames)
        self._spool = SpoolWriter(self.spool_path)
        self._worker = threading.Thread(
            target=self._work, name=f"recorder {path.name}", daemon=True
        )
        self._worker.start()

    # -- the sink (event loop) -----------------------------------------------------------

    def on_rtp(self, producer: ProducerInfo, packet: bytes, arrival_ms: int) -> None:
        if self._closing:
            return
        try:
            self._on_rtp(producer, packet, arrival_ms)
        except Exception:
            # A bug here must not cost the recording: the router drops a sink that raises.
            self.stats.errors += 1
            if self.stats.errors == 1:
                log.exception("the recorder failed on a packet; it drops such packets")

    def _on_rtp(self, producer: ProducerInfo, packet: bytes, arrival_ms: int) -> None:
        self.stats.packets += 1
        if self.start_ms is None:
            self.start_ms = arrival_ms
        if self._check_limits(arrival_ms):
            return
        try:
            view = rtp.parse(packet)
        except rtp.RtpError:
            self.stats.malformed += 1
            return
        if view.ssrc != producer.ssrc:
            return  # retransmissions (RTX) and the like: not this producer's media stream
        source = self._sources.get(producer.producer_id)
        if source is None:
            source = self._add_source(producer, arrival_ms)
            if source is None:
                return
        source.last_seen_ms = arrival_ms
        released = source.depack.push(view, packet, arrival_ms)
        if released.need_keyframe and source.output != AUDIO:
            self._ask_keyframe(source, arrival_ms)
        for frame in released.frames:
            self._take(source, frame, arrival_ms)

    def on_producer_closed(self, producer_id: str) -> None:
        source = self._sources.pop(producer_id, None)
        if source is None:
            return
        if source.output == AUDIO:
            self._put((AUDIO, producer_id))
            return
        choice = self._choices[source.output]
        if choice.current == producer_id:
            choice.current = None
        if choice.wanted == producer_id:
            choice.wanted = None
        choice.chosen_ms = None  # look again at the next frame

    # -- closing -----------------------------------------------------------------------------

    async def close(self) -> RecordingResult:
        """Stops taking packets, writes what is buffered and muxes the WebM file (in worker
        threads). ``RecordingResult.streams`` is empty when nothing was recorded."""
        if not self._closing:
            self._closing = True
            for source in list(self._sources.values()):
                for frame in source.depack.flush().frames:
                    self._take(source, frame, frame.arrival_ms)
        await asyncio.to_thread(self._queue.put, None)
        await asyncio.to_thread(self._worker.join)
        if self._failed is not None:
            log.error("the recorder's worker failed", exc_info=self._failed)
        result = await asyncio.to_thread(finalise, self.spool_path, self.path)
        with contextlib.suppress(FileNotFoundError):
            self.spool_path.unlink()
        return result

    async def suspend(self) -> None:
        """Stops taking packets and lets the worker write out what it holds, leaving the spool
        on disk for ``recover`` (the daemon is shutting down)."""
        self._closing = True
        await asyncio.to_thread(self._queue.put, None)
        await asyncio.to_thread(self._worker.join)

    # -- inside ------------------------------------------------------------------------------

    def _check_limits(self, now_ms: int) -> bool:
        if self.limit is not None:
            return True
        assert self.start_ms is not None
        if self.stats.spool_full:
            self.limit = "size"
        elif now_ms - self.start_ms >= self.max_duration_ms:
            self.limit = "duration"
        else:
            return False
        if self.on_limit is not None:
            try:
                self.on_limit(self.limit)
            except Exception:
                log.exception("the recording's limit callback failed")
        return True

    def _add_source(self, producer: ProducerInfo, now_ms: int) -> _Source | None:
        mime = producer.mime_type.lower()
        if producer.kind == "audio" and mime == "audio/opus":
            codec, output, rate = "opus", AUDIO, OPUS_CLOCK
        elif producer.kind in OUTPUT_OF_KIND and mime == "video/vp8":
            codec, output, rate = "vp8", OUTPUT_OF_KIND[producer.kind], VIDEO_RATE
        else:
            self.stats.unsupported += 1
            return None
        depack = Depacketizer(codec, payload_type=producer.payload_type)
        source = _Source(producer, depack, rate, output, now_ms, now_ms)
        self._sources[producer.producer_id] = source
        if output != AUDIO:
            self._choices[output].chosen_ms = None
        return source

    def _pts(self, source: _Source, frame: Frame) -> int:
        assert self.start_ms is not None
        wall = max(0, frame.arrival_ms - self.start_ms) * source.rate // 1000
        if source.anchor is not None:
            ts, pts = source.anchor
            mapped = pts + frame.timestamp - ts
            if abs(mapped - wall) <= DRIFT_TICKS_S * source.rate and mapped >= 0:
                return mapped
        source.anchor = (frame.timestamp, wall)
        return wall

    def _take(self, source: _Source, frame: Frame, now_ms: int) -> None:
        pid = source.info.producer_id
        pts = self._pts(source, frame)
        if pts * 1000 >= self.max_duration_ms * source.rate:
            # Past the limit in media time: frames that came late in a burst leave the media
            # clock ahead of arrival, and the file must never run longer than the limit.
            self.stats.beyond_limit += 1
            return
        if source.output == AUDIO:
            self._put((AUDIO, pid, pts, True, frame.data))
            return
        choice = self._choices[source.output]
        self._choose(source.output, choice, now_ms)
        if pid == choice.wanted and frame.keyframe:
            choice.current, choice.wanted, choice.need_keyframe = pid, None, False
        if pid != choice.current:
            return
        if choice.need_keyframe:
            if not frame.keyframe:
                self.stats.keyframe_waits += 1
                self._ask_keyframe(source, now_ms)
                return
            choice.need_keyframe = False
        if not self._put((source.output, pid, pts, frame.keyframe, frame.data)):
            choice.need_keyframe = True
            self._ask_keyframe(source, now_ms)

    def _choose(self, output: int, choice: _Choice, now_ms: int) -> None:
        if choice.chosen_ms is not None and now_ms - choice.chosen_ms < CHOOSE_INTERVAL_MS:
            return
        choice.chosen_ms = now_ms
        live = [
            s
            for s in self._sources.values()
            if s.output == output and now_ms - s.last_seen_ms <= self.stale_ms
        ]
        if not live:
            return
        speaker = None
        if self.active_speaker is not None:
            try:
                speaker = self.active_speaker()
            except Exception:
                log.exception("asking for the active speaker failed")

        def rank(s: _Source) -> tuple[bool, bool, int]:
            user = s.info.user_id
            return (user != self.preferred_user, user != speaker, s.first_seen_ms)

        best = min(live, key=rank)
        current = self._sources.get(choice.current) if choice.current else None
        if current is not None and now_ms - current.last_seen_ms > self.stale_ms:
            choice.current, current = None, None
        if best.info.producer_id == choice.current:
            choice.wanted = None
            return
        if choice.wanted != best.info.producer_id:
            choice.wanted = best.info.producer_id
            self._ask_keyframe(best, now_ms)

    def _ask_keyframe(self, source: _Source, now_ms: int) -> None:
        asked = source.keyframe_asked_ms
        if asked is not None and now_ms - asked < KEYFRAME_INTERVAL_MS:
            return
        source.keyframe_asked_ms = now_ms
        if self.request_keyframe is not None:
            try:
                self.request_keyframe(source.info.producer_id)
            except Exception:
                log.exception("asking for a keyframe failed")

    def _put(self, job: Job) -> bool:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.queue_dropped += 1
            return False
        if job is not None and len(job) == 5:
            name = ("camera", "screen", "audio")[job[0]]
            self.stats.frames[name] = self.stats.frames.get(name, 0) + 1
        return True

    # -- the worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        audio = AudioTrack()
        spool = self._spool
        flushed = time.monotonic()
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    break
                if self.stats.spool_full:
                    continue  # drained, not written
                if len(job) == 2:
                    audio.remove(job[1])
                    continue
                output, pid, pts, keyframe, data = job
                if output != AUDIO:
                    spool.append(output, pts, keyframe, data)
                else:
                    try:
                        mixed = audio.add(pid, pts, data)
                    except Exception:  # PyAV: one bad packet must not end the recording
                        self.stats.errors += 1
                        log.exception("mixing a packet of the recording failed")
                        mixed = []
                    for at, packet in mixed:
                        spool.append(AUDIO, at, True, packet)
                if spool.size >= self.max_bytes:
                    self.stats.spool_full = True
                if time.monotonic() - flushed > FLUSH_INTERVAL_S:
                    spool.flush()
                    flushed = time.monotonic()
            for at, packet in audio.finish():
                spool.append(AUDIO, at, True, packet)
        except BaseException as exc:  # recorded and reported by close()
            self._failed = exc
        finally:
            spool.close()


def recover(path: Path) -> RecordingResult:
    """A recording cut short (a crash, a restart): the WebM file from what its spool holds.
    Blocking: run it in a worker thread."""
    spool = spool_path(path)
    result = finalise(spool, path)
    with contextlib.suppress(FileNotFoundError):
        spool.unlink()
    return result
