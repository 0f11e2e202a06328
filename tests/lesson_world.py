"""A small school with lessons for the call tests: the daemon's test clock, the roster of
tests.test_roster_api with lessons added, linked people with websocket clients, a subject
chat, and signed calls to the journal's videoconference API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from tests.conftest import User
from tests.test_linking import add_journal, jcall
from tests.test_roster_api import SCHOOL, T0, deliver, link, up

MSK = timezone(timedelta(hours=3))
# The test clock's days: a Monday in the future, whatever the machine's date.
MONDAY = datetime(2030, 3, 4, tzinfo=MSK)
CLOCK = """
[debug]
test_clock = true
"""
VC = "/journal/v1/videoconferences"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def lesson(
    sid: str,
    start: datetime,
    minutes: int = 45,
    *,
    class_id: str = "C-7V",
    subject: str = "HIST",
    teacher: str = "T-HIST",
    version: int = T0,
    **extra: Any,
) -> dict[str, Any]:
    return up(
        "lesson",
        sid,
        version,
        class_id=class_id,
        subject_id=subject,
        teacher_id=teacher,
        start=start.isoformat(),
        end=(start + timedelta(minutes=minutes)).isoformat(),
        **extra,
    )


async def set_clock(d: Any, when: datetime | int | None) -> dict[str, Any]:
    """Stop the daemon's call clock there; returns once the scheduler has caught up."""
    now = ms(when) if isinstance(when, datetime) else when
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + "/debug/v1/clock", json={"now_ms": now}) as r,
    ):
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return body


@dataclass
class School:
    d: Any
    j: dict[str, str]
    chat_id: str = ""
    people: dict[str, User] = field(default_factory=dict)  # account -> linked user

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        return await jcall(self.d, self.j, method, path, body)

    async def create(self, lesson_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
        ask = {"chat_id": self.chat_id, "lesson_id": lesson_id, "teacher_id": "T-HIST", **body}
        return await self.call("POST", VC, ask)

    async def made(self, lesson_id: str, **body: Any) -> dict[str, Any]:
        status, out = await self.create(lesson_id, **body)
        assert status == 201, out
        return out

    async def vc(self, call_id: str) -> dict[str, Any]:
        status, out = await self.call("GET", f"{VC}/{call_id}")
        assert status == 200, out
        return out

    def token(self, account: str) -> str:
        return self.people[account].token


ROLES = {"T-HOME": "teacher", "T-HIST": "teacher", "ST-1": "student", "ST-2": "student"}
ROLES["PA-1"] = "parent"


async def small_school(
    d: Any,
    lessons: list[dict[str, Any]],
    *,
    webhook: str | None = None,
    linked: tuple[str, ...] = ("T-HIST", "T-HOME", "ST-1", "ST-2", "PA-1"),
) -> School:
    """SCHOOL (7В: T-HOME homeroom, T-HIST teaches history, ST-1, ST-2, PA-1 the parent of
    ST-1) with ``lessons``, the ``linked`` accounts linked, and T-HIST's history chat."""
    school = School(d, add_journal(d, webhook=webhook))
    out = await deliver(d, school.j, "seed", [*SCHOOL, *lessons])
    assert out["rejected"] == 0, out
    for account in linked:
        user = d.add_user()
        await link(d, school.j, account, ROLES[account], user.token)
        school.people[account] = user
    status, chat = await school.call(
        "POST",
        "/journal/v1/subject-chats",
        {"teacher_id": "T-HIST", "class_id": "C-7V", "subject_id": "HIST"},
    )
    assert status == 201, chat
    school.chat_id = chat["chat_id"]
    return school
