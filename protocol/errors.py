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
    RATE_LIMITED = "rate_limited"
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
