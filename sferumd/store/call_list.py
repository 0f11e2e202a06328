"""A user's list of calls (services.calls.listing, R25): the lesson calls of journal accounts
and the calls started in chats, from a start time on, by start time, at most a number of
them, cancelled ones left out. Chat calls are found by their chat (index ``calls_chat``),
lesson calls by account (``call_invitees_person``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sferumd.store.calls import _COLUMNS, CallRow, _row
from sferumd.store.sqlite import SqliteStore

CHUNK = 500  # room ids per query: well under SQLite's bound on parameters
_PREFIXED = ", ".join("c." + c.strip() for c in _COLUMNS.split(","))


@dataclass(frozen=True, slots=True)
class ListedCall:
    row: CallRow
    blocked: bool  # the account is blocked in this lesson call


async def lesson_calls(
    store: SqliteStore, journal_id: str, account_id: str, from_ms: int, limit: int
) -> list[ListedCall]:
    rows = await store.query(
        f"SELECT {_PREFIXED}, i.blocked FROM call_invitees i JOIN calls c"
        " ON c.call_id = i.call_id WHERE i.person_id = ? AND c.journal_id = ?"
        " AND c.start_ms >= ? AND c.state != 'cancelled'"
        " ORDER BY c.start_ms, c.call_id LIMIT ?",
        (account_id, journal_id, from_ms, limit),
    )
    return [ListedCall(_row(r[:-1]), bool(r[-1])) for r in rows]


async def chat_calls(
    store: SqliteStore, room_ids: Sequence[str], from_ms: int, limit: int
) -> list[ListedCall]:
    rows: list[CallRow] = []
    ids = sorted(set(room_ids))
    for at in range(0, len(ids), CHUNK):
        chunk = ids[at : at + CHUNK]
        marks = ", ".join("?" * len(chunk))
        found = await store.query(
            f"SELECT {_COLUMNS} FROM calls WHERE kind = 'chat' AND room_id IN ({marks})"
            " AND start_ms >= ? AND state != 'cancelled' ORDER BY start_ms, call_id LIMIT ?",
            (*chunk, from_ms, limit),
        )
        rows.extend(_row(r) for r in found)
    rows.sort(key=lambda r: (r.start_ms, r.facts.call_id))
    return [ListedCall(r, False) for r in rows[:limit]]
