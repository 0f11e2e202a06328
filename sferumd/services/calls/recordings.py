"""``CallRecordings``: the ``call_record`` op and the life of a recording (R20).

The rules are in ``recording``; the recorder (an RTP sink of the call's main room) in
``media.recorder``. This module starts and stops recorders, keeps the call's state in line
(the ``recording`` indicator of the state push), and turns a finished recording into a file
message in the call's own chat.

- Start: the SFU must be there (``media_unavailable`` on a daemon without it). The recorder
  is added as a sink of the call's main room first; only then is the indicator committed, so
  nobody is shown a recording that isn't running.
- Files, under ``<data dir>/<calls.recording_dir>``: ``<stem>.json`` (what the recording is
  of: call, chat, name, who started it, the owner), ``<stem>.webm.spool`` while it runs, and
  ``<stem>.webm`` once muxed. The json is removed only once the file is posted, so a crash
  at any point leaves work that the next start finishes; each step is safe to repeat (the
  files store answers the same record for the same bytes, and the message's transaction id
  is the recording's, so it is posted once).
- Stop (the op, a limit, the end of the call): the indicator goes off at once; the file is
  muxed in a thread, stored in the files store (content-addressed; uploaded by the calls'
  own account, so it counts against nobody's daily quota) and posted as a ``message`` with
  ``content.file`` and ``content.call_recording`` by the poster (``recording.poster``). A
  limit tells the admins first (``recording_stopped``); a failure is pushed to them as
  ``recording_failed`` and logged, the files kept.
- A restart: every recording that was running is finalised from its spool (what was written
  before the daemon went down) and posted with ``"interrupted": true``; the indicator of its
  call goes off. A recording does not resume by itself: an admin starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from media.sinks import RtpSink
from media.spool import RecordingResult, spool_path
from protocol import frames as f
from protocol.errors import ErrorCode, ProtocolError
from sferumd.model import Device
from sferumd.services.calls import breakout as bo
from sferumd.services.calls import recording as rec
from sferumd.services.calls.service import CALLS_OWNER, CallService, LiveCall
from sferumd.services.filenames import validate_name
from sferumd.services.files import FilesService, new_file_id

if TYPE_CHECKING:
    from media.recorder import Recorder
from sferumd.store.files import FileRecord

log = logging.getLogger(__name__)

WEBM = "video/webm"
MESSAGE = "message"


@runtime_checkable
class SinkHost(Protocol):
    """What recording needs of the media backend (``media.sfu.Sfu``)."""

    async def add_sink(self, call_id: str, room_id: str, sink: RtpSink) -> bool: ...

    async def remove_sink(self, call_id: str, room_id: str, sink: RtpSink) -> None: ...


@dataclass(frozen=True, slots=True)
class Meta:
    """What a recording is of: written beside it when it starts (``<stem>.json``)."""

    stem: str
    call_id: str
    room_id: str  # the call's own chat: where the file is posted
    name: str  # the call's name
    since_ms: int
    by: str | None  # the user who started it
    owner: str | None  # the call owner's user

    @staticmethod
    def load(raw: Any) -> Meta:
        fields = ("stem", "call_id", "room_id", "name", "since_ms", "by", "owner")
        if not isinstance(raw, dict) or set(raw) != set(fields):
            raise ValueError("not a recording's description")
        meta = Meta(**raw)
        if not rec.STEM.fullmatch(meta.stem) or not isinstance(meta.since_ms, int):
            raise ValueError("not a recording's description")
        return meta


@dataclass(eq=False)
class Session:
    live: LiveCall
    meta: Meta
    recorder: Recorder
    host: SinkHost


class CallRecordings:
    def __init__(self, calls: CallService, files: FilesService, data_dir: Path):
        self.calls = calls
        self.files = files
        self.settings = calls.settings
        self.dir = data_dir / self.settings.recording_dir
        self.sessions: dict[str, Session] = {}  # by call id
        calls.on_finish.append(self._call_ended)

    # -- the op ------------------------------------------------------------------------------

    async def record(self, device: Device, req: f.CallRecord) -> dict[str, Any]:
        if req.on:
            # The recorder needs numpy and PyAV, which the daemon does not load at start-up:
            # the first recording loads them in a thread, off the event loop the media runs on.
            await asyncio.to_thread(importlib.import_module, "media.recorder")
        live, me = await self.calls.get_call(req.call_id, device.user_id)
        doc = live.doc
        if not req.on:
            if rec.stop(doc.roster, doc.recording, me):
                await self._stop(live, device.user_id)
            return {}
        now = self.calls.clock.now_ms()
        if rec.start(doc.call, doc.roster, doc.recording, me, now) is None:
            return {}
        if live.call_id in self.sessions:
            return {}  # another admin's start is on its way
        host = self.calls.media
        if not isinstance(host, SinkHost):
            raise ProtocolError(
                ErrorCode.MEDIA_UNAVAILABLE,
                "this server has no media plane ([media] enabled is off): nothing to record",
            )
        session = self._open(live, device.user_id, now, host)
        self.sessions[live.call_id] = session
        try:
            if not await host.add_sink(live.call_id, bo.MAIN_ROOM, session.recorder):
                raise ProtocolError(
                    ErrorCode.MEDIA_UNAVAILABLE, "the media plane refused to record this call"
                )
            # Decided again on the call as it is now (the add_sink above awaited).
            recording = rec.start(live.doc.call, live.doc.roster, None, me, now)
            assert recording is not None
            await self.calls.commit(live, replace(live.doc, recording=recording))
        except BaseException:
            if self.sessions.get(live.call_id) is session:
                del self.sessions[live.call_id]
            await self._discard(session)
            raise
        return {}

    # -- start and stop ------------------------------------------------------------------------

    def _open(self, live: LiveCall, by: str, now: int, host: SinkHost) -> Session:
        meta = Meta(
            rec.stem_of(live.call_id, now),
            live.call_id,
            live.facts.call_room_id,
            live.name,
            now,
            by,
            live.user_of(live.doc.roster.owner_id),
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_json(self._meta_path(meta.stem), asdict(meta))
        call_id = live.call_id

        def keyframe(producer_id: str) -> None:
            router = _router(host, call_id)
            if router is not None:
                router.request_keyframe(producer_id)

        def speaker() -> str | None:
            router = _router(host, call_id)
            return None if router is None else router.current_speaker

        from media.recorder import Recorder  # loaded by ``record`` (see there)

        recorder = Recorder(
            self._webm_path(meta.stem),
            preferred_user=meta.owner,
            max_bytes=self.settings.recording_max_mb * 1024 * 1024,
            max_duration_ms=self.settings.recording_max_s * 1000,
            queue_frames=self.settings.recording_queue_frames,
            request_keyframe=keyframe,
            on_limit=lambda what: self._limit(call_id, what),
            active_speaker=speaker,
        )
        return Session(live, meta, recorder, host)

    def _stop(self, live: LiveCall, poster: str | None) -> Awaitable[None]:
        """The indicator off (committed), the file made and posted in the background."""
        session = self.sessions.pop(live.call_id, None)
        if session is not None:
            self.calls.spawn(self._finish(session, poster))
        if live.doc.recording is None or self.calls.live.get(live.call_id) is not live:
            return _nothing()
        return self.calls.commit(live, replace(live.doc, recording=None))

    def _limit(self, call_id: str, what: str) -> None:
        session = self.sessions.get(call_id)
        if session is None:
            return
        live = session.live
        reason = "max_size" if what == "size" else "max_duration"
        self.calls.push(live, self._admins(live), {"type": "recording_stopped", "reason": reason})
        self.calls.spawn(_quietly(self._stop(live, session.meta.by)))

    def _call_ended(self, live: LiveCall, doc: Any) -> None:
        session = self.sessions.pop(live.call_id, None)
        if session is not None:
            poster = rec.poster(session.meta.owner, session.meta.by)
            self.calls.spawn(self._finish(session, poster))

    async def _discard(self, session: Session) -> None:
        """A start that didn't happen: no sink, no files."""
        with contextlib.suppress(Exception):
            await session.host.remove_sink(session.meta.call_id, bo.MAIN_ROOM, session.recorder)
        await session.recorder.close()
        for path in (self._webm_path(session.meta.stem), self._meta_path(session.meta.stem)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _finish(self, session: Session, poster: str | None) -> None:
        meta = session.meta
        try:
            await session.host.remove_sink(meta.call_id, bo.MAIN_ROOM, session.recorder)
        except Exception:
            log.exception("removing the recorder from the media plane failed")
        try:
            result = await session.recorder.close()
        except Exception:
            log.exception("finishing a recording failed", extra={"call_id": meta.call_id})
            self._failed(session.live, "internal")
            return
        await self._publish(meta, result, poster, session.live, interrupted=False)

    # -- the file in the chat ------------------------------------------------------------------

    async def _publish(
        self,
        meta: Meta,
        result: RecordingResult,
        poster: str | None,
        live: LiveCall | None,
        *,
        interrupted: bool,
    ) -> None:
        if not result.streams:
            log.info("a recording had no media; nothing posted", extra={"call_id": meta.call_id})
            self._failed(live, "empty")
            self._forget(meta.stem)
            return
        try:
            sender = self._sender(meta, poster)
            record = await self._store(meta, result.path)
            content = {
                "body": f"Запись: {meta.name}",
                "call_recording": {
                    "call_id": meta.call_id,
                    "since_ms": meta.since_ms,
                    "duration_ms": result.duration_ms,
                    "streams": list(result.streams),
                    "interrupted": interrupted,
                },
            }
            await self._post(meta, sender, content, record)
        except Exception:
            log.exception(
                "storing a recording failed; its files are kept in %s",
                self.dir,
                extra={"call_id": meta.call_id},
            )
            self._failed(live, "internal")
            return
        self._forget(meta.stem)

    def _sender(self, meta: Meta, poster: str | None) -> str:
        """The poster when they are in the call's chat; else whoever started it, the owner,
        and at last the calls' own account (always in it)."""
        room = self.calls.rooms.rooms.get(meta.room_id)
        if room is None:
            raise LookupError(f"the call's chat {meta.room_id} is gone")
        for user in (poster, meta.by, meta.owner):
            if user is not None and user in room.joined:
                return user
        return CALLS_OWNER

    async def _store(self, meta: Meta, webm: Path) -> FileRecord:
        """The finished file into the files store. Its uploader is the calls' own account:
        the server made it, so it counts against nobody's daily quota. Safe to repeat after a
        crash: the bytes are linked into place (the recording's own file stays until it is
        posted) and the store answers the same record for the same bytes and name."""
        stamp = datetime.fromtimestamp(meta.since_ms / 1000, ZoneInfo(self.settings.time_zone))
        max_chars = self.files.settings.max_name_chars
        try:
            name = validate_name(f"{meta.name} - {stamp:%d.%m.%Y %H.%M}.webm", max_chars)
        except ValueError:
            name = f"recording-{stamp:%Y-%m-%d-%H%M}.webm"
        sha256, size = await asyncio.to_thread(self._place, webm)
        record = FileRecord(new_file_id(), sha256, size, WEBM, name, CALLS_OWNER, _now_ms())
        added = await self.files.store.add(record, quota=0, since_ts=0)
        assert added is not None  # no quota
        return added[0]

    def _place(self, webm: Path) -> tuple[str, int]:
        """In a worker thread: hashes the file and links it to its hash's place."""
        digest = hashlib.sha256()
        size = 0
        with open(webm, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            os.fsync(fh.fileno())
        sha256 = digest.hexdigest()
        target = self.files.blob_path(sha256)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            try:
                os.link(webm, part)
            except OSError:  # another file system: copy
                shutil.copyfile(webm, part)
                with open(part, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(part, target)
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return sha256, size

    async def _post(
        self, meta: Meta, sender: str, content: dict[str, Any], record: FileRecord
    ) -> None:
        """The file message, as ``send`` with ``content.file`` makes it (the post recorded
        right before the event). Its transaction id is the recording's: posting again after
        a crash gives back the message already posted."""
        rooms, files = self.calls.rooms, self.files.store

        def make() -> Any:
            event = rooms.make_event(
                meta.room_id, sender, MESSAGE, {**content, "file": record.to_wire()}
            )
            files.add_post(record.file_id, event.room_id, event.pos, event.event_id)
            return event

        device = Device(f"recording.{meta.stem}", sender)
        await rooms.commit_once(device, meta.stem, make, lookup=True)

    def _failed(self, live: LiveCall | None, reason: str) -> None:
        if live is not None:
            self.calls.push(
                live, self._admins(live), {"type": "recording_failed", "reason": reason}
            )

    def _admins(self, live: LiveCall) -> list[str]:
        return sorted(u for a in live.doc.roster.admins if (u := live.user_of(a)) is not None)

    def _forget(self, stem: str) -> None:
        for path in (
            self._webm_path(stem),
            spool_path(self._webm_path(stem)),
            self._meta_path(stem),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _meta_path(self, stem: str) -> Path:
        return self.dir / f"{stem}.json"

    def _webm_path(self, stem: str) -> Path:
        return self.dir / f"{stem}.webm"

    # -- start-up and shutdown -----------------------------------------------------------------

    async def recover(self) -> None:
        """After a restart: every recording left running is made into its file from what was
        written and posted; the indicators go off."""
        self.dir.mkdir(parents=True, exist_ok=True)
        found: set[str] = set()
        for path in sorted(self.dir.glob("*.json")):
            try:
                meta = Meta.load(json.loads(path.read_text("utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.error("a recording's description %s is unreadable: %s", path, exc)
                continue
            found.add(meta.stem)
            live = self.calls.live.get(meta.call_id)
            poster = rec.poster(meta.owner, meta.by)
            self.calls.spawn(self._recover_one(meta, poster, live))
        for live in list(self.calls.live.values()):
            recording = live.doc.recording
            if recording is None:
                continue
            if recording.stem not in found:
                log.warning("a recording of %s left nothing to recover", live.call_id)
            # The call may have ended meanwhile (the scheduler's first tick): off anyway.
            with contextlib.suppress(ProtocolError):
                await self.calls.commit(live, replace(live.doc, recording=None))

    async def _recover_one(self, meta: Meta, poster: str | None, live: LiveCall | None) -> None:
        webm = self._webm_path(meta.stem)
        try:
            if spool_path(webm).exists():
                from media.recorder import recover

                result = await asyncio.to_thread(recover, webm)
            elif webm.exists():  # muxed, not yet stored
                result = await asyncio.to_thread(_probe, webm)
            else:
                result = RecordingResult(webm, 0, 0, (), {})
        except Exception:
            log.exception("recovering the recording %s failed", meta.stem)
            return
        await self._publish(meta, result, poster, live, interrupted=True)

    async def suspend(self) -> None:
        """Shutdown: each running recorder writes out what it holds; ``recover`` finishes
        them at the next start."""
        for session in list(self.sessions.values()):
            try:
                await session.recorder.suspend()
            except Exception:
                log.exception("suspending a recorder failed")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def _router(host: SinkHost, call_id: str) -> Any:
    router_of: Callable[[str, str], Any] | None = getattr(host, "router", None)
    return None if router_of is None else router_of(call_id, bo.MAIN_ROOM)


def _probe(webm: Path) -> RecordingResult:
    import av

    with av.open(str(webm)) as container:
        streams = tuple(s.type for s in container.streams)
        duration = (container.duration or 0) // 1000
    return RecordingResult(webm, duration, webm.stat().st_size, streams, {})


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


async def _nothing() -> None:
    return None


async def _quietly(work: Any) -> None:
    try:
        await work
    except Exception:
        log.exception("stopping a recording failed")
