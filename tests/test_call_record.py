"""Recording a call (R20) against the real daemon and its SFU: an aiortc participant
publishes camera and microphone over real ICE/DTLS/SRTP on 127.0.0.1; the admin starts and
stops the recording, everyone sees the indicator, and the file lands in the call's chat as a
file message that downloads and decodes (PyAV) to the length recorded. Also: who may
record, the end of the call, a daemon killed while recording, a daemon without the SFU."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from clients.sdk import Client, ClientError
from media import aiortc_hooks
from tests.test_cli import sferum

MEDIA = """
[media]
loopback_candidates = true
debug_stats = true
"""
NO_MEDIA = """
[media]
enabled = false
"""
TIMEOUT = 30.0
TEACHER_CAMERA, SCREEN, PUPIL_CAMERA = (320, 240), (640, 360), (160, 120)
NO_STUN = RTCConfiguration(iceServers=[])  # 127.0.0.1 only: no STUN server to wait for


class Picture(VideoStreamTrack):
    """A camera or a screen of a given size (aiortc encodes it as VP8), so the recording
    shows whose picture it kept."""

    def __init__(self, width: int, height: int):
        super().__init__()
        self.width, self.height = width, height

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(pts // 3000) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class Participant:
    """A client in the call with aiortc: a send transport publishing a camera and a
    microphone (aiortc encodes VP8 and Opus), and a receive transport answering the SFU's
    ``media_offer`` pushes. It reads every push of its client: the other ``call`` pushes
    are kept, in order, for ``wait_call``."""

    def __init__(self, client: Client):
        self.client = client
        self.send = RTCPeerConnection(NO_STUN)
        self.recv: RTCPeerConnection | None = None
        self.calls: list[dict[str, Any]] = []
        self._seen = 0
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def join(
        self, call_id: str, camera: tuple[int, int], screen: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """Joins publishing a microphone and a camera of that size; then shares a screen of
        that size, if given, as a browser does: a new offer of the send transport."""
        self.send.addTransceiver(AudioStreamTrack(), direction="sendonly")
        self.send.addTransceiver(Picture(*camera), direction="sendonly")
        tracks = {"0": "audio", "1": "video"}
        await self.send.setLocalDescription(await self.send.createOffer())
        offer = self.send.localDescription.sdp
        joined = await self.client.call_join(call_id, offer=offer, tracks=tracks)
        await self.send.setRemoteDescription(RTCSessionDescription(joined["answer"], "answer"))
        if screen is not None:
            self.send.addTransceiver(Picture(*screen), direction="sendonly")
            await self.send.setLocalDescription(await self.send.createOffer())
            offer = self.send.localDescription.sdp
            answer = await self.client.call_publish(call_id, offer, {**tracks, "2": "screen"})
            assert answer is not None
            await self.send.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return joined

    async def _read(self) -> None:
        while True:
            value = (await self.client.next_push()).get("call")
            if value is None:
                continue
            if value["type"] == "media_offer":
                await self._answer(value)
                continue
            self.calls.append(value)
            self._arrived.set()

    async def _answer(self, push: dict[str, Any]) -> None:
        if self.recv is None:
            self.recv = RTCPeerConnection(NO_STUN)
        await self.recv.setRemoteDescription(RTCSessionDescription(push["sdp"], "offer"))
        await self.recv.setLocalDescription(await self.recv.createAnswer())
        answer = self.recv.localDescription.sdp
        await self.client.call_media_answer(push["call_id"], push["version"], answer)

    async def wait_call(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The next ``call`` push (after the last one this returned) that matches."""
        deadline = time.monotonic() + timeout
        while True:
            while self._seen < len(self.calls):
                value = self.calls[self._seen]
                self._seen += 1
                if match(value):
                    return value
            self._arrived.clear()
            left = deadline - time.monotonic()
            assert left > 0, "the call push never came"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def state(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        value = await self.wait_call(lambda v: v["type"] == "state" and match(v["state"]))
        return value["state"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        for pc in (self.send, self.recv):
            if pc is not None:
                await pc.close()


def media_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/debug/v1/media", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


async def until(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(check)  # the SFU's counters over HTTP, off the loop
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def producer_packets(url: str, call_id: str) -> dict[str, int]:
    """Packets the SFU received per kind from the call's main room."""
    call = media_stats(url)["calls"].get(call_id)
    if call is None or "main" not in call["routers"]:
        return {}
    packets: dict[str, int] = {}
    for p in call["routers"]["main"]["producers"]:
        packets[p["kind"]] = packets.get(p["kind"], 0) + p["packets"]
    return packets


async def flowing(url: str, call_id: str) -> None:
    """Waits until the SFU gets packets of both producers."""

    def both() -> bool:
        now = producer_packets(url, call_id)
        return all(now.get(k, 0) > 0 for k in ("audio", "video", "screen"))

    await until("media to flow", both)


async def more_media(url: str, call_id: str, kind: str, packets: int) -> None:
    """Waits until the SFU got ``packets`` more of that kind (audio: 50 a second)."""
    base = producer_packets(url, call_id).get(kind, 0)
    await until(
        f"{packets} {kind} packets",
        lambda: producer_packets(url, call_id).get(kind, 0) >= base + packets,
    )


async def recording_message(client: Client, room_id: str) -> dict[str, Any]:
    """The file message of the recording in the call's chat, once posted."""

    async def find() -> dict[str, Any] | None:
        events = (await client.history(room_id, limit=50))["events"]
        return next((e for e in events if "call_recording" in e["content"]), None)

    deadline = time.monotonic() + TIMEOUT
    while True:
        found = await find()
        if found is not None:
            return found
        assert time.monotonic() < deadline, "the recording was never posted"
        await asyncio.sleep(0.1)


@dataclass
class Decoded:
    duration_s: float
    frames: dict[int, int]  # per stream index: frames decoded
    sizes: dict[int, tuple[int, int]]  # per video stream: the last frame's size
    codecs: list[str]


def decoded(path: Path) -> Decoded:
    """What PyAV makes of a file, decoding every packet (an error fails the test)."""
    out = Decoded(0.0, {}, {}, [])
    with av.open(str(path)) as c:
        assert c.duration is not None
        out.duration_s = c.duration / 1_000_000
        out.codecs = [s.codec_context.name for s in c.streams]
        for packet in c.demux():
            index = packet.stream.index
            for frame in packet.decode():
                out.frames[index] = out.frames.get(index, 0) + 1
                if isinstance(frame, av.VideoFrame):
                    out.sizes[index] = (frame.width, frame.height)
    return out


@pytest.fixture
async def lesson(daemon_factory: Any, request: Any) -> AsyncIterator[dict[str, Any]]:
    """A chat call with media: Anna (the chat's admin, the call's owner: the teacher) sends
    her microphone, her camera and her screen; Boris his microphone and his camera."""
    aiortc_hooks.allow_loopback(True)
    d = daemon_factory(MEDIA + getattr(request, "param", ""))  # more config, if parametrized
    anna_user, boris_user = d.add_user("Анна", "Учитель"), d.add_user("Борис", "Ученик")
    anna, boris = Client(d.url, anna_user.token), Client(d.url, boris_user.token)
    await anna.connect()
    await boris.connect()
    people = [Participant(anna), Participant(boris)]
    try:
        room = await anna.create_room("7В История", invite=[boris.user_id])
        await boris.join(room)
        call = await anna.call_start(room)
        call_id = call["call_id"]
        await people[0].join(call_id, camera=TEACHER_CAMERA, screen=SCREEN)
        await people[1].join(call_id, camera=PUPIL_CAMERA)
        await flowing(d.url, call_id)
        yield {
            "daemon": d,
            "anna": anna,
            "boris": boris,
            "call_id": call_id,
            "room_id": call["room_id"],
            "people": people,
        }
    finally:
        for p in people:
            await p.close()
        await anna.close()
        await boris.close()


async def test_admin_records_everyone_sees_it_and_the_file_is_posted(
    lesson: dict[str, Any], tmp_path: Path
) -> None:
    d, anna, boris = lesson["daemon"], lesson["anna"], lesson["boris"]
    call_id, chat = lesson["call_id"], lesson["room_id"]
    with pytest.raises(ClientError) as refused:
        await boris.call_record(call_id, True)
    assert refused.value.code == "forbidden"
    assert (await anna.call(call_id))["recording"] is None

    await anna.call_record(call_id, True)
    started = time.monotonic()
    for person in lesson["people"]:  # the indicator, pushed to everyone
        state = await person.state(lambda s: s["recording"] is not None)
        assert state["recording"]["by"] == anna.user_id
    version = (await anna.call(call_id))["version"]
    await anna.call_record(call_id, True)  # already on: nothing changes
    assert (await anna.call(call_id))["version"] == version

    # Three seconds of media reach the SFU (150 Opus packets of each voice), then stop.
    await more_media(d.url, call_id, "audio", 300)
    await anna.call_record(call_id, False)
    recorded_s = time.monotonic() - started
    for person in lesson["people"]:
        await person.state(lambda s: s["recording"] is None)

    message = await recording_message(boris, chat)
    assert message["sender"] == anna.user_id
    content = message["content"]
    assert content["file"]["type"] == "video/webm"
    assert content["call_recording"]["call_id"] == call_id
    assert content["call_recording"]["interrupted"] is False
    assert content["call_recording"]["streams"] == ["camera", "screen", "audio"]
    # Boris, a participant, downloads it; PyAV decodes the whole file: the teacher's camera
    # (the owner's, though Boris's camera sends too), her screen, both voices mixed.
    path = await boris.download(content["file"]["id"], tmp_path / "r.webm")
    got = decoded(path)
    assert got.codecs == ["vp8", "vp8", "opus"]
    assert abs(got.duration_s - recorded_s) <= 0.1 * recorded_s + 0.5, (got, recorded_s)
    assert got.sizes == {0: TEACHER_CAMERA, 1: SCREEN}
    assert got.frames[0] >= 60 and got.frames[1] >= 60 and got.frames[2] >= 100
    await anna.call_record(call_id, False)  # already off: nothing


async def test_the_end_of_the_call_stops_and_posts_it(lesson: dict[str, Any]) -> None:
    d, anna, boris = lesson["daemon"], lesson["anna"], lesson["boris"]
    call_id = lesson["call_id"]
    await anna.call_record(call_id, True)
    await more_media(d.url, call_id, "audio", 50)
    await anna.call_end(call_id)
    ended = await lesson["people"][1].state(lambda s: s["state"] == "ended")
    assert ended["recording"] is None
    message = await recording_message(boris, lesson["room_id"])
    assert message["sender"] == anna.user_id  # the owner posts it
    assert message["content"]["file"]["size"] > 0


@pytest.mark.parametrize("how", ["killed", "stopped"])
async def test_a_daemon_gone_down_posts_what_was_recorded_after_the_restart(
    lesson: dict[str, Any], tmp_path: Path, how: str
) -> None:
    d, anna = lesson["daemon"], lesson["anna"]
    call_id, chat = lesson["call_id"], lesson["room_id"]
    began = time.monotonic()
    await anna.call_record(call_id, True)
    await more_media(d.url, call_id, "audio", 300)  # 3 s of both voices
    if how == "killed":
        d.kill()  # SIGKILL: the spool as the worker thread last wrote it
    else:
        d.stop()  # SIGTERM: the recorder writes out what it holds before the daemon exits
    went_down_s = time.monotonic() - began
    d.start()
    fresh = Client(d.url, anna.token)
    await fresh.connect()
    try:
        message = await recording_message(fresh, chat)
        assert message["content"]["call_recording"]["interrupted"] is True
        state = await fresh.call(call_id)
        assert state["recording"] is None  # the indicator does not lie after a restart
        path = await fresh.download(message["content"]["file"]["id"], tmp_path / "r.webm")
        got = decoded(path)
        # At least the 3 s of media the SFU counted, less what a kill loses (the spool is
        # flushed every half second); at most what ran before the daemon went down.
        assert 2.0 <= got.duration_s <= went_down_s + 0.5, (got, went_down_s)
        assert got.frames[0] > 0 and got.frames[2] > 0
    finally:
        await fresh.close()


async def test_no_sfu_no_recording(daemon_factory: Any) -> None:
    d = daemon_factory(NO_MEDIA)
    anna_user = d.add_user()
    async with Client(d.url, anna_user.token) as anna:
        room = await anna.create_room("Кружок")
        call = await anna.call_start(room)
        with pytest.raises(ClientError) as refused:
            await anna.call_record(call["call_id"], True)
        assert refused.value.code == "media_unavailable"
        rc, _, err = await sferum(d.url, anna_user.token, "call", "record", call["call_id"])
        assert rc == 1 and json.loads(err)["error"]["code"] == "media_unavailable"
        assert (await anna.call(call["call_id"]))["recording"] is None


@pytest.mark.parametrize("lesson", ["[calls]\nrecording_max_s = 2\n"], indirect=True)
async def test_a_recording_stops_by_itself_at_its_limit(lesson: dict[str, Any]) -> None:
    anna = lesson["anna"]
    teacher, pupil = lesson["people"]
    await anna.call_record(lesson["call_id"], True)
    stopped = await teacher.wait_call(lambda v: v["type"] == "recording_stopped")
    assert stopped["reason"] == "max_duration"
    assert (await teacher.state(lambda s: s["recording"] is None))["recording"] is None
    await pupil.state(lambda s: s["recording"] is None)
    assert not [v for v in pupil.calls if v["type"] == "recording_stopped"]  # admins only
    message = await recording_message(lesson["boris"], lesson["room_id"])
    assert message["sender"] == anna.user_id  # who started it
    assert 1500 <= message["content"]["call_recording"]["duration_ms"] <= 2200


async def test_a_recording_with_no_media_tells_the_admins(daemon_factory: Any) -> None:
    d = daemon_factory(MEDIA)
    async with Client(d.url, d.add_user().token) as anna:
        call = await anna.call_start(await anna.create_room("Кружок"))
        await anna.call_record(call["call_id"], True)  # nobody sends anything
        await anna.call_record(call["call_id"], False)
        failed = await anna.next_call_push(
            lambda v: v["type"] == "recording_failed", timeout=TIMEOUT
        )
        assert failed["reason"] == "empty"
        assert (await anna.call(call["call_id"]))["recording"] is None
