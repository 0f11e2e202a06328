"""What the media plane is told after a control-plane change (services.calls.media): leaves,
moves between rooms (breakout rooms), and producers paused when a permission goes. Pure."""

from __future__ import annotations

from sferumd.services.calls import breakout as bo
from sferumd.services.calls import participants as pt
from sferumd.services.calls import permissions as pm
from sferumd.services.calls.codec import CallDocument
from sferumd.services.calls.lifecycle import Call, CallState
from sferumd.services.calls.media import MediaStep, media_steps
from sferumd.services.calls.permissions import Capability, PermissionTable
from sferumd.services.calls.settings import CallSettings
from sferumd.services.calls.views import placement

S = CallSettings()
T, A, B = "T-1", "ST-A", "ST-B"


def running() -> tuple[pt.CallRoster, PermissionTable]:
    invitees = [pt.Invitee(A, pt.Category.STUDENT), pt.Invitee(B, pt.Category.STUDENT)]
    roster = pt.new_roster("c1", T, invitees, S)
    call = Call("c1", None, 0, 60_000, 0, state=CallState.RUNNING)
    for person in (T, A, B):
        roster, verdict = pt.join(call, roster, person, "web", 0)
        assert verdict.admitted
    return roster, PermissionTable()


def where(roster: pt.CallRoster, plan: bo.BreakoutPlan | None) -> dict[str, str]:
    return placement(CallDocument(Call("c1", None, 0, 1, 0), roster, plan=plan))


def test_revoking_a_share_pauses_it_and_granting_back_lets_it_flow() -> None:
    roster, table = running()
    table, roster = pm.set_personal(table, roster, T, A, Capability.SCREEN, True)
    shared = pm.set_media(table, roster, A, pt.MediaKind.SCREEN, True)
    shared = pm.set_media(table, shared, A, pt.MediaKind.AUDIO, True)
    assert media_steps((roster, where(roster, None)), (shared, where(shared, None))) == [
        MediaStep("resume", A, "audio"),
        MediaStep("resume", A, "screen"),
    ]
    table, revoked = pm.set_personal(table, shared, T, A, Capability.SCREEN, False)
    _, muted = pm.force_mute(table, revoked, T, A)
    assert media_steps((shared, where(shared, None)), (muted, where(muted, None))) == [
        MediaStep("pause", A, "audio"),
        MediaStep("pause", A, "screen"),
    ]


def test_breakout_rooms_move_people_and_leaving_frees_them() -> None:
    roster, _ = running()
    plan = bo.plan_by_hand("p1", roster, T, [[A], [B]], S)
    opened = bo.start(plan, roster, T, 0, S)
    assert media_steps((roster, where(roster, plan)), (roster, where(roster, opened))) == [
        MediaStep("move", A, "p1.1"),
        MediaStep("move", B, "p1.2"),
    ]
    visiting = bo.visit(opened, roster, T, "p1.2")
    assert media_steps((roster, where(roster, opened)), (roster, where(roster, visiting))) == [
        MediaStep("move", T, "p1.2")
    ]
    gone = pt.leave(roster, B, "web", 5)
    closed = bo.close_all(visiting, roster, T, 5, S, immediate=True)
    assert media_steps((roster, where(roster, visiting)), (gone, where(gone, closed))) == [
        MediaStep("leave", B),
        MediaStep("move", A, "main"),
        MediaStep("move", T, "main"),
    ]
    assert media_steps((gone, where(gone, closed)), (gone, where(gone, closed))) == []
