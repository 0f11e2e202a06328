"""The call lifecycle: the transition table, the scheduler's ``due``, start-up catch-up, R24
(one running lesson call per class), overlap and time validators."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls.errors import CallCode, CallError, CallStateError
from sferumd.services.calls.lifecycle import Call, CallEvent, CallState
from sferumd.services.calls.settings import CallSettings

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_706_259_600_000  # 2024-01-26 12:00 Moscow
DEFAULT = CallSettings()
LEAD = CallSettings(open_lead_s=600)


def lesson(
    call_id: str = "c1",
    class_id: str | None = "7V",
    start: int = T0,
    length: int = HOUR,
    settings: CallSettings = DEFAULT,
) -> Call:
    return lc.schedule(call_id, class_id, start, start + length, start - 2 * HOUR, settings)


def at(call: Call, state: CallState) -> Call:
    """The call driven (legally) into ``state``."""
    if state is CallState.SCHEDULED:
        return call
    if state is CallState.CANCELLED:
        return lc.apply(call, CallEvent.CANCEL, call.start_ms - HOUR)
    if state is CallState.ENDED:
        return lc.apply(at(call, CallState.RUNNING), CallEvent.END, call.end_ms)
    opened = lc.apply(call, CallEvent.OPEN, call.opens_at_ms)
    if state is CallState.OPEN:
        return opened
    return lc.apply(opened, CallEvent.START, call.start_ms)


# -- the table ---------------------------------------------------------------------------------


def test_the_table_is_the_documented_one() -> None:
    assert dict(lc.TRANSITIONS) == {
        (CallState.SCHEDULED, CallEvent.OPEN): CallState.OPEN,
        (CallState.SCHEDULED, CallEvent.EDIT): CallState.SCHEDULED,
        (CallState.SCHEDULED, CallEvent.CANCEL): CallState.CANCELLED,
        (CallState.SCHEDULED, CallEvent.EXPIRE): CallState.ENDED,
        (CallState.OPEN, CallEvent.START): CallState.RUNNING,
        (CallState.OPEN, CallEvent.CANCEL): CallState.CANCELLED,
        (CallState.OPEN, CallEvent.EXPIRE): CallState.ENDED,
        (CallState.RUNNING, CallEvent.END): CallState.ENDED,
    }
    for final in lc.FINAL:
        assert lc.allowed_events(final) == frozenset()


@pytest.mark.parametrize("state", list(CallState))
@pytest.mark.parametrize("event", list(CallEvent))
def test_every_pair_either_moves_as_the_table_says_or_raises_naming_the_state(
    state: CallState, event: CallEvent
) -> None:
    call = at(lesson(settings=LEAD), state)
    late = call.end_ms + MIN  # late enough for every guard
    target = lc.TRANSITIONS.get((state, event))
    if target is None:
        with pytest.raises(CallStateError) as info:
            if event is CallEvent.EDIT:
                lc.edit(call, T0 + HOUR, T0 + 2 * HOUR, T0 - HOUR, LEAD)
            else:
                lc.apply(call, event, late)
        assert info.value.code is CallCode.CALL_STATE
        assert (info.value.state, info.value.event) == (state.value, event.value)
        assert state.value in info.value.message
        return
    if event is CallEvent.EDIT:
        moved = lc.edit(call, T0 + HOUR, T0 + 2 * HOUR, T0 - HOUR, LEAD)
    else:
        moved = lc.apply(call, event, call.end_ms if event is CallEvent.END else late)
    assert moved.state is target


def test_time_guards_refuse_early_events_naming_the_state() -> None:
    call = lesson(settings=LEAD)
    with pytest.raises(CallStateError, match="scheduled"):
        lc.apply(call, CallEvent.OPEN, call.opens_at_ms - 1)
    opened = lc.apply(call, CallEvent.OPEN, call.opens_at_ms)
    with pytest.raises(CallStateError, match="open"):
        lc.apply(opened, CallEvent.START, T0 - 1)
    with pytest.raises(CallStateError):
        lc.apply(opened, CallEvent.EXPIRE, call.end_ms - 1)
    with pytest.raises(ValueError):
        lc.apply(call, CallEvent.EDIT, T0)


def test_timestamps_are_recorded_and_the_red_button_ends_any_time() -> None:
    call = at(lesson(), CallState.RUNNING)
    assert (call.opened_at_ms, call.started_at_ms) == (T0, T0)
    ended = lc.apply(call, CallEvent.END, T0 + 20 * MIN)  # R23: before the scheduled end
    assert ended.state is CallState.ENDED and ended.ended_at_ms == T0 + 20 * MIN
    assert lc.attendance_window(ended) == (T0, T0 + 20 * MIN)


# -- due and the scheduler ---------------------------------------------------------------------


def test_default_lead_opens_and_starts_at_the_start_time() -> None:
    call = lesson()
    assert call.opens_at_ms == T0  # R25: the "go" link works from the start time
    assert lc.due(call, T0 - 1) == []
    assert lc.due(call, T0) == [CallEvent.OPEN, CallEvent.START]
    assert lc.next_wakeup(call) == T0


def test_a_lead_time_opens_early_and_starts_on_time() -> None:
    call = lesson(settings=LEAD)
    assert call.opens_at_ms == T0 - 10 * MIN
    assert lc.due(call, T0 - 10 * MIN - 1) == []
    assert lc.due(call, T0 - 10 * MIN) == [CallEvent.OPEN]
    opened = lc.apply(call, CallEvent.OPEN, T0 - 10 * MIN)
    assert lc.due(opened, T0 - 1) == []
    assert lc.due(opened, T0) == [CallEvent.START]
    assert lc.next_wakeup(opened) == T0


def test_running_ends_at_the_end_time_and_finals_have_nothing_due() -> None:
    call = at(lesson(), CallState.RUNNING)
    assert lc.due(call, T0 + HOUR - 1) == []
    assert lc.due(call, T0 + HOUR) == [CallEvent.END]
    assert lc.next_wakeup(call) == T0 + HOUR
    for state in lc.FINAL:
        assert lc.due(at(lesson(), state), T0 + 10 * HOUR) == []
        assert lc.next_wakeup(at(lesson(), state)) is None


def test_a_call_whose_whole_time_passed_expires_without_ever_running() -> None:
    call = lesson()
    assert lc.due(call, T0 + HOUR) == [CallEvent.EXPIRE]
    expired = lc.apply(call, CallEvent.EXPIRE, T0 + 2 * HOUR)
    assert expired.state is CallState.ENDED and expired.started_at_ms is None
    assert lc.attendance_window(expired) is None  # no attendance for a lesson never held


@given(
    start=st.integers(0, 10 * HOUR),
    length=st.integers(1, 2 * HOUR),
    lead=st.integers(0, 30),
    ticks=st.lists(st.integers(0, 14 * HOUR), max_size=6),
)
def test_applying_what_is_due_leaves_nothing_due_and_never_raises(
    start: int, length: int, lead: int, ticks: list[int]
) -> None:
    settings = CallSettings(open_lead_s=lead * 60, schedule_grace_s=10**9)
    call = lc.schedule("c", "7V", start, start + length, 0, settings)
    for now in sorted(ticks):
        for event in lc.due(call, now):
            call = lc.apply(call, event, now)
        assert lc.due(call, now) == []
        wake = lc.next_wakeup(call)
        assert wake is None or wake > now
        # A state never lags what time says it should be.
        if call.state is CallState.RUNNING:
            assert start <= now < start + length
        if now >= start + length:
            assert call.state is CallState.ENDED


def test_catch_up_at_start_up_starts_what_should_run_and_ends_what_is_over() -> None:
    over = at(lesson("over", "8A", T0 - 3 * HOUR), CallState.RUNNING)  # ran; daemon died
    missed = lesson("missed", "9B", T0 - 2 * HOUR)  # its whole time passed while down
    now_on = lesson("now", "7V", T0 - 10 * MIN)  # should be running
    later = lesson("later", "7V", T0 + 2 * HOUR)
    calls, plan = lc.catch_up([later, now_on, missed, over], T0)
    assert plan.actions == (
        ("over", CallEvent.END),
        ("missed", CallEvent.EXPIRE),
        ("now", CallEvent.OPEN),
        ("now", CallEvent.START),
    )
    assert calls["over"].state is CallState.ENDED
    assert calls["missed"].state is CallState.ENDED and calls["missed"].started_at_ms is None
    assert calls["now"].state is CallState.RUNNING and calls["now"].started_at_ms == T0
    assert calls["later"].state is CallState.SCHEDULED
    # A second tick at the same time finds nothing to do.
    assert lc.catch_up(calls.values(), T0)[1].actions == ()


def test_back_to_back_lessons_hand_over_in_one_tick() -> None:
    first = at(lesson("first", "7V", T0), CallState.RUNNING)
    second = lesson("second", "7V", T0 + HOUR)
    calls, plan = lc.catch_up([second, first], T0 + HOUR)
    assert plan.actions[0] == ("first", CallEvent.END)
    assert calls["second"].state is CallState.RUNNING
    assert plan.held == ()


def test_a_start_is_held_while_another_lesson_of_the_class_runs() -> None:
    # Only reachable with data from before the overlap check (or a hand-made store edit);
    # the scheduler still refuses to break R24.
    running = at(lesson("a", "7V", T0, 2 * HOUR), CallState.RUNNING)
    other = lesson("b", "7V", T0 + HOUR, 2 * HOUR)
    calls, plan = lc.catch_up([running, other], T0 + HOUR)
    assert plan.held == ("b",)
    assert calls["b"].state is CallState.OPEN  # joinable, but not started
    assert lc.running_lessons_ok(calls.values())
    with pytest.raises(CallError) as info:
        lc.check_can_start(calls.values(), calls["b"])
    assert info.value.code is CallCode.CLASS_BUSY and "a" in info.value.message
    calls, plan = lc.catch_up(calls.values(), T0 + 2 * HOUR)
    assert calls["b"].state is CallState.RUNNING


def test_two_lessons_due_at_once_in_one_class_start_only_one() -> None:
    a, b = lesson("a", "7V", T0), lesson("b", "7V", T0)
    calls, plan = lc.catch_up([a, b], T0)
    assert [c.state for c in calls.values()].count(CallState.RUNNING) == 1
    assert plan.held == ("b",)


def test_calls_outside_a_class_are_not_held() -> None:
    a = at(lesson("a", None, T0, 2 * HOUR), CallState.RUNNING)
    b = lesson("b", None, T0 + HOUR)
    calls, plan = lc.catch_up([a, b], T0 + HOUR)
    assert calls["b"].state is CallState.RUNNING and plan.held == ()
    lc.check_can_start([a], b)


call_states = st.sampled_from(list(CallState))


@st.composite
def call_sets(draw: st.DrawFn) -> list[Call]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, 6)) * HOUR // 2
        length = draw(st.integers(1, 4)) * HOUR // 2
        state = draw(call_states)
        class_id = draw(st.sampled_from(["7V", "8A", None]))
        call = Call(f"c{i}", class_id, start, start + length, start, state)
        if state in (CallState.RUNNING, CallState.ENDED):
            call = replace(call, opened_at_ms=start, started_at_ms=start)
        out.append(call)
    return out


@given(call_sets(), st.integers(0, 6 * HOUR))
def test_catch_up_never_makes_two_running_lessons_in_a_class(calls: list[Call], now: int) -> None:
    after, plan = lc.catch_up(calls, now)
    if lc.running_lessons_ok(calls):
        assert lc.running_lessons_ok(after.values())
    for call in after.values():
        left = lc.due(call, now)
        assert left == [] or (left == [CallEvent.START] and call.call_id in plan.held)


# -- validators --------------------------------------------------------------------------------


def expected_code(start: int, end: int, now: int, s: CallSettings) -> CallCode | None:
    if end <= start:
        return CallCode.INVALID_TIMES
    if end <= now:
        return CallCode.END_IN_PAST
    if start < now - s.schedule_grace_ms:
        return CallCode.START_IN_PAST
    if end - start > s.max_call_ms:
        return CallCode.TOO_LONG
    return None


@given(
    start=st.integers(-(2**40), 2**42),
    length=st.integers(-HOUR, 8 * HOUR),
    now=st.integers(-(2**40), 2**42),
)
def test_check_times_refuses_with_the_precise_code(start: int, length: int, now: int) -> None:
    end = start + length
    code = expected_code(start, end, now, DEFAULT)
    if code is None:
        call = lc.schedule("c", "7V", start, end, now, DEFAULT)
        assert (call.start_ms, call.end_ms, call.state) == (start, end, CallState.SCHEDULED)
    else:
        with pytest.raises(CallError) as info:
            lc.schedule("c", "7V", start, end, now, DEFAULT)
        assert info.value.code is code


@pytest.mark.parametrize(
    ("start", "end", "now", "code"),
    [
        (T0, T0, T0 - HOUR, CallCode.INVALID_TIMES),
        (T0, T0 - 1, T0 - HOUR, CallCode.INVALID_TIMES),
        (T0 - 2 * HOUR, T0 - HOUR, T0, CallCode.END_IN_PAST),
        (T0 - 5 * MIN, T0 + HOUR, T0, CallCode.START_IN_PAST),
        (T0, T0 + 7 * HOUR, T0 - HOUR, CallCode.TOO_LONG),
    ],
)
def test_times_in_the_past_and_nonsense(start: int, end: int, now: int, code: CallCode) -> None:
    with pytest.raises(CallError) as info:
        lc.schedule("c", "7V", start, end, now, DEFAULT)
    assert info.value.code is code


def test_clock_skew_within_the_grace_is_accepted() -> None:
    lc.schedule("c", "7V", T0 - 59_000, T0 + HOUR, T0, DEFAULT)


def test_edit_moves_the_times_and_the_opening_only_before_the_call_opens() -> None:
    call = lesson(settings=LEAD)
    moved = lc.edit(call, T0 + HOUR, T0 + 2 * HOUR, T0 - HOUR, LEAD)
    assert (moved.start_ms, moved.opens_at_ms) == (T0 + HOUR, T0 + 50 * MIN)
    with pytest.raises(CallError) as info:
        lc.edit(call, T0 + HOUR, T0 + HOUR, T0 - HOUR, LEAD)
    assert info.value.code is CallCode.INVALID_TIMES
    with pytest.raises(CallStateError, match="open"):
        lc.edit(at(call, CallState.OPEN), T0 + HOUR, T0 + 2 * HOUR, T0 - HOUR, LEAD)


def test_overlaps_are_half_open_per_class_and_ignore_finished_calls() -> None:
    first = lesson("first", "7V", T0)
    assert lc.overlapping([first], lesson("next", "7V", T0 + HOUR)) == []
    assert lc.overlapping([first], lesson("other-class", "8A", T0)) == []
    assert lc.overlapping([first], replace(first, call_id="x", start_ms=T0 + HOUR - 1)) == [first]
    assert lc.overlapping([first], first) == []  # an edit doesn't clash with itself
    for final in lc.FINAL:
        assert lc.overlapping([at(first, final)], lesson("x", "7V", T0)) == []
    with pytest.raises(CallError) as info:
        lc.check_no_overlap([first], lesson("x", "7V", T0 + 30 * MIN))
    assert info.value.code is CallCode.LESSON_OVERLAP
    assert "first" in info.value.message
    lc.check_no_overlap([first], lesson("x", None, T0))  # not a class's lesson


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(1, 6), call_states), max_size=6),
    st.integers(0, 20),
    st.integers(1, 6),
)
def test_overlap_matches_interval_arithmetic(
    others: list[tuple[int, int, CallState]], start: int, length: int
) -> None:
    calls = [
        Call(f"o{i}", "7V", s * MIN, (s + n) * MIN, s * MIN, state)
        for i, (s, n, state) in enumerate(others)
    ]
    cand = Call("cand", "7V", start * MIN, (start + length) * MIN, start * MIN)
    minutes = set(range(start, start + length))
    expected = [
        c
        for c, (s, n, state) in zip(calls, others, strict=True)
        if state in lc.OCCUPYING and minutes & set(range(s, s + n))
    ]
    assert lc.overlapping(calls, cand) == expected
