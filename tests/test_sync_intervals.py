"""Catch-up visibility (sferumd/services/sync.py ``visible_intervals``), pure.

Live delivery sends a room's event to whoever was joined just before it, and a membership
event to its target as well. Catch-up must reproduce exactly that from the user's own
membership events, or a reconnecting client would miss events or see ones it never could.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from sferumd.model import Event
from sferumd.services.sync import Interval, visible_intervals

ME = "@me"
ROOM, OTHER = "!room", "!other"


def member(pos: int, membership: str, room: str = ROOM, sender: str = ME) -> Event:
    return Event(
        f"$m{pos}", room, sender, "member", {"membership": membership}, 0, pos, state_key=ME
    )


def covered(spans: list[Interval], upto: int) -> set[int]:
    """Positions 1..upto inside the (lo, hi] intervals."""
    return {p for p in range(1, upto + 1) if any(lo < p <= hi for lo, hi in spans)}


def visible(events: list[Event], upto: int, room: str = ROOM) -> set[int]:
    return covered(visible_intervals(events, upto).get(room, []), upto)


def assert_well_formed(intervals: dict[str, list[Interval]], upto: int) -> None:
    """Per room: non-empty (lo, hi] spans, ascending and apart, inside the stream."""
    for spans in intervals.values():
        for lo, hi in spans:
            assert 0 <= lo < hi <= upto
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            assert hi <= lo


def test_no_membership_sees_nothing() -> None:
    assert visible_intervals([], 100) == {}


def test_joined_until_the_end_sees_everything_from_the_join() -> None:
    events = [member(5, "join", sender=ME)]
    assert visible(events, 20) == set(range(5, 21))
    assert visible(events, 5) == {5}  # the join is the last event so far


def test_join_leave_rejoin() -> None:
    events = [member(5, "join"), member(9, "leave"), member(12, "join")]
    assert visible(events, 20) == {5, 6, 7, 8, 9, *range(12, 21)}  # the leave itself too


def test_invite_then_decline_sees_only_its_own_membership() -> None:
    events = [member(3, "invite", sender="@host"), member(6, "leave")]
    assert visible(events, 20) == {3, 6}


def test_invite_then_join() -> None:
    events = [member(3, "invite", sender="@host"), member(7, "join")]
    assert visible(events, 10) == {3, 7, 8, 9, 10}


def test_ban_from_outside_is_seen_alone() -> None:
    assert visible([member(7, "ban", sender="@admin")], 20) == {7}


def test_kicked_and_banned_members_see_up_to_that_event() -> None:
    kicked = [member(2, "join"), member(8, "leave", sender="@mod")]
    assert visible(kicked, 20) == set(range(2, 9))
    banned = [member(2, "join"), member(8, "ban", sender="@mod")]
    assert visible(banned, 20) == set(range(2, 9))


def test_unban_and_invite_again_without_joining() -> None:
    events = [
        member(2, "join"),
        member(4, "ban", sender="@mod"),
        member(6, "leave", sender="@mod"),  # unban
        member(9, "invite", sender="@mod"),
    ]
    assert visible(events, 20) == {2, 3, 4, 6, 9}


def test_rooms_are_kept_apart() -> None:
    events = [
        member(1, "join", ROOM),
        member(3, "invite", OTHER, sender="@host"),
        member(4, "join", OTHER),
        member(6, "leave", ROOM),
        member(8, "leave", OTHER),
    ]
    intervals = visible_intervals(events, 10)
    assert set(intervals) == {ROOM, OTHER}
    assert covered(intervals[ROOM], 10) == {1, 2, 3, 4, 5, 6}
    assert covered(intervals[OTHER], 10) == {3, 4, 5, 6, 7, 8}
    assert_well_formed(intervals, 10)


# -- the property: catch-up equals what live delivery would have sent -----------------------

MEMBERSHIPS = ("invite", "join", "leave", "ban")


@dataclass(frozen=True)
class Stream:
    """Events of two rooms at increasing positions: some are the user's membership
    events, the rest are anybody's (messages, other members' changes)."""

    events: list[tuple[int, str, str | None]]  # (pos, room, my new membership or None)
    upto: int


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from([ROOM, ROOM, OTHER]),
                st.sampled_from([*MEMBERSHIPS, None]),
                st.integers(1, 3),  # a gap leaves room for other rooms' events
            ),
            max_size=40,
        )
    )
    events, pos = [], 0
    for room, membership, gap in steps:
        pos += gap
        events.append((pos, room, membership))
    return Stream(events, pos + draw(st.integers(0, 3)))


def live_delivery(stream: Stream) -> set[tuple[str, int]]:
    """What a connected user would have received, event by event."""
    mine: dict[str, str] = {}
    got = set()
    for pos, room, membership in stream.events:
        if mine.get(room) == "join" or membership is not None:
            got.add((room, pos))
        if membership is not None:
            mine[room] = membership
    return got


@settings(max_examples=200, deadline=None)
@given(streams())
def test_intervals_deliver_exactly_what_live_delivery_did(stream: Stream) -> None:
    member_events = [member(p, m, room) for p, room, m in stream.events if m is not None]
    intervals = visible_intervals(member_events, stream.upto)
    assert_well_formed(intervals, stream.upto)
    caught_up = {
        (room, pos)
        for pos, room, _ in stream.events
        if any(lo < pos <= hi for lo, hi in intervals.get(room, []))
    }
    assert caught_up == live_delivery(stream)
