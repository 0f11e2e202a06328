"""Field rules of rich messages: edit texts, reaction keys, polls and votes. Pure.

Each check has the shape of ``protocol.validate``'s field checks, ``(name, value, limits)``
to the accepted value, and refuses with ``ProtocolError`` (no request id: ``validate.parse``
adds it). Text meant to be shown (a poll's question and options, a reaction key) must be
visible: no control characters, surrogates, private-use or unassigned code points, line or
paragraph separators, and of the invisible format characters only the ones emoji sequences
are built with (zero-width joiner, tag characters for subdivision flags). The content of
``send`` (replies, mentions) is checked by ``sferumd.services.messages.message_refs``.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits

ZWJ = "\u200d"
# Format characters (category Cf) that emoji need: the joiner and the tag characters of
# subdivision flags (U+E0020..U+E007F). Every other Cf (bidi overrides, zero-width spaces,
# soft hyphens) hides or reorders text and is refused.
EMOJI_FORMAT = frozenset({ZWJ, *(chr(c) for c in range(0xE0020, 0xE0080))})
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, message)


def _visible(name: str, value: Any, limit: int, *, spaces: bool) -> str:
    """A string of 1..limit code points with nothing hidden in it (see the module doc)."""
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    if len(value) > limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} is longer than {limit} characters")
    text = unicodedata.normalize("NFC", value.strip() if spaces else value)
    if not text:
        raise _invalid(f"{name} must not be empty")
    for ch in text:
        category = unicodedata.category(ch)
        if (
            category in REFUSED_CATEGORIES
            or (category == "Cf" and ch not in EMOJI_FORMAT)
            or (category == "Zs" and not spaces)
        ):
            raise _invalid(f"{name} holds the character U+{ord(ch):04X}, which is not allowed")
    if unicodedata.category(text[0]) in ("Mn", "Mc", "Me") or text[0] in EMOJI_FORMAT:
        raise _invalid(f"{name} starts with a combining or joining character")
    return text


def reaction_key(name: str, value: Any, limits: Limits) -> str:
    """One emoji or a short word (``👍``, ``👨‍👩‍👧``, ``🏳️‍🌈``, ``+1``), compared in NFC."""
    return _visible(name, value, limits.max_reaction_key_chars, spaces=False)


def poll_question(name: str, value: Any, limits: Limits) -> str:
    return _visible(name, value, limits.max_poll_question_chars, spaces=True)


def poll_options(name: str, value: Any, limits: Limits) -> list[str]:
    """2..max_poll_options distinct answers, each trimmed and visible."""
    if not isinstance(value, list):
        raise _invalid(f"{name} must be a list of strings")
    if len(value) > limits.max_poll_options:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{name} has more than {limits.max_poll_options} options"
        )
    if len(value) < 2:
        raise _invalid(f"{name} needs at least 2 options")
    out: list[str] = []
    for i, item in enumerate(value):
        text = _visible(f"{name}[{i}]", item, limits.max_poll_option_chars, spaces=True)
        if text in out:
            raise _invalid(f"{name}[{i}] repeats {name}[{out.index(text)}]")
        out.append(text)
    return out


def vote_choices(name: str, value: Any, limits: Limits) -> list[int]:
    """A non-empty set of option indexes, returned in ascending order. Whether they exist in
    the poll, and whether it takes more than one, is the poll's business (services.polls)."""
    if not isinstance(value, list):
        raise _invalid(f"{name} must be a list of option numbers")
    if len(value) > limits.max_poll_options:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{name} has more than {limits.max_poll_options} items"
        )
    if not value:
        raise _invalid(f"{name} must name at least one option")
    seen: set[int] = set()
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise _invalid(f"{name}[{i}] must be an option number")
        if not 0 <= item < limits.max_poll_options:
            raise _invalid(f"{name}[{i}] must be between 0 and {limits.max_poll_options - 1}")
        if item in seen:
            raise _invalid(f"{name}[{i}] repeats option {item}")
        seen.add(item)
    return sorted(seen)


def edit_body(name: str, value: Any, limits: Limits) -> str:
    """The new text of a message: as ``content.body`` of ``send``, and not blank."""
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    if len(value) > limits.max_body_chars:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{name} is longer than {limits.max_body_chars} characters"
        )
    if not value.strip():
        raise _invalid(f"{name} must not be blank")
    return value
