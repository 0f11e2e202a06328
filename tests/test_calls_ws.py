"""The call ops over the websocket, one rule at a time: who may join (R18, R26), what only
admins may do (R22), hands, permissions, mutes, the waiting room, calls started in a chat,
the whiteboard (R19) and the limits of breakout plans (R21). Every refusal is checked to
change nothing (the call's state version stays)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from clients.sdk import Client, ClientError
from tests.e2e_peer import wait_metric
from tests.lesson_world import CLOCK, VC, School, at, lesson, ms, set_clock, small_school
from tests.test_roster_api import up

L1 = "L-1"


async def refused(code: str, call: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        await call
    assert info.value.code == code, info.value
    return info.value


async def lesson_call(d: Any, **create: Any) -> tuple[School, str]:
    """The small school's history lesson of Monday 10:00, running (the clock at 10:01)."""
    school = await small_school(d, [lesson(L1, at(0, 10))])
    await set_clock(d, at(-1, 10))
    call_id = (await school.made(L1, **create))["videoconference_id"]
    await set_clock(d, at(0, 10, 1))
    return school, call_id


@asynccontextmanager
async def clients(d: Any, school: School, *accounts: str) -> AsyncIterator[list[Client]]:
    opened = []
    try:
        for account in accounts:
            c = Client(d.url, school.token(account))
            await c.connect()
            opened.append(c)
        yield opened
    finally:
        for c in opened:
            await c.close()


async def test_who_may_join_and_the_waiting_room(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school, call_id = await lesson_call(d, blocked=["ST-2"])
    outsider = d.add_user()
    async with (
        clients(d, school, "T-HIST", "ST-1", "ST-2", "PA-1") as (teacher, st1, st2, parent),
        Client(d.url, outsider.token) as stranger,
    ):
        await refused("not_invited", stranger.call_join(call_id))
        await refused("not_found", stranger.call(call_id))  # call ids don't leak
        await refused("not_found", stranger.call_join("Cnosuchcall"))
        await refused("blocked", st2.call_join(call_id))  # blocked by the journal

        state = (await teacher.call_join(call_id))["call"]
        assert state["admins"] == [teacher.user_id]  # R18: the teacher administers it
        await refused("forbidden", st1.call_waiting_room(call_id, True))
        await teacher.call_waiting_room(call_id, True)

        # In the waiting room: not in the call until an admin lets them in.
        knock = await st1.call_join(call_id)
        assert knock["joined"] is False and knock["answer"] is None
        assert [w["user_id"] for w in knock["call"]["waiting"]] == [st1.user_id]
        assert (await parent.call_join(call_id))["joined"] is False
        await teacher.call_refuse(call_id, parent.user_id)
        pushed = await parent.next_call_push(lambda v: v["type"] == "refused", timeout=10)
        assert pushed["by"] == teacher.user_id
        await refused("refused", parent.call_join(call_id))
        await teacher.call_admit(call_id, st1.user_id)
        admitted = await st1.next_call_push(
            lambda v: (
                v["type"] == "state"
                and st1.user_id in [p["user_id"] for p in v["state"]["participants"]]
            ),
            timeout=10,
        )
        assert admitted["state"]["waiting"] == []
        assert (await st1.call_join(call_id))["joined"] is True  # again: for the media

        # Removed: out, and refused until an admin lets them back.
        await teacher.call_remove(call_id, st1.user_id)
        await st1.next_call_push(lambda v: v["type"] == "removed", timeout=10)
        await refused("removed", st1.call_join(call_id))
        await teacher.call_allow_back(call_id, st1.user_id)
        assert (await st1.call_join(call_id))["joined"] is True

        # The journal blocks her while she is in: she is out at once.
        status, _ = await school.call("PUT", f"{VC}/{call_id}/participants/ST-1", {"blocked": True})
        assert status == 200
        state = await teacher.call(call_id)
        assert [p["user_id"] for p in state["participants"]] == [teacher.user_id]
        await refused("blocked", st1.call_join(call_id))
    assert "Traceback" not in d.log()


async def test_admin_powers_hands_permissions_and_mutes(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school, call_id = await lesson_call(d)
    async with clients(d, school, "T-HIST", "T-HOME", "ST-1", "ST-2") as (
        teacher,
        home,
        st1,
        st2,
    ):
        for c in (teacher, home, st1, st2):
            await c.call_join(call_id)
        before = (await st1.call(call_id))["version"]

        # A student may not do what admins do; each refusal changes nothing.
        for attempt in (
            st1.call_permission(call_id, "screen", True, st1.user_id),
            st1.call_permission(call_id, "microphone", False),
            st1.call_admin(call_id, st1.user_id),
            st1.call_remove(call_id, st2.user_id),
            st1.call_mute(call_id, st2.user_id, force=True),
            st1.call_mute(call_id),
            st1.call_admit(call_id),
            st1.call_end(call_id),
            st1.lower_hands(call_id),
            st1.breakout_plan(call_id, "random", room_count=2),
            st1.whiteboard_clear(call_id),
        ):
            await refused("forbidden", attempt)
        assert (await st1.call(call_id))["version"] == before

        # Co-admins are staff; the owner stays.
        await refused("not_staff", teacher.call_admin(call_id, st1.user_id))
        await teacher.call_admin(call_id, home.user_id)
        await refused("owner", home.call_admin(call_id, teacher.user_id, admin=False))
        await refused("target_is_admin", teacher.call_remove(call_id, home.user_id))
        await home.call_admin(call_id, home.user_id, admin=False)  # steps down
        assert (await teacher.call(call_id))["admins"] == [teacher.user_id]

        # Hands, in the order raised; raising twice keeps the place.
        assert await st2.raise_hand(call_id) == [st2.user_id]
        assert await st1.raise_hand(call_id) == [st2.user_id, st1.user_id]
        assert await st2.raise_hand(call_id) == [st2.user_id, st1.user_id]
        await refused("forbidden", st1.lower_hand(call_id, st2.user_id))
        assert await st2.lower_hand(call_id) == [st1.user_id]
        await st2.raise_hand(call_id)
        await teacher.lower_hands(call_id)
        assert (await teacher.call(call_id))["hands"] == []

        # Screen sharing is the teacher's to give (R22), and to take back.
        await refused("forbidden", st1.call_media(call_id, "screen"))
        await teacher.call_permission(call_id, "screen", True, st1.user_id)
        await st1.call_media(call_id, "screen")
        mine = {p["user_id"]: p for p in (await teacher.call(call_id))["participants"]}
        assert mine[st1.user_id]["screen"] is True and "screen" in mine[st1.user_id]["caps"]
        assert "screen" not in mine[st2.user_id]["caps"]
        await teacher.call_permission(call_id, "screen", False, st1.user_id)
        mine = {p["user_id"]: p for p in (await teacher.call(call_id))["participants"]}
        assert mine[st1.user_id]["screen"] is False  # revoking stops the share

        # A mute request is a request; a force mute is not.
        await st1.call_media(call_id, "audio")
        await st2.call_media(call_id, "audio")
        assert sorted(await teacher.call_mute(call_id)) == sorted([st1.user_id, st2.user_id])
        ask = await st1.next_call_push(lambda v: v["type"] == "mute_request", timeout=10)
        assert ask["by"] == teacher.user_id
        await teacher.call_mute(call_id, st1.user_id, force=True)
        mine = {p["user_id"]: p for p in (await teacher.call(call_id))["participants"]}
        assert (mine[st1.user_id]["audio"], mine[st2.user_id]["audio"]) == (False, True)
        await refused("forbidden", st1.call_media(call_id, "audio"))
        await refused("owner", teacher.call_mute(call_id, teacher.user_id))

        # The call's chat: everyone in the call is in it; without the chat capability
        # one is muted there.
        chat = (await teacher.call(call_id))["room_id"]
        await st2.send(chat, "вопрос")
        await teacher.call_permission(call_id, "chat", False)
        await refused("muted", st2.send(chat, "ещё вопрос"))
        await teacher.send(chat, "сначала я")
        await teacher.call_permission(call_id, "chat", None)
        await st2.send(chat, "теперь можно")
    assert "Traceback" not in d.log()


async def test_a_call_in_a_chat(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    owner, member, outsider = d.add_user(), d.add_user(), d.add_user()
    async with (
        Client(d.url, owner.token) as a,
        Client(d.url, member.token) as b,
        Client(d.url, outsider.token) as c,
    ):
        room = await a.create_room("Стенгазета", invite=[b.user_id])
        await b.join(room)
        await refused("forbidden", b.call_start(room))  # power 0 < 50 (events.call)
        await refused("not_member", c.call_start(room))
        started = await a.call_start(room)
        assert started["kind"] == "chat" and started["state"] == "running"
        assert (await a.call_start(room))["call_id"] == started["call_id"]  # the same call
        call_id = started["call_id"]

        # The chat shows the running call ("Войти", R26): a member joins from it.
        events = (await b.history(room))["events"]
        shown = [e for e in events if e["type"] == "call" and e.get("state_key") == call_id]
        assert shown[-1]["content"]["state"] == "running"
        await refused("not_invited", c.call_join(call_id))
        # The SFU reads the offer before anything changes: a broken one is refused.
        await refused("bad_sdp", b.call_join(call_id, offer="v=0\r\n"))
        joined = await b.call_join(call_id)
        assert joined["joined"] is True and joined["answer"] is None  # no offer: no answer
        assert joined["call"]["admins"] == [a.user_id]
        await refused("not_joined", a.call_media(call_id, "video"))  # the owner isn't in yet
        await a.call_join(call_id)
        await a.call_end(call_id)
        done = await b.next_call_push(
            lambda v: v["type"] == "state" and v["state"]["state"] == "ended", timeout=10
        )
        assert done["call_id"] == call_id
        await refused("call_ended", b.call_join(call_id))
        events = (await b.history(room))["events"]
        shown = [e for e in events if e["type"] == "call" and e.get("state_key") == call_id]
        assert shown[-1]["content"]["state"] == "ended"
        # Nobody fakes a call announcement with send.
        await refused("invalid_field", b.send(room, "x", type="call"))
    assert "Traceback" not in d.log()


STROKE = {"type": "stroke", "points": [[0.1, 0.1], [0.2, 0.3]], "color": "#FF0000", "width": 0.01}
TEXT = {"type": "text", "x": 0.5, "y": 0.5, "text": "1812", "color": "#000000", "size": 0.05}
SMALL_BOARD = (
    CLOCK
    + """
[calls]
whiteboard_burst = 5
whiteboard_max_ops = 8
"""
)


async def test_whiteboard_rules_flooding_and_replay_after_restart(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(SMALL_BOARD)
    school, call_id = await lesson_call(d)
    async with clients(d, school, "T-HIST", "ST-1") as (teacher, st1):
        await teacher.call_join(call_id)
        await refused("not_joined", st1.whiteboard_draw(call_id, STROKE))
        await st1.call_join(call_id)
        await refused("forbidden", st1.whiteboard_draw(call_id, STROKE))  # not by default
        first = await teacher.whiteboard_draw(call_id, STROKE)
        pushed = await st1.next_call_push(lambda v: v["type"] == "whiteboard", timeout=10)
        assert pushed["board"] == "main" and pushed["item"]["seq"] == first
        assert pushed["item"]["item"]["color"] == "#ff0000"
        assert pushed["item"]["author"] == teacher.user_id
        await teacher.call_permission(call_id, "whiteboard", True)
        second = await st1.whiteboard_draw(call_id, TEXT)
        assert second == first + 1

        # Bad items are refused by name, and cost nothing.
        for item, code in [
            ({**STROKE, "points": [[1.5, 0]]}, "invalid_field"),
            ({**STROKE, "width": float("nan")}, "invalid_field"),
            ({**STROKE, "pen": 1}, "invalid_field"),
            ({"type": "laser"}, "invalid_field"),
            ({**TEXT, "text": "x" * 501}, "too_large"),
            ({"type": "erase", "target": first}, "forbidden"),  # someone else's drawing
            ({"type": "clear"}, "forbidden"),
        ]:
            await refused(code, st1.whiteboard_draw(call_id, item))
        await refused("not_found", teacher.whiteboard_draw(call_id, STROKE, board="p9.1"))

        # Flooding: a burst of 5, then the clock must move (it is stopped: it doesn't).
        for _ in range(4):
            await st1.whiteboard_draw(call_id, STROKE)
        flood = await refused("rate_limited", st1.whiteboard_draw(call_id, STROKE))
        assert "retry in" in flood.message
        # Full at 8 items since the last clear: an admin clears.
        await teacher.whiteboard_draw(call_id, STROKE)
        await teacher.whiteboard_draw(call_id, {"type": "erase", "target": second})
        await refused("board_full", teacher.whiteboard_draw(call_id, STROKE))
        shown = await st1.whiteboard(call_id)
        assert len(shown["items"]) == 6  # 8 ops: 7 drawings, one of them erased
        assert second not in [i["seq"] for i in shown["items"]]
        cleared = await teacher.whiteboard_clear(call_id)
        after_clear = await teacher.whiteboard_draw(call_id, TEXT)
        assert after_clear == cleared + 1

    # A late joiner after a restart sees the same board.
    d.restart()
    await set_clock(d, at(0, 10, 2))
    async with clients(d, school, "ST-2") as (st2,):
        await st2.call_join(call_id)
        shown = await st2.whiteboard(call_id)
        assert [i["seq"] for i in shown["items"]] == [after_clear]
        assert shown["cleared_seq"] == cleared and shown["next_seq"] == after_clear + 1
    assert "Traceback" not in d.log()


async def test_breakout_plans_over_the_limit_or_with_unknown_people(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school, call_id = await lesson_call(d)
    outsider = d.add_user()
    async with clients(d, school, "T-HIST", "T-HOME", "ST-1", "ST-2") as (
        teacher,
        home,
        st1,
        st2,
    ):
        for c in (teacher, home, st1, st2):
            await c.call_join(call_id)
        before = (await teacher.call(call_id))["version"]
        for fields, code in [
            ({"mode": "hand", "rooms": [[]] * 51}, "too_many_rooms"),
            ({"mode": "random", "room_count": 51}, "too_many_rooms"),
            ({"mode": "self", "room_count": 0}, "no_rooms"),
            ({"mode": "hand", "rooms": [[st1.user_id], [outsider.user_id]]}, "unknown_people"),
            ({"mode": "hand", "rooms": [[st1.user_id], [st1.user_id]]}, "duplicate_assignment"),
            ({"mode": "hand", "rooms": [[teacher.user_id]]}, "admin_assigned"),
            ({"mode": "hand", "rooms": [[]], "names": ["x" * 65]}, "too_large"),
            ({"mode": "hand", "rooms": [[]], "duration_s": 30}, "invalid_field"),
            ({"mode": "random", "rooms": [[]]}, "invalid_field"),
            ({"mode": "random"}, "missing_field"),
            ({"mode": "groups", "group_ids": ["GR-NOPE"]}, "not_found"),
        ]:
            await refused(code, teacher.breakout_plan(call_id, **fields))
        assert (await teacher.call(call_id))["version"] == before
        await refused("breakout_state", teacher.breakout_start(call_id))  # no plan yet

        # 50 rooms are fine (R21); they open with a chat each.
        planned = await teacher.breakout_plan(
            call_id, "hand", rooms=[[st1.user_id], [st2.user_id]] + [[]] * 48
        )
        assert len(planned["breakout"]["rooms"]) == 50
        opened = await teacher.breakout_start(call_id)
        chats = {r["chat_room_id"] for r in opened["rooms"]}
        assert len(chats) == 50 and None not in chats
        where = {p["user_id"]: p["room"] for p in (await st1.call(call_id))["participants"]}
        assert where == {
            teacher.user_id: "main",
            home.user_id: "main",
            st1.user_id: "p1.1",
            st2.user_id: "p1.2",
        }
        await refused("breakout_state", teacher.breakout_plan(call_id, "random", room_count=2))
        await refused("not_self_select", st1.breakout_choose(call_id, "p1.3"))
        await refused("forbidden", st1.breakout_move(call_id, st2.user_id, "p1.1"))
        # Each room has its own board: a student draws only on hers.
        await teacher.call_permission(call_id, "whiteboard", True)
        await st1.whiteboard_draw(call_id, STROKE)
        await refused("forbidden", st1.whiteboard_draw(call_id, STROKE, board="main"))
        assert len((await teacher.whiteboard(call_id, board="p1.1"))["items"]) == 1
        assert (await st2.whiteboard(call_id))["items"] == []
    assert "Traceback" not in d.log()


async def test_a_device_leaves_when_its_last_connection_closes(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school, call_id = await lesson_call(d)
    count = "sferumd_authenticated_connections"
    async with clients(d, school, "T-HIST") as (teacher,):
        await teacher.call_join(call_id)
        one, two = (Client(d.url, school.token("ST-1"), reconnect=False) for _ in range(2))
        await one.connect()
        await two.connect()  # the same device (token) twice
        await one.call_join(call_id)
        await one.raise_hand(call_id)
        await one.close()
        await wait_metric(d.url, count, lambda v: v == 2, timeout=10)
        state = await teacher.call(call_id)
        assert len(state["participants"]) == 2 and state["hands"] == [one.user_id]
        await two.close()
        gone = await teacher.next_call_push(
            lambda v: v["type"] == "state" and len(v["state"]["participants"]) == 1, timeout=10
        )
        assert gone["state"]["hands"] == []
        await wait_metric(d.url, count, lambda v: v == 1, timeout=10)
    assert "Traceback" not in d.log()


async def test_breakout_rooms_from_journal_groups_and_by_choice(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    groups = [
        up("group", "GR-A", class_id="C-7V", name="Группа А", student_ids=["ST-1"]),
        up("group", "GR-B", class_id="C-7V", name="Группа Б", student_ids=["ST-2", "ST-9"]),
    ]
    school = await small_school(d, [lesson(L1, at(0, 10)), *groups])
    await set_clock(d, at(-1, 10))
    call_id = (await school.made(L1))["videoconference_id"]
    await set_clock(d, at(0, 10, 1))
    async with clients(d, school, "T-HIST", "ST-1", "ST-2") as (teacher, st1, st2):
        for c in (teacher, st1, st2):
            await c.call_join(call_id)
        # One room per journal group, named after it; people the call lacks are skipped.
        planned = await teacher.breakout_plan(call_id, "groups", group_ids=["GR-A", "GR-B"])
        assert planned["skipped"] == ["ST-9"]
        assert [(r["name"], r["members"]) for r in planned["breakout"]["rooms"]] == [
            ("Группа А", [st1.user_id]),
            ("Группа Б", [st2.user_id]),
        ]
        # People choose, one per room; a timer that the teacher extends; closed at once.
        await teacher.breakout_plan(call_id, "self", room_count=2, capacity=1, duration_s=300)
        await teacher.breakout_start(call_id)
        await st1.breakout_choose(call_id, "p2.1")
        await refused("room_full", st2.breakout_choose(call_id, "p2.1"))
        await refused("not_found", st2.breakout_choose(call_id, "p2.3"))
        await st2.breakout_choose(call_id, "p2.2")
        state = await teacher.call(call_id)
        rooms = {p["user_id"]: p["room"] for p in state["participants"]}
        assert (rooms[st1.user_id], rooms[st2.user_id]) == ("p2.1", "p2.2")
        extended = await teacher.breakout_extend(call_id, 600)
        assert extended["ends_at_ms"] == ms(at(0, 10, 11))
        await refused("forbidden", st1.breakout_extend(call_id, 600))
        await refused("forbidden", st1.breakout_close(call_id))
        closed = await teacher.breakout_close(call_id, immediate=True)
        assert closed["phase"] == "closed"
        state = await teacher.call(call_id)
        assert {p["room"] for p in state["participants"]} == {"main"}
        await refused("breakout_state", st1.breakout_choose(call_id, "p2.1"))
    assert "Traceback" not in d.log()
