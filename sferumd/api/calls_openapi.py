"""The journal API's videoconferences (api.calls) in the OpenAPI document (api.openapi)."""

from __future__ import annotations

from typing import Any


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATE = {"type": "string", "enum": ["scheduled", "open", "running", "ended", "cancelled"]}
_VC_REF = {"$ref": "#/components/schemas/Videoconference"}

_PARTICIPANT = {
    "type": "object",
    "required": ["account_id", "blocked", "linked"],
    "properties": {
        "account_id": {"type": "string"},
        "blocked": {"type": "boolean"},
        "linked": {"type": "boolean", "description": "has a messenger profile: can join"},
    },
}
_LIST = {"type": "array", "items": {"$ref": "#/components/schemas/VideoconferenceParticipant"}}

VIDEOCONFERENCE = {
    "type": "object",
    "required": [
        "videoconference_id",
        "type",
        "name",
        "state",
        "chat_id",
        "lesson_id",
        "class_id",
        "teacher_id",
        "date",
        "start",
        "end",
        "start_ms",
        "end_ms",
        "url",
        "url_active_from",
        "joinable",
        "room_id",
    ],
    "properties": {
        "videoconference_id": {"type": "string"},
        "type": {"type": "string", "enum": ["online_lesson"]},
        "name": {"type": "string", "description": "7В - История - 26.01.2024 - 12.00 - 13.00"},
        "state": _STATE,
        "chat_id": {"type": "string"},
        "lesson_id": {"type": "string"},
        "class_id": {"type": "string"},
        "teacher_id": {"type": "string", "description": "the owner: the call's admin"},
        "date": {"type": "string", "format": "date", "description": "in the school's zone"},
        "start": _TIME,
        "end": _TIME,
        "start_ms": {"type": "integer"},
        "end_ms": {"type": "integer"},
        "url": {"type": "string", "format": "uri", "description": "the join link"},
        "url_active_from": {**_TIME, "description": "the link works from here (the start)"},
        "joinable": {"type": "boolean", "description": "the link works now"},
        "room_id": {"type": "string", "description": "the call's own chat"},
        "blocked": {"type": "boolean", "description": "in an account's list: is it blocked"},
        "participants": {
            "type": "object",
            "required": ["staff", "students", "parents"],
            "properties": {"staff": _LIST, "students": _LIST, "parents": _LIST},
        },
    },
}

ATTENDANCE = {
    "type": "object",
    "required": [
        "videoconference_id",
        "name",
        "lesson_id",
        "chat_id",
        "class_id",
        "ran",
        "start",
        "end",
        "students",
    ],
    "properties": {
        "type": {"type": "string", "enum": ["attendance"], "description": "webhook only"},
        "videoconference_id": {"type": "string"},
        "name": {"type": "string"},
        "lesson_id": {"type": ["string", "null"]},
        "chat_id": {"type": ["string", "null"]},
        "class_id": {"type": ["string", "null"]},
        "ran": {"type": "boolean", "description": "false: it never ran (no students then)"},
        "start": _MAYBE_TIME,
        "end": _MAYBE_TIME,
        "students": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "account_id",
                    "present",
                    "minutes",
                    "joined_late",
                    "left_early",
                    "first_in",
                    "last_out",
                ],
                "properties": {
                    "account_id": {"type": "string"},
                    "present": {"type": "boolean"},
                    "minutes": {"type": "integer", "minimum": 0},
                    "joined_late": {"type": "boolean"},
                    "left_early": {"type": "boolean"},
                    "first_in": _MAYBE_TIME,
                    "last_out": _MAYBE_TIME,
                },
            },
        },
    },
}

SCHEMAS = {
    "Videoconference": VIDEOCONFERENCE,
    "VideoconferenceParticipant": _PARTICIPANT,
    "Attendance": ATTENDANCE,
}

_SIGNED = {
    "400": _err("invalid_field or bad_json"),
    "401": _err("unknown_journal, bad_signature, stale_request, bad_nonce or replayed_request"),
    "413": _err("too_large"),
}
_VC_PARAM = {
    "name": "videoconference_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
}
_ACCOUNT_PARAM = {
    "name": "account_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
    "description": "the journal's own account id",
}
_NOT_FOUND = _err("not_found: no such videoconference of this journal")
_STATE_409 = _err("call_state: not allowed in the videoconference's state")

PATHS: dict[str, Any] = {
    "/journal/v1/videoconferences": {
        "post": {
            "operationId": "createVideoconference",
            "summary": "An online lesson for a subject chat and one of its scheduled lessons",
            "requestBody": _body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["chat_id", "lesson_id", "teacher_id"],
                    "properties": {
                        "chat_id": {**_ID, "maxLength": 140},
                        "lesson_id": _ID,
                        "teacher_id": {**_ID, "description": "who asks: the chat's teacher"},
                        "blocked": {"type": "array", "items": _ID, "maxItems": 2000},
                    },
                }
            ),
            "responses": {
                "201": _json("the videoconference, with its participants", _VC_REF),
                **_SIGNED,
                "403": _err("not_chat_teacher: teacher_id is not the chat's teacher"),
                "404": _err("unknown_chat, unknown_lesson, or not_invited (in blocked)"),
                "409": _err(
                    "lesson_overlap (another lesson call of the class at that time),"
                    " videoconference_exists (the body's videoconference_id names it)"
                    " or chat_not_ready"
                ),
                "422": _err(
                    "start_in_past, end_in_past, invalid_times, too_long, lesson_cancelled,"
                    " lesson_mismatch or owner"
                ),
            },
        }
    },
    "/journal/v1/videoconferences/{videoconference_id}": {
        "parameters": [_VC_PARAM],
        "get": {
            "operationId": "getVideoconference",
            "summary": "One videoconference, with its participants",
            "responses": {
                "200": _json("the videoconference", _VC_REF),
                **_SIGNED,
                "404": _NOT_FOUND,
            },
        },
        "patch": {
            "operationId": "editVideoconference",
            "summary": "Before it starts: times again from its lesson (moved), or another lesson",
            "requestBody": _body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"lesson_id": _ID},
                }
            ),
            "responses": {
                "200": _json("the videoconference", _VC_REF),
                **_SIGNED,
                "404": _err("not_found, unknown_chat or unknown_lesson"),
                "409": _err("call_state (it started), lesson_overlap or videoconference_exists"),
                "422": _err(
                    "start_in_past, end_in_past, invalid_times, too_long, lesson_cancelled"
                    " or lesson_mismatch"
                ),
            },
        },
        "delete": {
            "operationId": "deleteVideoconference",
            "summary": "Before it starts: cancel it",
            "responses": {
                "200": _json("the videoconference, cancelled", _VC_REF),
                **_SIGNED,
                "404": _NOT_FOUND,
                "409": _STATE_409,
            },
        },
    },
    "/journal/v1/videoconferences/{videoconference_id}/end": {
        "parameters": [_VC_PARAM],
        "post": {
            "operationId": "endVideoconference",
            "summary": "End a running videoconference for everyone (Закончить видеоконференцию)",
            "responses": {
                "200": _json("the videoconference, ended", _VC_REF),
                **_SIGNED,
                "404": _NOT_FOUND,
                "409": _STATE_409,
            },
        },
    },
    "/journal/v1/videoconferences/{videoconference_id}/participants/{account_id}": {
        "parameters": [_VC_PARAM, _ACCOUNT_PARAM],
        "put": {
            "operationId": "setVideoconferenceParticipant",
            "summary": "Block or unblock a participant; a blocked one in the call is put out",
            "requestBody": _body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["blocked"],
                    "properties": {"blocked": {"type": "boolean"}},
                }
            ),
            "responses": {
                "200": _json("the videoconference", _VC_REF),
                **_SIGNED,
                "404": _err("not_found, or not_invited: the account is not a participant"),
                "409": _STATE_409,
                "422": _err("owner: the lesson's teacher is never blocked"),
            },
        },
    },
    "/journal/v1/videoconferences/{videoconference_id}/attendance": {
        "parameters": [_VC_PARAM],
        "get": {
            "operationId": "getVideoconferenceAttendance",
            "summary": "Each student's attendance of an ended videoconference",
            "responses": {
                "200": _json("attendance", {"$ref": "#/components/schemas/Attendance"}),
                **_SIGNED,
                "404": _NOT_FOUND,
                "409": _err("not_ended"),
            },
        },
    },
    "/journal/v1/accounts/{account_id}/videoconferences": {
        "parameters": [_ACCOUNT_PARAM],
        "get": {
            "operationId": "listAccountVideoconferences",
            "summary": "The account's videoconferences by start (the diary's list, R25)",
            "responses": {
                "200": _json(
                    "the videoconferences",
                    {
                        "type": "object",
                        "required": ["account_id", "videoconferences"],
                        "properties": {
                            "account_id": {"type": "string"},
                            "videoconferences": {"type": "array", "items": _VC_REF},
                        },
                    },
                ),
                **_SIGNED,
            },
        },
    },
}
