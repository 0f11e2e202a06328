"""The message search index: an FTS5 table beside the event log (the migration commented
"Message search"), and the reads and chores that go with it.

**Indexing is on the write path.** ``search_index.index_event`` runs inside the group
commit that stores the event (``SqliteStore._insert_event``) and writes the message's
analysed terms (``sferumd.textsearch``), keyed by its stream position, so an acknowledged
message is searchable, crash or not. It writes them to ``search_pending``, a plain table,
and ``flush`` moves them into the FTS5 table ``search_index`` (``rowid = pos``) a few
hundred at a time, in a group commit of its own. Why: FTS5 turns every transaction that
touched it into a new index segment, a fixed cost of 70-150 µs per commit measured here,
several times the rest of a one-message commit; a plain insert is 5-10 µs, and one FTS5
flush per few hundred messages costs 3-9 µs a message. Queries read both tables, so a
staged message is found at once. After a crash the staged rows are committed with their
events and are moved by the next start's first flush.

The index holds stems, never the message itself; hits are read back from the event log.
The FTS5 settings keep it small and its writes cheap: ``detail=none`` (no positions:
queries are sets of words, never phrases), ``columnsize=0`` (no ranking), and the
``ascii`` tokenizer with ``_`` as a word character, which takes the analysed terms as they
are and keeps a room's term (``_`` + hex of the room id) whole.

**Redaction** deletes the message's row from both tables in its own commit, so it is never
found again. SQLite 3.40 has no FTS5 ``secure-delete`` option (it came in 3.44): a deleted
row's terms stay in the index's older segments, masked by a delete marker, until those
segments are merged. So a deletion also counts in ``search_purge``, and ``purge_start`` /
``purge_step`` (driven by ``services.search``) merge every segment into one, a bounded
number of pages per group commit, after which the terms are gone from
``search_index_data``. Freed pages and cells are zeroed because the store's connection
runs with ``PRAGMA secure_delete``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from typing import Any

import aiosqlite

from sferumd import ids, model
from sferumd.model import Event
from sferumd.store.messages import EDIT_KEY
from sferumd.store.search_index import INDEX, PENDING, index_event, move_pending, remember_edit
from sferumd.store.sqlite import EVENT_COLUMNS, SqliteStore, row_to_event
from sferumd.textsearch import Query

Span = tuple[str, int, int]  # (room id, lo, hi): that room's events with lo < pos <= hi

_COLUMNS = ", ".join("e." + c.strip() for c in EVENT_COLUMNS.split(","))


class SearchStore:
    """Reads on a connection of their own (a heavy search never queues the sync and
    history reads behind it); writes through the main store's group commit."""

    def __init__(self, store: SqliteStore):
        self.store = store
        self._conn: Any = None

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self.store.path, isolation_level=None)
        await self._conn.execute("PRAGMA busy_timeout=5000")
        await self._conn.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _rows(self, sql: str, params: list[Any]) -> list[Any]:
        assert self._conn is not None, "search store is not open"
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def find(
        self, query: Query, room_terms: list[str], spans: list[Span], before: int, limit: int
    ) -> list[Event]:
        """The newest ``limit`` messages matching ``query`` with a position below ``before``
        inside one of ``spans`` (in the rooms of ``room_terms``), newest first."""
        if not query or not spans:
            return []
        values = ", ".join(["(?, ?, ?)"] * len(spans))
        with_spans = f"WITH spans (room_id, lo, hi) AS (VALUES {values}) "
        visible = (
            " AND e.redacted_by IS NULL AND EXISTS (SELECT 1 FROM spans v"
            " WHERE v.room_id = e.room_id AND e.pos > v.lo AND e.pos <= v.hi)"
        )
        span_params: list[Any] = [x for span in spans for x in span]
        oldest = min(lo for _, lo, _ in spans)  # the index is read by position: stop there
        # Staged rows are a handful (see the module doc); their terms are matched as words.
        words = [f" {t} " for t in query.terms]
        if query.prefix:
            words[-1] = words[-1][:-1]
        has_words = "".join(" AND instr(' ' || p.terms || ' ', ?) > 0" for _ in words)
        params = [*span_params, query.fts(room_terms), before, oldest, limit]
        params += [before, oldest, *words, limit]
        # One statement, so one snapshot: a flush between two reads can't hide a message.
        rows = await self._rows(
            with_spans
            + f"SELECT * FROM (SELECT {_COLUMNS} FROM {INDEX} s JOIN events e ON e.pos = s.rowid"
            f" WHERE {INDEX} MATCH ? AND s.rowid < ? AND s.rowid > ?{visible}"
            " ORDER BY s.rowid DESC LIMIT ?)"
            f" UNION ALL SELECT * FROM (SELECT {_COLUMNS} FROM {PENDING} p"
            f" JOIN events e ON e.pos = p.pos WHERE p.pos < ? AND p.pos > ?{has_words}{visible}"
            " ORDER BY p.pos DESC LIMIT ?)",
            params,
        )
        hits = {ev.pos: ev for ev in map(row_to_event, rows)}
        return [hits[pos] for pos in sorted(hits, reverse=True)[:limit]]

    # -- moving staged rows into the index -------------------------------------------------

    async def staged(self) -> bool:
        return bool(await self._rows(f"SELECT 1 FROM {PENDING} LIMIT 1", []))

    def flush(self, max_rows: int) -> Awaitable[bool]:
        """Moves up to ``max_rows`` staged messages into the index in one group commit;
        resolves to whether more are staged."""
        return self.store.write(lambda cur: move_pending(cur, max_rows))

    # -- purging deleted terms -------------------------------------------------------------

    def purge_start(self, pages: int) -> Awaitable[int]:
        """Starts merging every segment of the index into one, if rows were deleted since the
        last purge, and does the first ``pages`` of that work; resolves to the number of
        deletions the merge covers (0: nothing to purge, nothing done)."""

        def write(cur: sqlite3.Cursor) -> int:
            covered = int(cur.execute("SELECT pending FROM search_purge").fetchone()[0])
            if covered:
                # A negative page count gathers every segment into one merge (FTS5's
                # incremental 'optimize'), the delete markers of these deletions included.
                cur.execute(f"INSERT INTO {INDEX} ({INDEX}, rank) VALUES ('merge', ?)", (-pages,))
            return covered

        return self.store.write(write)

    def purge_step(self, pages: int, covered: int) -> Awaitable[bool]:
        """Goes on with the merge ``purge_start`` began, ``pages`` of work in one group
        commit; resolves to whether there is more. When there is not, the terms of the
        ``covered`` deletions are gone from the index's storage."""

        def write(cur: sqlite3.Cursor) -> bool:
            conn = cur.connection
            before = conn.total_changes
            cur.execute(f"INSERT INTO {INDEX} ({INDEX}, rank) VALUES ('merge', ?)", (pages,))
            if conn.total_changes - before >= 2:  # FTS5's sign that the merge did work
                return True
            # Deletions committed after purge_start are not covered: they stay pending.
            cur.execute("UPDATE search_purge SET pending = max(0, pending - ?)", (covered,))
            return False

        return self.store.write(write)

    # -- indexing what was stored before the index existed ---------------------------------

    async def backfill_pending(self) -> bool:
        return bool(await self._rows("SELECT 1 FROM search_backfill", []))

    def backfill_step(self, batch: int) -> Awaitable[bool]:
        """Indexes the next ``batch`` messages the migration found unindexed (as stored: with
        their newest edit's text) and remembers their edits, in one group commit; resolves
        to whether there is more."""

        def write(cur: sqlite3.Cursor) -> bool:
            row = cur.execute("SELECT after, upto FROM search_backfill").fetchone()
            if row is None:
                return False
            after, upto = row
            rows = cur.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE pos > ? AND pos <= ?"
                " AND state_key IS NULL AND type IN (?, ?) ORDER BY pos LIMIT ?",
                (after, upto, model.MESSAGE, model.EDIT, batch),
            ).fetchall()
            for r in rows:
                ev = row_to_event(r)
                if ev.redacted_by is not None:
                    continue
                if ev.type == model.MESSAGE:  # stored with the text of its newest edit
                    index_event(cur, ev)
                    continue
                replaces = ev.content.get(EDIT_KEY)
                target = ids.event_pos(replaces) if isinstance(replaces, str) else None
                if target is not None:
                    remember_edit(cur, ev.pos, target)
            while move_pending(cur, batch):
                pass
            if len(rows) < batch:
                cur.execute("DELETE FROM search_backfill")
                return False
            cur.execute("UPDATE search_backfill SET after = ?", (rows[-1][0],))
            return True

        return self.store.write(write)
