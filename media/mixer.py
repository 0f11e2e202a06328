"""The audio of a recording: one Opus stream, whoever speaks.

``AudioTrack`` is fed each audio producer's Opus packets with their position on the
recording's timeline (48 kHz samples). While only one producer has been heard its packets
are kept as they are (no decoding, no loss of quality). From the moment a second producer is
heard, every producer is decoded, the voices are summed on the timeline and the sum is
encoded again as Opus (48 kHz stereo, 20 ms frames): ``AudioMixer``. The mix waits
``latency`` samples for late packets of the slower voices; a packet that comes later than
that, or absurdly far ahead (``max_ahead``), is dropped and counted.

CPU-heavy (PyAV decode/encode): the recorder runs this in its worker thread, never on the
event loop. Malformed Opus is counted and skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from media.depacketize import opus_samples

log = logging.getLogger(__name__)

RATE = 48_000
CHANNELS = 2
FRAME = 960  # 20 ms, the encoder's frame
TIME_BASE = Fraction(1, RATE)

Packet = tuple[int, bytes]  # (pts in 48 kHz samples, one Opus packet)
Samples = npt.NDArray[np.float32]


@dataclass(slots=True)
class MixStats:
    late: int = 0  # packets (or their parts) that came after the mix had passed them
    ahead: int = 0  # packets too far in the future
    malformed: int = 0  # packets the decoder refused


class AudioMixer:
    """Decodes several voices, sums them on the timeline, encodes the sum."""

    def __init__(
        self,
        start: int,
        *,
        latency: int = RATE * 3 // 10,
        max_ahead: int = RATE * 5,
        bit_rate: int = 64_000,
    ):
        self.pos = start  # the next sample to encode
        self.latency = latency
        self.max_ahead = max_ahead
        self.stats = MixStats()
        self._mix: Samples = np.zeros((0, CHANNELS), dtype=np.float32)
        self._decoders: dict[str, av.AudioCodecContext] = {}
        self._resampler = av.AudioResampler(format="flt", layout="stereo", rate=RATE)
        self._newest = start  # the end of the latest voice heard
        encoder = av.CodecContext.create("libopus", "w")
        assert isinstance(encoder, av.AudioCodecContext)
        encoder.sample_rate = RATE
        encoder.layout = "stereo"
        encoder.format = "flt"
        encoder.time_base = TIME_BASE
        encoder.bit_rate = bit_rate
        self._encoder = encoder
        self._pending: list[int] = []  # pts of the frames given to the encoder, in order

    def add(self, source: str, pts: int, packet: bytes) -> None:
        if pts > self.pos + self.max_ahead:
            self.stats.ahead += 1
            return
        samples = self._decode(source, packet)
        if samples is None or not len(samples):
            return
        end = pts + len(samples)
        if end <= self.pos:
            self.stats.late += 1
            return
        if pts < self.pos:  # the part the mix already passed is gone
            self.stats.late += 1
            samples = samples[self.pos - pts :]
            pts = self.pos
        offset = pts - self.pos
        if end - self.pos > len(self._mix):
            grown = np.zeros((end - self.pos, CHANNELS), dtype=np.float32)
            grown[: len(self._mix)] = self._mix
            self._mix = grown
        self._mix[offset : offset + len(samples)] += samples
        self._newest = max(self._newest, end)

    def remove(self, source: str) -> None:
        self._decoders.pop(source, None)

    def pull(self, *, final: bool = False) -> list[Packet]:
        """Encoded packets of the mix up to ``latency`` behind the newest voice (all of it
        when ``final``)."""
        horizon = self._newest if final else self._newest - self.latency
        out: list[Packet] = []
        while self.pos + FRAME <= horizon or (final and self.pos < horizon):
            chunk = self._mix[:FRAME]
            self._mix = self._mix[FRAME:]
            frame_samples = np.zeros((FRAME, CHANNELS), dtype=np.float32)
            frame_samples[: len(chunk)] = chunk
            np.clip(frame_samples, -1.0, 1.0, out=frame_samples)
            frame = av.AudioFrame.from_ndarray(
                frame_samples.reshape(1, -1), format="flt", layout="stereo"
            )
            frame.sample_rate = RATE
            frame.pts = self.pos
            frame.time_base = TIME_BASE
            self._pending.append(self.pos)
            self.pos += FRAME
            out += self._encode(frame)
        if final:
            out += self._encode(None)
        return out

    def _encode(self, frame: av.AudioFrame | None) -> list[Packet]:
        out: list[Packet] = []
        for packet in self._encoder.encode(frame):
            if not self._pending:
                break  # the encoder's flush beyond the last frame: nothing of ours
            out.append((self._pending.pop(0), bytes(packet)))
        return out

    def _decode(self, source: str, packet: bytes) -> Samples | None:
        decoder = self._decoders.get(source)
        if decoder is None:
            made = av.CodecContext.create("opus", "r")
            assert isinstance(made, av.AudioCodecContext)
            made.sample_rate = RATE
            decoder = self._decoders[source] = made
        parts: list[Samples] = []
        try:
            for decoded in decoder.decode(av.Packet(packet)):
                for frame in self._resampler.resample(decoded):
                    samples = np.asarray(frame.to_ndarray(), dtype=np.float32)
                    parts.append(samples.reshape(-1, CHANNELS))
        except (av.FFmpegError, ValueError):
            self.stats.malformed += 1
            return None
        if not parts:
            return None
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


@dataclass(slots=True)
class AudioTrack:
    """One speaker: their packets as they are; from the second one on: the mix."""

    sources: set[str] = field(default_factory=set)
    mixer: AudioMixer | None = None
    _end: int = 0  # where the packets given so far end
    _first: str | None = None

    def add(self, source: str, pts: int, packet: bytes) -> list[Packet]:
        if self.mixer is None:
            if self._first is None:
                self._first = source
            if source == self._first:
                samples = opus_samples(packet)
                if samples == 0 or pts < self._end:
                    return []
                self._end = pts + samples
                return [(pts, packet)]
            # A second voice: the mix starts where the single voice's packets ended.
            self.mixer = AudioMixer(self._end)
        self.mixer.add(source, pts, packet)
        return self.mixer.pull()

    def remove(self, source: str) -> None:
        if self.mixer is not None:
            self.mixer.remove(source)

    def finish(self) -> list[Packet]:
        return [] if self.mixer is None else self.mixer.pull(final=True)
