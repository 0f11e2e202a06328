"""Limits the protocol enforces. The daemon reads them from its settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # 128 KiB: a receive answer of a full class (about 1 KB of SDP per m-line) must fit.
    max_frame_bytes: int = 128 * 1024
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
    max_mute_s: int = 366 * 86_400  # mute duration_s
    # Rich messages (protocol.rich, services.messages, services.polls).
    max_mentions: int = 50  # content.mentions of a message
    max_reaction_key_chars: int = 16  # a reaction key, in code points (a family emoji is 7)
    max_reactions_per_user: int = 20  # different keys one user puts on one message
    max_pins: int = 50  # pinned events of a room
    max_poll_question_chars: int = 300
    max_poll_options: int = 12
    max_poll_option_chars: int = 100
    # Message search (services.search).
    max_search_query_chars: int = 500  # the search op's query
    search_limit_max: int = 100  # hits in one search page
    # Calls (services.calls): an SDP offer in call_join; the SFU reads what is inside.
    max_sdp_chars: int = 120_000
