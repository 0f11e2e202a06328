"""Breakout rooms: the phase table, the four ways to build a plan and their limits, the timer,
moves, choices, visits, broadcasts and "close all"."""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import breakout as bo
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.breakout import MAIN_ROOM, BreakoutEvent, BreakoutPlan, Phase
from sferumd.services.calls.errors import BreakoutStateError, CallCode, CallError
from sferumd.services.calls.lifecycle import CallEvent
from sferumd.services.calls.participants import CallRoster, Category, Invitee
from sferumd.services.calls.settings import CallSettings

SEC = 1000
MIN = 60 * SEC
T0 = 1_706_259_600_000
S = CallSettings()
TEACHER, COLLEAGUE = "@teacher", "@colleague"
STUDENTS = tuple(f"@s{i:02}" for i in range(30))
BLOCKED, GONE, ABSENT, OUTSIDER = "@blocked", "@removed", "@absent", "@outsider"
PARENT = "@parent"
CALL = lc.apply(
    lc.apply(lc.schedule("c1", "7V", T0, T0 + 60 * MIN, T0 - 1, S), CallEvent.OPEN, T0),
    CallEvent.START,
    T0,
)


def make_roster() -> CallRoster:
    invitees = [Invitee(COLLEAGUE, Category.STAFF)]
    invitees += [Invitee(p, Category.STUDENT) for p in (*STUDENTS, GONE, ABSENT)]
    invitees.append(Invitee(BLOCKED, Category.STUDENT, blocked=True))
    invitees.append(Invitee(PARENT, Category.PARENT))
    r = pt.new_roster("c1", TEACHER, invitees, S)
    for person in (TEACHER, COLLEAGUE, PARENT, *STUDENTS, GONE):
        r, _ = pt.join(CALL, r, person, "s", T0)
    r = pt.make_admin(r, TEACHER, COLLEAGUE)
    return pt.remove(r, TEACHER, GONE, T0)


R = make_roster()


def by_hand(rooms: Sequence[Sequence[str]], **kw: object) -> BreakoutPlan:
    return bo.plan_by_hand("p1", R, TEACHER, rooms, S, **kw)  # type: ignore[arg-type]


def started(plan: BreakoutPlan, at: int = T0 + MIN) -> BreakoutPlan:
    return bo.start(plan, R, TEACHER, at, S)


def code_of(exc: pytest.ExceptionInfo[CallError]) -> CallCode:
    return exc.value.code


# -- the table ---------------------------------------------------------------------------------


def test_the_phase_table() -> None:
    assert bo.next_phase(Phase.DRAFT, BreakoutEvent.START) is Phase.RUNNING
    assert bo.next_phase(Phase.RUNNING, BreakoutEvent.WARN) is Phase.CLOSING
    assert bo.next_phase(Phase.CLOSING, BreakoutEvent.EXTEND) is Phase.RUNNING
    for phase in (Phase.DRAFT, Phase.RUNNING, Phase.CLOSING):
        assert bo.next_phase(phase, BreakoutEvent.CLOSE) is Phase.CLOSED
    for phase, event in itertools.product(Phase, BreakoutEvent):
        if (phase, event) in bo.TRANSITIONS:
            continue
        with pytest.raises(BreakoutStateError) as info:
            bo.next_phase(phase, event)
        assert info.value.code is CallCode.BREAKOUT_STATE
        assert (info.value.phase, info.value.event) == (phase.value, event.value)
        assert phase.value in info.value.message
    # Nothing happens to a closed plan.
    assert not [e for (p, e) in bo.TRANSITIONS if p is Phase.CLOSED]


def test_operations_outside_their_phase_raise_naming_the_phase() -> None:
    draft = by_hand([[STUDENTS[0]]])
    with pytest.raises(BreakoutStateError, match="draft"):
        bo.visit(draft, R, TEACHER, "p1.1")
    with pytest.raises(BreakoutStateError, match="draft"):
        bo.broadcast(draft, R, TEACHER, "hi", T0, S)
    closed = bo.close_all(started(draft), R, TEACHER, T0 + 2 * MIN, S, immediate=True)
    with pytest.raises(BreakoutStateError, match="closed"):
        bo.move(closed, R, TEACHER, STUDENTS[0], MAIN_ROOM)
    with pytest.raises(BreakoutStateError, match="closed"):
        started(closed)


# -- building by hand --------------------------------------------------------------------------


def test_a_plan_by_hand() -> None:
    plan = by_hand([[STUDENTS[0], STUDENTS[1]], [STUDENTS[2]], []], names=["Group A", " B "])
    assert plan.phase is Phase.DRAFT
    assert [(r.room_id, r.number, r.name) for r in plan.rooms] == [
        ("p1.1", 1, "Group A"),
        ("p1.2", 2, "B"),
        ("p1.3", 3, ""),
    ]
    assert bo.members(plan, "p1.1") == (STUDENTS[0], STUDENTS[1])
    assert bo.room_of(plan, STUDENTS[0]) == MAIN_ROOM  # a draft moves nobody yet
    assert bo.room_of(started(plan), STUDENTS[0]) == "p1.1"
    assert bo.room_of(started(plan), STUDENTS[5]) == MAIN_ROOM  # not assigned


@pytest.mark.parametrize(
    ("rooms", "code", "needle"),
    [
        ([], CallCode.NO_ROOMS, ""),
        ([[]] * 51, CallCode.TOO_MANY_ROOMS, "50"),
        ([[OUTSIDER, STUDENTS[0]]], CallCode.UNKNOWN_PEOPLE, OUTSIDER),
        ([[BLOCKED]], CallCode.UNKNOWN_PEOPLE, BLOCKED),
        ([[GONE]], CallCode.UNKNOWN_PEOPLE, GONE),
        ([[STUDENTS[0]], [STUDENTS[1], STUDENTS[0]]], CallCode.DUPLICATE_ASSIGNMENT, "room 2"),
        ([[STUDENTS[0]], [COLLEAGUE]], CallCode.ADMIN_ASSIGNED, COLLEAGUE),
        ([[TEACHER]], CallCode.ADMIN_ASSIGNED, TEACHER),
    ],
)
def test_bad_plans_by_hand(rooms: list[list[str]], code: CallCode, needle: str) -> None:
    with pytest.raises(CallError) as info:
        by_hand(rooms)
    assert info.value.code is code
    assert needle in info.value.message


def test_fifty_rooms_is_the_default_limit_and_a_setting() -> None:
    assert len(by_hand([[]] * 50).rooms) == 50
    three = CallSettings(max_breakout_rooms=3)
    with pytest.raises(CallError) as info:
        bo.plan_by_hand("p1", R, TEACHER, [[]] * 4, three)
    assert info.value.code is CallCode.TOO_MANY_ROOMS
    with pytest.raises(CallError) as info:
        bo.plan_random("p1", R, TEACHER, 4, 1, three)
    assert info.value.code is CallCode.TOO_MANY_ROOMS


def test_people_not_in_the_call_yet_may_be_assigned() -> None:
    plan = by_hand([[ABSENT]])
    assert bo.room_of(started(plan), ABSENT) == "p1.1"


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"names": ["a", "b", "c"]}, CallCode.INVALID_FIELD),  # more names than rooms
        ({"names": ["x" * 65]}, CallCode.TOO_LARGE),
        ({"names": ["a\x00b"]}, CallCode.INVALID_FIELD),
        ({"duration_ms": 59 * SEC}, CallCode.INVALID_FIELD),
        ({"duration_ms": 4 * 60 * MIN + 1}, CallCode.INVALID_FIELD),
    ],
)
def test_bad_names_and_timers(kw: dict[str, object], code: CallCode) -> None:
    with pytest.raises(CallError) as info:
        by_hand([[], []], **kw)
    assert info.value.code is code


@pytest.mark.parametrize("plan_id", ["", "a/b", "x" * 65, "p 1", "p.1"])
def test_bad_plan_ids(plan_id: str) -> None:
    with pytest.raises(CallError) as info:
        bo.plan_by_hand(plan_id, R, TEACHER, [[]], S)
    assert info.value.code is CallCode.INVALID_FIELD


def test_only_admins_plan() -> None:
    for build in (
        lambda: bo.plan_by_hand("p1", R, STUDENTS[0], [[]], S),
        lambda: bo.plan_random("p1", R, STUDENTS[0], 2, 0, S),
        lambda: bo.plan_from_groups("p1", R, STUDENTS[0], {"g": []}, S),
        lambda: bo.plan_self_select("p1", R, STUDENTS[0], 2, S),
    ):
        with pytest.raises(CallError) as info:
            build()
        assert info.value.code is CallCode.FORBIDDEN


room_lists = st.lists(
    st.lists(
        st.sampled_from([*STUDENTS[:6], OUTSIDER, BLOCKED, GONE, TEACHER, COLLEAGUE, ABSENT]),
        max_size=4,
    ),
    max_size=5,
)


@given(room_lists)
def test_plans_by_hand_are_valid_or_refused_precisely(rooms: list[list[str]]) -> None:
    everyone = [p for room in rooms for p in room]
    try:
        plan = by_hand(rooms)
    except CallError as exc:
        if not rooms:
            assert exc.code is CallCode.NO_ROOMS
        elif {OUTSIDER, BLOCKED, GONE} & set(everyone):
            assert exc.code is CallCode.UNKNOWN_PEOPLE
        elif {TEACHER, COLLEAGUE} & set(everyone):
            assert exc.code is CallCode.ADMIN_ASSIGNED
        else:
            assert exc.code is CallCode.DUPLICATE_ASSIGNMENT
            assert len(everyone) != len(set(everyone))
        return
    assert len(everyone) == len(set(everyone))
    assert {p: plan.assignment[p] for p in everyone} == plan.assignment
    for number, room in enumerate(rooms, start=1):
        assert set(bo.members(plan, f"p1.{number}")) == set(room)


# -- random ------------------------------------------------------------------------------------


@given(
    st.lists(st.text(min_size=1, max_size=4), max_size=60),
    st.integers(1, 50),
    st.integers(0, 2**32),
)
def test_a_random_split_is_even_and_covers_everyone_exactly_once(
    people: list[str], rooms: int, seed: int
) -> None:
    split = bo.split_evenly(people, rooms, seed)
    assert len(split) == rooms
    sizes = [len(r) for r in split]
    assert max(sizes) - min(sizes) <= 1
    flat = [p for r in split for p in r]
    assert Counter(flat) == Counter(set(people))
    # Deterministic for a seed, whatever the order or repeats of the input.
    assert bo.split_evenly(reversed(people + people), rooms, seed) == split


def test_different_seeds_give_different_splits() -> None:
    splits = {tuple(map(tuple, bo.split_evenly(STUDENTS, 5, seed))) for seed in range(10)}
    assert len(splits) > 1


def test_a_random_plan_splits_the_students_present() -> None:
    plan = bo.plan_random("p1", R, TEACHER, 4, seed=7, settings=S)
    # Not admins, the parent, the removed or the absent.
    assert sorted(plan.assignment) == sorted(STUDENTS)
    with_parent = bo.plan_random("p1", R, TEACHER, 4, 7, S, people=[*STUDENTS, PARENT])
    assert PARENT in with_parent.assignment
    sizes = sorted(len(bo.members(plan, r.room_id)) for r in plan.rooms)
    assert sizes == [7, 7, 8, 8]
    assert plan == bo.plan_random("p1", R, TEACHER, 4, seed=7, settings=S)
    with pytest.raises(CallError) as info:
        bo.plan_random("p1", R, TEACHER, 2, 1, S, people=[STUDENTS[0], OUTSIDER])
    assert info.value.code is CallCode.UNKNOWN_PEOPLE


# -- journal sub-groups ------------------------------------------------------------------------


def test_rooms_from_journal_sub_groups() -> None:
    groups = {
        "English 1": [STUDENTS[0], STUDENTS[1], "@not-in-this-call"],
        "English 2": [STUDENTS[2], BLOCKED, ABSENT],
    }
    plan, skipped = bo.plan_from_groups("p1", R, TEACHER, groups, S)
    assert [r.name for r in plan.rooms] == ["English 1", "English 2"]
    assert bo.members(plan, "p1.1") == (STUDENTS[0], STUDENTS[1])
    assert bo.members(plan, "p1.2") == (ABSENT, STUDENTS[2])
    assert skipped == (BLOCKED, "@not-in-this-call")


def test_sub_groups_that_share_a_student_are_refused() -> None:
    with pytest.raises(CallError) as info:
        bo.plan_from_groups("p1", R, TEACHER, {"a": [STUDENTS[0]], "b": [STUDENTS[0]]}, S)
    assert info.value.code is CallCode.DUPLICATE_ASSIGNMENT


# -- participants choose -----------------------------------------------------------------------


def test_participants_choose_their_room_within_capacity() -> None:
    plan = started(bo.plan_self_select("p1", R, TEACHER, 2, S, capacity=2))
    a, b, c = STUDENTS[:3]
    plan = bo.choose(plan, R, a, "p1.1")
    plan = bo.choose(plan, R, b, "p1.1")
    assert bo.choose(plan, R, a, "p1.1") == plan  # choosing one's own room again is fine
    with pytest.raises(CallError) as info:
        bo.choose(plan, R, c, "p1.1")
    assert info.value.code is CallCode.ROOM_FULL
    plan = bo.choose(plan, R, a, "p1.2")  # changing one's mind
    plan = bo.choose(plan, R, c, "p1.1")
    plan = bo.choose(plan, R, b, MAIN_ROOM)
    assert bo.members(plan, "p1.1") == (c,)
    assert bo.room_of(plan, b) == MAIN_ROOM
    # The admin is not bound by the capacity.
    plan = bo.move(plan, R, TEACHER, STUDENTS[3], "p1.1")
    plan = bo.move(plan, R, TEACHER, STUDENTS[4], "p1.1")
    assert len(bo.members(plan, "p1.1")) == 3


def test_choosing_needs_a_self_select_plan_a_real_room_and_someone_in_the_call() -> None:
    with pytest.raises(CallError) as info:
        bo.choose(started(by_hand([[]])), R, STUDENTS[0], "p1.1")
    assert info.value.code is CallCode.NOT_SELF_SELECT
    plan = started(bo.plan_self_select("p1", R, TEACHER, 2, S))
    for person, room, code in (
        (STUDENTS[0], "p1.9", CallCode.NOT_FOUND),
        (OUTSIDER, "p1.1", CallCode.UNKNOWN_PEOPLE),
        (TEACHER, "p1.1", CallCode.ADMIN_ASSIGNED),
    ):
        with pytest.raises(CallError) as info:
            bo.choose(plan, R, person, room)
        assert info.value.code is code
    with pytest.raises(CallError) as info:
        bo.plan_self_select("p1", R, TEACHER, 2, S, capacity=0)
    assert info.value.code is CallCode.INVALID_FIELD


# -- timer -------------------------------------------------------------------------------------


def test_the_timer_warns_then_closes() -> None:
    plan = started(by_hand([[STUDENTS[0]]], duration_ms=10 * MIN), at=T0)
    assert (plan.ends_at_ms, plan.warning_at_ms) == (T0 + 10 * MIN, T0 + 9 * MIN)
    assert bo.due(plan, T0 + 9 * MIN - 1) == []
    assert bo.due(plan, T0 + 9 * MIN) == [BreakoutEvent.WARN]
    with pytest.raises(BreakoutStateError):
        bo.advance(plan, BreakoutEvent.WARN, T0 + MIN)
    plan = bo.advance(plan, BreakoutEvent.WARN, T0 + 9 * MIN)
    assert plan.phase is Phase.CLOSING
    assert bo.due(plan, T0 + 10 * MIN - 1) == []
    with pytest.raises(BreakoutStateError):
        bo.advance(plan, BreakoutEvent.CLOSE, T0 + 10 * MIN - 1)
    assert bo.due(plan, T0 + 10 * MIN) == [BreakoutEvent.CLOSE]
    plan = bo.advance(plan, BreakoutEvent.CLOSE, T0 + 10 * MIN)
    assert plan.phase is Phase.CLOSED and bo.room_of(plan, STUDENTS[0]) == MAIN_ROOM
    assert bo.due(plan, T0 + 20 * MIN) == []
    with pytest.raises(ValueError):
        bo.advance(plan, BreakoutEvent.MOVE, T0)


def test_a_timer_shorter_than_the_warning_warns_at_once_and_no_timer_never_closes() -> None:
    plan = started(by_hand([[]], duration_ms=MIN), at=T0)
    short = bo.start(
        bo.plan_by_hand(
            "p1", R, TEACHER, [[]], CallSettings(breakout_warning_s=120), duration_ms=MIN
        ),
        R,
        TEACHER,
        T0,
        CallSettings(breakout_warning_s=120),
    )
    assert short.warning_at_ms == T0
    assert plan.warning_at_ms == T0
    assert bo.due(started(by_hand([[]])), T0 + 10**9) == []


def test_a_timer_overdue_at_once_closes_without_a_pointless_warning() -> None:
    plan = started(by_hand([[]], duration_ms=10 * MIN), at=T0)
    assert bo.due(plan, T0 + 11 * MIN) == [BreakoutEvent.CLOSE]


def test_extending_the_timer_calls_off_the_countdown() -> None:
    plan = started(by_hand([[]], duration_ms=10 * MIN), at=T0)
    plan = bo.advance(plan, BreakoutEvent.WARN, T0 + 9 * MIN)
    plan = bo.extend(plan, R, TEACHER, T0 + 20 * MIN, T0 + 9 * MIN, S)
    assert plan.phase is Phase.RUNNING
    assert (plan.ends_at_ms, plan.warning_at_ms) == (T0 + 20 * MIN, T0 + 19 * MIN)
    for bad in (T0 + 9 * MIN, T0 + 9 * MIN + 4 * 60 * MIN + 1):
        with pytest.raises(CallError) as info:
            bo.extend(plan, R, TEACHER, bad, T0 + 9 * MIN, S)
        assert info.value.code is CallCode.INVALID_FIELD
    with pytest.raises(CallError) as info:
        bo.extend(plan, R, STUDENTS[0], T0 + 30 * MIN, T0 + 9 * MIN, S)
    assert info.value.code is CallCode.FORBIDDEN


# -- close all ---------------------------------------------------------------------------------


def test_close_all_counts_down_then_everyone_is_back_in_the_main_room() -> None:
    plan = bo.visit(started(by_hand([[STUDENTS[0]], [STUDENTS[1]]])), R, TEACHER, "p1.2")
    closing = bo.close_all(plan, R, TEACHER, T0 + 5 * MIN, S)
    assert closing.phase is Phase.CLOSING
    assert (closing.warning_at_ms, closing.ends_at_ms) == (T0 + 5 * MIN, T0 + 6 * MIN)
    again = bo.close_all(closing, R, TEACHER, T0 + 5 * MIN + 30 * SEC, S)
    assert again.ends_at_ms == T0 + 6 * MIN  # pressing again doesn't make it longer
    closed = bo.advance(closing, bo.due(closing, T0 + 6 * MIN)[0], T0 + 6 * MIN)
    assert set(bo.placement(closed, R).values()) == {MAIN_ROOM}
    assert closed.visitors == {}
    now = bo.close_all(plan, R, TEACHER, T0 + 5 * MIN, S, immediate=True)
    assert now.phase is Phase.CLOSED and now.closed_at_ms == T0 + 5 * MIN
    with pytest.raises(CallError) as info:
        bo.close_all(plan, R, STUDENTS[0], T0, S)
    assert info.value.code is CallCode.FORBIDDEN


def test_close_all_never_postpones_a_timer_that_ends_sooner() -> None:
    plan = started(by_hand([[]], duration_ms=10 * MIN), at=T0)
    closing = bo.close_all(plan, R, TEACHER, T0 + 9 * MIN + 30 * SEC, S)
    assert closing.ends_at_ms == T0 + 10 * MIN


def test_a_draft_thrown_away() -> None:
    assert bo.close_all(by_hand([[]]), R, TEACHER, T0, S).phase is Phase.CLOSED


# -- moves, visits, broadcast, placement -------------------------------------------------------


def test_moves_while_rooms_run() -> None:
    a, b = STUDENTS[:2]
    before = started(by_hand([[a], [b]]))
    plan = bo.move(before, R, TEACHER, a, "p1.2")
    plan = bo.move(plan, R, COLLEAGUE, b, MAIN_ROOM)  # a co-admin moves people too
    assert bo.members(plan, "p1.2") == (a,) and bo.room_of(plan, b) == MAIN_ROOM
    assert bo.relocations(bo.placement(before, R), bo.placement(plan, R)) == [
        (a, "p1.1", "p1.2"),
        (b, "p1.2", MAIN_ROOM),
    ]
    for actor, person, room, code in (
        (STUDENTS[2], a, MAIN_ROOM, CallCode.FORBIDDEN),
        (TEACHER, a, "p1.3", CallCode.NOT_FOUND),
        (TEACHER, COLLEAGUE, "p1.1", CallCode.ADMIN_ASSIGNED),
        (TEACHER, OUTSIDER, "p1.1", CallCode.UNKNOWN_PEOPLE),
    ):
        frozen = copy.deepcopy(plan)
        with pytest.raises(CallError) as info:
            bo.move(plan, R, actor, person, room)
        assert info.value.code is code
        assert plan == frozen


def test_the_admin_visits_any_room_without_becoming_a_member() -> None:
    plan = started(by_hand([[STUDENTS[0]], [STUDENTS[1]]]))
    plan = bo.visit(plan, R, TEACHER, "p1.2")
    assert bo.visitors_of(plan, "p1.2") == (TEACHER,)
    assert bo.members(plan, "p1.2") == (STUDENTS[1],)
    assert bo.placement(plan, R)[TEACHER] == "p1.2"
    plan = bo.visit(plan, R, TEACHER, "p1.1")  # straight on to the next room
    assert bo.visitors_of(plan, "p1.2") == () and bo.visitors_of(plan, "p1.1") == (TEACHER,)
    plan = bo.visit(plan, R, TEACHER, MAIN_ROOM)
    assert bo.placement(plan, R)[TEACHER] == MAIN_ROOM
    for actor, room, code in (
        (STUDENTS[0], "p1.2", CallCode.FORBIDDEN),
        (TEACHER, "p1.7", CallCode.NOT_FOUND),
    ):
        with pytest.raises(CallError) as info:
            bo.visit(plan, R, actor, room)
        assert info.value.code is code


def test_a_broadcast_reaches_every_room_and_the_main_room() -> None:
    plan = started(by_hand([[], [], []]))
    message = bo.broadcast(plan, R, TEACHER, "Две минуты до конца", T0 + 5 * MIN, S)
    assert message.rooms == ("p1.1", "p1.2", "p1.3", MAIN_ROOM)
    assert (message.by, message.text, message.at_ms) == (
        TEACHER,
        "Две минуты до конца",
        T0 + 5 * MIN,
    )
    for actor, text, code in (
        (STUDENTS[0], "hi", CallCode.FORBIDDEN),
        (TEACHER, "   ", CallCode.INVALID_FIELD),
        (TEACHER, "x" * 1001, CallCode.TOO_LARGE),
    ):
        with pytest.raises(CallError) as info:
            bo.broadcast(plan, R, actor, text, T0, S)
        assert info.value.code is code


def test_rooms_name_their_own_chat_and_whiteboard() -> None:
    plan = by_hand([[], []])
    ids = {bo.scoped_id("c1", r.room_id) for r in plan.rooms} | {bo.scoped_id("c1", MAIN_ROOM)}
    assert ids == {"c1/p1.1", "c1/p1.2", "c1/main"}
    # Another plan later in the same call does not reuse the first one's chats.
    second = bo.plan_by_hand("p2", R, TEACHER, [[], []], S)
    assert not ids & {bo.scoped_id("c1", r.room_id) for r in second.rooms}


moves = st.lists(
    st.tuples(
        st.sampled_from([*STUDENTS[:6], COLLEAGUE, OUTSIDER]),
        st.sampled_from([MAIN_ROOM, "p1.1", "p1.2", "p1.3", "p1.4"]),
        st.sampled_from([TEACHER, COLLEAGUE, STUDENTS[0]]),
    ),
    max_size=25,
)


@given(moves, st.booleans())
def test_moves_keep_everyone_in_exactly_one_place(
    steps: list[tuple[str, str, str]], close_at_end: bool
) -> None:
    plan = started(by_hand([[STUDENTS[0], STUDENTS[1]], [STUDENTS[2]], []]))
    for person, room, actor in steps:
        try:
            plan = bo.move(plan, R, actor, person, room)
        except CallError:
            continue
        assert bo.room_of(plan, person) == room
    where = bo.placement(plan, R)
    assert sorted(where) == sorted(pt.present(R))  # everyone present has one place
    rooms = {r.room_id for r in plan.rooms} | {MAIN_ROOM}
    assert set(where.values()) <= rooms
    in_rooms = [p for r in plan.rooms for p in bo.members(plan, r.room_id)]
    assert len(in_rooms) == len(set(in_rooms))  # nobody in two rooms
    assert not {TEACHER, COLLEAGUE} & set(in_rooms)
    if close_at_end:
        closed = bo.close_all(plan, R, TEACHER, T0 + 9 * MIN, S, immediate=True)
        assert set(bo.placement(closed, R).values()) == {MAIN_ROOM}
