"""A whole online lesson of the demo school, from the journal's form to the attendance it gets
back, driven over the websocket by the teacher, a parent and all 24 students of 7В on the
daemon's test clock (no sleeps: the clock is set and the daemon answers once everything due
has happened).

Monday 04.03.2030, 7В, Математика, 09.25-10.10 (the demo timetable's second lesson), taught
by its subject teacher T-02 in her subject chat:
schedule -> starts by itself -> the teacher is its admin -> students join (one late, one
leaves at once, one never comes) -> hands -> screen permission -> 50 breakout rooms
accepted, 51 refused -> 12 rooms at random with a timer: warning, closed by the timer ->
rooms by hand -> a move -> a broadcast -> closed with the countdown -> ends by itself at the
end time -> the journal's attendance webhook (signed, on 127.0.0.1) with the minutes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clients.journal import JournalClient
from clients.sdk import Client, ClientError
from sferumd import config
from sferumd.demo_loader import JOURNAL_FILE, JOURNAL_NAME, load_demo
from tests.fake_journal import JournalHooks
from tests.lesson_world import CLOCK, MONDAY, at, ms, set_clock

LESSON = "LS-7V-20300304-2"  # Monday's second lesson of 7В: Математика, 09.25-10.10
TEACHER = "T-02"  # teaches Математика in 7В; the demo's subject chat is hers
VC = "/journal/v1/videoconferences"


def _register_journal(data_dir: Path, webhook: str) -> dict[str, str]:
    """The demo journal, registered before the demo loads, with the fake journal's hook."""
    from sferumd.store.sqlite import add_journal_sync, connect_sync

    conn = connect_sync(config.load(None, data_dir=str(data_dir)).db_path)
    try:
        with conn:
            journal = add_journal_sync(conn, JOURNAL_NAME, webhook)
    finally:
        conn.close()
    saved = {"journal_id": journal.journal_id, "secret": journal.secret}
    fd = os.open(data_dir / JOURNAL_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh)
    return saved


def _device(data_dir: Path, phone: str, first: str, last: str) -> str:
    """A device of the person's profile (the profile is made if the phone has none)."""
    from sferumd.store.sqlite import add_user_device_sync, connect_sync

    conn = connect_sync(config.load(None, data_dir=str(data_dir)).db_path)
    try:
        return add_user_device_sync(conn, phone, first, last).token
    finally:
        conn.close()


async def _linked_device(
    d: Any, journal: JournalClient, person: dict[str, Any], school: dict[str, str]
) -> str:
    """A device token of the person, whose journal account is linked to their profile."""
    data = person["data"]
    token = await asyncio.to_thread(
        _device, d.data_dir, data["phone"], data["first_name"], data["last_name"]
    )
    status = await journal.call("GET", f"/journal/v1/accounts/{person['id']}/link")
    if status["linked"]:
        return token
    offer = {"account_id": person["id"], "role": data["role"], **school}
    session = await journal.call("POST", "/journal/v1/link-sessions", offer)
    url = f"{d.url}/v1/link/{session['url'].rsplit('/', 1)[1]}/confirm"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        assert resp.status == 200, await resp.text()
    return token


@asynccontextmanager
async def connected(d: Any, tokens: list[str]) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Client(d.url, t)) for t in tokens]


def where(state: dict[str, Any]) -> dict[str, str]:
    return {p["user_id"]: p["room"] for p in state["participants"]}


async def refused(code: str, call: Any) -> None:
    with pytest.raises(ClientError) as info:
        await call
    assert info.value.code == code, info.value


async def test_a_whole_lesson_of_the_demo_school(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    async with JournalHooks() as hooks:
        d = daemon_factory(CLOCK)
        saved = await asyncio.to_thread(_register_journal, d.data_dir, hooks.url)
        hooks.secret = saved["secret"]
        loaded = await load_demo(d.url, d.data_dir, today=MONDAY.date(), lesson_now=False)
        people = {c["id"]: c for c in loaded.school.changes if c["kind"] == "person"}
        school = next(c for c in loaded.school.changes if c["kind"] == "school")
        where_from = {"school_id": school["id"], "school_name": school["data"]["name"]}
        student_ids = sorted(p for p in people if p.startswith("ST-7V-"))
        assert len(student_ids) == 24
        parent_id = next(h.account_id for h in loaded.school.hints if h.role == "parent")

        async with JournalClient(d.url, saved["journal_id"], saved["secret"]) as journal:
            teacher_token = await _linked_device(d, journal, people[TEACHER], where_from)
            parent_token = await _linked_device(d, journal, people[parent_id], where_from)
            student_tokens = [
                await _linked_device(d, journal, people[s], where_from) for s in student_ids
            ]
            chats = await journal.call("GET", f"/journal/v1/accounts/{TEACHER}/chats")
            chat_id = next(
                c["chat_id"]
                for c in chats["chats"]
                if c["type"] == "subject" and c["class"]["id"] == "CL-7V"
            )

            # The journal's form (R16): an online lesson for the chat and the lesson.
            await set_clock(d, at(0, 8))
            vc = await journal.call(
                "POST", VC, {"chat_id": chat_id, "lesson_id": LESSON, "teacher_id": TEACHER}
            )
            call_id = vc["videoconference_id"]
            assert vc["name"] == "7В - Математика - 04.03.2030 - 09.25 - 10.10"
            assert {p["account_id"] for p in vc["participants"]["students"]} == set(student_ids)
            assert {p["account_id"] for p in vc["participants"]["staff"]} == {TEACHER, "T-01"}
            assert parent_id in {p["account_id"] for p in vc["participants"]["parents"]}
            diary = await journal.call(
                "GET", f"/journal/v1/accounts/{student_ids[0]}/videoconferences"
            )
            assert [
                (v["videoconference_id"], v["joinable"]) for v in diary["videoconferences"]
            ] == [(call_id, False)]

            async with connected(d, [teacher_token, parent_token, *student_tokens]) as everyone:
                teacher, parent, *students = everyone
                on_time, leaver, late, absent = (
                    students[:21],
                    students[21],
                    students[22],
                    students[23],
                )
                await refused("not_open_yet", students[0].call_join(call_id))

                # 09.25: it starts by itself (R17); the link works now (R25).
                await set_clock(d, at(0, 9, 25))
                diary = await journal.call(
                    "GET", f"/journal/v1/accounts/{student_ids[0]}/videoconferences"
                )
                assert diary["videoconferences"][0]["joinable"] is True
                state = (await teacher.call_join(call_id))["call"]
                assert state["state"] == "running" and state["admins"] == [teacher.user_id]
                for s in [*on_time, leaver]:
                    assert (await s.call_join(call_id))["joined"] is True
                assert (await parent.call_join(call_id))["joined"] is True  # R26, by the link
                await leaver.call_leave(call_id)
                state = await teacher.call(call_id)
                assert len(state["participants"]) == 1 + 21 + 1
                roles = {p["user_id"]: p["role"] for p in state["participants"]}
                assert roles[teacher.user_id] == "admin" and roles[parent.user_id] == "parent"
                assert {roles[s.user_id] for s in on_time} == {"student"}

                # Hands, answered in the order raised.
                await set_clock(d, at(0, 9, 26))
                for s in (students[3], students[1], students[2]):
                    await s.raise_hand(call_id)
                hands = (await teacher.call(call_id))["hands"]
                assert hands == [students[3].user_id, students[1].user_id, students[2].user_id]
                assert await teacher.lower_hand(call_id, students[3].user_id) == hands[1:]
                await teacher.lower_hands(call_id)

                # Screen sharing is the teacher's to give (R22).
                presenter = students[5]
                await refused("forbidden", presenter.call_media(call_id, "screen"))
                await teacher.call_permission(call_id, "screen", True, presenter.user_id)
                await presenter.call_media(call_id, "screen")
                shared = await students[6].next_call_push(
                    lambda v: (
                        v["type"] == "state"
                        and any(p["screen"] for p in v["state"]["participants"])
                    ),
                    timeout=10,
                )
                assert [p["user_id"] for p in shared["state"]["participants"] if p["screen"]] == [
                    presenter.user_id
                ]
                await teacher.call_permission(call_id, "screen", None, presenter.user_id)

                # Breakout rooms (R21): up to 50.
                await set_clock(d, at(0, 9, 30))
                await refused(
                    "too_many_rooms", teacher.breakout_plan(call_id, "random", room_count=51)
                )
                fifty = await teacher.breakout_plan(call_id, "random", room_count=50, seed=1)
                assert len(fifty["breakout"]["rooms"]) == 50
                assert sum(len(r["members"]) for r in fifty["breakout"]["rooms"]) == 21
                # ... and 12 at random, for ten minutes; it replaces the draft.
                planned = await teacher.breakout_plan(
                    call_id, "random", room_count=12, seed=2030, duration_s=600
                )
                sizes = sorted(len(r["members"]) for r in planned["breakout"]["rooms"])
                assert sizes == [1] * 3 + [2] * 9  # 21 students present, an even split
                opened = await teacher.breakout_start(call_id)
                rooms = {r["room_id"]: r for r in opened["rooms"]}
                placed = where(await teacher.call(call_id))
                for s in on_time:
                    room = placed[s.user_id]
                    assert room != "main" and s.user_id in rooms[room]["members"]
                assert placed[teacher.user_id] == placed[parent.user_id] == "main"
                mine = {r["room_id"] for r in await on_time[0].rooms() if r["membership"] == "join"}
                assert rooms[placed[on_time[0].user_id]]["chat_room_id"] in mine
                assert all(
                    rooms[r]["chat_room_id"] not in mine
                    for r in rooms
                    if r != placed[on_time[0].user_id]
                )

                # The teacher looks in on a room, and speaks to all of them.
                first_room = placed[on_time[0].user_id]
                await teacher.breakout_visit(call_id, first_room)
                assert where(await teacher.call(call_id))[teacher.user_id] == first_room
                assert await teacher.breakout_broadcast(call_id, "Осталось пять минут") == 13
                got = await on_time[0].next_call_push(
                    lambda v: v["type"] == "broadcast", timeout=10
                )
                assert got["text"] == "Осталось пять минут"
                chat = rooms[first_room]["chat_room_id"]
                said = [
                    e for e in (await on_time[0].history(chat))["events"] if e["type"] == "message"
                ]
                assert said[-1]["content"]["body"] == "Осталось пять минут"
                assert said[-1]["sender"] == teacher.user_id

                # The timer: a warning a minute before, then everyone back.
                await set_clock(d, at(0, 9, 39))
                warned = await on_time[0].next_call_push(
                    lambda v: v["type"] == "breakout_warning", timeout=10
                )
                assert warned["ends_at_ms"] == ms(at(0, 9, 40))
                await set_clock(d, at(0, 9, 40))
                state = await teacher.call(call_id)
                assert state["breakout"]["phase"] == "closed"
                assert set(where(state).values()) == {"main"}

                # 09.40: the late one comes.
                assert (await late.call_join(call_id))["joined"] is True

                # Rooms by hand, a move, a broadcast, and a close with the countdown.
                await set_clock(d, at(0, 9, 41))
                a, b, c, e = on_time[0], on_time[1], on_time[2], on_time[3]
                await refused(
                    "unknown_people",
                    teacher.breakout_plan(
                        call_id, "hand", rooms=[[a.user_id], [absent.user_id + "x"]]
                    ),
                )
                await teacher.breakout_plan(
                    call_id,
                    "hand",
                    rooms=[[a.user_id, b.user_id], [c.user_id, e.user_id], [late.user_id]],
                    names=["Группа А", "Группа Б", "Группа В"],
                )
                opened = await teacher.breakout_start(call_id)
                assert [r["name"] for r in opened["rooms"]] == ["Группа А", "Группа Б", "Группа В"]
                assert opened["plan_id"] == "p3"
                moved = await teacher.breakout_move(call_id, b.user_id, "p3.2")
                assert [set(r["members"]) for r in moved["rooms"]] == [
                    {a.user_id},
                    {b.user_id, c.user_id, e.user_id},
                    {late.user_id},
                ]
                assert where(await b.call(call_id))[b.user_id] == "p3.2"
                assert await teacher.breakout_broadcast(call_id, "Возвращаемся") == 4
                closing = await teacher.breakout_close(call_id)
                assert closing["phase"] == "closing"
                await set_clock(d, at(0, 9, 42))
                state = await teacher.call(call_id)
                assert state["breakout"]["phase"] == "closed"
                assert set(where(state).values()) == {"main"}

                # 10.10: it ends by itself (R17), for everyone.
                await set_clock(d, at(0, 10, 10))
                for c_ in (teacher, parent, on_time[0], late):
                    await c_.next_call_push(
                        lambda v: v["type"] == "state" and v["state"]["state"] == "ended",
                        timeout=10,
                    )
                await refused("call_ended", absent.call_join(call_id))

            # B5: the journal gets each student's attendance, signed, once.
            report = await hooks.next()
            while report["type"] != "attendance":  # the links made above were reported too
                report = await hooks.next()
            assert report["type"] == "attendance" and report["videoconference_id"] == call_id
            assert report["lesson_id"] == LESSON and report["ran"] is True
            assert (report["start"], report["end"]) == (
                "2030-03-04T09:25:00+03:00",
                "2030-03-04T10:10:00+03:00",
            )
            by_account = {s["account_id"]: s for s in report["students"]}
            assert set(by_account) == set(student_ids)
            account_of = dict(zip([s.user_id for s in students], student_ids, strict=True))
            for s in on_time:
                got = by_account[account_of[s.user_id]]
                assert (got["present"], got["minutes"], got["joined_late"]) == (True, 45, False)
            for s, expected in [
                (leaver, (False, 0, False)),
                (late, (True, 30, True)),
                (absent, (False, 0, False)),
            ]:
                got = by_account[account_of[s.user_id]]
                assert (got["present"], got["minutes"], got["joined_late"]) == expected
            # The journal can read it too, the same.
            again = await journal.call("GET", f"{VC}/{call_id}/attendance")
            assert again["students"] == report["students"]
        assert [h["type"] for h in hooks.got].count("attendance") == 1
    assert "Traceback" not in d.log()
