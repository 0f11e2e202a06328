"""The call lifecycle. Everything that decides a call's state lives here.

States and events (``TRANSITIONS`` is the whole table; anything not in it raises
``CallStateError`` naming the state and the event)::

    scheduled --open-->   open --start--> running --end--> ended
    scheduled --edit-->   scheduled            (new times; only before the call opens)
    scheduled --cancel--> cancelled            (the journal deletes the call before it starts)
    open      --cancel--> cancelled
    scheduled --expire--> ended                (its whole time passed while nobody ran it)
    open      --expire--> ended

Rules:

- A call is joinable from ``opens_at_ms = start_ms - open_lead``. The lead defaults to 0, so by
  default ``open`` and ``start`` happen at the same instant: R25 and the manual ("В указанное
  время начала урока он станет доступным") make the "go" link work from the start time. A
  school may set a lead so people can connect early; attendance still counts from the start.
- Time events have guards: ``open`` not before ``opens_at_ms``, ``start`` not before
  ``start_ms``, ``expire`` not before ``end_ms``. There is no manual start: the lesson starts
  by itself (R17). ``end`` is allowed any time while running: the red button (R23), the
  journal's "Закончить видеоконференцию", or the scheduler at ``end_ms``.
- ``expire`` exists so a call whose whole time passed while the daemon was down ends
  without ever having run (``started_at_ms`` stays ``None``): nobody could join, so the
  journal gets no attendance for it rather than a class marked absent.
- ``due(call, now)`` lists the events a scheduler should apply now, in order; applying them
  leaves ``due`` empty. ``catch_up(calls, now)`` does that for a whole set at start-up: it
  ends what is over before it starts anything, so back-to-back lessons of a class hand over
  cleanly, and it holds back a start while another lesson call of the class runs (R24).
- Per class (``class_id``; ``None`` is a call started in a chat, outside these rules):
  at most one running lesson call (R24), and lesson calls that still occupy time
  (scheduled, open, running) must not overlap. Intervals are half-open, so 12:00-13:00 and
  13:00-14:00 do not overlap.
- New times (``schedule`` and ``edit``) must have ``end > start``, ``end`` in the future,
  ``start`` no earlier than ``now - schedule_grace`` and a length within ``max_call``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from sferumd.services.calls.errors import CallCode, CallError, CallStateError
from sferumd.services.calls.settings import CallSettings


class CallState(StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    RUNNING = "running"
    ENDED = "ended"
    CANCELLED = "cancelled"


class CallEvent(StrEnum):
    OPEN = "open"
    START = "start"
    END = "end"
    EXPIRE = "expire"
    CANCEL = "cancel"
    EDIT = "edit"


_S, _E = CallState, CallEvent
TRANSITIONS: Mapping[tuple[CallState, CallEvent], CallState] = MappingProxyType(
    {
        (_S.SCHEDULED, _E.OPEN): _S.OPEN,
        (_S.SCHEDULED, _E.EDIT): _S.SCHEDULED,
        (_S.SCHEDULED, _E.CANCEL): _S.CANCELLED,
        (_S.SCHEDULED, _E.EXPIRE): _S.ENDED,
        (_S.OPEN, _E.START): _S.RUNNING,
        (_S.OPEN, _E.CANCEL): _S.CANCELLED,
        (_S.OPEN, _E.EXPIRE): _S.ENDED,
        (_S.RUNNING, _E.END): _S.ENDED,
    }
)
FINAL: frozenset[CallState] = frozenset({_S.ENDED, _S.CANCELLED})
# States that hold the class's time: a new lesson call may not overlap them.
OCCUPYING: frozenset[CallState] = frozenset({_S.SCHEDULED, _S.OPEN, _S.RUNNING})


@dataclass(frozen=True, slots=True)
class Call:
    """One call. ``class_id`` is the lesson's class; ``None`` for a call started in a chat."""

    call_id: str
    class_id: str | None
    start_ms: int
    end_ms: int
    opens_at_ms: int  # fixed when scheduled or edited, so a later settings change moves nothing
    state: CallState = CallState.SCHEDULED
    opened_at_ms: int | None = None
    started_at_ms: int | None = None
    ended_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DuePlan:
    """What a scheduler should do now: ``actions`` in order, and starts held back by R24."""

    actions: tuple[tuple[str, CallEvent], ...]
    held: tuple[str, ...]


def next_state(state: CallState, event: CallEvent) -> CallState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise CallStateError(state.value, event.value) from None


def allowed_events(state: CallState) -> frozenset[CallEvent]:
    return frozenset(e for (s, e) in TRANSITIONS if s is state)


def check_times(start_ms: int, end_ms: int, now_ms: int, settings: CallSettings) -> None:
    """Times of a new or edited call; the most specific complaint wins."""
    if end_ms <= start_ms:
        raise CallError(CallCode.INVALID_TIMES, f"end {end_ms} is not after start {start_ms}")
    if end_ms <= now_ms:
        raise CallError(CallCode.END_IN_PAST, f"end {end_ms} is not after now {now_ms}")
    if start_ms < now_ms - settings.schedule_grace_ms:
        raise CallError(
            CallCode.START_IN_PAST,
            f"start {start_ms} is more than {settings.schedule_grace_s} s before now {now_ms}",
        )
    if end_ms - start_ms > settings.max_call_ms:
        raise CallError(CallCode.TOO_LONG, f"a call may last at most {settings.max_call_s} s")


def schedule(
    call_id: str,
    class_id: str | None,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    settings: CallSettings,
) -> Call:
    check_times(start_ms, end_ms, now_ms, settings)
    return Call(call_id, class_id, start_ms, end_ms, start_ms - settings.open_lead_ms)


def edit(call: Call, start_ms: int, end_ms: int, now_ms: int, settings: CallSettings) -> Call:
    """New times for a call that has not opened yet (the journal moved the lesson)."""
    next_state(call.state, CallEvent.EDIT)
    check_times(start_ms, end_ms, now_ms, settings)
    opens_at = start_ms - settings.open_lead_ms
    return replace(call, start_ms=start_ms, end_ms=end_ms, opens_at_ms=opens_at)


def apply(call: Call, event: CallEvent, now_ms: int) -> Call:
    """One time or command event (not ``edit``, which needs times: use ``edit``)."""
    if event is CallEvent.EDIT:
        raise ValueError("an edit carries new times: use lifecycle.edit")
    target = next_state(call.state, event)
    _guard(call, event, now_ms)
    if event is CallEvent.OPEN:
        return replace(call, state=target, opened_at_ms=now_ms)
    if event is CallEvent.START:
        return replace(call, state=target, started_at_ms=now_ms)
    return replace(call, state=target, ended_at_ms=now_ms)


def _guard(call: Call, event: CallEvent, now_ms: int) -> None:
    not_before = {
        CallEvent.OPEN: (call.opens_at_ms, "opens"),
        CallEvent.START: (call.start_ms, "starts"),
        CallEvent.EXPIRE: (call.end_ms, "ends"),
    }.get(event)
    if not_before is not None and now_ms < not_before[0]:
        at, what = not_before
        raise CallStateError(call.state.value, event.value, f"it {what} at {at}, now is {now_ms}")


def due(call: Call, now_ms: int) -> list[CallEvent]:
    """The events that should happen to ``call`` at ``now_ms``, in the order to apply them."""
    if call.state is CallState.RUNNING:
        return [CallEvent.END] if now_ms >= call.end_ms else []
    if call.state not in (CallState.SCHEDULED, CallState.OPEN):
        return []
    if now_ms >= call.end_ms:
        return [CallEvent.EXPIRE]
    events: list[CallEvent] = []
    if call.state is CallState.SCHEDULED and now_ms >= call.opens_at_ms:
        events.append(CallEvent.OPEN)
    if now_ms >= call.start_ms and (events or call.state is CallState.OPEN):
        events.append(CallEvent.START)
    return events


def next_wakeup(call: Call) -> int | None:
    """The earliest time at which ``due`` will have something to do, for a timer."""
    if call.state is CallState.SCHEDULED:
        return call.opens_at_ms
    if call.state is CallState.OPEN:
        return call.start_ms
    if call.state is CallState.RUNNING:
        return call.end_ms
    return None


def due_all(calls: Iterable[Call], now_ms: int) -> DuePlan:
    """``due`` for a set of calls, ordered so the set stays valid when applied in order.

    Ends and expiries first (a class's lesson that is over frees the class), then opens, then
    starts; a start is held back while another lesson call of its class is running.
    """
    pending = sorted(calls, key=lambda c: (c.start_ms, c.call_id))
    finishing = [(c.call_id, e) for c in pending for e in due(c, now_ms) if _finishes(e)]
    done = {call_id for call_id, _ in finishing}
    busy = {c.class_id for c in pending if c.state is CallState.RUNNING and c.call_id not in done}
    opening: list[tuple[str, CallEvent]] = []
    starting: list[tuple[str, CallEvent]] = []
    held: list[str] = []
    for c in pending:
        events = [e for e in due(c, now_ms) if not _finishes(e)]
        if CallEvent.OPEN in events:
            opening.append((c.call_id, CallEvent.OPEN))
        if CallEvent.START not in events:
            continue
        if c.class_id is not None and c.class_id in busy:
            held.append(c.call_id)
            continue
        starting.append((c.call_id, CallEvent.START))
        if c.class_id is not None:
            busy.add(c.class_id)
    return DuePlan(tuple(finishing + opening + starting), tuple(held))


def _finishes(event: CallEvent) -> bool:
    return event in (CallEvent.END, CallEvent.EXPIRE)


def catch_up(calls: Iterable[Call], now_ms: int) -> tuple[dict[str, Call], DuePlan]:
    """Apply everything due (at start-up, or on each timer tick); returns calls by id."""
    by_id = {c.call_id: c for c in calls}
    plan = due_all(by_id.values(), now_ms)
    for call_id, event in plan.actions:
        by_id[call_id] = apply(by_id[call_id], event, now_ms)
    return by_id, plan


def running_lessons_ok(calls: Iterable[Call]) -> bool:
    """R24 as an invariant: no class has two running lesson calls."""
    seen: set[str] = set()
    for c in calls:
        if c.state is CallState.RUNNING and c.class_id is not None:
            if c.class_id in seen:
                return False
            seen.add(c.class_id)
    return True


def check_can_start(calls: Iterable[Call], call: Call) -> None:
    """R24: refuse to start ``call`` while another lesson call of its class is running."""
    if call.class_id is None:
        return
    for other in calls:
        if (
            other.call_id != call.call_id
            and other.class_id == call.class_id
            and other.state is CallState.RUNNING
        ):
            raise CallError(
                CallCode.CLASS_BUSY,
                f"call {other.call_id} of class {call.class_id} is still running",
            )


def overlapping(calls: Iterable[Call], candidate: Call) -> list[Call]:
    """Lesson calls of the candidate's class whose time intersects the candidate's."""
    if candidate.class_id is None:
        return []
    return [
        other
        for other in calls
        if other.call_id != candidate.call_id
        and other.class_id == candidate.class_id
        and other.state in OCCUPYING
        and other.start_ms < candidate.end_ms
        and candidate.start_ms < other.end_ms
    ]


def check_no_overlap(calls: Iterable[Call], candidate: Call) -> None:
    clash = overlapping(calls, candidate)
    if clash:
        other = min(clash, key=lambda c: (c.start_ms, c.call_id))
        raise CallError(
            CallCode.LESSON_OVERLAP,
            f"class {candidate.class_id} already has call {other.call_id} "
            f"from {other.start_ms} to {other.end_ms}",
        )


def attendance_window(call: Call) -> tuple[int, int] | None:
    """The time attendance counts over: from the actual start to the end, clipped to the
    scheduled end (a late scheduler tick doesn't lengthen the lesson). ``None`` if it never
    ran."""
    if call.started_at_ms is None:
        return None
    end = call.end_ms if call.ended_at_ms is None else min(call.ended_at_ms, call.end_ms)
    return call.started_at_ms, max(call.started_at_ms, end)
