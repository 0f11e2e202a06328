"""Rooms end to end over the websocket: a real daemon, several users, every push checked.

Each refused request is followed by a check that nothing stored changed: the room's history
as a member reads it and the server's newest stream position are the same as before.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e_peer import Peer, room_history, snapshot

NAMES = ("alice", "bob", "carol")


@pytest.fixture
async def cast(daemon) -> AsyncIterator[dict[str, Peer]]:  # type: ignore[no-untyped-def]
    """Three users, each logged in on one connection; alice usually owns the room."""
    peers: dict[str, Peer] = {}
    try:
        for name in NAMES:
            user = daemon.add_user(first=name.title(), last="Test")
            peers[name] = await Peer.login(daemon.url, user.token)
            assert peers[name].user_id == user.user_id
        yield peers
    finally:
        for peer in peers.values():
            await peer.close()


async def make_room(owner: Peer, *joiners: Peer, **fields: Any) -> str:
    """A room created by ``owner`` that each of ``joiners`` was invited to and joined."""
    fields.setdefault("invite", [p.user_id for p in joiners])
    room = (await owner.request("create_room", **fields))["room_id"]
    for peer in joiners:
        await peer.request("join", room_id=room)
    return str(room)


def member_event(user_id: str, membership: str) -> Any:
    return lambda ev: (
        ev["type"] == "member"
        and ev["state_key"] == user_id
        and ev["content"]["membership"] == membership
    )


def by_id(event_id: str) -> Any:
    return lambda ev: ev["event_id"] == event_id


def in_room(room: str) -> Any:
    return lambda ev: ev["room_id"] == room


async def send(peer: Peer, room: str, body: str) -> dict[str, Any]:
    return (await peer.request("send", room_id=room, content={"body": body}))["event"]  # type: ignore[no-any-return]


async def current_power(peer: Peer, room: str) -> dict[str, Any]:
    history = await room_history(peer, room)
    return copy.deepcopy([e for e in history if e["type"] == "power_levels"][-1]["content"])


def summary(rooms: list[dict[str, Any]], room: str) -> dict[str, Any] | None:
    found = [r for r in rooms if r["room_id"] == room]
    return found[0] if found else None


# -- creating rooms, lists, members ------------------------------------------------------------


async def test_create_room_sets_state_invites_and_lists(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    bob_mark, carol_mark = bob.mark(), carol.mark()
    room = (
        await alice.request(
            "create_room",
            name="7Б класс",
            topic="Математика",
            join_rule="public",
            invite=[bob.user_id],
        )
    )["room_id"]

    # The invitee learns of the invite live; a stranger hears nothing.
    invite = await bob.wait_event(member_event(bob.user_id, "invite"), since=bob_mark)
    assert invite["room_id"] == room and invite["sender"] == alice.user_id
    await carol.barrier()
    assert [e for e in carol.events(carol_mark) if e["room_id"] == room] == []

    history = await room_history(alice, room)
    assert [(e["type"], e.get("state_key")) for e in history] == [
        ("create", ""),
        ("member", alice.user_id),
        ("power_levels", ""),
        ("join_rule", ""),
        ("name", ""),
        ("topic", ""),
        ("member", bob.user_id),
    ]
    assert history[4]["content"] == {"name": "7Б класс"}
    assert history[5]["content"] == {"topic": "Математика"}
    assert history[3]["content"] == {"join_rule": "public"}
    assert all(e["room_id"] == room and e["sender"] == alice.user_id for e in history)
    positions = [e["pos"] for e in history]
    assert positions == sorted(set(positions))

    mine = summary((await alice.request("rooms"))["rooms"], room)
    assert mine is not None
    assert mine["name"] == "7Б класс" and mine["topic"] == "Математика"
    assert mine["join_rule"] == "public"
    assert (mine["membership"], mine["members"], mine["power"], mine["unread"]) == (
        "join",
        1,
        100,
        0,
    )

    theirs = summary((await bob.request("rooms"))["rooms"], room)
    assert theirs is not None
    assert (theirs["membership"], theirs["members"], theirs["power"]) == ("invite", 1, 0)
    assert summary((await carol.request("rooms"))["rooms"], room) is None

    members = await alice.request("members", room_id=room)
    assert members["members"] == sorted(
        [
            {"user_id": alice.user_id, "membership": "join", "power": 100},
            {"user_id": bob.user_id, "membership": "invite", "power": 0},
        ],
        key=lambda m: m["user_id"],
    )
    # Invited is not joined: the member list is for members.
    assert await bob.reject("members", room_id=room) == "not_member"

    # Once bob joins, the list counts him and his unread count follows alice's messages.
    await bob.request("join", room_id=room)
    for i in range(3):
        await send(alice, room, f"урок {i}")
    theirs = summary((await bob.request("rooms"))["rooms"], room)
    assert theirs is not None
    assert (theirs["membership"], theirs["members"], theirs["unread"]) == ("join", 2, 3)
    mine = summary((await alice.request("rooms"))["rooms"], room)
    assert mine is not None and mine["unread"] == 0  # one's own messages are read


async def test_create_room_with_unknown_invitee_creates_nothing(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice = cast["alice"]
    room = await make_room(alice)
    snap = await snapshot(daemon.url, alice, room)
    before = (await alice.request("rooms"))["rooms"]
    code = await alice.reject("create_room", name="x", invite=["@nobodyhere"])
    assert code == "not_found"
    assert (await alice.request("rooms"))["rooms"] == before
    await snap.assert_unchanged()


# -- membership --------------------------------------------------------------------------------


async def test_invite_join_leave_reach_the_right_people(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice)

    a0, b0, c0 = alice.mark(), bob.mark(), carol.mark()
    invite = (await alice.request("invite", room_id=room, user_id=bob.user_id))["event"]
    assert invite["content"] == {"membership": "invite"} and invite["state_key"] == bob.user_id
    await bob.wait_event(by_id(invite["event_id"]), since=b0)  # the target sees its own event
    await alice.wait_event(by_id(invite["event_id"]), since=a0)

    join = (await bob.request("join", room_id=room))["event"]
    assert join["sender"] == bob.user_id and join["content"] == {"membership": "join"}
    await alice.wait_event(by_id(join["event_id"]), since=a0)
    await bob.wait_event(by_id(join["event_id"]), since=b0)

    msg = await send(alice, room, "привет")
    await bob.wait_event(by_id(msg["event_id"]), since=b0)

    leave = (await bob.request("leave", room_id=room))["event"]
    assert leave["content"] == {"membership": "leave"} and leave["state_key"] == bob.user_id
    await alice.wait_event(by_id(leave["event_id"]), since=a0)
    await bob.wait_event(by_id(leave["event_id"]), since=b0)

    b1 = bob.mark()
    after = await send(alice, room, "bob has gone")
    await alice.wait_event(by_id(after["event_id"]), since=a0)
    await bob.barrier()
    assert bob.events(b1) == []
    await carol.barrier()
    assert [e for e in carol.events(c0) if e["room_id"] == room] == []

    assert summary((await bob.request("rooms"))["rooms"], room) is None
    mine = summary((await alice.request("rooms"))["rooms"], room)
    assert mine is not None and mine["members"] == 1

    # Leaving twice is refused and stores nothing.
    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("leave", room_id=room) == "not_member"
    # Inviting someone already invited or joined is refused too.
    await alice.request("invite", room_id=room, user_id=carol.user_id)
    snap = await snapshot(daemon.url, alice, room)
    assert await alice.reject("invite", room_id=room, user_id=carol.user_id) == "membership"
    assert await alice.reject("invite", room_id=room, user_id="@nosuchuser") == "not_found"
    await snap.assert_unchanged()


async def test_kicked_user_sees_the_kick_and_then_nothing(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, carol)
    a0, b0, c0 = alice.mark(), bob.mark(), carol.mark()

    kick = (await alice.request("kick", room_id=room, user_id=bob.user_id, reason="шумит"))["event"]
    assert kick["sender"] == alice.user_id and kick["state_key"] == bob.user_id
    assert kick["content"] == {"membership": "leave", "reason": "шумит"}
    for peer, mark in ((alice, a0), (bob, b0), (carol, c0)):
        await peer.wait_event(by_id(kick["event_id"]), since=mark)

    b1 = bob.mark()
    msg = await send(alice, room, "без bob")
    await carol.wait_event(by_id(msg["event_id"]), since=c0)
    await bob.barrier()
    assert bob.events(b1) == []

    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("send", room_id=room, content={"body": "я тут"}) == "not_member"
    assert await bob.reject("members", room_id=room) == "not_member"
    # Invite-only: a kicked user can't walk back in.
    assert await bob.reject("join", room_id=room) == "forbidden"
    await snap.assert_unchanged()
    assert summary((await bob.request("rooms"))["rooms"], room) is None


async def test_ban_keeps_the_user_out_until_unbanned(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, join_rule="public")
    b0 = bob.mark()

    ban = (await alice.request("ban", room_id=room, user_id=bob.user_id, reason="спам"))["event"]
    assert ban["content"] == {"membership": "ban", "reason": "спам"}
    await bob.wait_event(by_id(ban["event_id"]), since=b0)
    # A user who never was in the room can be banned from it too.
    await alice.request("ban", room_id=room, user_id=carol.user_id)

    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("join", room_id=room) == "banned"
    assert await carol.reject("join", room_id=room) == "banned"  # though the room is public
    assert await alice.reject("invite", room_id=room, user_id=bob.user_id) == "banned"
    assert await alice.reject("ban", room_id=room, user_id=bob.user_id) == "membership"
    assert await bob.reject("send", room_id=room, content={"body": "x"}) == "not_member"
    await snap.assert_unchanged()

    b1 = bob.mark()
    unban = (await alice.request("unban", room_id=room, user_id=bob.user_id))["event"]
    assert unban["content"] == {"membership": "leave"} and unban["state_key"] == bob.user_id
    await bob.wait_event(by_id(unban["event_id"]), since=b1)
    rejoin = (await bob.request("join", room_id=room))["event"]
    assert rejoin["content"] == {"membership": "join"}
    members = (await alice.request("members", room_id=room))["members"]
    assert {m["user_id"]: m["membership"] for m in members} == {
        alice.user_id: "join",
        bob.user_id: "join",
    }


async def test_public_room_open_to_all_invite_only_room_forbidden(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    public = await make_room(alice, join_rule="public", name="открытая")
    private = await make_room(alice, name="закрытая")

    a0 = alice.mark()
    join = (await carol.request("join", room_id=public))["event"]
    await alice.wait_event(by_id(join["event_id"]), since=a0)
    listed = summary((await carol.request("rooms"))["rooms"], public)
    assert listed is not None and listed["membership"] == "join" and listed["members"] == 2
    # Joining again is a no-op that returns the same membership event.
    again = (await carol.request("join", room_id=public))["event"]
    assert again == join

    snap = await snapshot(daemon.url, alice, private)
    err = (await carol.call("join", room_id=private))["error"]
    assert err["code"] == "forbidden"
    # A room that does not exist gets the same answer: room ids don't leak.
    missing = "!doesnotexist123"
    err_missing = (await carol.call("join", room_id=missing))["error"]
    assert err_missing["code"] == "forbidden"
    assert err_missing["message"].replace(missing, "ROOM") == err["message"].replace(
        private, "ROOM"
    )
    await snap.assert_unchanged()
    assert summary((await carol.request("rooms"))["rooms"], private) is None


# -- power levels ------------------------------------------------------------------------------


async def test_power_levels_gate_actions_and_promotion_opens_them(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, carol, name="7А")
    snap = await snapshot(daemon.url, alice, room)

    # bob is at level 0: every gated action is refused.
    assert await bob.reject("kick", room_id=room, user_id=carol.user_id) == "forbidden"
    assert await bob.reject("ban", room_id=room, user_id=carol.user_id) == "forbidden"
    assert (
        await bob.reject("state", room_id=room, type="name", content={"name": "мой"}) == "forbidden"
    )
    assert (
        await bob.reject("state", room_id=room, type="topic", content={"topic": "т"}) == "forbidden"
    )
    promoted_self = await current_power(bob, room)
    promoted_self["users"][bob.user_id] = 100
    assert await bob.reject("state", room_id=room, type="power_levels", content=promoted_self) == (
        "forbidden"
    )
    assert await bob.reject("kick", room_id=room, user_id=alice.user_id) == "forbidden"
    await snap.assert_unchanged()
    assert [
        m["power"]
        for m in (await bob.request("members", room_id=room))["members"]
        if m["user_id"] == bob.user_id
    ] == [0]

    # The creator promotes bob to 50 and lets level 50 change power levels.
    b0, c0 = bob.mark(), carol.mark()
    levels = await current_power(alice, room)
    levels["users"][bob.user_id] = 50
    levels["events"]["power_levels"] = 50
    change = (await alice.request("state", room_id=room, type="power_levels", content=levels))[
        "event"
    ]
    await bob.wait_event(by_id(change["event_id"]), since=b0)
    await carol.wait_event(by_id(change["event_id"]), since=c0)
    listed = summary((await bob.request("rooms"))["rooms"], room)
    assert listed is not None and listed["power"] == 50

    # Now bob may rename the room; carol sees it.
    rename = (await bob.request("state", room_id=room, type="name", content={"name": "7А-2"}))[
        "event"
    ]
    await carol.wait_event(by_id(rename["event_id"]), since=c0)
    listed = summary((await carol.request("rooms"))["rooms"], room)
    assert listed is not None and listed["name"] == "7А-2"

    # ... but not promote anyone above himself, nor touch alice, nor kick above himself.
    snap = await snapshot(daemon.url, alice, room)
    too_high = await current_power(bob, room)
    too_high["users"][carol.user_id] = 60
    assert await bob.reject("state", room_id=room, type="power_levels", content=too_high) == (
        "forbidden"
    )
    self_up = await current_power(bob, room)
    self_up["users"][bob.user_id] = 100
    assert await bob.reject("state", room_id=room, type="power_levels", content=self_up) == (
        "forbidden"
    )
    demote_alice = await current_power(bob, room)
    demote_alice["users"][alice.user_id] = 0
    assert await bob.reject("state", room_id=room, type="power_levels", content=demote_alice) == (
        "forbidden"
    )
    assert await bob.reject("kick", room_id=room, user_id=alice.user_id) == "forbidden"
    assert await bob.reject("ban", room_id=room, user_id=alice.user_id) == "forbidden"
    await snap.assert_unchanged()

    # Up to his own level is fine.
    equal = await current_power(bob, room)
    equal["users"][carol.user_id] = 50
    await bob.request("state", room_id=room, type="power_levels", content=equal)
    members = {
        m["user_id"]: m["power"] for m in (await alice.request("members", room_id=room))["members"]
    }
    assert members == {alice.user_id: 100, bob.user_id: 50, carol.user_id: 50}

    # And bob (50) can't kick carol (50): kicking needs a level above the target's.
    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("kick", room_id=room, user_id=carol.user_id) == "forbidden"
    await snap.assert_unchanged()
    kick = (await alice.request("kick", room_id=room, user_id=carol.user_id))["event"]
    assert kick["content"]["membership"] == "leave"


async def test_promoted_member_can_kick_and_ban(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, carol)
    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("kick", room_id=room, user_id=carol.user_id) == "forbidden"
    await snap.assert_unchanged()

    levels = await current_power(alice, room)
    levels["users"][bob.user_id] = 50
    await alice.request("state", room_id=room, type="power_levels", content=levels)

    c0 = carol.mark()
    kick = (await bob.request("kick", room_id=room, user_id=carol.user_id))["event"]
    await carol.wait_event(by_id(kick["event_id"]), since=c0)
    ban = (await bob.request("ban", room_id=room, user_id=carol.user_id))["event"]
    await carol.wait_event(by_id(ban["event_id"]), since=c0)
    assert await carol.reject("join", room_id=room) == "banned"


# -- redaction ---------------------------------------------------------------------------------


async def test_redaction_rules_and_tombstones(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob)
    own = await send(bob, room, "ой, не туда")
    theirs = await send(alice, room, "домашнее задание: №5")

    a0 = alice.mark()
    redaction = (await bob.request("redact", room_id=room, event_id=own["event_id"]))["event"]
    assert redaction["type"] == "redaction" and redaction["redacts"] == own["event_id"]
    live = await alice.wait_event(by_id(redaction["event_id"]), since=a0)
    assert live["redacts"] == own["event_id"] and live["sender"] == bob.user_id

    history = {e["event_id"]: e for e in await room_history(bob, room)}
    gone = history[own["event_id"]]
    assert gone["content"] == {} and gone["redacted_by"] == redaction["event_id"]
    assert gone["pos"] == own["pos"] and gone["sender"] == bob.user_id
    assert history[theirs["event_id"]]["content"] == {"body": "домашнее задание: №5"}

    # The content is gone for a fresh sync too.
    fresh = await Peer.login(daemon.url, bob.token, since=0)
    try:
        synced = [e for e in fresh.events() if e["event_id"] == own["event_id"]]
        assert synced and synced[0]["content"] == {} and "body" not in str(synced[0])
    finally:
        await fresh.close()

    # Another's message needs the redact level (50); bob has 0.
    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("redact", room_id=room, event_id=theirs["event_id"]) == "forbidden"
    # A non-member can't redact at all, and nobody can redact twice or a state event.
    assert await carol.reject("redact", room_id=room, event_id=theirs["event_id"]) == "not_member"
    assert await bob.reject("redact", room_id=room, event_id=own["event_id"]) == "not_found"
    create = (await room_history(alice, room))[0]
    assert await alice.reject("redact", room_id=room, event_id=create["event_id"]) == (
        "invalid_field"
    )
    assert await alice.reject("redact", room_id=room, event_id="$nosuchevent") == "not_found"
    await snap.assert_unchanged()

    # The creator (100) may redact bob's message; bob sees the redaction live.
    later = await send(bob, room, "ещё одно")
    b0 = bob.mark()
    red2 = (
        await alice.request("redact", room_id=room, event_id=later["event_id"], reason="не по теме")
    )["event"]
    assert red2["content"] == {"reason": "не по теме"}
    await bob.wait_event(by_id(red2["event_id"]), since=b0)
    after = {e["event_id"]: e for e in await room_history(alice, room)}
    assert after[later["event_id"]]["content"] == {}
    assert after[later["event_id"]]["redacted_by"] == red2["event_id"]


# -- history -----------------------------------------------------------------------------------


async def test_history_pages_backwards_over_every_event_once(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await make_room(alice, bob)
    other = await make_room(alice)  # interleaved events of another room stay out
    for i in range(23):
        await send(alice if i % 2 else bob, room, f"m{i}")
        if i % 5 == 0:
            await send(alice, other, f"other {i}")

    everything = await bob.request("history", room_id=room, limit=1000)
    assert everything["prev"] is None
    full = everything["events"]
    bodies = [e["content"]["body"] for e in full if e["type"] == "message"]
    assert bodies == [f"m{i}" for i in range(23)]

    pages: list[list[dict[str, Any]]] = []
    before = None
    for _ in range(50):
        page = await bob.request("history", room_id=room, before=before, limit=5)
        assert [e["pos"] for e in page["events"]] == sorted(e["pos"] for e in page["events"])
        if before is not None:
            assert all(e["pos"] < before for e in page["events"])
        pages.append(page["events"])
        if page["prev"] is None:
            break
        assert page["prev"] == page["events"][0]["pos"]
        before = page["prev"]
    else:
        raise AssertionError("paging did not end")
    assert all(len(p) == 5 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 5
    stitched = [e for page in reversed(pages) for e in page]
    assert stitched == full
    assert len({e["event_id"] for e in stitched}) == len(stitched)
    assert all(e["room_id"] == room for e in stitched)

    # The newest page without `before` ends at the newest event.
    newest = await bob.request("history", room_id=room, limit=1)
    assert newest["events"] == full[-1:]


async def test_left_user_reads_history_only_up_to_the_leave(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await make_room(alice, bob)
    seen = await send(alice, room, "до ухода")
    leave = (await bob.request("leave", room_id=room))["event"]
    unseen = await send(alice, room, "после ухода")

    mine = await room_history(bob, room)
    assert mine[-1]["event_id"] == leave["event_id"]
    ids = [e["event_id"] for e in mine]
    assert seen["event_id"] in ids and unseen["event_id"] not in ids
    assert all(e["pos"] <= leave["pos"] for e in mine)
    # Paging from beyond the leave still stops there.
    page = await bob.request("history", room_id=room, before=unseen["pos"] + 1, limit=1000)
    assert page["events"] == mine

    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("send", room_id=room, content={"body": "x"}) == "not_member"
    await snap.assert_unchanged()


async def test_declined_invite_grants_no_history(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    room = await make_room(alice)
    await send(alice, room, "секрет")
    await alice.request("invite", room_id=room, user_id=carol.user_id)
    assert await carol.reject("history", room_id=room) == "not_member"  # invited only
    decline = (await carol.request("leave", room_id=room))["event"]
    assert decline["content"] == {"membership": "leave"}
    assert await carol.reject("history", room_id=room) == "not_member"
    assert await carol.reject("history", room_id=room, before=decline["pos"] + 1) == "not_member"


async def test_non_member_gets_not_member_like_a_missing_room(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    room = await make_room(alice, name="учительская")
    await send(alice, room, "только для своих")
    missing = "!nosuchroom0000"
    snap = await snapshot(daemon.url, alice, room)

    requests: list[tuple[str, dict[str, Any]]] = [
        ("send", {"content": {"body": "привет"}}),
        ("history", {}),
        ("members", {}),
        ("leave", {}),
        ("invite", {"user_id": alice.user_id}),
        ("kick", {"user_id": alice.user_id}),
        ("state", {"type": "name", "content": {"name": "наша"}}),
        ("typing", {"typing": True}),
        ("read", {"pos": 1}),
    ]
    for op, fields in requests:
        real = (await carol.call(op, room_id=room, **fields))["error"]
        fake = (await carol.call(op, room_id=missing, **fields))["error"]
        assert real["code"] == "not_member", (op, real)
        assert fake["code"] == "not_member", (op, fake)
        assert real["message"].replace(room, "ROOM") == fake["message"].replace(missing, "ROOM")
    await snap.assert_unchanged()
    assert summary((await carol.request("rooms"))["rooms"], room) is None
