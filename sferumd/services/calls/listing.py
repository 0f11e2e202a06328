"""A user's list of calls (R25, the ``calls`` op): the lesson calls they are one of the
people of (through their linked journal accounts) and the calls started in the chats they
are joined to, by start time, with what the diary shows of each: name, type, date, times
and whether its "Перейти" link works now.

Rules:

- Cancelled calls are left out (as in the journal's own list).
- A lesson call through accounts that are all blocked is listed with ``blocked`` and is not
  joinable; one unblocked account is enough (``call_join`` takes that one).
- ``joinable``: open or running, and (lesson calls) before the end time; the live call's
  state wins over the stored row, which may be a write behind.
- Times are given in the school's zone (``calls.time_zone``), like the lesson's name, so a
  browser shows the same date and times as the journal whatever its own zone.
"""

from __future__ import annotations

from typing import Any

from protocol import frames as f
from sferumd.model import Device
from sferumd.services.calls import codec
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls.codec import CallDocument
from sferumd.services.calls.report import local, rfc3339
from sferumd.services.calls.service import CallService
from sferumd.services.calls.settings import CallSettings
from sferumd.store.call_list import ListedCall, chat_calls, lesson_calls
from sferumd.store.calls import CallFacts, CallRow

JOINABLE = (lc.CallState.OPEN, lc.CallState.RUNNING)


def call_item(
    facts: CallFacts,
    name: str,
    doc: CallDocument,
    settings: CallSettings,
    now_ms: int,
    *,
    blocked: bool = False,
) -> dict[str, Any]:
    """One call as the list shows it. A chat call has no planned end: its ``end`` is when
    it ended (``null`` while it runs)."""
    call = doc.call
    lesson = facts.kind == "lesson"
    end_ms = call.end_ms if lesson else call.ended_at_ms
    joinable = call.state in JOINABLE and not blocked and (not lesson or now_ms < call.end_ms)
    return {
        "call_id": facts.call_id,
        "kind": facts.kind,
        "name": name,
        "state": call.state.value,
        "date": local(call.start_ms, settings).date().isoformat(),
        "start": rfc3339(call.start_ms, settings),
        "end": rfc3339(end_ms, settings),
        "start_ms": call.start_ms,
        "end_ms": end_ms,
        "chat_room_id": facts.room_id,
        "room_id": facts.call_room_id,
        "joinable": joinable,
        "blocked": blocked,
        "url": f"/calls/{facts.call_id}",
    }


class CallListing:
    def __init__(self, calls: CallService):
        self.calls = calls

    def _current(self, row: CallRow) -> tuple[CallFacts, str, CallDocument]:
        live = self.calls.live.get(row.facts.call_id)
        if live is not None:
            return live.facts, live.name, live.doc
        return row.facts, row.name, codec.load(row.data)

    async def list_calls(self, device: Device, req: f.ListCalls) -> dict[str, Any]:
        calls, user = self.calls, device.user_id
        from_ms, want = req.from_ms or 0, req.limit + 1  # one more tells whether there are more
        found: dict[str, ListedCall] = {}
        for link, _ in await calls.db.user_links(user):
            for listed in await lesson_calls(
                calls.db, link.journal_id, link.account_id, from_ms, want
            ):
                have = found.get(listed.row.facts.call_id)
                if have is None or have.blocked:  # one unblocked account is enough
                    found[listed.row.facts.call_id] = listed
        joined = [r.room_id for r in calls.rooms.rooms_of(user) if user in r.joined]
        for listed in await chat_calls(calls.db, joined, from_ms, want):
            found.setdefault(listed.row.facts.call_id, listed)
        now = calls.clock.now_ms()
        ordered = sorted(found.values(), key=lambda c: (c.row.start_ms, c.row.facts.call_id))
        items = []
        for listed in ordered[:want]:
            facts, name, doc = self._current(listed.row)
            if doc.call.state is lc.CallState.CANCELLED:  # cancelled since the row was read
                continue
            blocked = listed.blocked
            if facts.kind == "lesson":  # the live roster may be newer than the stored row
                blocked = self._blocked(doc, user, listed.row, blocked)
            items.append(call_item(facts, name, doc, calls.settings, now, blocked=blocked))
        return {"calls": items[: req.limit], "more": len(items) > req.limit}

    def _blocked(self, doc: CallDocument, user: str, row: CallRow, stored: bool) -> bool:
        live = self.calls.live.get(row.facts.call_id)
        person = live.person_of(user) if live is not None else None
        invitee = doc.roster.invitees.get(person) if person is not None else None
        return stored if invitee is None else invitee.blocked
