"""``CallService``: the call control plane wired into the daemon.

The pure modules of this package decide; this module holds their values per call, applies
the decisions, persists them, pushes them and drives the media plane and the chats.

Rules:

- One ``LiveCall`` per call that is scheduled, open or running, holding the call's
  ``CallDocument`` (``codec``). An op decides and applies synchronously from the document it
  reads (no ``await`` in between), then ``commit`` writes the new document (group-committed,
  in order), pushes the call's state once to everyone concerned (one ``Frame``: encoded once
  per wire format, whatever the number of recipients) and only then answers. Ended and
  cancelled calls leave memory; the store keeps them for the journal.
- People: a lesson call's people are journal accounts (its roster comes from the journal,
  linked or not); a chat call's people are messenger users. ``LiveCall.user_of`` and
  ``person_of`` translate; clients only ever see user ids. A user with several accounts in
  one lesson call is the unblocked one first, staff before student before parent.
- A session is a device: joining again from the same device changes nothing, and the call
  is left when the device's last connection closes (``on_detach``) or with ``call_leave``.
- Chats: a call has its own chat, made with it (owner ``CALLS_OWNER``); everyone let in joins
  it, admins are its admins, and whoever lacks the ``chat`` capability is muted in it
  (``mutes``). The chat the call belongs to (the subject chat, or the chat a call was started
  in) carries a ``call`` state event (state key: the call id) with the call's state, which is
  what a client shows as "Войти" (R26).
- Time comes from ``clock`` only; ``scheduler`` ticks start and end calls (R17) and run the
  breakout timers; at start-up ``load`` restores the active calls with everybody out
  ("left at restart", ``codec.restarted``) and the first tick catches up (``lifecycle``).
- A refused op raises ``CallError`` (the websocket layer turns it into its error code) or
  ``ProtocolError``; nothing changes then.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from protocol import frames as f
from protocol.errors import ErrorCode, ProtocolError
from sferumd.hub import Frame, Hub
from sferumd.model import CHAT, Device
from sferumd.services import power
from sferumd.services.calls import breakout as bo
from sferumd.services.calls import codec, report, views
from sferumd.services.calls import hands as hq
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls import permissions as pm
from sferumd.services.calls import whiteboard as wb
from sferumd.services.calls.codec import CallDocument
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.media import (
    MediaBackend,
    MediaRefused,
    NoMedia,
    allowed_kinds,
    capability_steps,
    media_steps,
)
from sferumd.services.calls.participants import Category, Invitee, JoinCode, MediaKind
from sferumd.services.calls.permissions import Capability
from sferumd.services.calls.scheduler import Clock, Scheduler
from sferumd.services.calls.settings import CallSettings
from sferumd.services.chat_presets import MUTES
from sferumd.services.rooms import ADMIN_LEVEL, RoomService
from sferumd.services.roster.service import owner_of
from sferumd.services.webhooks import JournalWebhooks
from sferumd.store.calls import CallFacts, CallStore, InviteeRow
from sferumd.store.roster import RosterStore
from sferumd.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

CALLS_OWNER = "@calls"  # owns the calls' own chats; never a person, never signs in
CALL_EVENT = "call"  # the state event, keyed by call id, in the chat a call belongs to
START_LEVEL = 50  # power to start a call in a chat, unless its power levels say (events.call)
CATEGORY_RANK = {Category.STAFF: 0, Category.STUDENT: 1, Category.PARENT: 2}

Effect = Callable[[], Coroutine[Any, Any, Any]]
Spawn = Callable[[Coroutine[Any, Any, Any]], None]


def new_call_id() -> str:
    return "C" + secrets.token_urlsafe(12)


class CallProtocolError(ProtocolError):
    """A refusal whose error map carries more than code and message (``opens_at_ms``,
    ``retry_after_ms``)."""

    def __init__(self, code: ErrorCode, message: str, **extra: Any):
        super().__init__(code, message)
        self.extra = extra

    def to_frame(self) -> dict[str, object]:
        frame = super().to_frame()
        error = frame["error"]
        assert isinstance(error, dict)
        error.update(self.extra)
        return frame


def wire_error(err: CallError) -> ProtocolError:
    """A call refusal as the websocket's error: the same code (every call code reaching the
    websocket is an ``ErrorCode``; the journal's scheduling codes never do)."""
    try:
        code = ErrorCode(err.code.value)
    except ValueError:
        code = ErrorCode.INVALID_FIELD
    if isinstance(err, wb.RateLimitedError):
        return CallProtocolError(code, err.message, retry_after_ms=err.retry_after_ms)
    return ProtocolError(code, err.message)


def media_error(err: MediaRefused) -> ProtocolError:
    """The media plane's refusal as the websocket's error of the same code."""
    try:
        code = ErrorCode(err.code)
    except ValueError:
        code = ErrorCode.BAD_SDP
    return ProtocolError(code, err.message)


def join_refusal(verdict: pt.Verdict) -> ProtocolError:
    messages = {
        JoinCode.NOT_INVITED: "you are not a participant of this call",
        JoinCode.BLOCKED: "the journal blocked you for this lesson",
        JoinCode.REMOVED: "an admin removed you from this call",
        JoinCode.REFUSED: "an admin refused to let you in",
        JoinCode.CALL_CANCELLED: "the call was cancelled",
        JoinCode.CALL_ENDED: "the call has ended",
        JoinCode.NOT_OPEN_YET: f"the call opens at {verdict.opens_at_ms}",
    }
    code = ErrorCode(verdict.code.value)
    if verdict.code is JoinCode.NOT_OPEN_YET:
        return CallProtocolError(code, messages[verdict.code], opens_at_ms=verdict.opens_at_ms)
    return ProtocolError(code, messages[verdict.code])


@dataclass(slots=True, eq=False)
class LiveCall:
    facts: CallFacts
    name: str
    created_ms: int
    doc: CallDocument
    accounts: dict[str, str] = field(default_factory=dict)  # user -> person (lesson calls)
    boards: dict[str, wb.Board] = field(default_factory=dict)  # loaded on first use
    buckets: dict[str, wb.TokenBucket] = field(default_factory=dict)  # per person
    board_loads: dict[str, asyncio.Future[wb.Board]] = field(default_factory=dict)

    @property
    def call_id(self) -> str:
        return self.facts.call_id

    @property
    def is_lesson(self) -> bool:
        return self.facts.kind == "lesson"

    def user_of(self, person_id: str) -> str | None:
        return self.doc.users.get(person_id) if self.is_lesson else person_id

    def person_of(self, user_id: str) -> str | None:
        if self.is_lesson:
            return self.accounts.get(user_id)
        return user_id if user_id in self.doc.roster.invitees else None

    def view(self) -> dict[str, Any]:
        return views.call_view(self.facts, self.name, self.doc, self.user_of)


class CallService:
    def __init__(
        self,
        *,
        store: CallStore,
        db: SqliteStore,
        rooms: RoomService,
        hub: Hub,
        roster_store: RosterStore,
        settings: CallSettings,
        webhooks: JournalWebhooks,
        clock: Clock,
        spawn: Spawn,
        media: MediaBackend | None = None,
    ):
        self.store = store
        self.db = db
        self.rooms = rooms
        self.hub = hub
        self.roster_store = roster_store
        self.settings = settings
        self.webhooks = webhooks
        self.clock = clock
        self.spawn = spawn
        self.media: MediaBackend = media or NoMedia()
        self.live: dict[str, LiveCall] = {}
        self.scheduler = Scheduler(clock, self._tick)
        # Called with the call and its last document when a call ends (recordings stop).
        self.on_finish: list[Callable[[LiveCall, CallDocument], None]] = []

    # -- start-up and shutdown ---------------------------------------------------------------

    async def load(self) -> None:
        """Restores the active calls with nobody in them, re-sends attendance the journal has
        not taken, and starts the scheduler (whose first tick catches up, R17)."""
        writes: list[Awaitable[None]] = []
        for row in await self.store.active():
            doc = codec.load(row.data)
            live = LiveCall(row.facts, row.name, row.created_ms, doc)
            live.accounts = {u: p for p, u in sorted(doc.users.items(), key=_rank(doc))}
            if pt.present(doc.roster) or doc.roster.waiting:
                live.doc = codec.restarted(doc, row.saved_ms)
                writes.append(self.save(live))
            self.live[live.call_id] = live
        await asyncio.gather(*writes)
        for row in await self.store.unreported():
            doc = codec.load(row.data)
            if doc.call.started_at_ms is not None:
                self._report(LiveCall(row.facts, row.name, row.created_ms, doc))
        self.scheduler.start()

    async def stop(self, grace_s: float) -> None:
        """Everybody still in a call leaves now, so attendance counts up to the shutdown."""
        await self.scheduler.stop()
        now = self.clock.now_ms()
        writes = []
        for live in self.live.values():
            if pt.present(live.doc.roster) or live.doc.roster.waiting:
                live.doc = codec.restarted(live.doc, now)
                try:
                    writes.append(self.save(live))
                except RuntimeError:
                    break  # the store is closing already
        await asyncio.gather(*writes, return_exceptions=True)
        await self.webhooks.close(grace_s)

    # -- the write path ----------------------------------------------------------------------

    def save(self, live: LiveCall, *, invitees: bool = False) -> Awaitable[None]:
        doc = live.doc
        rows = None
        if invitees:
            rows = [
                InviteeRow(i.person_id, i.category.value, i.blocked)
                for i in doc.roster.invitees.values()
            ]
        return self.store.put(
            live.facts,
            live.name,
            live.created_ms,
            self.clock.now_ms(),
            codec.dump(doc),
            rows,
        )

    def commit(
        self,
        live: LiveCall,
        doc: CallDocument,
        *,
        invitees: bool = False,
        writes: Iterable[Awaitable[Any]] = (),
        final: bool = False,
    ) -> Awaitable[None]:
        """Applies a decided document: a new version, written, pushed, the chats and the
        media plane brought in line. Synchronous up to the returned awaitable. Only
        ``finish`` (``final``) writes a call that is no longer active: an op that waited
        while the call ended is refused, changing nothing."""
        if not final and self.live.get(live.call_id) is not live:
            raise ProtocolError(ErrorCode.CALL_ENDED, "the call has ended")
        old = live.doc
        live.doc = replace(doc, version=old.version + 1)
        saved = self.save(live, invitees=invitees)
        audience = self._audience(live, old) | self._audience(live, live.doc)
        frame = self.frame(live, {"type": "state", "state": live.view()})
        chat_writes = self._sync_chats(live)
        effects = self._media_effects(live, old, live.doc)
        return self._settle(saved, frame, audience, [*writes, *chat_writes], effects)

    async def _settle(
        self,
        saved: Awaitable[None],
        frame: Frame,
        audience: set[str],
        writes: list[Awaitable[Any]],
        effects: list[Effect],
    ) -> None:
        # Pushed once written: nobody is shown a state a crash could take back. The store
        # commits in submission order, so the pushes go out in the order of the changes.
        await saved
        self.hub.fan_out(frame, audience)
        if writes:
            await asyncio.gather(*writes)
        for effect in effects:
            try:
                await effect()
            except Exception:
                log.exception("media backend failed")

    def audience(self, live: LiveCall) -> set[str]:
        """The users a change of the call is pushed to: everyone in it or waiting, and its
        admins wherever they are."""
        return self._audience(live, live.doc)

    def _audience(self, live: LiveCall, doc: CallDocument) -> set[str]:
        roster = doc.roster
        people = set(pt.present(roster)) | {k.person_id for k in roster.waiting} | roster.admins
        return {u for p in people if (u := live.user_of(p)) is not None}

    def frame(self, live: LiveCall, body: dict[str, Any]) -> Frame:
        """One frame for everyone: the hub encodes it once per wire format."""
        return Frame({f.PUSH_CALL: {"call_id": live.call_id, **body}})

    def push(self, live: LiveCall, users: Iterable[str], body: dict[str, Any]) -> None:
        self.hub.fan_out(self.frame(live, body), users)

    def _media_effects(self, live: LiveCall, old: CallDocument, new: CallDocument) -> list[Effect]:
        media, call_id = self.media, live.call_id
        steps = media_steps((old.roster, views.placement(old)), (new.roster, views.placement(new)))
        steps += capability_steps((old.table, old.roster), (new.table, new.roster))
        effects: list[Effect] = []
        for step in dict.fromkeys(steps):
            user = live.user_of(step.person_id)
            if user is None:
                continue
            if step.action == "leave":
                effects.append(partial(media.leave, call_id, user))
            elif step.action == "move":
                effects.append(partial(media.move, call_id, user, step.value))
            else:
                paused = step.action == "pause"
                effects.append(
                    partial(media.set_producer_paused, call_id, user, step.value, paused)
                )
        return effects

    # -- chats -------------------------------------------------------------------------------

    def _sync_chats(self, live: LiveCall) -> list[Awaitable[Any]]:
        """The call's chat and its breakout rooms' chats follow the call: the people in it
        join, admins are admins, people without the chat capability are muted."""
        doc, rooms = live.doc, self.rooms
        writes: list[Awaitable[Any]] = []
        if doc.call.state in lc.FINAL:
            return writes
        where = views.placement(doc)
        admins = {u for a in doc.roster.admins if (u := live.user_of(a)) is not None}
        chats: dict[str, set[str]] = {live.facts.call_room_id: set()}
        plan_open = doc.plan is not None and doc.plan.phase in bo.OPEN_PHASES
        for room_id in doc.breakout_chats.values():
            chats.setdefault(room_id, set())
        for person_id, room in where.items():
            user = live.user_of(person_id)
            if user is None:
                continue
            chats[live.facts.call_room_id].add(user)
            if plan_open and room != bo.MAIN_ROOM and room in doc.breakout_chats:
                chats[doc.breakout_chats[room]].add(user)
        if plan_open:
            for room_id in doc.breakout_chats.values():
                chats[room_id] |= admins & chats[live.facts.call_room_id]
        # Muted in the call's chats: whoever lacks the chat capability (computed once).
        silenced = {
            u
            for p in doc.roster.invitees
            if (u := live.user_of(p)) is not None
            and not pm.may(doc.table, doc.roster, p, Capability.CHAT)
        }
        for room_id, users in chats.items():
            if room_id not in rooms.rooms:
                continue
            for user in sorted(users):
                _add(writes, rooms.put_member(room_id, CALLS_OWNER, user, True, "call"))
                _add(writes, rooms.put_admin(room_id, CALLS_OWNER, user, user in admins))
            _add(writes, self._sync_mutes(room_id, silenced))
        return writes

    def _sync_mutes(self, room_id: str, silenced: set[str]) -> Awaitable[Any] | None:
        room = self.rooms.rooms[room_id]
        wanted: dict[str, None] = {u: None for u in sorted(silenced & room.joined)}
        if wanted == {u: None for u in room.content(MUTES)}:
            return None
        return self.rooms.put_event(room, CALLS_OWNER, MUTES, dict(wanted), state_key="")

    def announce(self, live: LiveCall) -> Awaitable[Any] | None:
        """The ``call`` state event in the chat the call belongs to."""
        room = self.rooms.rooms.get(live.facts.room_id)
        if room is None:
            return None
        call = live.doc.call
        content = {
            "call_id": live.call_id,
            "kind": live.facts.kind,
            "name": live.name,
            "state": call.state.value,
            "start_ms": call.start_ms,
            "end_ms": call.end_ms,
            "room_id": live.facts.call_room_id,
        }
        sender = (
            owner_of(live.facts.journal_id)
            if live.facts.journal_id is not None
            else live.doc.roster.owner_id
        )
        return self.rooms.put_event(room, sender, CALL_EVENT, content, state_key=live.call_id)

    # -- lookups -----------------------------------------------------------------------------

    async def _ended(self, call_id: str) -> ProtocolError:
        row = await self.store.get(call_id)
        if row is None:
            return ProtocolError(ErrorCode.NOT_FOUND, f"no call {call_id}")
        if row.state == lc.CallState.CANCELLED.value:
            return ProtocolError(ErrorCode.CALL_CANCELLED, "the call was cancelled")
        return ProtocolError(ErrorCode.CALL_ENDED, "the call has ended")

    async def get_call(self, call_id: str, user_id: str) -> tuple[LiveCall, str]:
        """The call and the caller's person in it; ``not_found`` for anyone not in it (as
        for a call that doesn't exist: call ids don't leak)."""
        live = self.live.get(call_id)
        if live is None:
            raise await self._ended(call_id)
        person = await self.resolve(live, user_id)
        if person is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no call {call_id}")
        return live, person

    async def resolve(self, live: LiveCall, user_id: str) -> str | None:
        """The person a user is in a call: a lesson call looks at the journal's links; in a
        chat call every member of its chat is someone (they may join it)."""
        person = live.person_of(user_id)
        if person is not None:
            return person
        if not live.is_lesson:
            chat = self.rooms.rooms.get(live.facts.room_id)
            return user_id if chat is not None and user_id in chat.joined else None
        await self.refresh_accounts(live)
        return live.person_of(user_id)

    async def refresh_accounts(self, live: LiveCall) -> None:
        assert live.facts.journal_id is not None
        links = await self.roster_store.journal_links(live.facts.journal_id)
        invitees = live.doc.roster.invitees
        best: dict[str, str] = {}
        for account, user in links.items():
            inv = invitees.get(account)
            if inv is None:
                continue
            have = best.get(user)
            if have is None or _invitee_key(inv) < _invitee_key(invitees[have]):
                best[user] = account
        live.accounts = best
        users = {p: u for p, u in live.doc.users.items() if best.get(u) == p}
        users.update({p: u for u, p in best.items()})
        live.doc = replace(live.doc, users=users)

    async def target(self, live: LiveCall, user_id: str) -> str:
        """Someone an op names: ``not_found`` if they are not one of the call's people."""
        person = await self.resolve(live, user_id)
        if person is None:
            raise CallError(CallCode.NOT_FOUND, f"{user_id} is not a participant of this call")
        return person

    # -- chat calls (R26) --------------------------------------------------------------------

    async def start_in_chat(self, device: Device, req: f.CallStart) -> dict[str, Any]:
        me = device.user_id
        room = self.rooms.joined_room(req.room_id, me)
        if room.content(CHAT).get("kind") in ("call", "breakout"):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "a call's own chat holds no calls")
        running = next(
            (c for c in self.live.values() if c.facts.room_id == room.room_id and not c.is_lesson),
            None,
        )
        if running is not None:
            return {"call": running.view()}
        needed = room.power.events.get(CALL_EVENT, START_LEVEL)
        power.require(room.power, me, needed, "starting a call")
        now = self.clock.now_ms()
        call_id = new_call_id()
        scheduled = lc.schedule(
            call_id, None, now, now + self.settings.max_call_ms, now, self.settings
        )
        calls, _ = lc.catch_up([scheduled], now)
        roster = pt.new_roster(call_id, me, [], self.settings)
        name = room.name or "Звонок"
        chat = {"kind": "call", "call_id": call_id}
        call_room, created = self.rooms.create_managed(CALLS_OWNER, name, chat)
        facts = CallFacts(call_id, "chat", None, None, None, None, room.room_id, call_room)
        live = LiveCall(facts, name, now, CallDocument(calls[call_id], roster))
        self.live[call_id] = live
        writes: list[Awaitable[Any]] = [created, self.save(live)]
        _add(writes, self.announce(live))
        await asyncio.gather(*writes)
        self.scheduler.wake()
        return {"call": live.view()}

    async def _chat_invitee(self, live: LiveCall, user_id: str) -> Invitee | None:
        """A member of the chat a chat call belongs to may join it; who they are in it comes
        from their power there and, if linked, their journal roles."""
        room = self.rooms.rooms.get(live.facts.room_id)
        if room is None or user_id not in room.joined:
            return None
        needed = room.power.events.get(CALL_EVENT, START_LEVEL)
        if room.power.user(user_id) >= needed:
            return Invitee(user_id, Category.STAFF)
        roles = {link.role for link, _ in await self.db.user_links(user_id)}
        for role, category in (
            ("teacher", Category.STAFF),
            ("student", Category.STUDENT),
            ("parent", Category.PARENT),
        ):
            if role in roles:
                return Invitee(user_id, category)
        return Invitee(user_id, Category.STUDENT)

    # -- joining and leaving -----------------------------------------------------------------

    async def join(self, device: Device, req: f.CallJoin) -> dict[str, Any]:
        user = device.user_id
        live = self.live.get(req.call_id)
        if live is None:
            raise await self._ended(req.call_id)
        newcomer = None
        if not live.is_lesson and live.person_of(user) is None:
            newcomer = await self._chat_invitee(live, user)
            if newcomer is None:
                raise ProtocolError(ErrorCode.NOT_INVITED, "you are not a member of its chat")
        person = user if newcomer is not None else await self.resolve(live, user)
        if person is None:
            raise ProtocolError(ErrorCode.NOT_INVITED, "you are not a participant of this call")
        if live.doc.call.state in lc.FINAL or live.call_id not in self.live:
            raise await self._ended(req.call_id)
        now = self.clock.now_ms()
        doc = live.doc
        roster = doc.roster
        if newcomer is not None and newcomer.person_id not in roster.invitees:
            invitees = [*roster.invitees.values(), newcomer]
            roster = pt.set_invitees(roster, invitees, now, self.settings)
        roster, verdict = pt.join(doc.call, roster, person, device.device_id, now)
        if verdict.code not in (JoinCode.ADMIT, JoinCode.WAITING_ROOM):
            raise join_refusal(verdict)
        if verdict.admitted and not live.is_lesson and person not in roster.admins:
            chat = self.rooms.rooms.get(live.facts.room_id)
            if chat is not None and chat.power.user(user) >= ADMIN_LEVEL:
                roster = pt.make_admin(roster, roster.owner_id, person)  # R18, chat admins
        if req.offer is not None and verdict.admitted:
            allowed = allowed_kinds(doc.table, roster, person)
            try:
                self.media.check_offer(req.offer, req.tracks, allowed)  # refused: no change
            except MediaRefused as err:
                raise media_error(err) from None
        await self.commit(live, replace(doc, roster=roster))
        answer = None
        if verdict.admitted:
            room = views.placement(live.doc).get(person, bo.MAIN_ROOM)
            allowed = allowed_kinds(live.doc.table, live.doc.roster, person)
            try:
                answer = await self.media.join(
                    live.call_id, room, user, req.offer, tracks=req.tracks, allowed=allowed
                )
            except MediaRefused as err:  # in the call, without media: join again or publish
                raise media_error(err) from None
            except Exception:
                log.exception("media backend failed to join", extra={"call_id": live.call_id})
        return {"joined": verdict.admitted, "answer": answer, "call": live.view()}

    async def publish(self, device: Device, req: f.CallPublish) -> dict[str, Any]:
        """A new offer of the participant's send transport (PROTOCOL.md "Media")."""
        live, me = await self.get_call(req.call_id, device.user_id)
        if not pt.is_joined(live.doc.roster, me):
            raise ProtocolError(ErrorCode.NOT_JOINED, "join the call before publishing media")
        allowed = allowed_kinds(live.doc.table, live.doc.roster, me)
        try:
            answer = await self.media.publish(
                live.call_id, device.user_id, req.offer, req.tracks, allowed
            )
        except MediaRefused as err:
            raise media_error(err) from None
        return {"answer": answer}

    async def media_answer(self, device: Device, req: f.CallMediaAnswer) -> dict[str, Any]:
        """The participant's answer to the SFU's ``media_offer`` push."""
        live, me = await self.get_call(req.call_id, device.user_id)
        if not pt.is_joined(live.doc.roster, me):
            raise ProtocolError(ErrorCode.NOT_JOINED, "you are not in the call")
        try:
            await self.media.media_answer(live.call_id, device.user_id, req.version, req.answer)
        except MediaRefused as err:
            raise media_error(err) from None
        return {}

    async def leave(self, device: Device, req: f.CallLeave) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        await self._leave(live, me, device.device_id)
        return {}

    def _leave(self, live: LiveCall, person_id: str, session_id: str) -> Awaitable[None]:
        doc = live.doc
        roster = pt.leave(doc.roster, person_id, session_id, self.clock.now_ms())
        if roster is doc.roster:
            return _done()
        hands = doc.hands if pt.is_joined(roster, person_id) else hq.drop(doc.hands, person_id)
        return self.commit(live, replace(doc, roster=roster, hands=hands))

    def on_detach(self, device: Device) -> None:
        """A connection closed: if it was the device's last one, the device leaves its calls."""
        for conn in self.hub.by_user.get(device.user_id, ()):
            if conn.device_id == device.device_id and not conn.closed:
                return
        for live in list(self.live.values()):
            person = live.person_of(device.user_id)
            if person is None:
                continue
            p = live.doc.roster.participants.get(person)
            in_call = p is not None and device.device_id in p.sessions
            knocking = any(
                k.person_id == person and k.session_id == device.device_id
                for k in live.doc.roster.waiting
            )
            if in_call or knocking:
                self.spawn(_quietly(self._leave(live, person, device.device_id)))

    async def state(self, device: Device, req: f.CallGet) -> dict[str, Any]:
        live, _ = await self.get_call(req.call_id, device.user_id)
        return {"call": live.view()}

    # -- in the call -------------------------------------------------------------------------

    async def set_media(self, device: Device, req: f.CallMedia) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        doc = live.doc
        roster = pm.set_media(doc.table, doc.roster, me, MediaKind(req.kind), req.on)
        if roster is not doc.roster:
            await self.commit(live, replace(doc, roster=roster))
        return {}

    async def hand(self, device: Device, req: f.CallHand) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = me if req.user_id is None else await self.target(live, req.user_id)
        doc = live.doc
        if req.raised:
            if target != me:
                raise CallError(CallCode.FORBIDDEN, "you raise only your own hand")
            hands = hq.raise_hand(doc.hands, doc.roster, me, self.clock.now_ms())
        else:
            hands = hq.lower_hand(doc.hands, doc.roster, me, target)
        if hands is not doc.hands:
            await self.commit(live, replace(doc, hands=hands))
        return {"hands": [u for p in hq.order(live.doc.hands) if (u := live.user_of(p))]}

    async def lower_hands(self, device: Device, req: f.CallLowerHands) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        doc = live.doc
        hands = hq.lower_all(doc.hands, doc.roster, me)
        if hands != doc.hands:
            await self.commit(live, replace(doc, hands=hands))
        return {}

    async def permission(self, device: Device, req: f.CallPermission) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = None if req.user_id is None else await self.target(live, req.user_id)
        doc = live.doc
        cap = Capability(req.capability)
        if target is None:
            table, roster = pm.set_everyone(
                doc.table, doc.roster, me, cap, req.allowed, reset_personal=req.reset_personal
            )
        else:
            if req.reset_personal:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, "reset_personal goes with everyone (no user_id)"
                )
            table, roster = pm.set_personal(doc.table, doc.roster, me, target, cap, req.allowed)
        await self.commit(live, replace(doc, table=table, roster=roster))
        return {"permissions": live.view()["permissions"]}

    async def mute(self, device: Device, req: f.CallMute) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = None if req.user_id is None else await self.target(live, req.user_id)
        doc = live.doc
        now = self.clock.now_ms()
        if req.force:
            if target is None:
                table, roster = pm.set_everyone(
                    doc.table, doc.roster, me, Capability.MICROPHONE, False
                )
            else:
                table, roster = pm.force_mute(doc.table, doc.roster, me, target)
            await self.commit(live, replace(doc, table=table, roster=roster))
            return {"asked": []}
        if target is None:
            asks = pm.request_mute_all(doc.roster, me, now)
        else:
            pt.require_not_admin(doc.roster, target, "asked to mute")
            asks = (pm.request_mute(doc.roster, me, target, now),)
        by = live.user_of(me)
        asked = []
        for ask in asks:
            user = live.user_of(ask.person_id)
            if user is not None:
                self.push(live, [user], {"type": "mute_request", "by": by, "at_ms": ask.at_ms})
                asked.append(user)
        return {"asked": asked}

    async def remove(self, device: Device, req: f.CallRemove) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = await self.target(live, req.user_id)
        doc = live.doc
        roster = pt.remove(doc.roster, me, target, self.clock.now_ms())
        hands = hq.drop(doc.hands, target)
        self.push(live, [req.user_id], {"type": "removed", "by": device.user_id})
        writes = [
            w
            for room_id in (live.facts.call_room_id, *doc.breakout_chats.values())
            if room_id in self.rooms.rooms
            and (w := self.rooms.put_member(room_id, CALLS_OWNER, req.user_id, False, "removed"))
        ]
        await self.commit(live, replace(doc, roster=roster, hands=hands), writes=writes)
        return {}

    async def allow_back(self, device: Device, req: f.CallAllowBack) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = await self.target(live, req.user_id)
        doc = live.doc
        await self.commit(live, replace(doc, roster=pt.allow_back(doc.roster, me, target)))
        return {}

    async def admit(self, device: Device, req: f.CallAdmit) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = None if req.user_id is None else await self.target(live, req.user_id)
        doc = live.doc
        now = self.clock.now_ms()
        if target is None:
            roster = pt.admit_all(doc.roster, me, now)
        else:
            roster = pt.admit(doc.roster, me, target, now)
        await self.commit(live, replace(doc, roster=roster))
        return {}

    async def refuse(self, device: Device, req: f.CallRefuse) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = await self.target(live, req.user_id)
        doc = live.doc
        roster = pt.refuse(doc.roster, me, target)
        self.push(live, [req.user_id], {"type": "refused", "by": device.user_id})
        await self.commit(live, replace(doc, roster=roster))
        return {}

    async def waiting_room(self, device: Device, req: f.CallWaitingRoom) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        doc = live.doc
        roster = pt.set_waiting_room(doc.roster, me, req.on, self.clock.now_ms())
        await self.commit(live, replace(doc, roster=roster))
        return {}

    async def set_admin(self, device: Device, req: f.CallAdmin) -> dict[str, Any]:
        live, me = await self.get_call(req.call_id, device.user_id)
        target = await self.target(live, req.user_id)
        doc = live.doc
        if req.admin:
            roster = pt.make_admin(doc.roster, me, target)
        else:
            roster = pm.demote(doc.table, doc.roster, me, target)
        await self.commit(live, replace(doc, roster=roster))
        return {}

    async def end(self, device: Device, req: f.CallEnd) -> dict[str, Any]:
        """The red button: an admin ends the call for everyone (R23)."""
        live, me = await self.get_call(req.call_id, device.user_id)
        pt.require_admin(live.doc.roster, me, "end the call for everyone")
        await self.finish(live, lc.CallEvent.END)
        return {}

    # -- the lifecycle -----------------------------------------------------------------------

    def finish(self, live: LiveCall, event: lc.CallEvent) -> Awaitable[None]:
        """End (or expire, or cancel) a call: everybody out, breakout rooms closed, the call
        out of memory; a lesson call that ran reports its attendance to the journal."""
        now = self.clock.now_ms()
        doc = live.doc
        call = lc.apply(doc.call, event, now)
        roster = pt.end_all(doc.roster, now)
        plan = doc.plan
        if plan is not None and plan.phase is not bo.Phase.CLOSED:
            plan = bo.close_all(
                plan, doc.roster, doc.roster.owner_id, now, self.settings, immediate=True
            )
        new = replace(
            doc, call=call, roster=roster, hands=hq.HandQueue(), plan=plan, recording=None
        )
        self.live.pop(live.call_id, None)
        for hook in self.on_finish:
            hook(live, doc)
        done: list[Awaitable[Any]] = [self.commit(live, new, final=True)]
        _add(done, self.announce(live))
        if live.is_lesson and call.started_at_ms is not None and event is not lc.CallEvent.CANCEL:
            self._report(live)
        self.spawn(_quietly(self.media.close(live.call_id)))
        self.scheduler.wake()
        return _all(done)

    async def _tick(self, now: int) -> int | None:
        plan = lc.due_all([live.doc.call for live in self.live.values()], now)
        pending: list[Awaitable[Any]] = []
        for call_id, event in plan.actions:
            live = self.live.get(call_id)
            if live is None:
                continue
            if event in (lc.CallEvent.END, lc.CallEvent.EXPIRE):
                pending.append(self.finish(live, event))
                continue
            call = lc.apply(live.doc.call, event, now)
            pending.append(self.commit(live, replace(live.doc, call=call)))
            _add(pending, self.announce(live))
        for live in list(self.live.values()):
            if live.doc.plan is not None:
                for timer in bo.due(live.doc.plan, now):
                    pending.append(self.breakout_timer(live, timer, now))
        for p in pending:
            try:
                await p
            except Exception:
                log.exception("a scheduled change failed")
        return self._next_wakeup()

    def breakout_timer(self, live: LiveCall, event: bo.BreakoutEvent, now: int) -> Awaitable[None]:
        """Breakout timers (R21): the warning, then everyone back to the main room."""
        doc = live.doc
        assert doc.plan is not None
        plan = bo.advance(doc.plan, event, now)
        if event is bo.BreakoutEvent.WARN:
            self.push(
                live,
                self._audience(live, doc),
                {"type": "breakout_warning", "ends_at_ms": plan.ends_at_ms},
            )
        return self.commit(live, replace(doc, plan=plan))

    def _next_wakeup(self) -> int | None:
        times: list[int] = []
        for live in self.live.values():
            at = lc.next_wakeup(live.doc.call)
            if at is not None:
                times.append(at)
            plan = live.doc.plan
            if plan is not None and plan.phase in bo.OPEN_PHASES and plan.ends_at_ms is not None:
                times.append(plan.ends_at_ms)
                if plan.phase is bo.Phase.RUNNING and plan.warning_at_ms is not None:
                    times.append(plan.warning_at_ms)
        return min(times) if times else None

    # -- attendance (B5) ---------------------------------------------------------------------

    def _report(self, live: LiveCall) -> None:
        journal_id = live.facts.journal_id
        if journal_id is None:
            return
        payload = {
            "type": "attendance",
            **report.attendance(live.facts, live.name, live.doc, self.settings),
        }
        call_id = live.call_id

        async def send() -> None:
            journal = await self.db.get_journal(journal_id)
            if journal is None:
                return

            async def sent() -> None:
                await self.store.set_reported(call_id, self.clock.now_ms())

            self.webhooks.send(journal, payload, sent)

        self.spawn(_quietly(send()))


def _add(writes: list[Awaitable[Any]], write: Awaitable[Any] | None) -> None:
    if write is not None:
        writes.append(write)


async def _done() -> None:
    return None


async def _all(work: list[Awaitable[Any]]) -> None:
    await asyncio.gather(*work)


async def _quietly(work: Awaitable[Any]) -> None:
    try:
        await work
    except Exception:
        log.exception("a call's background work failed")


def _invitee_key(inv: Invitee) -> tuple[bool, int, str]:
    return inv.blocked, CATEGORY_RANK[inv.category], inv.person_id


def _rank(doc: CallDocument) -> Callable[[tuple[str, str]], tuple[bool, int, str]]:
    """Sort key over (person, user): the best person of a user comes last, so it wins when
    the pairs are folded into a user -> person map."""

    def key(pair: tuple[str, str]) -> tuple[bool, int, str]:
        inv = doc.roster.invitees.get(pair[0])
        if inv is None:
            return (False, -1, pair[0])
        blocked, rank, person = _invitee_key(inv)
        return (not blocked, -rank, person)

    return key
