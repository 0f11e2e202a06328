"""Limits the protocol enforces. The daemon reads them from its settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 64 * 1024
    max_content_bytes: int = 32 * 1024  # encoded size of an event's content
    max_body_chars: int = 16_000  # content.body of a message
    max_name_chars: int = 255  # room name
    max_topic_chars: int = 1024
    max_reason_chars: int = 512
    max_txn_chars: int = 64
    max_id_chars: int = 128  # room, user and event ids
    max_type_chars: int = 64  # event types
    max_list_items: int = 100  # invite lists, user id lists
    max_depth: int = 8  # nesting of content maps and lists
    history_limit_max: int = 1000
    history_max_bytes: int = 512 * 1024  # a history page holds fewer events past this size
    sync_limit_default: int = 100
    sync_limit_max: int = 10_000
    typing_timeout_ms_max: int = 60_000
