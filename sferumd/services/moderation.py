"""Admins' control of a chat: the closed-chat switch, mutes and reports.

Deleting any message (``redact`` at the ``redact`` level), removing (``kick``) and banning
(``ban``) are room ops already (services.rooms); this module adds what they don't cover:

- ``set_closed`` rewrites the power levels with a preset (services.chat_presets); it is a
  power-levels change, so it needs the ``power_levels`` level and passes the same rules.
- ``mute``/``unmute`` write the room's ``mutes`` state (services.mutes); ``send`` refuses a
  muted member with ``muted`` until the time passes. Muting needs the ``mutes`` level (50)
  and a level above the target's, like a kick.
- ``report`` stores one report per reporter and event and pushes it to the chat's admins
  (joined members at the ``redact`` level, who can delete the message), never to the
  author of the reported message, who so never learns who reported them.
"""

from __future__ import annotations

from typing import Any

from protocol import frames as f
from protocol.errors import ErrorCode, ProtocolError
from sferumd import model
from sferumd.config import ChatSettings
from sferumd.hub import Frame, Hub
from sferumd.model import Device, Event
from sferumd.services import chat_presets, mutes, power
from sferumd.services import membership as ms
from sferumd.services.rooms import RoomService, now_ms
from sferumd.services.roomstate import RoomState
from sferumd.store.reports import ReportStore, StoredReport


class ModerationService:
    def __init__(self, rooms: RoomService, reports: ReportStore, hub: Hub, settings: ChatSettings):
        self.rooms = rooms
        self.reports = reports
        self.hub = hub
        self.settings = settings

    # -- the closed-chat setting -----------------------------------------------------------

    async def set_closed(self, device: Device, req: f.SetClosed) -> Event:
        me = device.user_id
        room = self.rooms.joined_room(req.room_id, me)
        what = "closing the chat" if req.closed else "opening the chat"
        power.require(room.power, me, room.power.for_event(model.POWER_LEVELS, True), what)
        current = room.content(model.POWER_LEVELS)
        content = chat_presets.apply(dict(current), req.closed)
        if content == current:  # so already: nothing to write
            return await self._committed(room.state[(model.POWER_LEVELS, "")])
        power.validate_content(content)
        power.check_change(room.power, power.PowerLevels.from_content(content), me)
        return await self.rooms.put_event(room, me, model.POWER_LEVELS, content, "")

    async def _committed(self, event: Event) -> Event:
        if event.pos > self.rooms.hub.committed_pos:
            await self.rooms.store.barrier()
        return event

    # -- mutes -----------------------------------------------------------------------------

    def _muter_room(self, room_id: str, me: str, what: str) -> RoomState:
        room = self.rooms.joined_room(room_id, me)
        needed = room.power.for_event(chat_presets.MUTES, True)
        power.require(room.power, me, needed, what)
        return room

    async def mute(self, device: Device, req: f.Mute) -> Event:
        me = device.user_id
        room = self._muter_room(req.room_id, me, "muting")
        power.require_above(room.power, me, req.user_id, "muting")
        if room.membership(req.user_id) != ms.JOIN:
            raise ProtocolError(ErrorCode.MEMBERSHIP, "the user is not a member of this room")
        now = now_ms()
        until = None if req.duration_s is None else now + req.duration_s * 1000
        content: dict[str, Any] = {
            **mutes.active(room.content(chat_presets.MUTES), now),
            req.user_id: until,
        }
        return await self.rooms.put_event(room, me, chat_presets.MUTES, content, "")

    async def unmute(self, device: Device, req: f.Unmute) -> Event:
        me = device.user_id
        room = self._muter_room(req.room_id, me, "unmuting")
        now = now_ms()
        content: dict[str, Any] = dict(mutes.active(room.content(chat_presets.MUTES), now))
        if req.user_id not in content:
            raise ProtocolError(ErrorCode.NOT_FOUND, "the user is not muted in this room")
        del content[req.user_id]
        return await self.rooms.put_event(room, me, chat_presets.MUTES, content, "")

    # -- reports ---------------------------------------------------------------------------

    async def report(self, device: Device, req: f.Report) -> dict[str, Any]:
        me = device.user_id
        self.rooms.joined_room(req.room_id, me)
        target = await self.rooms.store.get_event(req.event_id)
        room = self.rooms.joined_room(req.room_id, me)
        if target is None or target.room_id != req.room_id:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"event {req.event_id} is not in this room")
        if target.is_state or target.type == model.REDACTION:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "only messages can be reported")
        if target.redacted_by is not None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"event {req.event_id} was deleted")
        if target.sender == me:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "you can't report your own message")
        report = StoredReport(req.room_id, req.event_id, me, target.sender, req.reason, now_ms())
        if not await self.reports.add(report):
            return {"reported": True, "new": False}  # reported already: nothing is sent again
        self.hub.fan_out(Frame({f.PUSH_REPORT: report_json(report)}), self._admins(room, report))
        return {"reported": True, "new": True}

    @staticmethod
    def _admins(room: RoomState, report: StoredReport) -> set[str]:
        """Who gets a report: those who can delete the message, but not its author."""
        needed = room.power.action("redact")
        return {
            u
            for u in room.joined
            if room.power.user(u) >= needed and u not in (report.sender, report.reporter)
        }

    async def list_reports(self, device: Device, req: f.Reports) -> list[dict[str, Any]]:
        me = device.user_id
        room = self.rooms.joined_room(req.room_id, me)
        power.require(room.power, me, room.power.action("redact"), "reading reports")
        found = await self.reports.for_room(req.room_id, me, self.settings.max_reports_listed)
        return [report_json(r) for r in found]


def report_json(report: StoredReport) -> dict[str, Any]:
    return {
        "room_id": report.room_id,
        "event_id": report.event_id,
        "sender": report.sender,
        "reporter": report.reporter,
        "reason": report.reason,
        "ts": report.ts,
    }
