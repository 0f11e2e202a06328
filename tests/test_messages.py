"""Rich messages end to end (services.messages): replies, mentions, edits with their history,
reactions, pins and forwarding, against a real daemon.

A refused request is followed by a check that nothing stored changed (the room's history as
a member reads it and the server's newest position).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e_peer import Peer, room_history, snapshot

NAMES = ("alice", "bob", "carol")


async def login_all(daemon: Any) -> dict[str, Peer]:
    peers: dict[str, Peer] = {}
    for name in NAMES:
        user = daemon.add_user(first=name.title(), last="Test")
        peers[name] = await Peer.login(daemon.url, user.token)
    return peers


@pytest.fixture
async def cast(daemon: Any) -> AsyncIterator[dict[str, Peer]]:
    """Alice, Bob and Carol, each on one connection; alice usually owns the room."""
    peers = await login_all(daemon)
    try:
        yield peers
    finally:
        for peer in peers.values():
            await peer.close()


async def make_room(owner: Peer, *joiners: Peer, **fields: Any) -> str:
    fields.setdefault("invite", [p.user_id for p in joiners])
    room = (await owner.request("create_room", **fields))["room_id"]
    for peer in joiners:
        await peer.request("join", room_id=room)
    return str(room)


async def send(peer: Peer, room: str, body: str, **content: Any) -> dict[str, Any]:
    reply = await peer.request("send", room_id=room, content={"body": body, **content})
    return reply["event"]  # type: ignore[no-any-return]


def by_id(event_id: str) -> Any:
    return lambda ev: ev["event_id"] == event_id


async def stored(peer: Peer, room: str, event_id: str) -> dict[str, Any]:
    """The event as history reads it now."""
    return next(e for e in await room_history(peer, room) if e["event_id"] == event_id)


async def mentions_in(peer: Peer, room: str) -> int:
    rooms = (await peer.request("rooms"))["rooms"]
    return int(next(r for r in rooms if r["room_id"] == room)["mentions"])


# -- replies ----------------------------------------------------------------------------------


async def test_a_reply_names_a_message_of_the_room_even_a_redacted_one(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await make_room(alice, bob)
    question = await send(alice, room, "Кто решил задачу 5?")
    b0 = bob.mark()
    reply = await send(bob, room, "Я", reply_to=question["event_id"])
    assert reply["content"] == {"body": "Я", "reply_to": question["event_id"]}
    assert (await bob.wait_event(by_id(reply["event_id"]), since=b0))["content"] == reply["content"]

    gone = await send(alice, room, "ошибся")
    await alice.request("redact", room_id=room, event_id=gone["event_id"])
    late = await send(bob, room, "что там было?", reply_to=gone["event_id"])
    assert late["content"]["reply_to"] == gone["event_id"]
    assert (await stored(alice, room, late["event_id"]))["content"] == late["content"]


async def test_bad_replies_are_refused_and_store_nothing(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob)
    other = await make_room(carol)
    elsewhere = await send(carol, other, "в другой комнате")
    history = await room_history(alice, room)
    state_event = next(e for e in history if e["type"] == "name" or e["type"] == "power_levels")
    snap = await snapshot(daemon.url, alice, room)

    def reply(target: Any) -> dict[str, Any]:
        return {"body": "ответ", "reply_to": target}

    assert await bob.reject("send", room_id=room, content=reply(elsewhere["event_id"])) == (
        "not_found"
    )
    assert await bob.reject("send", room_id=room, content=reply("$999999-nothere")) == "not_found"
    assert await bob.reject("send", room_id=room, content=reply(state_event["event_id"])) == (
        "invalid_field"
    )
    for malformed in ("5-abc", "$a b", "", None, 5, ["$1-a"]):
        code = await bob.reject("send", room_id=room, content=reply(malformed))
        assert code == "invalid_field", malformed
    # A stranger is told only that the room is not theirs.
    question = await send(alice, room, "?")
    snap = await snapshot(daemon.url, alice, room)
    assert await carol.reject("send", room_id=room, content=reply(question["event_id"])) == (
        "not_member"
    )
    await snap.assert_unchanged()


# -- mentions ---------------------------------------------------------------------------------


async def test_mentioned_members_get_a_push_and_an_unread_count(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, carol)
    b0, c0, a0 = bob.mark(), carol.mark(), alice.mark()
    msg = await send(alice, room, "@Боря, сдай тетрадь", mentions=[bob.user_id, alice.user_id])
    push = await bob.wait_frame(lambda fr: "mention" in fr, since=b0)
    assert push["mention"] == {
        "room_id": room,
        "event_id": msg["event_id"],
        "sender": alice.user_id,
    }
    await carol.wait_event(by_id(msg["event_id"]), since=c0)
    await carol.barrier()
    await alice.barrier()
    assert carol.pushes("mention", c0) == []
    assert alice.pushes("mention", a0) == []  # mentioning oneself tells nobody
    assert await mentions_in(bob, room) == 1
    assert await mentions_in(carol, room) == 0
    assert await mentions_in(alice, room) == 0

    # A retried send (same txn) is the same message: no second push, the same count.
    first = (
        await alice.request(
            "send", room_id=room, content={"body": "и ты", "mentions": [bob.user_id]}, txn="m-1"
        )
    )["event"]
    await bob.wait_frame(
        lambda fr: fr.get("mention", {}).get("event_id") == first["event_id"], since=b0
    )
    again = (
        await alice.request(
            "send", room_id=room, content={"body": "и ты", "mentions": [bob.user_id]}, txn="m-1"
        )
    )["event"]
    assert again == first
    await bob.barrier()
    assert len(bob.pushes("mention", b0)) == 2
    assert await mentions_in(bob, room) == 2

    # Reading past them clears them; redacting one takes it out of the count.
    await bob.request("read", room_id=room, pos=msg["pos"])
    assert await mentions_in(bob, room) == 1
    await alice.request("redact", room_id=room, event_id=first["event_id"])
    assert await mentions_in(bob, room) == 0


async def test_only_joined_members_can_be_mentioned(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob)
    await alice.request("invite", room_id=room, user_id=carol.user_id)  # invited, not joined
    snap = await snapshot(daemon.url, alice, room)
    c0 = carol.mark()
    for mentions, code in [
        ([carol.user_id], "invalid_field"),
        (["@nosuchuser1"], "invalid_field"),
        ([bob.user_id, bob.user_id], "invalid_field"),
        ([f"@u{i}" for i in range(51)], "too_large"),
        (["bob"], "invalid_field"),
        (bob.user_id, "invalid_field"),
    ]:
        content = {"body": "x", "mentions": mentions}
        assert await alice.reject("send", room_id=room, content=content) == code
    await snap.assert_unchanged()
    await carol.barrier()
    assert carol.pushes("mention", c0) == []


@pytest.mark.parametrize("key", ["edited", "forwarded_from", "poll"])
async def test_server_made_content_keys_are_refused(daemon, cast, key: str) -> None:  # type: ignore[no-untyped-def]
    alice = cast["alice"]
    room = await make_room(alice)
    snap = await snapshot(daemon.url, alice, room)
    content = {"body": "x", key: {"event_id": "$1-a", "room_id": room, "question": "q"}}
    assert await alice.reject("send", room_id=room, content=content) == "invalid_field"
    await snap.assert_unchanged()


# -- edits ------------------------------------------------------------------------------------


async def test_an_edit_shows_the_newest_text_and_keeps_the_history(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await make_room(alice, bob)
    msg = await send(alice, room, "ДЗ: параграф 12")
    b0 = bob.mark()
    edit = (
        await alice.request(
            "edit", room_id=room, event_id=msg["event_id"], body="ДЗ: параграф 13", txn="e-1"
        )
    )["event"]
    assert edit["type"] == "edit" and edit["sender"] == alice.user_id
    assert edit["content"] == {"replaces": msg["event_id"], "body": "ДЗ: параграф 13"}
    assert await bob.wait_event(by_id(edit["event_id"]), since=b0) == edit
    # The same transaction again: the same edit, nothing new.
    again = await alice.request(
        "edit", room_id=room, event_id=msg["event_id"], body="другое", txn="e-1"
    )
    assert again["event"] == edit
    second = (
        await alice.request("edit", room_id=room, event_id=msg["event_id"], body="параграф 14")
    )["event"]

    # Readers of the history see the newest text, marked as edited.
    original = await stored(bob, room, msg["event_id"])
    assert original["content"] == {
        "body": "параграф 14",
        "edited": {"event_id": second["event_id"], "ts": second["ts"]},
    }
    versions = (await bob.request("edits", room_id=room, event_id=msg["event_id"]))["versions"]
    assert versions == [
        {"event_id": msg["event_id"], "ts": msg["ts"], "body": "ДЗ: параграф 12"},
        {"event_id": edit["event_id"], "ts": edit["ts"], "body": "ДЗ: параграф 13"},
        {"event_id": second["event_id"], "ts": second["ts"], "body": "параграф 14"},
    ]
    edits = [e for e in await room_history(alice, room) if e["type"] == "edit"]
    assert [e["event_id"] for e in edits] == [edit["event_id"], second["event_id"]]

    # A message never edited has one version; after a restart all of it is still there.
    plain = await send(bob, room, "ок")
    assert (await alice.request("edits", room_id=room, event_id=plain["event_id"]))["versions"] == [
        {"event_id": plain["event_id"], "ts": plain["ts"], "body": "ок"}
    ]
    await alice.close()
    daemon.restart()
    alice = cast["alice"] = await Peer.login(daemon.url, (await _token(daemon, cast, "alice")))
    assert (await stored(alice, room, msg["event_id"]))["content"]["body"] == "параграф 14"
    after = (await alice.request("edits", room_id=room, event_id=msg["event_id"]))["versions"]
    assert after == versions


async def _token(daemon: Any, cast: dict[str, Peer], name: str) -> str:
    token = cast[name].token
    assert token is not None
    return token


async def test_only_the_author_edits_a_live_message(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob)
    mine = await send(bob, room, "моё")
    deleted = await send(bob, room, "удалю")
    await bob.request("redact", room_id=room, event_id=deleted["event_id"])
    state = next(e for e in await room_history(alice, room) if e["type"] == "power_levels")
    poll = (await bob.request("poll", room_id=room, question="Когда?", options=["Пн", "Вт"]))[
        "event"
    ]
    snap = await snapshot(daemon.url, alice, room)

    async def edit(peer: Peer, event_id: str, body: str = "новое") -> dict[str, Any]:
        reply = await peer.call("edit", room_id=room, event_id=event_id, body=body)
        assert "error" in reply, reply
        return reply["error"]  # type: ignore[no-any-return]

    err = await edit(alice, mine["event_id"])  # the room's admin, but not the author
    assert err["code"] == "forbidden" and "author" in err["message"]
    assert (await edit(bob, deleted["event_id"]))["code"] == "redacted"
    assert (await edit(bob, state["event_id"]))["code"] == "invalid_field"
    assert (await edit(bob, poll["event_id"]))["code"] == "invalid_field"
    assert (await edit(bob, "$99999-nothere"))["code"] == "not_found"
    assert (await edit(carol, mine["event_id"]))["code"] == "not_member"
    assert (await edit(bob, mine["event_id"], body="   "))["code"] == "invalid_field"
    assert (await edit(bob, mine["event_id"], body="x" * 16_001))["code"] == "too_large"
    await snap.assert_unchanged()
    err = (await alice.call("edits", room_id=room, event_id=deleted["event_id"]))["error"]
    assert err["code"] == "redacted"
    assert await carol.reject("edits", room_id=room, event_id=mine["event_id"]) == "not_member"


async def test_redacting_an_edit_or_the_message(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await make_room(alice, bob)
    msg = await send(alice, room, "v1")
    e2 = (await alice.request("edit", room_id=room, event_id=msg["event_id"], body="v2"))["event"]
    e3 = (await alice.request("edit", room_id=room, event_id=msg["event_id"], body="v3"))["event"]

    # Taking the newest edit back shows the one before it.
    await alice.request("redact", room_id=room, event_id=e3["event_id"])
    content = (await stored(bob, room, msg["event_id"]))["content"]
    assert content == {"body": "v2", "edited": {"event_id": e2["event_id"], "ts": e2["ts"]}}
    bodies = [
        v["body"]
        for v in (await bob.request("edits", room_id=room, event_id=msg["event_id"]))["versions"]
    ]
    assert bodies == ["v1", "v2"]
    # And taking back the last one shows the first text, no longer marked edited.
    await alice.request("redact", room_id=room, event_id=e2["event_id"])
    assert (await stored(bob, room, msg["event_id"]))["content"] == {"body": "v1"}

    # Redacting the message hides its edits' text too; every tombstone stays.
    e4 = (await alice.request("edit", room_id=room, event_id=msg["event_id"], body="версия 4"))[
        "event"
    ]
    e5 = (await alice.request("edit", room_id=room, event_id=msg["event_id"], body="версия 5"))[
        "event"
    ]
    redaction = await bob.call("redact", room_id=room, event_id=msg["event_id"])
    assert redaction["error"]["code"] == "forbidden"  # someone else's needs the redact level
    redaction = (await alice.request("redact", room_id=room, event_id=msg["event_id"]))["event"]
    history = {e["event_id"]: e for e in await room_history(bob, room)}
    assert history[msg["event_id"]]["content"] == {}
    for edit in (e4, e5):
        assert history[edit["event_id"]]["content"] == {}
        assert history[edit["event_id"]]["redacted_by"] == redaction["event_id"]
    for edit in (e2, e3):  # redacted earlier, by their own redactions
        assert history[edit["event_id"]]["content"] == {}
        assert history[edit["event_id"]]["redacted_by"] != redaction["event_id"]
    # Spaces and Cyrillic can't occur in the random ids, so a hit means leaked text.
    assert "версия 4" not in str(history) and "версия 5" not in str(history)
    # The edits are gone, so there is nothing more to redact of them.
    assert await alice.reject("redact", room_id=room, event_id=e5["event_id"]) == "not_found"


# -- reactions --------------------------------------------------------------------------------


async def test_one_reaction_per_user_key_and_message(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, carol)
    msg = await send(alice, room, "Завтра экскурсия")
    a0 = alice.mark()
    like = (await bob.request("react", room_id=room, event_id=msg["event_id"], key="👍"))["event"]
    assert like["type"] == "reaction" and like["sender"] == bob.user_id
    assert like["content"] == {"relates_to": msg["event_id"], "key": "👍"}
    assert await alice.wait_event(by_id(like["event_id"]), since=a0) == like

    # Repeats, sequential or concurrent: the first reaction comes back, nothing new is stored.
    again = await asyncio.gather(
        *(bob.request("react", room_id=room, event_id=msg["event_id"], key="👍") for _ in range(5))
    )
    assert all(r["event"] == like for r in again)
    carol_likes = await asyncio.gather(
        *(
            carol.request("react", room_id=room, event_id=msg["event_id"], key="👍")
            for _ in range(4)
        )
    )
    assert len({r["event"]["event_id"] for r in carol_likes}) == 1
    heart = (await bob.request("react", room_id=room, event_id=msg["event_id"], key="❤️"))["event"]
    assert heart["event_id"] != like["event_id"]
    reactions = [e for e in await room_history(alice, room) if e["type"] == "reaction"]
    assert len(reactions) == 3

    summary = await alice.request("reactions", room_id=room, event_id=msg["event_id"])
    assert summary == {
        "event_id": msg["event_id"],
        "reactions": [
            {"key": "👍", "count": 2, "users": [bob.user_id, carol.user_id], "mine": None},
            {"key": "❤️", "count": 1, "users": [bob.user_id], "mine": None},
        ],
    }
    mine = (await bob.request("reactions", room_id=room, event_id=msg["event_id"]))["reactions"]
    assert [r["mine"] for r in mine] == [like["event_id"], heart["event_id"]]

    # Taking a reaction back is redacting it; then the same key is a new reaction.
    await bob.request("redact", room_id=room, event_id=like["event_id"])
    summary = await alice.request("reactions", room_id=room, event_id=msg["event_id"])
    assert [(r["key"], r["users"]) for r in summary["reactions"]] == [
        ("👍", [carol.user_id]),
        ("❤️", [bob.user_id]),
    ]
    relike = (await bob.request("react", room_id=room, event_id=msg["event_id"], key="👍"))["event"]
    assert relike["event_id"] != like["event_id"]


async def test_reactions_go_on_live_messages_only(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob)
    msg = await send(alice, room, "x")
    gone = await send(alice, room, "y")
    await alice.request("redact", room_id=room, event_id=gone["event_id"])
    like = (await bob.request("react", room_id=room, event_id=msg["event_id"], key="👍"))["event"]
    state = next(e for e in await room_history(alice, room) if e["type"] == "join_rule")
    snap = await snapshot(daemon.url, alice, room)

    async def react(peer: Peer, event_id: str, key: str = "👍") -> str:
        return await peer.reject("react", room_id=room, event_id=event_id, key=key)

    assert await react(bob, gone["event_id"]) == "redacted"
    assert await react(bob, state["event_id"]) == "invalid_field"
    assert await react(bob, like["event_id"]) == "invalid_field"  # a reaction to a reaction
    assert await react(bob, "$424242-nothere") == "not_found"
    assert await react(carol, msg["event_id"]) == "not_member"
    for key in ("", " ", "a b", "\u202e", "\u200d", "x" * 17):
        assert await react(bob, msg["event_id"], key) in ("invalid_field", "too_large"), key
    await snap.assert_unchanged()
    # Redacting the message: its reactions no longer count, their events stay.
    await alice.request("redact", room_id=room, event_id=msg["event_id"])
    assert await bob.reject("reactions", room_id=room, event_id=msg["event_id"]) == "redacted"
    assert (await stored(alice, room, like["event_id"]))["content"]["key"] == "👍"


async def test_reactions_per_user_are_bounded(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    daemon = daemon_factory("[limits]\nmax_reactions_per_user = 2\n")
    cast = await login_all(daemon)
    try:
        alice, bob = cast["alice"], cast["bob"]
        room = await make_room(alice, bob)
        msg = await send(alice, room, "x")
        for key in ("1", "2"):
            await bob.request("react", room_id=room, event_id=msg["event_id"], key=key)
        snap = await snapshot(daemon.url, alice, room)
        assert await bob.reject("react", room_id=room, event_id=msg["event_id"], key="3") == (
            "too_large"
        )
        await snap.assert_unchanged()
        # A repeat of one already there is no new reaction, so it is still fine.
        await bob.request("react", room_id=room, event_id=msg["event_id"], key="2")
        await alice.request("react", room_id=room, event_id=msg["event_id"], key="3")
    finally:
        for peer in cast.values():
            await peer.close()


# -- pins -------------------------------------------------------------------------------------


async def test_pins_need_the_pins_level_and_name_live_messages(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    daemon = daemon_factory("[limits]\nmax_pins = 2\n")
    cast = await login_all(daemon)
    try:
        alice, bob = cast["alice"], cast["bob"]
        room = await make_room(alice, bob)
        first, second, third = [await send(bob, room, f"m{i}") for i in range(3)]
        gone = await send(bob, room, "gone")
        await bob.request("redact", room_id=room, event_id=gone["event_id"])
        snap = await snapshot(daemon.url, alice, room)
        err = (await bob.call("pin", room_id=room, event_id=first["event_id"]))["error"]
        assert err["code"] == "forbidden" and "50" in err["message"]  # events.pins is 50
        await snap.assert_unchanged()

        b0 = bob.mark()
        pin = (await alice.request("pin", room_id=room, event_id=first["event_id"], txn="p1"))[
            "event"
        ]
        assert pin["type"] == "pins" and pin["state_key"] == ""
        assert pin["content"] == {"pinned": [first["event_id"]]}
        await bob.wait_event(by_id(pin["event_id"]), since=b0)
        # Pinning it again changes nothing and answers the current list.
        assert (await alice.request("pin", room_id=room, event_id=first["event_id"]))[
            "event"
        ] == pin
        two = (await alice.request("pin", room_id=room, event_id=second["event_id"]))["event"]
        assert two["content"] == {"pinned": [second["event_id"], first["event_id"]]}

        snap = await snapshot(daemon.url, alice, room)
        for event_id, code in [
            (third["event_id"], "too_large"),  # max_pins = 2
            (gone["event_id"], "redacted"),
            ("$77777-nothere", "not_found"),
        ]:
            assert await alice.reject("pin", room_id=room, event_id=event_id) == code
        assert await alice.reject("unpin", room_id=room, event_id=third["event_id"]) == (
            "not_found"
        )
        state = "state"
        assert await alice.reject(state, room_id=room, type="pins", content={"pinned": []}) == (
            "invalid_field"
        )
        assert await alice.reject("send", room_id=room, type="pins", content={}) == (
            "invalid_field"
        )
        await snap.assert_unchanged()

        unpin = (await alice.request("unpin", room_id=room, event_id=first["event_id"]))["event"]
        assert unpin["content"] == {"pinned": [second["event_id"]]}
        # Lowering events.pins lets members pin.
        levels = next(
            e for e in reversed(await room_history(alice, room)) if e["type"] == "power_levels"
        )["content"]
        assert levels["events"]["pins"] == 50
        levels["events"]["pins"] = 0
        await alice.request("state", room_id=room, type="power_levels", content=levels)
        mine = (await bob.request("pin", room_id=room, event_id=third["event_id"]))["event"]
        assert mine["content"] == {"pinned": [third["event_id"], second["event_id"]]}
        # A pinned message that gets redacted stays listed until someone unpins it.
        await bob.request("redact", room_id=room, event_id=third["event_id"])
        done = (await bob.request("unpin", room_id=room, event_id=third["event_id"]))["event"]
        assert done["content"] == {"pinned": [second["event_id"]]}
    finally:
        for peer in cast.values():
            await peer.close()


# -- forwarding -------------------------------------------------------------------------------


async def test_forward_copies_a_message_with_its_origin(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    klass = await make_room(alice, bob, name="7Б")
    parents = await make_room(bob, carol, name="родители")
    question = await send(alice, klass, "вопрос")
    homework = await send(
        alice, klass, "ДЗ на пятницу", reply_to=question["event_id"], mentions=[bob.user_id]
    )
    await alice.request("edit", room_id=klass, event_id=homework["event_id"], body="ДЗ на среду")
    c0 = carol.mark()
    copy = (
        await bob.request(
            "forward",
            from_room=klass,
            event_id=homework["event_id"],
            to_room=parents,
            txn="fw-1",
        )
    )["event"]
    assert copy["room_id"] == parents and copy["sender"] == bob.user_id
    assert copy["type"] == "message"
    assert copy["content"] == {
        "body": "ДЗ на среду",  # the text as it reads now; reply, mentions, edit mark stay behind
        "forwarded_from": {
            "room_id": klass,
            "event_id": homework["event_id"],
            "sender": alice.user_id,
            "ts": homework["ts"],
        },
    }
    assert await carol.wait_event(by_id(copy["event_id"]), since=c0) == copy
    again = await bob.request(
        "forward", from_room=klass, event_id=homework["event_id"], to_room=parents, txn="fw-1"
    )
    assert again["event"] == copy
    # A forward of the copy still names the first origin.
    room3 = await make_room(carol)
    onward = (
        await carol.request("forward", from_room=parents, event_id=copy["event_id"], to_room=room3)
    )["event"]
    assert onward["content"]["forwarded_from"] == copy["content"]["forwarded_from"]
    # A copy is a message of its own: it can't be edited (the origin's author wrote it).
    assert await bob.reject("edit", room_id=parents, event_id=copy["event_id"], body="x") == (
        "invalid_field"
    )


async def test_forward_needs_sight_of_the_message_and_the_right_to_send(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob)
    mine = await make_room(carol)
    before = await send(alice, room, "пока bob здесь")
    gone = await send(alice, room, "удалено")
    await alice.request("redact", room_id=room, event_id=gone["event_id"])
    poll = (await alice.request("poll", room_id=room, question="?", options=["a", "b"]))["event"]
    await bob.request("leave", room_id=room)
    after = await send(alice, room, "после ухода bob")
    bob_room = await make_room(bob)
    snap = await snapshot(daemon.url, carol, mine)
    bob_snap = await snapshot(daemon.url, bob, bob_room)

    def forward(peer: Peer, event_id: str, to: str, frm: str = room) -> Any:
        return peer.reject("forward", from_room=frm, event_id=event_id, to_room=to)

    # Carol was never in the room: she can't forward from it, whatever the event.
    assert await forward(carol, before["event_id"], mine) == "not_member"
    assert await forward(carol, "$1-nothing", mine) == "not_member"
    # Bob left: what he saw he may still forward; what came after, he never saw.
    assert await forward(bob, after["event_id"], bob_room) == "not_found"
    assert await forward(bob, gone["event_id"], bob_room) == "redacted"
    assert await forward(bob, poll["event_id"], bob_room) == "invalid_field"
    # ...and only into a room he is joined to.
    assert await forward(bob, before["event_id"], mine) == "not_member"
    await snap.assert_unchanged()
    await bob_snap.assert_unchanged()
    copy = (
        await bob.request("forward", from_room=room, event_id=before["event_id"], to_room=bob_room)
    )["event"]
    assert copy["content"]["body"] == "пока bob здесь"

    # The right to send counts in the target room.
    levels = next(
        e for e in reversed(await room_history(carol, mine)) if e["type"] == "power_levels"
    )["content"]
    await carol.request("invite", room_id=mine, user_id=alice.user_id)
    await alice.request("join", room_id=mine)
    levels["events"]["message"] = 50
    await carol.request("state", room_id=mine, type="power_levels", content=levels)
    snap = await snapshot(daemon.url, carol, mine)
    assert await forward(alice, after["event_id"], mine) == "forbidden"
    await snap.assert_unchanged()


# -- the SDK and the command-line client ------------------------------------------------------


async def test_sdk_and_cli_cover_rich_messages(daemon) -> None:  # type: ignore[no-untyped-def]
    from clients.sdk import Client, ClientError
    from tests.test_cli import lines, sferum

    alice, bob = daemon.add_user("Анна", "А"), daemon.add_user("Борис", "Б")
    async with Client(daemon.url, alice.token) as a, Client(daemon.url, bob.token) as b:
        room = await a.create_room("7Б", invite=[bob.user_id])
        other = await b.create_room("личное")
        await b.join(room)
        msg = await a.send(room, "Привет", mentions=[bob.user_id])
        reply = await b.send(room, "Здравствуйте", reply_to=msg["event_id"])
        assert reply["content"]["reply_to"] == msg["event_id"]
        while "mention" not in (push := await b.next_push(5)):
            assert "closed" not in push
        assert push["mention"]["event_id"] == msg["event_id"]
        await a.edit(room, msg["event_id"], "Привет всем")
        assert [v["body"] for v in await b.edits(room, msg["event_id"])] == [
            "Привет",
            "Привет всем",
        ]
        like = await b.react(room, msg["event_id"], "👍")
        assert await b.react(room, msg["event_id"], "👍") == like
        assert (await a.reactions(room, msg["event_id"]))[0]["users"] == [bob.user_id]
        pins = await a.pin(room, msg["event_id"])
        assert pins["content"]["pinned"] == [msg["event_id"]]
        copy = await b.forward(room, msg["event_id"], other)
        assert copy["content"]["forwarded_from"]["event_id"] == msg["event_id"]
        poll = await a.create_poll(room, "Кто идёт?", ["я", "не я"], anonymous=True)
        assert (await b.vote(room, poll["event_id"], [0]))["counts"] == [1, 0]
        await a.close_poll(room, poll["event_id"])
        assert (await b.poll_results(room, poll["event_id"]))["closed"] is True
        try:
            await b.edit(room, msg["event_id"], "не моё")
            raise AssertionError("bob edited alice's message")
        except ClientError as err:
            assert err.code == "forbidden"

    url = daemon.url
    [sent] = await lines(
        url,
        bob.token,
        "send",
        room,
        "ответ",
        "--reply-to",
        msg["event_id"],
        "--mention",
        alice.user_id,
    )
    assert sent["content"] == {
        "body": "ответ",
        "reply_to": msg["event_id"],
        "mentions": [alice.user_id],
    }
    [edit] = await lines(url, bob.token, "edit", room, sent["event_id"], "ответ 2")
    assert edit["type"] == "edit"
    versions = await lines(url, bob.token, "edits", room, sent["event_id"])
    assert [v["body"] for v in versions] == ["ответ", "ответ 2"]
    [heart] = await lines(url, alice.token, "react", room, sent["event_id"], "❤️")
    assert heart["content"]["key"] == "❤️"
    [listed] = await lines(url, bob.token, "reactions", room, sent["event_id"])
    assert (listed["key"], listed["count"]) == ("❤️", 1)
    [pin] = await lines(url, alice.token, "pin", room, sent["event_id"])
    [unpin] = await lines(url, alice.token, "unpin", room, sent["event_id"])
    assert sent["event_id"] in pin["content"]["pinned"]
    assert sent["event_id"] not in unpin["content"]["pinned"]
    [fwd] = await lines(url, bob.token, "forward", room, sent["event_id"], other)
    assert fwd["room_id"] == other and fwd["content"]["body"] == "ответ 2"
    [poll] = await lines(
        url, alice.token, "poll", "create", room, "Когда?", "Пн", "Ср", "Пт", "--multiple"
    )
    assert poll["content"]["poll"]["options"] == ["Пн", "Ср", "Пт"]
    [voted] = await lines(url, bob.token, "poll", "vote", room, poll["event_id"], "2", "0")
    assert (voted["counts"], voted["mine"]) == ([1, 0, 1], [0, 2])
    [closed] = await lines(url, alice.token, "poll", "close", room, poll["event_id"])
    assert closed["type"] == "poll_close"
    [results] = await lines(url, bob.token, "poll", "results", room, poll["event_id"])
    assert results["closed"] is True and results["voters"] == [[bob.user_id], [], [bob.user_id]]
    rc, _, err = await sferum(url, bob.token, "react", room, sent["event_id"], "a b")
    assert rc == 1 and '"invalid_field"' in err


async def test_a_former_member_reads_what_hangs_on_a_message_up_to_their_leave(
    daemon, cast
) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await make_room(alice, bob, carol)
    msg = await send(alice, room, "v1")
    before = (await alice.request("edit", room_id=room, event_id=msg["event_id"], body="v2"))[
        "event"
    ]
    await carol.request("react", room_id=room, event_id=msg["event_id"], key="👍")
    await bob.request("leave", room_id=room)
    await alice.request("edit", room_id=room, event_id=msg["event_id"], body="v3")
    await carol.request("react", room_id=room, event_id=msg["event_id"], key="🎉")

    versions = (await bob.request("edits", room_id=room, event_id=msg["event_id"]))["versions"]
    assert [v["body"] for v in versions] == ["v1", "v2"]
    assert versions[-1]["event_id"] == before["event_id"]
    seen = (await bob.request("reactions", room_id=room, event_id=msg["event_id"]))["reactions"]
    assert [r["key"] for r in seen] == ["👍"]
    # Members see all of it.
    versions = (await carol.request("edits", room_id=room, event_id=msg["event_id"]))["versions"]
    assert [v["body"] for v in versions] == ["v1", "v2", "v3"]
    # Something posted after bob left does not exist for him.
    later = await send(alice, room, "потом")
    assert await bob.reject("edits", room_id=room, event_id=later["event_id"]) == "not_found"
    assert await bob.reject("reactions", room_id=room, event_id=later["event_id"]) == "not_found"
