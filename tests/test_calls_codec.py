"""The call state document (services.calls.codec): what a restart reads back is exactly what
was written, through the store's JSON; and after a restart nobody is in the call."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sferumd.services.calls import breakout as bo
from sferumd.services.calls import codec
from sferumd.services.calls import hands as hq
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.codec import CallDocument
from sferumd.services.calls.permissions import Capability, PermissionTable
from sferumd.services.calls.recording import Recording

people = st.sampled_from(["T-1", "T-2", "ST-1", "ST-2", "ST-3", "PA-1", "@u1", "@u2"])
times = st.integers(0, 2**41)
maybe_times = st.none() | times
names = st.text(max_size=8)


@st.composite
def intervals(draw: st.DrawFn) -> tuple[pt.Interval, ...]:
    out = []
    for session in draw(st.lists(st.sampled_from(["d1", "d2", "d3"]), max_size=4)):
        joined = draw(times)
        left = draw(st.none() | st.integers(joined, joined + 10**7))
        out.append(pt.Interval(session, joined, left))
    return tuple(out)


@st.composite
def documents(draw: st.DrawFn) -> CallDocument:
    call = lc.Call(
        draw(st.text(min_size=1, max_size=6)),
        draw(st.none() | names),
        draw(times),
        draw(times),
        draw(times),
        draw(st.sampled_from(list(lc.CallState))),
        draw(maybe_times),
        draw(maybe_times),
        draw(maybe_times),
    )
    invited = draw(st.lists(people, unique=True, min_size=1))
    invitees = {
        p: pt.Invitee(p, draw(st.sampled_from(list(pt.Category))), draw(st.booleans()))
        for p in invited
    }
    participants = {
        p: pt.Participant(
            p,
            draw(intervals()),
            pt.MediaState(draw(st.booleans()), draw(st.booleans()), draw(st.booleans())),
        )
        for p in draw(st.lists(st.sampled_from(invited), unique=True))
    }
    roster = pt.CallRoster(
        call.call_id,
        invited[0],
        invitees,
        frozenset(draw(st.lists(st.sampled_from(invited)))),
        draw(st.booleans()),
        participants,
        tuple(
            pt.Knock(p, draw(st.sampled_from(["d1", "d2"])), draw(times))
            for p in draw(st.lists(st.sampled_from(invited), unique=True))
        ),
        frozenset(draw(st.lists(st.sampled_from(invited)))),
        {
            p: draw(st.sampled_from(list(pt.Exclusion)))
            for p in draw(st.lists(st.sampled_from(invited)))
        },
    )
    caps = st.sampled_from(list(Capability))
    table = PermissionTable(
        draw(st.dictionaries(caps, st.booleans())),
        draw(st.dictionaries(st.tuples(st.sampled_from(invited), caps), st.booleans())),
    )
    hands = hq.HandQueue(
        tuple(
            hq.RaisedHand(p, draw(times), i)
            for i, p in enumerate(draw(st.lists(st.sampled_from(invited), unique=True)))
        ),
        draw(st.integers(0, 1000)),
    )
    plan = None
    if draw(st.booleans()):
        rooms = tuple(bo.BreakoutRoom(f"p1.{n}", n, draw(names)) for n in range(1, 4))
        room_ids = st.sampled_from([r.room_id for r in rooms])
        plan = bo.BreakoutPlan(
            "p1",
            draw(st.sampled_from(list(bo.Phase))),
            rooms,
            draw(st.dictionaries(st.sampled_from(invited), room_ids)),
            draw(st.booleans()),
            draw(st.none() | st.integers(1, 9)),
            draw(st.none() | st.integers(60_000, 10**7)),
            draw(maybe_times),
            draw(maybe_times),
            draw(maybe_times),
            draw(st.dictionaries(st.sampled_from(invited), room_ids)),
            draw(maybe_times),
        )
    return CallDocument(
        call,
        roster,
        table,
        hands,
        plan,
        draw(st.dictionaries(st.sampled_from(["p1.1", "p1.2"]), st.just("!room"))),
        draw(st.dictionaries(st.sampled_from(invited), st.sampled_from(["@u1", "@u2"]))),
        draw(st.integers(0, 10**6)),
        draw(
            st.none()
            | st.builds(Recording, st.integers(0, 2**50), st.sampled_from(invited), st.just("Cx.1"))
        ),
    )


@settings(max_examples=300, deadline=None)
@given(documents())
def test_a_document_survives_the_store(doc: CallDocument) -> None:
    stored = json.dumps(codec.dump(doc), ensure_ascii=False, separators=(",", ":"))
    assert codec.load(json.loads(stored)) == doc


@settings(max_examples=300, deadline=None)
@given(documents(), times)
def test_after_a_restart_nobody_is_in(doc: CallDocument, at: int) -> None:
    after = codec.restarted(doc, at)
    assert pt.present(after.roster) == ()
    assert after.roster.waiting == () and after.hands.hands == ()
    for person_id, p in after.roster.participants.items():
        before = doc.roster.participants[person_id]
        assert p.media == pt.OFF
        for old, new in zip(before.intervals, p.intervals, strict=True):
            # Closed stays as it was; open closes at the restart, never before it began.
            assert new.left_ms == (
                old.left_ms if old.left_ms is not None else max(old.joined_ms, at)
            )
    assert after.call == doc.call and after.table == doc.table and after.users == doc.users
