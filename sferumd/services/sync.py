"""Catch-up: the events a user missed since a stream position, exactly as live delivery
would have given them.

Live delivery sends a room's event to whoever was joined just before it, plus the target of
a membership event. So the user's own membership events define, per room, the intervals of
positions they receive; catch-up reads each room's events inside those intervals and past
``since``, newest first up to a per-room limit, and marks a gap where it stopped short.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sferumd.model import Event
from sferumd.services import membership as ms
from sferumd.store.base import Store

Interval = tuple[int, int]  # (lo, hi]: lo < pos <= hi


@dataclass(slots=True)
class CatchUp:
    events: list[Event] = field(default_factory=list)  # ascending position, all rooms
    gaps: dict[str, int] = field(default_factory=dict)  # room -> oldest position sent


def visible_intervals(member_events: list[Event], upto: int) -> dict[str, list[Interval]]:
    """Per room, the position intervals whose events reach the user (see module doc)."""
    out: dict[str, list[Interval]] = defaultdict(list)
    open_since: dict[str, int] = {}
    for ev in member_events:  # ascending position, all the user's own membership events
        membership = ev.content.get("membership")
        start = open_since.pop(ev.room_id, None)
        if membership == ms.JOIN:
            open_since[ev.room_id] = ev.pos - 1 if start is None else start
        elif start is not None:
            out[ev.room_id].append((start, ev.pos))  # the leave itself reaches the user
        else:
            out[ev.room_id].append((ev.pos - 1, ev.pos))  # an invite, or a ban from outside
    for room_id, start in open_since.items():
        out[room_id].append((start, upto))
    return out


async def catch_up(store: Store, user_id: str, since: int, upto: int, limit: int) -> CatchUp:
    result = CatchUp()
    intervals = visible_intervals(await store.member_history(user_id, upto), upto)
    for room_id, spans in intervals.items():
        room_events: list[Event] = []
        truncated = False
        for lo, hi in reversed(spans):  # newest interval first
            lo = max(lo, since)
            if hi <= lo:
                continue
            want = limit + 1 - len(room_events)
            chunk = await store.room_events(room_id, lo, hi, want)
            room_events[:0] = chunk
            if len(room_events) > limit:
                truncated = True
                break
        if truncated:
            room_events = room_events[len(room_events) - limit :]
            result.gaps[room_id] = room_events[0].pos if room_events else upto + 1
        result.events.extend(room_events)
    result.events.sort(key=lambda e: e.pos)
    return result
