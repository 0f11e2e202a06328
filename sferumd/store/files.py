"""Persistence of uploaded files (tables of the files migration): one row per upload in
``files`` (the bytes live once per SHA-256 under the data directory, see services.files),
and one row in ``file_posts`` per message that carried the file. Writes go through the
main store's group commit."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from sferumd.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

FILE_COLUMNS = "file_id, sha256, size, type, name, uploader, created_ts, width, height, thumbnail"
SAME_SQL = (
    f"SELECT {FILE_COLUMNS} FROM files WHERE uploader = ? AND sha256 = ? AND name = ?"
    " AND type = ? ORDER BY created_ts, file_id LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class FileRecord:
    file_id: str
    sha256: str
    size: int
    type: str  # canonical MIME type, checked against the content
    name: str  # NFC, validated (services.filenames)
    uploader: str
    created_ts: int
    width: int | None = None  # pictures only, as shown (after EXIF orientation)
    height: int | None = None
    thumbnail: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The file as messages carry it and uploads answer it; every value is the server's."""
        wire: dict[str, Any] = {
            "id": self.file_id,
            "name": self.name,
            "size": self.size,
            "type": self.type,
            "sha256": self.sha256,
        }
        if self.width is not None and self.height is not None:
            wire["width"] = self.width
            wire["height"] = self.height
        wire["thumbnail"] = self.thumbnail
        return wire


def _record(row: Any) -> FileRecord:
    file_id, sha256, size, type_, name, uploader, created_ts, width, height, thumb = row
    return FileRecord(
        file_id, sha256, size, type_, name, uploader, created_ts, width, height, bool(thumb)
    )


class FileStore:
    def __init__(self, store: SqliteStore):
        self.store = store

    async def get(self, file_id: str) -> FileRecord | None:
        rows = await self.store.query(
            f"SELECT {FILE_COLUMNS} FROM files WHERE file_id = ?", (file_id,)
        )
        return _record(rows[0]) if rows else None

    async def find_same(
        self, uploader: str, sha256: str, name: str, type_: str
    ) -> FileRecord | None:
        """The user's earliest upload of these bytes under this name and type, if any."""
        rows = await self.store.query(SAME_SQL, (uploader, sha256, name, type_))
        return _record(rows[0]) if rows else None

    async def uploaded_since(self, uploader: str, since_ts: int) -> int:
        """Bytes of the user's uploads made at or after ``since_ts``."""
        rows = await self.store.query(
            "SELECT coalesce(sum(size), 0) FROM files WHERE uploader = ? AND created_ts >= ?",
            (uploader, since_ts),
        )
        return int(rows[0][0])

    def add(
        self, record: FileRecord, *, quota: int, since_ts: int
    ) -> Awaitable[tuple[FileRecord, bool] | None]:
        """Adds the upload; returns it and True. The same user's earlier upload of the same
        bytes under the same name and type is returned instead (with False): a retried
        upload gives the same id. None when the user's uploads since ``since_ts`` plus this
        one would pass ``quota`` bytes (0: no quota); check and insert share a transaction."""

        def write(cur: sqlite3.Cursor) -> tuple[FileRecord, bool] | None:
            row = cur.execute(
                SAME_SQL, (record.uploader, record.sha256, record.name, record.type)
            ).fetchone()
            if row is not None:
                return _record(row), False
            if quota > 0:
                (used,) = cur.execute(
                    "SELECT coalesce(sum(size), 0) FROM files"
                    " WHERE uploader = ? AND created_ts >= ?",
                    (record.uploader, since_ts),
                ).fetchone()
                if used + record.size > quota:
                    return None
            cur.execute(
                f"INSERT INTO files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.file_id,
                    record.sha256,
                    record.size,
                    record.type,
                    record.name,
                    record.uploader,
                    record.created_ts,
                    record.width,
                    record.height,
                    int(record.thumbnail),
                ),
            )
            return record, True

        return self.store.write(write)

    def add_post(self, file_id: str, room_id: str, pos: int, event_id: str) -> Awaitable[None]:
        """Records that the event at ``pos`` carried the file. Submitted just before the
        event itself, so it commits with it or before it: a row whose event never committed
        (a crash between, a repeated transaction id the store dropped) matches no event and
        grants nothing (see ``live_posts``)."""

        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "INSERT OR IGNORE INTO file_posts (file_id, pos, event_id, room_id)"
                " VALUES (?, ?, ?, ?)",
                (file_id, pos, event_id, room_id),
            )

        done = self.store.write(write)
        done.add_done_callback(_log_failure)  # type: ignore[attr-defined]
        return done

    async def live_posts(self, file_id: str) -> list[tuple[str, int]]:
        """(room, position) of every stored, unredacted event that carried the file."""
        rows = await self.store.query(
            "SELECT p.room_id, p.pos FROM file_posts p"
            " JOIN events e ON e.pos = p.pos AND e.event_id = p.event_id"
            " WHERE p.file_id = ? AND e.redacted_by IS NULL ORDER BY p.pos",
            (file_id,),
        )
        return [(r[0], r[1]) for r in rows]


def _log_failure(done: Any) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("recording a file post failed", exc_info=done.exception())
