"""Validation of decoded request maps into typed requests.

Rules live in the ``SCHEMAS`` table: one row per field per op. Every failure raises
``ProtocolError`` with a code naming what was wrong and the request id when one was readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import frames as f
from protocol.codec import MSGPACK
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits

ROOM_ID = re.compile(r"^![A-Za-z0-9_-]{1,64}$")
USER_ID = re.compile(r"^@[A-Za-z0-9_-]{1,64}$")
EVENT_ID = re.compile(r"^\$[A-Za-z0-9_-]{1,64}$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.]*$")
TXN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
JOIN_RULES = ("invite", "public")
MAX_POS = 2**53 - 1  # positions fit a JSON number without loss


class _Reject(Exception):
    def __init__(self, code: ErrorCode, message: str):
        self.code = code
        self.message = message


Check = Callable[[str, Any, Limits], Any]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    check: Check
    required: bool = True


def _string(limit_attr: str, pattern: re.Pattern[str] | None = None, what: str = "") -> Check:
    def check(name: str, value: Any, limits: Limits) -> str:
        if not isinstance(value, str):
            raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be a string")
        limit: int = getattr(limits, limit_attr)
        if len(value) > limit:
            raise _Reject(ErrorCode.TOO_LARGE, f"{name} is longer than {limit} characters")
        # fullmatch: "$" alone would also accept a trailing newline ("!room\n").
        if pattern is not None and not pattern.fullmatch(value):
            raise _Reject(ErrorCode.INVALID_FIELD, f"{name} is not a valid {what or name}")
        return value

    return check


def _integer(lo: int, hi_attr: str | None = None, hi: int = MAX_POS) -> Check:
    def check(name: str, value: Any, limits: Limits) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be an integer")
        top = getattr(limits, hi_attr) if hi_attr else hi
        if not lo <= value <= top:
            raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be between {lo} and {top}")
        return value

    return check


def _boolean(name: str, value: Any, limits: Limits) -> bool:
    if not isinstance(value, bool):
        raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be true or false")
    return value


def _choice(*options: str) -> Check:
    def check(name: str, value: Any, limits: Limits) -> str:
        if value not in options:
            raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be one of {', '.join(options)}")
        return str(value)

    return check


def _user_list(name: str, value: Any, limits: Limits) -> list[str]:
    if not isinstance(value, list):
        raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be a list of user ids")
    if len(value) > limits.max_list_items:
        raise _Reject(ErrorCode.TOO_LARGE, f"{name} has more than {limits.max_list_items} items")
    return [_user_id(f"{name}[{i}]", v, limits) for i, v in enumerate(value)]


def _content(name: str, value: Any, limits: Limits) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Reject(ErrorCode.INVALID_FIELD, f"{name} must be a map")
    _check_plain(name, value, limits.max_depth)
    if len(MSGPACK.encode(value)) > limits.max_content_bytes:
        raise _Reject(
            ErrorCode.TOO_LARGE, f"{name} is larger than {limits.max_content_bytes} bytes"
        )
    body = value.get("body")
    if body is not None:
        if not isinstance(body, str):
            raise _Reject(ErrorCode.INVALID_FIELD, f"{name}.body must be a string")
        if len(body) > limits.max_body_chars:
            raise _Reject(
                ErrorCode.TOO_LARGE,
                f"{name}.body is longer than {limits.max_body_chars} characters",
            )
    return value


def _check_plain(path: str, value: Any, depth: int) -> None:
    """Content is plain data both codecs carry alike: no bytes, no floats NaN, bounded depth."""
    if depth < 0:
        raise _Reject(ErrorCode.INVALID_FIELD, f"{path} is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_POS:
            raise _Reject(ErrorCode.INVALID_FIELD, f"{path} is an integer out of range")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Reject(ErrorCode.INVALID_FIELD, f"{path} is not a finite number")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(f"{path}[{i}]", item, depth - 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Reject(ErrorCode.INVALID_FIELD, f"{path} has a key that is not a string")
            _check_plain(f"{path}.{key}", item, depth - 1)
        return
    raise _Reject(ErrorCode.INVALID_FIELD, f"{path} holds a value of unsupported type")


_room_id = _string("max_id_chars", ROOM_ID, "room id")
_user_id = _string("max_id_chars", USER_ID, "user id")
_event_id = _string("max_id_chars", EVENT_ID, "event id")
_event_type = _string("max_type_chars", EVENT_TYPE, "event type")
_txn = _string("max_txn_chars", TXN, "transaction id (printable ASCII, no spaces)")
_reason = _string("max_reason_chars")
_pos = _integer(0)

SCHEMAS: dict[str, tuple[Field, ...]] = {
    "auth": (
        Field("token", _string("max_id_chars")),
        Field("since", _pos, False),
        Field("limit", _integer(0, "sync_limit_max"), False),
    ),
    "ping": (),
    "create_room": (
        Field("name", _string("max_name_chars"), False),
        Field("topic", _string("max_topic_chars"), False),
        Field("join_rule", _choice(*JOIN_RULES), False),
        Field("invite", _user_list, False),
    ),
    "rooms": (),
    "members": (Field("room_id", _room_id),),
    "invite": (Field("room_id", _room_id), Field("user_id", _user_id)),
    "join": (Field("room_id", _room_id),),
    "leave": (Field("room_id", _room_id),),
    "kick": (
        Field("room_id", _room_id),
        Field("user_id", _user_id),
        Field("reason", _reason, False),
    ),
    "ban": (
        Field("room_id", _room_id),
        Field("user_id", _user_id),
        Field("reason", _reason, False),
    ),
    "unban": (Field("room_id", _room_id), Field("user_id", _user_id)),
    "send": (
        Field("room_id", _room_id),
        Field("content", _content),
        Field("type", _event_type, False),
        Field("txn", _txn, False),
    ),
    "state": (
        Field("room_id", _room_id),
        Field("type", _event_type),
        Field("content", _content),
        Field("state_key", _string("max_id_chars"), False),
        Field("txn", _txn, False),
    ),
    "redact": (
        Field("room_id", _room_id),
        Field("event_id", _event_id),
        Field("reason", _reason, False),
        Field("txn", _txn, False),
    ),
    "history": (
        Field("room_id", _room_id),
        Field("before", _pos, False),
        Field("limit", _integer(1, "history_limit_max"), False),
    ),
    "typing": (
        Field("room_id", _room_id),
        Field("typing", _boolean),
        Field("timeout_ms", _integer(1, "typing_timeout_ms_max"), False),
    ),
    "read": (Field("room_id", _room_id), Field("pos", _pos)),
    "presence": (Field("user_ids", _user_list),),
    "profiles": (Field("user_ids", _user_list),),
}
assert SCHEMAS.keys() == f.OPS.keys()


def request_id(frame: Any) -> f.RequestId | None:
    """The frame's id if it is usable, so even a rejected request can be answered by id."""
    if not isinstance(frame, dict):
        return None
    rid = frame.get("id")
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) and 0 <= rid <= MAX_POS:
        return rid
    if isinstance(rid, str) and 0 < len(rid) <= 64:
        return rid
    return None


def parse(frame: Any, limits: Limits) -> f.Envelope:
    """A decoded frame to a typed request, or ``ProtocolError``."""
    if not isinstance(frame, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "a request frame must be a map")
    rid = request_id(frame)
    if rid is None:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD if "id" in frame else ErrorCode.MISSING_FIELD,
            "id must be an integer 0..2^53-1 or a string of 1..64 characters",
        )
    op = frame.get("op")
    if op is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "op is required", rid)
    if not isinstance(op, str) or op not in SCHEMAS:
        raise ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown op {str(op)[:40]!r}", rid)
    schema = SCHEMAS[op]
    known = {fld.name for fld in schema}
    extra = [k for k in frame if k not in known and k not in ("id", "op")]
    if extra:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"unknown field {str(extra[0])[:40]!r} for op {op}", rid
        )
    values: dict[str, Any] = {}
    for fld in schema:
        if fld.name not in frame or frame[fld.name] is None:
            if fld.required:
                raise ProtocolError(ErrorCode.MISSING_FIELD, f"{fld.name} is required", rid)
            continue
        try:
            values[fld.name] = fld.check(fld.name, frame[fld.name], limits)
        except _Reject as rej:
            raise ProtocolError(rej.code, rej.message, rid) from None
    return f.Envelope(rid, op, f.OPS[op](**values))
