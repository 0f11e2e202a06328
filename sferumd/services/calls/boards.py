"""Whiteboards of a running call, wired (R19): ``whiteboard_draw``, ``whiteboard_clear`` and
``whiteboard`` (the replay a late joiner draws from).

The rules are ``whiteboard``'s (validation, permission, the rate limit, the op limit); this
module keeps each board in memory once used, persists every accepted op before answering,
and pushes it to the people in that room.

Rules of the wiring:

- Every room has a board: the main room's and each breakout room's
  (``breakout.scoped_id(call_id, room)``). ``board`` in an op names the room (``main`` or a
  breakout room id); without it, the room you are in now. Only admins use the board of a
  room they are not in (``forbidden``); a room the call doesn't have is ``not_found``; you
  must be in the call (``not_joined``).
- An accepted op is written (``store.calls``, one row per op; a clear drops the rows before
  it) and then pushed, as ``{"type": "whiteboard", "board", "item": STORED}``, to everyone
  placed in that room. Its answer is ``{"seq"}``.
- A board is read from the store the first time it is used, so its ops are replayed to late
  joiners after a restart too. Stored ops were accepted once: they are read back without
  the limits that may have changed since.
"""

from __future__ import annotations

import asyncio
from typing import Any

from protocol import frames as f
from sferumd.model import Device
from sferumd.services.calls import breakout as bo
from sferumd.services.calls import views
from sferumd.services.calls import whiteboard as wb
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.participants import is_admin
from sferumd.services.calls.service import CallService, LiveCall
from sferumd.services.calls.settings import CallSettings

# Reading stored ops back: they passed the limits of their day; today's may be stricter.
_STORED = CallSettings(
    whiteboard_max_points=10**9, whiteboard_max_text_chars=10**9, whiteboard_max_width=1.0
)


class Whiteboards:
    def __init__(self, calls: CallService):
        self.calls = calls

    def _room(self, live: LiveCall, me: str, board: str | None) -> str:
        where = views.placement(live.doc).get(me)
        if where is None:
            raise CallError(CallCode.NOT_JOINED, "join the call to use its whiteboards")
        if board is None or board == where:
            return where
        if not is_admin(live.doc.roster, me):
            raise CallError(CallCode.FORBIDDEN, "you use the whiteboard of the room you are in")
        plan = live.doc.plan
        if board != bo.MAIN_ROOM and (plan is None or board not in {r.room_id for r in plan.rooms}):
            raise CallError(CallCode.NOT_FOUND, f"no room {board} in this call")
        return board

    async def _load(self, live: LiveCall, board_id: str) -> None:
        if board_id in live.boards:
            return
        loading = live.board_loads.get(board_id)
        if loading is not None:
            await loading
            return
        future: asyncio.Future[wb.Board] = asyncio.get_running_loop().create_future()
        live.board_loads[board_id] = future
        try:
            rows = await self.calls.store.board_ops(board_id)
            stored = [
                wb.StoredOp(r.seq, r.author, r.at_ms, wb.parse_op(r.op, _STORED)) for r in rows
            ]
            board = live.boards.setdefault(board_id, wb.restore(board_id, stored))
            future.set_result(board)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            live.board_loads.pop(board_id, None)

    def _wire(self, live: LiveCall, stored: wb.StoredOp) -> dict[str, Any]:
        return {
            "seq": stored.seq,
            "author": live.user_of(stored.author),
            "at_ms": stored.at_ms,
            "item": wb.op_to_wire(stored.op),
        }

    async def _draw(self, device: Device, call_id: str, board: str | None, raw: Any) -> int:
        calls = self.calls
        live, me = await calls.get_call(call_id, device.user_id)
        room = self._room(live, me, board)
        board_id = bo.scoped_id(live.call_id, room)
        await self._load(live, board_id)
        # Decided and applied from here on without a wait.
        doc, now = live.doc, calls.clock.now_ms()
        room = self._room(live, me, board)
        op = wb.parse_op(raw, calls.settings)
        author = wb.author_of(doc.table, doc.roster, me)
        current = live.boards[board_id]
        new, bucket, stored = wb.draw(
            current, live.buckets.get(me), op, author, now, calls.settings
        )
        live.boards[board_id], live.buckets[me] = new, bucket
        write = calls.store.add_op(
            board_id,
            stored.seq,
            stored.author,
            stored.at_ms,
            wb.op_to_wire(stored.op),
            isinstance(stored.op, wb.Clear),
        )
        there = [p for p, r in views.placement(doc).items() if r == room]
        users = [u for p in there if (u := live.user_of(p)) is not None]
        frame = calls.frame(
            live, {"type": "whiteboard", "board": room, "item": self._wire(live, stored)}
        )
        await write
        calls.hub.fan_out(frame, users)
        return stored.seq

    async def draw(self, device: Device, req: f.DrawOnBoard) -> dict[str, Any]:
        return {"seq": await self._draw(device, req.call_id, req.board, req.item)}

    async def clear(self, device: Device, req: f.ClearBoard) -> dict[str, Any]:
        return {"seq": await self._draw(device, req.call_id, req.board, {"type": "clear"})}

    async def replay(self, device: Device, req: f.ReplayBoard) -> dict[str, Any]:
        live, me = await self.calls.get_call(req.call_id, device.user_id)
        room = self._room(live, me, req.board)
        board_id = bo.scoped_id(live.call_id, room)
        await self._load(live, board_id)
        board = live.boards[board_id]
        return {
            "board": room,
            "items": [self._wire(live, s) for s in wb.replay(board)],
            "next_seq": board.next_seq,
            "cleared_seq": board.cleared_seq,
        }
