"""The journal's view of lesson calls: times in the school's zone, the videoconference JSON of
the journal API, and the attendance report its webhook and ``GET .../attendance`` carry.

Pure: from a call's facts and document to plain maps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sferumd.services.calls import attendance as at
from sferumd.services.calls.codec import CallDocument
from sferumd.services.calls.lifecycle import CallState, attendance_window
from sferumd.services.calls.participants import Category
from sferumd.services.calls.settings import CallSettings
from sferumd.store.calls import CallFacts

VIDEOCONFERENCE_TYPE = "online_lesson"  # the journal's "Онлайн-урок"
CATEGORY_LISTS = {Category.STAFF: "staff", Category.STUDENT: "students", Category.PARENT: "parents"}


def local(ms: int, settings: CallSettings) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(ZoneInfo(settings.time_zone))


def rfc3339(ms: int | None, settings: CallSettings) -> str | None:
    return None if ms is None else local(ms, settings).isoformat(timespec="seconds")


def join_url(base_url: str, call_id: str) -> str:
    return f"{base_url}/calls/{call_id}"


def videoconference(
    facts: CallFacts,
    name: str,
    doc: CallDocument,
    settings: CallSettings,
    base_url: str,
    now_ms: int,
    *,
    linked: set[str] | None = None,
) -> dict[str, Any]:
    """A lesson call as the journal lists it; with ``linked`` (the accounts that have a
    messenger profile) also its participant lists."""
    call = doc.call
    joinable = call.state in (CallState.OPEN, CallState.RUNNING) and now_ms < call.end_ms
    out: dict[str, Any] = {
        "videoconference_id": facts.call_id,
        "type": VIDEOCONFERENCE_TYPE,
        "name": name,
        "state": call.state.value,
        "chat_id": facts.chat_key,
        "lesson_id": facts.lesson_id,
        "class_id": facts.class_id,
        "teacher_id": doc.roster.owner_id,
        "date": local(call.start_ms, settings).date().isoformat(),
        "start": rfc3339(call.start_ms, settings),
        "end": rfc3339(call.end_ms, settings),
        "start_ms": call.start_ms,
        "end_ms": call.end_ms,
        "url": join_url(base_url, facts.call_id),
        "url_active_from": rfc3339(call.opens_at_ms, settings),
        "joinable": joinable,
        "room_id": facts.call_room_id,
    }
    if linked is not None:
        lists: dict[str, list[dict[str, Any]]] = {name: [] for name in CATEGORY_LISTS.values()}
        for person_id, inv in sorted(doc.roster.invitees.items()):
            lists[CATEGORY_LISTS[inv.category]].append(
                {"account_id": person_id, "blocked": inv.blocked, "linked": person_id in linked}
            )
        out["participants"] = lists
    return out


def attendance(
    facts: CallFacts, name: str, doc: CallDocument, settings: CallSettings
) -> dict[str, Any]:
    """Every student of an ended lesson call; ``ran`` false (and no students) if it never
    ran, e.g. its whole time passed while the daemon was down."""
    call = doc.call
    report = at.lesson_attendance(call, doc.roster, settings)
    window = attendance_window(call)
    students = [
        {
            "account_id": a.person_id,
            "present": a.present,
            "minutes": a.minutes,
            "joined_late": a.joined_late,
            "left_early": a.left_early,
            "first_in": rfc3339(a.first_in_ms, settings),
            "last_out": rfc3339(a.last_out_ms, settings),
        }
        for a in report or ()
    ]
    return {
        "videoconference_id": facts.call_id,
        "name": name,
        "lesson_id": facts.lesson_id,
        "chat_id": facts.chat_key,
        "class_id": facts.class_id,
        "ran": report is not None,
        "start": rfc3339(window[0] if window else None, settings),
        "end": rfc3339(window[1] if window else None, settings),
        "students": students,
    }
