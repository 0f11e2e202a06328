"""Decisions that span an await: what two requests racing each other, or a retry after the
world changed, must still get right."""

from __future__ import annotations

import asyncio

import pytest

from clients.sdk import Client, ClientError
from tests.helpers_durability import full_history


async def test_one_event_is_redacted_once_even_by_racing_moderators(daemon):
    owner, author = daemon.add_user("Учитель", "У"), daemon.add_user("Ученик", "У")
    async with Client(daemon.url, owner.token) as t, Client(daemon.url, author.token) as s:
        room = await t.create_room(name="7Б", invite=[author.user_id])
        await s.join(room)
        msg = await s.send(room, "спам")
        # The author and the room's admin redact at the same moment, with different txns.
        results = await asyncio.gather(
            t.redact(room, msg["event_id"]),
            s.redact(room, msg["event_id"]),
            return_exceptions=True,
        )
        done = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, ClientError)]
        assert len(done) == 1 and len(refused) == 1, results
        assert refused[0].code == "not_found"
        history = await full_history(t, room)
        assert [e["event_id"] for e in history if e["type"] == "redaction"] == [done[0]["event_id"]]
        (tombstone,) = [e for e in history if e["event_id"] == msg["event_id"]]
        assert tombstone["content"] == {} and tombstone["redacted_by"] == done[0]["event_id"]


async def test_an_older_read_marker_changes_nothing_and_pushes_nothing(daemon):
    alice, bob = daemon.add_user(), daemon.add_user()
    async with Client(daemon.url, alice.token) as a, Client(daemon.url, bob.token) as b:
        room = await a.create_room(name="r", invite=[bob.user_id])
        await b.join(room)
        first = await a.send(room, "1")
        second = await a.send(room, "2")
        await b.read(room, second["pos"])
        await b.read(room, first["pos"])  # a stale client reports an older position
        await a.request("ping")  # everything pushed to a before this answer has arrived
        receipts = [p["receipt"]["pos"] for p in a.take_pushes() if "receipt" in p]
        assert receipts == [second["pos"]]
        (summary,) = [r for r in await b.rooms() if r["room_id"] == room]
        assert summary["read_pos"] == second["pos"]


async def test_a_retried_send_returns_the_original_after_the_sender_was_removed(daemon):
    owner, pupil = daemon.add_user(), daemon.add_user()
    async with Client(daemon.url, owner.token) as t, Client(daemon.url, pupil.token) as p:
        room = await t.create_room(name="r", invite=[pupil.user_id])
        await p.join(room)
        original = await p.send(room, "ответ", txn="answer-1")
        await t.kick(room, pupil.user_id)
        # The answer to the first try was lost; the retry comes after the kick.
        assert await p.send(room, "ответ", txn="answer-1") == original
        with pytest.raises(ClientError) as err:
            await p.send(room, "ещё", txn="answer-2")
        assert err.value.code == "not_member"


async def test_history_pages_stay_within_their_byte_budget_and_page_on(daemon_factory):
    d = daemon_factory(config="[limits]\nhistory_max_bytes = 4096\n")
    alice = d.add_user()
    async with Client(d.url, alice.token) as a:
        room = await a.create_room(name="r")
        sent = [(await a.send(room, f"{i:02d}" + "я" * 900))["event_id"] for i in range(10)]
        page = await a.history(room, limit=10)
        # Ten ~1.8 KB events don't fit 4 KiB: the page is the newest that fit, and says more.
        assert 1 <= len(page["events"]) < 10
        assert [e["event_id"] for e in page["events"]] == sent[-len(page["events"]) :]
        assert page["prev"] == page["events"][0]["pos"]
        everything = await full_history(a, room)
        assert [e["event_id"] for e in everything if e["type"] == "message"] == sent
