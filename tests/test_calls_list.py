"""A user's list of calls (R25, the ``calls`` op) against the real daemon on its test clock:
the lesson calls of their journal accounts and the calls of their chats, with the diary's
name, type, date and times, the "go" link working from the start time, blocked and cancelled
calls, paging, and every refusal of its fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.sdk import Client, ClientError
from protocol import frames as f
from protocol.calls import MAX_LISTED_CALLS
from protocol.errors import ErrorCode, ProtocolError
from protocol.validate import parse
from sferumd.config import Limits
from tests.lesson_world import CLOCK, VC, at, lesson, ms, set_clock, small_school

LESSONS = [lesson("L-1", at(0, 10)), lesson("L-WED", at(2, 12)), lesson("L-THU", at(3, 9))]


def brief(calls: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return [(c["name"], c["state"], c["joinable"]) for c in calls]


async def test_lessons_and_chat_calls_of_a_user(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school = await small_school(d, LESSONS)
    await set_clock(d, at(-1, 10))  # Sunday
    monday = (await school.made("L-1"))["videoconference_id"]
    wednesday = (await school.made("L-WED"))["videoconference_id"]
    thursday = (await school.made("L-THU"))["videoconference_id"]
    status, _ = await school.call("DELETE", f"{VC}/{thursday}")  # cancelled: not listed
    assert status == 200
    status, _ = await school.call("PUT", f"{VC}/{wednesday}/participants/ST-2", {"blocked": True})
    assert status == 200
    outsider = d.add_user()

    async with (
        Client(d.url, school.token("ST-1")) as st1,
        Client(d.url, school.token("ST-2")) as st2,
        Client(d.url, school.token("PA-1")) as parent,
        Client(d.url, outsider.token) as other,
    ):
        mine = (await st1.calls())["calls"]
        assert brief(mine) == [
            ("7В - История - 04.03.2030 - 10.00 - 10.45", "scheduled", False),
            ("7В - История - 06.03.2030 - 12.00 - 12.45", "scheduled", False),
        ]
        first = mine[0]
        assert first["call_id"] == monday and first["kind"] == "lesson"
        assert (first["date"], first["start"], first["end"]) == (
            "2030-03-04",
            "2030-03-04T10:00:00+03:00",
            "2030-03-04T10:45:00+03:00",
        )
        assert (first["start_ms"], first["end_ms"]) == (ms(at(0, 10)), ms(at(0, 10, 45)))
        assert first["url"] == f"/calls/{monday}" and first["blocked"] is False
        # A parent sees the lessons of their child; a stranger sees nothing.
        assert [c["call_id"] for c in (await parent.calls())["calls"]] == [monday, wednesday]
        assert (await other.calls()) == {"calls": [], "more": False}
        # Blocked for Wednesday: listed, but the link never works.
        blocked = {c["call_id"]: c["blocked"] for c in (await st2.calls())["calls"]}
        assert blocked == {monday: False, wednesday: True}

        # The link works from the start time (R25), and not for the blocked one.
        await set_clock(d, at(0, 10))
        assert brief((await st1.calls())["calls"])[0][1:] == ("running", True)
        await set_clock(d, at(2, 12))
        assert [(c["state"], c["joinable"]) for c in (await st2.calls())["calls"]] == [
            ("ended", False),
            ("running", False),
        ]
        assert [c["joinable"] for c in (await st1.calls())["calls"]] == [False, True]

        # A call started in a chat is listed for its members only, without an end until
        # it ends.
        await set_clock(d, at(2, 12, 5))
        room_id = await st1.create_room("Стенгазета", invite=[school.people["ST-2"].user_id])
        await st2.join(room_id)
        started = await st1.call_start(room_id)
        for client in (st1, st2):
            chat = [c for c in (await client.calls())["calls"] if c["kind"] == "chat"]
            assert [(c["call_id"], c["name"], c["end"]) for c in chat] == [
                (started["call_id"], "Стенгазета", None)
            ]
            assert chat[0]["chat_room_id"] == room_id and chat[0]["joinable"] is True
        assert [c["kind"] for c in (await parent.calls())["calls"]] == ["lesson", "lesson"]
        await st1.call_join(started["call_id"])
        await st1.call_end(started["call_id"])
        chat = [c for c in (await st2.calls())["calls"] if c["kind"] == "chat"]
        assert chat[0]["state"] == "ended" and chat[0]["end"] is not None

        # Paging: from a time, at most a number of them, and whether there are more.
        page = await st1.calls(limit=1)
        assert [c["call_id"] for c in page["calls"]] == [monday] and page["more"] is True
        later = await st1.calls(from_ms=ms(at(0, 10, 1)), limit=1)
        assert [c["call_id"] for c in later["calls"]] == [wednesday] and later["more"] is True
        last = await st1.calls(from_ms=ms(at(2, 12, 1)))
        assert [c["kind"] for c in last["calls"]] == ["chat"] and last["more"] is False

        for fields in ({"limit": 0}, {"limit": MAX_LISTED_CALLS + 1}, {"from_ms": -1}):
            with pytest.raises(ClientError) as info:
                await st1.request("calls", **fields)
            assert info.value.code == "invalid_field", fields
        with pytest.raises(ClientError) as info:
            await st1.request("calls", room_id=room_id)
        assert info.value.code == "invalid_field"
    assert "Traceback" not in d.log()


@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
    st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(), st.floats()),
)
def test_calls_fields_are_checked(from_ms: Any, limit: Any) -> None:
    frame = {"id": 1, "op": "calls", "from_ms": from_ms, "limit": limit}
    from_ok = from_ms is None or (type(from_ms) is int and 0 <= from_ms <= 2**53 - 1)
    limit_ok = limit is None or (type(limit) is int and 1 <= limit <= MAX_LISTED_CALLS)
    if from_ok and limit_ok:
        request = parse(frame, Limits()).request
        assert request == f.ListCalls(from_ms, 50 if limit is None else limit)
    else:
        with pytest.raises(ProtocolError) as info:
            parse(frame, Limits())
        assert info.value.code is ErrorCode.INVALID_FIELD
