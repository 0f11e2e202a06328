"""One online lesson from the journal's form to its attendance, through every call module in
the order the wiring will use them (7В История, 26.01.2024 12.00-13.00)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sferumd.services.calls import attendance as at
from sferumd.services.calls import breakout as bo
from sferumd.services.calls import hands as hq
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls import permissions as pm
from sferumd.services.calls import whiteboard as wb
from sferumd.services.calls.breakout import MAIN_ROOM, BreakoutEvent
from sferumd.services.calls.lifecycle import CallState
from sferumd.services.calls.naming import lesson_call_name
from sferumd.services.calls.participants import Category, Invitee, JoinCode, MediaKind
from sferumd.services.calls.permissions import Capability, PermissionTable
from sferumd.services.calls.settings import CallSettings

MIN = 60_000
S = CallSettings()
START = int(datetime(2024, 1, 26, 12, 0, tzinfo=ZoneInfo("Europe/Moscow")).timestamp() * 1000)
END = START + 60 * MIN
TEACHER, MILEV, ORLOV, SOKOLOV, PARENT, BLOCKED = (
    "@sviridova",
    "@milev",
    "@orlov",
    "@sokolov",
    "@sokolov-father",
    "@blocked",
)


def test_a_whole_lesson() -> None:
    # The journal's form: name, times, lists with a blocked status (R16).
    name = lesson_call_name("7В", "История", START, END, S.time_zone)
    assert name == "7В - История - 26.01.2024 - 12.00 - 13.00"
    call = lc.schedule("c1", "7V", START, END, START - 24 * 60 * MIN, S)
    lc.check_no_overlap([], call)
    roster = pt.new_roster(
        "c1",
        TEACHER,
        [
            Invitee(MILEV, Category.STUDENT),
            Invitee(ORLOV, Category.STUDENT),
            Invitee(SOKOLOV, Category.STUDENT),
            Invitee(PARENT, Category.PARENT),
            Invitee(BLOCKED, Category.STUDENT, blocked=True),
        ],
        S,
    )
    table, hands = PermissionTable(), hq.HandQueue()

    # Too early: the link says when it opens (R25).
    roster, verdict = pt.join(call, roster, MILEV, "m", START - 5 * MIN)
    assert verdict == pt.Verdict(JoinCode.NOT_OPEN_YET, START)

    # The scheduler starts it by itself (R17).
    calls, _ = lc.catch_up([call], START)
    call = calls["c1"]
    assert call.state is CallState.RUNNING
    for person in (TEACHER, MILEV, ORLOV, PARENT):
        roster, verdict = pt.join(call, roster, person, "web", START + MIN)
        assert verdict.admitted
    roster, verdict = pt.join(call, roster, BLOCKED, "web", START + MIN)
    assert verdict.code is JoinCode.BLOCKED
    roster, _ = pt.join(call, roster, SOKOLOV, "web", START + 15 * MIN)  # late

    # Cameras on; screen sharing is the teacher's decision (R22).
    roster = pm.set_media(table, roster, MILEV, MediaKind.VIDEO, True)
    assert not pm.may(table, roster, ORLOV, Capability.SCREEN)
    table, roster = pm.set_personal(table, roster, TEACHER, ORLOV, Capability.SCREEN, True)
    roster = pm.set_media(table, roster, ORLOV, MediaKind.SCREEN, True)

    # Hands, answered in order.
    hands = hq.raise_hand(hands, roster, SOKOLOV, START + 16 * MIN)
    hands = hq.raise_hand(hands, roster, MILEV, START + 17 * MIN)
    assert hq.order(hands) == (SOKOLOV, MILEV)
    hands = hq.lower_hand(hands, roster, TEACHER, SOKOLOV)

    # Whiteboard in the main room; students draw once allowed.
    board = wb.Board(bo.scoped_id("c1", MAIN_ROOM))
    table, roster = pm.set_everyone(table, roster, TEACHER, Capability.WHITEBOARD, True)
    op = wb.parse_op(
        {"type": "text", "x": 0.1, "y": 0.1, "text": "1812", "color": "#000000", "size": 0.05}, S
    )
    board, _, stored = wb.draw(board, None, op, wb.author_of(table, roster, MILEV), START, S)
    assert wb.replay(board) == (stored,)

    # Breakout rooms at random for 10 minutes (R21), a visit, then back.
    plan = bo.plan_random("p1", roster, TEACHER, 2, seed=2024, settings=S, duration_ms=10 * MIN)
    plan = bo.start(plan, roster, TEACHER, START + 20 * MIN, S)
    where = bo.placement(plan, roster)
    assert sorted(p for p, room in where.items() if room != MAIN_ROOM) == [MILEV, ORLOV, SOKOLOV]
    assert where[PARENT] == MAIN_ROOM  # a random split takes the students
    plan = bo.visit(plan, roster, TEACHER, plan.rooms[0].room_id)
    for event in bo.due(plan, START + 29 * MIN):
        plan = bo.advance(plan, event, START + 29 * MIN)
    assert plan.phase is bo.Phase.CLOSING
    for event in bo.due(plan, START + 30 * MIN):
        plan = bo.advance(plan, event, START + 30 * MIN)
    assert set(bo.placement(plan, roster).values()) == {MAIN_ROOM}
    assert BreakoutEvent.CLOSE not in bo.due(plan, START + 31 * MIN)

    # It ends by itself at the end time (R17); the journal gets attendance.
    calls, _ = lc.catch_up([call], END)
    call = calls["c1"]
    roster = pt.end_all(roster, END)
    report = at.lesson_attendance(call, roster, S)
    assert report is not None
    assert {a.person_id: (a.present, a.minutes, a.joined_late) for a in report} == {
        MILEV: (True, 59, False),
        ORLOV: (True, 59, False),
        SOKOLOV: (True, 45, True),
        BLOCKED: (False, 0, False),
    }
    # The next lesson of the class, back to back, is fine; an overlapping one is not.
    lc.check_no_overlap([call], lc.schedule("c2", "7V", END, END + 45 * MIN, END - MIN, S))
