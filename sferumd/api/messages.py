"""The websocket ops of rich messages (services.messages, services.polls), hooked into the
daemon's op table. ``send`` is taken over (it adds replies and mentions to the rooms' send)
and ``rooms`` wrapped (it adds each room's unread mentions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from protocol import frames as f
from sferumd.api.app import DAEMON
from sferumd.model import Device, Event
from sferumd.services.messages import MessageService
from sferumd.services.polls import PollService
from sferumd.store.messages import MessageStore

MESSAGES = web.AppKey("messages", MessageService)
POLLS = web.AppKey("polls", PollService)

Handler = Callable[[Device, Any], Awaitable[Any]]


def _event(method: Callable[[Device, Any], Awaitable[Event]]) -> Handler:
    async def handler(d: Device, r: Any) -> dict[str, Any]:
        return {"event": (await method(d, r)).to_wire()}

    return handler


def routes(app: web.Application) -> None:
    daemon = app[DAEMON]
    store = MessageStore(daemon.store)
    messages = MessageService(daemon.rooms, store, daemon.hub, daemon.settings.limits)
    polls = PollService(messages, store, daemon.hub, daemon.settings.limits)
    app[MESSAGES], app[POLLS] = messages, polls
    listed = daemon.ops["rooms"]

    async def rooms(d: Device, r: f.Rooms) -> dict[str, Any]:
        result = await listed(d, r)
        await messages.add_mention_counts(d.user_id, result["rooms"])
        return result  # type: ignore[no-any-return]

    daemon.ops.update(
        {
            "send": _event(messages.send),
            "rooms": rooms,
            "edit": _event(messages.edit),
            "edits": messages.edits,
            "react": _event(messages.react),
            "reactions": messages.reactions,
            "pin": _event(messages.pin),
            "unpin": _event(messages.unpin),
            "forward": _event(messages.forward),
            "poll": _event(polls.create),
            "vote": polls.vote,
            "close_poll": _event(polls.close),
            "poll_results": polls.results,
        }
    )
