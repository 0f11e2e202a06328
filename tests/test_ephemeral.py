"""Typing, read receipts and presence end to end: what other members see, and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e_peer import Peer, health_pos, snapshot, wait_metric


@pytest.fixture
async def trio(daemon) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """alice and bob share a room; carol is a stranger to it. All three are connected."""
    peers: dict[str, Peer] = {}
    users = {}
    try:
        for name in ("alice", "bob", "carol"):
            users[name] = daemon.add_user(first=name.title(), last="Test")
            peers[name] = await Peer.login(daemon.url, users[name].token)
        room = (await peers["alice"].request("create_room", invite=[peers["bob"].user_id]))[
            "room_id"
        ]
        await peers["bob"].request("join", room_id=room)
        yield {"room": room, "users": users, **peers}
    finally:
        for peer in peers.values():
            await peer.close()


def typing_in(room: str, user_ids: list[str]) -> Any:
    return lambda f: "typing" in f and f["typing"] == {"room_id": room, "user_ids": user_ids}


def presence_of(user_id: str, state: str) -> Any:
    return lambda f: "presence" in f and f["presence"] == {"user_id": user_id, "state": state}


def unread(rooms: dict[str, Any], room: str) -> tuple[int, int]:
    [r] = [r for r in rooms["rooms"] if r["room_id"] == room]
    return r["unread"], r["read_pos"]


# -- typing ------------------------------------------------------------------------------------


async def test_typing_start_and_stop_are_pushed_to_members(trio) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, room = trio["alice"], trio["bob"], trio["carol"], trio["room"]
    b0, c0 = bob.mark(), carol.mark()
    await alice.request("typing", room_id=room, typing=True)
    await bob.wait_frame(typing_in(room, [alice.user_id]), since=b0)

    await bob.request("typing", room_id=room, typing=True)
    await alice.wait_frame(typing_in(room, sorted([alice.user_id, bob.user_id])))

    b1 = bob.mark()
    await alice.request("typing", room_id=room, typing=False)
    await bob.wait_frame(typing_in(room, [bob.user_id]), since=b1)
    await bob.request("typing", room_id=room, typing=False)
    await alice.wait_frame(typing_in(room, []))

    # A stranger hears none of it and can't type into the room.
    await carol.barrier()
    assert carol.pushes("typing", c0) == []
    b2 = bob.mark()
    assert await carol.reject("typing", room_id=room, typing=True) == "not_member"
    await bob.barrier()
    assert bob.pushes("typing", b2) == []


async def test_typing_expires_after_timeout(trio) -> None:  # type: ignore[no-untyped-def]
    alice, bob, room = trio["alice"], trio["bob"], trio["room"]
    loop = asyncio.get_running_loop()
    b0 = bob.mark()
    started = loop.time()
    await alice.request("typing", room_id=room, typing=True, timeout_ms=300)
    await bob.wait_frame(typing_in(room, [alice.user_id]), since=b0)
    # No stop is sent: the server clears it by itself once timeout_ms has passed.
    await bob.wait_frame(typing_in(room, []), since=b0, timeout=3)
    assert loop.time() - started >= 0.25

    # A refresh before the timeout keeps it going without a second push.
    b1 = bob.mark()
    await alice.request("typing", room_id=room, typing=True, timeout_ms=10_000)
    await bob.wait_frame(typing_in(room, [alice.user_id]), since=b1)
    await alice.request("typing", room_id=room, typing=True, timeout_ms=10_000)
    await bob.barrier()
    assert bob.pushes("typing", b1) == [{"room_id": room, "user_ids": [alice.user_id]}]


async def test_typing_stops_when_the_typer_disconnects(trio) -> None:  # type: ignore[no-untyped-def]
    alice, bob, room = trio["alice"], trio["bob"], trio["room"]
    a0 = alice.mark()
    await bob.request("typing", room_id=room, typing=True, timeout_ms=60_000)
    await alice.wait_frame(typing_in(room, [bob.user_id]), since=a0)
    await bob.close()
    await alice.wait_frame(typing_in(room, []), since=a0)


# -- read receipts -----------------------------------------------------------------------------


async def test_read_receipts_lower_unread_push_and_survive_restart(daemon, trio) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, room = trio["alice"], trio["bob"], trio["carol"], trio["room"]
    sent = [
        (await alice.request("send", room_id=room, content={"body": f"m{i}"}))["event"]
        for i in range(3)
    ]
    assert unread(await bob.request("rooms"), room) == (3, 0)

    a0, c0 = alice.mark(), carol.mark()
    await bob.request("read", room_id=room, pos=sent[1]["pos"])
    receipt = await alice.wait_frame(lambda f: "receipt" in f, since=a0)
    assert receipt["receipt"] == {"room_id": room, "user_id": bob.user_id, "pos": sent[1]["pos"]}
    assert unread(await bob.request("rooms"), room) == (1, sent[1]["pos"])

    await bob.request("read", room_id=room, pos=sent[2]["pos"])
    assert unread(await bob.request("rooms"), room) == (0, sent[2]["pos"])
    # Reading an older position again does not bring messages back to unread.
    await bob.request("read", room_id=room, pos=sent[0]["pos"])
    assert unread(await bob.request("rooms"), room) == (0, sent[2]["pos"])
    await carol.barrier()
    assert carol.pushes("receipt", c0) == []

    # A position beyond the newest event is refused and changes nothing.
    snap = await snapshot(daemon.url, alice, room)
    newest = await health_pos(daemon.url)
    reply = await bob.call("read", room_id=room, pos=newest + 1)
    assert reply["error"]["code"] == "invalid_field"
    assert unread(await bob.request("rooms"), room) == (0, sent[2]["pos"])
    assert await carol.reject("read", room_id=room, pos=1) == "not_member"
    await snap.assert_unchanged()

    for peer in (alice, bob, carol):
        await peer.close()
    daemon.restart()
    bob2 = await Peer.login(daemon.url, trio["users"]["bob"].token)
    alice2 = await Peer.login(daemon.url, trio["users"]["alice"].token)
    try:
        assert unread(await bob2.request("rooms"), room) == (0, sent[2]["pos"])
        await alice2.request("send", room_id=room, content={"body": "после перезапуска"})
        assert unread(await bob2.request("rooms"), room) == (1, sent[2]["pos"])
    finally:
        await bob2.close()
        await alice2.close()


# -- presence ----------------------------------------------------------------------------------


async def test_presence_online_offline_and_strangers_unknown(daemon, trio) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = trio["alice"], trio["bob"], trio["carol"]
    states = await alice.request("presence", user_ids=[bob.user_id, carol.user_id, "@nosuchuser"])
    assert states["presence"] == {
        bob.user_id: "online",
        carol.user_id: "unknown",  # connected, but shares no room with alice
        "@nosuchuser": "unknown",
    }

    a0, c0 = alice.mark(), carol.mark()
    await bob.close()
    await alice.wait_frame(presence_of(bob.user_id, "offline"), since=a0)
    assert (await alice.request("presence", user_ids=[bob.user_id]))["presence"] == {
        bob.user_id: "offline"
    }

    a1 = alice.mark()
    bob_again = await Peer.login(daemon.url, trio["users"]["bob"].token)
    try:
        await alice.wait_frame(presence_of(bob.user_id, "online"), since=a1)
        assert (await alice.request("presence", user_ids=[bob.user_id]))["presence"] == {
            bob.user_id: "online"
        }
        # The stranger heard about none of it.
        await carol.barrier()
        assert carol.pushes("presence", c0) == []
        assert (await carol.request("presence", user_ids=[bob.user_id]))["presence"] == {
            bob.user_id: "unknown"
        }
    finally:
        await bob_again.close()


async def test_user_with_two_devices_stays_online_until_both_are_gone(daemon, trio) -> None:  # type: ignore[no-untyped-def]
    alice, bob = trio["alice"], trio["bob"]
    second = daemon.add_user(phone=trio["users"]["bob"].phone)
    assert second.user_id == bob.user_id and second.device_id != bob.device_id
    a0 = alice.mark()
    bob_phone = await Peer.login(daemon.url, second.token)
    try:
        # bob was online already: a second device is no news.
        await alice.barrier()
        assert alice.pushes("presence", a0) == []

        await bob.close()
        # Until the server has let go of the first device's connection (3 -> 2 in total).
        await wait_metric(daemon.url, "sferumd_authenticated_connections", lambda v: v == 3)
        assert (await alice.request("presence", user_ids=[bob.user_id]))["presence"] == {
            bob.user_id: "online"
        }
        await alice.barrier()
        assert alice.pushes("presence", a0) == []
    finally:
        await bob_phone.close()
    await alice.wait_frame(presence_of(bob.user_id, "offline"), since=a0)
    assert (await alice.request("presence", user_ids=[bob.user_id]))["presence"] == {
        bob.user_id: "offline"
    }
