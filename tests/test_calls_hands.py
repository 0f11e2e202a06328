"""The raise-hand queue: order, idempotence, who lowers whose hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import hands as hq
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.hands import HandQueue
from sferumd.services.calls.lifecycle import CallEvent
from sferumd.services.calls.participants import CallRoster, Category, Invitee
from sferumd.services.calls.settings import CallSettings

T0 = 1_706_259_600_000
S = CallSettings()
TEACHER, ANNA, BORIS, VERA, GLEB = "@teacher", "@anna", "@boris", "@vera", "@gleb"
STUDENTS = (ANNA, BORIS, VERA, GLEB)
CALL = lc.apply(
    lc.apply(lc.schedule("c1", "7V", T0, T0 + 3_600_000, T0 - 1, S), CallEvent.OPEN, T0),
    CallEvent.START,
    T0,
)


def roster() -> CallRoster:
    r = pt.new_roster("c1", TEACHER, [Invitee(p, Category.STUDENT) for p in STUDENTS], S)
    for person in (TEACHER, ANNA, BORIS, VERA):  # GLEB is invited but not in the call
        r, _ = pt.join(CALL, r, person, "s", T0)
    return r


R = roster()


def test_hands_queue_by_raise_time_and_raising_again_keeps_the_place() -> None:
    q = hq.raise_hand(HandQueue(), R, BORIS, T0 + 20)
    q = hq.raise_hand(q, R, ANNA, T0 + 10)  # an earlier timestamp that arrived later
    q = hq.raise_hand(q, R, VERA, T0 + 30)
    assert hq.order(q) == (ANNA, BORIS, VERA)
    again = hq.raise_hand(q, R, ANNA, T0 + 40)
    assert again == q  # not sent to the back
    assert hq.position(q, BORIS) == 1 and hq.position(q, TEACHER) is None


def test_equal_times_keep_arrival_order() -> None:
    q = HandQueue()
    for person in (VERA, ANNA, BORIS):
        q = hq.raise_hand(q, R, person, T0)
    assert hq.order(q) == (VERA, ANNA, BORIS)


def test_only_people_in_the_call_raise_hands() -> None:
    with pytest.raises(CallError) as info:
        hq.raise_hand(HandQueue(), R, GLEB, T0)
    assert info.value.code is CallCode.NOT_JOINED


def test_lowering_own_someone_elses_and_all() -> None:
    q = HandQueue()
    for person in (ANNA, BORIS, VERA):
        q = hq.raise_hand(q, R, person, T0)
    q = hq.lower_hand(q, R, ANNA, ANNA)  # one's own
    assert hq.order(q) == (BORIS, VERA)
    with pytest.raises(CallError) as info:
        hq.lower_hand(q, R, VERA, BORIS)
    assert info.value.code is CallCode.FORBIDDEN
    q = hq.lower_hand(q, R, TEACHER, BORIS)  # the admin lowers someone's
    assert hq.order(q) == (VERA,)
    assert hq.lower_hand(q, R, ANNA, ANNA) == q  # not raised: nothing happens
    with pytest.raises(CallError) as info:
        hq.lower_all(q, R, VERA)
    assert info.value.code is CallCode.FORBIDDEN
    assert hq.order(hq.lower_all(q, R, TEACHER)) == ()


def test_a_lowered_hand_raised_again_goes_to_the_back() -> None:
    q = HandQueue()
    for person in (ANNA, BORIS):
        q = hq.raise_hand(q, R, person, T0)
    q = hq.lower_hand(q, R, ANNA, ANNA)
    q = hq.raise_hand(q, R, ANNA, T0 + 1)
    assert hq.order(q) == (BORIS, ANNA)


def test_drop_takes_out_the_hand_of_someone_who_left() -> None:
    q = hq.raise_hand(HandQueue(), R, ANNA, T0)
    assert hq.order(hq.drop(q, ANNA)) == ()
    assert hq.drop(q, BORIS) == q


steps = st.lists(
    st.tuples(
        st.sampled_from(["raise", "lower"]),
        st.sampled_from([ANNA, BORIS, VERA]),
        st.sampled_from([ANNA, BORIS, VERA, TEACHER]),  # who lowers
        st.integers(0, 3),  # time step (0: the same millisecond)
    ),
    max_size=30,
)


@given(steps)
def test_the_queue_matches_a_model(ops: list[tuple[str, str, str, int]]) -> None:
    q, now, arrivals = HandQueue(), T0, 0
    model: dict[str, tuple[int, int]] = {}  # person -> (time, arrival) of the current raise
    for kind, person, actor, dt in ops:
        now += dt
        if kind == "raise":
            q = hq.raise_hand(q, R, person, now)
            if person not in model:
                model[person] = (now, arrivals)
            arrivals += 1
        else:
            try:
                q = hq.lower_hand(q, R, actor, person)
                model.pop(person, None)
            except CallError as exc:
                assert exc.code is CallCode.FORBIDDEN and actor not in (person, TEACHER)
        assert hq.order(q) == tuple(sorted(model, key=lambda p: model[p]))
        assert len(set(hq.order(q))) == len(q.hands)
