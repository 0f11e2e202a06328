"""Polls (R14): a poll message, votes, closing, and the results.

- A poll is a ``message`` whose content carries ``poll``: ``{"question", "options",
  "multiple", "anonymous"}`` (and the question as ``body``, for clients that don't know
  polls). Only the ``poll`` op makes one; it counts as unread, can be replied to, reacted
  to, pinned and redacted like any message, not edited or forwarded.
- A **vote** is not an event: it is a row per chosen option (store.messages), replaced by
  the voter's next vote, written in the group commit. The commit checks that the poll is
  still open and not redacted, so a vote decided before a close is counted and one after it
  is refused (``poll_closed``). A single-choice poll takes exactly one option.
- After each vote the room's joined members get one ``poll`` push with the new tally (one
  frame, encoded once for everyone). It names the voter and their choices only when the
  poll is not anonymous. The push is not stored: after a reconnect, ``poll_results`` reads
  the tally. Of an **anonymous** poll nobody, its author and the admins included, is ever
  told who chose what: only counts leave the server, and each voter their own choices.
- **Closing** (``close_poll``, by the author or someone with the ``redact`` level) is a
  ``poll_close`` event in the log; the final tally follows as a ``poll`` push with
  ``closed: true``. Redacting the poll deletes its votes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol import frames as f
from protocol.codec import MSGPACK
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from sferumd import model
from sferumd.hub import Frame, Hub
from sferumd.model import Device, Event
from sferumd.services import power
from sferumd.services.messages import POLL_KEY, MessageService, can_post, require_message
from sferumd.store.messages import RELATES_KEY, MessageStore, Poll

# The power-levels key that gates making polls (besides the level of ``message``).
POLL_LEVEL = "poll"


@dataclass(frozen=True, slots=True)
class Tally:
    counts: list[int]  # per option
    voters: list[list[str]]  # per option, sorted; never sent for an anonymous poll
    total_voters: int

    @classmethod
    def of(cls, options: int, votes: list[tuple[int, str]]) -> Tally:
        voters: list[list[str]] = [[] for _ in range(options)]
        for choice, user in votes:
            if 0 <= choice < options:
                voters[choice].append(user)
        return cls(
            [len(v) for v in voters],
            [sorted(v) for v in voters],
            len({user for _, user in votes}),
        )


class PollService:
    def __init__(self, messages: MessageService, store: MessageStore, hub: Hub, limits: Limits):
        self.messages = messages
        self.rooms = messages.rooms
        self.store = store
        self.hub = hub
        self.limits = limits
        # Polls whose close this process has decided on: what the store says may have been
        # read before it.
        self._closing: set[str] = set()

    # -- lookups ---------------------------------------------------------------------------

    def _poll(self, target: Event | None, poll: Poll | None, event_id: str, what: str) -> Event:
        message = require_message(target, event_id, self.rooms, what)
        if POLL_KEY not in message.content or poll is None:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"event {event_id} is not a poll")
        return message

    def _closed(self, poll: Poll, message: Event) -> bool:
        return poll.closed_pos is not None or message.event_id in self._closing

    async def _lookup(self, room_id: str, event_id: str) -> tuple[Event | None, Poll | None]:
        target = await self.messages.find(room_id, event_id)
        return target, (await self.store.poll(target.pos) if target is not None else None)

    def _results(
        self, message: Event, poll: Poll, tally: Tally, mine: list[int], closed: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "room_id": message.room_id,
            "event_id": message.event_id,
            "multiple": poll.multiple,
            "anonymous": poll.anonymous,
            "closed": closed,
            "counts": tally.counts,
            "total_voters": tally.total_voters,
            "mine": mine,
        }
        if not poll.anonymous:
            out["voters"] = tally.voters
        return out

    def _push(
        self,
        message: Event,
        poll: Poll,
        tally: Tally,
        closed: bool,
        voter: tuple[str, list[int]] | None = None,
    ) -> None:
        update: dict[str, Any] = {
            "room_id": message.room_id,
            "event_id": message.event_id,
            "counts": tally.counts,
            "total_voters": tally.total_voters,
            "closed": closed,
        }
        if voter is not None and not poll.anonymous:
            update["user_id"], update["choices"] = voter
        room = self.rooms.rooms.get(message.room_id)
        if room is not None:
            self.hub.fan_out(Frame({f.PUSH_POLL: update}), room.joined)

    # -- ops -------------------------------------------------------------------------------

    async def create(self, device: Device, req: f.CreatePoll) -> Event:
        me = device.user_id

        def make() -> Event:
            room = self.rooms.joined_room(req.room_id, me)
            can_post(room, me, model.MESSAGE, "sending")
            power.require(
                room.power, me, room.power.for_event(POLL_LEVEL, False), "creating a poll"
            )
            poll = {
                "question": req.question,
                "options": req.options,
                "multiple": req.multiple,
                "anonymous": req.anonymous,
            }
            content = {"body": req.question, POLL_KEY: poll}
            if len(MSGPACK.encode(content)) > self.limits.max_content_bytes:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"the poll is larger than {self.limits.max_content_bytes} bytes",
                )
            return self.rooms.make_event(req.room_id, me, model.MESSAGE, content)

        return await self.rooms.commit_once(device, req.txn, make, lookup=True)

    async def vote(self, device: Device, req: f.Vote) -> dict[str, Any]:
        me = device.user_id
        target, poll = await self._lookup(req.room_id, req.event_id)
        self.rooms.joined_room(req.room_id, me)
        message = self._poll(target, poll, req.event_id, "voted on")
        assert poll is not None
        if self._closed(poll, message):
            raise ProtocolError(ErrorCode.POLL_CLOSED, f"poll {req.event_id} is closed")
        if max(req.choices) >= poll.options:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"choices: poll {req.event_id} has options 0..{poll.options - 1}",
            )
        if not poll.multiple and len(req.choices) != 1:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"poll {req.event_id} takes exactly one choice"
            )
        outcome = await self.store.vote(poll.pos, me, req.choices)
        if outcome == "closed":
            raise ProtocolError(ErrorCode.POLL_CLOSED, f"poll {req.event_id} is closed")
        if isinstance(outcome, str):
            raise ProtocolError(ErrorCode.REDACTED, f"event {req.event_id} is redacted")
        tally = Tally.of(poll.options, outcome)
        self._push(message, poll, tally, False, (me, req.choices))
        return self._results(message, poll, tally, req.choices, False)

    async def close(self, device: Device, req: f.ClosePoll) -> Event:
        me = device.user_id
        target, poll = await self._lookup(req.room_id, req.event_id)
        made: list[Event] = []

        def make() -> Event:
            room = self.rooms.joined_room(req.room_id, me)
            message = self._poll(target, poll, req.event_id, "closed")
            assert poll is not None
            if self._closed(poll, message):
                raise ProtocolError(ErrorCode.POLL_CLOSED, f"poll {req.event_id} is closed already")
            if message.sender != me:
                power.require(
                    room.power, me, room.power.action("redact"), "closing someone else's poll"
                )
            self._closing.add(message.event_id)  # votes decided from now on are refused
            event = self.rooms.make_event(
                req.room_id, me, model.POLL_CLOSE, {RELATES_KEY: message.event_id}
            )
            made.append(event)
            return event

        try:
            event = await self.rooms.commit_once(device, req.txn, make, lookup=True)
        except BaseException:
            if made:
                self._closing.discard(req.event_id)  # the close was not stored
            raise
        if made and event is made[0] and target is not None and poll is not None:
            # Every vote decided before the close committed before it: this tally is final.
            tally = Tally.of(poll.options, await self.store.votes(poll.pos))
            self._push(target, poll, tally, True)
        return event

    async def results(self, device: Device, req: f.PollResults) -> dict[str, Any]:
        me = device.user_id
        target, _ = await self.messages.readable(me, req.room_id, req.event_id)
        poll = await self.store.poll(target.pos)
        message = self._poll(target, poll, req.event_id, "voted on")
        assert poll is not None
        votes = await self.store.votes(poll.pos)
        mine = await self.store.choices(poll.pos, me)
        closed = self._closed(poll, message)
        return self._results(message, poll, Tally.of(poll.options, votes), mine, closed)
