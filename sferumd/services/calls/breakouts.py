"""Breakout rooms of a running call, wired (R21): the websocket's ``breakout_*`` ops.

The rules are ``breakout``'s; this module resolves the people an op names (user ids on the
wire, a lesson call's journal accounts inside), makes each breakout room's chat when the
rooms open, and posts broadcasts into every room's chat.

Rules of the wiring:

- Modes: ``hand`` (``rooms``: each room's people), ``random`` (``room_count``, optional
  ``seed``: the students present, split evenly), ``groups`` (``group_ids``: the journal's
  sub-groups of the lesson's class, one room each; lesson calls only) and ``self``
  (``room_count``, optional ``capacity``: people choose). Fields of another mode are refused
  (``invalid_field``). A new plan replaces a draft; while rooms are open it is refused
  (``breakout_state``). Plan ids are ``p1``, ``p2``, ... within a call.
- A plan naming a user who is not one of the call's people is refused with
  ``unknown_people`` listing them.
- When the rooms open each gets its own chat (owner ``CALLS_OWNER``, ``chat`` content
  ``{"kind": "breakout", "call_id", "room"}``): its members join it as they are placed, the
  call's admins join every one. Each room has its own whiteboard (``boards``).
- A broadcast is a message from the admin in every room's chat and the main call chat, and
  a ``broadcast`` push to everyone in the call.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from protocol import frames as f
from protocol.errors import ErrorCode, ProtocolError
from sferumd.model import Device
from sferumd.services.calls import breakout as bo
from sferumd.services.calls import views
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.service import CALLS_OWNER, CallService, LiveCall
from sferumd.services.roster.model import SubGroup
from sferumd.services.roster.service import RosterService

MODE_FIELDS = {
    "hand": {"rooms"},
    "random": {"room_count", "seed"},
    "groups": {"group_ids"},
    "self": {"room_count", "capacity"},
}
REQUIRED = {"hand": "rooms", "random": "room_count", "groups": "group_ids", "self": "room_count"}


def _no_plan() -> CallError:
    return CallError(CallCode.BREAKOUT_STATE, "there are no breakout rooms: plan them first")


def _next_plan_id(plan: bo.BreakoutPlan | None) -> str:
    if plan is None:
        return "p1"
    number = plan.plan_id.removeprefix("p")
    return f"p{int(number) + 1}" if number.isdigit() else "p1"


class BreakoutRooms:
    def __init__(self, calls: CallService, roster: RosterService):
        self.calls = calls
        self.roster = roster

    async def _people(self, live: LiveCall, users: list[list[str]]) -> list[list[str]]:
        """User ids to the call's people; ``unknown_people`` for the others."""
        rooms: list[list[str]] = []
        unknown: list[str] = []
        for members in users:
            placed = []
            for user in members:
                person = await self.calls.resolve(live, user)
                if person is None:
                    unknown.append(user)
                else:
                    placed.append(person)
            rooms.append(placed)
        if unknown:
            names = ", ".join(sorted(set(unknown))[:20])
            raise CallError(CallCode.UNKNOWN_PEOPLE, f"not in this call: {names}")
        return rooms

    def _groups(self, live: LiveCall, group_ids: list[str]) -> dict[str, list[str]]:
        if not live.is_lesson or live.facts.journal_id is None:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "groups: a chat call has no journal groups"
            )
        groups = self.roster.state(live.facts.journal_id).live["group"]
        out: dict[str, list[str]] = {}
        for group_id in group_ids:
            group = groups.get(group_id)
            if not isinstance(group, SubGroup) or group.class_id != live.facts.class_id:
                raise CallError(CallCode.NOT_FOUND, f"no group {group_id} of this class")
            name = group.name if group.name not in out else f"{group.name} ({group_id})"
            out[name] = list(group.student_ids)
        return out

    async def plan(self, device: Device, req: f.PlanBreakout) -> dict[str, Any]:
        given = {k for k in ("rooms", "room_count", "seed", "group_ids", "capacity")}
        given = {k for k in given if getattr(req, k) is not None}
        stray = sorted(given - MODE_FIELDS[req.mode])
        if stray:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{stray[0]} is not a field of {req.mode}")
        if REQUIRED[req.mode] not in given:
            raise ProtocolError(ErrorCode.MISSING_FIELD, f"{REQUIRED[req.mode]} is required")
        calls = self.calls
        live, me = await calls.get_call(req.call_id, device.user_id)
        hand = await self._people(live, req.rooms) if req.rooms is not None else None
        if hand is not None or req.group_ids is not None:
            live, me = await calls.get_call(req.call_id, device.user_id)
        # Decided and applied from here on without a wait.
        doc, settings = live.doc, calls.settings
        if doc.plan is not None and doc.plan.phase in bo.OPEN_PHASES:
            raise CallError(
                CallCode.BREAKOUT_STATE,
                f"breakout rooms are {doc.plan.phase.value}: close them before a new plan",
            )
        plan_id = _next_plan_id(doc.plan)
        names = req.names or ()
        duration = None if req.duration_s is None else req.duration_s * 1000
        skipped: tuple[str, ...] = ()
        if req.mode == "hand":
            assert hand is not None
            plan = bo.plan_by_hand(
                plan_id, doc.roster, me, hand, settings, names=names, duration_ms=duration
            )
        elif req.mode == "random":
            assert req.room_count is not None
            seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
            plan = bo.plan_random(
                plan_id,
                doc.roster,
                me,
                req.room_count,
                seed,
                settings,
                names=names,
                duration_ms=duration,
            )
        elif req.mode == "groups":
            assert req.group_ids is not None
            groups = self._groups(live, req.group_ids)
            plan, skipped = bo.plan_from_groups(
                plan_id, doc.roster, me, groups, settings, duration_ms=duration
            )
        else:
            assert req.room_count is not None
            plan = bo.plan_self_select(
                plan_id,
                doc.roster,
                me,
                req.room_count,
                settings,
                capacity=req.capacity,
                names=names,
                duration_ms=duration,
            )
        await calls.commit(live, replace(doc, plan=plan, breakout_chats={}))
        return {
            "breakout": views.plan_view(live.doc, live.user_of),
            "skipped": list(skipped),
        }

    async def _running(self, device: Device, call_id: str) -> tuple[LiveCall, str, bo.BreakoutPlan]:
        live, me = await self.calls.get_call(call_id, device.user_id)
        if live.doc.plan is None:
            raise _no_plan()
        return live, me, live.doc.plan

    async def start(self, device: Device, req: f.StartBreakout) -> dict[str, Any]:
        calls = self.calls
        live, me, plan = await self._running(device, req.call_id)
        doc, now = live.doc, calls.clock.now_ms()
        started = bo.start(plan, doc.roster, me, now, calls.settings)
        chats: dict[str, str] = {}
        created = []
        for room in started.rooms:
            label = room.name or f"Зал {room.number}"
            meta = {"kind": "breakout", "call_id": live.call_id, "room": room.room_id}
            chats[room.room_id], write = calls.rooms.create_managed(
                CALLS_OWNER, f"{live.name} — {label}", meta
            )
            created.append(write)
        await calls.commit(live, replace(doc, plan=started, breakout_chats=chats), writes=created)
        calls.scheduler.wake()
        return {"breakout": views.plan_view(live.doc, live.user_of)}

    async def move(self, device: Device, req: f.MoveToRoom) -> dict[str, Any]:
        live, me, _ = await self._running(device, req.call_id)
        target = await self.calls.target(live, req.user_id)
        doc = live.doc
        if doc.plan is None:
            raise _no_plan()
        plan = bo.move(doc.plan, doc.roster, me, target, req.room)
        await self.calls.commit(live, replace(doc, plan=plan))
        return {"breakout": views.plan_view(live.doc, live.user_of)}

    async def choose(self, device: Device, req: f.ChooseRoom) -> dict[str, Any]:
        live, me, plan = await self._running(device, req.call_id)
        doc = live.doc
        plan = bo.choose(plan, doc.roster, me, req.room)
        await self.calls.commit(live, replace(doc, plan=plan))
        return {"breakout": views.plan_view(live.doc, live.user_of)}

    async def visit(self, device: Device, req: f.VisitRoom) -> dict[str, Any]:
        live, me, plan = await self._running(device, req.call_id)
        doc = live.doc
        plan = bo.visit(plan, doc.roster, me, req.room)
        await self.calls.commit(live, replace(doc, plan=plan))
        return {"breakout": views.plan_view(live.doc, live.user_of)}

    async def broadcast(self, device: Device, req: f.BroadcastToRooms) -> dict[str, Any]:
        calls = self.calls
        live, me, plan = await self._running(device, req.call_id)
        doc, now = live.doc, calls.clock.now_ms()
        sent = bo.broadcast(plan, doc.roster, me, req.text, now, calls.settings)
        content = {
            "body": sent.text,
            "broadcast": {"call_id": live.call_id, "plan_id": sent.plan_id},
        }
        writes: list[Awaitable[Any]] = []
        for room in sent.rooms:
            chat = live.facts.call_room_id if room == bo.MAIN_ROOM else doc.breakout_chats.get(room)
            if chat is not None and chat in calls.rooms.rooms:
                state = calls.rooms.rooms[chat]
                writes.append(calls.rooms.put_event(state, device.user_id, "message", content))
        calls.push(
            live,
            calls.audience(live),
            {"type": "broadcast", "by": device.user_id, "text": sent.text, "at_ms": now},
        )
        await asyncio.gather(*writes)
        return {"rooms": len(writes)}

    async def extend(self, device: Device, req: f.ExtendBreakout) -> dict[str, Any]:
        calls = self.calls
        live, me, plan = await self._running(device, req.call_id)
        doc, now = live.doc, calls.clock.now_ms()
        plan = bo.extend(plan, doc.roster, me, now + req.duration_s * 1000, now, calls.settings)
        await calls.commit(live, replace(doc, plan=plan))
        calls.scheduler.wake()
        return {"breakout": views.plan_view(live.doc, live.user_of)}

    async def close(self, device: Device, req: f.CloseBreakout) -> dict[str, Any]:
        calls = self.calls
        live, me, plan = await self._running(device, req.call_id)
        doc, now = live.doc, calls.clock.now_ms()
        plan = bo.close_all(plan, doc.roster, me, now, calls.settings, immediate=req.immediate)
        await calls.commit(live, replace(doc, plan=plan))
        calls.scheduler.wake()
        return {"breakout": views.plan_view(live.doc, live.user_of)}
