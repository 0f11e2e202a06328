"""Power levels and the membership state machine: who may do what, pure functions only."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode, ProtocolError
from sferumd.services import membership as ms
from sferumd.services import power
from sferumd.services.power import PowerLevels

CREATOR = "@creator"
USER = "@user"


def levels_with(content: dict[str, Any]) -> PowerLevels:
    power.validate_content(content)  # only contents a room could hold
    return PowerLevels.from_content(content)


def room_levels(**users: int) -> PowerLevels:
    """A new room's power levels, with extra users at the given levels (``u_50=50``)."""
    content = power.initial_content(CREATOR)
    content["users"].update({f"@{name}": level for name, level in users.items()})
    return levels_with(content)


def forbidden(call: Any, *args: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call(*args)
    assert info.value.code is ErrorCode.FORBIDDEN
    return info.value


def gate(levels: PowerLevels, user: str, action: str) -> None:
    """The level check each op makes before it acts (as sferumd/services/rooms.py does)."""
    if action in ("invite", "kick", "ban", "redact"):  # redact: someone else's event
        needed = levels.action(action)
    elif action == "send":
        needed = levels.for_event("message", is_state=False)
    else:  # changing a state type
        needed = levels.for_event(action, is_state=True)
    power.require(levels, user, needed, action)


# -- the matrix: who may do what in a new room ----------------------------------------------

LEVELS = (0, 49, 50, 99, 100)
# The documented defaults, written out: a member (0) sends and invites; a moderator (50)
# kicks, bans, redacts others' messages and changes name, topic and join rule; only an
# admin (100) changes power levels.
MATRIX: dict[str, tuple[bool, ...]] = {
    #                   0      49     50     99     100
    "send":          (True,  True,  True,  True,  True),
    "invite":        (True,  True,  True,  True,  True),
    "kick":          (False, False, True,  True,  True),
    "ban":           (False, False, True,  True,  True),
    "redact":        (False, False, True,  True,  True),
    "name":          (False, False, True,  True,  True),
    "topic":         (False, False, True,  True,  True),
    "join_rule":     (False, False, True,  True,  True),
    "power_levels":  (False, False, False, False, True),
}  # fmt: skip
MATRIX_CASES = [
    (level, action, allowed)
    for action, row in MATRIX.items()
    for level, allowed in zip(LEVELS, row, strict=True)
]


@pytest.mark.parametrize(("level", "action", "allowed"), MATRIX_CASES)
def test_power_matrix(level: int, action: str, allowed: bool) -> None:
    levels = room_levels(user=level)
    if allowed:
        gate(levels, USER, action)
    else:
        err = forbidden(gate, levels, USER, action)
        assert str(level) in err.message  # says what the user has


@pytest.mark.parametrize("action", sorted(MATRIX))
def test_someone_not_in_the_users_map_has_the_default_level(action: str) -> None:
    levels = room_levels()
    assert levels.user("@stranger") == 0
    if MATRIX[action][0]:
        gate(levels, "@stranger", action)
    else:
        forbidden(gate, levels, "@stranger", action)


@pytest.mark.parametrize("action", sorted(MATRIX))
def test_the_creator_may_do_everything(action: str) -> None:
    levels = room_levels()
    assert levels.user(CREATOR) == 100
    gate(levels, CREATOR, action)


def test_action_levels_come_from_the_room_not_the_defaults() -> None:
    content = power.initial_content(CREATOR)
    content.update(events_default=20, invite=30, kick=10, state_default=5)
    content["events"]["topic"] = 0
    content["users"][USER] = 10
    levels = levels_with(content)
    forbidden(gate, levels, USER, "send")  # messages now need 20
    forbidden(gate, levels, USER, "invite")  # 30
    gate(levels, USER, "kick")  # 10
    gate(levels, USER, "topic")  # 0
    forbidden(gate, levels, USER, "name")  # still 50 by its own entry
    assert levels.for_event("custom.state", is_state=True) == 5  # state_default
    assert levels.for_event("custom.note", is_state=False) == 20  # events_default


def test_an_event_type_with_its_own_level() -> None:
    content = power.initial_content(CREATOR)
    content["events"]["announcement"] = 50
    content["users"][USER] = 49
    levels = levels_with(content)
    assert levels.for_event("announcement", is_state=False) == 50
    forbidden(power.require, levels, USER, 50, "sending")
    power.require(levels, USER, levels.for_event("message", is_state=False), "sending")


def test_users_default_raises_everyone_not_listed() -> None:
    content = power.initial_content(CREATOR)
    content["users_default"] = 50
    levels = levels_with(content)
    assert levels.user("@anyone") == 50
    gate(levels, "@anyone", "kick")
    assert levels.user(CREATOR) == 100


# -- kick and ban also need a level above the target's ---------------------------------------


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (50, 0, True),
        (50, 49, True),
        (50, 50, False),  # a moderator cannot kick another moderator
        (50, 100, False),
        (100, 99, True),
        (100, 100, False),  # nor an admin another admin
        (0, 0, False),
        (1, 0, True),
    ],
)
def test_require_above(actor: int, target: int, allowed: bool) -> None:
    levels = room_levels(actor=actor, target=target)
    if allowed:
        power.require_above(levels, "@actor", "@target", "kicking")
    else:
        forbidden(power.require_above, levels, "@actor", "@target", "kicking")


def test_require_above_a_user_at_the_default_level() -> None:
    levels = room_levels(mod=50)
    power.require_above(levels, "@mod", "@unlisted", "banning")
    forbidden(power.require_above, levels, "@unlisted", "@mod", "banning")


# -- validate_content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        {},
        power.initial_content(CREATOR),
        {"kick": 0, "ban": 100},
        {"users": {"@a": 0, "@b": 100}},
        {"events": {"name": 0, "custom.type": 100}},
        {"users_default": 0, "events_default": 100, "state_default": 0, "redact": 1},
    ],
)
def test_valid_power_levels_content(content: dict[str, Any]) -> None:
    power.validate_content(content)


@pytest.mark.parametrize(
    "content",
    [
        {"kick": "50"},
        {"kick": 50.0},
        {"kick": True},
        {"kick": None},
        {"kick": -1},
        {"kick": 101},
        {"users_default": 2**63},
        {"events": []},
        {"events": "name"},
        {"events": {"name": "50"}},
        {"events": {"name": 101}},
        {"users": [["@a", 50]]},
        {"users": {"a": 50}},
        {"users": {"!room": 50}},
        {"users": {"@a": 50.5}},
        {"users": {"@a": -5}},
        {"users": {"@a": False}},
        {"state": 50},
        {"notifications": {"room": 50}},
        {"Kick": 50},
    ],
)
def test_invalid_power_levels_content(content: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        power.validate_content(content)
    assert info.value.code is ErrorCode.INVALID_FIELD


levels_values = st.integers(-5, 105) | st.booleans() | st.none() | st.text(max_size=3) | st.floats()
power_contents = st.dictionaries(
    st.sampled_from([*power.ACTION_DEFAULTS, "events", "users", "other"]),
    levels_values
    | st.dictionaries(
        st.sampled_from(["@a", "@b", "name", "power_levels", "x"]) | st.text(max_size=4),
        levels_values,
        max_size=4,
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(power_contents)
def test_any_power_levels_content_is_checked_or_usable(content: dict[str, Any]) -> None:
    try:
        power.validate_content(content)
    except ProtocolError as err:
        assert err.code is ErrorCode.INVALID_FIELD
        return
    levels = PowerLevels.from_content(content)  # whatever passes must load

    def ok(level: Any) -> bool:
        return type(level) is int and 0 <= level <= 100

    assert all(ok(v) for v in levels.actions.values())
    assert all(ok(v) for v in levels.events.values())
    assert all(ok(v) and u.startswith("@") for u, v in levels.users.items())


# -- check_change: nobody grants or takes away more than their own level --------------------


def changed(levels: PowerLevels, **changes: Any) -> PowerLevels:
    """``levels`` with action levels, ``events={...}`` or ``users={...}`` replaced."""
    actions = dict(levels.actions)
    events = dict(levels.events)
    users = dict(levels.users)
    events.update(changes.pop("events", {}))
    users.update(changes.pop("users", {}))
    for user in changes.pop("remove_users", ()):
        del users[user]
    actions.update(changes)
    return PowerLevels(actions, events, users)


MOD = "@mod"


def base(**users: int) -> PowerLevels:
    return room_levels(mod=50, **users)


ALLOWED_CHANGES = {
    "nothing changes": (base(), {}),
    "raise a member up to one's own level": (base(), {"users": {"@new": 50}}),
    "raise a member below one's own level": (base(m=10), {"users": {"@m": 40}}),
    "demote a member below one": (base(m=49), {"users": {"@m": 0}}),
    "remove a lower member's entry": (base(m=40), {"remove_users": ["@m"]}),
    "demote oneself": (base(), {"users": {MOD: 0}}),
    "remove one's own entry": (base(), {"remove_users": [MOD]}),
    "lower an action level one holds": (base(), {"kick": 10}),
    "raise an action level up to one's own": (base(), {"invite": 50}),
    "lower a state type at one's level": (base(), {"events": {"name": 0}}),
    "add an event type at one's level": (base(), {"events": {"poll": 50}}),
    "raise users_default up to one's own": (base(), {"users_default": 50}),
}
FORBIDDEN_CHANGES = {
    "raise a member above one's own level": (base(), {"users": {"@new": 51}}),
    "raise oneself": (base(), {"users": {MOD: 51}}),
    "demote a peer at one's level": (base(peer=50), {"users": {"@peer": 0}}),
    "demote the admin": (base(), {"users": {CREATOR: 0}}),
    "remove the admin's entry": (base(), {"remove_users": [CREATOR]}),
    "raise an action level above one's own": (base(), {"ban": 60}),
    "lower an action level one does not hold": (base(), {"events": {"power_levels": 50}}),
    "lower an action level set above one's own": (changed(base(), kick=60), {"kick": 10}),
    "raise users_default above one's own": (base(), {"users_default": 51}),
    "add an event type above one's level": (base(), {"events": {"poll": 60}}),
}


@pytest.mark.parametrize("case", sorted(ALLOWED_CHANGES))
def test_allowed_power_changes(case: str) -> None:
    old, changes = ALLOWED_CHANGES[case]
    power.check_change(old, changed(old, **changes), MOD)


@pytest.mark.parametrize("case", sorted(FORBIDDEN_CHANGES))
def test_forbidden_power_changes(case: str) -> None:
    old, changes = FORBIDDEN_CHANGES[case]
    forbidden(power.check_change, old, changed(old, **changes), MOD)


def test_admin_may_change_everything_below_and_demote_itself() -> None:
    old = base(m=99)
    new = changed(
        old,
        kick=100,
        ban=0,
        events={"power_levels": 99, "poll": 100},
        users={"@m": 100, MOD: 0, CREATOR: 10},
    )
    power.check_change(old, new, CREATOR)


def test_admin_cannot_demote_another_admin() -> None:
    old = base(other=100)
    forbidden(power.check_change, old, changed(old, users={"@other": 50}), CREATOR)


def test_removing_an_event_entry_counts_its_old_level() -> None:
    # Dropping events.power_levels (100) would let state_default (50) govern power levels:
    # that takes away a level of 100, which only a 100 may do.
    old = base()
    assert old.events["power_levels"] == 100
    events = {k: v for k, v in old.events.items() if k != "power_levels"}
    new = PowerLevels(dict(old.actions), events, dict(old.users))
    assert new.for_event("power_levels", is_state=True) == 50
    forbidden(power.check_change, old, new, MOD)
    power.check_change(old, new, CREATOR)


# -- membership: every action from every state ----------------------------------------------

ACTIONS = ("invite", "join", "leave", "kick", "ban", "unban", "knock", "accept", "refuse")
STATES = ("none", "invite", "join", "leave", "ban", "knock")
MEMBERSHIP, BANNED, NOT_MEMBER = ErrorCode.MEMBERSHIP, ErrorCode.BANNED, ErrorCode.NOT_MEMBER

# Matrix-like membership, written out: a state name is where the target ends up, an error
# code is the refusal. Joining from none, leave or knock is for public rooms or an invite
# link (the caller checks); knock, accept and refuse are joining by a link that needs approval.
ROWS: dict[str, tuple[str | ErrorCode, ...]] = {
    #          none        invite      join        leave       ban         knock
    "invite": ("invite",   MEMBERSHIP, MEMBERSHIP, "invite",   BANNED,     "invite"),
    "join":   ("join",     "join",     MEMBERSHIP, "join",     BANNED,     "join"),
    "leave":  (NOT_MEMBER, "leave",    "leave",    NOT_MEMBER, NOT_MEMBER, "leave"),
    "kick":   (MEMBERSHIP, "leave",    "leave",    MEMBERSHIP, MEMBERSHIP, "leave"),
    "ban":    ("ban",      "ban",      "ban",      "ban",      MEMBERSHIP, "ban"),
    "unban":  (MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, "leave",    MEMBERSHIP),
    "knock":  ("knock",    MEMBERSHIP, MEMBERSHIP, "knock",    BANNED,     MEMBERSHIP),
    "accept": (MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, "join"),
    "refuse": (MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, MEMBERSHIP, "leave"),
}  # fmt: skip
EXPECTED = {action: dict(zip(STATES, row, strict=True)) for action, row in ROWS.items()}
MEMBERSHIP_CASES = [(a, s, EXPECTED[a][s]) for a in ACTIONS for s in STATES]


def test_membership_names() -> None:
    assert (ms.NONE, ms.INVITE, ms.JOIN, ms.LEAVE, ms.BAN, ms.KNOCK) == STATES


@pytest.mark.parametrize(("action", "state", "expected"), MEMBERSHIP_CASES)
def test_membership_transition(action: str, state: str, expected: str | ErrorCode) -> None:
    if isinstance(expected, ErrorCode):
        with pytest.raises(ProtocolError) as info:
            ms.transition(action, state)
        assert info.value.code is expected
        assert info.value.message
    else:
        assert ms.transition(action, state) == expected


@pytest.mark.parametrize("action", ["KNOCK", "", "JOIN", "approve"])
@pytest.mark.parametrize("state", STATES)
def test_unknown_membership_action_is_refused(action: str, state: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ms.transition(action, state)
    assert info.value.code is ErrorCode.MEMBERSHIP


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_membership_walks_stay_within_the_states(actions: list[str]) -> None:
    # Any sequence of requests leaves the target in a known state, and a refused one changes
    # nothing; a ban holds until an unban.
    state = "none"
    for action in actions:
        try:
            new = ms.transition(action, state)
        except ProtocolError as err:
            assert err.code in (MEMBERSHIP, BANNED, NOT_MEMBER)
            assert EXPECTED[action][state] == err.code
            continue
        assert new in STATES and new != "none"
        if state == "ban":
            assert action == "unban"
        state = new


def test_adding_a_message_type_level_counts_from_events_default() -> None:
    """A user at 40 who may edit power levels (lowered to 40) may set events.message=10:
    the old level of a message type is events_default (0), not state_default (50)."""
    content = power.initial_content("@creator")
    content["events"]["power_levels"] = 40
    content["users"]["@mod"] = 40
    old = PowerLevels.from_content(content)
    new_content = {**content, "events": {**content["events"], "message": 10}}
    power.check_change(old, PowerLevels.from_content(new_content), "@mod")
    too_high = {**content, "events": {**content["events"], "message": 45}}
    with pytest.raises(ProtocolError):
        power.check_change(old, PowerLevels.from_content(too_high), "@mod")
