"""Invite links (R12) and knocks: joining a chat by a link or its QR code.

A link is made by a member who may invite (the room's ``invite`` level: any member of an
open chat, only admins of a closed one, see services.chat_presets). Its code is 144 random
bits, shown once and stored only as a SHA-256; the URL is ``{base}/join/{code}``. A link may
expire, may have a use limit, and may need an admin's approval: joining through such a link
makes a *knock* (membership ``knock``) that members who may invite accept (→ ``join``) or
refuse (→ ``leave``). A link acts for its creator: once the creator has left or may no
longer invite, it stops working (``invite_revoked``).

Uses are counted by one conditional update in the store (store.invites), so when two people
take the last use at once exactly one gets in; a use counted for a join that is then refused
(the user was banned meanwhile) is given back. The HTTP parts raise ``AuthError`` (status,
code); the websocket ops raise ``ProtocolError``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from protocol import frames as f
from protocol.errors import ErrorCode, ProtocolError
from sferumd import ids, model
from sferumd.config import ChatSettings
from sferumd.model import Device, Event
from sferumd.services import membership as ms
from sferumd.services import power
from sferumd.services.auth import AuthError, invalid_field
from sferumd.services.rooms import RoomService
from sferumd.services.roomstate import RoomState
from sferumd.store import invites as st
from sferumd.store.invites import InviteLink, InviteStore

CODE_BYTES = 18  # 144 random bits, 24 URL-safe characters: short enough for a small QR code
CODE = re.compile(r"[A-Za-z0-9_-]{16,64}")
LINK_ID = re.compile(r"I[A-Za-z0-9_-]{1,64}")
LINK_OPTIONS = ("expires_in_s", "max_uses", "approval")

# Why a link can't be used, as HTTP answers (store outcome -> status, code, message).
REFUSALS: dict[str, tuple[int, str, str]] = {
    st.NOT_FOUND: (404, "not_found", "no such invite link"),
    st.REVOKED: (410, "invite_revoked", "this invite link was revoked"),
    st.EXPIRED: (410, "invite_expired", "this invite link has expired"),
    st.USED_UP: (410, "invite_used_up", "this invite link has been used up"),
}
# Room rules broken by an HTTP request, as HTTP statuses.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.NOT_MEMBER: 403,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.BANNED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.MEMBERSHIP: 409,
    ErrorCode.INVALID_FIELD: 400,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def as_http(err: ProtocolError) -> AuthError:
    return AuthError(HTTP_STATUS.get(err.code, 400), err.code.value, err.message)


@dataclass(frozen=True, slots=True)
class LinkOptions:
    expires_in_s: int | None = None  # None: never expires
    max_uses: int | None = None  # None: no limit
    approval: bool = False  # joining makes a knock that an admin accepts or refuses


def _count(body: dict[str, Any], key: str, top: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise invalid_field(key, f"must be an integer 1..{top} or null")
    return value


def check_link_options(body: dict[str, Any], settings: ChatSettings) -> LinkOptions:
    """The body of a link creation: every key known, every value in range."""
    for key in body:
        if key not in LINK_OPTIONS:
            raise invalid_field(str(key)[:40], f"unknown field; known: {', '.join(LINK_OPTIONS)}")
    expires = _count(body, "expires_in_s", settings.max_link_ttl_s)
    uses = _count(body, "max_uses", settings.max_link_uses)
    approval = body.get("approval", False)
    if approval is None:
        approval = False
    if not isinstance(approval, bool):
        raise invalid_field("approval", "must be true or false")
    if approval and uses is not None:
        # A knock may be refused: counting it as a use would let refused people use it up.
        raise invalid_field("max_uses", "a link that needs approval has no use limit")
    return LinkOptions(expires, uses, approval)


def valid_code(code: str) -> bool:
    return CODE.fullmatch(code) is not None


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


@dataclass(frozen=True, slots=True)
class NewLink:
    link: InviteLink
    code: str  # shown only now


@dataclass(frozen=True, slots=True)
class Preview:
    name: str | None
    members: int
    approval: bool


def link_json(link: InviteLink, now: int) -> dict[str, Any]:
    return {
        "link_id": link.link_id,
        "room_id": link.room_id,
        "creator": link.creator,
        "created_ts": link.created_ts,
        "expires_ts": link.expires_ts,
        "max_uses": link.max_uses,
        "uses": link.uses,
        "approval": link.approval,
        "state": link.state(now),
    }


class InviteService:
    def __init__(self, store: InviteStore, rooms: RoomService, settings: ChatSettings):
        self.store = store
        self.rooms = rooms
        self.settings = settings

    # -- managing links (HTTP, bearer) -----------------------------------------------------

    def _inviter_room(self, room_id: str, user_id: str) -> RoomState:
        try:
            room = self.rooms.joined_room(room_id, user_id)
            power.require(room.power, user_id, room.power.action("invite"), "invite links")
        except ProtocolError as err:
            raise as_http(err) from None
        return room

    async def create(self, user_id: str, room_id: str, body: dict[str, Any]) -> NewLink:
        options = check_link_options(body, self.settings)
        self._inviter_room(room_id, user_id)
        now = now_ms()
        code = new_code()
        link = InviteLink(
            link_id="I" + secrets.token_urlsafe(9),
            room_id=room_id,
            creator=user_id,
            created_ts=now,
            expires_ts=None if options.expires_in_s is None else now + options.expires_in_s * 1000,
            max_uses=options.max_uses,
            uses=0,
            approval=options.approval,
        )
        limit = self.settings.max_links_per_room
        if not await self.store.add(link, ids.token_hash(code), limit=limit, now=now):
            raise AuthError(
                409, "too_many_links", f"this chat has {limit} live invite links; revoke some"
            )
        return NewLink(link, code)

    async def live_links(self, user_id: str, room_id: str) -> list[InviteLink]:
        self._inviter_room(room_id, user_id)
        return await self.store.live(room_id, now_ms())

    async def revoke(self, user_id: str, room_id: str, link_id: str) -> InviteLink:
        """The link's creator revokes it, or anyone of the room at the ``kick`` level."""
        try:
            room = self.rooms.joined_room(room_id, user_id)
        except ProtocolError as err:
            raise as_http(err) from None
        link = await self.store.by_id(link_id) if LINK_ID.fullmatch(link_id) else None
        if link is None or link.room_id != room_id:
            raise AuthError(404, "not_found", "no such invite link in this chat")
        if link.creator != user_id:
            try:
                power.require(room.power, user_id, room.power.action("kick"), "revoking links")
            except ProtocolError as err:
                raise as_http(err) from None
        await self.store.revoke(link_id, user_id, now_ms())
        revoked = await self.store.by_id(link_id)
        assert revoked is not None
        return revoked

    # -- using a link ----------------------------------------------------------------------

    async def _usable(self, code: str) -> tuple[InviteLink, RoomState]:
        link = await self.store.by_code(ids.token_hash(code)) if valid_code(code) else None
        if link is None:
            raise AuthError(*REFUSALS[st.NOT_FOUND])
        state = link.state(now_ms())
        if state != st.LIVE:
            raise AuthError(*REFUSALS[state])
        room = self.rooms.rooms.get(link.room_id)
        if room is None:
            raise AuthError(*REFUSALS[st.NOT_FOUND])
        self._creator_may_invite(room, link)
        return link, room

    @staticmethod
    def _creator_may_invite(room: RoomState, link: InviteLink) -> None:
        """A link acts for its creator, who must still be joined and allowed to invite."""
        if link.creator not in room.joined or room.power.user(link.creator) < room.power.action(
            "invite"
        ):
            raise AuthError(
                410, "invite_revoked", "the person who made this link may no longer invite"
            )

    async def preview(self, code: str) -> Preview:
        """What a link leads to, without joining: the chat's name, its member count and
        whether an admin must approve; nothing else (no member list)."""
        link, room = await self._usable(code)
        return Preview(room.name, len(room.joined), link.approval)

    async def join(self, user_id: str, code: str) -> Event:
        """Joins (or knocks, for a link that needs approval); returns the member event."""
        link, room = await self._usable(code)
        answer = self._admit(room, user_id, link)
        if answer is not None:
            return await answer
        outcome = await self.store.use(link.link_id, now_ms())
        if outcome != st.USED:
            raise AuthError(*REFUSALS[outcome])
        # Back from the store: decide again from the memory state of now, then append.
        appended = None
        try:
            room = self.rooms.rooms[link.room_id]
            self._creator_may_invite(room, link)
            answer = self._admit(room, user_id, link)
            if answer is None:
                action = "knock" if link.approval else "join"
                new = ms.transition(action, room.membership(user_id))
                content = {"membership": new, "link_id": link.link_id}
                appended = self.rooms.put_event(room, user_id, model.MEMBER, content, user_id)
        except (AuthError, ProtocolError) as err:
            await self.store.release(link.link_id)
            raise as_http(err) if isinstance(err, ProtocolError) else err from None
        if appended is None:  # joined meanwhile, by another request: no use was needed
            await self.store.release(link.link_id)
            assert answer is not None
            return await answer
        return await appended

    def _admit(self, room: RoomState, user_id: str, link: InviteLink) -> Awaitable[Event] | None:
        """Refuses a banned user; for a user the link needn't admit, the member event that
        answers (already joined, already knocking, or joined now with their invite)."""
        current = room.membership(user_id)
        if current == ms.BAN:
            raise AuthError(403, "banned", "you are banned from this chat")
        if current == ms.JOIN or (current == ms.KNOCK and link.approval):
            return self._committed(room.state[(model.MEMBER, user_id)])
        if current == ms.INVITE:
            # Invited already: the invite lets them in, no use of the link is counted.
            return self.rooms.put_event(
                room, user_id, model.MEMBER, {"membership": ms.JOIN}, user_id
            )
        return None

    async def _committed(self, event: Event) -> Event:
        if event.pos > self.rooms.hub.committed_pos:
            await self.rooms.store.barrier()
        return event

    # -- knocks (websocket ops) ------------------------------------------------------------

    def _approver_room(self, room_id: str, user_id: str, what: str) -> RoomState:
        room = self.rooms.joined_room(room_id, user_id)
        power.require(room.power, user_id, room.power.action("invite"), what)
        return room

    def knocks(self, device: Device, req: f.Knocks) -> list[dict[str, Any]]:
        room = self._approver_room(req.room_id, device.user_id, "seeing requests to join")
        out = []
        for user_id, membership in sorted(room.members.items()):
            if membership == ms.KNOCK:
                ev = room.state[(model.MEMBER, user_id)]
                out.append({"user_id": user_id, "ts": ev.ts, "link_id": ev.content.get("link_id")})
        return out

    async def accept(self, device: Device, req: f.AcceptKnock) -> Event:
        room = self._approver_room(req.room_id, device.user_id, "accepting requests to join")
        new = ms.transition("accept", room.membership(req.user_id))
        return await self.rooms.put_event(
            room, device.user_id, model.MEMBER, {"membership": new}, req.user_id
        )

    async def refuse(self, device: Device, req: f.RefuseKnock) -> Event:
        room = self._approver_room(req.room_id, device.user_id, "refusing requests to join")
        new = ms.transition("refuse", room.membership(req.user_id))
        content: dict[str, Any] = {"membership": new}
        if req.reason is not None:
            content["reason"] = req.reason
        return await self.rooms.put_event(room, device.user_id, model.MEMBER, content, req.user_id)
