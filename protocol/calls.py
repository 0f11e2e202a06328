"""Field rules of the call ops (PROTOCOL.md, "Calls"). Pure.

Each check has the shape of ``protocol.validate``'s field checks, ``(name, value, limits)``
to the accepted value, and refuses with ``ProtocolError`` (no request id: ``validate.parse``
adds it). They check shapes and protocol bounds only; the call's own limits (how many
breakout rooms, how long a room name, a broadcast or a whiteboard op may be) are the daemon's
``[calls]`` settings, checked by ``sferumd.services.calls`` with their own error codes, so
the protocol bounds here are generous: a plan of 51 rooms reaches the daemon and is refused
there as ``too_many_rooms``, not here.
"""

from __future__ import annotations

import re
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits

CALL_ID = re.compile(r"C[A-Za-z0-9_-]{1,64}")
# The main room, or a breakout room: "<plan id>.<number>".
ROOM = re.compile(r"main|[A-Za-z0-9_-]{1,64}\.[0-9]{1,4}")
USER_ID = re.compile(r"@[A-Za-z0-9_-]{1,64}")
GROUP_ID = re.compile(r"[!-~]{1,128}")  # a journal's sub-group id: printable ASCII

MEDIA_KINDS = ("audio", "video", "screen")
CAPABILITIES = ("microphone", "camera", "screen", "chat", "whiteboard")
PLAN_MODES = ("hand", "random", "groups", "self")
MAX_PLAN_ROOMS = 1000  # lists in a plan's rooms (the daemon's own limit is far lower)
MAX_PLAN_PEOPLE = 5000  # user ids in all of them together
MAX_ROOM_NAME_CHARS = 255
MAX_DURATION_S = 10**7
MAX_LISTED_CALLS = 200  # calls in one answer of the calls op


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, message)


def _pattern(name: str, value: Any, pattern: re.Pattern[str], what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    if len(value) > limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} is longer than {limit} characters")
    if not pattern.fullmatch(value):
        raise _invalid(f"{name} is not a valid {what}")
    return value


def call_id(name: str, value: Any, limits: Limits) -> str:
    return _pattern(name, value, CALL_ID, "call id", limits.max_id_chars)


def room(name: str, value: Any, limits: Limits) -> str:
    """``main`` or a breakout room id such as ``p1.3``."""
    what = "room (main or a breakout room id such as p1.3)"
    return _pattern(name, value, ROOM, what, limits.max_id_chars)


def sdp(name: str, value: Any, limits: Limits) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string (an SDP offer)")
    if len(value) > limits.max_sdp_chars:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{name} is longer than {limits.max_sdp_chars} characters"
        )
    if not value.startswith("v=0"):
        raise _invalid(f"{name} is not an SDP description (it starts with v=0)")
    return value


MID = re.compile(r"[A-Za-z0-9_.-]{1,32}")  # an SDP a=mid (RFC 8843 token, kept short)
MAX_TRACKS = 16  # entries of a tracks map (the daemon's [media] max_mlines is lower)


def tracks(name: str, value: Any, limits: Limits) -> dict[str, str]:
    """What each sending m-line of an offer carries: ``{"0": "audio", "1": "video"}``."""
    if not isinstance(value, dict):
        raise _invalid(f"{name} must be a map of mid to audio, video or screen")
    if len(value) > MAX_TRACKS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} has more than {MAX_TRACKS} entries")
    out: dict[str, str] = {}
    for mid, kind in value.items():
        if not isinstance(mid, str) or not MID.fullmatch(mid):
            raise _invalid(f"{name} has a key that is not an SDP mid (1-32 of A-Z a-z 0-9 _ . -)")
        if kind not in MEDIA_KINDS:
            raise _invalid(f"{name}.{mid} must be one of {', '.join(MEDIA_KINDS)}")
        out[mid] = kind
    return out


def plan_rooms(name: str, value: Any, limits: Limits) -> list[list[str]]:
    """The people of each room, by user id: ``[["@a", "@b"], ["@c"], []]``."""
    if not isinstance(value, list):
        raise _invalid(f"{name} must be a list of lists of user ids")
    if len(value) > MAX_PLAN_ROOMS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} has more than {MAX_PLAN_ROOMS} rooms")
    out: list[list[str]] = []
    total = 0
    for i, members in enumerate(value):
        if not isinstance(members, list):
            raise _invalid(f"{name}[{i}] must be a list of user ids")
        total += len(members)
        if total > MAX_PLAN_PEOPLE:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"{name} names more than {MAX_PLAN_PEOPLE} people"
            )
        out.append(
            [
                _pattern(f"{name}[{i}][{j}]", m, USER_ID, "user id", limits.max_id_chars)
                for j, m in enumerate(members)
            ]
        )
    return out


def room_names(name: str, value: Any, limits: Limits) -> list[str]:
    if not isinstance(value, list):
        raise _invalid(f"{name} must be a list of strings")
    if len(value) > MAX_PLAN_ROOMS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} has more than {MAX_PLAN_ROOMS} names")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _invalid(f"{name}[{i}] must be a string")
        if len(item) > MAX_ROOM_NAME_CHARS:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"{name}[{i}] is longer than {MAX_ROOM_NAME_CHARS} characters"
            )
    return list(value)


def group_ids(name: str, value: Any, limits: Limits) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _invalid(f"{name} must be a non-empty list of the journal's group ids")
    if len(value) > MAX_PLAN_ROOMS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} has more than {MAX_PLAN_ROOMS} groups")
    return [
        _pattern(f"{name}[{i}]", g, GROUP_ID, "group id", limits.max_id_chars)
        for i, g in enumerate(value)
    ]
