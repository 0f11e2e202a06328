"""Loading the demo school into a running daemon, the way a real journal would: the roster
through the signed webhook path, links through link sessions confirmed by the demo people's
own devices, and one subject chat through the journal's chat API. Running it again in the
same week changes nothing (the delivery id names the week; links and chats are looked up).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from clients.journal import JournalClient, JournalError
from sferumd import config
from sferumd.demo import DemoPerson, DemoSchool, demo_school

JOURNAL_NAME = "Демо-журнал"
JOURNAL_FILE = "demo-journal.json"  # in the data directory: the demo journal's id and secret


@dataclass(frozen=True, slots=True)
class DemoLoaded:
    school: DemoSchool
    subject_chat: str | None  # the demo subject chat's name
    lesson: dict[str, Any] | None = None  # the online lesson running now (the journal's view)


def _demo_journal(data_dir: Path) -> tuple[str, str]:
    """The demo journal's id and secret, registered on first use."""
    from sferumd.store.sqlite import add_journal_sync, connect_sync

    path = data_dir / JOURNAL_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        return str(saved["journal_id"]), str(saved["secret"])
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect_sync(config.load(None, data_dir=str(data_dir)).db_path)
    try:
        journal = add_journal_sync(conn, JOURNAL_NAME, None)
    finally:
        conn.close()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"journal_id": journal.journal_id, "secret": journal.secret}, fh)
    return journal.journal_id, journal.secret


def _device_token(data_dir: Path, person: DemoPerson) -> str:
    """A device of the demo person's profile (made with the phone, like a sign-in would)."""
    from sferumd.store.sqlite import add_user_device_sync, connect_sync

    last, first = person.full_name.split()[:2]
    conn = connect_sync(config.load(None, data_dir=str(data_dir)).db_path)
    try:
        return add_user_device_sync(conn, person.phone, first, last).token
    finally:
        conn.close()


async def load_demo(
    server: str, data_dir: Path, today: date | None = None, *, lesson_now: bool = True
) -> DemoLoaded:
    """``lesson_now``: also an online lesson running from now (off for a daemon on a test
    clock, whose "now" is elsewhere)."""
    # The direct database writes run in a thread: this may run inside the daemon's own loop.
    journal_id, secret = await asyncio.to_thread(_demo_journal, data_dir)
    school = demo_school(int(time.time() * 1000), today or date.today())
    schools = [c for c in school.changes if c["kind"] == "school"]
    school_id, school_name = schools[0]["id"], schools[0]["data"]["name"]
    async with JournalClient(server, journal_id, secret) as journal:
        delivery = {
            "delivery_id": f"demo-{school.week_start.isoformat()}",
            "changes": school.changes,
        }
        await journal.call("POST", "/journal/v1/events", delivery)
        for person in school.hints:
            status = await journal.call("GET", f"/journal/v1/accounts/{person.account_id}/link")
            if not status["linked"]:
                await _link(journal, server, data_dir, person, school_id, school_name)
        ask = _subject_teaching(school)
        chat = lesson = None
        if ask is not None:
            chat = await _subject_chat(journal, ask)
            lesson = await _demo_lesson(journal, ask) if lesson_now else None
    return DemoLoaded(school, chat, lesson)


async def _link(
    journal: JournalClient,
    server: str,
    data_dir: Path,
    person: DemoPerson,
    school_id: str,
    school_name: str,
) -> None:
    offer = {
        "account_id": person.account_id,
        "role": person.role,
        "school_id": school_id,
        "school_name": school_name,
    }
    session = await journal.call("POST", "/journal/v1/link-sessions", offer)
    token = session["url"].rsplit("/", 1)[1]
    device = await asyncio.to_thread(_device_token, data_dir, person)
    headers = {"Authorization": f"Bearer {device}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server}/v1/link/{token}/confirm", headers=headers) as resp,
    ):
        if resp.status != 200:
            body = await resp.json(content_type=None)
            raise JournalError(resp.status, body["error"]["code"], body["error"]["message"])


def _subject_teaching(school: DemoSchool) -> dict[str, str] | None:
    """What the demo subject chat is for: the first demo subject teacher's first whole-class
    teaching."""
    teachers = [p.account_id for p in school.hints if p.role == "teacher"]
    teaching = [
        c["data"]
        for c in school.changes
        if c["kind"] == "teaching"
        and c["data"]["teacher_id"] in teachers[1:]
        and not c["data"].get("group_id")
    ]
    if not teaching:
        return None
    return {k: teaching[0][k] for k in ("teacher_id", "class_id", "subject_id")}


async def _subject_chat(journal: JournalClient, ask: dict[str, str]) -> str | None:
    try:
        made: dict[str, Any] = await journal.call("POST", "/journal/v1/subject-chats", ask)
    except JournalError as err:
        if err.code != "chat_exists":
            raise
        return None
    return str(made["name"])


DEMO_LESSON_MINUTES = 45


async def _demo_lesson(journal: JournalClient, ask: dict[str, str]) -> dict[str, Any] | None:
    """An online lesson in the demo subject chat that runs from now for 45 minutes, so the
    lessons page and the call have something to open at once. While one is still scheduled
    or running, running the demo again keeps it."""
    teacher = ask["teacher_id"]
    mine = await journal.call("GET", f"/journal/v1/accounts/{teacher}/videoconferences")
    for vc in mine["videoconferences"]:
        if vc["state"] in ("scheduled", "open", "running"):
            return dict(vc)
    chats = await journal.call("GET", f"/journal/v1/accounts/{teacher}/chats")
    chat = next(
        (
            c
            for c in chats["chats"]
            if c["type"] == "subject"
            and c["class"]["id"] == ask["class_id"]
            and (c["subject"] or {}).get("id") == ask["subject_id"]
        ),
        None,
    )
    if chat is None:
        return None
    now = datetime.now(UTC).replace(microsecond=0)
    lesson_id = f"LS-DEMO-{now:%Y%m%d%H%M%S}"
    lesson = {
        "op": "upsert",
        "kind": "lesson",
        "id": lesson_id,
        "version": int(time.time() * 1000),
        "data": {
            "class_id": ask["class_id"],
            "subject_id": ask["subject_id"],
            "teacher_id": teacher,
            "start": now.isoformat(),
            "end": (now + timedelta(minutes=DEMO_LESSON_MINUTES)).isoformat(),
        },
    }
    await journal.call(
        "POST", "/journal/v1/events", {"delivery_id": lesson_id, "changes": [lesson]}
    )
    ask = {"chat_id": chat["chat_id"], "lesson_id": lesson_id, "teacher_id": teacher}
    made: dict[str, Any] = await journal.call("POST", "/journal/v1/videoconferences", ask)
    return made


ROLE_NAMES = {"teacher": "учитель", "student": "ученик", "parent": "родитель"}


def hints_text(loaded: DemoLoaded, server: str) -> str:
    school = loaded.school
    lines = [
        f"Демо-школа «{school.school_name}» загружена: чаты классов, родителей, учителей"
        + (f" и предметный чат «{loaded.subject_chat}»." if loaded.subject_chat else "."),
        "Войдите под любым из этих номеров; SMS не отправляются, код печатается в журнале"
        ' демона (строка "sms code"):',
    ]
    for p in school.hints:
        lines.append(f"  {p.phone}  {ROLE_NAMES[p.role]:<9} {p.full_name} — {p.about}")
    lines.append(f"  например: .venv/bin/sferum --server {server} login {school.hints[0].phone}")
    lines.append(f"Веб-клиент: {server}/")
    if loaded.lesson is not None:
        lines.append(f"Онлайн-урок «{loaded.lesson['name']}» идёт сейчас: {server}/lessons")
    return "\n".join(lines)
