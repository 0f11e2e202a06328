"""The OpenAPI 3 description of the journal API (``GET /journal/v1/openapi.json``)."""

from __future__ import annotations

import copy
from typing import Any

from sferumd import __version__

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
                                    "account_id": {"type": "string", "maxLength": 128},
                                    "role": {
                                        "type": "string",
                                        "enum": ["teacher", "student", "parent"],
                                    },
                                    "school_id": {"type": "string", "maxLength": 128},
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
                    "delivery_id": {"type": "string", "minLength": 1, "maxLength": 128},
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
                    "delivery_id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "version": {"type": "integer", "minimum": 0},
                    "entities": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Change"},
                    },
                },
            },
        ),
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


def document() -> dict[str, Any]:
    return copy.deepcopy(_DOC)
