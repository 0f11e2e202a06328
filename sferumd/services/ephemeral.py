"""Typing notifications, read receipts and presence: state that rides beside the log.

Typing and presence live in memory only and are pushed as they change. Read receipts are
persisted markers (they drive unread counts) and pushed to the room's members.
"""

from __future__ import annotations

import asyncio
from typing import Any

from protocol import frames as f
from protocol.errors import ErrorCode, ProtocolError
from sferumd.hub import Frame, Hub
from sferumd.model import Device
from sferumd.services.chat_presets import is_closed
from sferumd.services.rooms import RoomService
from sferumd.store.base import Store


class Ephemeral:
    def __init__(self, store: Store, hub: Hub, rooms: RoomService):
        self.store = store
        self.hub = hub
        self.rooms = rooms
        self._typing: dict[str, dict[str, asyncio.TimerHandle]] = {}  # room -> user -> expiry

    # -- typing ----------------------------------------------------------------------------

    def typing(self, device: Device, req: f.Typing) -> None:
        room = self.rooms.joined_room(req.room_id, device.user_id)
        typers = self._typing.get(room.room_id) or {}
        old = typers.pop(device.user_id, None)
        if old is not None:
            old.cancel()
        if req.typing:
            loop = asyncio.get_running_loop()
            typers = self._typing.setdefault(room.room_id, typers)
            typers[device.user_id] = loop.call_later(
                req.timeout_ms / 1000, self._expire, room.room_id, device.user_id
            )
        if (old is not None) != req.typing:  # a refresh of an ongoing typing pushes nothing
            self._push_typing(room.room_id)

    def _expire(self, room_id: str, user_id: str) -> None:
        typers = self._typing.get(room_id, {})
        if typers.pop(user_id, None) is not None:
            self._push_typing(room_id)

    def stop_typing(self, user_id: str) -> None:
        """The user's last connection went away."""
        for room_id, typers in list(self._typing.items()):
            handle = typers.pop(user_id, None)
            if handle is not None:
                handle.cancel()
                self._push_typing(room_id)

    def _push_typing(self, room_id: str) -> None:
        typers = self._typing.get(room_id, {})
        if not typers:
            self._typing.pop(room_id, None)
        room = self.rooms.rooms[room_id]
        frame = Frame({f.PUSH_TYPING: {"room_id": room_id, "user_ids": sorted(typers)}})
        self.hub.fan_out(frame, room.joined)

    # -- receipts --------------------------------------------------------------------------

    async def read(self, device: Device, req: f.Read) -> None:
        room = self.rooms.joined_room(req.room_id, device.user_id)
        if req.pos > self.hub.committed_pos:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "pos is beyond the newest event")
        if not await self.store.set_receipt(room.room_id, device.user_id, req.pos):
            return  # an older marker than the stored one: nothing to tell anyone
        frame = Frame(
            {f.PUSH_RECEIPT: {"room_id": room.room_id, "user_id": device.user_id, "pos": req.pos}}
        )
        self.hub.fan_out(frame, room.joined)

    async def room_summaries(self, device: Device) -> list[dict[str, Any]]:
        """The user's rooms with membership, name, member count, read marker and unread count."""
        me = device.user_id
        markers = await self.store.receipts(me)
        out = []
        for room in sorted(self.rooms.rooms_of(me), key=lambda r: r.room_id):
            membership = room.membership(me)
            if membership not in ("join", "invite"):
                continue
            read_pos = markers.get(room.room_id, 0)
            unread = (
                await self.store.unread_count(room.room_id, me, read_pos)
                if membership == "join"
                else 0
            )
            out.append(
                {
                    "room_id": room.room_id,
                    "name": room.name,
                    "topic": room.content("topic").get("topic"),
                    "join_rule": room.join_rule,
                    "closed": is_closed(room.power),
                    # A journal's chat says what it is (class, parents, colleagues, subject).
                    "chat": room.content("chat") or None,
                    # Calls of the chat one may join now: its "Войти" button (R26).
                    "calls": [
                        ev.content
                        for (kind, _), ev in room.state.items()
                        if kind == "call" and ev.content.get("state") in ("open", "running")
                    ],
                    "membership": membership,
                    "members": len(room.joined),
                    "power": room.power.user(me),
                    "read_pos": read_pos,
                    "unread": unread,
                }
            )
        return out

    # -- presence --------------------------------------------------------------------------

    def went_online(self, user_id: str) -> None:
        self._push_presence(user_id, "online")

    def went_offline(self, user_id: str) -> None:
        self.stop_typing(user_id)
        self._push_presence(user_id, "offline")

    def _push_presence(self, user_id: str, state: str) -> None:
        watchers = self.rooms.co_members(user_id)
        watchers.discard(user_id)
        self.hub.fan_out(Frame({f.PUSH_PRESENCE: {"user_id": user_id, "state": state}}), watchers)

    def presence(self, device: Device, req: f.Presence) -> dict[str, str]:
        """Presence of users who share a room with the asker; others read as unknown."""
        visible = self.rooms.co_members(device.user_id)
        return {
            u: ("online" if self.hub.is_online(u) else "offline") if u in visible else "unknown"
            for u in req.user_ids
        }
