"""Lesson call names in the school's time zone, and the call settings' own checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.naming import lesson_call_name, lesson_slot
from sferumd.services.calls.settings import CallSettings

MOSCOW = ZoneInfo("Europe/Moscow")


def ms(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=zone).timestamp() * 1000)


def test_the_manuals_example() -> None:
    start, end = ms(MOSCOW, 2024, 1, 26, 12, 0), ms(MOSCOW, 2024, 1, 26, 13, 0)
    assert (
        lesson_call_name("7В", "История", start, end) == "7В - История - 26.01.2024 - 12.00 - 13.00"
    )
    assert lesson_slot(start, end) == "26.01.2024 - 12.00 - 13.00"


def test_times_are_the_schools_wall_clock_not_utc() -> None:
    start = ms(ZoneInfo("UTC"), 2024, 1, 26, 21, 30)  # 00:30 the next day in Moscow
    name = lesson_call_name("8А", "Алгебра", start, start + 45 * 60_000)
    assert name == "8А - Алгебра - 27.01.2024 - 00.30 - 01.15"
    vladivostok = lesson_call_name("8А", "Алгебра", start, start + 45 * 60_000, "Asia/Vladivostok")
    assert vladivostok.endswith("27.01.2024 - 07.30 - 08.15")


def test_names_are_trimmed_and_must_not_be_empty() -> None:
    assert lesson_call_name("  7В ", "Русский  язык", 0, 60_000).startswith("7В - Русский язык - ")
    for cls, subject in (("", "История"), ("7В", " \t ")):
        with pytest.raises(CallError) as info:
            lesson_call_name(cls, subject, 0, 60_000)
        assert info.value.code is CallCode.INVALID_FIELD


@given(st.integers(0, 4_102_444_800_000), st.integers(1, 6 * 3600))
def test_the_name_always_has_the_five_parts(start: int, length_s: int) -> None:
    name = lesson_call_name("7В", "История", start, start + length_s * 1000)
    cls, subject, day, begin, end = name.split(" - ")
    local = datetime.fromtimestamp(start / 1000, MOSCOW)
    assert (cls, subject, day, begin) == ("7В", "История", f"{local:%d.%m.%Y}", f"{local:%H.%M}")
    assert len(end) == 5 and end[2] == "."


def test_settings_defaults_and_their_checks() -> None:
    s = CallSettings()
    assert (s.max_breakout_rooms, s.open_lead_ms, s.breakout_warning_ms) == (50, 0, 60_000)
    assert s.time_zone == "Europe/Moscow"
    bad: dict[str, Any]
    for bad in (
        {"max_breakout_rooms": 0},
        {"open_lead_s": -1},
        {"whiteboard_ops_per_s": 0.0},
        {"whiteboard_max_width": 1.5},
        {"time_zone": "Mars/Olympus"},
        {"max_invitees": 0},
    ):
        with pytest.raises(ValueError):
            replace(s, **bad)
