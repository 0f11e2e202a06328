"""The call roster: invitations, admins, join decisions, presence intervals, waiting room,
removal."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.lifecycle import Call, CallEvent, CallState
from sferumd.services.calls.participants import (
    CallRole,
    CallRoster,
    Category,
    Invitee,
    JoinCode,
    MediaKind,
)
from sferumd.services.calls.settings import CallSettings

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_706_259_600_000
S = CallSettings()
TEACHER, COLLEAGUE, ANNA, BORIS, VERA, BLOCKED, PARENT = (
    "@teacher",
    "@colleague",
    "@anna",
    "@boris",
    "@vera",
    "@blocked",
    "@parent",
)
OUTSIDER = "@outsider"
INVITEES = (
    Invitee(COLLEAGUE, Category.STAFF),
    Invitee(ANNA, Category.STUDENT),
    Invitee(BORIS, Category.STUDENT),
    Invitee(VERA, Category.STUDENT),
    Invitee(BLOCKED, Category.STUDENT, blocked=True),
    Invitee(PARENT, Category.PARENT),
)


def roster(*, waiting_room: bool = False) -> CallRoster:
    return pt.new_roster("c1", TEACHER, INVITEES, S, waiting_room=waiting_room)


def call_in(state: CallState) -> Call:
    call = lc.schedule("c1", "7V", T0, T0 + HOUR, T0 - HOUR, S)
    if state is CallState.SCHEDULED:
        return call
    if state is CallState.CANCELLED:
        return lc.apply(call, CallEvent.CANCEL, T0 - MIN)
    running = lc.apply(lc.apply(call, CallEvent.OPEN, T0), CallEvent.START, T0)
    if state is CallState.RUNNING:
        return running
    return lc.apply(running, CallEvent.END, T0 + HOUR)


RUNNING = call_in(CallState.RUNNING)


def joined(r: CallRoster, *people: str, at: int = T0 + MIN) -> CallRoster:
    for p in people:
        r, verdict = pt.join(RUNNING, r, p, f"{p}-web", at)
        assert verdict.admitted, verdict
    return r


# -- building the roster -----------------------------------------------------------------------


def test_the_lessons_teacher_is_invited_as_staff_and_is_the_admin() -> None:
    r = roster()
    assert r.admins == frozenset({TEACHER})
    assert r.invitees[TEACHER] == Invitee(TEACHER, Category.STAFF)
    assert pt.role_of(r, TEACHER) is CallRole.ADMIN
    assert pt.role_of(r, COLLEAGUE) is CallRole.STAFF
    assert pt.role_of(r, ANNA) is CallRole.STUDENT
    assert pt.role_of(r, PARENT) is CallRole.PARENT
    assert pt.role_of(r, OUTSIDER) is None


@pytest.mark.parametrize(
    ("invitees", "code"),
    [
        (
            [Invitee(ANNA, Category.STUDENT), Invitee(ANNA, Category.PARENT)],
            CallCode.DUPLICATE_INVITEE,
        ),
        ([Invitee(TEACHER, Category.STUDENT)], CallCode.INVALID_FIELD),
        ([Invitee(TEACHER, Category.STAFF, blocked=True)], CallCode.INVALID_FIELD),
        ([Invitee("", Category.STUDENT)], CallCode.INVALID_FIELD),
        ([Invitee(f"@s{i}", Category.STUDENT) for i in range(4)], CallCode.TOO_LARGE),
    ],
)
def test_bad_invitation_lists_are_refused(invitees: list[Invitee], code: CallCode) -> None:
    with pytest.raises(CallError) as info:
        pt.new_roster("c1", TEACHER, invitees, CallSettings(max_invitees=3))
    assert info.value.code is code


def test_the_waiting_room_default_comes_from_the_settings() -> None:
    assert pt.new_roster("c", TEACHER, (), CallSettings(waiting_room=True)).waiting_room
    assert not pt.new_roster("c", TEACHER, (), S).waiting_room


# -- may_join ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "state", "code"),
    [
        (OUTSIDER, CallState.RUNNING, JoinCode.NOT_INVITED),
        (BLOCKED, CallState.RUNNING, JoinCode.BLOCKED),
        (ANNA, CallState.CANCELLED, JoinCode.CALL_CANCELLED),
        (ANNA, CallState.ENDED, JoinCode.CALL_ENDED),
        (ANNA, CallState.SCHEDULED, JoinCode.NOT_OPEN_YET),
        (TEACHER, CallState.SCHEDULED, JoinCode.NOT_OPEN_YET),  # the manual: at the start
        (ANNA, CallState.RUNNING, JoinCode.ADMIT),
        (PARENT, CallState.RUNNING, JoinCode.ADMIT),  # R26
        # Someone with no business in the call learns nothing of its state.
        (OUTSIDER, CallState.ENDED, JoinCode.NOT_INVITED),
        (BLOCKED, CallState.SCHEDULED, JoinCode.BLOCKED),
    ],
)
def test_join_decisions(person: str, state: CallState, code: JoinCode) -> None:
    verdict = pt.may_join(call_in(state), roster(), person, T0 + MIN)
    assert verdict.code is code
    assert verdict.admitted is (code is JoinCode.ADMIT)


def test_joining_before_the_start_says_when_it_opens() -> None:
    lead = CallSettings(open_lead_s=300)
    call = lc.schedule("c1", "7V", T0, T0 + HOUR, T0 - HOUR, lead)
    verdict = pt.may_join(call, roster(), ANNA, T0 - HOUR)
    assert verdict == pt.Verdict(JoinCode.NOT_OPEN_YET, T0 - 5 * MIN)


def test_the_call_is_over_at_its_end_even_before_the_scheduler_ticks() -> None:
    assert pt.may_join(RUNNING, roster(), ANNA, T0 + HOUR).code is JoinCode.CALL_ENDED


def test_refused_verdicts_change_nothing() -> None:
    r = roster()
    for person, call in ((OUTSIDER, RUNNING), (BLOCKED, RUNNING), (ANNA, call_in(CallState.ENDED))):
        after, verdict = pt.join(call, r, person, "s", T0 + MIN)
        assert not verdict.admitted
        assert after == r


# -- presence ----------------------------------------------------------------------------------


def test_sessions_make_intervals_and_reconnects_with_the_same_session_change_nothing() -> None:
    r = joined(roster(), ANNA)
    again, _ = pt.join(RUNNING, r, ANNA, f"{ANNA}-web", T0 + 2 * MIN)
    assert again.participants[ANNA] == r.participants[ANNA]
    r, _ = pt.join(RUNNING, r, ANNA, "phone", T0 + 3 * MIN)  # a second device
    assert pt.is_joined(r, ANNA)
    assert r.participants[ANNA].sessions == (f"{ANNA}-web", "phone")
    r = pt.leave(r, ANNA, f"{ANNA}-web", T0 + 4 * MIN)
    assert pt.is_joined(r, ANNA)  # still there on the phone
    r = pt.leave(r, ANNA, "phone", T0 + 5 * MIN)
    assert not pt.is_joined(r, ANNA)
    assert [(i.joined_ms, i.left_ms) for i in r.participants[ANNA].intervals] == [
        (T0 + MIN, T0 + 4 * MIN),
        (T0 + 3 * MIN, T0 + 5 * MIN),
    ]
    assert pt.leave(r, ANNA, "phone", T0 + 6 * MIN) == r  # a retried leave
    assert pt.leave(r, OUTSIDER, "x", T0) == r


def test_leaving_the_last_session_turns_media_off() -> None:
    r = joined(roster(), ANNA)
    r = pt.record_media(r, ANNA, MediaKind.AUDIO, True)
    r = pt.record_media(r, ANNA, MediaKind.VIDEO, True)
    r = pt.leave(r, ANNA, f"{ANNA}-web", T0 + 2 * MIN)
    assert r.participants[ANNA].media == pt.MediaState()
    with pytest.raises(CallError) as info:
        pt.record_media(r, ANNA, MediaKind.AUDIO, True)
    assert info.value.code is CallCode.NOT_JOINED
    assert pt.record_media(r, ANNA, MediaKind.AUDIO, False) == r


def test_the_participant_list_shows_role_and_media_admins_first() -> None:
    r = joined(roster(), PARENT, ANNA, TEACHER, COLLEAGUE)
    r = pt.record_media(r, ANNA, MediaKind.VIDEO, True)
    rows = pt.participant_list(r)
    assert [(v.person_id, v.role) for v in rows] == [
        (TEACHER, CallRole.ADMIN),
        (COLLEAGUE, CallRole.STAFF),
        (ANNA, CallRole.STUDENT),
        (PARENT, CallRole.PARENT),
    ]
    assert rows[2].media == pt.MediaState(video=True)


def test_end_all_closes_every_interval() -> None:
    r = joined(roster(), ANNA, BORIS, TEACHER)
    r = pt.end_all(r, T0 + HOUR)
    assert pt.present(r) == ()
    assert all(i.left_ms == T0 + HOUR for p in r.participants.values() for i in p.intervals)


# -- waiting room ------------------------------------------------------------------------------


def test_the_waiting_room_holds_students_and_parents_not_staff() -> None:
    r = roster(waiting_room=True)
    r, v = pt.join(RUNNING, r, BORIS, "b1", T0 + 2 * MIN)
    assert v.code is JoinCode.WAITING_ROOM
    r, v = pt.join(RUNNING, r, ANNA, "a1", T0 + MIN)
    assert v.code is JoinCode.WAITING_ROOM
    r = joined(r, TEACHER, COLLEAGUE)
    assert [k.person_id for k in r.waiting] == [ANNA, BORIS]  # by knock time
    r, _ = pt.join(RUNNING, r, ANNA, "a2", T0 + 3 * MIN)  # knocks again from another tab
    first = r.waiting[0]
    assert (first.person_id, first.since_ms, first.session_id) == (ANNA, T0 + MIN, "a2")
    assert not pt.is_joined(r, ANNA)

    r = pt.admit(r, TEACHER, ANNA, T0 + 4 * MIN)
    assert pt.is_joined(r, ANNA) and r.participants[ANNA].sessions == ("a2",)
    assert [k.person_id for k in r.waiting] == [BORIS]

    r = pt.refuse(r, TEACHER, BORIS)
    assert r.waiting == ()
    assert pt.may_join(RUNNING, r, BORIS, T0 + 5 * MIN).code is JoinCode.REFUSED

    # Admitted once: a reconnect does not wait again.
    r = pt.leave(r, ANNA, "a2", T0 + 6 * MIN)
    assert pt.may_join(RUNNING, r, ANNA, T0 + 7 * MIN).code is JoinCode.ADMIT


def test_turning_the_waiting_room_off_admits_everyone_waiting() -> None:
    r = roster(waiting_room=True)
    r, _ = pt.join(RUNNING, r, ANNA, "a", T0 + MIN)
    r, _ = pt.join(RUNNING, r, PARENT, "p", T0 + MIN)
    r = pt.set_waiting_room(r, TEACHER, False, T0 + 2 * MIN)
    assert pt.present(r) == (ANNA, PARENT)
    assert r.waiting == ()


def test_admit_all_and_leaving_the_waiting_room() -> None:
    r = roster(waiting_room=True)
    r, _ = pt.join(RUNNING, r, ANNA, "a", T0 + MIN)
    r, _ = pt.join(RUNNING, r, BORIS, "b", T0 + MIN)
    gone = pt.leave(r, BORIS, "b", T0 + 2 * MIN)  # gave up waiting
    assert [k.person_id for k in gone.waiting] == [ANNA]
    r = pt.admit_all(r, TEACHER, T0 + 2 * MIN)
    assert pt.present(r) == (ANNA, BORIS)
    with pytest.raises(CallError) as info:
        pt.admit(r, TEACHER, VERA, T0)
    assert info.value.code is CallCode.NOT_FOUND


# -- admin actions -----------------------------------------------------------------------------


def test_removal_puts_someone_out_for_the_rest_of_the_call() -> None:
    r = joined(roster(), ANNA, TEACHER)
    r = pt.remove(r, TEACHER, ANNA, T0 + 5 * MIN)
    assert not pt.is_joined(r, ANNA)
    assert r.participants[ANNA].intervals[-1].left_ms == T0 + 5 * MIN
    assert pt.may_join(RUNNING, r, ANNA, T0 + 6 * MIN).code is JoinCode.REMOVED
    r = pt.allow_back(r, TEACHER, ANNA)
    assert pt.may_join(RUNNING, r, ANNA, T0 + 6 * MIN).code is JoinCode.ADMIT


def test_admins_are_not_removed_and_the_owner_is_not_demoted() -> None:
    r = pt.make_admin(roster(), TEACHER, COLLEAGUE)
    assert pt.role_of(r, COLLEAGUE) is CallRole.ADMIN
    for target, code in ((TEACHER, CallCode.OWNER), (COLLEAGUE, CallCode.TARGET_IS_ADMIN)):
        with pytest.raises(CallError) as info:
            pt.remove(r, TEACHER, target, T0)
        assert info.value.code is code
    with pytest.raises(CallError) as info:
        pt.revoke_admin(r, COLLEAGUE, TEACHER)
    assert info.value.code is CallCode.OWNER
    r = pt.revoke_admin(r, TEACHER, COLLEAGUE)
    assert pt.role_of(r, COLLEAGUE) is CallRole.STAFF


@pytest.mark.parametrize(
    ("person", "code"),
    [(ANNA, CallCode.NOT_STAFF), (PARENT, CallCode.NOT_STAFF), (OUTSIDER, CallCode.NOT_FOUND)],
)
def test_only_staff_become_co_admins(person: str, code: CallCode) -> None:
    with pytest.raises(CallError) as info:
        pt.make_admin(roster(), TEACHER, person)
    assert info.value.code is code


def test_blocked_staff_cannot_be_made_admin() -> None:
    r = pt.new_roster("c", TEACHER, [Invitee(COLLEAGUE, Category.STAFF, blocked=True)], S)
    with pytest.raises(CallError) as info:
        pt.make_admin(r, TEACHER, COLLEAGUE)
    assert info.value.code is CallCode.BLOCKED


def test_the_journal_blocking_someone_mid_call_puts_them_out() -> None:
    r = pt.make_admin(joined(roster(), ANNA, BORIS, COLLEAGUE), TEACHER, COLLEAGUE)
    changed = [
        Invitee(ANNA, Category.STUDENT, blocked=True),
        Invitee(BORIS, Category.STUDENT),
        # COLLEAGUE is no longer listed.
    ]
    r = pt.set_invitees(r, changed, T0 + 10 * MIN, S)
    assert pt.present(r) == (BORIS,)
    assert r.admins == frozenset({TEACHER})
    assert pt.may_join(RUNNING, r, ANNA, T0 + 11 * MIN).code is JoinCode.BLOCKED
    assert pt.may_join(RUNNING, r, COLLEAGUE, T0 + 11 * MIN).code is JoinCode.NOT_INVITED
    assert r.participants[ANNA].intervals[-1].left_ms == T0 + 10 * MIN  # attendance kept


ADMIN_OPS: list[tuple[str, Callable[[CallRoster, str], Any]]] = [
    ("admit", lambda r, a: pt.admit(r, a, ANNA, T0)),
    ("admit_all", lambda r, a: pt.admit_all(r, a, T0)),
    ("refuse", lambda r, a: pt.refuse(r, a, ANNA)),
    ("remove", lambda r, a: pt.remove(r, a, BORIS, T0)),
    ("allow_back", lambda r, a: pt.allow_back(r, a, BORIS)),
    ("make_admin", lambda r, a: pt.make_admin(r, a, COLLEAGUE)),
    ("revoke_admin", lambda r, a: pt.revoke_admin(r, a, COLLEAGUE)),
    ("waiting_room", lambda r, a: pt.set_waiting_room(r, a, False, T0)),
]


@given(
    actor=st.sampled_from([COLLEAGUE, ANNA, BORIS, PARENT, BLOCKED, OUTSIDER]),
    op=st.sampled_from(ADMIN_OPS),
)
def test_non_admins_are_forbidden_every_admin_action(
    actor: str, op: tuple[str, Callable[[CallRoster, str], Any]]
) -> None:
    r = pt.set_waiting_room(joined(roster(), BORIS), TEACHER, True, T0)
    r, _ = pt.join(RUNNING, r, ANNA, "a", T0)
    before = copy.deepcopy(r)
    with pytest.raises(CallError) as info:
        op[1](r, actor)
    assert info.value.code is CallCode.FORBIDDEN
    assert r == before
    op[1](r, TEACHER)  # the same action by the admin goes through


# -- invariants under any sequence -------------------------------------------------------------

people = st.sampled_from([TEACHER, COLLEAGUE, ANNA, BORIS, PARENT, BLOCKED, OUTSIDER])
sessions = st.sampled_from(["s1", "s2", "s3"])
actions = st.one_of(
    st.tuples(st.just("join"), people, sessions),
    st.tuples(st.just("leave"), people, sessions),
    st.tuples(st.just("media"), people, st.sampled_from(list(MediaKind))),
    st.tuples(st.just("admit"), people, sessions),
    st.tuples(st.just("remove"), people, sessions),
)


@given(st.booleans(), st.lists(st.tuples(actions, st.integers(0, 5 * MIN)), max_size=40))
def test_presence_invariants_hold_under_any_sequence(
    waiting_room: bool, steps: list[tuple[tuple[str, str, Any], int]]
) -> None:
    r = roster(waiting_room=waiting_room)
    now = T0
    for (kind, person, arg), dt in steps:
        now += dt
        try:
            if kind == "join":
                r, _ = pt.join(RUNNING, r, person, arg, now)
            elif kind == "leave":
                r = pt.leave(r, person, arg, now)
            elif kind == "media":
                r = pt.record_media(r, person, arg, True)
            elif kind == "admit":
                r = pt.admit(r, TEACHER, person, now)
            else:
                r = pt.remove(r, TEACHER, person, now)
        except CallError:
            pass
        for p in r.participants.values():
            open_sessions = p.sessions
            assert len(open_sessions) == len(set(open_sessions))  # one interval per session
            assert all(i.left_ms is None or i.left_ms >= i.joined_ms for i in p.intervals)
            assert p.joined == bool(open_sessions)
            if not p.joined:
                assert p.media == pt.MediaState()
            # Only people allowed in are ever in.
            if p.joined:
                assert p.person_id not in (BLOCKED, OUTSIDER)
                assert p.person_id not in r.excluded
        waiting = [k.person_id for k in r.waiting]
        assert len(waiting) == len(set(waiting))
        assert not set(waiting) & set(pt.present(r))
