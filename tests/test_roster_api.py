"""The journal adapter against a real daemon: signed roster deliveries, replays, per-entity
errors, snapshots, and the chats reconciliation makes (R8, R9) as people link."""

from __future__ import annotations

from typing import Any

from clients.sdk import Client
from tests.test_auth import call
from tests.test_linking import add_journal, jcall, new_session

T0 = 1_732_780_800_000  # versions: the journal's modification times (ms)


def up(kind: str, sid: str, version: int = T0, **data: Any) -> dict[str, Any]:
    return {"op": "upsert", "kind": kind, "id": sid, "version": version, "data": data}


def delete(kind: str, sid: str, version: int) -> dict[str, Any]:
    return {"op": "delete", "kind": kind, "id": sid, "version": version}


def person(sid: str, role: str, first: str, last: str) -> dict[str, Any]:
    return up("person", sid, school_id="S1", role=role, first_name=first, last_name=last)


SCHOOL = [
    up("school", "S1", name="Школа № 1"),
    up("subject", "HIST", school_id="S1", name="История"),
    person("T-HOME", "teacher", "Анна", "Классная"),
    person("T-HIST", "teacher", "Борис", "Историк"),
    person("ST-1", "student", "Вера", "Первая"),
    person("ST-2", "student", "Глеб", "Второй"),
    person("PA-1", "parent", "Дарья", "Первая"),
    up("class", "C-7V", school_id="S1", name="7В", homeroom_teacher_id="T-HOME"),
    up("enrollment", "E-1", student_id="ST-1", class_id="C-7V"),
    up("enrollment", "E-2", student_id="ST-2", class_id="C-7V"),
    up("guardianship", "G-1", parent_id="PA-1", student_id="ST-1"),
    up("teaching", "TA-1", teacher_id="T-HIST", class_id="C-7V", subject_id="HIST"),
]


async def deliver(d: Any, j: dict[str, str], delivery: str, changes: list[Any]) -> dict[str, Any]:
    status, out = await jcall(
        d, j, "POST", "/journal/v1/events", {"delivery_id": delivery, "changes": changes}
    )
    assert status == 200, out
    return out


async def link(d: Any, j: dict[str, str], account: str, role: str, token: str) -> None:
    session = await new_session(d, j, account, role, "S1")
    status, out = await call(d.url, "POST", f"/v1/link/{session}/confirm", token=token)
    assert status == 200, out


async def chats(d: Any, token: str) -> dict[str, dict[str, Any]]:
    """The user's joined journal chats by kind, with their power in each."""
    async with Client(d.url, token) as c:
        rooms = await c.rooms()
    return {r["chat"]["kind"]: r for r in rooms if r["chat"] and r["membership"] == "join"}


async def test_homeroom_teacher_gets_three_chats_and_people_follow_the_roster(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    j = add_journal(d)
    out = await deliver(d, j, "d-1", SCHOOL)
    assert (out["applied"], out["rejected"], out["warnings"]) == (len(SCHOOL), 0, [])

    # R8: the homeroom teacher links and is at once admin of class, parents and colleagues.
    home = d.add_user("Анна", "Классная")
    await link(d, j, "T-HOME", "teacher", home.token)
    mine = await chats(d, home.token)
    assert set(mine) == {"class", "parents", "colleagues"}
    assert {k: (r["name"], r["power"]) for k, r in mine.items()} == {
        "class": ("7В", 100),
        "parents": ("7В — родители", 100),
        "colleagues": ("7В — учителя", 100),
    }
    # Students and parents land in their chats the moment they link; never in the others.
    st1, pa1 = d.add_user("Вера", "Первая"), d.add_user("Дарья", "Первая")
    await link(d, j, "ST-1", "student", st1.token)
    await link(d, j, "PA-1", "parent", pa1.token)
    assert set(await chats(d, st1.token)) == {"class"}
    assert set(await chats(d, pa1.token)) == {"parents"}
    assert (await chats(d, st1.token))["class"]["power"] == 0
    hist = d.add_user("Борис", "Историк")
    await link(d, j, "T-HIST", "teacher", hist.token)
    assert set(await chats(d, hist.token)) == {"colleagues"}

    # The same delivery again is a no-op with the same answer; the same changes under a new
    # delivery id change nothing either.
    again = await deliver(d, j, "d-1", SCHOOL)
    assert again["duplicate"] is True and again["applied"] == out["applied"]
    fresh = await deliver(d, j, "d-2", SCHOOL)
    assert (fresh["applied"], fresh["unchanged"]) == (0, len(SCHOOL))

    # The student leaves the class in the journal: she leaves the chat, her messages stay;
    # an older delivery arriving late does not bring her back.
    class_room = mine["class"]["room_id"]
    async with Client(d.url, st1.token) as c:
        said = await c.send(class_room, "Здравствуйте!")
    gone = await deliver(d, j, "d-3", [delete("enrollment", "E-1", T0 + 10)])
    assert gone["applied"] == 1
    assert "class" not in await chats(d, st1.token)
    assert await chats(d, pa1.token) == {}  # her parent is no parent of the class any more
    late = await deliver(
        d, j, "d-4", [up("enrollment", "E-1", T0 + 5, student_id="ST-1", class_id="C-7V")]
    )
    assert (late["applied"], late["stale"]) == (0, 1)
    assert "class" not in await chats(d, st1.token)
    async with Client(d.url, home.token) as c:
        history = await c.history(class_room)
    assert said["event_id"] in [e["event_id"] for e in history["events"]]

    # Unlinking takes the teacher out of the journal's chats.
    status, _ = await jcall(d, j, "DELETE", "/journal/v1/accounts/T-HIST/link")
    assert status == 200
    assert await chats(d, hist.token) == {}


async def test_bad_entities_are_reported_and_the_good_ones_apply(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    j = add_journal(d)
    changes = [
        up("school", "S1", name="Школа"),
        {"op": "upsert", "kind": "spaceship", "id": "X", "version": 1, "data": {}},
        up("class", "C-1", school_id="S1", name=""),
        up("enrollment", "E-9", student_id="nobody", class_id="C-404"),
        {"op": "explode", "kind": "school", "id": "S2", "version": 1},
        "not an object",
    ]
    out = await deliver(d, j, "bad-1", changes)
    assert out["applied"] == 2 and out["rejected"] == 4
    assert [(e["index"], e["code"]) for e in out["errors"]] == [
        (1, "unknown_kind"),
        (2, "bad_field"),
        (4, "unknown_op"),
        (5, "bad_change"),
    ]
    assert "name" in out["errors"][1]["message"]
    assert {w["code"] for w in out["warnings"]} == {"dangling_reference"}
    assert all(w["index"] == 3 for w in out["warnings"])
    # Whole-batch refusals store nothing.
    for body, code in (
        ({"changes": []}, "bad_batch"),
        ({"delivery_id": "x", "changes": {}}, "bad_batch"),
        ({"delivery_id": "x", "changes": [], "extra": 1}, "bad_batch"),
        ([1, 2], "bad_json"),
    ):
        status, err = await jcall(d, j, "POST", "/journal/v1/events", body)
        assert (status, err["error"]["code"]) == (400, code), body
    status, err = await jcall(
        d, j, "POST", "/journal/v1/events", {"delivery_id": "x", "changes": []}, secret="0" * 64
    )
    assert (status, err["error"]["code"]) == (401, "bad_signature")


async def test_too_many_changes_and_too_large(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory("[journal]\nmax_changes = 3\nmax_body_bytes = 2000\n")
    j = add_journal(d)
    body = {"delivery_id": "big", "changes": [up("school", f"S{i}", name="x") for i in range(4)]}
    status, err = await jcall(d, j, "POST", "/journal/v1/events", body)
    assert (status, err["error"]["code"]) == (400, "too_many_changes")
    body = {"delivery_id": "huge", "changes": [up("school", "S", name="x" * 3000)]}
    status, err = await jcall(d, j, "POST", "/journal/v1/events", body)
    assert (status, err["error"]["code"]) == (413, "too_large")


async def test_snapshot_deactivates_what_it_no_longer_lists_and_survives_restart(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    j = add_journal(d)
    await deliver(d, j, "d-1", SCHOOL)
    home, st2 = d.add_user(), d.add_user()
    await link(d, j, "T-HOME", "teacher", home.token)
    await link(d, j, "ST-2", "student", st2.token)
    assert "class" in await chats(d, st2.token)
    d.restart()  # the roster and the chat bindings are reloaded, nothing is made twice
    listed = [c for c in SCHOOL if c["id"] != "E-2"]
    status, out = await jcall(
        d,
        j,
        "POST",
        "/journal/v1/snapshot",
        {"delivery_id": "snap-1", "version": T0 + 100, "entities": [c for c in listed]},
    )
    assert status == 200, out
    assert (out["deactivated"], out["unchanged"]) == (1, len(listed))
    assert "class" not in await chats(d, st2.token)
    mine = await chats(d, home.token)
    assert set(mine) == {"class", "parents", "colleagues"}
    async with Client(d.url, home.token) as c:
        names = [r["name"] for r in await c.rooms()]
    assert sorted(names) == ["7В", "7В — родители", "7В — учителя"]


async def test_subject_chats_created_edited_and_deleted_by_the_journal(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    j = add_journal(d)
    await deliver(d, j, "d-1", SCHOOL)
    hist, st1, st2, pa1 = (d.add_user() for _ in range(4))
    await link(d, j, "T-HIST", "teacher", hist.token)
    await link(d, j, "ST-1", "student", st1.token)
    path = "/journal/v1/subject-chats"
    ask = {"teacher_id": "T-HIST", "class_id": "C-7V", "subject_id": "HIST"}

    # Only a subject the teacher teaches in that class; everything else is refused.
    for body, status, code in (
        ({**ask, "teacher_id": "T-HOME"}, 422, "not_teaching"),
        ({**ask, "teacher_id": "PA-1"}, 422, "not_teaching"),
        ({**ask, "class_id": "C-404"}, 422, "unknown_entity"),
        ({**ask, "subject_id": "MATH"}, 422, "unknown_entity"),
        ({**ask, "group_id": "G-404"}, 422, "unknown_entity"),
        ({**ask, "role": "admin"}, 400, "invalid_field"),
        ({**ask, "name": ""}, 400, "invalid_field"),
        ({"class_id": "C-7V", "subject_id": "HIST"}, 400, "invalid_field"),
    ):
        got, out = await jcall(d, j, "POST", path, body)
        assert (got, out["error"]["code"]) == (status, code), body
    status, chat = await jcall(d, j, "POST", path, ask)
    assert status == 201, chat
    assert (chat["type"], chat["name"], chat["subject"]["name"]) == (
        "subject",
        "7В — История",
        "История",
    )
    # The teacher and ST-1 are in; ST-2 is pending until she links.
    assert (chat["members"], chat["pending"], chat["pending_accounts"]) == (2, 1, ["ST-2"])
    assert chat["admin"] == {"account_id": "T-HIST", "name": "Историк Борис"}
    status, out = await jcall(d, j, "POST", path, ask)
    assert (status, out["error"]["code"], out["error"]["chat_id"]) == (
        409,
        "chat_exists",
        chat["chat_id"],
    )
    chat_path = f"{path}/{chat['chat_id']}"
    assert (await chats(d, hist.token))["subject"]["power"] == 100
    assert "subject" in await chats(d, st1.token)

    # A student who links later lands in the chat created before (R9).
    await link(d, j, "ST-2", "student", st2.token)
    assert "subject" in await chats(d, st2.token)
    status, listed = await jcall(d, j, "GET", "/journal/v1/accounts/ST-2/chats")
    assert status == 200 and listed["linked"] is True
    by_type = {c["type"]: c for c in listed["chats"]}
    assert set(by_type) == {"class", "subject"}
    assert by_type["subject"]["url"].endswith("/chats/" + by_type["subject"]["room_id"])
    assert by_type["class"]["admin"]["account_id"] == "T-HOME"
    # ... and the journal sees a not-yet-linked parent's future chats.
    status, listed = await jcall(d, j, "GET", "/journal/v1/accounts/PA-1/chats")
    assert (listed["linked"], [c["type"] for c in listed["chats"]]) == (False, ["parents"])

    # Manual edits: the parent added, a student removed; they survive reconciliation.
    status, edited = await jcall(
        d, j, "POST", chat_path + "/members", {"add": ["PA-1"], "remove": ["ST-1"]}
    )
    assert status == 200, edited
    assert "subject" not in await chats(d, st1.token)
    await link(d, j, "PA-1", "parent", pa1.token)
    assert set(await chats(d, pa1.token)) == {"parents", "subject"}
    await deliver(
        d, j, "d-2", [up("subject", "HIST", T0 + 1, school_id="S1", name="История России")]
    )
    assert "subject" not in await chats(d, st1.token)
    assert "subject" in await chats(d, pa1.token)
    for body in ({"add": ["nobody"]}, {"add": ["ST-1"], "remove": ["ST-1"]}, {"add": "ST-1"}):
        status, out = await jcall(d, j, "POST", chat_path + "/members", body)
        assert status in (400, 422), (body, out)

    # Rename, then delete: everyone leaves, the chat is gone for the journal.
    status, renamed = await jcall(d, j, "PATCH", chat_path, {"name": "История: 7В"})
    assert status == 200 and renamed["name"] == "История: 7В"
    assert (await chats(d, st2.token))["subject"]["name"] == "История: 7В"
    status, _ = await jcall(d, j, "DELETE", chat_path)
    assert status == 200
    for user in (hist, st2, pa1):
        assert "subject" not in await chats(d, user.token)
    assert (await jcall(d, j, "GET", chat_path))[0] == 404
    assert (await jcall(d, j, "DELETE", chat_path))[0] == 404
    # A new chat for the same class and subject may be made again.
    status, again = await jcall(d, j, "POST", path, ask)
    assert status == 201 and again["chat_id"] != chat["chat_id"]
    d.restart()
    status, listed = await jcall(d, j, "GET", "/journal/v1/accounts/ST-2/chats")
    assert {c["type"] for c in listed["chats"]} == {"class", "subject"}
