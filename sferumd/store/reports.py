"""Persistence of reports of messages to a chat's admins (the ``reports`` table of the
"Chats by hand" migration): one per reporter and event, so a second report of the same
message changes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from dataclasses import dataclass

from sferumd.store.sqlite import SqliteStore

REPORT_COLUMNS = "room_id, event_id, reporter, sender, reason, ts"


@dataclass(frozen=True, slots=True)
class StoredReport:
    room_id: str
    event_id: str
    reporter: str
    sender: str  # the reported event's author
    reason: str | None
    ts: int


class ReportStore:
    def __init__(self, store: SqliteStore):
        self.store = store

    def add(self, report: StoredReport) -> Awaitable[bool]:
        """True if the report is new; a repeat by the same reporter keeps the first one."""

        def write(cur: sqlite3.Cursor) -> bool:
            cur.execute(
                f"INSERT OR IGNORE INTO reports ({REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    report.room_id,
                    report.event_id,
                    report.reporter,
                    report.sender,
                    report.reason,
                    report.ts,
                ),
            )
            return cur.rowcount == 1

        return self.store.write(write)

    async def for_room(self, room_id: str, hide_sender: str, limit: int) -> list[StoredReport]:
        """The room's newest reports, leaving out those about ``hide_sender``'s events."""
        rows = await self.store.query(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE room_id = ? AND sender != ?"
            " ORDER BY ts DESC, event_id, reporter LIMIT ?",
            (room_id, hide_sender, limit),
        )
        return [StoredReport(*r) for r in rows]
