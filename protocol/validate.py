"""Validation of decoded request maps into typed requests.

Rules live in the ``SCHEMAS`` table: one row per field per op. Every failure raises
``ProtocolError`` with a code naming what was wrong and the request id when one was readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import calls, rich
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

_CALL = Field("call_id", calls.call_id)  # the first field of every call op

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
        Field("closed", _boolean, False),
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
    "set_closed": (Field("room_id", _room_id), Field("closed", _boolean)),
    "knocks": (Field("room_id", _room_id),),
    "accept_knock": (Field("room_id", _room_id), Field("user_id", _user_id)),
    "refuse_knock": (
        Field("room_id", _room_id),
        Field("user_id", _user_id),
        Field("reason", _reason, False),
    ),
    "mute": (
        Field("room_id", _room_id),
        Field("user_id", _user_id),
        Field("duration_s", _integer(1, "max_mute_s"), False),
    ),
    "unmute": (Field("room_id", _room_id), Field("user_id", _user_id)),
    "report": (
        Field("room_id", _room_id),
        Field("event_id", _event_id),
        Field("reason", _reason, False),
    ),
    "reports": (Field("room_id", _room_id),),
    # Rich messages: the rules of their texts are in protocol.rich.
    "edit": (
        Field("room_id", _room_id),
        Field("event_id", _event_id),
        Field("body", rich.edit_body),
        Field("txn", _txn, False),
    ),
    "edits": (Field("room_id", _room_id), Field("event_id", _event_id)),
    "react": (
        Field("room_id", _room_id),
        Field("event_id", _event_id),
        Field("key", rich.reaction_key),
        Field("txn", _txn, False),
    ),
    "reactions": (Field("room_id", _room_id), Field("event_id", _event_id)),
    "pin": (Field("room_id", _room_id), Field("event_id", _event_id), Field("txn", _txn, False)),
    "unpin": (Field("room_id", _room_id), Field("event_id", _event_id), Field("txn", _txn, False)),
    "forward": (
        Field("from_room", _room_id),
        Field("event_id", _event_id),
        Field("to_room", _room_id),
        Field("txn", _txn, False),
    ),
    "poll": (
        Field("room_id", _room_id),
        Field("question", rich.poll_question),
        Field("options", rich.poll_options),
        Field("multiple", _boolean, False),
        Field("anonymous", _boolean, False),
        Field("txn", _txn, False),
    ),
    "vote": (
        Field("room_id", _room_id),
        Field("event_id", _event_id),
        Field("choices", rich.vote_choices),
    ),
    "close_poll": (
        Field("room_id", _room_id),
        Field("event_id", _event_id),
        Field("txn", _txn, False),
    ),
    "poll_results": (Field("room_id", _room_id), Field("event_id", _event_id)),
    "search": (
        Field("query", _string("max_search_query_chars")),
        Field("room_id", _room_id, False),
        Field("before", _pos, False),
        Field("limit", _integer(1, "search_limit_max"), False),
    ),
    # Calls: the shapes here (protocol.calls), the call's own limits in services.calls.
    "call_start": (Field("room_id", _room_id),),
    "call_join": (
        _CALL,
        Field("offer", calls.sdp, False),
        Field("tracks", calls.tracks, False),
    ),
    "call_publish": (_CALL, Field("offer", calls.sdp), Field("tracks", calls.tracks, False)),
    "call_media_answer": (
        _CALL,
        Field("version", _integer(1, hi=MAX_POS)),
        Field("answer", calls.sdp),
    ),
    "call_leave": (_CALL,),
    "call_get": (_CALL,),
    "call_media": (
        _CALL,
        Field("kind", _choice(*calls.MEDIA_KINDS)),
        Field("on", _boolean),
    ),
    "call_hand": (_CALL, Field("raised", _boolean), Field("user_id", _user_id, False)),
    "call_lower_hands": (_CALL,),
    "call_permission": (
        _CALL,
        Field("capability", _choice(*calls.CAPABILITIES)),
        Field("allowed", _boolean, False),
        Field("user_id", _user_id, False),
        Field("reset_personal", _boolean, False),
    ),
    "call_mute": (_CALL, Field("user_id", _user_id, False), Field("force", _boolean, False)),
    "call_remove": (_CALL, Field("user_id", _user_id)),
    "call_allow_back": (_CALL, Field("user_id", _user_id)),
    "call_admit": (_CALL, Field("user_id", _user_id, False)),
    "call_refuse": (_CALL, Field("user_id", _user_id)),
    "call_waiting_room": (_CALL, Field("on", _boolean)),
    "call_admin": (_CALL, Field("user_id", _user_id), Field("admin", _boolean)),
    "call_end": (_CALL,),
    "call_record": (_CALL, Field("on", _boolean)),
    "breakout_plan": (
        _CALL,
        Field("mode", _choice(*calls.PLAN_MODES)),
        Field("rooms", calls.plan_rooms, False),
        Field("room_count", _integer(0, hi=calls.MAX_PLAN_ROOMS), False),
        Field("seed", _integer(0), False),
        Field("group_ids", calls.group_ids, False),
        Field("names", calls.room_names, False),
        Field("duration_s", _integer(1, hi=calls.MAX_DURATION_S), False),
        Field("capacity", _integer(0, hi=calls.MAX_PLAN_PEOPLE), False),
    ),
    "breakout_start": (_CALL,),
    "breakout_move": (_CALL, Field("user_id", _user_id), Field("room", calls.room)),
    "breakout_choose": (_CALL, Field("room", calls.room)),
    "breakout_visit": (_CALL, Field("room", calls.room)),
    "breakout_broadcast": (_CALL, Field("text", _string("max_body_chars"))),
    "breakout_extend": (_CALL, Field("duration_s", _integer(1, hi=calls.MAX_DURATION_S))),
    "breakout_close": (_CALL, Field("immediate", _boolean, False)),
    "whiteboard_draw": (
        _CALL,
        Field("item", _content),  # what is in it: services.calls.whiteboard.parse_op
        Field("board", calls.room, False),
    ),
    "whiteboard_clear": (_CALL, Field("board", calls.room, False)),
    "whiteboard": (_CALL, Field("board", calls.room, False)),
    "calls": (
        Field("from_ms", _integer(0), False),
        Field("limit", _integer(1, hi=calls.MAX_LISTED_CALLS), False),
    ),
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
        except (_Reject, ProtocolError) as rej:  # protocol.rich raises ProtocolError
            raise ProtocolError(rej.code, rej.message, rid) from None
    return f.Envelope(rid, op, f.OPS[op](**values))
