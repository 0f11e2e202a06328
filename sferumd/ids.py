"""Identifiers. Random, URL-safe, with a sigil saying what they name (as in Matrix)."""

from __future__ import annotations

import hashlib
import secrets


def _random(n: int = 12) -> str:
    return secrets.token_urlsafe(n)


def room_id() -> str:
    return "!" + _random()


def user_id() -> str:
    return "@" + _random(9)


def event_id(pos: int) -> str:
    """The event's stream position, then a random part. Carrying the position lets the store
    find an event by its primary key, so the event log needs no index of ids (one B-tree
    less written per event); the random part keeps ids unique across reinstalls."""
    return f"${pos}-{_random(6)}"


def event_pos(event_id: str) -> int | None:
    """The position an event id names, or None if it is not one of ours."""
    head, sep, _ = event_id[1:].partition("-")
    return int(head) if sep and head.isdigit() and len(head) <= 16 else None


def device_id() -> str:
    return "D" + _random(9)


def device_token() -> str:
    # Hex, not base64url: a token starting with "-" would read as an option on a command line.
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough to store them safely.
    return hashlib.sha256(token.encode()).hexdigest()


def journal_id() -> str:
    return "J" + _random(9)


def journal_secret() -> str:
    return secrets.token_hex(32)


def link_session_id() -> str:
    return "L" + _random(9)


def link_token() -> str:
    # 256 random bits: unguessable; stored only as token_hash(token).
    return secrets.token_urlsafe(32)


def subject_chat_ref() -> str:
    """The reference of a journal's subject chat in its chat id, ``subject:<ref>``."""
    return _random(9)
