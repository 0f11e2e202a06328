"""Persistence of the journals' rosters, their deliveries and the chats the journal adapter
manages (tables of migration 5). Writes go through the main store's group commit, so a
delivery's entities and its id are committed together or not at all."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from sferumd.model import JournalChat
from sferumd.store.sqlite import SqliteStore

CHAT_COLUMNS = (
    "journal_id, chat_key, kind, class_id, room_id, subject_id, group_id, teacher_id, name,"
    " applied_name, added, removed, created_ts, deleted_ts, archived_ts"
)


@dataclass(frozen=True, slots=True)
class EntityRow:
    kind: str
    sourced_id: str
    version: int
    data: str | None  # wire JSON of the entity; None for a tombstone


def _chat(row: Sequence[object]) -> JournalChat:
    values = list(row)
    values[10] = tuple(json.loads(str(values[10])))
    values[11] = tuple(json.loads(str(values[11])))
    return JournalChat(*values)  # type: ignore[arg-type]


class RosterStore:
    def __init__(self, store: SqliteStore):
        self.store = store

    async def entities(self, journal_id: str) -> list[EntityRow]:
        rows = await self.store.query(
            "SELECT kind, sourced_id, version, data FROM roster_entities WHERE journal_id = ?",
            (journal_id,),
        )
        return [EntityRow(*r) for r in rows]

    async def journals_with_rosters(self) -> list[str]:
        rows = await self.store.query("SELECT DISTINCT journal_id FROM roster_entities")
        return [r[0] for r in rows]

    async def delivery(self, journal_id: str, delivery_id: str) -> str | None:
        rows = await self.store.query(
            "SELECT summary FROM roster_deliveries WHERE journal_id = ? AND delivery_id = ?",
            (journal_id, delivery_id),
        )
        return str(rows[0][0]) if rows else None

    def save_delivery(
        self,
        journal_id: str,
        delivery_id: str | None,
        rows: list[EntityRow],
        summary: str,
        now_ts: int,
    ) -> Awaitable[None]:
        """The entities a delivery changed, and its id with the answer given (so a replay
        gets the same answer and changes nothing). A snapshot or import has no id."""

        def write(cur: sqlite3.Cursor) -> None:
            cur.executemany(
                "INSERT OR REPLACE INTO roster_entities"
                " (journal_id, kind, sourced_id, version, data) VALUES (?, ?, ?, ?, ?)",
                [(journal_id, r.kind, r.sourced_id, r.version, r.data) for r in rows],
            )
            if delivery_id is not None:
                cur.execute(
                    "INSERT INTO roster_deliveries (journal_id, delivery_id, received_ts, summary)"
                    " VALUES (?, ?, ?, ?)",
                    (journal_id, delivery_id, now_ts, summary),
                )

        return self.store.write(write)

    async def chats(self, journal_id: str) -> list[JournalChat]:
        rows = await self.store.query(
            f"SELECT {CHAT_COLUMNS} FROM journal_chats WHERE journal_id = ? ORDER BY chat_key",
            (journal_id,),
        )
        return [_chat(r) for r in rows]

    def put_chat(self, chat: JournalChat) -> Awaitable[None]:
        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(
                f"INSERT OR REPLACE INTO journal_chats ({CHAT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chat.journal_id,
                    chat.chat_key,
                    chat.kind,
                    chat.class_id,
                    chat.room_id,
                    chat.subject_id,
                    chat.group_id,
                    chat.teacher_id,
                    chat.name,
                    chat.applied_name,
                    json.dumps(sorted(chat.added)),
                    json.dumps(sorted(chat.removed)),
                    chat.created_ts,
                    chat.deleted_ts,
                    chat.archived_ts,
                ),
            )

        return self.store.write(write)

    def delete_chat(self, journal_id: str, chat_key: str) -> Awaitable[None]:
        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "DELETE FROM journal_chats WHERE journal_id = ? AND chat_key = ?",
                (journal_id, chat_key),
            )

        return self.store.write(write)

    async def journal_links(self, journal_id: str) -> dict[str, str]:
        """Account id -> user id of the journal's linked accounts."""
        rows = await self.store.query(
            "SELECT account_id, user_id FROM links WHERE journal_id = ?", (journal_id,)
        )
        return {r[0]: r[1] for r in rows}
