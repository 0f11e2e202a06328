"""Rooms: creation, membership, messages, state, redaction and history.

Each write is decided and applied to memory synchronously (no await between the check and
the apply), given the next stream position, and handed to the store; the caller is
answered after the commit. Because the store commits in submission order, memory order,
position order and commit order are one order. Recipients are fixed when the event is
made, from the membership just before it, which is what sync's catch-up reproduces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from protocol import frames as f
from protocol.codec import MSGPACK
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from sferumd import ids, model
from sferumd.hub import Hub
from sferumd.model import Device, Event
from sferumd.services import chat_avatar, chat_presets, mutes, power
from sferumd.services import membership as ms
from sferumd.services.attachments import Attachments
from sferumd.services.roomstate import RoomState
from sferumd.store.base import Store, TxnKey

# State types the ``state`` op may set, with their content checks.
SETTABLE_STATE = (
    model.NAME,
    model.TOPIC,
    model.JOIN_RULE,
    model.POWER_LEVELS,
    chat_presets.AVATAR,
)
# Types ``send`` may not use: they have their own ops.
RESERVED_TYPES = frozenset(
    {model.CREATE, model.MEMBER, model.REDACTION, model.CHAT, chat_presets.MUTES, *SETTABLE_STATE}
    | {model.EDIT, model.REACTION, model.POLL_CLOSE, chat_presets.PINS}  # services.messages
    | {"call"}  # a call's state in its chat (services.calls.service.CALL_EVENT)
)
# Managed rooms are closed: only admins invite. The owner (a journal's adapter) has 100.
ADMIN_LEVEL = power.MAX_LEVEL


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class RoomService:
    def __init__(self, store: Store, hub: Hub, limits: Limits):
        self.store = store
        self.hub = hub
        self.limits = limits
        self.rooms: dict[str, RoomState] = {}
        self.user_rooms: dict[str, set[str]] = {}  # rooms where the user has a membership
        self.next_pos = 1
        self._routes: dict[str, Any] = {}  # event id -> recipients, until committed
        self._txns: dict[TxnKey, asyncio.Future[Event]] = {}  # writes in flight by txn
        self._redacted: set[str] = set()  # redacted by this process (the store knows older ones)
        self.attachments: Attachments | None = None  # files in messages; set by api.files
        store.set_commit_listener(self._committed)

    async def load(self) -> None:
        top, state_events = await self.store.load()
        self.next_pos = top + 1
        self.hub.committed_pos = top
        for ev in state_events:
            self._apply(ev)

    # -- the write path --------------------------------------------------------------------

    def _event(
        self, room_id: str, sender: str, type_: str, content: dict[str, Any], **extra: Any
    ) -> Event:
        ev = Event(
            ids.event_id(self.next_pos),
            room_id,
            sender,
            type_,
            content,
            now_ms(),
            self.next_pos,
            **extra,
        )
        self.next_pos += 1
        return ev

    def _submit(self, event: Event, txn: TxnKey | None = None) -> Awaitable[Event]:
        """Route, apply to memory, and hand to the store. Synchronous up to the returned await."""
        joined = self.rooms[event.room_id].joined
        recipients = frozenset(joined)
        target = event.state_key if event.type == model.MEMBER else None
        if target is not None and target not in joined:
            recipients |= {target}  # the target sees its own change
        committed = self.store.append(event, txn)  # raises if the store is closing
        self._routes[event.event_id] = recipients
        self._apply(event)
        return committed

    def _apply(self, event: Event) -> None:
        room = self.rooms.get(event.room_id)
        if room is None:
            room = self.rooms[event.room_id] = RoomState(event.room_id)
        room.apply(event)
        if event.type == model.MEMBER:
            assert event.state_key is not None
            self.user_rooms.setdefault(event.state_key, set()).add(event.room_id)

    def _committed(self, events: Any) -> None:
        routes = self._routes
        for ev in events:
            self.hub.publish(ev, routes.pop(ev.event_id, ()))

    async def _commit(self, event: Event, txn: TxnKey | None = None) -> Event:
        stored = await self._submit(event, txn)
        if stored is not event:
            # A repeated transaction: the store kept the original and dropped this one.
            self._routes.pop(event.event_id, None)
        return stored

    async def _once(
        self, device: Device, txn: str | None, make: Callable[[], Event], *, lookup: bool
    ) -> Event:
        """Make and commit an event at most once per (device, transaction id).

        A repeat while the first is in flight waits for it; a repeat after the commit gets
        the stored original (looked up first when ``lookup``, else dropped by the store).
        ``make`` runs synchronously right before the submit, keeping decide-then-apply atomic.
        """
        if txn is None:
            return await self._commit(make())
        key = (device.device_id, txn)
        in_flight = self._txns.get(key)
        if in_flight is not None:
            return await asyncio.shield(in_flight)
        done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._txns[key] = done
        try:
            original = await self.store.find_txn(key) if lookup else None
            if original is None:
                try:
                    event = make()
                except ProtocolError:
                    # A retry of a committed send by someone who has since lost the right
                    # to send still gets its original event back.
                    original = None if lookup else await self.store.find_txn(key)
                    if original is None:
                        raise
            result = original if original is not None else await self._commit(event, key)
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # the waiters, if any, re-raise it; nobody else needs to
            raise
        finally:
            del self._txns[key]
        done.set_result(result)
        return result

    # -- lookups ---------------------------------------------------------------------------

    def room(self, room_id: str) -> RoomState:
        room = self.rooms.get(room_id)
        if room is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"room {room_id} does not exist")
        return room

    def joined_room(self, room_id: str, user_id: str) -> RoomState:
        room = self.rooms.get(room_id)
        if room is None or user_id not in room.joined:
            # The same answer for "no such room" and "not yours": room ids don't leak.
            raise ProtocolError(ErrorCode.NOT_MEMBER, f"you are not a member of room {room_id}")
        return room

    # -- ops -------------------------------------------------------------------------------

    async def create_room(self, device: Device, req: f.CreateRoom) -> str:
        me = device.user_id
        invitees = [u for u in dict.fromkeys(req.invite) if u != me]
        for user_id in invitees:
            await self._require_user(user_id)
        room_id = ids.room_id()
        self.rooms[room_id] = RoomState(room_id)
        state: list[tuple[str, dict[str, Any]]] = [
            (model.POWER_LEVELS, chat_presets.initial_content(me, req.closed)),
            (model.JOIN_RULE, {"join_rule": req.join_rule}),
        ]
        if req.name is not None:
            state.append((model.NAME, {"name": req.name}))
        if req.topic is not None:
            state.append((model.TOPIC, {"topic": req.topic}))
        last = self._submit(self._event(room_id, me, model.CREATE, {"creator": me}, state_key=""))
        last = self._submit(
            self._event(room_id, me, model.MEMBER, {"membership": ms.JOIN}, state_key=me)
        )
        for type_, content in state:
            last = self._submit(self._event(room_id, me, type_, content, state_key=""))
        for user_id in invitees:
            last = self._submit(
                self._event(room_id, me, model.MEMBER, {"membership": ms.INVITE}, state_key=user_id)
            )
        await last
        return room_id

    async def send(
        self, device: Device, req: f.Send, check: Callable[[RoomState], None] | None = None
    ) -> Event:
        """``check``: more rules of the content, run right before the event is made
        (services.messages: replies and mentions)."""

        def make() -> Event:
            if req.type in RESERVED_TYPES:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, f"type {req.type} is not sent with send; use its op"
                )
            me = device.user_id
            room = self.joined_room(req.room_id, me)
            power.require(room.power, me, room.power.for_event(req.type, False), "sending")
            mutes.check(room, me, now_ms())
            if check is not None:
                check(room)
            return self._event(req.room_id, me, req.type, req.content)

        if self.attachments is not None:  # content.file: checked, filled in, post recorded
            make = await self.attachments.bind(device.user_id, req.content, make)
        # The hot path: no lookup before the write; the store drops a repeated transaction.
        return await self._once(device, req.txn, make, lookup=False)

    async def set_state(self, device: Device, req: f.SetState) -> Event:
        photo = None  # the chat photo's file: looked up first, its post recorded in make
        if req.type == chat_presets.AVATAR and self.attachments is not None:
            photo = await chat_avatar.bind_file(self.attachments.files, device.user_id, req.content)

        def make() -> Event:
            if req.type not in SETTABLE_STATE:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD,
                    f"state type must be one of {', '.join(SETTABLE_STATE)}",
                )
            if req.state_key != "":
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, f"{req.type} takes the empty state key"
                )
            me = device.user_id
            room = self.joined_room(req.room_id, me)
            power.require(
                room.power, me, room.power.for_event(req.type, True), f"changing {req.type}"
            )
            self._check_state_content(room, me, req.type, req.content)
            event = self._event(req.room_id, me, req.type, req.content, state_key="")
            if photo is not None:
                photo(event)
            return event

        # State applies to memory before the commit, so a repeat is caught before that.
        return await self._once(device, req.txn, make, lookup=True)

    def _check_state_content(
        self, room: RoomState, sender: str, type_: str, content: dict[str, Any]
    ) -> None:
        def text(key: str, limit: int) -> None:
            value = content.get(key)
            if not isinstance(value, str) or set(content) != {key}:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD,
                    f"{type_} content must be {{{key}: string of at most {limit} characters}}",
                )
            if len(value) > limit:  # the same code create_room gives for the same string
                raise ProtocolError(
                    ErrorCode.TOO_LARGE, f"content.{key} is longer than {limit} characters"
                )

        if type_ == model.NAME:
            text("name", self.limits.max_name_chars)
        elif type_ == model.TOPIC:
            text("topic", self.limits.max_topic_chars)
        elif type_ == model.JOIN_RULE:
            if content not in ({"join_rule": "invite"}, {"join_rule": "public"}):
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, "join_rule content must be {join_rule: invite|public}"
                )
        elif type_ == model.POWER_LEVELS:
            power.validate_content(content)
            power.check_change(room.power, power.PowerLevels.from_content(content), sender)
        elif type_ == chat_presets.AVATAR:
            chat_avatar.check_content(content)

    async def redact(self, device: Device, req: f.Redact) -> Event:
        target = await self.store.get_event(req.event_id)

        def make() -> Event:
            me = device.user_id
            room = self.joined_room(req.room_id, me)
            if target is None or target.room_id != req.room_id:
                raise ProtocolError(
                    ErrorCode.NOT_FOUND, f"event {req.event_id} is not in this room"
                )
            if target.is_state or target.type == model.REDACTION:
                raise ProtocolError(ErrorCode.INVALID_FIELD, "state events and redactions stay")
            # The stored copy was read before an await; a redaction made since then (and
            # maybe not committed yet) is in the set.
            if target.redacted_by is not None or target.event_id in self._redacted:
                raise ProtocolError(
                    ErrorCode.NOT_FOUND, f"event {req.event_id} is already redacted"
                )
            if target.sender != me:
                power.require(room.power, me, room.power.action("redact"), "redacting")
            content: dict[str, Any] = {} if req.reason is None else {"reason": req.reason}
            self._redacted.add(target.event_id)
            return self._event(req.room_id, me, model.REDACTION, content, redacts=target.event_id)

        return await self._once(device, req.txn, make, lookup=True)

    # -- membership ------------------------------------------------------------------------

    async def invite(self, device: Device, req: f.Invite) -> Event:
        # Membership first, so that outsiders can't probe which user ids exist.
        self.joined_room(req.room_id, device.user_id)
        await self._require_user(req.user_id)
        room = self.joined_room(req.room_id, device.user_id)
        power.require(room.power, device.user_id, room.power.action("invite"), "inviting")
        return await self._member(room, device.user_id, req.user_id, "invite")

    async def join(self, device: Device, req: f.Join) -> Event:
        room = self.rooms.get(req.room_id)
        me = device.user_id
        if room is None or (room.membership(me) != ms.INVITE and room.join_rule != "public"):
            if room is not None and room.membership(me) == ms.BAN:
                raise ProtocolError(ErrorCode.BANNED, "you are banned from this room")
            if room is not None and me in room.joined:
                return await self._current_member_event(room, me)  # joining twice: no change
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"room {req.room_id} needs an invite (or does not exist)"
            )
        if me in room.joined:
            return await self._current_member_event(room, me)
        return await self._member(room, me, me, "join")

    async def _current_member_event(self, room: RoomState, user_id: str) -> Event:
        """The membership event in memory, answered only once it is committed."""
        event = room.state[(model.MEMBER, user_id)]
        if event.pos > self.hub.committed_pos:
            await self.store.barrier()
        return event

    async def leave(self, device: Device, req: f.Leave) -> Event:
        room = self.rooms.get(req.room_id)
        if room is None:
            # The same refusal as for an existing room one is not in: room ids don't leak.
            raise ProtocolError(*ms.REFUSALS[("leave", ms.NONE)])
        return await self._member(room, device.user_id, device.user_id, "leave")

    async def kick(self, device: Device, req: f.Kick) -> Event:
        room = self.joined_room(req.room_id, device.user_id)
        power.require(room.power, device.user_id, room.power.action("kick"), "kicking")
        power.require_above(room.power, device.user_id, req.user_id, "kicking")
        return await self._member(room, device.user_id, req.user_id, "kick", req.reason)

    async def ban(self, device: Device, req: f.Ban) -> Event:
        self.joined_room(req.room_id, device.user_id)
        await self._require_user(req.user_id)
        room = self.joined_room(req.room_id, device.user_id)
        power.require(room.power, device.user_id, room.power.action("ban"), "banning")
        power.require_above(room.power, device.user_id, req.user_id, "banning")
        return await self._member(room, device.user_id, req.user_id, "ban", req.reason)

    async def unban(self, device: Device, req: f.Unban) -> Event:
        room = self.joined_room(req.room_id, device.user_id)
        power.require(room.power, device.user_id, room.power.action("ban"), "unbanning")
        return await self._member(room, device.user_id, req.user_id, "unban")

    def _member(
        self, room: RoomState, sender: str, target: str, action: str, reason: str | None = None
    ) -> Awaitable[Event]:
        new = ms.transition(action, room.membership(target))
        content: dict[str, Any] = {"membership": new}
        if reason is not None:
            content["reason"] = reason
        return self._submit(
            self._event(room.room_id, sender, model.MEMBER, content, state_key=target)
        )

    def put_event(
        self,
        room: RoomState,
        sender: str,
        type_: str,
        content: dict[str, Any],
        state_key: str | None = None,
    ) -> Awaitable[Event]:
        """For the services of other concepts (invites, moderation): appends an event they
        decided on synchronously, right before this call, from the room's memory state."""
        return self._submit(self._event(room.room_id, sender, type_, content, state_key=state_key))

    # For the services of other event kinds (services.messages, .polls): the same write path,
    # an event made in a synchronous ``make`` and committed at most once per transaction id.
    make_event = _event
    commit_once = _once

    def is_redacted(self, event: Event) -> bool:
        """Redacted in the store, or by a redaction this process has decided on (the stored
        copy may have been read before it)."""
        return event.redacted_by is not None or event.event_id in self._redacted

    async def _require_user(self, user_id: str) -> None:
        if await self.store.get_user(user_id) is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"user {user_id} does not exist")

    # -- managed rooms: the server acts for the journal, as the rooms' owner ----------------
    # No permission checks here: authority comes from the signed roster (services.roster).
    # Each call decides and submits synchronously, like the ops above.

    def create_managed(
        self, owner: str, name: str, chat: dict[str, Any]
    ) -> tuple[str, Awaitable[Event]]:
        room_id = ids.room_id()
        self.rooms[room_id] = RoomState(room_id)
        levels = power.initial_content(owner)
        levels["invite"] = 50
        state: list[tuple[str, dict[str, Any]]] = [
            (model.POWER_LEVELS, levels),
            (model.JOIN_RULE, {"join_rule": "invite"}),
            (model.NAME, {"name": name}),
            (model.CHAT, chat),
        ]
        last = self._submit(
            self._event(room_id, owner, model.CREATE, {"creator": owner}, state_key="")
        )
        last = self._submit(
            self._event(room_id, owner, model.MEMBER, {"membership": ms.JOIN}, state_key=owner)
        )
        for type_, content in state:
            last = self._submit(self._event(room_id, owner, type_, content, state_key=""))
        return room_id, last

    def put_member(
        self, room_id: str, owner: str, user_id: str, join: bool, reason: str
    ) -> Awaitable[Event] | None:
        """Joins or removes a user; None when there is nothing to do. A user banned by the
        room's admins stays banned: moderation outranks the roster."""
        room = self.room(room_id)
        current = room.membership(user_id)
        if current == ms.BAN or (current == ms.JOIN) == join:
            return None
        content = {"membership": ms.JOIN if join else ms.LEAVE, "reason": reason}
        return self._submit(self._event(room_id, owner, model.MEMBER, content, state_key=user_id))

    def put_admin(
        self, room_id: str, owner: str, user_id: str, admin: bool
    ) -> Awaitable[Event] | None:
        room = self.room(room_id)
        content = dict(room.content(model.POWER_LEVELS))
        users = dict(content.get("users", {}))  # type: ignore[call-overload]
        if (users.get(user_id) == ADMIN_LEVEL) == admin:
            return None
        if admin:
            users[user_id] = ADMIN_LEVEL
        else:
            users.pop(user_id, None)
        content["users"] = users
        return self._submit(self._event(room_id, owner, model.POWER_LEVELS, content, state_key=""))

    def put_name(self, room_id: str, owner: str, name: str) -> Awaitable[Event]:
        self.room(room_id)
        return self._submit(self._event(room_id, owner, model.NAME, {"name": name}, state_key=""))

    def admins(self, room_id: str) -> set[str]:
        levels = self.room(room_id).power
        return {u for u, level in levels.users.items() if level >= ADMIN_LEVEL}

    # -- reads -----------------------------------------------------------------------------

    def members(self, device: Device, req: f.Members) -> list[dict[str, Any]]:
        room = self.joined_room(req.room_id, device.user_id)
        return [
            {"user_id": uid, "membership": m, "power": room.power.user(uid)}
            for uid, m in sorted(room.members.items())
            if m in (ms.JOIN, ms.INVITE)
        ]

    async def history(self, device: Device, req: f.History) -> dict[str, Any]:
        """Older events, newest first by page, returned in ascending order.

        Visibility is Matrix's "shared": a member reads the room's whole past; someone who
        left reads up to their leave.
        """
        me = device.user_id
        room = self.rooms.get(req.room_id)
        membership = room.membership(me) if room is not None else ms.NONE
        if room is None or not (
            membership == ms.JOIN
            or (membership in (ms.LEAVE, ms.BAN) and await self._ever_joined(room.room_id, me))
        ):
            raise ProtocolError(ErrorCode.NOT_MEMBER, f"you are not a member of room {req.room_id}")
        upto = self.hub.committed_pos
        if membership != ms.JOIN:
            upto = min(upto, room.state[(model.MEMBER, me)].pos)
        if req.before is not None:
            upto = min(upto, req.before - 1)
        events = await self.store.room_events(req.room_id, 0, upto, req.limit + 1)
        more = len(events) > req.limit
        if more:
            events = events[1:]
        page = [e.to_wire() for e in events]
        # A page stays within a byte budget (contents may be up to max_content_bytes each),
        # so one response can't outgrow the connection's outgoing queue; "prev" goes on.
        budget, size, keep = self.limits.history_max_bytes, 0, len(page)
        for i in range(len(page) - 1, -1, -1):
            size += len(MSGPACK.encode(page[i]))
            if size > budget and i < len(page) - 1:
                keep, more = len(page) - 1 - i, True
                break
        page = page[len(page) - keep :]
        return {"events": page, "prev": page[0]["pos"] if more and page else None}

    async def _ever_joined(self, room_id: str, user_id: str) -> bool:
        # A declined invite (invite -> leave) grants no history.
        history = await self.store.member_history(user_id, self.hub.committed_pos)
        return any(e.room_id == room_id and e.content.get("membership") == ms.JOIN for e in history)

    def rooms_of(self, user_id: str) -> list[RoomState]:
        return [self.rooms[r] for r in self.user_rooms.get(user_id, ())]

    def co_members(self, user_id: str) -> set[str]:
        """Everyone who shares a joined room with the user (for presence)."""
        out: set[str] = set()
        for room_id in self.user_rooms.get(user_id, ()):
            room = self.rooms[room_id]
            if user_id in room.joined:
                out |= room.joined
        return out
