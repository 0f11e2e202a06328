"""Moderation of a chat against a real daemon: admins delete any message, mute and unmute,
remove and ban; members report messages to the admins, who get them pushed, and the reported
person never learns who reported them. The chat photo's state event is checked here too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from sferumd.api.invites import qr_image
from tests.e2e_peer import Peer, health_pos, room_history, snapshot

NAMES = ("alice", "bob", "carol", "dave")
TIMEOUT = 5.0


async def chat(owner: Peer, *members: Peer, **fields: Any) -> str:
    room = (await owner.request("create_room", invite=[p.user_id for p in members], **fields))[
        "room_id"
    ]
    for peer in members:
        await peer.request("join", room_id=room)
    return str(room)


async def make_moderator(owner: Peer, room: str, peer: Peer, level: int = 50) -> None:
    history = await room_history(owner, room)
    levels = [e for e in history if e["type"] == "power_levels"][-1]["content"]
    levels["users"][peer.user_id] = level
    await owner.request("state", room_id=room, type="power_levels", content=levels)


async def say(peer: Peer, room: str, text: str) -> dict[str, Any]:
    return (await peer.request("send", room_id=room, content={"body": text}))["event"]  # type: ignore[no-any-return]


# -- deleting, removing, banning (the room ops) -------------------------------------------------


async def test_an_admin_deletes_any_message_a_member_only_their_own(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await chat(alice, bob, carol)
    bobs = await say(bob, room, "спам")
    carols = await say(carol, room, "привет")
    assert await carol.reject("redact", room_id=room, event_id=bobs["event_id"]) == "forbidden"
    await carol.request("redact", room_id=room, event_id=carols["event_id"])
    mark = bob.mark()
    redaction = (await alice.request("redact", room_id=room, event_id=bobs["event_id"]))["event"]
    await bob.wait_event(lambda e: e["event_id"] == redaction["event_id"], since=mark)
    history = {e["event_id"]: e for e in await room_history(carol, room)}
    assert history[bobs["event_id"]]["content"] == {}
    assert history[bobs["event_id"]]["redacted_by"] == redaction["event_id"]


async def test_an_admin_removes_and_bans(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await chat(alice, bob, carol)
    assert await carol.reject("kick", room_id=room, user_id=bob.user_id) == "forbidden"
    await alice.request("kick", room_id=room, user_id=bob.user_id, reason="вне класса")
    assert await bob.reject("send", room_id=room, content={"body": "x"}) == "not_member"
    await alice.request("ban", room_id=room, user_id=carol.user_id)
    assert await carol.reject("join", room_id=room) == "banned"


# -- mutes ----------------------------------------------------------------------------------------


async def test_a_muted_member_is_refused_until_the_time_passes(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await chat(alice, bob, carol)
    mark = carol.mark()
    muted = (await alice.request("mute", room_id=room, user_id=bob.user_id, duration_s=1))["event"]
    assert muted["type"] == "mutes" and muted["state_key"] == ""
    until = muted["content"][bob.user_id]
    assert until == pytest.approx(muted["ts"] + 1000, abs=50)
    await carol.wait_event(lambda e: e["event_id"] == muted["event_id"], since=mark)

    snap = await snapshot(daemon.url, alice, room)
    reply = await bob.call("send", room_id=room, content={"body": "можно?"}, txn="t-1")
    assert (
        reply["error"]["code"] == "muted"
        and "muted in this room until" in reply["error"]["message"]
    )
    await snap.assert_unchanged()
    await say(carol, room, "others still talk")
    # Wait (bounded) for the mute to run out: the send is refused until then, then allowed.
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        reply = await bob.call("send", room_id=room, content={"body": "можно?"}, txn="t-1")
        if "ok" in reply:
            break
        assert reply["error"]["code"] == "muted"
        assert asyncio.get_running_loop().time() < deadline, "the mute never ended"
        await asyncio.sleep(0.05)
    assert reply["ok"]["event"]["ts"] >= until
    assert reply["ok"]["event"]["content"] == {"body": "можно?"}


async def test_mute_until_unmuted_and_unmute(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await chat(alice, bob, carol)
    await alice.request("mute", room_id=room, user_id=bob.user_id, duration_s=3600)
    muted = (await alice.request("mute", room_id=room, user_id=carol.user_id))["event"]
    assert muted["content"][carol.user_id] is None
    assert set(muted["content"]) == {bob.user_id, carol.user_id}
    assert await carol.reject("send", room_id=room, content={"body": "x"}) == "muted"
    # A muted member still reads.
    assert (await carol.request("history", room_id=room))["events"]

    unmuted = (await alice.request("unmute", room_id=room, user_id=carol.user_id))["event"]
    assert set(unmuted["content"]) == {bob.user_id}
    await say(carol, room, "снова могу")
    assert await bob.reject("send", room_id=room, content={"body": "x"}) == "muted"
    assert await alice.reject("unmute", room_id=room, user_id=carol.user_id) == "not_found"

    # A mute holds across a restart: it is room state.
    for peer in cast.values():
        await peer.close()
    daemon.restart()
    assert bob.token is not None
    bob2 = await Peer.login(daemon.url, bob.token)
    try:
        assert await bob2.reject("send", room_id=room, content={"body": "x"}) == "muted"
    finally:
        await bob2.close()


async def test_who_may_mute_whom(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    room = await chat(alice, bob, carol)
    snap = await snapshot(daemon.url, alice, room)
    # A member at 0 mutes nobody; nobody mutes a stranger or someone not below them.
    assert await carol.reject("mute", room_id=room, user_id=bob.user_id) == "forbidden"
    assert await carol.reject("unmute", room_id=room, user_id=bob.user_id) == "forbidden"
    assert await dave.reject("mute", room_id=room, user_id=bob.user_id) == "not_member"
    assert await alice.reject("mute", room_id=room, user_id=dave.user_id) == "membership"
    assert await alice.reject("mute", room_id=room, user_id=alice.user_id) == "forbidden"
    await snap.assert_unchanged()
    await make_moderator(alice, room, bob)
    assert await bob.reject("mute", room_id=room, user_id=alice.user_id) == "forbidden"
    await bob.request("mute", room_id=room, user_id=carol.user_id, duration_s=60)
    assert await carol.reject("send", room_id=room, content={"body": "x"}) == "muted"
    # The mutes map is the server's: not settable with state, not sendable as an event.
    content = {carol.user_id: None}
    assert await alice.reject("state", room_id=room, type="mutes", content=content) == (
        "invalid_field"
    )
    assert await alice.reject("send", room_id=room, type="mutes", content=content) == (
        "invalid_field"
    )


async def test_mute_durations_out_of_range_are_invalid(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await chat(alice, bob)
    for duration in (0, -1, 366 * 86_400 + 1, 1.5, "1h", True, [1]):
        code = await alice.reject("mute", room_id=room, user_id=bob.user_id, duration_s=duration)
        assert code == "invalid_field", duration
    await say(bob, room, "не замьючен")


async def test_an_expired_mute_is_dropped_by_the_next_write(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await chat(alice, bob, carol)
    first = (await alice.request("mute", room_id=room, user_id=bob.user_id, duration_s=1))["event"]
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while "error" in await bob.call("send", room_id=room, content={"body": "?"}):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert await alice.reject("unmute", room_id=room, user_id=bob.user_id) == "not_found"
    second = await alice.request("mute", room_id=room, user_id=carol.user_id, duration_s=60)
    assert set(second["event"]["content"]) == {carol.user_id} != set(first["content"])


# -- reports ------------------------------------------------------------------------------------


async def test_a_report_reaches_the_admins_but_never_the_reported(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    room = await chat(alice, bob, carol, dave)
    await make_moderator(alice, room, bob)  # bob is an admin too, and the one reported
    bad = await say(bob, room, "обидное")
    marks = {name: peer.mark() for name, peer in cast.items()}

    reply = await carol.request("report", room_id=room, event_id=bad["event_id"], reason="грубо")
    assert reply == {"reported": True, "new": True}
    push = (await alice.wait_frame(lambda f: "report" in f, since=marks["alice"]))["report"]
    assert push == {
        "room_id": room,
        "event_id": bad["event_id"],
        "sender": bob.user_id,
        "reporter": carol.user_id,
        "reason": "грубо",
        "ts": push["ts"],
    }
    for name in ("bob", "carol", "dave"):  # the reported admin, the reporter, a member
        await cast[name].barrier()
        assert cast[name].pushes("report", since=marks[name]) == []

    # The same report again: stored once, pushed once.
    again = await carol.request("report", room_id=room, event_id=bad["event_id"], reason="ещё")
    assert again == {"reported": True, "new": False}
    await alice.barrier()
    assert len(alice.pushes("report", since=marks["alice"])) == 1

    # Another member reports it too: a second report.
    await dave.request("report", room_id=room, event_id=bad["event_id"])
    listed = (await alice.request("reports", room_id=room))["reports"]
    assert sorted((r["reporter"], r["reason"]) for r in listed) == sorted(
        [(carol.user_id, "грубо"), (dave.user_id, None)]
    )
    # The reported admin's list leaves out the reports about him; members have none to read.
    assert (await bob.request("reports", room_id=room))["reports"] == []
    assert await carol.reject("reports", room_id=room) == "forbidden"


async def test_what_can_be_reported(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    room = await chat(alice, bob, carol)
    mine = await say(carol, room, "моё")
    bobs = await say(bob, room, "удалю")
    await bob.request("redact", room_id=room, event_id=bobs["event_id"])
    state = next(e for e in await room_history(alice, room) if e["type"] == "power_levels")
    other_room = await chat(dave)
    elsewhere = await say(dave, other_room, "чужое")
    pos = await health_pos(daemon.url)
    cases = [
        (carol, mine["event_id"], "invalid_field"),  # one's own
        (carol, state["event_id"], "invalid_field"),  # a state event
        (carol, bobs["event_id"], "not_found"),  # deleted already
        (carol, "$999999-nothing", "not_found"),
        (carol, elsewhere["event_id"], "not_found"),  # another room's
        (dave, mine["event_id"], "not_member"),
    ]
    for peer, event_id, code in cases:
        assert await peer.reject("report", room_id=room, event_id=event_id) == code, event_id
    assert await carol.reject("report", room_id=room, event_id="not-an-id") == "invalid_field"
    assert await health_pos(daemon.url) == pos
    assert (await alice.request("reports", room_id=room))["reports"] == []


# -- the chat photo -------------------------------------------------------------------------------


async def upload(base: str, peer: Peer, name: str, type_: str, data: bytes) -> str:
    """Uploads a file as ``peer``; its id."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/v1/files",
            params={"name": name},
            data=data,
            headers={"Authorization": f"Bearer {peer.token}", "Content-Type": type_},
        ) as resp,
    ):
        body = await resp.json()
        assert resp.status in (200, 201), body
        return str(body["id"])


async def upload_picture(base: str, peer: Peer, text: str = "фото") -> str:
    return await upload(base, peer, "photo.png", "image/png", qr_image(text, "png", 4))


async def test_the_chat_photo_is_an_uploaded_picture(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await chat(alice, bob)
    photo = await upload_picture(daemon.url, alice)
    mark = bob.mark()
    content = {"file_id": photo}
    ev = (await alice.request("state", room_id=room, type="avatar", content=content))["event"]
    assert ev["content"] == content and ev["state_key"] == ""
    await bob.wait_event(lambda e: e["event_id"] == ev["event_id"], since=mark)
    # Members may download the photo; someone outside the chat may not.
    for peer, status in ((bob, 200), (carol, 404)):
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{daemon.url}/v1/files/{photo}",
                headers={"Authorization": f"Bearer {peer.token}"},
            ) as resp,
        ):
            assert resp.status == status
            if status == 200:
                assert (await resp.read())[:4] == b"\x89PNG"
    removed = (await alice.request("state", room_id=room, type="avatar", content={}))["event"]
    assert removed["content"] == {}

    snap = await snapshot(daemon.url, alice, room)
    text = await upload(daemon.url, alice, "notes.txt", "text/plain", "домашка".encode())
    bobs = await upload_picture(daemon.url, bob, "боб")
    for content, code in (
        ({"file_id": ""}, "invalid_field"),
        ({"file_id": "a/b"}, "invalid_field"),
        ({"file_id": "F" + "x" * 65}, "invalid_field"),
        ({"file_id": 5}, "invalid_field"),
        ({"file_id": photo, "url": "http://evil"}, "invalid_field"),
        ({"url": photo}, "invalid_field"),
        ({"file_id": text}, "invalid_field"),  # not a picture
        ({"file_id": bobs}, "not_found"),  # someone else's upload
        ({"file_id": "Fnosuchfile0000000000000"}, "not_found"),
    ):
        got = await alice.reject("state", room_id=room, type="avatar", content=content)
        assert got == code, content
    # A member below the avatar level may not set one, even with a picture of their own.
    assert await bob.reject("state", room_id=room, type="avatar", content={"file_id": bobs}) == (
        "forbidden"
    )
    await snap.assert_unchanged()
