"""Mutes: who may not send in a room, until when. Pure functions over the room's state.

A room's ``mutes`` state event holds ``{user_id: until_ms or null}`` (null: until unmuted).
Nothing runs when a mute ends: ``send`` compares ``until`` with the clock (``check``), so an
expired entry is simply ignored and dropped the next time an admin writes the map.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from sferumd.services.chat_presets import MUTES
from sferumd.services.roomstate import RoomState


def active(content: dict[str, Any], now: int) -> dict[str, int | None]:
    """The mutes still running at ``now`` (ms)."""
    return {
        user: until
        for user, until in content.items()
        if until is None or (isinstance(until, int) and until > now)
    }


def muted(room: RoomState, user_id: str, now: int) -> tuple[bool, int | None]:
    """Whether the user is muted at ``now`` (ms), and until when (None: until unmuted)."""
    mutes = room.content(MUTES)
    if user_id not in mutes:  # the hot path of every send: one lookup
        return False, None
    entry = active({user_id: mutes[user_id]}, now)
    return (True, entry[user_id]) if entry else (False, None)


def check(room: RoomState, user_id: str, now: int) -> None:
    """Refuses a send by a muted member with ``muted``."""
    is_muted, until = muted(room, user_id, now)
    if not is_muted:
        return
    if until is None:
        when = "until an admin unmutes you"
    else:
        when = "until " + dt.datetime.fromtimestamp(until / 1000, dt.UTC).isoformat("T", "seconds")
    raise ProtocolError(ErrorCode.MUTED, f"you are muted in this room {when}")
