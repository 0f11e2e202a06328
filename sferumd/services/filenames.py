"""File names: what an upload may be called, and how the name goes back out in
``Content-Disposition``.

A name is only ever shown and offered for saving, never joined into a path (files are
stored by content hash), but clients save files under it, so it must not carry a path,
control or invisible characters (line breaks, bidi overrides that make ``exe.jpg`` read as
``gpj.exe``) or surrounding spaces. It is stored in Unicode NFC, the form every system
shows the same way (macOS sends NFD).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

SEPARATORS = frozenset("/\\")
# RFC 5987 section 3.2.1 attr-char, besides letters and digits (which quote keeps).
ATTR_CHARS = "!#$&+-.^_`|~"


def validate_name(raw: str | None, max_chars: int) -> str:
    """The name in NFC, or ValueError saying what is wrong with it."""
    if raw is None or raw == "":
        raise ValueError("send the file name in ?name=")
    name = unicodedata.normalize("NFC", raw)
    if len(name) > max_chars:
        raise ValueError(f"the file name is longer than {max_chars} characters")
    for ch in name:
        if ch in SEPARATORS:
            raise ValueError("the file name must not contain / or \\")
        category = unicodedata.category(ch)
        if category[0] == "C" or category in ("Zl", "Zp"):
            raise ValueError(
                f"the file name must not contain control or invisible characters (U+{ord(ch):04X})"
            )
    if name.strip() != name or not name.strip():
        raise ValueError("the file name must not be blank or start or end with a space")
    if name in (".", ".."):
        raise ValueError("the file name must not be . or ..")
    return name


def ascii_fallback(name: str) -> str:
    """The name for clients that do not read ``filename*``: printable ASCII without quotes,
    backslashes or ``;`` (legal inside a quoted-string, but parsers that split the header on
    ``;`` break on it; ``filename*`` carries the exact name anyway)."""
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\;' else "_" for ch in name)


def content_disposition(disposition: str, name: str) -> str:
    """``Content-Disposition`` with the name both as a plain ASCII ``filename`` and as an
    RFC 5987 ``filename*`` in UTF-8 (RFC 6266 section 4.3: readers that know ``filename*``
    prefer it, so a Cyrillic name arrives intact)."""
    encoded = quote(name, safe=ATTR_CHARS, encoding="utf-8")
    return f"{disposition}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"
