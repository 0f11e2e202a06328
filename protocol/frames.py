"""Typed client requests, one dataclass per op, and the server's push frames.

A request on the wire is a map ``{"id": ID, "op": NAME, ...fields}``; ``validate.parse``
turns it into one of the dataclasses below. The ``OPS`` table is the single list of ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RequestId = int | str
Content = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    since: int | None = None  # last stream position the client has; None: from the start
    limit: int | None = None  # per-room limit of catch-up events before a gap marker (0: none)


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class CreateRoom:
    name: str | None = None
    topic: str | None = None
    join_rule: str = "invite"
    invite: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rooms:
    pass


@dataclass(frozen=True, slots=True)
class Members:
    room_id: str


@dataclass(frozen=True, slots=True)
class Invite:
    room_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Join:
    room_id: str


@dataclass(frozen=True, slots=True)
class Leave:
    room_id: str


@dataclass(frozen=True, slots=True)
class Kick:
    room_id: str
    user_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    room_id: str
    user_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unban:
    room_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Send:
    room_id: str
    content: Content
    type: str = "message"
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class SetState:
    room_id: str
    type: str
    content: Content
    state_key: str = ""
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class Redact:
    room_id: str
    event_id: str
    reason: str | None = None
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    room_id: str
    before: int | None = None  # stream position; None: from the newest event
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Typing:
    room_id: str
    typing: bool
    timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class Read:
    room_id: str
    pos: int


@dataclass(frozen=True, slots=True)
class Presence:
    user_ids: list[str]


@dataclass(frozen=True, slots=True)
class Profiles:
    user_ids: list[str]


Request = (
    Auth
    | Ping
    | CreateRoom
    | Rooms
    | Members
    | Invite
    | Join
    | Leave
    | Kick
    | Ban
    | Unban
    | Send
    | SetState
    | Redact
    | History
    | Typing
    | Read
    | Presence
    | Profiles
)

OPS: dict[str, type[Request]] = {
    "auth": Auth,
    "ping": Ping,
    "create_room": CreateRoom,
    "rooms": Rooms,
    "members": Members,
    "invite": Invite,
    "join": Join,
    "leave": Leave,
    "kick": Kick,
    "ban": Ban,
    "unban": Unban,
    "send": Send,
    "state": SetState,
    "redact": Redact,
    "history": History,
    "typing": Typing,
    "read": Read,
    "presence": Presence,
    "profiles": Profiles,
}

# Ops a connection may send before it has authenticated.
UNAUTHENTICATED_OPS = frozenset({"auth", "ping"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated request with its client-chosen id."""

    id: RequestId
    op: str
    request: Request


# Server push frames: each is a map with exactly one of these keys.
PUSH_EVENT = "ev"  # a room event with its stream position
PUSH_GAP = "gap"  # catch-up skipped older events of a room: {"room_id", "before"}
PUSH_SYNCED = "synced"  # catch-up done, live events follow: {"pos"}
PUSH_TYPING = "typing"  # {"room_id", "user_ids"}
PUSH_RECEIPT = "receipt"  # {"room_id", "user_id", "pos"}
PUSH_PRESENCE = "presence"  # {"user_id", "state"}


def ok(request_id: RequestId, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": result}
