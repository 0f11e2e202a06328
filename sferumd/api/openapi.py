"""The OpenAPI 3 description of the journal API (``GET /journal/v1/openapi.json``)."""

from __future__ import annotations

import copy
from typing import Any

from sferumd import __version__
from sferumd.api import calls_openapi

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_REFUSALS = {
    "400": _err("invalid_field or bad_json"),
    "401": _err("unknown_journal, bad_signature, stale_request, bad_nonce or replayed_request"),
    "413": _err("too_large"),
}

_ACCOUNT = {
    "name": "account_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
    "description": "the journal's own account id",
}

_STATUS = {
    "type": "object",
    "required": ["linked"],
    "properties": {
        "linked": {"type": "boolean"},
        "user_id": {"type": "string"},
        "linked_at": {"type": "string", "format": "date-time"},
    },
}

_CHANGE = {
    "type": "object",
    "required": ["op", "kind", "id", "version"],
    "properties": {
        "op": {"type": "string", "enum": ["upsert", "delete"]},
        "kind": {
            "type": "string",
            "enum": [
                "school",
                "academic_year",
                "class",
                "subject",
                "person",
                "enrollment",
                "guardianship",
                "group",
                "teaching",
                "lesson",
            ],
        },
        "id": {"type": "string", "minLength": 1, "maxLength": 128},
        "version": {
            "type": "integer",
            "minimum": 0,
            "description": "the journal's modification time, ms since the epoch",
        },
        "data": {
            "type": "object",
            "description": "the entity's fields (upsert only); see PROTOCOL.md, Journal roster",
        },
    },
}

_OUTCOME = {
    "type": "object",
    "required": ["delivery_id", "applied", "stale", "unchanged", "rejected", "errors"],
    "properties": {
        "delivery_id": {"type": ["string", "null"]},
        "applied": {"type": "integer"},
        "stale": {"type": "integer", "description": "older than what is stored: ignored"},
        "unchanged": {"type": "integer"},
        "deactivated": {"type": "integer", "description": "deleted: not in the snapshot"},
        "rejected": {"type": "integer"},
        "duplicate": {"type": "boolean", "description": "a replay: nothing was changed"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ChangeProblem"}},
        "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/ChangeProblem"}},
    },
}

_PROBLEM = {
    "type": "object",
    "required": ["index", "code", "message"],
    "properties": {
        "index": {"type": "integer"},
        "kind": {"type": ["string", "null"]},
        "id": {"type": ["string", "null"]},
        "code": {"type": "string"},
        "message": {"type": "string"},
    },
}


def _roster_op(operation_id: str, summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {
                    "description": "what the delivery did, entity by entity",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Outcome"}}
                    },
                },
                **_REFUSALS,
                "400": _err("bad_json, bad_batch or too_many_changes"),
            },
        }
    }


_JOURNAL_CHAT = {
    "type": "object",
    "required": ["chat_id", "type", "name", "room_id", "members"],
    "properties": {
        "chat_id": {"type": ["string", "null"], "description": "null for a chat made by hand"},
        "type": {"type": "string", "enum": ["class", "parents", "colleagues", "subject", "other"]},
        "name": {"type": ["string", "null"]},
        "room_id": {"type": ["string", "null"]},
        "class": {"type": "object"},
        "subject": {"type": ["object", "null"]},
        "admin": {
            "type": ["object", "null"],
            "properties": {"account_id": {"type": "string"}, "name": {"type": "string"}},
        },
        "members": {"type": "integer", "description": "joined now"},
        "pending": {"type": "integer", "description": "in the roster, not linked yet"},
        "pending_accounts": {"type": "array", "items": {"type": "string"}},
        "added": {"type": "array", "items": {"type": "string"}},
        "removed": {"type": "array", "items": {"type": "string"}},
        "url": {"type": ["string", "null"], "description": "opens the chat in the messenger"},
    },
}

_CHAT_ID = {
    "name": "chat_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 140},
    "description": "a subject chat's id, subject:<ref>",
}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_CHAT_REF = {"$ref": "#/components/schemas/JournalChat"}
_CHAT_REFUSALS = {
    **_REFUSALS,
    "404": _err("not_found: no such subject chat of this journal"),
    "422": _err("unknown_entity or not_teaching"),
}

_DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "sferumd journal API",
        "version": __version__,
        "description": (
            "Server-to-server API for school journals. Every request carries X-Sferum-Journal"
            " (the journal id from `sferumd admin add-journal`), X-Sferum-Timestamp (unix"
            " seconds), X-Sferum-Nonce (16..64 of A-Z a-z 0-9 _ -, new for every request; a"
            " nonce seen before is refused as replayed_request) and X-Sferum-Signature: hex"
            " HMAC-SHA256(secret, timestamp + '.' + nonce + '.' + METHOD + ' ' +"
            " path_and_query + '.' + body), with an empty body for GET and DELETE. Webhooks"
            " sferumd sends to the journal are signed over timestamp + '.' + body."
        ),
    },
    "components": {
        "securitySchemes": {
            "journalSignature": {"type": "apiKey", "in": "header", "name": "X-Sferum-Signature"}
        },
        "schemas": {
            "Error": _ERROR,
            "LinkStatus": _STATUS,
            "Change": _CHANGE,
            "Outcome": _OUTCOME,
            "ChangeProblem": _PROBLEM,
            "JournalChat": _JOURNAL_CHAT,
        },
    },
    "security": [{"journalSignature": []}],
    "paths": {
        "/journal/v1/link-sessions": {
            "post": {
                "operationId": "createLinkSession",
                "summary": "A one-time URL that links one journal account to a profile",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["account_id", "role", "school_id"],
                                "properties": {
                                    "account_id": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 128,
                                    },
                                    "role": {
                                        "type": "string",
                                        "enum": ["teacher", "student", "parent"],
                                    },
                                    "school_id": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 128,
                                    },
                                    "school_name": {"type": "string", "maxLength": 200},
                                    "display_name": {"type": "string", "maxLength": 200},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "the session",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["session_id", "url", "expires_at"],
                                    "properties": {
                                        "session_id": {"type": "string"},
                                        "url": {"type": "string", "format": "uri"},
                                        "expires_at": {"type": "string", "format": "date-time"},
                                    },
                                }
                            }
                        },
                    },
                    **_REFUSALS,
                    "429": _err(
                        "rate_limited: journal.link_sessions_per_minute reached; the body has"
                        " retry_after (seconds), also sent as Retry-After"
                    ),
                },
            }
        },
        "/journal/v1/accounts/{account_id}/link": {
            "parameters": [_ACCOUNT],
            "get": {
                "operationId": "getLinkStatus",
                "summary": "Whether this journal's account is linked to a profile",
                "responses": {
                    "200": {
                        "description": "link status",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/LinkStatus"}
                            }
                        },
                    },
                    **_REFUSALS,
                },
            },
            "delete": {
                "operationId": "unlinkAccount",
                "summary": "Unlink the account (idempotent: answers linked false)",
                "responses": {
                    "200": {
                        "description": "unlinked",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/LinkStatus"}
                            }
                        },
                    },
                    **_REFUSALS,
                },
            },
        },
        "/journal/v1/events": _roster_op(
            "deliverRosterChanges",
            "A batch of roster upserts and deletes; replays (same delivery_id) change nothing",
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["delivery_id", "changes"],
                "properties": {
                    "delivery_id": {"type": "string", "pattern": "^[!-~]{1,128}$"},
                    "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
                },
            },
        ),
        "/journal/v1/snapshot": _roster_op(
            "deliverRosterSnapshot",
            "The whole roster: entities it no longer lists are deleted at its version",
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["delivery_id", "version", "entities"],
                "properties": {
                    "delivery_id": {"type": "string", "pattern": "^[!-~]{1,128}$"},
                    "version": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                    "entities": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Change"},
                    },
                },
            },
        ),
        "/journal/v1/oneroster": {
            "post": {
                "operationId": "importOneRoster",
                "summary": "A OneRoster 1.2 CSV zip (bulk or delta); bulk files act as a snapshot",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/zip": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": (
                            "what the import did; with Accept: application/x-ndjson, progress"
                            " lines {progress: {phase, done, total}} then {result} or {error}"
                        ),
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Outcome"}
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    **_REFUSALS,
                    "400": _err(
                        "bad_zip, too_many_members, too_large, bad_encoding, bad_manifest,"
                        " missing_file, bad_csv or missing_columns"
                    ),
                },
            }
        },
        "/journal/v1/accounts/{account_id}/chats": {
            "parameters": [_ACCOUNT],
            "get": {
                "operationId": "listAccountChats",
                "summary": "The account's chats (pending ones too, before it links)",
                "responses": {
                    "200": _json_response(
                        "the chats",
                        {
                            "type": "object",
                            "required": ["account_id", "linked", "chats"],
                            "properties": {
                                "account_id": {"type": "string"},
                                "linked": {"type": "boolean"},
                                "chats": {"type": "array", "items": _CHAT_REF},
                            },
                        },
                    ),
                    **_REFUSALS,
                },
            },
        },
        "/journal/v1/subject-chats": {
            "post": {
                "operationId": "createSubjectChat",
                "summary": "A subject chat for a class and a subject the teacher teaches there",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["teacher_id", "class_id", "subject_id"],
                        "properties": {
                            "teacher_id": {"type": "string", "maxLength": 128},
                            "class_id": {"type": "string", "maxLength": 128},
                            "subject_id": {"type": "string", "maxLength": 128},
                            "group_id": {"type": "string", "maxLength": 128},
                            "name": {"type": "string", "maxLength": 200},
                        },
                    }
                ),
                "responses": {
                    "201": _json_response("the chat, with members and pending", _CHAT_REF),
                    **_CHAT_REFUSALS,
                    "409": _err("chat_exists: the body's chat_id names it"),
                },
            }
        },
        "/journal/v1/subject-chats/{chat_id}": {
            "parameters": [_CHAT_ID],
            "get": {
                "operationId": "getSubjectChat",
                "summary": "One subject chat",
                "responses": {"200": _json_response("the chat", _CHAT_REF), **_CHAT_REFUSALS},
            },
            "patch": {
                "operationId": "renameSubjectChat",
                "summary": "Rename a subject chat",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 200}
                        },
                    }
                ),
                "responses": {"200": _json_response("the chat", _CHAT_REF), **_CHAT_REFUSALS},
            },
            "delete": {
                "operationId": "deleteSubjectChat",
                "summary": "Everyone leaves; the messages stay as history",
                "responses": {
                    "200": _json_response(
                        "deleted",
                        {"type": "object", "properties": {"deleted": {"type": "boolean"}}},
                    ),
                    **_CHAT_REFUSALS,
                },
            },
        },
        "/journal/v1/subject-chats/{chat_id}/members": {
            "parameters": [_CHAT_ID],
            "post": {
                "operationId": "editSubjectChatMembers",
                "summary": "Add or remove accounts by hand; kept across reconciliations",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "add": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                            "remove": {
                                "type": "array",
                                "items": {"type": "string"},
                                "maxItems": 1000,
                            },
                        },
                    }
                ),
                "responses": {"200": _json_response("the chat", _CHAT_REF), **_CHAT_REFUSALS},
            },
        },
        "/journal/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no signature needed)",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3 document"}},
            }
        },
    },
}

# Online lessons (api.calls): their paths and schemas are written beside their handlers.
_DOC["paths"].update(calls_openapi.PATHS)
_DOC["components"]["schemas"].update(calls_openapi.SCHEMAS)


def document() -> dict[str, Any]:
    return copy.deepcopy(_DOC)
