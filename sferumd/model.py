"""The domain's values: events and what the store keeps about users and devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event types with a state key; the room's current state is the latest of each (type, key).
CREATE = "create"
MEMBER = "member"
NAME = "name"
TOPIC = "topic"
JOIN_RULE = "join_rule"
POWER_LEVELS = "power_levels"
MESSAGE = "message"
REDACTION = "redaction"


@dataclass(slots=True)
class Event:
    event_id: str
    room_id: str
    sender: str
    type: str
    content: dict[str, Any]
    ts: int  # server time, milliseconds since the epoch
    pos: int  # stream position: one increasing sequence across all rooms
    state_key: str | None = None
    redacts: str | None = None
    redacted_by: str | None = None

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "event_id": self.event_id,
            "room_id": self.room_id,
            "sender": self.sender,
            "type": self.type,
            "content": self.content,
            "ts": self.ts,
            "pos": self.pos,
        }
        if self.state_key is not None:
            wire["state_key"] = self.state_key
        if self.redacts is not None:
            wire["redacts"] = self.redacts
        if self.redacted_by is not None:
            wire["redacted_by"] = self.redacted_by
        return wire


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    phone: str
    first_name: str
    last_name: str


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class NewDevice:
    user_id: str
    device_id: str
    token: str
    created_user: bool


@dataclass(slots=True)
class Membership:
    membership: str  # invite, join, leave, ban
    pos: int  # position of the member event that set it


@dataclass(slots=True)
class RoomSummary:
    room_id: str
    membership: str
    read_pos: int
    unread: int
    extra: dict[str, Any] = field(default_factory=dict)
