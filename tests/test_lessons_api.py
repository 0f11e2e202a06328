"""Online lessons from the journal (R16, R17, R23, R24, R25): the videoconference API, its
refusals, and the scheduler on the daemon's test clock (no sleeps: the clock is set and the
daemon answers once everything due has happened)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web

from clients.sdk import Client, ClientError
from tests.fake_journal import JournalHooks
from tests.lesson_world import CLOCK, VC, at, lesson, ms, set_clock, small_school
from tests.test_roster_api import T0, deliver, up

L1 = "L-1"  # Monday 10:00-10:45
LESSONS = [
    lesson(L1, at(0, 10)),
    lesson("L-OVERLAP", at(0, 10, 30)),  # a timetable mistake: overlaps L-1
    lesson("L-NEXT", at(0, 10, 45)),  # right after L-1
    lesson("L-NOW", at(-1, 9, 50)),  # runs when the clock says Sunday 10:00
    lesson("L-GONE", at(-2, 10)),
    lesson("L-OFF", at(1, 10), cancelled=True),
    lesson("L-MATH", at(1, 12), subject="MATH", teacher="T-HOME"),
    lesson("L-WED", at(2, 12)),
]
EXTRA = [
    up("subject", "MATH", school_id="S1", name="Математика"),
    up("teaching", "TA-M", teacher_id="T-HOME", class_id="C-7V", subject_id="MATH"),
]


def accounts(vc: dict[str, Any], kind: str) -> dict[str, tuple[bool, bool]]:
    return {p["account_id"]: (p["blocked"], p["linked"]) for p in vc["participants"][kind]}


async def test_create_list_block_edit_delete_and_every_refusal(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school = await small_school(d, [*LESSONS, *EXTRA], linked=("T-HIST", "ST-1", "PA-1"))
    await set_clock(d, at(-1, 10))  # Sunday 10:00

    made = await school.made(L1)
    assert made["name"] == "7В - История - 04.03.2030 - 10.00 - 10.45"
    assert (made["type"], made["state"], made["date"]) == (
        "online_lesson",
        "scheduled",
        "2030-03-04",
    )
    assert (made["start"], made["end"]) == (
        "2030-03-04T10:00:00+03:00",
        "2030-03-04T10:45:00+03:00",
    )
    assert made["url"] == f"{d.url}/calls/{made['videoconference_id']}"
    assert made["url_active_from"] == made["start"] and made["joinable"] is False
    # The three lists: staff (the chat's teacher, the homeroom teacher), the chat's students,
    # their parents; linked or not, none blocked.
    assert accounts(made, "staff") == {"T-HIST": (False, True), "T-HOME": (False, False)}
    assert accounts(made, "students") == {"ST-1": (False, True), "ST-2": (False, False)}
    assert accounts(made, "parents") == {"PA-1": (False, True)}
    call_id = made["videoconference_id"]

    # Every refusal has its code, and changes nothing.
    refusals = [
        ({"lesson_id": L1}, 409, "videoconference_exists"),
        ({"lesson_id": "L-OVERLAP"}, 409, "lesson_overlap"),
        ({"lesson_id": "L-NOW"}, 422, "start_in_past"),
        ({"lesson_id": "L-GONE"}, 422, "end_in_past"),
        ({"lesson_id": "L-OFF"}, 422, "lesson_cancelled"),
        ({"lesson_id": "L-MATH"}, 422, "lesson_mismatch"),
        ({"lesson_id": "L-NOPE"}, 404, "unknown_lesson"),
        ({"lesson_id": "L-WED", "chat_id": "subject:nope"}, 404, "unknown_chat"),
        ({"lesson_id": "L-WED", "teacher_id": "T-HOME"}, 403, "not_chat_teacher"),
        ({"lesson_id": "L-WED", "blocked": ["ST-9"]}, 404, "not_invited"),
        ({"lesson_id": "L-WED", "blocked": ["T-HIST"]}, 422, "owner"),
        ({"lesson_id": "L-WED", "blocked": "ST-1"}, 400, "invalid_field"),
        ({"lesson_id": "L-WED", "colour": "red"}, 400, "invalid_field"),
        ({"lesson_id": ""}, 400, "invalid_field"),
    ]
    for body, status, code in refusals:
        got, out = await school.create(**body)  # type: ignore[arg-type]
        assert (got, out["error"]["code"]) == (status, code), (body, out)
    status, out = await school.call("POST", VC, [1, 2])
    assert (status, out["error"]["code"]) == (400, "bad_json")
    wed = await school.made("L-WED", blocked=["ST-2"])
    assert accounts(wed, "students")["ST-2"] == (True, False)

    # The diary (R25): the account's videoconferences by start, with the link.
    status, diary = await school.call("GET", "/journal/v1/accounts/ST-1/videoconferences")
    assert status == 200
    assert [v["videoconference_id"] for v in diary["videoconferences"]] == [
        call_id,
        wed["videoconference_id"],
    ]
    assert {v["blocked"] for v in diary["videoconferences"]} == {False}
    status, diary = await school.call("GET", "/journal/v1/accounts/ST-2/videoconferences")
    assert [v["blocked"] for v in diary["videoconferences"]] == [False, True]
    status, nobody = await school.call("GET", "/journal/v1/accounts/T-NONE/videoconferences")
    assert (status, nobody["videoconferences"]) == (200, [])

    # The teacher blocks and unblocks a student.
    path = f"{VC}/{call_id}/participants"
    status, out = await school.call("PUT", f"{path}/ST-1", {"blocked": True})
    assert status == 200 and accounts(out, "students")["ST-1"] == (True, True)
    for who, body, code in [
        ("ST-1", {"blocked": "yes"}, "invalid_field"),
        ("T-HIST", {"blocked": True}, "owner"),
        ("ST-9", {"blocked": True}, "not_invited"),
    ]:
        status, out = await school.call("PUT", f"{path}/{who}", body)
        assert out["error"]["code"] == code, out
    status, out = await school.call("PUT", f"{path}/ST-1", {"blocked": False})
    assert accounts(out, "students")["ST-1"] == (False, True)

    # The lesson moves in the journal: the videoconference follows once edited.
    moved = lesson(L1, at(0, 12), version=T0 + 1)
    await deliver(d, school.j, "move", [moved])
    status, out = await school.call("PATCH", f"{VC}/{call_id}", {})
    assert status == 200, out
    assert out["name"] == "7В - История - 04.03.2030 - 12.00 - 12.45"
    assert out["start"] == "2030-03-04T12:00:00+03:00"
    # Now L-OVERLAP (10:30) is free; moving onto Wednesday's lesson is not.
    status, out = await school.call("PATCH", f"{VC}/{call_id}", {"lesson_id": "L-WED"})
    assert (status, out["error"]["code"]) == (409, "videoconference_exists")
    assert (await school.made("L-OVERLAP"))["state"] == "scheduled"

    # Deleted before it starts; then it is gone from the diary and can't change.
    status, out = await school.call("DELETE", f"{VC}/{call_id}")
    assert (status, out["state"]) == (200, "cancelled")
    status, diary = await school.call("GET", "/journal/v1/accounts/ST-1/videoconferences")
    assert call_id not in [v["videoconference_id"] for v in diary["videoconferences"]]
    for method, suffix, body in [
        ("DELETE", "", None),
        ("PATCH", "", {}),
        ("POST", "/end", None),
        ("PUT", "/participants/ST-1", {"blocked": True}),
    ]:
        status, out = await school.call(method, f"{VC}/{call_id}{suffix}", body)
        assert (status, out["error"]["code"]) == (409, "call_state"), (method, suffix)
    status, out = await school.call("GET", f"{VC}/{call_id}/attendance")
    assert (status, out["error"]["code"]) == (409, "not_ended")
    status, out = await school.call("GET", f"{VC}/Cnope")
    assert (status, out["error"]["code"]) == (404, "not_found")
    assert "Traceback" not in d.log()


async def test_starts_and_ends_by_itself_across_a_restart(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school = await small_school(d, LESSONS)
    await set_clock(d, at(-1, 10))
    call_id = (await school.made(L1))["videoconference_id"]
    next_id = (await school.made("L-NEXT"))["videoconference_id"]

    # Before the start the link says when it opens (R25).
    await set_clock(d, at(0, 9, 59))
    async with Client(d.url, school.token("ST-1")) as student:
        with pytest.raises(ClientError) as refused:
            await student.call_join(call_id)
        assert refused.value.code == "not_open_yet"

        # It starts by itself at the start time (R17); the chat shows it.
        await set_clock(d, at(0, 10))
        assert (await school.vc(call_id))["state"] == "running"
        joined = await student.call_join(call_id)
        assert joined["joined"] is True and joined["call"]["state"] == "running"
        chat_room = joined["call"]["chat_room_id"]
        rooms = {r["room_id"]: r for r in await student.rooms()}
        assert joined["call"]["room_id"] in rooms  # the call's own chat
        history = await student.history(chat_room)
        states = [
            e["content"]["state"]
            for e in history["events"]
            if e["type"] == "call" and e["state_key"] == call_id
        ]
        assert states[-1] == "running"

    # A restart keeps it running; nobody is in it until they join again.
    d.restart()
    await set_clock(d, at(0, 10, 20))
    after = await school.vc(call_id)
    assert after["state"] == "running"
    async with Client(d.url, school.token("ST-1")) as student:
        state = (await student.call_join(call_id))["call"]
        assert [p["user_id"] for p in state["participants"]] == [school.people["ST-1"].user_id]

        # At the end time it ends (and the next lesson of the class starts: R24 hand-over).
        await set_clock(d, at(0, 10, 45))
        assert (await school.vc(call_id))["state"] == "ended"
        assert (await school.vc(next_id))["state"] == "running"
        ended = await student.next_call_push(
            lambda v: (
                v["call_id"] == call_id and v["type"] == "state" and v["state"]["state"] == "ended"
            ),
            timeout=10,
        )
        assert ended["state"]["participants"] == []
        with pytest.raises(ClientError) as refused:
            await student.call_join(call_id)
        assert refused.value.code == "call_ended"

    # Attendance: 10:00-10:xx before the restart (left at restart), 10:20-10:45 after.
    status, report = await school.call("GET", f"{VC}/{call_id}/attendance")
    assert status == 200 and report["ran"] is True
    by_account = {s["account_id"]: s for s in report["students"]}
    assert set(by_account) == {"ST-1", "ST-2"}
    assert by_account["ST-1"]["present"] is True and by_account["ST-1"]["minutes"] >= 25
    assert by_account["ST-2"]["present"] is False and by_account["ST-2"]["minutes"] == 0
    assert "Traceback" not in d.log()


async def test_journal_ends_it_for_everyone(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school = await small_school(d, LESSONS)
    await set_clock(d, at(-1, 10))
    call_id = (await school.made(L1))["videoconference_id"]
    status, out = await school.call("POST", f"{VC}/{call_id}/end")
    assert (status, out["error"]["code"]) == (409, "call_state")  # not running yet
    await set_clock(d, at(0, 10, 5))
    async with (
        Client(d.url, school.token("T-HIST")) as teacher,
        Client(d.url, school.token("ST-1")) as student,
    ):
        state = (await teacher.call_join(call_id))["call"]
        assert state["owner"] == teacher.user_id and state["admins"] == [teacher.user_id]
        await student.call_join(call_id)
        status, out = await school.call("POST", f"{VC}/{call_id}/end")
        assert (status, out["state"]) == (200, "ended")
        for c in (teacher, student):
            pushed = await c.next_call_push(
                lambda v: v["type"] == "state" and v["state"]["state"] == "ended", timeout=10
            )
            assert pushed["call_id"] == call_id
    status, report = await school.call("GET", f"{VC}/{call_id}/attendance")
    assert status == 200
    assert {s["account_id"]: s["present"] for s in report["students"]} == {
        "ST-1": False,  # the clock did not move while she was in: 0 minutes
        "ST-2": False,
    }
    status, out = await school.call("POST", f"{VC}/{call_id}/end")
    assert (status, out["error"]["code"]) == (409, "call_state")
    assert ms(at(0, 10)) == (await school.vc(call_id))["start_ms"]


class HooksOn(JournalHooks):
    """The fake journal on a port chosen beforehand (so it can be down, then up)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    async def __aenter__(self) -> HooksOn:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self


async def test_attendance_the_journal_did_not_take_is_sent_after_a_restart(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = daemon_factory(CLOCK + "\n[journal]\nwebhook_attempts = 1\n")
    school = await small_school(d, LESSONS, webhook=f"http://127.0.0.1:{port}/hook")
    await set_clock(d, at(-1, 10))
    call_id = (await school.made(L1))["videoconference_id"]
    await set_clock(d, at(0, 10))
    async with Client(d.url, school.token("ST-1")) as student:
        await student.call_join(call_id)
        await set_clock(d, at(0, 10, 45))  # ends: the journal is down, the one try fails
    await wait_for_log(d, "webhook failed", "attendance")  # nothing in flight from here on
    async with HooksOn(port) as hooks:
        hooks.secret = school.j["secret"]
        d.restart()
        report = await hooks.next()
        while report["type"] != "attendance":
            report = await hooks.next()
        assert report["videoconference_id"] == call_id
        minutes = {s["account_id"]: s["minutes"] for s in report["students"]}
        assert minutes == {"ST-1": 45, "ST-2": 0}
        # Taken now: a further restart sends nothing again.
        await wait_for_log(d, "webhook sent", "attendance")
        d.restart()
        assert (await school.vc(call_id))["state"] == "ended"
    assert [h["type"] for h in hooks.got].count("attendance") == 1


async def wait_for_log(d: Any, *words: str, timeout: float = 15.0) -> None:
    """Until a line of the daemon's log has all the words (the log is polled, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(all(w in line for w in words) for line in d.log().splitlines()):
        assert loop.time() < deadline, f"{words} not logged"
        await asyncio.sleep(0.05)
