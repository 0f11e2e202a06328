"""Participant permissions: the precedence rule (exhaustively), role defaults, who may change
what, mute requests vs force mute, and media following permissions."""

from __future__ import annotations

import contextlib
import copy
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls import permissions as pm
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.lifecycle import CallEvent
from sferumd.services.calls.participants import CallRole, CallRoster, Category, Invitee, MediaKind
from sferumd.services.calls.permissions import Capability, MuteRequest, PermissionTable
from sferumd.services.calls.settings import CallSettings

MIN = 60_000
T0 = 1_706_259_600_000
S = CallSettings()
TEACHER, COLLEAGUE, ANNA, BORIS, PARENT, OUTSIDER = (
    "@teacher",
    "@colleague",
    "@anna",
    "@boris",
    "@parent",
    "@outsider",
)
CALL = lc.apply(
    lc.apply(lc.schedule("c1", "7V", T0, T0 + 60 * MIN, T0 - MIN, S), CallEvent.OPEN, T0),
    CallEvent.START,
    T0,
)
EMPTY = PermissionTable()


def roster() -> CallRoster:
    r = pt.new_roster(
        "c1",
        TEACHER,
        [
            Invitee(COLLEAGUE, Category.STAFF),
            Invitee(ANNA, Category.STUDENT),
            Invitee(BORIS, Category.STUDENT),
            Invitee(PARENT, Category.PARENT),
        ],
        S,
    )
    for person in (TEACHER, COLLEAGUE, ANNA, BORIS, PARENT):
        r, verdict = pt.join(CALL, r, person, "s", T0)
        assert verdict.admitted
    return r


# -- the rule ----------------------------------------------------------------------------------

# The documented defaults, written out: screen share off for students and parents (R22), no
# whiteboard for them (the manual's student and parent call interfaces have none).
DEFAULTS = {
    #                 microphone camera screen chat  whiteboard
    CallRole.ADMIN: (True, True, True, True, True),
    CallRole.STAFF: (True, True, True, True, True),
    CallRole.STUDENT: (True, True, False, True, False),
    CallRole.PARENT: (True, True, False, True, False),
}
CAPS = (
    Capability.MICROPHONE,
    Capability.CAMERA,
    Capability.SCREEN,
    Capability.CHAT,
    Capability.WHITEBOARD,
)


def test_role_defaults_are_the_documented_matrix() -> None:
    for role, row in DEFAULTS.items():
        assert tuple(pm.effective(EMPTY, role, "@x", cap) for cap in CAPS) == row


TRI = (None, True, False)


@pytest.mark.parametrize(
    ("role", "cap", "personal", "everyone"),
    list(itertools.product(list(CallRole), CAPS, TRI, TRI)),
)
def test_precedence_admin_then_personal_then_everyone_then_default(
    role: CallRole, cap: Capability, personal: bool | None, everyone: bool | None
) -> None:
    table = PermissionTable(
        everyone={} if everyone is None else {cap: everyone},
        personal={} if personal is None else {("@x", cap): personal},
    )
    if role is CallRole.ADMIN:
        expected = True
    elif personal is not None:
        expected = personal
    elif everyone is not None:
        expected = everyone
    else:
        expected = DEFAULTS[role][CAPS.index(cap)]
    assert pm.effective(table, role, "@x", cap) is expected
    # Decisions about other people and other capabilities never leak in.
    other = next(c for c in CAPS if c is not cap)
    assert pm.effective(table, role, "@y", cap) is pm.effective(
        PermissionTable(everyone=table.everyone), role, "@y", cap
    )
    assert pm.effective(table, role, "@x", other) is pm.effective(EMPTY, role, "@x", other)


def test_people_outside_the_call_have_nothing() -> None:
    assert pm.capabilities(EMPTY, roster(), OUTSIDER) == frozenset()
    assert pm.capabilities(EMPTY, roster(), TEACHER) == pm.ALL


# -- who may change permissions ----------------------------------------------------------------


def test_an_admin_lets_one_student_share_the_screen() -> None:
    table, r = pm.set_personal(EMPTY, roster(), TEACHER, ANNA, Capability.SCREEN, True)
    assert pm.may(table, r, ANNA, Capability.SCREEN)
    assert not pm.may(table, r, BORIS, Capability.SCREEN)
    r = pm.set_media(table, r, ANNA, MediaKind.SCREEN, True)
    assert r.participants[ANNA].media.screen


def test_a_co_admin_may_change_permissions_too() -> None:
    r = pt.make_admin(roster(), TEACHER, COLLEAGUE)
    table, _ = pm.set_everyone(EMPTY, r, COLLEAGUE, Capability.CHAT, False)
    assert not pm.may(table, r, ANNA, Capability.CHAT)


@pytest.mark.parametrize(
    ("target", "code"), [(TEACHER, CallCode.OWNER), (OUTSIDER, CallCode.NOT_FOUND)]
)
def test_admins_and_strangers_cannot_be_restricted(target: str, code: CallCode) -> None:
    with pytest.raises(CallError) as info:
        pm.set_personal(EMPTY, roster(), TEACHER, target, Capability.MICROPHONE, False)
    assert info.value.code is code
    r = pt.make_admin(roster(), TEACHER, COLLEAGUE)
    with pytest.raises(CallError) as info:
        pm.force_mute(EMPTY, r, TEACHER, COLLEAGUE)
    assert info.value.code is CallCode.TARGET_IS_ADMIN


changes = st.one_of(
    st.tuples(
        st.just("personal"),
        st.sampled_from([ANNA, BORIS, PARENT, COLLEAGUE, TEACHER]),
        st.sampled_from(CAPS),
        st.sampled_from(TRI),
    ),
    st.tuples(st.just("everyone"), st.just(""), st.sampled_from(CAPS), st.sampled_from(TRI)),
    st.tuples(
        st.just("force_mute"),
        st.sampled_from([ANNA, BORIS, TEACHER]),
        st.just(Capability.MICROPHONE),
        st.just(None),
    ),
    st.tuples(
        st.just("request"),
        st.sampled_from([ANNA, BORIS]),
        st.just(Capability.MICROPHONE),
        st.just(None),
    ),
)


def attempt(
    table: PermissionTable,
    r: CallRoster,
    actor: str,
    change: tuple[str, str, Capability, bool | None],
) -> tuple[PermissionTable, CallRoster]:
    kind, target, cap, allowed = change
    if kind == "personal":
        return pm.set_personal(table, r, actor, target, cap, allowed)
    if kind == "everyone":
        return pm.set_everyone(table, r, actor, cap, allowed, reset_personal=bool(allowed))
    if kind == "force_mute":
        return pm.force_mute(table, r, actor, target)
    pm.request_mute(r, actor, target, T0)
    return table, r


@given(
    st.lists(changes, max_size=6),
    st.sampled_from([COLLEAGUE, ANNA, BORIS, PARENT, OUTSIDER]),
    changes,
)
def test_permission_changes_by_non_admins_never_change_state(
    history: list[tuple[str, str, Capability, bool | None]],
    actor: str,
    change: tuple[str, str, Capability, bool | None],
) -> None:
    table, r = EMPTY, roster()
    r = pt.record_media(r, ANNA, MediaKind.AUDIO, True)
    for past in history:  # whatever the admin did before
        with contextlib.suppress(CallError):
            table, r = attempt(table, r, TEACHER, past)
    before = copy.deepcopy((table, r))
    with pytest.raises(CallError) as info:
        attempt(table, r, actor, change)
    assert info.value.code is CallCode.FORBIDDEN
    assert (table, r) == before


@given(st.lists(changes, max_size=10))
def test_media_never_stays_on_without_its_capability(
    history: list[tuple[str, str, Capability, bool | None]],
) -> None:
    table, r = EMPTY, roster()
    for person in (ANNA, BORIS, PARENT, COLLEAGUE):
        for kind, cap in pm.MEDIA.items():
            if pm.may(table, r, person, cap):
                r = pm.set_media(table, r, person, kind, True)
    for change in history:
        with contextlib.suppress(CallError):
            table, r = attempt(table, r, TEACHER, change)
        for p in r.participants.values():
            for kind, cap in pm.MEDIA.items():
                if p.media.is_on(kind):
                    assert pm.may(table, r, p.person_id, cap)


# -- mute request vs force mute ----------------------------------------------------------------


def test_a_mute_request_asks_and_changes_nothing() -> None:
    r = pm.set_media(EMPTY, roster(), ANNA, MediaKind.AUDIO, True)
    request = pm.request_mute(r, TEACHER, ANNA, T0 + MIN)
    assert request == MuteRequest(ANNA, TEACHER, T0 + MIN)
    assert r.participants[ANNA].media.audio  # still on: she decides
    r = pm.set_media(EMPTY, r, ANNA, MediaKind.AUDIO, False)
    r = pm.set_media(EMPTY, r, ANNA, MediaKind.AUDIO, True)  # and may unmute later
    assert r.participants[ANNA].media.audio


def test_a_mute_request_needs_someone_in_the_call() -> None:
    r = pt.leave(roster(), ANNA, "s", T0 + MIN)
    with pytest.raises(CallError) as info:
        pm.request_mute(r, TEACHER, ANNA, T0 + MIN)
    assert info.value.code is CallCode.NOT_JOINED


def test_mute_all_asks_only_non_admins_whose_microphone_is_on() -> None:
    r = roster()
    for person in (TEACHER, ANNA, PARENT):
        r = pm.set_media(EMPTY, r, person, MediaKind.AUDIO, True)
    assert pm.request_mute_all(r, TEACHER, T0) == (
        MuteRequest(ANNA, TEACHER, T0),
        MuteRequest(PARENT, TEACHER, T0),
    )


def test_force_mute_turns_audio_off_and_keeps_it_off_until_granted() -> None:
    r = pm.set_media(EMPTY, roster(), ANNA, MediaKind.AUDIO, True)
    table, r = pm.force_mute(EMPTY, r, TEACHER, ANNA)
    assert not r.participants[ANNA].media.audio
    with pytest.raises(CallError) as info:
        pm.set_media(table, r, ANNA, MediaKind.AUDIO, True)
    assert info.value.code is CallCode.FORBIDDEN and "microphone" in info.value.message
    # Unmuting the class doesn't unmute her: a personal decision outlives "everyone".
    table, r = pm.set_everyone(table, r, TEACHER, Capability.MICROPHONE, True)
    assert not pm.may(table, r, ANNA, Capability.MICROPHONE)
    table, r = pm.set_personal(table, r, TEACHER, ANNA, Capability.MICROPHONE, True)
    r = pm.set_media(table, r, ANNA, MediaKind.AUDIO, True)
    assert r.participants[ANNA].media.audio


def test_everyone_off_stops_running_media_except_admins_and_exceptions() -> None:
    r = roster()
    for person in (TEACHER, COLLEAGUE, ANNA, BORIS):
        r = pm.set_media(EMPTY, r, person, MediaKind.VIDEO, True)
    table, r = pm.set_personal(EMPTY, r, TEACHER, BORIS, Capability.CAMERA, True)
    table, r = pm.set_everyone(table, r, TEACHER, Capability.CAMERA, False)
    video = {p: r.participants[p].media.video for p in (TEACHER, COLLEAGUE, ANNA, BORIS)}
    assert video == {TEACHER: True, COLLEAGUE: False, ANNA: False, BORIS: True}
    # reset_personal makes the everyone setting reach everyone.
    table, r = pm.set_everyone(table, r, TEACHER, Capability.CAMERA, False, reset_personal=True)
    assert not r.participants[BORIS].media.video
    table, r = pm.set_everyone(table, r, TEACHER, Capability.CAMERA, None)  # back to defaults
    assert pm.may(table, r, ANNA, Capability.CAMERA)


def test_turning_media_off_never_needs_permission_and_on_needs_it() -> None:
    r = roster()
    with pytest.raises(CallError) as info:
        pm.set_media(EMPTY, r, ANNA, MediaKind.SCREEN, True)  # off for students by default
    assert info.value.code is CallCode.FORBIDDEN
    assert pm.set_media(EMPTY, r, ANNA, MediaKind.SCREEN, False) == r
    r = pm.set_media(EMPTY, r, COLLEAGUE, MediaKind.SCREEN, True)  # staff may
    assert r.participants[COLLEAGUE].media.screen


def test_a_demoted_co_admin_loses_what_their_role_may_not_do() -> None:
    r = pt.make_admin(roster(), TEACHER, COLLEAGUE)
    table, r = pm.set_everyone(EMPTY, r, TEACHER, Capability.SCREEN, False)
    r = pm.set_media(table, r, COLLEAGUE, MediaKind.SCREEN, True)  # as an admin, allowed
    r = pm.demote(table, r, TEACHER, COLLEAGUE)
    assert pt.role_of(r, COLLEAGUE) is CallRole.STAFF
    assert not r.participants[COLLEAGUE].media.screen
