"""Persistence of rich messages (the tables of the "Rich messages" migration).

``apply_event`` is the write half: ``SqliteStore._insert_event`` calls it inside the group
commit that stores each event, so what an event changes here is committed with it or not at
all, and a repeated transaction (dropped by the store) changes nothing:

- an **edit** (``{"replaces": ID, "body"}``) becomes a version of its message, and the
  message's stored content shows the newest text with ``"edited": {"event_id", "ts"}``;
  history and catch-up therefore read the latest text;
- a **reaction** (``{"relates_to": ID, "key"}``) is indexed by message, user and key;
- a **message** with ``mentions`` adds one row per mentioned user (the unread-mention count);
  one with ``poll`` registers the poll; a **poll_close** closes it;
- a **redaction** of an edit drops that version (the message shows the newest one left); of
  a reaction, its index row; of a message, all of it: its edits are redacted with it
  (``content: {}``, ``redacted_by`` the same redaction), its reactions are unindexed, its
  mentions and a poll's votes deleted.

It imports nothing of the store at run time, so the store can import it. ``MessageStore``
is the read half, plus the one write that is not an event: a vote.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from sferumd import ids, model
from sferumd.model import Event

if TYPE_CHECKING:
    from sferumd.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

EDIT_KEY = "replaces"  # an edit's content: {"replaces": EVENT_ID, "body": TEXT}
RELATES_KEY = "relates_to"  # a reaction's or a poll_close's content names its message here
EDITED_KEY = "edited"  # on an edited message: {"event_id", "ts"} of its newest edit
_EMPTY = msgpack.packb({})


def _pack(content: dict[str, Any]) -> bytes:
    return msgpack.packb(content, use_bin_type=True)  # type: ignore[no-any-return]


def _target_pos(content: dict[str, Any], key: str) -> tuple[str, int] | None:
    target = content.get(key)
    pos = ids.event_pos(target) if isinstance(target, str) else None
    return None if pos is None else (str(target), pos)


# -- the write half, inside the group commit -------------------------------------------------


def apply_event(cur: sqlite3.Cursor, ev: Event) -> None:
    """Keep the rich-message tables in step with ``ev`` (see the module doc)."""
    if ev.type == model.MESSAGE:
        if "mentions" not in ev.content and "poll" not in ev.content:
            return  # the hot path: a plain message changes nothing here
        handler: Callable[[sqlite3.Cursor, Event], None] = _message
    elif ev.type == model.REDACTION and ev.redacts is not None:
        handler = _redaction
    elif ev.type == model.EDIT:
        handler = _edit
    elif ev.type == model.REACTION:
        handler = _reaction
    elif ev.type == model.POLL_CLOSE:
        handler = _poll_close
    else:
        return
    # Never fail the commit (that stops the daemon): a bad row costs only its own changes.
    cur.execute("SAVEPOINT rich")
    try:
        handler(cur, ev)
    except Exception:
        cur.execute("ROLLBACK TO rich")
        log.exception("rich messages: could not apply an event", extra={"pos": ev.pos})
    cur.execute("RELEASE rich")


def _message(cur: sqlite3.Cursor, ev: Event) -> None:
    mentions = ev.content.get("mentions")
    if isinstance(mentions, list):
        users = {u for u in mentions if isinstance(u, str) and u != ev.sender}
        cur.executemany(
            "INSERT OR IGNORE INTO mentions (pos, user_id, room_id) VALUES (?, ?, ?)",
            [(ev.pos, u, ev.room_id) for u in sorted(users)],
        )
    poll = ev.content.get("poll")
    if isinstance(poll, dict) and isinstance(poll.get("options"), list):
        cur.execute(
            "INSERT OR IGNORE INTO polls (pos, room_id, sender, options, multiple, anonymous)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                ev.pos,
                ev.room_id,
                ev.sender,
                len(poll["options"]),
                int(poll.get("multiple") is True),
                int(poll.get("anonymous") is True),
            ),
        )


def _edit(cur: sqlite3.Cursor, ev: Event) -> None:
    target = _target_pos(ev.content, EDIT_KEY)
    body = ev.content.get("body")
    if target is None or not isinstance(body, str):
        return
    event_id, pos = target
    row = cur.execute(
        "SELECT content, ts, redacted_by FROM events"
        " WHERE pos = ? AND event_id = ? AND room_id = ?",
        (pos, event_id, ev.room_id),
    ).fetchone()
    if row is None or row[2] is not None:
        return  # services.messages refuses these; nothing to show the edit on
    content = msgpack.unpackb(row[0], raw=False)
    cur.execute(
        "INSERT INTO relations (pos, event_id, target_pos, rel, sender) VALUES (?, ?, ?, ?, ?)",
        (ev.pos, ev.event_id, pos, "edit", ev.sender),
    )
    first = content.get("body")
    cur.execute(  # the text before the first edit, once
        "INSERT OR IGNORE INTO message_versions VALUES (?, ?, ?, ?, ?)",
        (pos, pos, event_id, row[1], first if isinstance(first, str) else None),
    )
    cur.execute(
        "INSERT INTO message_versions VALUES (?, ?, ?, ?, ?)",
        (pos, ev.pos, ev.event_id, ev.ts, body),
    )
    content["body"] = body
    content[EDITED_KEY] = {"event_id": ev.event_id, "ts": ev.ts}
    cur.execute("UPDATE events SET content = ? WHERE pos = ?", (_pack(content), pos))


def _reaction(cur: sqlite3.Cursor, ev: Event) -> None:
    target = _target_pos(ev.content, RELATES_KEY)
    key = ev.content.get("key")
    if target is None or not isinstance(key, str):
        return
    cur.execute(
        "INSERT INTO relations (pos, event_id, target_pos, rel, sender, key)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (ev.pos, ev.event_id, target[1], "reaction", ev.sender, key),
    )


def _poll_close(cur: sqlite3.Cursor, ev: Event) -> None:
    target = _target_pos(ev.content, RELATES_KEY)
    if target is not None:
        cur.execute(
            "UPDATE polls SET closed_pos = ? WHERE pos = ? AND room_id = ? AND closed_pos IS NULL",
            (ev.pos, target[1], ev.room_id),
        )


def _redaction(cur: sqlite3.Cursor, ev: Event) -> None:
    assert ev.redacts is not None
    pos = ids.event_pos(ev.redacts)
    if pos is None:
        return
    rel = cur.execute("SELECT target_pos, rel FROM relations WHERE pos = ?", (pos,)).fetchone()
    if rel is not None:  # an edit or a reaction
        cur.execute("DELETE FROM relations WHERE pos = ?", (pos,))
        if rel[1] == "edit":
            cur.execute(
                "DELETE FROM message_versions WHERE target_pos = ? AND pos = ?", (rel[0], pos)
            )
            _show_newest(cur, rel[0])
        return
    # A message: its edits go with it, the rest that hangs on it is forgotten.
    cur.execute(
        "UPDATE events SET content = ?, redacted_by = ? WHERE redacted_by IS NULL AND pos IN"
        " (SELECT pos FROM relations WHERE target_pos = ? AND rel = 'edit')",
        (_EMPTY, ev.event_id, pos),
    )
    cur.execute("DELETE FROM relations WHERE target_pos = ?", (pos,))
    cur.execute("DELETE FROM message_versions WHERE target_pos = ?", (pos,))
    cur.execute("DELETE FROM mentions WHERE pos = ?", (pos,))
    cur.execute("DELETE FROM poll_votes WHERE poll_pos = ?", (pos,))
    cur.execute("DELETE FROM polls WHERE pos = ?", (pos,))


def _show_newest(cur: sqlite3.Cursor, pos: int) -> None:
    """After an edit was redacted: the message shows the newest version left (its first text
    when no edit is left, and then it is no longer marked edited)."""
    row = cur.execute("SELECT content, redacted_by FROM events WHERE pos = ?", (pos,)).fetchone()
    if row is None or row[1] is not None:
        return
    content = msgpack.unpackb(row[0], raw=False)
    versions = cur.execute(
        "SELECT pos, event_id, ts, body FROM message_versions WHERE target_pos = ? ORDER BY pos",
        (pos,),
    ).fetchall()
    if not versions:
        return
    newest = versions[-1]
    if newest[3] is None:
        content.pop("body", None)
    else:
        content["body"] = newest[3]
    if len(versions) == 1:
        content.pop(EDITED_KEY, None)
        cur.execute("DELETE FROM message_versions WHERE target_pos = ?", (pos,))
    else:
        content[EDITED_KEY] = {"event_id": newest[1], "ts": newest[2]}
    cur.execute("UPDATE events SET content = ? WHERE pos = ?", (_pack(content), pos))


# -- the read half ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poll:
    pos: int
    room_id: str
    sender: str
    options: int
    multiple: bool
    anonymous: bool
    closed_pos: int | None


@dataclass(frozen=True, slots=True)
class Version:
    event_id: str
    ts: int
    body: str | None


class MessageStore:
    def __init__(self, store: SqliteStore):
        self.store = store

    async def reaction(self, target_pos: int, sender: str, key: str) -> str | None:
        """The event id of the user's live reaction with this key, if any."""
        rows = await self.store.query(
            "SELECT event_id FROM relations"
            " WHERE target_pos = ? AND rel = 'reaction' AND sender = ? AND key = ?",
            (target_pos, sender, key),
        )
        return str(rows[0][0]) if rows else None

    async def reaction_count(self, target_pos: int, sender: str) -> int:
        rows = await self.store.query(
            "SELECT count(*) FROM relations WHERE target_pos = ? AND rel = 'reaction'"
            " AND sender = ?",
            (target_pos, sender),
        )
        return int(rows[0][0])

    async def reactions(self, target_pos: int) -> list[tuple[str, str, str]]:
        """(key, sender, event id) of the message's live reactions, oldest first."""
        rows = await self.store.query(
            "SELECT key, sender, event_id FROM relations"
            " WHERE target_pos = ? AND rel = 'reaction' ORDER BY pos",
            (target_pos,),
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def versions(self, target_pos: int) -> list[Version]:
        """The message's texts, first to newest; empty if it was never edited."""
        rows = await self.store.query(
            "SELECT event_id, ts, body FROM message_versions WHERE target_pos = ? ORDER BY pos",
            (target_pos,),
        )
        return [Version(*r) for r in rows]

    async def mention_counts(self, user_id: str) -> dict[str, int]:
        """Per room, the live messages mentioning the user after the user's read marker."""
        rows = await self.store.query(
            "SELECT m.room_id, count(*) FROM mentions m LEFT JOIN receipts r"
            " ON r.user_id = m.user_id AND r.room_id = m.room_id"
            " WHERE m.user_id = ? AND m.pos > coalesce(r.pos, 0) GROUP BY m.room_id",
            (user_id,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def poll(self, pos: int) -> Poll | None:
        rows = await self.store.query(
            "SELECT pos, room_id, sender, options, multiple, anonymous, closed_pos FROM polls"
            " WHERE pos = ?",
            (pos,),
        )
        if not rows:
            return None
        r = rows[0]
        return Poll(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), r[6])

    async def votes(self, poll_pos: int) -> list[tuple[int, str]]:
        """(choice, user) of every vote; services.polls never lets the users of an
        anonymous poll leave the server."""
        rows = await self.store.query(
            "SELECT choice, user_id FROM poll_votes WHERE poll_pos = ? ORDER BY choice, user_id",
            (poll_pos,),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    async def choices(self, poll_pos: int, user_id: str) -> list[int]:
        rows = await self.store.query(
            "SELECT choice FROM poll_votes WHERE poll_pos = ? AND user_id = ? ORDER BY choice",
            (poll_pos, user_id),
        )
        return [int(r[0]) for r in rows]

    def vote(
        self, poll_pos: int, user_id: str, choices: list[int]
    ) -> Awaitable[list[tuple[int, str]] | str]:
        """Replaces the user's vote, in the next group commit; resolves to every vote after
        it, or to ``"closed"`` / ``"gone"`` when the poll was closed or redacted by an event
        committed before (what the store holds decides, not what was read earlier)."""

        def write(cur: sqlite3.Cursor) -> list[tuple[int, str]] | str:
            row = cur.execute("SELECT closed_pos FROM polls WHERE pos = ?", (poll_pos,)).fetchone()
            if row is None:
                return "gone"
            if row[0] is not None:
                return "closed"
            cur.execute(
                "DELETE FROM poll_votes WHERE poll_pos = ? AND user_id = ?", (poll_pos, user_id)
            )
            cur.executemany(
                "INSERT INTO poll_votes (poll_pos, user_id, choice) VALUES (?, ?, ?)",
                [(poll_pos, user_id, c) for c in choices],
            )
            rows = cur.execute(
                "SELECT choice, user_id FROM poll_votes WHERE poll_pos = ?"
                " ORDER BY choice, user_id",
                (poll_pos,),
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows]

        return self.store.write(write)
