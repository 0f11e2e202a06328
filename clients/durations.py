"""Durations as people type them on a command line: ``90``, ``30s``, ``15m``, ``2h``, ``7d``,
``1w``, or several units largest first (``1h30m``). Whole seconds, at least one."""

from __future__ import annotations

import re

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Each unit at most once, largest first; up to 9 digits each keeps the number sane.
DURATION = re.compile(
    r"(?:(\d{1,9})w)?(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?"
)


def parse_duration(text: str) -> int:
    """Seconds in ``text``; ``ValueError`` naming the accepted forms otherwise."""
    value = text.strip().lower()
    if re.fullmatch(r"\d{1,12}", value):
        seconds = int(value)
    else:
        match = DURATION.fullmatch(value) if value else None
        if match is None or not any(match.groups()):
            raise ValueError(f"not a duration: {text!r} (e.g. 90, 30s, 15m, 2h, 7d, 1w, 1h30m)")
        seconds = sum(
            int(n) * size for n, size in zip(match.groups(), UNITS.values(), strict=True) if n
        )
    if seconds < 1:
        raise ValueError(f"a duration is at least one second, not {text!r}")
    return seconds
