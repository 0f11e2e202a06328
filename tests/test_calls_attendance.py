"""Attendance: union of intervals, minutes, present / late / left early, and the report a
lesson call sends the journal."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import attendance as at
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.attendance import Attendance
from sferumd.services.calls.errors import CallStateError
from sferumd.services.calls.lifecycle import Call, CallEvent
from sferumd.services.calls.participants import Category, Invitee
from sferumd.services.calls.settings import CallSettings

SEC = 1000
MIN = 60 * SEC
T0 = 1_706_259_600_000
END = T0 + 45 * MIN
S = CallSettings()


def one(*intervals: tuple[int, int | None], settings: CallSettings = S) -> Attendance:
    return at.attendance("@a", list(intervals), T0, END, settings)


def test_whole_lesson() -> None:
    a = one((T0, END))
    assert (a.present, a.minutes, a.joined_late, a.left_early) == (True, 45, False, False)


def test_joining_early_counts_from_the_start_and_is_on_time() -> None:
    a = one((T0 - 10 * MIN, T0 + 20 * MIN))
    assert (a.minutes, a.first_in_ms, a.joined_late, a.left_early) == (20, T0, False, True)


def test_late_means_after_the_grace() -> None:
    assert not one((T0 + 5 * MIN, END)).joined_late
    late = one((T0 + 5 * MIN + 1, END))
    assert late.joined_late and late.minutes == 39  # 39:59.999 rounds down


def test_left_early_means_before_the_end_minus_the_grace() -> None:
    assert not one((T0, END - 5 * MIN)).left_early
    assert one((T0, END - 5 * MIN - 1)).left_early


def test_reconnects_and_two_devices_count_once() -> None:
    a = one(
        (T0, T0 + 10 * MIN),  # laptop
        (T0 + 5 * MIN, T0 + 15 * MIN),  # phone at the same time
        (T0 + 15 * MIN, T0 + 20 * MIN),  # laptop reconnects at once
        (T0 + 30 * MIN, None),  # back again, still there at the end
    )
    assert a.attended_ms == 35 * MIN and a.minutes == 35
    assert a.last_out_ms == END and not a.left_early


def test_a_stray_click_is_not_presence() -> None:
    a = one((T0, T0 + 59 * SEC))
    assert (a.present, a.minutes, a.joined_late, a.left_early) == (False, 0, False, False)
    late_click = one((T0 + 20 * MIN, T0 + 20 * MIN + 30 * SEC))
    assert (late_click.present, late_click.joined_late, late_click.left_early) == (False,) * 3
    assert one((T0, T0 + MIN)).present
    anytime = CallSettings(present_min_s=0)
    assert one((T0, T0 + 1), settings=anytime).present
    assert not one(settings=anytime).present  # never there is never present


def test_never_there() -> None:
    a = one()
    assert a == Attendance("@a", False, 0, 0, False, False, None, None)
    assert one((T0 - 2 * MIN, T0 - MIN), (END, END + MIN)) == a  # only outside the window


def test_a_lesson_shorter_than_the_threshold_still_counts_whoever_was_there_throughout() -> None:
    a = at.attendance("@a", [(T0, T0 + 30 * SEC)], T0, T0 + 30 * SEC, S)
    assert a.present


intervals = st.lists(
    st.tuples(st.integers(-20, 80), st.one_of(st.none(), st.integers(-20, 80))), max_size=8
)
SMALL = CallSettings(present_min_s=3, late_grace_s=2, early_leave_grace_s=2)


def scaled(ivs: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    return [(T0 + a * SEC, None if b is None else T0 + b * SEC) for a, b in ivs]


@given(intervals, st.integers(1, 60))
def test_union_matches_counting_seconds(ivs: list[tuple[int, int | None]], length: int) -> None:
    inside = {s for a, b in ivs for s in range(max(a, 0), min(length if b is None else b, length))}
    a = at.attendance("@a", scaled(ivs), T0, T0 + length * SEC, SMALL)
    assert a.attended_ms == len(inside) * SEC
    assert a.minutes == len(inside) // 60
    assert a.present == (len(inside) >= min(3, length) and len(inside) > 0)
    if inside:
        assert a.first_in_ms == T0 + min(inside) * SEC
        assert a.last_out_ms == T0 + (max(inside) + 1) * SEC
        assert a.joined_late == (a.present and min(inside) > 2)
        assert a.left_early == (a.present and max(inside) + 1 < length - 2)


@given(intervals, st.integers(0, 60), st.randoms())
def test_order_and_repeats_change_nothing_and_minutes_never_exceed_the_lesson(
    ivs: list[tuple[int, int | None]], length: int, rnd: random.Random
) -> None:
    base = at.attendance("@a", scaled(ivs), T0, T0 + length * SEC, SMALL)
    shuffled = scaled(ivs) * 2
    rnd.shuffle(shuffled)
    assert at.attendance("@a", shuffled, T0, T0 + length * SEC, SMALL) == base
    assert 0 <= base.attended_ms <= length * SEC
    assert base.minutes <= length // 60 + (length % 60 > 0)
    merged = at.union(scaled(ivs), T0, T0 + length * SEC)
    assert all(a < b for a, b in merged)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(merged))


@given(intervals, intervals)
def test_more_time_in_the_call_never_means_less_attendance(
    ivs: list[tuple[int, int | None]], more: list[tuple[int, int | None]]
) -> None:
    a = at.attendance("@a", scaled(ivs), T0, T0 + 60 * SEC, SMALL)
    b = at.attendance("@a", scaled(ivs + more), T0, T0 + 60 * SEC, SMALL)
    assert b.attended_ms >= a.attended_ms and (b.present or not a.present)


# -- the lesson report -------------------------------------------------------------------------

TEACHER, ANNA, BORIS, VERA, PARENT = "@teacher", "@anna", "@boris", "@vera", "@parent"


def ran_lesson() -> tuple[Call, pt.CallRoster]:
    call = lc.schedule("c1", "7V", T0, END, T0 - MIN, S)
    call = lc.apply(lc.apply(call, CallEvent.OPEN, T0), CallEvent.START, T0)
    r = pt.new_roster(
        "c1",
        TEACHER,
        [
            Invitee(ANNA, Category.STUDENT),
            Invitee(BORIS, Category.STUDENT),
            Invitee(VERA, Category.STUDENT),
            Invitee(PARENT, Category.PARENT),
        ],
        S,
    )
    for person, t in ((TEACHER, T0), (ANNA, T0), (BORIS, T0 + 12 * MIN), (PARENT, T0)):
        r, _ = pt.join(call, r, person, "web", t)
    r = pt.leave(r, ANNA, "web", T0 + 10 * MIN)
    r, _ = pt.join(call, r, ANNA, "web", T0 + 11 * MIN)  # a reconnect
    call = lc.apply(call, CallEvent.END, END)
    return call, pt.end_all(r, END)


def test_the_journal_gets_every_students_attendance_absent_ones_included() -> None:
    call, r = ran_lesson()
    report = at.lesson_attendance(call, r, S)
    assert report is not None
    assert [(a.person_id, a.present, a.minutes, a.joined_late) for a in report] == [
        (ANNA, True, 44, False),
        (BORIS, True, 33, True),
        (VERA, False, 0, False),
    ]  # no teacher, no parent


def test_the_window_is_the_time_the_call_actually_ran() -> None:
    call, r = ran_lesson()
    # The daemon started the call 20 minutes late (it was down): Boris, at +12, was early.
    late = lc.Call(call.call_id, "7V", T0, END, T0, call.state, T0 + 20 * MIN, T0 + 20 * MIN, END)
    report = at.lesson_attendance(late, r, S)
    assert report is not None
    boris = next(a for a in report if a.person_id == BORIS)
    assert (boris.minutes, boris.joined_late) == (25, False)


def test_no_report_before_the_end_and_none_for_a_lesson_never_held() -> None:
    _, r = ran_lesson()
    running = lc.apply(
        lc.apply(lc.schedule("c1", "7V", T0, END, T0, S), CallEvent.OPEN, T0), CallEvent.START, T0
    )
    with pytest.raises(CallStateError, match="running"):
        at.lesson_attendance(running, r, S)
    expired = lc.apply(lc.schedule("c1", "7V", T0, END, T0, S), CallEvent.EXPIRE, END)
    assert at.lesson_attendance(expired, r, S) is None
