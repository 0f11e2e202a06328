"""Rich messages (R14, as a Matrix or Telegram user expects them): replies, mentions, edits
with their history, reactions, pins and forwarding. Polls are in services.polls.

Every write follows the rooms' path (services.rooms): what it needs from the store is read
first, then one synchronous ``make`` decides on the room's memory state and makes the event,
and the event is committed at most once per transaction id. What the events change besides
the log (an edited message's text, the reaction index, mention counts) is kept by
store.messages inside the same commit.

- **Replies and mentions** ride in a message's content: ``reply_to`` names an event of the
  same room that is a message (a redacted one too: the reply stays); ``mentions`` lists
  joined members. Each mentioned user gets a ``mention`` push, and ``rooms`` counts the
  unread messages that mention them.
- **Edits** (``edit``) are events of type ``edit`` ``{"replaces", "body"}`` by the message's
  author; the message itself then reads with the newest text (and ``edited``), and ``edits``
  lists its versions. A redacted message can't be edited; redacting it redacts its edits.
- **Reactions** (``react``) are events of type ``reaction`` ``{"relates_to", "key"}``, one per
  user, key and message: a repeat returns the first. Removing one is redacting it.
- **Pins** (``pin``, ``unpin``) rewrite the room's ``pins`` state, gated by ``events.pins``.
- **Forwarding** (``forward``) copies a message the user could see into a room they can send
  to, with ``forwarded_from``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from protocol import frames as f
from protocol.codec import MSGPACK
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from protocol.validate import EVENT_ID, USER_ID
from sferumd import ids, model
from sferumd.hub import Frame, Hub
from sferumd.model import Device, Event
from sferumd.services import membership as ms
from sferumd.services import mutes, power
from sferumd.services.attachments import could_see
from sferumd.services.chat_presets import PINS
from sferumd.services.rooms import RoomService, now_ms
from sferumd.services.roomstate import RoomState
from sferumd.store.messages import EDIT_KEY, EDITED_KEY, RELATES_KEY, MessageStore

REPLY_KEY = "reply_to"
MENTIONS_KEY = "mentions"
FORWARDED_KEY = "forwarded_from"
POLL_KEY = "poll"
# Keys of a message's content that only the server writes (their ops make them).
SERVER_KEYS = {EDITED_KEY: "edit", FORWARDED_KEY: "forward", POLL_KEY: "poll"}
# What a forwarded copy leaves behind: they point into the source room or are its history.
NOT_FORWARDED = frozenset({REPLY_KEY, MENTIONS_KEY, EDITED_KEY, FORWARDED_KEY})
# The largest "edited" marker (an event id carries up to 16 digits), to size an edit.
LONGEST_EDITED = {"event_id": "$" + "9" * 16 + "-" + "x" * 8, "ts": 2**53 - 1}


@dataclass(frozen=True, slots=True)
class MessageRefs:
    reply_to: str | None
    mentions: tuple[str, ...]


def message_refs(content: dict[str, Any], limits: Limits) -> MessageRefs | None:
    """The reply and mentions of a ``send`` of a message, checked for form; None when it has
    neither (the plain message of the hot path). Whether they exist in the room is checked
    against the room at the send (``MessageService.send``)."""
    for key, op in SERVER_KEYS.items():
        if key in content:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"content.{key} is made by the server: use the {op} op"
            )
    if REPLY_KEY not in content and MENTIONS_KEY not in content:
        return None
    reply_to = content.get(REPLY_KEY)
    if REPLY_KEY in content and not (
        isinstance(reply_to, str)
        and len(reply_to) <= limits.max_id_chars
        and EVENT_ID.fullmatch(reply_to)
    ):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "content.reply_to must be an event id")
    mentions: tuple[str, ...] = ()
    if MENTIONS_KEY in content:
        value = content[MENTIONS_KEY]
        if not isinstance(value, list):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "content.mentions must be a list")
        if len(value) > limits.max_mentions:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"content.mentions has more than {limits.max_mentions} users"
            )
        for i, user in enumerate(value):
            if not (
                isinstance(user, str)
                and len(user) <= limits.max_id_chars
                and USER_ID.fullmatch(user)
            ):
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, f"content.mentions[{i}] must be a user id"
                )
            if user in value[:i]:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, f"content.mentions[{i}] repeats {user}"
                )
        mentions = tuple(value)
    return MessageRefs(reply_to if isinstance(reply_to, str) else None, mentions)


def event_pos(event_id: str) -> int:
    """The position an id of ours names (ids.event_pos); 0 for one that names none."""
    return ids.event_pos(event_id) or 0


def _everything(pos: int) -> bool:
    return True


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        held = self._locks.get(key)
        lock, users = held if held is not None else (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _Unchanged(Exception):
    """Raised by a ``make`` when the op changes nothing: the answer is ``event``."""

    def __init__(self, event: Event):
        self.event = event


def require_message(target: Event | None, event_id: str, rooms: RoomService, what: str) -> Event:
    """The rules every op on a message shares, in this order: it is in the room
    (``not_found``), it is a message (``invalid_field``), it is not redacted (``redacted``)."""
    if target is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"event {event_id} is not in this room")
    if target.type != model.MESSAGE:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"only messages can be {what}; {event_id} is a {target.type}"
        )
    if rooms.is_redacted(target):
        raise ProtocolError(ErrorCode.REDACTED, f"event {event_id} is redacted")
    return target


def can_post(room: RoomState, user_id: str, event_type: str, what: str) -> None:
    """What sending ``event_type`` needs: its power level and no running mute."""
    power.require(room.power, user_id, room.power.for_event(event_type, False), what)
    mutes.check(room, user_id, now_ms())


class MessageService:
    def __init__(self, rooms: RoomService, store: MessageStore, hub: Hub, limits: Limits):
        self.rooms = rooms
        self.store = store
        self.hub = hub
        self.limits = limits
        self._reacting = KeyedLocks()  # (message, user): one reaction decision at a time

    # -- shared lookups ----------------------------------------------------------------------

    async def find(self, room_id: str, event_id: str) -> Event | None:
        """The stored event, if it is in this room."""
        event = await self.rooms.store.get_event(event_id)
        return event if event is not None and event.room_id == room_id else None

    async def readable(
        self, user_id: str, room_id: str, event_id: str
    ) -> tuple[Event, Callable[[int], bool]]:
        """An event the user may read: any event of a room they are joined to (history is
        "shared"), or one they could see while they were in it. ``not_member`` when they can
        read nothing of the room, ``not_found`` for an event they can't see (or none).
        With it, whether the user could see the room's event at a position (what hangs on the
        event, its edits and reactions, is shown to a former member up to what they saw)."""
        room = self.rooms.rooms.get(room_id)
        if room is not None and user_id in room.joined:
            event = await self.find(room_id, event_id)
            sees: Callable[[int], bool] = _everything
        else:
            history = await self.rooms.store.member_history(user_id, self.hub.committed_pos)
            if not any(
                e.room_id == room_id and e.content.get("membership") == ms.JOIN for e in history
            ):
                raise ProtocolError(ErrorCode.NOT_MEMBER, f"you are not a member of room {room_id}")
            event = await self.find(room_id, event_id)
            sees = functools.partial(could_see, history, room_id)
            if event is not None and not sees(event.pos):
                event = None
        if event is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"event {event_id} is not in this room")
        return event, sees

    async def _committed_state(self, room: RoomState, key: tuple[str, str]) -> Event:
        """A state event from memory, answered once it is committed."""
        event = room.state[key]
        if event.pos > self.hub.committed_pos:
            await self.rooms.store.barrier()
        return event

    # -- send: replies and mentions ------------------------------------------------------------

    async def send(self, device: Device, req: f.Send) -> Event:
        refs = message_refs(req.content, self.limits) if req.type == model.MESSAGE else None
        if refs is None:
            return await self.rooms.send(device, req)  # nothing to add on the hot path
        reply = await self.find(req.room_id, refs.reply_to) if refs.reply_to else None
        made: list[int] = []

        def check(room: RoomState) -> None:
            if refs.reply_to is not None:
                if reply is None:
                    raise ProtocolError(
                        ErrorCode.NOT_FOUND, f"content.reply_to {refs.reply_to} is not in this room"
                    )
                if reply.type != model.MESSAGE:
                    raise ProtocolError(
                        ErrorCode.INVALID_FIELD,
                        f"content.reply_to must name a message; {reply.event_id} is a {reply.type}",
                    )
            for user in refs.mentions:
                if user not in room.joined:
                    raise ProtocolError(
                        ErrorCode.INVALID_FIELD, f"content.mentions: {user} is not in this room"
                    )
            made.append(self.rooms.next_pos)  # the position the event is about to get

        event = await self.rooms.send(device, req, check)
        if made and event.pos == made[-1]:  # new, not a repeated transaction's original
            self._push_mentions(event, refs.mentions)
        return event

    def _push_mentions(self, event: Event, mentions: tuple[str, ...]) -> None:
        users = [u for u in mentions if u != event.sender]
        if users:
            frame = Frame(
                {
                    f.PUSH_MENTION: {
                        "room_id": event.room_id,
                        "event_id": event.event_id,
                        "sender": event.sender,
                    }
                }
            )
            self.hub.fan_out(frame, users)

    async def add_mention_counts(self, user_id: str, summaries: list[dict[str, Any]]) -> None:
        """Adds ``mentions`` to each of the user's room summaries (the ``rooms`` op)."""
        counts = await self.store.mention_counts(user_id)
        for summary in summaries:
            joined = summary.get("membership") == ms.JOIN
            summary["mentions"] = counts.get(summary["room_id"], 0) if joined else 0

    # -- edits -----------------------------------------------------------------------------------

    async def edit(self, device: Device, req: f.Edit) -> Event:
        target = await self.find(req.room_id, req.event_id)

        def make() -> Event:
            me = device.user_id
            room = self.rooms.joined_room(req.room_id, me)
            original = require_message(target, req.event_id, self.rooms, "edited")
            if original.sender != me:
                raise ProtocolError(ErrorCode.FORBIDDEN, "only the author of a message may edit it")
            for key, what in ((POLL_KEY, "a poll"), (FORWARDED_KEY, "a forwarded message")):
                if key in original.content:
                    raise ProtocolError(ErrorCode.INVALID_FIELD, f"{what} can't be edited")
            can_post(room, me, model.MESSAGE, "editing")
            edited = {**original.content, "body": req.body, EDITED_KEY: LONGEST_EDITED}
            if len(MSGPACK.encode(edited)) > self.limits.max_content_bytes:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"the edited message is larger than {self.limits.max_content_bytes} bytes",
                )
            content = {EDIT_KEY: original.event_id, "body": req.body}
            return self.rooms.make_event(req.room_id, me, model.EDIT, content)

        return await self.rooms.commit_once(device, req.txn, make, lookup=True)

    async def edits(self, device: Device, req: f.Edits) -> dict[str, Any]:
        target, sees = await self.readable(device.user_id, req.room_id, req.event_id)
        message = require_message(target, req.event_id, self.rooms, "edited")
        versions = [
            v for v in await self.store.versions(message.pos) if sees(event_pos(v.event_id))
        ]
        if not versions:  # never edited: its text is its only version
            body = message.content.get("body")
            versions_wire = [{"event_id": message.event_id, "ts": message.ts, "body": body}]
        else:
            versions_wire = [{"event_id": v.event_id, "ts": v.ts, "body": v.body} for v in versions]
        return {"event_id": message.event_id, "versions": versions_wire}

    # -- reactions -------------------------------------------------------------------------------

    async def react(self, device: Device, req: f.React) -> Event:
        me = device.user_id
        async with self._reacting.hold((req.event_id, me)):
            # Under the lock, nothing of this user's on this message changes but by a
            # redaction, which is_redacted sees.
            target = await self.find(req.room_id, req.event_id)
            existing: Event | None = None
            count = 0
            if target is not None:
                existing_id = await self.store.reaction(target.pos, me, req.key)
                if existing_id is not None:
                    existing = await self.rooms.store.get_event(existing_id)
                count = await self.store.reaction_count(target.pos, me)

            def make() -> Event:
                room = self.rooms.joined_room(req.room_id, me)
                message = require_message(target, req.event_id, self.rooms, "reacted to")
                can_post(room, me, model.REACTION, "reacting")
                if existing is not None and not self.rooms.is_redacted(existing):
                    raise _Unchanged(existing)  # one reaction per user, key and message
                if count >= self.limits.max_reactions_per_user:
                    raise ProtocolError(
                        ErrorCode.TOO_LARGE,
                        f"you have {count} reactions on this message; remove one first",
                    )
                content = {RELATES_KEY: message.event_id, "key": req.key}
                return self.rooms.make_event(req.room_id, me, model.REACTION, content)

            try:
                return await self.rooms.commit_once(device, req.txn, make, lookup=True)
            except _Unchanged as same:
                return same.event

    async def reactions(self, device: Device, req: f.Reactions) -> dict[str, Any]:
        target, sees = await self.readable(device.user_id, req.room_id, req.event_id)
        message = require_message(target, req.event_id, self.rooms, "reacted to")
        by_key: dict[str, dict[str, Any]] = {}
        for key, sender, event_id in await self.store.reactions(message.pos):
            if not sees(event_pos(event_id)):
                continue
            entry = by_key.setdefault(key, {"key": key, "count": 0, "users": [], "mine": None})
            entry["count"] += 1
            entry["users"].append(sender)
            if sender == device.user_id:
                entry["mine"] = event_id  # redact it to take the reaction back
        return {"event_id": message.event_id, "reactions": list(by_key.values())}

    # -- pins ------------------------------------------------------------------------------------

    def _pinned(self, room: RoomState) -> list[str]:
        pinned = room.content(PINS).get("pinned")
        return [p for p in pinned if isinstance(p, str)] if isinstance(pinned, list) else []

    async def pin(self, device: Device, req: f.Pin) -> Event:
        target = await self.find(req.room_id, req.event_id)
        me = device.user_id

        def make() -> Event:
            room = self.rooms.joined_room(req.room_id, me)
            power.require(room.power, me, room.power.for_event(PINS, True), "pinning")
            message = require_message(target, req.event_id, self.rooms, "pinned")
            pinned = self._pinned(room)
            if message.event_id in pinned:
                raise _Unchanged(room.state[(PINS, "")])
            if len(pinned) >= self.limits.max_pins:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"this room has {len(pinned)} pinned messages; unpin one first",
                )
            content = {"pinned": [message.event_id, *pinned]}  # newest first
            return self.rooms.make_event(req.room_id, me, PINS, content, state_key="")

        try:
            return await self.rooms.commit_once(device, req.txn, make, lookup=True)
        except _Unchanged:  # pinned already: the current list, once committed
            return await self._committed_state(self.rooms.rooms[req.room_id], (PINS, ""))

    async def unpin(self, device: Device, req: f.Unpin) -> Event:
        me = device.user_id

        def make() -> Event:
            room = self.rooms.joined_room(req.room_id, me)
            power.require(room.power, me, room.power.for_event(PINS, True), "unpinning")
            pinned = self._pinned(room)
            if req.event_id not in pinned:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"event {req.event_id} is not pinned")
            content = {"pinned": [p for p in pinned if p != req.event_id]}
            return self.rooms.make_event(req.room_id, me, PINS, content, state_key="")

        # A redacted or unknown event may be unpinned: the list is all that is checked.
        return await self.rooms.commit_once(device, req.txn, make, lookup=True)

    # -- forwarding ------------------------------------------------------------------------------

    async def forward(self, device: Device, req: f.Forward) -> Event:
        me = device.user_id
        refusal: ProtocolError | None = None
        source: Event | None = None
        try:
            source, _ = await self.readable(me, req.from_room, req.event_id)
        except ProtocolError as err:
            refusal = err  # answered inside make, after the transaction id is looked up
        attachments = self.rooms.attachments

        def make() -> Event:
            if refusal is not None:
                raise refusal
            message = require_message(source, req.event_id, self.rooms, "forwarded")
            if POLL_KEY in message.content:
                raise ProtocolError(ErrorCode.INVALID_FIELD, "a poll can't be forwarded")
            room = self.rooms.joined_room(req.to_room, me)
            can_post(room, me, model.MESSAGE, "sending")
            content = {k: v for k, v in message.content.items() if k not in NOT_FORWARDED}
            origin = message.content.get(FORWARDED_KEY)  # a forward of a forward: the origin
            content[FORWARDED_KEY] = (
                origin
                if isinstance(origin, dict)
                else {
                    "room_id": message.room_id,
                    "event_id": message.event_id,
                    "sender": message.sender,
                    "ts": message.ts,
                }
            )
            if len(MSGPACK.encode(content)) > self.limits.max_content_bytes:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"the forwarded message is larger than {self.limits.max_content_bytes} bytes",
                )
            event = self.rooms.make_event(req.to_room, me, model.MESSAGE, content)
            file = content.get("file")
            if attachments is not None and isinstance(file, dict):
                # The copy is a post of the file too: the target room's members may fetch it.
                file_id = file.get("id")
                if isinstance(file_id, str):
                    attachments.files.add_post(file_id, event.room_id, event.pos, event.event_id)
            return event

        return await self.rooms.commit_once(device, req.txn, make, lookup=True)
