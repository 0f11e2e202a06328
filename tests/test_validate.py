"""Validation of decoded request maps (protocol/validate.py): pure, no daemon."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocol import JSON, MSGPACK, ErrorCode, Limits, ProtocolError
from protocol import frames as f
from protocol.validate import parse, request_id

LIMITS = Limits()
R, U, E = "!room1", "@user_1", "$event-1"
C, SDP = "Cab_1-x", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"
STROKE = {"type": "stroke", "points": [[0.1, 0.2]], "color": "#000000", "width": 0.01}

# The call ops (PROTOCOL.md "Calls"): every field set, and only the required ones.
CALL_FULL: dict[str, tuple[dict[str, Any], f.Request]] = {
    "call_start": ({"room_id": R}, f.CallStart(R)),
    "call_join": (
        {"call_id": C, "offer": SDP, "tracks": {"0": "audio", "v.1": "screen"}},
        f.CallJoin(C, SDP, {"0": "audio", "v.1": "screen"}),
    ),
    "call_publish": (
        {"call_id": C, "offer": SDP, "tracks": {"1": "video"}},
        f.CallPublish(C, SDP, {"1": "video"}),
    ),
    "call_media_answer": (
        {"call_id": C, "version": 2, "answer": SDP},
        f.CallMediaAnswer(C, 2, SDP),
    ),
    "call_leave": ({"call_id": C}, f.CallLeave(C)),
    "call_get": ({"call_id": C}, f.CallGet(C)),
    "call_media": ({"call_id": C, "kind": "screen", "on": True}, f.CallMedia(C, "screen", True)),
    "call_hand": ({"call_id": C, "raised": False, "user_id": U}, f.CallHand(C, False, U)),
    "call_lower_hands": ({"call_id": C}, f.CallLowerHands(C)),
    "call_permission": (
        {
            "call_id": C,
            "capability": "whiteboard",
            "allowed": True,
            "user_id": U,
            "reset_personal": True,
        },
        f.CallPermission(C, "whiteboard", True, U, True),
    ),
    "call_mute": ({"call_id": C, "user_id": U, "force": True}, f.CallMute(C, U, True)),
    "call_remove": ({"call_id": C, "user_id": U}, f.CallRemove(C, U)),
    "call_allow_back": ({"call_id": C, "user_id": U}, f.CallAllowBack(C, U)),
    "call_admit": ({"call_id": C, "user_id": U}, f.CallAdmit(C, U)),
    "call_refuse": ({"call_id": C, "user_id": U}, f.CallRefuse(C, U)),
    "call_waiting_room": ({"call_id": C, "on": True}, f.CallWaitingRoom(C, True)),
    "call_admin": ({"call_id": C, "user_id": U, "admin": False}, f.CallAdmin(C, U, False)),
    "call_end": ({"call_id": C}, f.CallEnd(C)),
    "call_record": ({"call_id": C, "on": True}, f.CallRecord(C, True)),
    "breakout_plan": (
        {
            "call_id": C,
            "mode": "hand",
            "rooms": [[U], []],
            "room_count": 2,
            "seed": 7,
            "group_ids": ["GR-1"],
            "names": ["Зал А", ""],
            "duration_s": 600,
            "capacity": 5,
        },
        f.PlanBreakout(C, "hand", [[U], []], 2, 7, ["GR-1"], ["Зал А", ""], 600, 5),
    ),
    "breakout_start": ({"call_id": C}, f.StartBreakout(C)),
    "breakout_move": ({"call_id": C, "user_id": U, "room": "p1.2"}, f.MoveToRoom(C, U, "p1.2")),
    "breakout_choose": ({"call_id": C, "room": "main"}, f.ChooseRoom(C, "main")),
    "breakout_visit": ({"call_id": C, "room": "p1.50"}, f.VisitRoom(C, "p1.50")),
    "breakout_broadcast": ({"call_id": C, "text": "5 минут"}, f.BroadcastToRooms(C, "5 минут")),
    "breakout_extend": ({"call_id": C, "duration_s": 300}, f.ExtendBreakout(C, 300)),
    "breakout_close": ({"call_id": C, "immediate": True}, f.CloseBreakout(C, True)),
    "whiteboard_draw": (
        {"call_id": C, "item": STROKE, "board": "p1.1"},
        f.DrawOnBoard(C, STROKE, "p1.1"),
    ),
    "whiteboard_clear": ({"call_id": C, "board": "main"}, f.ClearBoard(C, "main")),
    "whiteboard": ({"call_id": C, "board": "main"}, f.ReplayBoard(C, "main")),
    "calls": ({"from_ms": 1898845200000, "limit": 200}, f.ListCalls(1898845200000, 200)),
}
CALL_REQUIRED: dict[str, tuple[dict[str, Any], f.Request]] = {
    "call_start": ({"room_id": R}, f.CallStart(R)),
    "call_join": ({"call_id": C}, f.CallJoin(C)),
    "call_publish": ({"call_id": C, "offer": SDP}, f.CallPublish(C, SDP)),
    "call_media_answer": (
        {"call_id": C, "version": 1, "answer": SDP},
        f.CallMediaAnswer(C, 1, SDP),
    ),
    "call_leave": ({"call_id": C}, f.CallLeave(C)),
    "call_get": ({"call_id": C}, f.CallGet(C)),
    "call_media": ({"call_id": C, "kind": "audio", "on": False}, f.CallMedia(C, "audio", False)),
    "call_hand": ({"call_id": C, "raised": True}, f.CallHand(C, True)),
    "call_lower_hands": ({"call_id": C}, f.CallLowerHands(C)),
    "call_permission": (
        {"call_id": C, "capability": "screen"},
        f.CallPermission(C, "screen", None, None, False),
    ),
    "call_mute": ({"call_id": C}, f.CallMute(C, None, False)),
    "call_remove": ({"call_id": C, "user_id": U}, f.CallRemove(C, U)),
    "call_allow_back": ({"call_id": C, "user_id": U}, f.CallAllowBack(C, U)),
    "call_admit": ({"call_id": C}, f.CallAdmit(C, None)),
    "call_refuse": ({"call_id": C, "user_id": U}, f.CallRefuse(C, U)),
    "call_waiting_room": ({"call_id": C, "on": False}, f.CallWaitingRoom(C, False)),
    "call_admin": ({"call_id": C, "user_id": U, "admin": True}, f.CallAdmin(C, U, True)),
    "call_end": ({"call_id": C}, f.CallEnd(C)),
    "call_record": ({"call_id": C, "on": False}, f.CallRecord(C, False)),
    "breakout_plan": ({"call_id": C, "mode": "random"}, f.PlanBreakout(C, "random")),
    "breakout_start": ({"call_id": C}, f.StartBreakout(C)),
    "breakout_move": ({"call_id": C, "user_id": U, "room": "main"}, f.MoveToRoom(C, U, "main")),
    "breakout_choose": ({"call_id": C, "room": "p2.1"}, f.ChooseRoom(C, "p2.1")),
    "breakout_visit": ({"call_id": C, "room": "main"}, f.VisitRoom(C, "main")),
    "breakout_broadcast": ({"call_id": C, "text": ""}, f.BroadcastToRooms(C, "")),
    "breakout_extend": ({"call_id": C, "duration_s": 1}, f.ExtendBreakout(C, 1)),
    "breakout_close": ({"call_id": C}, f.CloseBreakout(C, False)),
    "whiteboard_draw": ({"call_id": C, "item": {}}, f.DrawOnBoard(C, {})),
    "whiteboard_clear": ({"call_id": C}, f.ClearBoard(C)),
    "whiteboard": ({"call_id": C}, f.ReplayBoard(C)),
    "calls": ({}, f.ListCalls()),
}

# One valid request per op with every field set, and the dataclass it must become.
FULL: dict[str, tuple[dict[str, Any], f.Request]] = {
    "auth": ({"token": "tok", "since": 5, "limit": 10}, f.Auth("tok", 5, 10)),
    "ping": ({}, f.Ping()),
    "create_room": (
        {
            "name": "7Б",
            "topic": "Алгебра",
            "join_rule": "public",
            "invite": ["@a", "@b"],
            "closed": True,
        },
        f.CreateRoom("7Б", "Алгебра", "public", ["@a", "@b"], True),
    ),
    "rooms": ({}, f.Rooms()),
    "members": ({"room_id": R}, f.Members(R)),
    "invite": ({"room_id": R, "user_id": U}, f.Invite(R, U)),
    "join": ({"room_id": R}, f.Join(R)),
    "leave": ({"room_id": R}, f.Leave(R)),
    "kick": ({"room_id": R, "user_id": U, "reason": "spam"}, f.Kick(R, U, "spam")),
    "ban": ({"room_id": R, "user_id": U, "reason": "spam"}, f.Ban(R, U, "spam")),
    "unban": ({"room_id": R, "user_id": U}, f.Unban(R, U)),
    "send": (
        {"room_id": R, "content": {"body": "hi"}, "type": "note.v2", "txn": "t-1"},
        f.Send(R, {"body": "hi"}, "note.v2", "t-1"),
    ),
    "state": (
        {"room_id": R, "type": "name", "content": {"name": "x"}, "state_key": "", "txn": "t2"},
        f.SetState(R, "name", {"name": "x"}, "", "t2"),
    ),
    "redact": (
        {"room_id": R, "event_id": E, "reason": "oops", "txn": "t3"},
        f.Redact(R, E, "oops", "t3"),
    ),
    "history": ({"room_id": R, "before": 10, "limit": 20}, f.History(R, 10, 20)),
    "typing": ({"room_id": R, "typing": True, "timeout_ms": 5000}, f.Typing(R, True, 5000)),
    "read": ({"room_id": R, "pos": 7}, f.Read(R, 7)),
    "presence": ({"user_ids": [U, "@b"]}, f.Presence([U, "@b"])),
    "profiles": ({"user_ids": [U]}, f.Profiles([U])),
    "edit": ({"room_id": R, "event_id": E, "body": "new", "txn": "e1"}, f.Edit(R, E, "new", "e1")),
    "edits": ({"room_id": R, "event_id": E}, f.Edits(R, E)),
    "react": ({"room_id": R, "event_id": E, "key": "👍", "txn": "r1"}, f.React(R, E, "👍", "r1")),
    "reactions": ({"room_id": R, "event_id": E}, f.Reactions(R, E)),
    "pin": ({"room_id": R, "event_id": E, "txn": "p1"}, f.Pin(R, E, "p1")),
    "unpin": ({"room_id": R, "event_id": E, "txn": "p2"}, f.Unpin(R, E, "p2")),
    "forward": (
        {"from_room": R, "event_id": E, "to_room": "!room2", "txn": "f1"},
        f.Forward(R, E, "!room2", "f1"),
    ),
    "poll": (
        {
            "room_id": R,
            "question": "Когда?",
            "options": ["Пн", "Вт"],
            "multiple": True,
            "anonymous": True,
            "txn": "q1",
        },
        f.CreatePoll(R, "Когда?", ["Пн", "Вт"], True, True, "q1"),
    ),
    "vote": ({"room_id": R, "event_id": E, "choices": [1, 0]}, f.Vote(R, E, [0, 1])),
    "close_poll": ({"room_id": R, "event_id": E, "txn": "c1"}, f.ClosePoll(R, E, "c1")),
    "poll_results": ({"room_id": R, "event_id": E}, f.PollResults(R, E)),
    "set_closed": ({"room_id": R, "closed": True}, f.SetClosed(R, True)),
    "knocks": ({"room_id": R}, f.Knocks(R)),
    "accept_knock": ({"room_id": R, "user_id": U}, f.AcceptKnock(R, U)),
    "refuse_knock": ({"room_id": R, "user_id": U, "reason": "no"}, f.RefuseKnock(R, U, "no")),
    "mute": ({"room_id": R, "user_id": U, "duration_s": 60}, f.Mute(R, U, 60)),
    "unmute": ({"room_id": R, "user_id": U}, f.Unmute(R, U)),
    "report": ({"room_id": R, "event_id": E, "reason": "spam"}, f.Report(R, E, "spam")),
    "reports": ({"room_id": R}, f.Reports(R)),
    "search": (
        {"query": "урок", "room_id": R, "before": 9, "limit": 5},
        f.Search("урок", R, 9, 5),
    ),
    **CALL_FULL,
}

# The fields each op cannot do without, and what a request with only those becomes.
REQUIRED: dict[str, tuple[dict[str, Any], f.Request]] = {
    "auth": ({"token": "tok"}, f.Auth("tok", None, None)),
    "ping": ({}, f.Ping()),
    "create_room": ({}, f.CreateRoom(None, None, "invite", [])),
    "rooms": ({}, f.Rooms()),
    "members": ({"room_id": R}, f.Members(R)),
    "invite": ({"room_id": R, "user_id": U}, f.Invite(R, U)),
    "join": ({"room_id": R}, f.Join(R)),
    "leave": ({"room_id": R}, f.Leave(R)),
    "kick": ({"room_id": R, "user_id": U}, f.Kick(R, U, None)),
    "ban": ({"room_id": R, "user_id": U}, f.Ban(R, U, None)),
    "unban": ({"room_id": R, "user_id": U}, f.Unban(R, U)),
    "send": ({"room_id": R, "content": {}}, f.Send(R, {}, "message", None)),
    "state": (
        {"room_id": R, "type": "topic", "content": {"topic": "t"}},
        f.SetState(R, "topic", {"topic": "t"}, "", None),
    ),
    "redact": ({"room_id": R, "event_id": E}, f.Redact(R, E, None, None)),
    "history": ({"room_id": R}, f.History(R, None, 50)),
    "typing": ({"room_id": R, "typing": False}, f.Typing(R, False, 10_000)),
    "read": ({"room_id": R, "pos": 0}, f.Read(R, 0)),
    "presence": ({"user_ids": []}, f.Presence([])),
    "profiles": ({"user_ids": []}, f.Profiles([])),
    "edit": ({"room_id": R, "event_id": E, "body": "x"}, f.Edit(R, E, "x", None)),
    "edits": ({"room_id": R, "event_id": E}, f.Edits(R, E)),
    "react": ({"room_id": R, "event_id": E, "key": "+1"}, f.React(R, E, "+1", None)),
    "reactions": ({"room_id": R, "event_id": E}, f.Reactions(R, E)),
    "pin": ({"room_id": R, "event_id": E}, f.Pin(R, E, None)),
    "unpin": ({"room_id": R, "event_id": E}, f.Unpin(R, E, None)),
    "forward": (
        {"from_room": R, "event_id": E, "to_room": R},
        f.Forward(R, E, R, None),
    ),
    "poll": (
        {"room_id": R, "question": "Q", "options": ["a", "b"]},
        f.CreatePoll(R, "Q", ["a", "b"], False, False, None),
    ),
    "vote": ({"room_id": R, "event_id": E, "choices": [0]}, f.Vote(R, E, [0])),
    "close_poll": ({"room_id": R, "event_id": E}, f.ClosePoll(R, E, None)),
    "poll_results": ({"room_id": R, "event_id": E}, f.PollResults(R, E)),
    "set_closed": ({"room_id": R, "closed": False}, f.SetClosed(R, False)),
    "knocks": ({"room_id": R}, f.Knocks(R)),
    "accept_knock": ({"room_id": R, "user_id": U}, f.AcceptKnock(R, U)),
    "refuse_knock": ({"room_id": R, "user_id": U}, f.RefuseKnock(R, U, None)),
    "mute": ({"room_id": R, "user_id": U}, f.Mute(R, U, None)),
    "unmute": ({"room_id": R, "user_id": U}, f.Unmute(R, U)),
    "report": ({"room_id": R, "event_id": E}, f.Report(R, E, None)),
    "reports": ({"room_id": R}, f.Reports(R)),
    "search": ({"query": ""}, f.Search("", None, None, 20)),
    **CALL_REQUIRED,
}

# What kind of value each field name takes, whichever op it appears in.
KINDS = {
    "token": "str",
    "since": "int",
    "limit": "int",
    "name": "str",
    "topic": "str",
    "join_rule": "str",
    "invite": "list",
    "user_ids": "list",
    "room_id": "str",
    "user_id": "str",
    "event_id": "str",
    "reason": "str",
    "content": "map",
    "type": "str",
    "txn": "str",
    "state_key": "str",
    "before": "int",
    "pos": "int",
    "typing": "bool",
    "timeout_ms": "int",
    "body": "str",
    "key": "str",
    "question": "str",
    "options": "texts",
    "multiple": "bool",
    "anonymous": "bool",
    "from_room": "str",
    "to_room": "str",
    "choices": "numbers",
    "closed": "bool",
    "duration_s": "int",
    "query": "str",
    # Calls.
    "call_id": "str",
    "offer": "str",
    "tracks": "tracks",
    "version": "int",
    "answer": "str",
    "kind": "str",
    "on": "bool",
    "raised": "bool",
    "capability": "str",
    "allowed": "bool",
    "reset_personal": "bool",
    "force": "bool",
    "admin": "bool",
    "mode": "str",
    "rooms": "rooms",
    "room_count": "int",
    "seed": "int",
    "group_ids": "ids",
    "names": "names",
    "capacity": "int",
    "room": "str",
    "text": "str",
    "immediate": "bool",
    "item": "map",
    "board": "str",
    "from_ms": "int",
}
WRONG: dict[str, list[Any]] = {
    "str": [5, 1.5, True, [], {}, b"!room1"],
    "int": ["5", 5.0, True, False, [], {}, b"\x05"],
    "bool": [1, 0, "true", [], {}],
    "list": ["@a", {"@a": 1}, 5, True, ("@a",)],
    "map": [[], "x", 5, True, b"{}"],
    "texts": ["a", {"a": 1}, 5, True, ("a", "b")],
    "numbers": ["0", {"0": 1}, 0, True, (0,)],
    "rooms": ["@a", {"@a": 1}, 5, True, ("@a",), ["@a"], [[5]], [("@a",)]],
    "ids": ["GR", {"GR": 1}, 5, True, ("GR",), [5], [""]],
    "names": ["a", {"a": 1}, 5, True, ("a",), [5], [None]],
    "tracks": [[], "x", 5, True, {"0": "smell"}, {"": "audio"}, {"a b": "video"}, {"0": 1}],
}


def frame(op: str, fields: dict[str, Any], rid: Any = 1) -> dict[str, Any]:
    return {"id": rid, "op": op, **fields}


def rejected(value: Any, limits: Limits = LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(value, limits)
    return info.value


def code_of(value: Any, limits: Limits = LIMITS) -> ErrorCode:
    return rejected(value, limits).code


def test_tables_cover_every_op() -> None:
    assert set(FULL) == set(f.OPS) == set(REQUIRED)
    fields = {k for fields, _ in FULL.values() for k in fields}
    assert fields == set(KINDS)


# -- valid requests ------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(FULL))
@pytest.mark.parametrize("codec", [MSGPACK, JSON], ids=["msgpack", "json"])
def test_valid_request_becomes_its_dataclass(op: str, codec: Any) -> None:
    fields, expected = FULL[op]
    env = parse(codec.decode(codec.encode(frame(op, fields, rid=42))), LIMITS)
    assert env == f.Envelope(42, op, expected)
    assert type(env.request) is f.OPS[op]


@pytest.mark.parametrize("op", sorted(REQUIRED))
def test_only_required_fields_gives_the_defaults(op: str) -> None:
    fields, expected = REQUIRED[op]
    assert parse(frame(op, fields, rid="abc"), LIMITS) == f.Envelope("abc", op, expected)


@pytest.mark.parametrize("op", sorted(FULL))
def test_null_optional_fields_mean_absent(op: str) -> None:
    fields, _ = FULL[op]
    required, expected = REQUIRED[op]
    nulls = {k: None for k in fields if k not in required}
    assert parse(frame(op, {**required, **nulls}), LIMITS).request == expected


# -- missing, wrong and unknown fields -----------------------------------------------------

MISSING_CASES = [(op, name) for op in sorted(REQUIRED) for name in REQUIRED[op][0]]


@pytest.mark.parametrize(("op", "name"), MISSING_CASES)
def test_missing_required_field(op: str, name: str) -> None:
    fields = dict(FULL[op][0])
    del fields[name]
    err = rejected(frame(op, fields, rid=9))
    assert err.code is ErrorCode.MISSING_FIELD
    assert name in err.message
    assert err.request_id == 9


@pytest.mark.parametrize(("op", "name"), MISSING_CASES)
def test_null_required_field_is_missing(op: str, name: str) -> None:
    fields = {**FULL[op][0], name: None}
    assert code_of(frame(op, fields)) is ErrorCode.MISSING_FIELD


WRONG_CASES = [
    (op, name, bad) for op in sorted(FULL) for name in FULL[op][0] for bad in WRONG[KINDS[name]]
]


@pytest.mark.parametrize(("op", "name", "bad"), WRONG_CASES)
def test_wrong_type_is_invalid_field(op: str, name: str, bad: Any) -> None:
    err = rejected(frame(op, {**FULL[op][0], name: bad}, rid="r"))
    assert err.code is ErrorCode.INVALID_FIELD
    assert name in err.message
    assert err.request_id == "r"


@pytest.mark.parametrize("op", sorted(FULL))
@pytest.mark.parametrize("extra", ["foo", "ID", "Op", "room", "body", "requestId"])
def test_unknown_field_is_invalid_field(op: str, extra: str) -> None:
    fields, _ = FULL[op]
    err = rejected(frame(op, {**fields, extra: 1}, rid=3))
    assert err.code is ErrorCode.INVALID_FIELD
    assert extra in err.message
    assert err.request_id == 3


def test_field_of_another_op_is_unknown() -> None:
    assert code_of(frame("join", {"room_id": R, "user_id": U})) is ErrorCode.INVALID_FIELD
    assert code_of(frame("ping", {"token": "x"})) is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize("op", ["nope", "", "AUTH", "Send", "send ", 5, True, [], {"op": "ping"}])
def test_unknown_op(op: Any) -> None:
    err = rejected({"id": 77, "op": op})
    assert err.code is ErrorCode.UNKNOWN_OP
    assert err.request_id == 77


def test_missing_op() -> None:
    assert rejected({"id": 1}).code is ErrorCode.MISSING_FIELD
    err = rejected({"id": 2, "op": None})
    assert err.code is ErrorCode.MISSING_FIELD
    assert err.request_id == 2


@pytest.mark.parametrize("value", [[], [{"id": 1, "op": "ping"}], "ping", 5, None, b"\x80", 1.5])
def test_non_map_frame_is_bad_frame(value: Any) -> None:
    err = rejected(value)
    assert err.code is ErrorCode.BAD_FRAME
    assert err.request_id is None


# -- request ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("rid", [0, 1, 2**53 - 1, "a", "x" * 64, "ключ", "7f3a-1"])
def test_valid_ids_are_echoed(rid: Any) -> None:
    assert request_id({"id": rid}) == rid
    assert parse({"id": rid, "op": "ping"}, LIMITS).id == rid
    err = rejected({"id": rid, "op": "nope"})
    assert err.request_id == rid
    assert err.to_frame() == {"id": rid, "error": {"code": "unknown_op", "message": err.message}}


@pytest.mark.parametrize(
    "rid", [-1, 2**53, 2**64, True, False, 1.0, 1.5, "", "x" * 65, [], {}, None, b"a"]
)
def test_bad_id_is_invalid_field_and_unanswerable(rid: Any) -> None:
    assert request_id({"id": rid, "op": "ping"}) is None
    err = rejected({"id": rid, "op": "ping"})
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.request_id is None
    assert err.to_frame()["id"] is None


def test_missing_id_is_missing_field() -> None:
    assert request_id({"op": "ping"}) is None
    err = rejected({"op": "ping"})
    assert err.code is ErrorCode.MISSING_FIELD
    assert err.request_id is None


@pytest.mark.parametrize("value", [[1], "x", None, 5])
def test_request_id_of_non_map_is_none(value: Any) -> None:
    assert request_id(value) is None


# -- formats -------------------------------------------------------------------------------

ID_CHARS = "AZaz09_-"
FORMATS = {
    # field: (op, valid values, invalid values)
    "room_id": (
        "join",
        ["!a", "!" + "x" * 64, "!" + ID_CHARS],
        ["a", "!", "@a", "$a", "!a b", "!a.b", "!é", "!" + "x" * 65, "!a\n", "\n!a", "!a\x00"],
    ),
    "user_id": (
        "invite",
        ["@a", "@" + "u" * 64, "@" + ID_CHARS],
        ["a", "@", "!a", "@a:b", "@ivan petrov", "@" + "u" * 65, "@a\n", "@a\r"],
    ),
    "event_id": (
        "redact",
        ["$a", "$" + "e" * 64, "$" + ID_CHARS],
        ["a", "$", "!a", "$a/b", "$" + "e" * 65, "$a\n"],
    ),
    "type": (
        "send",
        ["message", "m.note", "a1_b.c2", "x"],
        ["", "Message", "1abc", ".a", "_a", "a-b", "a b", "тип", "message\n", "a\tb"],
    ),
    "txn": (
        "send",
        ["t", "!~", "a" * 64, "2024-01-01T00:00:00Z#1"],
        ["", "a b", "tx\n", "tx\r\n", "\ttx", "é", "t\x7f"],
    ),
    "join_rule": ("create_room", ["invite", "public"], ["", "Public", "knock", "private"]),
}
FORMAT_CASES = [
    (name, value, ok)
    for name, (_, good, bad) in FORMATS.items()
    for value, ok in [*((v, True) for v in good), *((v, False) for v in bad)]
]


@pytest.mark.parametrize(("name", "value", "ok"), FORMAT_CASES)
def test_formats(name: str, value: str, ok: bool) -> None:
    op = FORMATS[name][0]
    request = frame(op, {**FULL[op][0], name: value})
    if ok:
        assert getattr(parse(request, LIMITS).request, name) == value
    else:
        assert code_of(request) is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize("op", ["invite", "kick", "ban", "unban", "members", "history", "read"])
def test_every_op_checks_the_room_id_format(op: str) -> None:
    assert code_of(frame(op, {**FULL[op][0], "room_id": "room1"})) is ErrorCode.INVALID_FIELD


def test_user_lists_check_every_item() -> None:
    assert code_of(frame("presence", {"user_ids": ["@a", "b"]})) is ErrorCode.INVALID_FIELD
    assert code_of(frame("presence", {"user_ids": ["@a", 5]})) is ErrorCode.INVALID_FIELD
    assert code_of(frame("create_room", {"invite": ["@a", None]})) is ErrorCode.INVALID_FIELD


# -- integer ranges ------------------------------------------------------------------------

MAX = 2**53 - 1
RANGES = [
    # (op, field, lowest accepted, highest accepted)
    ("auth", "since", 0, MAX),
    ("auth", "limit", 0, LIMITS.sync_limit_max),
    ("history", "before", 0, MAX),
    ("history", "limit", 1, LIMITS.history_limit_max),
    ("typing", "timeout_ms", 1, LIMITS.typing_timeout_ms_max),
    ("read", "pos", 0, MAX),
    ("search", "before", 0, MAX),
    ("search", "limit", 1, LIMITS.search_limit_max),
]


@pytest.mark.parametrize(("op", "name", "lo", "hi"), RANGES)
def test_integer_ranges(op: str, name: str, lo: int, hi: int) -> None:
    base = FULL[op][0]
    for good in (lo, hi):
        assert getattr(parse(frame(op, {**base, name: good}), LIMITS).request, name) == good
    for bad in (lo - 1, hi + 1, -(2**63), 2**64):
        assert code_of(frame(op, {**base, name: bad})) is ErrorCode.INVALID_FIELD


def test_integer_ranges_follow_the_limits() -> None:
    small = Limits(history_limit_max=5, typing_timeout_ms_max=100, sync_limit_max=3)
    assert parse(frame("history", {"room_id": R, "limit": 5}), small).request == f.History(
        R, None, 5
    )
    assert code_of(frame("history", {"room_id": R, "limit": 6}), small) is ErrorCode.INVALID_FIELD
    assert code_of(frame("typing", {"room_id": R, "typing": True, "timeout_ms": 101}), small) is (
        ErrorCode.INVALID_FIELD
    )
    assert code_of(frame("auth", {"token": "t", "limit": 4}), small) is ErrorCode.INVALID_FIELD


# -- string and list limits ----------------------------------------------------------------

# (op, field, limit name, a valid value of n characters)
STRING_LIMITS = [
    ("auth", "token", "max_id_chars", lambda n: "t" * n),
    ("create_room", "name", "max_name_chars", lambda n: "я" * n),
    ("create_room", "topic", "max_topic_chars", lambda n: "т" * n),
    ("kick", "reason", "max_reason_chars", lambda n: "r" * n),
    ("ban", "reason", "max_reason_chars", lambda n: "r" * n),
    ("redact", "reason", "max_reason_chars", lambda n: "😀" * n),
    ("send", "txn", "max_txn_chars", lambda n: "x" * n),
    ("state", "txn", "max_txn_chars", lambda n: "x" * n),
    ("redact", "txn", "max_txn_chars", lambda n: "x" * n),
    ("send", "type", "max_type_chars", lambda n: "m" * n),
    ("state", "state_key", "max_id_chars", lambda n: "k" * n),
    ("search", "query", "max_search_query_chars", lambda n: "ё" * n),
]
SMALL = Limits(
    max_id_chars=12,
    max_name_chars=3,
    max_topic_chars=4,
    max_reason_chars=5,
    max_txn_chars=6,
    max_type_chars=7,
    max_body_chars=8,
    max_list_items=2,
    max_content_bytes=64,
    max_depth=2,
)


@pytest.mark.parametrize("limits", [LIMITS, SMALL], ids=["default", "small"])
@pytest.mark.parametrize(("op", "name", "attr", "make"), STRING_LIMITS)
def test_string_limits(op: str, name: str, attr: str, make: Any, limits: Limits) -> None:
    limit = getattr(limits, attr)
    base = REQUIRED[op][0]
    at = make(limit)
    assert len(at) == limit
    assert getattr(parse(frame(op, {**base, name: at}), limits).request, name) == at
    err = rejected(frame(op, {**base, name: make(limit + 1)}), limits)
    assert err.code is ErrorCode.TOO_LARGE
    assert name in err.message


@pytest.mark.parametrize("limits", [LIMITS, SMALL], ids=["default", "small"])
def test_body_limit(limits: Limits) -> None:
    n = limits.max_body_chars
    ok = parse(frame("send", {"room_id": R, "content": {"body": "б" * n}}), limits)
    assert isinstance(ok.request, f.Send)
    assert ok.request.content == {"body": "б" * n}
    err = rejected(frame("send", {"room_id": R, "content": {"body": "б" * (n + 1)}}), limits)
    assert err.code is ErrorCode.TOO_LARGE


@pytest.mark.parametrize("body", [5, True, ["x"], {"text": "x"}])
def test_body_must_be_text(body: Any) -> None:
    assert code_of(frame("send", {"room_id": R, "content": {"body": body}})) is (
        ErrorCode.INVALID_FIELD
    )


def test_ids_over_the_id_limit_are_too_large() -> None:
    long = "!" + "a" * LIMITS.max_id_chars
    assert code_of(frame("join", {"room_id": long})) is ErrorCode.TOO_LARGE


@pytest.mark.parametrize("limits", [LIMITS, SMALL], ids=["default", "small"])
@pytest.mark.parametrize(("op", "name"), [("presence", "user_ids"), ("create_room", "invite")])
def test_list_limits(op: str, name: str, limits: Limits) -> None:
    users = [f"@u{i}" for i in range(limits.max_list_items + 1)]
    env = parse(frame(op, {name: users[:-1]}), limits)
    assert getattr(env.request, name) == users[:-1]
    assert code_of(frame(op, {name: users}), limits) is ErrorCode.TOO_LARGE


# -- content -------------------------------------------------------------------------------


def send(content: Any, limits: Limits = LIMITS) -> f.Envelope:
    return parse(frame("send", {"room_id": R, "content": content}), limits)


@pytest.mark.parametrize("limits", [LIMITS, SMALL], ids=["default", "small"])
def test_content_size_limit(limits: Limits) -> None:
    n = limits.max_content_bytes
    while len(MSGPACK.encode({"data": "a" * n})) > limits.max_content_bytes:
        n -= 1
    at = {"data": "a" * n}
    assert len(MSGPACK.encode(at)) == limits.max_content_bytes
    assert send(at, limits).request == f.Send(R, at)
    over = {"data": "a" * (n + 1)}
    err = rejected(frame("send", {"room_id": R, "content": over}), limits)
    assert err.code is ErrorCode.TOO_LARGE


def test_content_size_limit_applies_to_state_too() -> None:
    big = {"name": "x" * LIMITS.max_content_bytes}
    assert code_of(frame("state", {"room_id": R, "type": "name", "content": big})) is (
        ErrorCode.TOO_LARGE
    )


def nested(levels: int) -> Any:
    """A value whose innermost scalar sits ``levels`` lists deep."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("limits", [LIMITS, SMALL], ids=["default", "small"])
def test_content_depth_limit(limits: Limits) -> None:
    # A value may sit at most max_depth levels below the content map.
    deepest = limits.max_depth - 1  # the "v" key is the first level
    assert send({"v": nested(deepest)}, limits).request == f.Send(R, {"v": nested(deepest)})
    err = rejected(frame("send", {"room_id": R, "content": {"v": nested(deepest + 1)}}), limits)
    assert err.code is ErrorCode.INVALID_FIELD
    assert "deep" in err.message


def test_deeply_nested_content_is_refused_without_recursing_forever() -> None:
    assert code_of(frame("send", {"room_id": R, "content": {"v": nested(50_000)}})) is (
        ErrorCode.INVALID_FIELD
    )


@pytest.mark.parametrize(
    "content",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": -math.inf},
        {"x": [1.0, math.nan]},
        {"a": {"b": math.inf}},
    ],
    ids=["nan", "inf", "-inf", "nan-in-list", "inf-in-map"],
)
def test_content_with_non_finite_float_is_invalid(content: dict[str, Any]) -> None:
    assert code_of(frame("send", {"room_id": R, "content": content})) is ErrorCode.INVALID_FIELD


def test_json_overflowing_number_in_content_is_invalid() -> None:
    decoded = JSON.decode(b'{"id":1,"op":"send","room_id":"!r","content":{"x":1e999}}')
    assert code_of(decoded) is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize(
    "content",
    [
        {1: "x"},
        {"a": {2: "x"}},
        {"a": [{b"k": 1}]},
        {None: 1},
        {"b": b"bytes"},
        {"t": (1, 2)},
        {"s": {1, 2}},
        {"big": 2**53},
        {"small": -(2**53)},
        {"o": object()},
    ],
    ids=[
        "int-key",
        "nested-int-key",
        "bytes-key",
        "none-key",
        "bytes",
        "tuple",
        "set",
        "int-over",
        "int-under",
        "object",
    ],
)
def test_content_must_be_plain_data(content: dict[Any, Any]) -> None:
    assert code_of(frame("send", {"room_id": R, "content": content})) is ErrorCode.INVALID_FIELD


def test_content_plain_data_is_kept_as_sent() -> None:
    content = {"body": "hi", "n": [1, -(2**53) + 1, 2.5, None, True], "m": {"k": "v"}}
    assert send(content).request == f.Send(R, content)


# -- hypothesis: any map in, an envelope or a coded error out -------------------------------

FIELD_NAMES = sorted(KINDS)
ID_ALPHABET = "aZ09_-é \n!@$."
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


def request_maps(json_text: bool = False) -> st.SearchStrategy[dict[Any, Any]]:
    """Maps shaped like requests: real ops and field names, values plausible or not.

    ``json_text``: only what JSON can carry (no bytes, no integer keys), with lone
    surrogates in strings, as a JSON text's \\u escapes can produce them.
    """
    ids_like = st.builds(
        lambda sigil, rest, tail: sigil + rest + tail,
        st.sampled_from(["!", "@", "$", ""]),
        st.text(alphabet="aZ09_-", max_size=16) | st.text(alphabet=ID_ALPHABET, max_size=16),
        st.sampled_from(["", "", "", "\n", " "]),
    )
    strings = (
        ids_like
        | st.sampled_from(["message", "name", "topic", "invite", "public", "t1", "", "x" * 200])
        | st.text(max_size=20)
        | st.text(alphabet="ab", min_size=1000, max_size=1100)
    )
    if json_text:
        strings |= st.text(SURROGATES | st.sampled_from("a!@"), max_size=4)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-3, 3)
        | st.integers(-(2**63), 2**64 - 1)
        | st.sampled_from([2**53 - 1, 2**53, 10_000, 10_001, 60_000, 60_001])
        | st.floats()
        | strings
    )
    keys = st.sampled_from(["body", "name", "x"]) | st.text(max_size=4)
    if not json_text:
        scalars |= st.binary(max_size=4)
    else:
        keys |= st.text(SURROGATES, min_size=1, max_size=2)

    def containers(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        out = st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4)
        if not json_text:
            out |= st.dictionaries(st.integers(0, 3), kids, min_size=1, max_size=2)
        return out

    values = st.recursive(scalars, containers, max_leaves=12)
    plausible = {
        "str": strings,
        "int": st.integers(-2, 70_000),
        "bool": st.booleans(),
        "list": st.lists(ids_like, max_size=4),
        "map": st.dictionaries(keys, values, max_size=3),
        "tracks": st.dictionaries(keys, values, max_size=3),
        "texts": st.lists(strings, max_size=14),
        "numbers": st.lists(st.integers(-1, 13) | st.booleans(), max_size=14),
        "rooms": st.lists(st.lists(ids_like, max_size=3) | ids_like, max_size=4),
        "ids": st.lists(strings, max_size=4),
        "names": st.lists(strings, max_size=4),
    }
    request_ids = st.integers(-2, 2**54) | st.text(max_size=70) | st.booleans() | st.none()
    extra_keys = st.text(max_size=5) if json_text else st.text(max_size=5) | st.integers(0, 9)

    good_text = st.text(max_size=12)
    if json_text:
        good_text |= st.text(SURROGATES | st.sampled_from("ab"), min_size=1, max_size=3)

    def sigiled(sigil: str) -> st.SearchStrategy[str]:
        return st.text(alphabet="aZ09_-", min_size=1, max_size=8).map(lambda rest: sigil + rest)

    content_values = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | good_text,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(keys, kids, max_size=3),
        max_leaves=8,
    )
    good = {
        "token": good_text,
        "since": st.integers(0, 100),
        "limit": st.integers(0, 1001),
        "name": good_text | st.just("н" * 256),
        "topic": good_text,
        "join_rule": st.sampled_from(["invite", "public", "knock"]),
        "invite": st.lists(sigiled("@"), max_size=3),
        "user_ids": st.lists(sigiled("@"), max_size=3) | st.just(["@u"] * 101),
        "room_id": sigiled("!") | ids_like,
        "user_id": sigiled("@") | ids_like,
        "event_id": sigiled("$") | ids_like,
        "reason": good_text,
        "content": st.dictionaries(st.sampled_from(["body", "name", "x"]) | keys, content_values),
        "type": st.sampled_from(["message", "name", "topic", "note.v2", "m" * 65]) | ids_like,
        "txn": st.text(alphabet="!~az09 ", min_size=1, max_size=8),
        "state_key": good_text,
        "before": st.integers(0, 100),
        "pos": st.integers(0, 2**53),
        "typing": st.booleans(),
        "timeout_ms": st.integers(0, 60_001),
        "body": good_text,
        "key": st.sampled_from(["👍", "👨‍👩‍👧", "+1", " ", "\u202e", "a" * 17]) | good_text,
        "question": good_text,
        "options": st.lists(good_text, max_size=13),
        "multiple": st.booleans(),
        "anonymous": st.booleans(),
        "from_room": sigiled("!") | ids_like,
        "to_room": sigiled("!") | ids_like,
        "choices": st.lists(st.integers(-1, 12), max_size=13),
        "closed": st.booleans(),
        "duration_s": st.integers(0, 366 * 86_400 + 1),
        "query": good_text | st.just("я" * 501),
        # Calls.
        "call_id": sigiled("C") | ids_like,
        "offer": st.just(SDP) | good_text,
        "tracks": st.dictionaries(
            st.text(alphabet="0a._- ", max_size=3) | st.just("x" * 33),
            st.sampled_from(["audio", "video", "screen", "smell"]),
            max_size=3,
        ),
        "version": st.integers(-1, 2**53 + 1),
        "answer": st.just(SDP) | good_text,
        "kind": st.sampled_from(["audio", "video", "screen", "smell"]),
        "on": st.booleans(),
        "raised": st.booleans(),
        "capability": st.sampled_from(["microphone", "screen", "whiteboard", "teleport"]),
        "allowed": st.booleans(),
        "reset_personal": st.booleans(),
        "force": st.booleans(),
        "admin": st.booleans(),
        "mode": st.sampled_from(["hand", "random", "groups", "self", "chaos"]),
        "rooms": st.lists(st.lists(sigiled("@"), max_size=3), max_size=3),
        "room_count": st.integers(0, 1001),
        "seed": st.integers(0, 2**53),
        "group_ids": st.lists(st.text(alphabet="GR-1 ", min_size=1, max_size=5), max_size=3),
        "names": st.lists(good_text, max_size=3),
        "capacity": st.integers(0, 5001),
        "room": st.sampled_from(["main", "p1.1", "p1.50", "p1", "x"]) | ids_like,
        "text": good_text,
        "immediate": st.booleans(),
        "item": st.dictionaries(st.sampled_from(["type", "points"]) | keys, content_values),
        "board": st.sampled_from(["main", "p2.3", "1.2"]) | ids_like,
        "from_ms": st.integers(-1, 2**53 + 1),
    }

    @st.composite
    def build(draw: st.DrawFn) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        pick = draw(st.integers(0, 19))  # usually a good id, sometimes a bad one or none
        if pick:
            out["id"] = draw(st.integers(0, 100) if pick > 3 else request_ids)
        op = draw(st.sampled_from(sorted(f.OPS)))
        if draw(st.integers(0, 19)):
            out["op"] = op
        elif draw(st.booleans()):
            out["op"] = draw(st.text(max_size=8) | scalars)
        required = REQUIRED[op][0]
        for name in FULL[op][0]:
            if draw(st.integers(0, 19)) if name in required else draw(st.booleans()):
                # mostly a good value, sometimes one of the right kind, sometimes anything
                pick = draw(st.integers(0, 19))
                strategy = (
                    good[name] if pick < 17 else plausible[KINDS[name]] if pick < 19 else values
                )
                out[name] = draw(strategy)
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.sampled_from(FIELD_NAMES) | extra_keys)] = draw(values)
        return out

    return build()


ROOM = re.compile(r"![A-Za-z0-9_-]{1,64}")
USER = re.compile(r"@[A-Za-z0-9_-]{1,64}")
EVENT = re.compile(r"\$[A-Za-z0-9_-]{1,64}")
TYPE = re.compile(r"[a-z][a-z0-9_.]*")
TXN = re.compile(r"[!-~]+")
STR_LIMIT = {
    "token": "max_id_chars",
    "name": "max_name_chars",
    "topic": "max_topic_chars",
    "reason": "max_reason_chars",
    "txn": "max_txn_chars",
    "type": "max_type_chars",
    "state_key": "max_id_chars",
    "room_id": "max_id_chars",
    "user_id": "max_id_chars",
    "event_id": "max_id_chars",
    "body": "max_body_chars",
    "key": "max_reaction_key_chars",
    "question": "max_poll_question_chars",
    "from_room": "max_id_chars",
    "to_room": "max_id_chars",
    "query": "max_search_query_chars",
    "offer": "max_sdp_chars",
    "answer": "max_sdp_chars",
    "text": "max_body_chars",
}
INT_RANGE = {
    ("auth", "since"): (0, MAX),
    ("auth", "limit"): (0, "sync_limit_max"),
    ("history", "before"): (0, MAX),
    ("history", "limit"): (1, "history_limit_max"),
    ("typing", "timeout_ms"): (1, "typing_timeout_ms_max"),
    ("read", "pos"): (0, MAX),
    ("search", "before"): (0, MAX),
    ("search", "limit"): (1, "search_limit_max"),
    ("mute", "duration_s"): (1, "max_mute_s"),
    ("breakout_plan", "room_count"): (0, 1000),
    ("breakout_plan", "seed"): (0, MAX),
    ("breakout_plan", "duration_s"): (1, 10**7),
    ("breakout_plan", "capacity"): (0, 5000),
    ("breakout_extend", "duration_s"): (1, 10**7),
    ("call_media_answer", "version"): (1, MAX),
    ("calls", "from_ms"): (0, MAX),
    ("calls", "limit"): (1, 200),
}
GROUP = re.compile(r"[!-~]{1,128}")


def height(value: Any) -> int:
    """Levels in a value, counting itself: 1 for a scalar or an empty container."""
    if isinstance(value, dict):
        return 1 + max((height(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((height(v) for v in value), default=0)
    return 1


def plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False


def assert_within_limits(env: f.Envelope, limits: Limits) -> None:
    """What a handler may rely on once parse has said yes, re-checked independently."""
    assert env.op in f.OPS
    assert type(env.request) is f.OPS[env.op]
    assert (isinstance(env.id, int) and not isinstance(env.id, bool) and 0 <= env.id <= MAX) or (
        isinstance(env.id, str) and 1 <= len(env.id) <= 64
    )
    req = env.request
    for name in KINDS:
        if not hasattr(req, name):
            continue
        value = getattr(req, name)
        if value is None:
            continue
        kind = KINDS[name]
        if kind == "str":
            assert isinstance(value, str)
            assert len(value) <= getattr(limits, STR_LIMIT.get(name, "max_id_chars")), name
        elif kind == "int":
            assert type(value) is int
            lo, hi = INT_RANGE[(env.op, name)]
            assert lo <= value <= (getattr(limits, hi) if isinstance(hi, str) else hi)
        elif kind == "bool":
            assert type(value) is bool
        elif kind == "list":
            assert isinstance(value, list)
            assert len(value) <= limits.max_list_items
            assert all(isinstance(u, str) and USER.fullmatch(u) for u in value)
        elif kind == "texts":  # poll options
            assert isinstance(value, list) and 2 <= len(value) <= limits.max_poll_options
            assert all(0 < len(t) <= limits.max_poll_option_chars for t in value)
            assert len(set(value)) == len(value)
        elif kind == "numbers":  # vote choices
            assert value == sorted(set(value)) and 1 <= len(value) <= limits.max_poll_options
            assert all(type(c) is int and 0 <= c < limits.max_poll_options for c in value)
        elif kind == "rooms":  # a breakout plan's rooms (protocol.calls)
            assert all(isinstance(r, list) for r in value) and len(value) <= 1000
            assert all(isinstance(u, str) and USER.fullmatch(u) for r in value for u in r)
            assert sum(len(r) for r in value) <= 5000
        elif kind == "ids":  # journal group ids
            assert isinstance(value, list) and 1 <= len(value) <= 1000
            assert all(isinstance(g, str) and GROUP.fullmatch(g) for g in value)
        elif kind == "names":  # breakout room names
            assert isinstance(value, list) and len(value) <= 1000
            assert all(isinstance(t, str) and len(t) <= 255 for t in value)
        elif kind == "tracks":  # mid -> what the m-line sends (protocol.calls)
            assert isinstance(value, dict) and len(value) <= 16
            assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", m) for m in value)
            assert set(value.values()) <= {"audio", "video", "screen"}
        elif kind == "map":
            assert isinstance(value, dict)
            assert plain(value)
            assert height(value) <= limits.max_depth + 1
            assert len(MSGPACK.encode(value)) <= limits.max_content_bytes
            body = value.get("body")
            assert body is None or (isinstance(body, str) and len(body) <= limits.max_body_chars)
            assert JSON.decode(JSON.encode(value)) == value  # both codecs can carry it
    for name, pattern in [
        ("room_id", ROOM),
        ("user_id", USER),
        ("event_id", EVENT),
        ("from_room", ROOM),
        ("to_room", ROOM),
    ]:
        if getattr(req, name, None) is not None:  # optional in some ops (call_hand's user_id)
            assert pattern.fullmatch(getattr(req, name)), name
    if isinstance(req, f.Send | f.SetState):
        assert TYPE.fullmatch(req.type)
    if getattr(req, "txn", None) is not None:
        assert TXN.fullmatch(req.txn)
    if isinstance(req, f.CreateRoom):
        assert req.join_rule in ("invite", "public")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_maps(), st.sampled_from([LIMITS, SMALL]))
def test_any_map_gives_an_envelope_or_a_coded_error(value: dict[Any, Any], limits: Limits) -> None:
    try:
        env = parse(value, limits)
    except ProtocolError as err:
        assert isinstance(err.code, ErrorCode)
        assert err.message
        assert err.request_id == request_id(value)  # answered by id whenever it was readable
        event(f"rejected: {err.code.value}")
        return
    event("accepted")
    assert_within_limits(env, limits)
    assert env.id == value["id"]
    assert env.op == value["op"]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8) | st.integers(), st.from_type(object), max_size=4)
    | st.lists(st.integers() | st.text(), max_size=3)
    | st.from_type(object)
)
def test_any_value_gives_an_envelope_or_a_coded_error(value: Any) -> None:
    try:
        env = parse(value, LIMITS)
    except ProtocolError as err:
        assert isinstance(err.code, ErrorCode)
        if not isinstance(value, dict):
            assert err.code is ErrorCode.BAD_FRAME
        return
    assert_within_limits(env, LIMITS)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120) | request_maps().map(MSGPACK.encode))
def test_any_bytes_through_codec_and_parse(data: bytes) -> None:
    # What the websocket handler does with every frame: only ProtocolError may come out.
    for codec in (MSGPACK, JSON):
        try:
            env = parse(codec.decode(data), LIMITS)
        except ProtocolError as err:
            assert isinstance(err.code, ErrorCode)
            continue
        assert_within_limits(env, LIMITS)


@settings(max_examples=200, deadline=None)
@given(request_maps(json_text=True))
def test_any_json_text_through_codec_and_parse(value: dict[str, Any]) -> None:
    # ASCII-only JSON writes every non-ASCII character, lone surrogates too, as \u escapes,
    # the way a browser's JSON.stringify may send half an emoji.
    data = json.dumps(value, ensure_ascii=True).encode()
    try:
        env = parse(JSON.decode(data), LIMITS)
    except ProtocolError as err:
        assert isinstance(err.code, ErrorCode)
        return
    assert_within_limits(env, LIMITS)
    # Whatever was accepted can be encoded again, for the store and for every recipient.
    for codec in (MSGPACK, JSON):
        codec.encode({"id": env.id, **dataclasses.asdict(env.request)})
