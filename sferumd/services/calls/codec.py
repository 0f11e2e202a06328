"""A call's state as a JSON document, and back: what ``store.calls`` keeps so that a restart
restores every call that was scheduled or running.

Rules:

- ``dump`` and ``load`` are exact inverses over every value the other modules make
  (``load(dump(s)) == s``); the document is plain JSON (strings, numbers, booleans, lists,
  maps with string keys), so it survives the store's ``json`` round trip unchanged.
- The document is the daemon's own, written by ``dump``; ``load`` trusts its shape (a
  ``KeyError`` or ``ValueError`` there means a corrupted database, not bad input).
- ``restarted`` closes every presence interval still open at a given time: after a restart
  nobody is in a call until they join again, and attendance counts them as having left when
  the daemon last wrote the call. Media goes off and the waiting room empties with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sferumd.services.calls.breakout import BreakoutPlan, BreakoutRoom, Phase
from sferumd.services.calls.hands import HandQueue, RaisedHand
from sferumd.services.calls.lifecycle import Call, CallState
from sferumd.services.calls.participants import (
    OFF,
    CallRoster,
    Category,
    Exclusion,
    Interval,
    Invitee,
    Knock,
    MediaState,
    Participant,
)
from sferumd.services.calls.permissions import Capability, PermissionTable
from sferumd.services.calls.recording import Recording

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallDocument:
    """Everything about one call that changes while it runs."""

    call: Call
    roster: CallRoster
    table: PermissionTable = field(default_factory=PermissionTable)
    hands: HandQueue = field(default_factory=HandQueue)
    plan: BreakoutPlan | None = None
    # Breakout room id -> the room's chat (a messenger room id), for the running plan.
    breakout_chats: Mapping[str, str] = field(default_factory=dict)
    # Person -> messenger user, for the people of a lesson call seen so far (accounts).
    users: Mapping[str, str] = field(default_factory=dict)
    version: int = 0  # +1 on every change: clients drop a state older than one they have
    recording: Recording | None = None  # R20: the one running now (calls.recording)


# -- dump -------------------------------------------------------------------------------------


def dump(doc: CallDocument) -> Json:
    return {
        "call": _dump_call(doc.call),
        "roster": _dump_roster(doc.roster),
        "table": {
            "everyone": {c.value: v for c, v in sorted(doc.table.everyone.items())},
            "personal": [[p, c.value, v] for (p, c), v in sorted(doc.table.personal.items())],
        },
        "hands": {
            "hands": [[h.person_id, h.raised_at_ms, h.seq] for h in doc.hands.hands],
            "next_seq": doc.hands.next_seq,
        },
        "plan": None if doc.plan is None else _dump_plan(doc.plan),
        "breakout_chats": dict(sorted(doc.breakout_chats.items())),
        "users": dict(sorted(doc.users.items())),
        "recording": None if doc.recording is None else _dump_recording(doc.recording),
        "version": doc.version,
    }


def _dump_call(c: Call) -> Json:
    return {
        "call_id": c.call_id,
        "class_id": c.class_id,
        "start_ms": c.start_ms,
        "end_ms": c.end_ms,
        "opens_at_ms": c.opens_at_ms,
        "state": c.state.value,
        "opened_at_ms": c.opened_at_ms,
        "started_at_ms": c.started_at_ms,
        "ended_at_ms": c.ended_at_ms,
    }


def _dump_roster(r: CallRoster) -> Json:
    return {
        "call_id": r.call_id,
        "owner_id": r.owner_id,
        "invitees": [
            [i.person_id, i.category.value, i.blocked] for _, i in sorted(r.invitees.items())
        ],
        "admins": sorted(r.admins),
        "waiting_room": r.waiting_room,
        "participants": [
            {
                "person_id": p.person_id,
                "intervals": [[i.session_id, i.joined_ms, i.left_ms] for i in p.intervals],
                "media": [p.media.audio, p.media.video, p.media.screen],
            }
            for _, p in sorted(r.participants.items())
        ],
        "waiting": [[k.person_id, k.session_id, k.since_ms] for k in r.waiting],
        "admitted": sorted(r.admitted),
        "excluded": {p: e.value for p, e in sorted(r.excluded.items())},
    }


def _dump_recording(r: Recording) -> Json:
    return {"since_ms": r.since_ms, "by": r.by, "stem": r.stem}


def _dump_plan(p: BreakoutPlan) -> Json:
    return {
        "plan_id": p.plan_id,
        "phase": p.phase.value,
        "rooms": [[r.room_id, r.number, r.name] for r in p.rooms],
        "assignment": dict(sorted(p.assignment.items())),
        "self_select": p.self_select,
        "capacity": p.capacity,
        "duration_ms": p.duration_ms,
        "started_at_ms": p.started_at_ms,
        "ends_at_ms": p.ends_at_ms,
        "warning_at_ms": p.warning_at_ms,
        "visitors": dict(sorted(p.visitors.items())),
        "closed_at_ms": p.closed_at_ms,
    }


# -- load -------------------------------------------------------------------------------------


def load(data: Json) -> CallDocument:
    table = data["table"]
    hands = data["hands"]
    return CallDocument(
        call=_load_call(data["call"]),
        roster=_load_roster(data["roster"]),
        table=PermissionTable(
            {Capability(c): bool(v) for c, v in table["everyone"].items()},
            {(p, Capability(c)): bool(v) for p, c, v in table["personal"]},
        ),
        hands=HandQueue(
            tuple(RaisedHand(p, int(at), int(seq)) for p, at, seq in hands["hands"]),
            int(hands["next_seq"]),
        ),
        plan=None if data["plan"] is None else _load_plan(data["plan"]),
        breakout_chats=dict(data["breakout_chats"]),
        users=dict(data["users"]),
        recording=_load_recording(data.get("recording")),  # absent in documents before R20
        version=int(data["version"]),
    )


def _load_call(c: Json) -> Call:
    return Call(
        c["call_id"],
        c["class_id"],
        c["start_ms"],
        c["end_ms"],
        c["opens_at_ms"],
        CallState(c["state"]),
        c["opened_at_ms"],
        c["started_at_ms"],
        c["ended_at_ms"],
    )


def _load_roster(r: Json) -> CallRoster:
    participants = {}
    for p in r["participants"]:
        audio, video, screen = p["media"]
        participants[p["person_id"]] = Participant(
            p["person_id"],
            tuple(Interval(s, j, left) for s, j, left in p["intervals"]),
            MediaState(bool(audio), bool(video), bool(screen)),
        )
    return CallRoster(
        call_id=r["call_id"],
        owner_id=r["owner_id"],
        invitees={p: Invitee(p, Category(c), bool(b)) for p, c, b in r["invitees"]},
        admins=frozenset(r["admins"]),
        waiting_room=bool(r["waiting_room"]),
        participants=participants,
        waiting=tuple(Knock(p, s, since) for p, s, since in r["waiting"]),
        admitted=frozenset(r["admitted"]),
        excluded={p: Exclusion(e) for p, e in r["excluded"].items()},
    )


def _load_recording(r: Json | None) -> Recording | None:
    return None if r is None else Recording(int(r["since_ms"]), r["by"], r["stem"])


def _load_plan(p: Json) -> BreakoutPlan:
    return BreakoutPlan(
        plan_id=p["plan_id"],
        phase=Phase(p["phase"]),
        rooms=tuple(BreakoutRoom(room_id, number, name) for room_id, number, name in p["rooms"]),
        assignment=dict(p["assignment"]),
        self_select=bool(p["self_select"]),
        capacity=p["capacity"],
        duration_ms=p["duration_ms"],
        started_at_ms=p["started_at_ms"],
        ends_at_ms=p["ends_at_ms"],
        warning_at_ms=p["warning_at_ms"],
        visitors=dict(p["visitors"]),
        closed_at_ms=p["closed_at_ms"],
    )


# -- after a restart --------------------------------------------------------------------------


def restarted(doc: CallDocument, left_ms: int) -> CallDocument:
    """Nobody is in the call any more: open intervals close at ``left_ms`` (never before
    they began), media goes off, the waiting room empties and raised hands go down."""
    participants = {}
    for person_id, p in doc.roster.participants.items():
        intervals = tuple(
            replace(i, left_ms=max(i.joined_ms, left_ms)) if i.left_ms is None else i
            for i in p.intervals
        )
        participants[person_id] = replace(p, intervals=intervals, media=OFF)
    roster = replace(doc.roster, participants=participants, waiting=())
    plan = doc.plan if doc.plan is None else replace(doc.plan, visitors={})
    return replace(doc, roster=roster, hands=replace(doc.hands, hands=()), plan=plan)
