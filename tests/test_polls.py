"""Polls end to end (services.polls): the poll message, votes, live tallies, closing, and
anonymous polls that never tell anyone who chose what."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from tests.e2e_peer import Peer, room_history, snapshot

NAMES = ("alice", "bob", "carol", "dan")


async def class_room(cast: dict[str, Peer]) -> str:
    alice = cast["alice"]
    others = [cast[n] for n in NAMES[1:]]
    room = (await alice.request("create_room", invite=[p.user_id for p in others]))["room_id"]
    for peer in others:
        await peer.request("join", room_id=room)
    return str(room)


async def make_poll(peer: Peer, room: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("question", "Когда пишем контрольную?")
    fields.setdefault("options", ["Понедельник", "Среда", "Пятница"])
    return (await peer.request("poll", room_id=room, **fields))["event"]  # type: ignore[no-any-return]


def poll_pushes(peer: Peer, event_id: str, since: int = 0) -> list[dict[str, Any]]:
    return [p for p in peer.pushes("poll", since) if p["event_id"] == event_id]


async def wait_tally(peer: Peer, event_id: str, counts: list[int], since: int) -> dict[str, Any]:
    frame = await peer.wait_frame(
        lambda fr: (
            fr.get("poll", {}).get("event_id") == event_id and fr["poll"]["counts"] == counts
        ),
        since=since,
    )
    return frame["poll"]  # type: ignore[no-any-return]


# -- the poll message -------------------------------------------------------------------------


async def test_a_poll_is_a_message_everyone_sees(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await class_room(cast)
    b0 = bob.mark()
    poll = await make_poll(alice, room, multiple=True, txn="poll-1")
    assert poll["type"] == "message"
    assert poll["content"] == {
        "body": "Когда пишем контрольную?",
        "poll": {
            "question": "Когда пишем контрольную?",
            "options": ["Понедельник", "Среда", "Пятница"],
            "multiple": True,
            "anonymous": False,
        },
    }
    assert (await bob.wait_event(lambda e: e["event_id"] == poll["event_id"], since=b0)) == poll
    assert await make_poll(alice, room, txn="poll-1") == poll  # a retry: the same poll
    rooms = (await bob.request("rooms"))["rooms"]
    assert next(r for r in rooms if r["room_id"] == room)["unread"] == 1
    results = await bob.request("poll_results", room_id=room, event_id=poll["event_id"])
    assert results == {
        "room_id": room,
        "event_id": poll["event_id"],
        "multiple": True,
        "anonymous": False,
        "closed": False,
        "counts": [0, 0, 0],
        "total_voters": 0,
        "mine": [],
        "voters": [[], [], []],
    }
    # Replies, reactions and pins treat it as the message it is.
    await bob.request("react", room_id=room, event_id=poll["event_id"], key="🤔")
    await alice.request("pin", room_id=room, event_id=poll["event_id"])
    reply = {"body": "а можно в четверг?", "reply_to": poll["event_id"]}
    await bob.request("send", room_id=room, content=reply)


async def test_bad_polls_are_refused(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await class_room(cast)
    outsider = daemon.add_user(first="Ева", last="Test")
    eve = await Peer.login(daemon.url, outsider.token)
    try:
        snap = await snapshot(daemon.url, alice, room)
        for fields, code in [
            ({"question": "Q", "options": ["один"]}, "invalid_field"),
            ({"question": "Q", "options": ["а", "а"]}, "invalid_field"),
            ({"question": "Q", "options": [str(i) for i in range(13)]}, "too_large"),
            ({"question": "Q", "options": [str(i) for i in range(5000)]}, "too_large"),
            ({"question": " ", "options": ["а", "б"]}, "invalid_field"),
            ({"question": "Q" * 301, "options": ["а", "б"]}, "too_large"),
            ({"question": "Q", "options": ["а", "б" * 101]}, "too_large"),
            ({"question": "Q", "options": ["а", 2]}, "invalid_field"),
            ({"question": "Q", "options": ["а", "б"], "anonymous": "yes"}, "invalid_field"),
        ]:
            assert await bob.reject("poll", room_id=room, **fields) == code, fields
        assert await eve.reject("poll", room_id=room, question="Q", options=["а", "б"]) == (
            "not_member"
        )
        await snap.assert_unchanged()
    finally:
        await eve.close()


# -- votes ------------------------------------------------------------------------------------


async def test_votes_are_counted_live_and_a_new_vote_replaces_the_old(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dan = (cast[n] for n in NAMES)
    room = await class_room(cast)
    poll = await make_poll(alice, room)
    pid = poll["event_id"]
    marks = {name: cast[name].mark() for name in NAMES}

    mine = await bob.request("vote", room_id=room, event_id=pid, choices=[1])
    assert (mine["counts"], mine["mine"], mine["total_voters"]) == ([0, 1, 0], [1], 1)
    assert mine["voters"] == [[], [bob.user_id], []]
    # Everyone joined hears the new tally, with who chose what (the poll is not anonymous).
    for name in NAMES:
        update = await wait_tally(cast[name], pid, [0, 1, 0], marks[name])
        assert update == {
            "room_id": room,
            "event_id": pid,
            "counts": [0, 1, 0],
            "total_voters": 1,
            "closed": False,
            "user_id": bob.user_id,
            "choices": [1],
        }
    await carol.request("vote", room_id=room, event_id=pid, choices=[1])
    changed = await bob.request("vote", room_id=room, event_id=pid, choices=[2])
    assert (changed["counts"], changed["mine"], changed["total_voters"]) == ([0, 1, 1], [2], 2)
    await wait_tally(dan, pid, [0, 1, 1], marks["dan"])

    results = await dan.request("poll_results", room_id=room, event_id=pid)
    assert results["voters"] == [[], [carol.user_id], [bob.user_id]]
    assert results["mine"] == []
    assert (await carol.request("poll_results", room_id=room, event_id=pid))["mine"] == [1]

    # A single-choice poll takes exactly one option that exists.
    not_poll = (await alice.request("send", room_id=room, content={"body": "x"}))["event"]
    snap = await snapshot(daemon.url, alice, room)
    for choices, code in [
        ([0, 1], "invalid_field"),
        ([3], "invalid_field"),
        ([], "invalid_field"),
        ([-1], "invalid_field"),
        ([True], "invalid_field"),
        (list(range(13)), "too_large"),
    ]:
        assert await dan.reject("vote", room_id=room, event_id=pid, choices=choices) == code
    assert await dan.reject("vote", room_id=room, event_id=not_poll["event_id"], choices=[0]) == (
        "invalid_field"
    )
    assert await dan.reject("vote", room_id=room, event_id="$55555-no", choices=[0]) == (
        "not_found"
    )
    await snap.assert_unchanged()
    assert (await dan.request("poll_results", room_id=room, event_id=pid))["counts"] == [0, 1, 1]


async def test_multiple_choice(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await class_room(cast)
    poll = await make_poll(
        alice, room, question="Что принести?", options=["мяч", "сок", "торт"], multiple=True
    )
    pid = poll["event_id"]
    await bob.request("vote", room_id=room, event_id=pid, choices=[2, 0])
    got = await carol.request("vote", room_id=room, event_id=pid, choices=[0])
    assert (got["counts"], got["total_voters"]) == ([2, 0, 1], 2)
    got = await bob.request("vote", room_id=room, event_id=pid, choices=[1])
    assert (got["counts"], got["total_voters"], got["mine"]) == ([1, 1, 0], 2, [1])
    assert await bob.reject("vote", room_id=room, event_id=pid, choices=[]) == "invalid_field"
    assert await bob.reject("vote", room_id=room, event_id=pid, choices=[1, 1]) == ("invalid_field")


async def test_concurrent_votes_are_all_counted(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice = cast["alice"]
    room = await class_room(cast)
    voters = [cast[n] for n in NAMES]
    poll = await make_poll(alice, room, options=["да", "нет"])
    pid = poll["event_id"]
    a0 = alice.mark()
    await asyncio.gather(
        *(
            peer.request("vote", room_id=room, event_id=pid, choices=[i % 2])
            for round_ in range(3)
            for i, peer in enumerate(voters)
        )
    )
    final = await alice.request("poll_results", room_id=room, event_id=pid)
    assert (final["counts"], final["total_voters"]) == ([2, 2], 4)
    # Every push carried a tally, and the last one is the final one.
    await wait_tally(alice, pid, [2, 2], a0)
    await alice.barrier()
    assert poll_pushes(alice, pid, a0)[-1]["counts"] == [2, 2]


# -- anonymous polls --------------------------------------------------------------------------


async def test_an_anonymous_poll_never_says_who_chose_what(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dan = (cast[n] for n in NAMES)
    room = await class_room(cast)
    marks = {name: cast[name].mark() for name in NAMES}
    poll = await make_poll(alice, room, anonymous=True)
    pid = poll["event_id"]
    got = await bob.request("vote", room_id=room, event_id=pid, choices=[0])
    assert got == {
        "room_id": room,
        "event_id": pid,
        "multiple": False,
        "anonymous": True,
        "closed": False,
        "counts": [1, 0, 0],
        "total_voters": 1,
        "mine": [0],  # a voter sees their own choice, nobody else's
    }
    await carol.request("vote", room_id=room, event_id=pid, choices=[2])
    await dan.request("vote", room_id=room, event_id=pid, choices=[2])
    await alice.request("close_poll", room_id=room, event_id=pid)
    for name in NAMES:
        final = await cast[name].wait_frame(
            lambda fr: fr.get("poll", {}).get("closed") is True, since=marks[name]
        )
        assert final["poll"] == {
            "room_id": room,
            "event_id": pid,
            "counts": [1, 0, 2],
            "total_voters": 3,
            "closed": True,
        }
    # The author and the room's admin (alice is both) read counts only.
    results = await alice.request("poll_results", room_id=room, event_id=pid)
    assert "voters" not in results and results["mine"] == []
    assert (await dan.request("poll_results", room_id=room, event_id=pid))["mine"] == [2]
    # Nothing anyone received ties a voter to the poll: no frame about it names one.
    voter_ids = {bob.user_id, carol.user_id, dan.user_id}
    for name in NAMES:
        peer = cast[name]
        await peer.barrier()
        for frame in peer.frames[marks[name] :]:
            text = repr(frame)
            if pid in text and "ev" not in frame:
                assert not any(v in text for v in voter_ids if v != peer.user_id), frame
            if "ev" in frame and frame["ev"]["type"] == "poll_close":
                assert frame["ev"]["sender"] == alice.user_id


# -- closing ----------------------------------------------------------------------------------


async def test_close_by_the_author_or_an_admin_ends_the_voting(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dan = (cast[n] for n in NAMES)
    room = await class_room(cast)
    poll = await make_poll(bob, room)
    pid = poll["event_id"]
    await carol.request("vote", room_id=room, event_id=pid, choices=[0])
    snap = await snapshot(daemon.url, alice, room)
    err = (await carol.call("close_poll", room_id=room, event_id=pid))["error"]
    assert err["code"] == "forbidden"  # neither its author nor an admin
    await snap.assert_unchanged()

    d0 = dan.mark()
    close = (await bob.request("close_poll", room_id=room, event_id=pid, txn="c-1"))["event"]
    assert close["type"] == "poll_close" and close["content"] == {"relates_to": pid}
    assert await dan.wait_event(lambda e: e["event_id"] == close["event_id"], since=d0) == close
    final = await dan.wait_frame(lambda fr: fr.get("poll", {}).get("closed") is True, since=d0)
    assert final["poll"]["counts"] == [1, 0, 0]
    again = await bob.request("close_poll", room_id=room, event_id=pid, txn="c-1")
    assert again["event"] == close  # a retry
    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("close_poll", room_id=room, event_id=pid) == "poll_closed"
    assert await dan.reject("vote", room_id=room, event_id=pid, choices=[1]) == "poll_closed"
    assert await carol.reject("vote", room_id=room, event_id=pid, choices=[1]) == "poll_closed"
    await snap.assert_unchanged()
    results = await dan.request("poll_results", room_id=room, event_id=pid)
    assert (results["closed"], results["counts"]) == (True, [1, 0, 0])
    # Redacting the close does not reopen the poll.
    await bob.request("redact", room_id=room, event_id=close["event_id"])
    assert await dan.reject("vote", room_id=room, event_id=pid, choices=[1]) == "poll_closed"

    # The room's admin may close anyone's poll.
    other = await make_poll(carol, room)
    await alice.request("close_poll", room_id=room, event_id=other["event_id"])
    assert (await carol.request("poll_results", room_id=room, event_id=other["event_id"]))["closed"]


async def test_a_redacted_poll_takes_its_votes_with_it(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    room = await class_room(cast)
    poll = await make_poll(alice, room, anonymous=True)
    pid = poll["event_id"]
    await bob.request("vote", room_id=room, event_id=pid, choices=[1])
    await carol.request("vote", room_id=room, event_id=pid, choices=[2])
    db = daemon.data_dir / "sferumd.sqlite"

    def votes_stored() -> int:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM poll_votes").fetchone()[0])

    assert votes_stored() == 2
    await alice.request("redact", room_id=room, event_id=pid)
    assert votes_stored() == 0
    snap = await snapshot(daemon.url, alice, room)
    assert await bob.reject("vote", room_id=room, event_id=pid, choices=[0]) == "redacted"
    assert await alice.reject("close_poll", room_id=room, event_id=pid) == "redacted"
    assert await carol.reject("poll_results", room_id=room, event_id=pid) == "redacted"
    await snap.assert_unchanged()
    tombstone = next(e for e in await room_history(bob, room) if e["event_id"] == pid)
    assert tombstone["content"] == {} and "redacted_by" in tombstone


async def test_polls_and_votes_survive_a_restart(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = await class_room(cast)
    poll = await make_poll(alice, room)
    await bob.request("vote", room_id=room, event_id=poll["event_id"], choices=[2])
    token = bob.token
    assert token is not None
    for peer in cast.values():
        await peer.close()
    daemon.restart()
    bob = cast["bob"] = await Peer.login(daemon.url, token)
    for name in ("alice", "carol", "dan"):
        cast.pop(name)
    results = await bob.request("poll_results", room_id=room, event_id=poll["event_id"])
    assert (results["counts"], results["mine"]) == ([0, 0, 1], [2])
    changed = await bob.request("vote", room_id=room, event_id=poll["event_id"], choices=[0])
    assert changed["counts"] == [1, 0, 0]
