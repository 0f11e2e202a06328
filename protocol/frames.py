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
    closed: bool = False  # the closed-chat preset of power levels (services.chat_presets)


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


# -- chats: the closed-chat setting, knocks and moderation (services.invites, .moderation)


@dataclass(frozen=True, slots=True)
class SetClosed:
    room_id: str
    closed: bool


@dataclass(frozen=True, slots=True)
class Knocks:
    room_id: str


@dataclass(frozen=True, slots=True)
class AcceptKnock:
    room_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class RefuseKnock:
    room_id: str
    user_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Mute:
    room_id: str
    user_id: str
    duration_s: int | None = None  # None: until unmuted


@dataclass(frozen=True, slots=True)
class Unmute:
    room_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Report:
    room_id: str
    event_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Reports:
    room_id: str


# -- rich messages: edits, reactions, pins, forwards, polls (services.messages, .polls)


@dataclass(frozen=True, slots=True)
class Edit:
    room_id: str
    event_id: str
    body: str
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class Edits:
    room_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class React:
    room_id: str
    event_id: str
    key: str
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class Reactions:
    room_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class Pin:
    room_id: str
    event_id: str
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class Unpin:
    room_id: str
    event_id: str
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    from_room: str
    event_id: str
    to_room: str
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class CreatePoll:
    room_id: str
    question: str
    options: list[str]
    multiple: bool = False
    anonymous: bool = False
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class Vote:
    room_id: str
    event_id: str
    choices: list[int]


@dataclass(frozen=True, slots=True)
class ClosePoll:
    room_id: str
    event_id: str
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class PollResults:
    room_id: str
    event_id: str


# -- message search (services.search)


@dataclass(frozen=True, slots=True)
class Search:
    query: str  # the person's words, never a query language
    room_id: str | None = None  # None: every room the user reads
    before: int | None = None  # stream position; None: from the newest event
    limit: int = 20


# -- calls: online lessons and calls in chats (services.calls; PROTOCOL.md "Calls")


@dataclass(frozen=True, slots=True)
class CallStart:
    room_id: str  # a chat you are joined to; answers its running call if it has one


@dataclass(frozen=True, slots=True)
class CallJoin:
    call_id: str
    offer: str | None = None  # an SDP offer for the media plane (the send transport)
    tracks: dict[str, str] | None = None  # mid -> audio, video or screen (PROTOCOL.md "Media")


@dataclass(frozen=True, slots=True)
class CallPublish:
    call_id: str
    offer: str  # a new offer of the send transport (a screen share or camera added, stopped)
    tracks: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class CallMediaAnswer:
    call_id: str
    version: int  # the media_offer push answered
    answer: str  # SDP


@dataclass(frozen=True, slots=True)
class CallLeave:
    call_id: str


@dataclass(frozen=True, slots=True)
class CallGet:
    call_id: str


@dataclass(frozen=True, slots=True)
class CallMedia:
    call_id: str
    kind: str  # audio, video or screen
    on: bool


@dataclass(frozen=True, slots=True)
class CallHand:
    call_id: str
    raised: bool
    user_id: str | None = None  # lowering someone else's hand (admins); None: your own


@dataclass(frozen=True, slots=True)
class CallLowerHands:
    call_id: str


@dataclass(frozen=True, slots=True)
class CallPermission:
    call_id: str
    capability: str  # microphone, camera, screen, chat or whiteboard
    allowed: bool | None = None  # None: forget the decision (the next rule down applies)
    user_id: str | None = None  # None: everyone who is not an admin
    reset_personal: bool = False  # with everyone: also drop each person's own decision


@dataclass(frozen=True, slots=True)
class CallMute:
    call_id: str
    user_id: str | None = None  # None: everyone whose microphone is on
    force: bool = False  # False: ask; True: revoke the microphone


@dataclass(frozen=True, slots=True)
class CallRemove:
    call_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class CallAllowBack:
    call_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class CallAdmit:
    call_id: str
    user_id: str | None = None  # None: everyone waiting


@dataclass(frozen=True, slots=True)
class CallRefuse:
    call_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class CallWaitingRoom:
    call_id: str
    on: bool


@dataclass(frozen=True, slots=True)
class CallAdmin:
    call_id: str
    user_id: str
    admin: bool


@dataclass(frozen=True, slots=True)
class CallEnd:
    call_id: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    on: bool  # start (a no-op while it runs) or stop the recording (R20)


@dataclass(frozen=True, slots=True)
class PlanBreakout:
    call_id: str
    mode: str  # hand, random, groups or self
    rooms: list[list[str]] | None = None  # hand: each room's people
    room_count: int | None = None  # random, self
    seed: int | None = None  # random: the same seed, the same split
    group_ids: list[str] | None = None  # groups: the journal's sub-groups, one room each
    names: list[str] | None = None
    duration_s: int | None = None  # None: no timer
    capacity: int | None = None  # self: people per room


@dataclass(frozen=True, slots=True)
class StartBreakout:
    call_id: str


@dataclass(frozen=True, slots=True)
class MoveToRoom:
    call_id: str
    user_id: str
    room: str  # a breakout room id, or main


@dataclass(frozen=True, slots=True)
class ChooseRoom:
    call_id: str
    room: str


@dataclass(frozen=True, slots=True)
class VisitRoom:
    call_id: str
    room: str


@dataclass(frozen=True, slots=True)
class BroadcastToRooms:
    call_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ExtendBreakout:
    call_id: str
    duration_s: int  # from now


@dataclass(frozen=True, slots=True)
class CloseBreakout:
    call_id: str
    immediate: bool = False  # False: after the warning countdown


@dataclass(frozen=True, slots=True)
class DrawOnBoard:
    call_id: str
    item: Content  # a stroke, shape, text, erase or clear (PROTOCOL.md "Whiteboard")
    board: str | None = None  # main or a breakout room id; None: the room you are in


@dataclass(frozen=True, slots=True)
class ClearBoard:
    call_id: str
    board: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayBoard:
    call_id: str
    board: str | None = None


@dataclass(frozen=True, slots=True)
class ListCalls:
    from_ms: int | None = None  # only calls starting then or later
    limit: int = 50  # at most this many, by start time (protocol.calls.MAX_LISTED_CALLS)


CallRequest = (
    CallStart
    | CallJoin
    | CallLeave
    | CallGet
    | CallMedia
    | CallHand
    | CallLowerHands
    | CallPermission
    | CallMute
    | CallRemove
    | CallAllowBack
    | CallAdmit
    | CallRefuse
    | CallWaitingRoom
    | CallAdmin
    | CallEnd
    | CallRecord
    | CallPublish
    | CallMediaAnswer
    | PlanBreakout
    | StartBreakout
    | MoveToRoom
    | ChooseRoom
    | VisitRoom
    | BroadcastToRooms
    | ExtendBreakout
    | CloseBreakout
    | DrawOnBoard
    | ClearBoard
    | ReplayBoard
    | ListCalls
)

CALL_OPS: dict[str, type[CallRequest]] = {
    "call_start": CallStart,
    "call_join": CallJoin,
    "call_leave": CallLeave,
    "call_get": CallGet,
    "call_media": CallMedia,
    "call_hand": CallHand,
    "call_lower_hands": CallLowerHands,
    "call_permission": CallPermission,
    "call_mute": CallMute,
    "call_remove": CallRemove,
    "call_allow_back": CallAllowBack,
    "call_admit": CallAdmit,
    "call_refuse": CallRefuse,
    "call_waiting_room": CallWaitingRoom,
    "call_admin": CallAdmin,
    "call_end": CallEnd,
    "call_record": CallRecord,
    "call_publish": CallPublish,
    "call_media_answer": CallMediaAnswer,
    "breakout_plan": PlanBreakout,
    "breakout_start": StartBreakout,
    "breakout_move": MoveToRoom,
    "breakout_choose": ChooseRoom,
    "breakout_visit": VisitRoom,
    "breakout_broadcast": BroadcastToRooms,
    "breakout_extend": ExtendBreakout,
    "breakout_close": CloseBreakout,
    "whiteboard_draw": DrawOnBoard,
    "whiteboard_clear": ClearBoard,
    "whiteboard": ReplayBoard,
    "calls": ListCalls,
}


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
    | SetClosed
    | Knocks
    | AcceptKnock
    | RefuseKnock
    | Mute
    | Unmute
    | Report
    | Reports
    | Edit
    | Edits
    | React
    | Reactions
    | Pin
    | Unpin
    | Forward
    | CreatePoll
    | Vote
    | ClosePoll
    | PollResults
    | Search
    | CallRequest
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
    "set_closed": SetClosed,
    "knocks": Knocks,
    "accept_knock": AcceptKnock,
    "refuse_knock": RefuseKnock,
    "mute": Mute,
    "unmute": Unmute,
    "report": Report,
    "reports": Reports,
    "edit": Edit,
    "edits": Edits,
    "react": React,
    "reactions": Reactions,
    "pin": Pin,
    "unpin": Unpin,
    "forward": Forward,
    "poll": CreatePoll,
    "vote": Vote,
    "close_poll": ClosePoll,
    "poll_results": PollResults,
    "search": Search,
    **CALL_OPS,
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
PUSH_REPORT = "report"  # to a room's admins: {"room_id", "event_id", "sender", "reporter", ...}
PUSH_MENTION = "mention"  # to each user a new message mentions: {"room_id", "event_id", "sender"}
PUSH_POLL = "poll"  # a poll's new tally, to the room: {"room_id", "event_id", "counts", ...}
PUSH_CALL = "call"  # a call's change, to its people: {"call_id", "type", ...} (see Calls)


def ok(request_id: RequestId, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": result}
