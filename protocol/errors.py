"""Error codes carried in error responses, and websocket close codes.

Every rejection the server makes is one of these codes; PROTOCOL.md lists when each is used.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    BAD_FRAME = "bad_frame"  # not decodable, not a map, wrong frame type for the subprotocol
    UNKNOWN_OP = "unknown_op"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"  # wrong type, bad format, value out of range
    TOO_LARGE = "too_large"  # a string, list or content over its limit
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"  # power level too low for the action
    NOT_MEMBER = "not_member"
    NOT_FOUND = "not_found"
    MEMBERSHIP = "membership"  # the membership change is not possible from the current state
    BANNED = "banned"
    MUTED = "muted"  # send while an admin's mute on you runs (see the mute op)
    REDACTED = "redacted"  # editing, reacting to, pinning, forwarding a redacted message
    POLL_CLOSED = "poll_closed"  # voting on (or closing) a poll that is closed
    # Calls (services.calls; PROTOCOL.md "Calls"): why a join is refused ...
    NOT_INVITED = "not_invited"
    BLOCKED = "blocked"  # the journal blocked you for this lesson call
    REMOVED = "removed"  # an admin put you out of the call (until they let you back)
    REFUSED = "refused"  # an admin turned you away from the waiting room
    CALL_CANCELLED = "call_cancelled"
    CALL_ENDED = "call_ended"
    NOT_OPEN_YET = "not_open_yet"  # the error also carries opens_at_ms
    # ... and the other call rules.
    CALL_STATE = "call_state"  # not allowed in the call's state (scheduled, running, ...)
    NOT_JOINED = "not_joined"  # the person is not in the call right now
    NOT_STAFF = "not_staff"  # only staff become co-admins
    OWNER = "owner"  # the lesson's teacher is not demoted, restricted or removed
    TARGET_IS_ADMIN = "target_is_admin"  # admins are not removed, muted or restricted
    BREAKOUT_STATE = "breakout_state"  # not allowed in the breakout rooms' phase
    NO_ROOMS = "no_rooms"
    TOO_MANY_ROOMS = "too_many_rooms"  # over calls.max_breakout_rooms
    UNKNOWN_PEOPLE = "unknown_people"  # people a plan places who may not be in the call
    DUPLICATE_ASSIGNMENT = "duplicate_assignment"  # one person in two rooms
    ADMIN_ASSIGNED = "admin_assigned"  # admins visit rooms, they are not assigned
    ROOM_FULL = "room_full"
    NOT_SELF_SELECT = "not_self_select"
    BOARD_FULL = "board_full"  # calls.whiteboard_max_ops since the last clear
    RATE_LIMITED = "rate_limited"
    # The media plane (PROTOCOL.md "Media"): an SDP the SFU refuses, ...
    BAD_SDP = "bad_sdp"
    UNSUPPORTED_CODEC = "unsupported_codec"  # an m-line without Opus (audio) or VP8 (video)
    CONFLICT = "conflict"  # an answer to a media offer that is no longer the pending one
    MEDIA_UNAVAILABLE = "media_unavailable"  # call_record on a daemon without the SFU
    INTERNAL = "internal"


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect and resume
    MESSAGE_TOO_BIG = 1009  # a frame over max_frame_bytes
    INTERNAL = 1011  # the server failed while sending the catch-up: reconnect and resume
    AUTH_TIMEOUT = 4000  # no successful auth within auth_timeout_s
    DEVICE_REVOKED = 4003
    SLOW_CONSUMER = 4008  # outgoing queue over its bound: reconnect and resume
    FLOOD = 4009  # too many rejected frames or requests over the rate limit
    UNSUPPORTED = 4010  # reserved; a frame of the wrong kind gets a bad_frame error instead


class ProtocolError(Exception):
    """A request the server rejects; becomes an error response, the connection stays open."""

    def __init__(self, code: ErrorCode, message: str, request_id: int | str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def to_frame(self) -> dict[str, object]:
        return {"id": self.request_id, "error": {"code": self.code.value, "message": self.message}}
