"""R4: what one person sees of another's profile over the websocket `profiles` op."""

from __future__ import annotations

from clients.sdk import Client
from tests.test_auth import call
from tests.test_linking import add_journal, new_session


async def test_room_members_see_names_and_journal_roles_but_nothing_private(daemon):
    teacher = daemon.add_user("Мария", "Иванова", phone="+79990001001")
    pupil = daemon.add_user("Пётр", "Сидоров", phone="+79990001002")
    stranger = daemon.add_user("Олег", "Чужой", phone="+79990001003")
    status, _ = await call(
        daemon.url,
        "PUT",
        "/v1/profile",
        {
            "first_name": "Мария",
            "last_name": "Иванова",
            "patronymic": "Петровна",
            "birth_date": "1980-05-01",
            "gender": "female",
        },
        teacher.token,
    )
    assert status == 200
    journal = add_journal(daemon)
    token = await new_session(daemon, journal, "t-1", "teacher", school="sch-7")
    status, out = await call(daemon.url, "POST", f"/v1/link/{token}/confirm", {}, teacher.token)
    assert status == 200, out

    # The teacher also teaches in another school: that is not the pupil's school space.
    token = await new_session(daemon, journal, "t-2", "teacher", school="sch-9")
    assert (await call(daemon.url, "POST", f"/v1/link/{token}/confirm", {}, teacher.token))[
        0
    ] == 200

    async with Client(daemon.url, teacher.token) as t, Client(daemon.url, pupil.token) as p:
        room = await t.create_room("7Б", invite=[pupil.user_id, stranger.user_id])
        await p.join(room)
        # An unlinked member is outside every school space: names only, no roles.
        unlinked_view = await p.request("profiles", user_ids=[teacher.user_id])
        token = await new_session(daemon, journal, "s-1", "student", school="sch-7")
        status, out = await call(daemon.url, "POST", f"/v1/link/{token}/confirm", {}, pupil.token)
        assert status == 200, out
        seen = await p.request(
            "profiles", user_ids=[teacher.user_id, stranger.user_id, "@nobody", pupil.user_id]
        )
        own = await t.request("profiles", user_ids=[teacher.user_id])
    assert unlinked_view["profiles"][teacher.user_id]["roles"] == []
    assert unlinked_view["profiles"][teacher.user_id]["last_name"] == "Иванова"
    assert [r["school_id"] for r in own["profiles"][teacher.user_id]["roles"]] == [
        "sch-7",
        "sch-9",
    ]
    mine = seen["profiles"][teacher.user_id]
    assert mine == {
        "first_name": "Мария",
        "last_name": "Иванова",
        "patronymic": "Петровна",
        "roles": [{"role": "teacher", "school_id": "sch-7", "school": "Школа 1"}],
    }
    assert set(seen["profiles"]) == {teacher.user_id, pupil.user_id}  # self included
    # Someone who shares no room reads exactly like an id that does not exist.
    # (the stranger was invited but never joined)
    assert seen["unknown"] == [stranger.user_id, "@nobody"]
    text = repr(seen)
    for private in ("+7999000100", "1980-05-01", "female"):
        assert private not in text
