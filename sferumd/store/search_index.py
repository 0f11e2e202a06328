"""The write-path half of message search: what ``SqliteStore._insert_event`` calls inside
the group commit that stores an event, after ``store.messages.apply_event`` (see
``store.search`` for the whole design). It imports nothing of the store at run time, so the
store can import it.

What is indexed is what the event log shows: a message's text (``content.body``, a file's
name, a poll's question and options). An **edit** (``store.messages``) rewrites its
message's stored content, so the message is indexed again from it: the new wording is found
and the old one is not. The edit's own position is remembered (``search_edits``), so that
redacting the edit indexes the message again with the text it falls back to. Redacting a
message takes it out of the index.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import msgpack

from sferumd import ids, model, textsearch
from sferumd.model import Event
from sferumd.store.messages import EDIT_KEY

log = logging.getLogger(__name__)

INDEX = "search_index"
PENDING = "search_pending"  # analysed messages not yet in INDEX (see store.search)


def _strings(value: Any) -> list[str]:
    """The non-empty strings of a value that is a string or a list of strings."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value[:100] if isinstance(v, str) and v.strip()]
    return []


def indexable_texts(event_type: str, content: dict[str, Any]) -> list[str]:
    """The plain text of an event that search covers: a message's body, the name of a file
    it carries, a poll's question and options. Other events have none."""
    if event_type != model.MESSAGE:
        return []
    texts = _strings(content.get("body"))
    file = content.get("file")
    if isinstance(file, dict):
        texts += _strings(file.get("name"))
    poll = content.get("poll")
    if isinstance(poll, dict):
        texts += _strings(poll.get("question"))
        texts += _strings(poll.get("options"))
    return texts


def _terms(event_type: str, content: dict[str, Any]) -> str:
    try:
        return textsearch.document_terms(indexable_texts(event_type, content))
    except Exception:
        # A message the analysis can't take stays unsearchable; it must never fail the
        # commit (that stops the daemon).
        log.exception("search: could not analyse a message; it is not indexed")
        return ""


def index_event(cur: sqlite3.Cursor, ev: Event) -> None:
    """Inside the group commit that stores ``ev``: keep the index in step with it."""
    if ev.redacts is not None:
        target = ids.event_pos(ev.redacts)
        if target is not None:
            _unindex(cur, target)
            edited = cur.execute(
                "SELECT target_pos FROM search_edits WHERE edit_pos = ?", (target,)
            ).fetchone()
            if edited is not None:
                cur.execute("DELETE FROM search_edits WHERE edit_pos = ?", (target,))
                _reindex(cur, edited[0])
        return
    if ev.state_key is not None:
        return
    if ev.type == model.EDIT:
        replaces = ev.content.get(EDIT_KEY)
        pos = ids.event_pos(replaces) if isinstance(replaces, str) else None
        if pos is not None and pos < ev.pos:
            remember_edit(cur, ev.pos, pos)
            _reindex(cur, pos)
        return
    _stage(cur, ev.pos, ev.room_id, _terms(ev.type, ev.content))


def remember_edit(cur: sqlite3.Cursor, edit_pos: int, target_pos: int) -> None:
    cur.execute(
        "INSERT OR REPLACE INTO search_edits (edit_pos, target_pos) VALUES (?, ?)",
        (edit_pos, target_pos),
    )


def _reindex(cur: sqlite3.Cursor, pos: int) -> None:
    """Index the message at ``pos`` again, as the event log now shows it."""
    row = cur.execute(
        "SELECT room_id, type, content, redacted_by FROM events WHERE pos = ?", (pos,)
    ).fetchone()
    _unindex(cur, pos)
    if row is not None and row[3] is None:
        _stage(cur, pos, row[0], _terms(row[1], msgpack.unpackb(row[2], raw=False)))


def _stage(cur: sqlite3.Cursor, pos: int, room_id: str, terms: str) -> None:
    if terms:
        cur.execute(
            f"INSERT INTO {PENDING} (pos, terms, room) VALUES (?, ?, ?)",
            (pos, terms, textsearch.room_term(room_id)),
        )


def _unindex(cur: sqlite3.Cursor, pos: int) -> None:
    cur.execute(f"DELETE FROM {PENDING} WHERE pos = ?", (pos,))
    cur.execute(f"DELETE FROM {INDEX} WHERE rowid = ?", (pos,))
    if cur.rowcount > 0:
        cur.execute("UPDATE search_purge SET pending = pending + 1")


def move_pending(cur: sqlite3.Cursor, max_rows: int) -> bool:
    """Moves the oldest ``max_rows`` staged messages into the full-text index (one FTS5
    flush for all of them); returns whether more may be staged."""
    upto, count = cur.execute(
        f"SELECT max(pos), count(*) FROM (SELECT pos FROM {PENDING} ORDER BY pos LIMIT ?)",
        (max_rows,),
    ).fetchone()
    if upto is None:
        return False
    # A staged row is never in the index too (an edit takes it out first); were one there,
    # this flush would fail alone (it runs in a savepoint) and the row stay searchable here.
    cur.execute(
        f"INSERT INTO {INDEX} (rowid, terms, room)"
        f" SELECT pos, terms, room FROM {PENDING} WHERE pos <= ?",
        (upto,),
    )
    cur.execute(f"DELETE FROM {PENDING} WHERE pos <= ?", (upto,))
    return bool(count == max_rows)
