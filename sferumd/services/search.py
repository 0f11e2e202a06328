"""Message search: the ``search`` op, over the messages a user was delivered.

Visibility is live delivery's (``sync.visible_intervals``), the rule of catch-up: in each
room the user ever joined, the events from their join to their leave, and no others. So a
user who joined late finds nothing from before their join, one who left finds nothing
after their leave, an invite alone shows nothing, and a room the user never joined gets
the answer a room that does not exist gets (``not_member``). Note that this is narrower
than ``history``, which lets a member read the room's past from before their join.

The index is ``store.search``'s; this module turns the person's words into a query
(``textsearch``), keeps it to the user's rooms and intervals, and pages newest first. It
also runs the index's background chores: moving the messages staged in their commits into
the full-text index (``search.flush_interval_s``, see ``store.search``), purging deleted
terms from its storage a little after a redaction (``search.purge_delay_s``), and indexing
the events stored before the index existed, once, after an upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from protocol import frames as f
from protocol.codec import MSGPACK
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from sferumd import textsearch
from sferumd.config import SearchSettings
from sferumd.hub import Hub
from sferumd.model import Device
from sferumd.services import membership as ms
from sferumd.services.sync import visible_intervals
from sferumd.store.search import SearchStore, Span
from sferumd.store.search_index import indexable_texts

log = logging.getLogger(__name__)


class SearchService:
    def __init__(self, index: SearchStore, hub: Hub, settings: SearchSettings, limits: Limits):
        self.index = index
        self.hub = hub
        self.settings = settings
        self.limits = limits
        self._chores: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.index.open()
        self._chores = [
            asyncio.create_task(self._backfill(), name="search-backfill"),
            asyncio.create_task(self._flush_loop(), name="search-flush"),
            asyncio.create_task(self._purge_loop(), name="search-purge"),
        ]

    async def stop(self) -> None:
        for task in self._chores:
            task.cancel()
        for task in self._chores:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.index.close()

    # -- the op ----------------------------------------------------------------------------

    async def search(self, device: Device, req: f.Search) -> dict[str, Any]:
        s = self.settings
        query = textsearch.parse_query(req.query, s.max_terms, s.min_prefix_chars)
        upto = self.hub.committed_pos
        if req.before is not None:
            upto = min(upto, req.before - 1)
        spans = await self._spans(device.user_id, req.room_id, upto)
        if not query or not spans:
            return {"results": [], "next": None}
        rooms = sorted({room for room, _, _ in spans})
        room_terms = [textsearch.room_term(r) for r in rooms]
        events = await self.index.find(query, room_terms, spans, upto + 1, req.limit + 1)
        more = len(events) > req.limit
        results: list[dict[str, Any]] = []
        size = 0
        for ev in events[: req.limit]:
            hit: dict[str, Any] = {"event": ev.to_wire()}
            cut = textsearch.snippet(indexable_texts(ev.type, ev.content), query, s.snippet_chars)
            if cut is not None:
                hit["snippet"] = cut.to_wire()
            # A page stays within the history page's byte budget, like history.
            size += len(MSGPACK.encode(hit))
            if size > self.limits.history_max_bytes and results:
                more = True
                break
            results.append(hit)
        return {"results": results, "next": results[-1]["event"]["pos"] if more else None}

    async def _spans(self, user_id: str, room_id: str | None, upto: int) -> list[Span]:
        """The (room, lo, hi) intervals of events the user was delivered, up to ``upto``, in
        the rooms they ever joined (all of them, or ``room_id``'s)."""
        member_events = await self.index.store.member_history(user_id, self.hub.committed_pos)
        joined = {e.room_id for e in member_events if e.content.get("membership") == ms.JOIN}
        if room_id is not None:
            if room_id not in joined:
                # The same answer for "no such room" and "not yours": room ids don't leak.
                raise ProtocolError(ErrorCode.NOT_MEMBER, f"you are not a member of room {room_id}")
            joined = {room_id}
        intervals = visible_intervals(member_events, self.hub.committed_pos)
        return [
            (room, lo, min(hi, upto))
            for room in sorted(joined)
            for lo, hi in intervals.get(room, [])
            if lo < min(hi, upto)
        ]

    # -- background chores -----------------------------------------------------------------

    async def _backfill(self) -> None:
        try:
            if not await self.index.backfill_pending():
                return
            log.info("search: indexing the messages stored before the index")
            while await self.index.backfill_step(self.settings.backfill_batch):
                await asyncio.sleep(0)  # let requests in between the batches
            log.info("search: older messages indexed")
        except RuntimeError:
            pass  # the store is closing; the next start goes on where this one stopped

    async def _flush_loop(self) -> None:
        """Moves staged messages into the full-text index every ``flush_interval_s``."""
        rows = self.settings.flush_rows
        while True:
            try:
                while await self.index.staged() and await self.index.flush(rows):
                    await asyncio.sleep(0)
            except RuntimeError:
                return  # the store is closing; the staged rows are moved after the next start
            except Exception:
                log.exception("search: moving staged messages into the index failed")
            await asyncio.sleep(self.settings.flush_interval_s)

    async def _purge_loop(self) -> None:
        pages = self.settings.purge_pages
        while True:
            await asyncio.sleep(self.settings.purge_delay_s)
            try:
                covered = await self.index.purge_start(pages)
                while covered and await self.index.purge_step(pages, covered):
                    await asyncio.sleep(0)
            except RuntimeError:
                return  # the store is closing; a purge still due runs after the next start
            except Exception:
                log.exception("search: purging deleted terms failed; retrying later")
