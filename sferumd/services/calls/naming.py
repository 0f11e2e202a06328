"""The names of lesson calls, as the journal shows them (R16).

Rules:

- A lesson call is named ``<class> - <subject> - <DD.MM.YYYY> - <HH.MM> - <HH.MM>``, e.g.
  ``7В - История - 26.01.2024 - 12.00 - 13.00``: the manual's form, dots in the times too.
- Dates and times are the school's wall clock (``CallSettings.time_zone``, Europe/Moscow by
  default), never UTC and never the server's zone; the date is the start's.
- Class and subject names are trimmed and must not be empty (``invalid_field``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sferumd.services.calls.errors import CallCode, CallError

DEFAULT_ZONE = "Europe/Moscow"


def _local(ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)


def lesson_slot(start_ms: int, end_ms: int, time_zone: str = DEFAULT_ZONE) -> str:
    """``26.01.2024 - 12.00 - 13.00``: the "Урок" field of the journal's form."""
    zone = ZoneInfo(time_zone)
    start, end = _local(start_ms, zone), _local(end_ms, zone)
    return f"{start:%d.%m.%Y} - {start:%H.%M} - {end:%H.%M}"


def lesson_call_name(
    class_name: str,
    subject_name: str,
    start_ms: int,
    end_ms: int,
    time_zone: str = DEFAULT_ZONE,
) -> str:
    parts = []
    for what, value in (("class name", class_name), ("subject name", subject_name)):
        trimmed = " ".join(value.split())
        if not trimmed:
            raise CallError(CallCode.INVALID_FIELD, f"the {what} is empty")
        parts.append(trimmed)
    return f"{parts[0]} - {parts[1]} - {lesson_slot(start_ms, end_ms, time_zone)}"
