"""The demo school end to end: `make run`'s `sferumd serve --demo` and `sferumd demo` load it
through the journal's own signed API; the people in the printed hints sign in with their
phone and find their chats."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from typing import Any

from clients.sdk import Client
from tests.test_auth import FAST, sign_in

HINT = re.compile(r"^\s+(\+7\d{10})\s+(\S+)\s+(.+?) — (.+)$")


def hints(text: str) -> dict[str, tuple[str, str, str]]:
    """phone -> (role word, full name, about) from the printed sign-in hints."""
    found = {}
    for line in text.splitlines():
        m = HINT.match(line)
        if m:
            found[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return found


async def joined_chats(d: Any, phone: str) -> dict[str, str]:
    """Name -> chat kind of the rooms the phone's owner is in."""
    token = (await sign_in(d, phone))["token"]
    async with Client(d.url, token) as c:
        rooms = await c.rooms()
    return {r["name"]: r["chat"]["kind"] for r in rooms if r["membership"] == "join" and r["chat"]}


async def lessons(d: Any, phone: str) -> list[dict[str, Any]]:
    token = (await sign_in(d, phone))["token"]
    async with Client(d.url, token) as c:
        listed: list[dict[str, Any]] = (await c.calls())["calls"]
    return listed


async def test_demo_command_then_people_sign_in_to_their_chats(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    cmd = [
        sys.executable,
        "-m",
        "sferumd",
        "demo",
        "--server",
        d.url,
        "--data-dir",
        str(d.data_dir),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    people = hints(out.stdout)
    roles = [role for role, _, _ in people.values()]
    assert roles.count("учитель") >= 2 and "ученик" in roles and "родитель" in roles
    by_about = {about: phone for phone, (_, _, about) in people.items()}
    homeroom = next(p for a, p in by_about.items() if a.startswith("классный руководитель 7В"))
    student = next(p for a, p in by_about.items() if a == "ученик 7В")
    parent = next(p for a, p in by_about.items() if a.startswith("родитель") and "7В" in a)

    teacher_chats = await joined_chats(d, homeroom)
    assert {n: k for n, k in teacher_chats.items() if n.startswith("7В")} == {
        "7В": "class",
        "7В — родители": "parents",
        "7В — учителя": "colleagues",
    }
    student_chats = await joined_chats(d, student)
    assert student_chats["7В"] == "class" and "subject" in student_chats.values()
    assert "7В — родители" not in student_chats
    assert await joined_chats(d, parent) == {"7В — родители": "parents"}

    # An online lesson of the subject chat runs now: both pupils find it in their list.
    assert f"{d.url}/lessons" in out.stdout
    pupils = [p for p, (_, _, about) in people.items() if about in ("ученик 7В", "ученица 7В")]
    assert len(pupils) == 2
    for phone in pupils:
        [lesson] = await lessons(d, phone)
        assert lesson["kind"] == "lesson" and lesson["state"] in ("open", "running")
        assert lesson["joinable"] is True and lesson["url"] == f"/calls/{lesson['call_id']}"

    # Loading it again the same week changes nothing.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert await joined_chats(d, parent) == {"7В — родители": "parents"}
    assert [c["call_id"] for c in await lessons(d, pupils[0])] == [lesson["call_id"]]


async def test_serve_demo_prints_sign_in_hints(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST, args=["--demo"])
    assert d.proc is not None and d.proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(d.proc.stdout.readline)
        if not line:
            break
        lines.append(line)
        if "login" in line:
            break
    text = "".join(lines)
    assert "Демо-школа" in text, text
    people = hints(text)
    assert len(people) >= 4
    phone = next(iter(people))
    assert "7В" in " ".join(await joined_chats(d, phone))
