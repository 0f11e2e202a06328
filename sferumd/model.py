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
# What a managed room is (a journal's class, parents, colleagues or subject chat); set only
# by the server, never by a client.
CHAT = "chat"
# Events that relate to a message, made by their own ops (services.messages, .polls); their
# content names it in "replaces" (an edit) or "relates_to".
EDIT = "edit"
REACTION = "reaction"
POLL_CLOSE = "poll_close"


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
    patronymic: str | None = None
    birth_date: str | None = None  # ISO date
    gender: str | None = None  # male or female

    @property
    def needs_profile(self) -> bool:
        return not (self.first_name and self.last_name)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the owner may set; validated by services.auth before it reaches the store."""

    first_name: str
    last_name: str
    patronymic: str | None
    birth_date: str | None
    gender: str | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    name: str | None
    created_ts: int
    last_seen_ts: int | None


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


@dataclass(frozen=True, slots=True)
class CodeWindow:
    """A phone's and an address's sign-in code sends within the last hour."""

    last_sent_ts: int | None  # the phone's current code, if any
    phone_sends: list[int]  # send times, ascending
    address_sends: list[int]


@dataclass(frozen=True, slots=True)
class StoredCode:
    code_hash: str
    sent_ts: int
    expires_ts: int
    tries: int


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


@dataclass(frozen=True, slots=True)
class Journal:
    """A school journal registered with ``sferumd admin add-journal``."""

    journal_id: str
    name: str
    secret: str  # shared HMAC-SHA256 key; kept as is because both sides must sign with it
    webhook_url: str | None


@dataclass(frozen=True, slots=True)
class LinkSession:
    """A journal's one-time offer to link one of its accounts; role and school are the
    journal's word, never a client's."""

    session_id: str
    journal_id: str
    account_id: str
    role: str  # teacher, student or parent
    school_id: str
    school_name: str | None
    display_name: str | None
    created_ts: int
    expires_ts: int
    used_ts: int | None = None
    used_by: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """A journal account bound to a profile."""

    journal_id: str
    account_id: str
    user_id: str
    role: str
    school_id: str
    school_name: str | None
    linked_ts: int


@dataclass(frozen=True, slots=True)
class JournalChat:
    """A chat the journal adapter manages: a class's class, parents or colleagues chat, or a
    subject chat the journal created. ``added``/``removed`` are the journal's manual
    membership edits (journal account ids) that reconciliation keeps."""

    journal_id: str
    chat_key: str
    kind: str  # class, parents, colleagues or subject
    class_id: str
    room_id: str | None = None
    subject_id: str | None = None
    group_id: str | None = None
    teacher_id: str | None = None
    name: str | None = None  # the journal's choice, for a subject chat
    applied_name: str | None = None  # what reconciliation last named the room
    added: tuple[str, ...] = ()  # account ids
    removed: tuple[str, ...] = ()  # account ids
    created_ts: int = 0
    deleted_ts: int | None = None  # the journal deleted this subject chat
    archived_ts: int | None = None  # nobody is left; the room stays as history
