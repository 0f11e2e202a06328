"""A recording on disk while it runs (the spool), and the WebM file made from it.

While a call is recorded its frames are appended to a spool file: a magic line, then one
record per frame (``!BBqI`` header: stream, flags, pts, length; then the frame's bytes).
Appending is cheap and a crash loses at most the record being written: ``read`` stops at the
first truncated or impossible record, so a spool left by a crash or a restart is finalised
from everything before it.

``finalise`` muxes a spool into WebM with PyAV: VP8 frames and Opus packets are copied as
``av.Packet``s, never decoded or encoded. Streams: ``CAMERA`` (VP8), ``SCREEN`` (VP8, only
when someone shared a screen) and ``AUDIO`` (Opus, 48 kHz). Video timestamps are 90 kHz
ticks and audio ones 48 kHz samples from the start of the recording; the WebM file keeps
milliseconds, and each stream's timestamps are made strictly increasing there.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from media.depacketize import vp8_size

log = logging.getLogger(__name__)

MAGIC = b"SFUREC1\n"
RECORD = struct.Struct("!BBqI")
CAMERA, SCREEN, AUDIO = 0, 1, 2
STREAMS = (CAMERA, SCREEN, AUDIO)
KEYFRAME = 0x01
VIDEO_RATE = 90_000
AUDIO_RATE = 48_000
MAX_RECORD = 16 << 20  # a record longer than this is damage, not a frame
MS = Fraction(1, 1000)


@dataclass(frozen=True, slots=True)
class Record:
    stream: int
    keyframe: bool
    pts: int  # 90 kHz for video, 48 kHz for audio
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordingResult:
    path: Path
    duration_ms: int
    size: int
    streams: tuple[str, ...]  # "camera", "screen", "audio": what the file holds
    packets: dict[str, int]  # per stream


class SpoolWriter:
    """Appends records; not thread-safe (the recorder's worker thread owns it)."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._fh.write(MAGIC)
        self.size = len(MAGIC)

    def append(self, stream: int, pts: int, keyframe: bool, data: bytes) -> None:
        self._fh.write(RECORD.pack(stream, KEYFRAME if keyframe else 0, pts, len(data)))
        self._fh.write(data)
        self.size += RECORD.size + len(data)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def read(path: Path) -> Iterator[Record]:
    """The records of a spool, up to the first damaged one."""
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            return
        while True:
            head = fh.read(RECORD.size)
            if len(head) < RECORD.size:
                return
            stream, flags, pts, length = RECORD.unpack(head)
            if stream not in STREAMS or length > MAX_RECORD or pts < 0:
                log.warning("spool %s is damaged after this point; the rest is dropped", path)
                return
            data = fh.read(length)
            if len(data) < length:
                return
            yield Record(stream, bool(flags & KEYFRAME), pts, data)


def _rate(stream: int) -> int:
    return AUDIO_RATE if stream == AUDIO else VIDEO_RATE


def finalise(spool: Path, out: Path) -> RecordingResult:
    """Muxes the spool into a WebM file at ``out`` (written beside it, then renamed). Blocking
    and I/O-heavy: run it in a worker thread. A spool with no frame gives a file with no
    streams: ``RecordingResult.streams`` is empty and the caller should not post it."""
    sizes: dict[int, tuple[int, int]] = {}
    counts = dict.fromkeys(STREAMS, 0)
    for record in read(spool):
        if not record.data:
            continue  # an empty packet would tell the muxer to flush: never a frame
        if record.stream != AUDIO and record.stream not in sizes:
            size = vp8_size(record.data) if record.keyframe else None
            if size is None:
                continue  # a video stream starts at its first keyframe
            sizes[record.stream] = size
        counts[record.stream] += 1
    present = [s for s in STREAMS if counts[s] and (s == AUDIO or s in sizes)]
    names = {CAMERA: "camera", SCREEN: "screen", AUDIO: "audio"}
    if not present:
        return RecordingResult(out, 0, 0, (), {})
    import av  # PyAV (FFmpeg): imported when a recording is written, not at start-up

    part = out.with_name(out.name + ".part")
    written = dict.fromkeys(STREAMS, 0)
    end_ms = 0
    container = av.open(str(part), "w", format="webm")
    try:
        streams: dict[int, av.stream.Stream] = {}
        for s in present:
            if s == AUDIO:
                audio = container.add_stream("libopus", rate=AUDIO_RATE)
                audio.layout = "stereo"
                streams[s] = audio
            else:
                video = container.add_stream("libvpx", rate=30)
                video.width, video.height = sizes[s]
                video.pix_fmt = "yuv420p"
                streams[s] = video
        last: dict[int, int] = {}
        started: set[int] = set()
        for record in read(spool):
            stream = streams.get(record.stream)
            if stream is None or not record.data:
                continue
            if record.stream not in started:
                if record.stream != AUDIO and not record.keyframe:
                    continue
                started.add(record.stream)
            ms = record.pts * 1000 // _rate(record.stream)
            if ms <= last.get(record.stream, -1):
                ms = last[record.stream] + 1
            last[record.stream] = ms
            packet = av.Packet(record.data)
            packet.pts = packet.dts = ms
            packet.time_base = MS
            packet.stream = stream
            packet.is_keyframe = record.keyframe
            container.mux(packet)
            written[record.stream] += 1
            end_ms = max(end_ms, ms)
    finally:
        container.close()
    os.replace(part, out)
    return RecordingResult(
        out,
        end_ms,
        out.stat().st_size,
        tuple(names[s] for s in present),
        {names[s]: written[s] for s in present},
    )


def spool_path(path: Path) -> Path:
    """Where the recording of ``path`` is spooled while it runs."""
    return path.with_name(path.name + ".spool")
