"""The websocket ops of calls (PROTOCOL.md, "Calls"): ``call_*``, ``breakout_*`` and
``whiteboard*``. They join the daemon's op table when api.calls registers its routes; the
frames and their schemas are in protocol/, the decisions in services.calls. A refusal of the
call rules (``CallError``) becomes the websocket error of the same code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sferumd.model import Device
from sferumd.services.calls.boards import Whiteboards
from sferumd.services.calls.breakouts import BreakoutRooms
from sferumd.services.calls.errors import CallError
from sferumd.services.calls.listing import CallListing
from sferumd.services.calls.service import CallService, wire_error

Handler = Callable[[Device, Any], Awaitable[Any]]


def _op(method: Callable[[Device, Any], Awaitable[dict[str, Any]]]) -> Handler:
    async def handler(d: Device, r: Any) -> dict[str, Any]:
        try:
            return await method(d, r)
        except CallError as err:
            raise wire_error(err) from None

    return handler


def build(calls: CallService, rooms: BreakoutRooms, boards: Whiteboards) -> dict[str, Handler]:
    table: dict[str, Callable[[Device, Any], Awaitable[dict[str, Any]]]] = {
        "call_start": calls.start_in_chat,
        "call_join": calls.join,
        "call_leave": calls.leave,
        "call_get": calls.state,
        "call_media": calls.set_media,
        "call_hand": calls.hand,
        "call_lower_hands": calls.lower_hands,
        "call_permission": calls.permission,
        "call_mute": calls.mute,
        "call_remove": calls.remove,
        "call_allow_back": calls.allow_back,
        "call_admit": calls.admit,
        "call_refuse": calls.refuse,
        "call_waiting_room": calls.waiting_room,
        "call_admin": calls.set_admin,
        "call_end": calls.end,
        "call_publish": calls.publish,
        "call_media_answer": calls.media_answer,
        "breakout_plan": rooms.plan,
        "breakout_start": rooms.start,
        "breakout_move": rooms.move,
        "breakout_choose": rooms.choose,
        "breakout_visit": rooms.visit,
        "breakout_broadcast": rooms.broadcast,
        "breakout_extend": rooms.extend,
        "breakout_close": rooms.close,
        "whiteboard_draw": boards.draw,
        "whiteboard_clear": boards.clear,
        "whiteboard": boards.replay,
        "calls": CallListing(calls).list_calls,
    }
    return {name: _op(method) for name, method in table.items()}
