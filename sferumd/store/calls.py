"""Persistence of calls and whiteboards (tables of the "Online lessons and calls" migration).

A call is one row: its fixed facts, and its changing state as the JSON document of
``services.calls.codec``, rewritten on every change through the main store's group commit,
so a change is durable in the order it was made. Lesson calls also list their invitees by
journal account (``call_invitees``) for the journal's "videoconferences of an account".
Whiteboards keep their ops since the last clear, one row per op.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from sferumd.store.sqlite import SqliteStore

ACTIVE_STATES = ("scheduled", "open", "running")
_FACTS = "call_id, kind, journal_id, chat_key, lesson_id, class_id, room_id, call_room_id"
_COLUMNS = f"{_FACTS}, name, state, start_ms, end_ms, created_ms, saved_ms, data, reported_ms"


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What never changes about a call once it is made."""

    call_id: str
    kind: str  # lesson (from the journal) or chat (started in a chat)
    journal_id: str | None
    chat_key: str | None  # the journal's subject chat id
    lesson_id: str | None
    class_id: str | None
    room_id: str  # the chat the call belongs to (the subject chat's room, or the chat)
    call_room_id: str  # the call's own chat


@dataclass(frozen=True, slots=True)
class CallRow:
    facts: CallFacts
    name: str
    state: str
    start_ms: int
    end_ms: int
    created_ms: int
    saved_ms: int
    data: dict[str, Any]  # services.calls.codec document
    reported_ms: int | None


@dataclass(frozen=True, slots=True)
class InviteeRow:
    person_id: str
    category: str
    blocked: bool


@dataclass(frozen=True, slots=True)
class OpRow:
    seq: int
    author: str
    at_ms: int
    op: dict[str, Any]


def _row(r: Sequence[Any]) -> CallRow:
    facts = CallFacts(*r[:8])
    name, state, start, end, created, saved, data, reported = r[8:]
    return CallRow(facts, name, state, start, end, created, saved, json.loads(data), reported)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class CallStore:
    def __init__(self, store: SqliteStore):
        self.store = store

    # -- calls -------------------------------------------------------------------------------

    def put(
        self,
        facts: CallFacts,
        name: str,
        created_ms: int,
        saved_ms: int,
        data: dict[str, Any],
        invitees: Sequence[InviteeRow] | None = None,
    ) -> Awaitable[None]:
        """The call's current state; ``invitees`` (lesson calls) replaces the listed ones.
        The document is encoded now, so later changes in memory don't leak into this write."""
        call = data["call"]
        encoded = _compact(data)
        row = (
            facts.call_id,
            facts.kind,
            facts.journal_id,
            facts.chat_key,
            facts.lesson_id,
            facts.class_id,
            facts.room_id,
            facts.call_room_id,
            name,
            call["state"],
            call["start_ms"],
            call["end_ms"],
            created_ms,
            saved_ms,
            encoded,
        )
        listed = None if invitees is None else list(invitees)

        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(
                f"INSERT INTO calls ({_COLUMNS.removesuffix(', reported_ms')})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (call_id) DO UPDATE SET lesson_id = excluded.lesson_id,"
                " name = excluded.name,"
                " state = excluded.state, start_ms = excluded.start_ms,"
                " end_ms = excluded.end_ms, saved_ms = excluded.saved_ms, data = excluded.data",
                row,
            )
            if listed is not None:
                cur.execute("DELETE FROM call_invitees WHERE call_id = ?", (facts.call_id,))
                cur.executemany(
                    "INSERT INTO call_invitees (call_id, person_id, category, blocked)"
                    " VALUES (?, ?, ?, ?)",
                    [(facts.call_id, i.person_id, i.category, int(i.blocked)) for i in listed],
                )

        return self.store.write(write)

    async def get(self, call_id: str) -> CallRow | None:
        rows = await self.store.query(f"SELECT {_COLUMNS} FROM calls WHERE call_id = ?", (call_id,))
        return _row(rows[0]) if rows else None

    async def active(self) -> list[CallRow]:
        """Calls that are scheduled, open or running: what the daemon keeps in memory."""
        rows = await self.store.query(
            f"SELECT {_COLUMNS} FROM calls WHERE state IN (?, ?, ?) ORDER BY start_ms, call_id",
            ACTIVE_STATES,
        )
        return [_row(r) for r in rows]

    async def of_person(self, journal_id: str, person_id: str) -> list[CallRow]:
        """A journal account's lesson calls, by start time."""
        rows = await self.store.query(
            f"SELECT {', '.join('c.' + c.strip() for c in _COLUMNS.split(','))}"
            " FROM call_invitees i JOIN calls c ON c.call_id = i.call_id"
            " WHERE i.person_id = ? AND c.journal_id = ? ORDER BY c.start_ms, c.call_id",
            (person_id, journal_id),
        )
        return [_row(r) for r in rows]

    async def of_lesson(self, journal_id: str, lesson_id: str) -> list[CallRow]:
        rows = await self.store.query(
            f"SELECT {_COLUMNS} FROM calls WHERE journal_id = ? AND lesson_id = ?"
            " ORDER BY created_ms",
            (journal_id, lesson_id),
        )
        return [_row(r) for r in rows]

    async def unreported(self) -> list[CallRow]:
        """Ended lesson calls whose attendance the journal has not taken yet."""
        rows = await self.store.query(
            f"SELECT {_COLUMNS} FROM calls WHERE kind = 'lesson' AND state = 'ended'"
            " AND reported_ms IS NULL ORDER BY start_ms"
        )
        return [_row(r) for r in rows]

    def set_reported(self, call_id: str, at_ms: int) -> Awaitable[None]:
        def write(cur: sqlite3.Cursor) -> None:
            cur.execute("UPDATE calls SET reported_ms = ? WHERE call_id = ?", (at_ms, call_id))

        return self.store.write(write)

    async def invitees(self, call_id: str) -> list[InviteeRow]:
        rows = await self.store.query(
            "SELECT person_id, category, blocked FROM call_invitees WHERE call_id = ?"
            " ORDER BY person_id",
            (call_id,),
        )
        return [InviteeRow(p, c, bool(b)) for p, c, b in rows]

    # -- whiteboards -------------------------------------------------------------------------

    async def board_ops(self, board_id: str) -> list[OpRow]:
        rows = await self.store.query(
            "SELECT seq, author, at_ms, op FROM whiteboard_ops WHERE board_id = ? ORDER BY seq",
            (board_id,),
        )
        return [OpRow(s, a, at, json.loads(op)) for s, a, at, op in rows]

    def add_op(
        self, board_id: str, seq: int, author: str, at_ms: int, op: dict[str, Any], clear: bool
    ) -> Awaitable[None]:
        """One accepted op; a clear drops what came before it (the clear itself stays, so the
        board's numbering goes on from it after a restart)."""
        encoded = _compact(op)

        def write(cur: sqlite3.Cursor) -> None:
            if clear:
                cur.execute("DELETE FROM whiteboard_ops WHERE board_id = ?", (board_id,))
            cur.execute(
                "INSERT INTO whiteboard_ops (board_id, seq, author, at_ms, op)"
                " VALUES (?, ?, ?, ?, ?)",
                (board_id, seq, author, at_ms, encoded),
            )

        return self.store.write(write)
