"""The rules of recording a call (services.calls.recording): admins only, once, while the
call is open or running; who posts the file. Pure."""

from __future__ import annotations

import pytest

from sferumd.services.calls import participants as pt
from sferumd.services.calls import recording as rec
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.lifecycle import Call, CallState
from sferumd.services.calls.settings import CallSettings

T, A = "T-1", "ST-A"


def roster() -> pt.CallRoster:
    return pt.new_roster("Cx", T, [pt.Invitee(A, pt.Category.STUDENT)], CallSettings())


def call(state: CallState) -> Call:
    return Call("Cx", None, 0, 60_000, 0, state=state)


def test_admins_start_it_once_while_the_call_runs() -> None:
    r = roster()
    started = rec.start(call(CallState.RUNNING), r, None, T, 1000)
    assert started == rec.Recording(1000, T, "Cx.1000")
    assert rec.STEM.fullmatch(started.stem)
    assert rec.start(call(CallState.RUNNING), r, started, T, 2000) is None  # on already
    assert rec.start(call(CallState.OPEN), r, None, T, 3000) is not None
    with pytest.raises(CallError) as refused:
        rec.start(call(CallState.RUNNING), r, None, A, 1000)
    assert refused.value.code is CallCode.FORBIDDEN
    for state in (CallState.SCHEDULED, CallState.ENDED, CallState.CANCELLED):
        with pytest.raises(CallError) as refused:
            rec.start(call(state), r, None, T, 1000)
        assert refused.value.code is CallCode.CALL_STATE


def test_admins_stop_it_and_who_posts_the_file() -> None:
    r = roster()
    running = rec.Recording(1000, T, "Cx.1000")
    assert rec.stop(r, running, T) is True
    assert rec.stop(r, None, T) is False  # off already: nothing to do
    with pytest.raises(CallError) as refused:
        rec.stop(r, running, A)
    assert refused.value.code is CallCode.FORBIDDEN
    assert rec.poster("@owner", "@admin") == "@owner"
    assert rec.poster(None, "@admin") == "@admin"  # a lesson's teacher who never linked
