"""Breakout rooms ("сессионные залы", R21). Every breakout rule lives here.

Phases and events (``TRANSITIONS`` is the whole table; anything else raises
``BreakoutStateError`` naming the phase and the event)::

    draft   --move-->      draft        (edit the plan by hand before it starts)
    draft   --start-->     running      (rooms open, people go to them, the timer starts)
    draft   --close-->     closed       (a draft thrown away)
    running --move|choose|visit|broadcast|extend--> running
    running --warn-->      closing      (the timer's warning was sent)
    running --close_all--> closing      (the admin closes all: a countdown of the warning lead)
    closing --move|choose|visit|broadcast|close_all--> closing
    closing --extend-->    running      (more time: the countdown is called off)
    running|closing --close--> closed   (everyone is back in the main room)

Rules:

- A plan has 1..``max_breakout_rooms`` rooms (default 50: the manual's "до 50 групп").
  Room ids are ``<plan_id>.<n>``; ``scoped_id(call_id, room_id)`` names the room's own chat
  and whiteboard, and ``scoped_id(call_id, MAIN_ROOM)`` the main room's.
- People are placed by hand (room -> people), at random (an even split: room sizes differ
  by at most one; deterministic for a given seed, whatever order the people come in), from
  the journal's sub-groups (one room per group; group members the call doesn't have are
  skipped and listed), or by their own choice (``self_select``; an optional capacity).
  Whoever is not assigned stays in the main room. People who have not joined yet may be
  assigned: they go to their room when they join. A random split takes the students
  present (the manual: "разделять учеников на группы"); parents and staff who are there
  stay in the main room unless the admin lists them or moves them.
- Only invitees who may be in the call are placed (``unknown_people`` lists the others, the
  blocked, removed and refused included); nobody is in two rooms (``duplicate_assignment``);
  admins are never assigned (``admin_assigned``): they stay in the main room and visit any
  room (``visit``) without being counted as its member.
- Only admins build, start, move, broadcast, extend and close (``forbidden`` for others);
  participants only ``choose`` in a self-select plan. Capacity limits choices, not an
  admin's moves (a teacher may always put one more student in a room).
- Timer: ``ends_at = start + duration`` and ``warning_at = max(start, ends_at - warning
  lead)``. ``due(plan, now)`` tells the scheduler to ``warn`` and then ``close``. "Close
  all" gives the same countdown unless asked to close immediately; a second "close all"
  during the countdown does not make it longer.
- Broadcast addresses every breakout room and the main room.
- Where someone is: ``placement`` gives every person present exactly one place; while the
  plan is not running (draft, closed) that place is the main room for everyone.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from sferumd.services.calls.errors import BreakoutStateError, CallCode, CallError
from sferumd.services.calls.participants import (
    CallRoster,
    Category,
    is_admin,
    present,
    require_admin,
)
from sferumd.services.calls.settings import CallSettings

MAIN_ROOM = "main"
_PLAN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MIN_DURATION_MS = 60_000  # a shorter timer would warn before anyone got to their room


class Phase(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class BreakoutEvent(StrEnum):
    MOVE = "move"
    START = "start"
    CHOOSE = "choose"
    VISIT = "visit"
    BROADCAST = "broadcast"
    EXTEND = "extend"
    WARN = "warn"
    CLOSE_ALL = "close_all"
    CLOSE = "close"


_P, _B = Phase, BreakoutEvent
TRANSITIONS: Mapping[tuple[Phase, BreakoutEvent], Phase] = MappingProxyType(
    {
        (_P.DRAFT, _B.MOVE): _P.DRAFT,
        (_P.DRAFT, _B.START): _P.RUNNING,
        (_P.DRAFT, _B.CLOSE): _P.CLOSED,
        (_P.RUNNING, _B.MOVE): _P.RUNNING,
        (_P.RUNNING, _B.CHOOSE): _P.RUNNING,
        (_P.RUNNING, _B.VISIT): _P.RUNNING,
        (_P.RUNNING, _B.BROADCAST): _P.RUNNING,
        (_P.RUNNING, _B.EXTEND): _P.RUNNING,
        (_P.RUNNING, _B.WARN): _P.CLOSING,
        (_P.RUNNING, _B.CLOSE_ALL): _P.CLOSING,
        (_P.RUNNING, _B.CLOSE): _P.CLOSED,
        (_P.CLOSING, _B.MOVE): _P.CLOSING,
        (_P.CLOSING, _B.CHOOSE): _P.CLOSING,
        (_P.CLOSING, _B.VISIT): _P.CLOSING,
        (_P.CLOSING, _B.BROADCAST): _P.CLOSING,
        (_P.CLOSING, _B.EXTEND): _P.RUNNING,
        (_P.CLOSING, _B.CLOSE_ALL): _P.CLOSING,
        (_P.CLOSING, _B.CLOSE): _P.CLOSED,
    }
)
OPEN_PHASES: frozenset[Phase] = frozenset({_P.RUNNING, _P.CLOSING})


@dataclass(frozen=True, slots=True)
class BreakoutRoom:
    room_id: str
    number: int  # 1-based, as people say "room 3"
    name: str = ""  # empty: clients show "Зал <number>"


@dataclass(frozen=True, slots=True)
class BreakoutPlan:
    plan_id: str
    phase: Phase
    rooms: tuple[BreakoutRoom, ...]
    assignment: Mapping[str, str] = field(default_factory=dict)  # person -> room id
    self_select: bool = False
    capacity: int | None = None  # for self-selection only
    duration_ms: int | None = None  # None: no timer, the rooms run until "close all"
    started_at_ms: int | None = None
    ends_at_ms: int | None = None
    warning_at_ms: int | None = None
    visitors: Mapping[str, str] = field(default_factory=dict)  # admin -> room id
    closed_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message for every room's chat: the breakout rooms', then the main room's."""

    plan_id: str
    by: str
    text: str
    at_ms: int
    rooms: tuple[str, ...]


def next_phase(phase: Phase, event: BreakoutEvent) -> Phase:
    try:
        return TRANSITIONS[(phase, event)]
    except KeyError:
        raise BreakoutStateError(phase.value, event.value) from None


def scoped_id(call_id: str, room_id: str) -> str:
    """The name of a room's chat and whiteboard within a call."""
    return f"{call_id}/{room_id}"


# -- building plans ---------------------------------------------------------------------------


def plan_by_hand(
    plan_id: str,
    roster: CallRoster,
    actor_id: str,
    rooms: Sequence[Sequence[str]],
    settings: CallSettings,
    *,
    names: Sequence[str] = (),
    duration_ms: int | None = None,
) -> BreakoutPlan:
    """``rooms[i]`` are the people of room ``i + 1``."""
    require_admin(roster, actor_id, "plan breakout rooms")
    return _build(plan_id, roster, rooms, names, settings, duration_ms=duration_ms)


def plan_random(
    plan_id: str,
    roster: CallRoster,
    actor_id: str,
    room_count: int,
    seed: int,
    settings: CallSettings,
    *,
    people: Iterable[str] | None = None,
    names: Sequence[str] = (),
    duration_ms: int | None = None,
) -> BreakoutPlan:
    """An even random split of ``people`` (default: the students present now)."""
    require_admin(roster, actor_id, "plan breakout rooms")
    _check_room_count(room_count, settings)
    chosen = _present_students(roster) if people is None else people
    rooms = split_evenly(chosen, room_count, seed)
    return _build(plan_id, roster, rooms, names, settings, duration_ms=duration_ms)


def plan_from_groups(
    plan_id: str,
    roster: CallRoster,
    actor_id: str,
    groups: Mapping[str, Sequence[str]],
    settings: CallSettings,
    *,
    duration_ms: int | None = None,
) -> tuple[BreakoutPlan, tuple[str, ...]]:
    """One room per journal sub-group (name -> members), named after the group. Returns the
    plan and the members skipped because this call does not have them."""
    require_admin(roster, actor_id, "plan breakout rooms")
    skipped = sorted(
        {m for members in groups.values() for m in members if not _may_be_placed(roster, m)}
    )
    kept = [[m for m in members if m not in skipped] for members in groups.values()]
    plan = _build(plan_id, roster, kept, list(groups), settings, duration_ms=duration_ms)
    return plan, tuple(skipped)


def plan_self_select(
    plan_id: str,
    roster: CallRoster,
    actor_id: str,
    room_count: int,
    settings: CallSettings,
    *,
    capacity: int | None = None,
    names: Sequence[str] = (),
    duration_ms: int | None = None,
) -> BreakoutPlan:
    """Open rooms; each participant picks one (``choose``) once they are running."""
    require_admin(roster, actor_id, "plan breakout rooms")
    _check_room_count(room_count, settings)
    if capacity is not None and capacity < 1:
        raise CallError(CallCode.INVALID_FIELD, "capacity must be at least 1")
    empty: list[list[str]] = [[] for _ in range(room_count)]
    plan = _build(plan_id, roster, empty, names, settings, duration_ms=duration_ms)
    return replace(plan, self_select=True, capacity=capacity)


def _present_students(roster: CallRoster) -> list[str]:
    students = {p for p, inv in roster.invitees.items() if inv.category is Category.STUDENT}
    return [p for p in present(roster) if p in students and not is_admin(roster, p)]


def split_evenly(people: Iterable[str], room_count: int, seed: int) -> list[list[str]]:
    """Deal the shuffled people round the rooms like cards: sizes differ by at most one.
    Sorting first makes the result depend on who, not on the order they were listed."""
    if room_count < 1:
        raise CallError(CallCode.NO_ROOMS, "a split needs at least one room")
    deck = sorted(set(people))
    random.Random(seed).shuffle(deck)
    return [sorted(deck[i::room_count]) for i in range(room_count)]


def _build(
    plan_id: str,
    roster: CallRoster,
    rooms: Sequence[Sequence[str]],
    names: Sequence[str],
    settings: CallSettings,
    *,
    duration_ms: int | None,
) -> BreakoutPlan:
    if not _PLAN_ID.fullmatch(plan_id):
        raise CallError(CallCode.INVALID_FIELD, "plan_id must be 1-64 of A-Z a-z 0-9 _ -")
    _check_room_count(len(rooms), settings)
    _check_names(names, len(rooms), settings)
    _check_duration(duration_ms, settings)
    everyone = [p for members in rooms for p in members]
    _check_people(roster, everyone)
    seen: dict[str, int] = {}
    for number, members in enumerate(rooms, start=1):
        for person_id in members:
            if person_id in seen:
                raise CallError(
                    CallCode.DUPLICATE_ASSIGNMENT,
                    f"{person_id} is in room {seen[person_id]} and room {number}",
                )
            seen[person_id] = number
    made = tuple(
        BreakoutRoom(f"{plan_id}.{n}", n, names[n - 1].strip() if n <= len(names) else "")
        for n in range(1, len(rooms) + 1)
    )
    assignment = {p: made[n - 1].room_id for p, n in seen.items()}
    return BreakoutPlan(plan_id, Phase.DRAFT, made, assignment, duration_ms=duration_ms)


def _check_room_count(count: int, settings: CallSettings) -> None:
    if count < 1:
        raise CallError(CallCode.NO_ROOMS, "a plan needs at least one room")
    if count > settings.max_breakout_rooms:
        raise CallError(
            CallCode.TOO_MANY_ROOMS,
            f"{count} rooms asked for; at most {settings.max_breakout_rooms}",
        )


def _check_names(names: Sequence[str], count: int, settings: CallSettings) -> None:
    if len(names) > count:
        raise CallError(CallCode.INVALID_FIELD, f"{len(names)} names for {count} rooms")
    for i, name in enumerate(names, start=1):
        if len(name) > settings.max_room_name_chars:
            raise CallError(
                CallCode.TOO_LARGE,
                f"room {i}'s name is over {settings.max_room_name_chars} characters",
            )
        if any(not ch.isprintable() for ch in name):
            raise CallError(CallCode.INVALID_FIELD, f"room {i}'s name has control characters")


def _check_duration(duration_ms: int | None, settings: CallSettings) -> None:
    if duration_ms is not None and not _MIN_DURATION_MS <= duration_ms <= settings.max_breakout_ms:
        raise CallError(
            CallCode.INVALID_FIELD,
            f"a breakout timer runs 60..{settings.max_breakout_s} s",
        )


def _unknown(roster: CallRoster, person_id: str) -> bool:
    """Not someone who may be in this call: not invited, blocked, removed or refused."""
    invitee = roster.invitees.get(person_id)
    return invitee is None or invitee.blocked or person_id in roster.excluded


def _may_be_placed(roster: CallRoster, person_id: str) -> bool:
    return not _unknown(roster, person_id) and person_id not in roster.admins


def _check_people(roster: CallRoster, people: Iterable[str]) -> None:
    people = list(people)
    unknown = sorted({p for p in people if _unknown(roster, p)})
    if unknown:
        raise CallError(CallCode.UNKNOWN_PEOPLE, f"not in this call: {', '.join(unknown[:20])}")
    admins = sorted({p for p in people if p in roster.admins})
    if admins:
        raise CallError(
            CallCode.ADMIN_ASSIGNED, f"admins visit rooms, they are not assigned: {admins[0]}"
        )


# -- running plans ----------------------------------------------------------------------------


def start(
    plan: BreakoutPlan, roster: CallRoster, actor_id: str, now_ms: int, settings: CallSettings
) -> BreakoutPlan:
    require_admin(roster, actor_id, "open breakout rooms")
    phase = next_phase(plan.phase, BreakoutEvent.START)
    out = replace(plan, phase=phase, started_at_ms=now_ms)
    if plan.duration_ms is None:
        return out
    return _with_timer(out, now_ms + plan.duration_ms, now_ms, settings)


def _with_timer(
    plan: BreakoutPlan, ends_at_ms: int, now_ms: int, settings: CallSettings
) -> BreakoutPlan:
    warning_at = max(now_ms, ends_at_ms - settings.breakout_warning_ms)
    return replace(plan, ends_at_ms=ends_at_ms, warning_at_ms=warning_at)


def _room(plan: BreakoutPlan, room_id: str) -> BreakoutRoom:
    for room in plan.rooms:
        if room.room_id == room_id:
            return room
    raise CallError(CallCode.NOT_FOUND, f"no breakout room {room_id} in plan {plan.plan_id}")


def move(
    plan: BreakoutPlan, roster: CallRoster, actor_id: str, person_id: str, to_room: str
) -> BreakoutPlan:
    """An admin moves someone to a room, or back to the main room (``MAIN_ROOM``)."""
    require_admin(roster, actor_id, "move people between rooms")
    phase = next_phase(plan.phase, BreakoutEvent.MOVE)
    _check_people(roster, [person_id])
    return replace(plan, phase=phase, assignment=_assign(plan, person_id, to_room))


def _assign(plan: BreakoutPlan, person_id: str, to_room: str) -> dict[str, str]:
    rest = {p: r for p, r in plan.assignment.items() if p != person_id}
    if to_room == MAIN_ROOM:
        return rest
    return {**rest, person_id: _room(plan, to_room).room_id}


def choose(plan: BreakoutPlan, roster: CallRoster, person_id: str, room_id: str) -> BreakoutPlan:
    """A participant picks a room (or the main room) in a self-select plan."""
    phase = next_phase(plan.phase, BreakoutEvent.CHOOSE)
    if not plan.self_select:
        raise CallError(CallCode.NOT_SELF_SELECT, "the admin assigns rooms in this plan")
    _check_people(roster, [person_id])
    if room_id != MAIN_ROOM and plan.assignment.get(person_id) != room_id:
        _room(plan, room_id)
        if plan.capacity is not None and len(members(plan, room_id)) >= plan.capacity:
            raise CallError(CallCode.ROOM_FULL, f"room {room_id} has its {plan.capacity} people")
    return replace(plan, phase=phase, assignment=_assign(plan, person_id, room_id))


def visit(plan: BreakoutPlan, roster: CallRoster, actor_id: str, room_id: str) -> BreakoutPlan:
    """An admin looks in on a room (``MAIN_ROOM``: comes back); not counted as a member."""
    require_admin(roster, actor_id, "visit breakout rooms")
    phase = next_phase(plan.phase, BreakoutEvent.VISIT)
    rest = {a: r for a, r in plan.visitors.items() if a != actor_id}
    if room_id != MAIN_ROOM:
        rest[actor_id] = _room(plan, room_id).room_id
    return replace(plan, phase=phase, visitors=rest)


def broadcast(
    plan: BreakoutPlan,
    roster: CallRoster,
    actor_id: str,
    text: str,
    now_ms: int,
    settings: CallSettings,
) -> Broadcast:
    require_admin(roster, actor_id, "broadcast to breakout rooms")
    next_phase(plan.phase, BreakoutEvent.BROADCAST)
    if not text.strip():
        raise CallError(CallCode.INVALID_FIELD, "a broadcast needs some text")
    if len(text) > settings.max_broadcast_chars:
        raise CallError(
            CallCode.TOO_LARGE, f"a broadcast is at most {settings.max_broadcast_chars} characters"
        )
    rooms = (*(r.room_id for r in plan.rooms), MAIN_ROOM)
    return Broadcast(plan.plan_id, actor_id, text, now_ms, rooms)


def extend(
    plan: BreakoutPlan,
    roster: CallRoster,
    actor_id: str,
    ends_at_ms: int,
    now_ms: int,
    settings: CallSettings,
) -> BreakoutPlan:
    """A new end time (also calls off a running countdown)."""
    require_admin(roster, actor_id, "change the breakout timer")
    phase = next_phase(plan.phase, BreakoutEvent.EXTEND)
    if not now_ms < ends_at_ms <= now_ms + settings.max_breakout_ms:
        raise CallError(
            CallCode.INVALID_FIELD,
            f"the new end must be within {settings.max_breakout_s} s from now",
        )
    return _with_timer(replace(plan, phase=phase), ends_at_ms, now_ms, settings)


def close_all(
    plan: BreakoutPlan,
    roster: CallRoster,
    actor_id: str,
    now_ms: int,
    settings: CallSettings,
    *,
    immediate: bool = False,
) -> BreakoutPlan:
    """Everyone back to the main room: after the warning countdown, or now."""
    require_admin(roster, actor_id, "close breakout rooms")
    if immediate or plan.phase is Phase.DRAFT:
        return _close(plan, now_ms)
    phase = next_phase(plan.phase, BreakoutEvent.CLOSE_ALL)
    ends_at = now_ms + settings.breakout_warning_ms
    if plan.ends_at_ms is not None:
        ends_at = min(ends_at, max(now_ms, plan.ends_at_ms))
    return replace(plan, phase=phase, ends_at_ms=ends_at, warning_at_ms=now_ms)


def _close(plan: BreakoutPlan, now_ms: int) -> BreakoutPlan:
    phase = next_phase(plan.phase, BreakoutEvent.CLOSE)
    return replace(plan, phase=phase, visitors={}, closed_at_ms=now_ms)


# -- the timer --------------------------------------------------------------------------------


def due(plan: BreakoutPlan, now_ms: int) -> list[BreakoutEvent]:
    """What the timer should do now: warn, or close (a warning that is due as the rooms close
    is skipped: nobody needs a minute's notice of something happening now)."""
    if plan.phase not in OPEN_PHASES or plan.ends_at_ms is None:
        return []
    if now_ms >= plan.ends_at_ms:
        return [BreakoutEvent.CLOSE]
    warning_at = plan.warning_at_ms
    if plan.phase is Phase.RUNNING and warning_at is not None and now_ms >= warning_at:
        return [BreakoutEvent.WARN]
    return []


def advance(plan: BreakoutPlan, event: BreakoutEvent, now_ms: int) -> BreakoutPlan:
    """Apply a timer event from ``due`` (``warn`` or ``close``)."""
    if event is BreakoutEvent.WARN:
        if plan.warning_at_ms is None or now_ms < plan.warning_at_ms:
            raise BreakoutStateError(plan.phase.value, event.value, "the warning is not due")
        return replace(plan, phase=next_phase(plan.phase, event))
    if event is BreakoutEvent.CLOSE:
        if plan.ends_at_ms is None or now_ms < plan.ends_at_ms:
            raise BreakoutStateError(plan.phase.value, event.value, "the timer has not run out")
        return _close(plan, now_ms)
    raise ValueError(f"{event.value} is not a timer event")


# -- where everyone is ------------------------------------------------------------------------


def room_of(plan: BreakoutPlan, person_id: str) -> str:
    if plan.phase not in OPEN_PHASES:
        return MAIN_ROOM
    return plan.assignment.get(person_id, MAIN_ROOM)


def members(plan: BreakoutPlan, room_id: str) -> tuple[str, ...]:
    """The people assigned to a room (visitors are not members)."""
    return tuple(sorted(p for p, r in plan.assignment.items() if r == room_id))


def visitors_of(plan: BreakoutPlan, room_id: str) -> tuple[str, ...]:
    return tuple(sorted(a for a, r in plan.visitors.items() if r == room_id))


def placement(plan: BreakoutPlan, roster: CallRoster) -> dict[str, str]:
    """Every person in the call now -> the one room their media and chat belong to."""
    out: dict[str, str] = {}
    for person_id in present(roster):
        if is_admin(roster, person_id):
            visited = plan.visitors.get(person_id, MAIN_ROOM)
            out[person_id] = visited if plan.phase in OPEN_PHASES else MAIN_ROOM
        else:
            out[person_id] = room_of(plan, person_id)
    return out


def relocations(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(person, from, to) for everyone whose place changed: what the SFU must move."""
    return [
        (p, before[p], after[p])
        for p in sorted(before.keys() & after.keys())
        if before[p] != after[p]
    ]
