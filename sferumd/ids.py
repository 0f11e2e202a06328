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


def event_id() -> str:
    return "$" + _random(15)


def device_id() -> str:
    return "D" + _random(9)


def device_token() -> str:
    # Hex, not base64url: a token starting with "-" would read as an option on a command line.
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough to store them safely.
    return hashlib.sha256(token.encode()).hexdigest()
