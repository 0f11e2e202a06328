"""What clients see of a call: the ``call`` push's state and the results of the call ops.

Pure: from a call's facts and document to plain maps. People are shown by messenger user id
(``user_of`` maps the call's people to users; a journal account nobody has linked yet has no
user and is left out of the lists, though it still counts where the journal is concerned).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sferumd.services.calls import breakout as bo
from sferumd.services.calls import hands as hq
from sferumd.services.calls import participants as pt
from sferumd.services.calls import permissions as pm
from sferumd.services.calls.codec import CallDocument
from sferumd.store.calls import CallFacts

UserOf = Callable[[str], str | None]


def _users(people: Iterable[str], user_of: UserOf) -> list[str]:
    return [u for u in (user_of(p) for p in people) if u is not None]


def placement(doc: CallDocument) -> dict[str, str]:
    """Everyone in the call now -> their room (the main room unless breakout rooms run)."""
    if doc.plan is None:
        return {p: bo.MAIN_ROOM for p in pt.present(doc.roster)}
    return bo.placement(doc.plan, doc.roster)


def call_view(facts: CallFacts, name: str, doc: CallDocument, user_of: UserOf) -> dict[str, Any]:
    call, roster, table = doc.call, doc.roster, doc.table
    where = placement(doc)
    participants = []
    for row in pt.participant_list(roster):
        user = user_of(row.person_id)
        if user is None:
            continue
        caps = sorted(c.value for c in pm.capabilities(table, roster, row.person_id))
        participants.append(
            {
                "user_id": user,
                "role": row.role.value,
                "audio": row.media.audio,
                "video": row.media.video,
                "screen": row.media.screen,
                "room": where.get(row.person_id, bo.MAIN_ROOM),
                "caps": caps,
            }
        )
    personal: dict[str, dict[str, bool]] = {}
    for (person_id, cap), allowed in sorted(table.personal.items()):
        user = user_of(person_id)
        if user is not None:
            personal.setdefault(user, {})[cap.value] = allowed
    return {
        "call_id": facts.call_id,
        "kind": facts.kind,
        "name": name,
        "state": call.state.value,
        "start_ms": call.start_ms,
        "end_ms": call.end_ms,
        "opens_at_ms": call.opens_at_ms,
        "started_at_ms": call.started_at_ms,
        "ended_at_ms": call.ended_at_ms,
        "chat_room_id": facts.room_id,
        "room_id": facts.call_room_id,
        "owner": user_of(roster.owner_id),
        "admins": sorted(_users(roster.admins, user_of)),
        "waiting_room": roster.waiting_room,
        "participants": participants,
        "waiting": [
            {"user_id": u, "since_ms": k.since_ms}
            for k in roster.waiting
            if (u := user_of(k.person_id)) is not None
        ],
        "hands": _users(hq.order(doc.hands), user_of),
        "permissions": {
            "everyone": {c.value: v for c, v in sorted(table.everyone.items())},
            "personal": personal,
        },
        "breakout": None if doc.plan is None else plan_view(doc, user_of),
        "recording": None
        if doc.recording is None
        else {"since_ms": doc.recording.since_ms, "by": user_of(doc.recording.by)},
        "version": doc.version,
    }


def plan_view(doc: CallDocument, user_of: UserOf) -> dict[str, Any]:
    plan = doc.plan
    assert plan is not None
    return {
        "plan_id": plan.plan_id,
        "phase": plan.phase.value,
        "self_select": plan.self_select,
        "capacity": plan.capacity,
        "duration_ms": plan.duration_ms,
        "started_at_ms": plan.started_at_ms,
        "ends_at_ms": plan.ends_at_ms,
        "warning_at_ms": plan.warning_at_ms,
        "rooms": [
            {
                "room_id": r.room_id,
                "number": r.number,
                "name": r.name,
                "chat_room_id": doc.breakout_chats.get(r.room_id),
                "members": _users(bo.members(plan, r.room_id), user_of),
                "visitors": _users(bo.visitors_of(plan, r.room_id), user_of),
            }
            for r in plan.rooms
        ],
    }
