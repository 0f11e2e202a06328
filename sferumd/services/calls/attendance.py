"""Attendance of an online lesson, for the journal. Every attendance rule lives here.

Rules:

- Input: a person's join/leave intervals (one per session: several devices, reconnects,
  overlaps and duplicates are all normal) and the lesson's window, ``[start, end)``. An
  interval still open (``left_ms is None``) counts up to the window's end.
- Time in the lesson is the *union* of the intervals clipped to the window: two devices at
  once count once, so it never exceeds the window, and neither the order nor repeats of the
  intervals change anything.
- ``minutes`` is that time rounded *down* to whole minutes: the journal is never told of a
  minute that was not attended in full.
- ``present``: in the lesson at least ``present_min_s`` (default one minute, so a stray
  click on the link does not count), or for the whole window if the window is shorter.
- ``joined_late``: present, and first in the lesson later than ``start + late_grace_s``.
  Joining before the start (when the call opens early) is on time.
- ``left_early``: present, and last in the lesson earlier than ``end - early_leave_grace_s``.
  Lateness and leaving early are not reported for an absent student.
- For a lesson call the window is ``lifecycle.attendance_window``: from the moment the call
  actually started to its end, clipped to the scheduled end. A call that never ran (it
  expired while the daemon was down) has no attendance at all, rather than a class of
  absentees. Only the call's students are reported, all of them, absent ones included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sferumd.services.calls.errors import CallStateError
from sferumd.services.calls.lifecycle import Call, CallState, attendance_window
from sferumd.services.calls.participants import CallRoster, Category
from sferumd.services.calls.settings import CallSettings

_MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Attendance:
    person_id: str
    present: bool
    minutes: int
    attended_ms: int
    joined_late: bool
    left_early: bool
    first_in_ms: int | None  # first moment in the lesson window; None if never
    last_out_ms: int | None  # last moment in it


def union(
    intervals: Iterable[tuple[int, int | None]], start_ms: int, end_ms: int
) -> list[tuple[int, int]]:
    """The intervals clipped to ``[start, end)`` and merged: sorted, disjoint, non-empty."""
    clipped = sorted(
        (max(a, start_ms), min(end_ms if b is None else b, end_ms)) for a, b in intervals
    )
    merged: list[tuple[int, int]] = []
    for a, b in clipped:
        if a >= b:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def attendance(
    person_id: str,
    intervals: Iterable[tuple[int, int | None]],
    start_ms: int,
    end_ms: int,
    settings: CallSettings,
) -> Attendance:
    spans = union(intervals, start_ms, end_ms)
    attended = sum(b - a for a, b in spans)
    needed = min(settings.present_min_ms, max(0, end_ms - start_ms))
    present = attended > 0 and attended >= needed
    first = spans[0][0] if spans else None
    last = spans[-1][1] if spans else None
    late = present and first is not None and first > start_ms + settings.late_grace_ms
    early = present and last is not None and last < end_ms - settings.early_leave_grace_ms
    return Attendance(
        person_id, present, attended // _MINUTE_MS, attended, late, early, first, last
    )


def lesson_attendance(
    call: Call, roster: CallRoster, settings: CallSettings
) -> tuple[Attendance, ...] | None:
    """Every student's attendance of an ended lesson call, by person id; ``None`` if the call
    never ran."""
    if call.state is not CallState.ENDED:
        raise CallStateError(call.state.value, "report attendance of", "it has not ended")
    window = attendance_window(call)
    if window is None:
        return None
    start, end = window
    students = sorted(p for p, inv in roster.invitees.items() if inv.category is Category.STUDENT)
    out = []
    for person_id in students:
        p = roster.participants.get(person_id)
        spans = [] if p is None else [(i.joined_ms, i.left_ms) for i in p.intervals]
        out.append(attendance(person_id, spans, start, end, settings))
    return tuple(out)
