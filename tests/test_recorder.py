"""media/recorder.py (+ depacketize, mixer, spool): RTP from real encoders (aiortc's VP8 and
Opus encoders and packetizers) into a WebM file that PyAV decodes; the video is copied, never
encoded again. Losses, reordering, timestamp and sequence wrap, several speakers, a screen
share, limits, a spool cut short, and hostile packets."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media import rtp, vp8
from media.depacketize import Depacketizer, opus_samples, vp8_size
from media.recorder import Recorder, recover, spool_path
from media.sinks import ProducerInfo
from media.spool import RecordingResult

FPS = 30
VIDEO_PT, AUDIO_PT = 96, 111


def video_info(user: str, kind: str = "video", ssrc: int = 1000) -> ProducerInfo:
    return ProducerInfo(f"P-{user}-{kind}", user, kind, "video/VP8", 90_000, VIDEO_PT, ssrc)


def audio_info(user: str, ssrc: int = 2000) -> ProducerInfo:
    return ProducerInfo(f"P-{user}-audio", user, "audio", "audio/opus", 48_000, AUDIO_PT, ssrc)


@dataclass
class Camera:
    """A publisher's camera: aiortc's VP8 encoder and packetizer, RTP headers around it."""

    info: ProducerInfo
    width: int = 320
    height: int = 240
    seq: int = 0
    ts0: int = 0
    shade: int = 0
    encoder: Vp8Encoder = field(default_factory=Vp8Encoder)
    frames: list[bytes] = field(default_factory=list)  # each encoded frame, as encoded
    keyframe_asked: bool = False
    texture: np.ndarray | None = None

    def frame(self, i: int) -> list[bytes]:
        """Frame ``i`` as RTP packets."""
        if self.texture is None:
            rng = np.random.default_rng(self.shade)
            self.texture = rng.integers(0, 256, (self.height, self.width), dtype=np.uint8)
        y = np.roll(self.texture, i * 4, axis=1)  # a picture that moves
        yuv = np.concatenate(
            [y, np.full((self.height // 2, self.width), 128, dtype=np.uint8)]
        ).reshape(self.height * 3 // 2, self.width)
        image = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        image.pts, image.time_base = i, Fraction(1, FPS)
        payloads, ts = self.encoder.encode(image, force_keyframe=self.keyframe_asked)
        self.keyframe_asked = False
        data = b""
        packets = []
        for n, payload in enumerate(payloads):
            described = vp8.parse_descriptor(payload)
            assert described is not None
            data += payload[described.header_offset :]
            packets.append(
                rtp.serialize(
                    payload_type=VIDEO_PT,
                    sequence=self.seq,
                    timestamp=(self.ts0 + ts) % 2**32,
                    ssrc=self.info.ssrc,
                    payload=payload,
                    marker=n == len(payloads) - 1,
                )
            )
            self.seq = (self.seq + 1) % 2**16
        self.frames.append(data)
        return packets


@dataclass
class Microphone:
    info: ProducerInfo
    pitch: float = 0.05
    seq: int = 0
    ts0: int = 0
    encoder: OpusEncoder = field(default_factory=OpusEncoder)

    def frame(self, i: int) -> list[bytes]:
        """20 ms of a tone as RTP (aiortc's Opus encoder: one packet per frame)."""
        t = np.arange(i * 960, (i + 1) * 960)
        pcm = (np.sin(t * self.pitch) * 8000).astype(np.int16).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        sound.sample_rate, sound.pts, sound.time_base = 48_000, i * 960, Fraction(1, 48_000)
        payloads, ts = self.encoder.encode(sound)
        out = []
        for payload in payloads:
            out.append(
                rtp.serialize(
                    payload_type=AUDIO_PT,
                    sequence=self.seq,
                    timestamp=(self.ts0 + ts) % 2**32,
                    ssrc=self.info.ssrc,
                    payload=payload,
                    marker=False,
                )
            )
            self.seq = (self.seq + 1) % 2**16
        return out


@dataclass
class Decoded:
    duration_s: float
    video: dict[int, list[bytes]]  # stream index -> packets as stored
    sizes: dict[int, tuple[int, int]]
    decoded_frames: dict[int, int]
    audio_s: float
    codecs: list[str]


def decode(path: Path) -> Decoded:
    """What PyAV makes of the file: every packet decoded (a decoding error fails the test)."""
    with av.open(str(path)) as c:
        assert c.duration is not None
        duration = c.duration / 1_000_000
        codecs = [s.codec_context.name for s in c.streams]
        video: dict[int, list[bytes]] = {}
        sizes: dict[int, tuple[int, int]] = {}
        decoded: dict[int, int] = {}
        audio_samples = 0
        for packet in c.demux():
            if packet.size == 0:
                continue
            index = packet.stream.index
            if packet.stream.type == "video":
                video.setdefault(index, []).append(bytes(packet))
                for frame in packet.decode():
                    assert isinstance(frame, av.VideoFrame)
                    decoded[index] = decoded.get(index, 0) + 1
                    sizes[index] = (frame.width, frame.height)
            else:
                for frame in packet.decode():
                    assert isinstance(frame, av.AudioFrame)
                    audio_samples += frame.samples
    return Decoded(duration, video, sizes, decoded, audio_samples / 48_000, codecs)


Feed = list[tuple[ProducerInfo, bytes, int]]


def run(recorder: Recorder, feed: Feed) -> RecordingResult:
    for info, packet, at in feed:
        recorder.on_rtp(info, packet, at)
    return asyncio.run(recorder.close())


def interleave(*tracks: Feed) -> Feed:
    return sorted((item for track in tracks for item in track), key=lambda x: x[2])


def camera_feed(camera: Camera, frames: int, start_ms: int = 1_000_000) -> Feed:
    return [
        (camera.info, packet, start_ms + i * 1000 // FPS)
        for i in range(frames)
        for packet in camera.frame(i)
    ]


def mic_feed(mic: Microphone, frames: int, start_ms: int = 1_000_000) -> Feed:
    return [(mic.info, p, start_ms + i * 20) for i in range(frames) for p in mic.frame(i)]


def within(value: float, expected: float) -> bool:
    return abs(value - expected) <= 0.1 * expected


# -- the whole path ---------------------------------------------------------------------------


def test_camera_and_voice_are_copied_into_webm(tmp_path: Path) -> None:
    camera = Camera(video_info("@teacher"), 640, 480)
    camera.encoder.target_bitrate = 1_500_000  # frames of several packets
    mic = Microphone(audio_info("@teacher"))
    feed = interleave(camera_feed(camera, 90), mic_feed(mic, 150))
    assert sum(1 for info, _, _ in feed if info.kind == "video") > 90
    result = run(Recorder(tmp_path / "r.webm", preferred_user="@teacher"), feed)
    assert result.streams == ("camera", "audio")
    assert result.size == (tmp_path / "r.webm").stat().st_size
    assert not spool_path(tmp_path / "r.webm").exists()
    got = decode(tmp_path / "r.webm")
    assert within(got.duration_s, 3.0), got.duration_s
    assert within(result.duration_ms / 1000, 3.0)
    assert within(got.audio_s, 3.0), got.audio_s
    assert got.codecs == ["vp8", "opus"]
    # Not encoded again: the very frames the camera's encoder made, in order, all decoded.
    assert got.video[0] == camera.frames
    assert got.decoded_frames[0] == 90
    assert got.sizes[0] == (640, 480)


def test_a_lost_packet_drops_frames_until_the_keyframe_it_asks_for(tmp_path: Path) -> None:
    camera = Camera(video_info("@teacher"), 640, 480)
    camera.encoder.target_bitrate = 1_500_000
    asked: list[str] = []

    def keyframe(producer_id: str) -> None:
        asked.append(producer_id)
        camera.keyframe_asked = True

    recorder = Recorder(tmp_path / "r.webm", request_keyframe=keyframe)
    rng = random.Random(7)
    lost_at = 30
    for i in range(90):
        packets = camera.frame(i)
        if i == lost_at:
            del packets[0]  # a frame's first packet never arrives
        if i % 3 == 0 and i > 0:
            rng.shuffle(packets)  # reordered inside the reorder window
        for packet in packets:
            recorder.on_rtp(camera.info, packet, 1_000_000 + i * 33)
    result = asyncio.run(recorder.close())
    got = decode(result.path)
    assert asked and set(asked) == {camera.info.producer_id}
    # Frame 30 is gone and so are the delta frames after it, up to the keyframe asked for
    # once the reorder buffer gave the packet up (150 ms, about 5 frames, later); everything
    # else was copied.
    kept = got.video[0]
    assert kept[:lost_at] == camera.frames[:lost_at]
    resumed = camera.frames.index(kept[lost_at])
    assert lost_at < resumed <= lost_at + 8
    assert vp8_size(kept[lost_at]) == (640, 480)  # a keyframe
    assert kept[lost_at:] == camera.frames[resumed:]
    assert got.decoded_frames[0] == len(kept)
    assert within(got.duration_s, 3.0)


def test_sequence_and_timestamp_wrap_keep_time_running(tmp_path: Path) -> None:
    camera = Camera(video_info("@t"), seq=65_500, ts0=2**32 - 45_000)  # wraps after 0.5 s
    mic = Microphone(audio_info("@t"), seq=65_530, ts0=2**32 - 24_000)
    feed = interleave(camera_feed(camera, 60), mic_feed(mic, 100))
    result = run(Recorder(tmp_path / "r.webm"), feed)
    got = decode(result.path)
    assert got.video[0] == camera.frames
    assert within(got.duration_s, 2.0), got.duration_s
    assert within(got.audio_s, 2.0), got.audio_s


def test_several_speakers_are_mixed_and_the_video_still_copied(tmp_path: Path) -> None:
    camera = Camera(video_info("@t"))
    a = Microphone(audio_info("@t", ssrc=1), pitch=0.05)
    b = Microphone(audio_info("@pupil", ssrc=2), pitch=0.11)
    feed = interleave(
        camera_feed(camera, 60), mic_feed(a, 100), mic_feed(b, 50, start_ms=1_000_500)
    )
    result = run(Recorder(tmp_path / "r.webm"), feed)
    got = decode(result.path)
    assert got.video[0] == camera.frames
    assert within(got.audio_s, 2.0), got.audio_s
    assert within(got.duration_s, 2.0)
    # Both voices are in the mix while both speak: the tones of 382 Hz and 840 Hz.
    pcm = audio_pcm(result.path)
    both = pcm[int(0.7 * 48_000) : int(1.4 * 48_000)]
    spectrum = np.abs(np.fft.rfft(both))
    hz = np.fft.rfftfreq(len(both), 1 / 48_000)
    loudest = sorted(hz[np.argsort(spectrum)[-2:]])
    assert abs(loudest[0] - 0.05 * 48_000 / (2 * np.pi)) < 10, loudest
    assert abs(loudest[1] - 0.11 * 48_000 / (2 * np.pi)) < 10, loudest
    alone = pcm[int(0.1 * 48_000) : int(0.4 * 48_000)]  # before the pupil speaks
    spectrum = np.abs(np.fft.rfft(alone))
    assert abs(np.fft.rfftfreq(len(alone), 1 / 48_000)[np.argmax(spectrum)] - 382) < 10


def audio_pcm(path: Path) -> npt.NDArray[np.float32]:
    """The audio of a file as mono float samples at 48 kHz, from its start."""
    out = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            for mono in resampler.resample(frame):
                out.append(mono.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.float32)


def test_the_camera_follows_the_active_speaker_and_leaves_a_stale_one(tmp_path: Path) -> None:
    """No preferred user: the active speaker's camera; when it stops sending (paused), the
    other one, each time from a keyframe asked for."""
    first = Camera(video_info("@first", ssrc=20), 160, 120)
    second = Camera(video_info("@second", ssrc=21), 320, 240)
    cameras = {c.info.producer_id: c for c in (first, second)}
    speaker = {"now": "@second"}

    def keyframe(producer_id: str) -> None:
        cameras[producer_id].keyframe_asked = True

    recorder = Recorder(
        tmp_path / "r.webm",
        request_keyframe=keyframe,
        active_speaker=lambda: speaker["now"],
        stale_ms=500,
    )
    # Both send for a second: the speaker's (second) camera is recorded. Then the second
    # one stops (paused): after stale_ms the first one takes over.
    for i in range(60):
        at = 1_000_000 + i * 1000 // FPS
        for camera in (second, first) if i < 30 else (first,):
            for packet in camera.frame(i):
                recorder.on_rtp(camera.info, packet, at)
    result = asyncio.run(recorder.close())
    got = decode(result.path)
    kept = got.video[0]
    assert kept[0] == second.frames[0] and kept[: len(second.frames)] == second.frames
    rest = kept[len(second.frames) :]
    assert rest and rest == first.frames[first.frames.index(rest[0]) :]
    assert vp8_size(rest[0]) == (160, 120)  # a keyframe
    assert got.sizes[0] == (160, 120) and got.decoded_frames[0] == len(kept)


def test_the_screen_is_a_second_stream_and_the_owner_camera_wins(tmp_path: Path) -> None:
    pupil = Camera(video_info("@pupil", ssrc=10), shade=90)
    teacher = Camera(video_info("@teacher", ssrc=11), 352, 288)
    screen = Camera(video_info("@pupil", "screen", ssrc=12), 640, 360, shade=40)
    asked: list[str] = []
    cameras = {c.info.producer_id: c for c in (pupil, teacher, screen)}

    def keyframe(producer_id: str) -> None:
        asked.append(producer_id)
        cameras[producer_id].keyframe_asked = True

    recorder = Recorder(tmp_path / "r.webm", preferred_user="@teacher", request_keyframe=keyframe)
    # The pupil's camera first; the teacher's arrives a second later and takes over at its
    # first keyframe; the screen runs all along.
    feed = interleave(
        camera_feed(pupil, 90),
        camera_feed(screen, 90),
    )
    late = [
        (teacher.info, p, 1_000_000 + i * 1000 // FPS)
        for i in range(30, 90)
        for p in teacher.frame(i - 30)
    ]
    result = run(recorder, interleave(feed, late))
    got = decode(result.path)
    assert result.streams == ("camera", "screen")
    camera_packets, screen_packets = got.video[0], got.video[1]
    assert screen_packets == screen.frames
    assert got.sizes == {0: (352, 288), 1: (640, 360)}  # the camera ends on the teacher
    switch = camera_packets.index(teacher.frames[0])
    assert camera_packets[:switch] == pupil.frames[:switch]
    assert camera_packets[switch:] == teacher.frames
    assert within(got.duration_s, 3.0)


def test_limits_stop_the_recording_once(tmp_path: Path) -> None:
    hit: list[str] = []
    camera = Camera(video_info("@t"))
    recorder = Recorder(tmp_path / "d.webm", max_duration_ms=1000, on_limit=hit.append)
    result = run(recorder, camera_feed(camera, 60))
    assert hit == ["duration"]
    got = decode(result.path)
    assert got.video[0] == camera.frames[:30]
    assert within(got.duration_s, 1.0)

    hit.clear()
    camera = Camera(video_info("@t"))
    recorder = Recorder(tmp_path / "s.webm", max_bytes=20_000, on_limit=hit.append)
    feed = camera_feed(camera, 90)
    for info, packet, at in feed[:-1]:
        recorder.on_rtp(info, packet, at)
    # The worker thread finds the spool full; the next packet on the loop reports it.
    deadline = time.monotonic() + 10
    while not recorder.stats.spool_full:
        assert time.monotonic() < deadline, "the size limit was never reached"
        time.sleep(0.01)
    recorder.on_rtp(*feed[-1])
    recorder.on_rtp(*feed[-1])
    result = asyncio.run(recorder.close())
    assert hit == ["size"]
    assert 20_000 <= result.size < 20_000 + 60_000  # at most the frame over the limit
    kept = decode(result.path).video[0]
    assert 0 < len(kept) < 90 and kept == camera.frames[: len(kept)]


def test_the_duration_limit_holds_in_media_time(tmp_path: Path) -> None:
    """The limit counts from the first packet's arrival; when the first frames come late in
    a burst (a stall on a busy machine), the media clock runs ahead of arrival. Frames past
    the limit in media time are not written: the file is never longer than the limit."""
    camera = Camera(video_info("@t"))
    start = 1_000_000
    stalled = [
        (camera.info, packet, start + max(i * 1000 // FPS, 300))
        for i in range(60)
        for packet in camera.frame(i)
    ]
    result = run(Recorder(tmp_path / "d.webm", max_duration_ms=1000), stalled)
    assert 900 <= result.duration_ms <= 1000 + 1000 // FPS
    assert decode(result.path).duration_s <= 1.0 + 1 / FPS


def test_a_full_queue_drops_frames_and_the_video_waits_for_a_keyframe(tmp_path: Path) -> None:
    """The worker thread is held up: frames beyond ``queue_frames`` are dropped and counted
    (nothing grows), the video asks for a keyframe and resumes at it, so every frame written
    still decodes."""
    camera = Camera(video_info("@t"))
    asked: list[str] = []

    def keyframe(producer_id: str) -> None:
        asked.append(producer_id)
        camera.keyframe_asked = True

    recorder = Recorder(tmp_path / "r.webm", queue_frames=4, request_keyframe=keyframe)
    gate = threading.Event()
    write = recorder._spool.append

    def held(*args: Any) -> None:
        assert gate.wait(30)
        write(*args)

    recorder._spool.append = held  # type: ignore[method-assign]
    for info, packet, at in camera_feed(camera, 30):
        recorder.on_rtp(info, packet, at)
    stats = recorder.stats
    assert stats.queue_dropped >= 1 and asked == [camera.info.producer_id]
    assert stats.queue_dropped + stats.keyframe_waits >= 30 - 4 - 1
    gate.set()
    for i in range(30, 60):
        for packet in camera.frame(i):
            recorder.on_rtp(camera.info, packet, 1_000_000 + i * 1000 // FPS)
    result = asyncio.run(recorder.close())
    got = decode(result.path)
    kept = got.video[0]
    assert recorder.stats.frames["camera"] == len(kept)
    assert len(kept) + recorder.stats.queue_dropped + recorder.stats.keyframe_waits == 60
    assert got.decoded_frames[0] == len(kept)
    # In order, and after every gap (a drop, then frames waiting) a keyframe.
    where = [camera.frames.index(frame) for frame in kept]
    assert where == sorted(where) and where[0] == 0
    gaps = [n for a, n in itertools.pairwise(where) if n != a + 1]
    assert gaps and all(vp8_size(camera.frames[n]) is not None for n in gaps)


def test_a_spool_cut_short_is_finalised_from_what_was_written(tmp_path: Path) -> None:
    camera = Camera(video_info("@t"))
    mic = Microphone(audio_info("@t"))
    path = tmp_path / "r.webm"
    recorder = Recorder(path)
    for info, packet, at in interleave(camera_feed(camera, 60), mic_feed(mic, 100)):
        recorder.on_rtp(info, packet, at)
    # The worker writes the spool; stop it as a crash would (no close(), no muxing) ...
    recorder._queue.put(None)
    recorder._worker.join()
    spool = spool_path(path)
    data = spool.read_bytes()
    spool.write_bytes(data[: len(data) - 7])  # ... in the middle of its last record
    result = recover(path)
    assert not spool.exists()
    got = decode(result.path)
    assert got.video[0] == camera.frames[: len(got.video[0])]
    assert len(got.video[0]) >= 58
    assert within(got.duration_s, 2.0)


def test_nothing_recorded_gives_no_file_to_post(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "r.webm")
    recorder.on_rtp(video_info("@t"), b"\x80\x60" + b"\x00" * 10, 5)  # no payload at all
    result = asyncio.run(recorder.close())
    assert result.streams == ()
    assert not result.path.exists()


# -- the pure parts ---------------------------------------------------------------------------


def test_depacketizer_waits_for_a_keyframe_and_counts_duplicates() -> None:
    camera = Camera(video_info("@t"))
    packets = [p for i in range(5) for p in camera.frame(i)]
    d = Depacketizer("vp8", payload_type=VIDEO_PT)
    frames = []
    for n, packet in enumerate(packets[1:] + packets[1:2]):  # the keyframe's start is lost
        frames += d.push(rtp.parse(packet), packet, n).frames
    frames += d.flush().frames
    assert frames == [] and d.duplicates == 1
    assert vp8_size(camera.frames[0]) == (320, 240)
    assert opus_samples(b"\xfc\xff\xfe") == 960  # CELT FB 20 ms, code 0
    assert opus_samples(b"") == 0


PACKET = st.binary(min_size=0, max_size=300)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    packets=st.lists(
        st.tuples(st.sampled_from(["video", "screen", "audio", "bogus"]), PACKET, st.booleans()),
        max_size=40,
    ),
    seed=st.integers(0, 2**16),
)
def test_hostile_rtp_never_breaks_the_recorder(
    tmp_path_factory: pytest.TempPathFactory, packets: list[tuple[str, bytes, bool]], seed: int
) -> None:
    """Arbitrary bytes, and real-looking headers around arbitrary payloads, with jumping
    sequence numbers and timestamps: counted and dropped, never an exception."""
    rng = random.Random(seed)
    infos = {
        "video": video_info("@a", ssrc=5),
        "screen": video_info("@a", "screen", ssrc=6),
        "audio": audio_info("@a", ssrc=7),
        "bogus": ProducerInfo("P-x", "@x", "video", "video/H264", 90_000, 102, 8),
    }
    recorder = Recorder(tmp_path_factory.mktemp("h") / "r.webm", request_keyframe=lambda _: None)
    now = 0
    for kind, payload, raw in packets:
        info = infos[kind]
        now += rng.randrange(0, 400)
        if raw:
            data = payload
        else:
            data = rtp.serialize(
                payload_type=info.payload_type,
                sequence=rng.randrange(2**16),
                timestamp=rng.randrange(2**32),
                ssrc=info.ssrc,
                payload=payload,
                marker=rng.random() < 0.5,
            )
        recorder.on_rtp(info, data, now)
    result = asyncio.run(recorder.close())
    if result.streams:
        decode_any(result.path)


def decode_any(path: Path) -> None:
    """Opens and demuxes what was written (hostile payloads may not decode: that's theirs)."""
    with av.open(str(path)) as c:
        for _ in c.demux():
            pass


RECORDS = st.lists(
    st.tuples(st.integers(0, 3), st.booleans(), st.integers(-5, 2**40), st.binary(max_size=64)),
    max_size=20,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=RECORDS, tail=st.binary(max_size=40), cut=st.integers(0, 2000))
def test_a_damaged_spool_is_read_up_to_the_damage(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[tuple[int, bool, int, bytes]],
    tail: bytes,
    cut: int,
) -> None:
    """A spool as a crash (or a disk) may leave it: records with any fields, garbage after
    them, cut anywhere. Reading stops at the damage; finalising never raises."""
    from media.spool import MAGIC, RECORD, finalise, read

    body = b"".join(
        RECORD.pack(stream, int(key), pts, len(data)) + data
        if pts >= 0
        else RECORD.pack(stream, 0, 0, 2**31) + data
        for stream, key, pts, data in records
    )
    spool = tmp_path_factory.mktemp("s") / "r.webm.spool"
    spool.write_bytes((MAGIC + body + tail)[: len(MAGIC) + cut])
    got = list(read(spool))
    assert all(r.stream in (0, 1, 2) and r.pts >= 0 for r in got)
    result = finalise(spool, spool.with_name("r.webm"))
    if result.streams:
        decode_any(result.path)
