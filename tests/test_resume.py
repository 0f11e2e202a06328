"""Resume: a client that comes back with its last position gets exactly what it missed.

Every test talks to a real sferumd subprocess. "Exactly" means: the events it missed, each
once, in position order, then ``synced``, then live events, never one of them twice, never
one it may not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from clients.sdk import Client
from tests.helpers_durability import WAIT, Receiver, full_history, room_with


def sync_pushes(rx: Receiver, start: int = 0) -> list[dict[str, Any]]:
    """The pushes that make up a sync stream (events, gaps, synced), without presence etc."""
    return [p for p in rx.pushes[start:] if {"ev", "gap", "synced"} & p.keys()]


def has_joined(rx: Receiver, room: str) -> bool:
    """Whether the receiver has its own join of the room (the only join it sees there)."""
    return any(
        e["room_id"] == room and e["type"] == "member" and e["content"]["membership"] == "join"
        for e in rx.events
    )


async def test_reconnect_delivers_exactly_the_missed_events_then_synced(daemon):
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Борис", "Б")
    async with Client(daemon.url, alice.token) as sender, Receiver(daemon.url, bob.token) as rx:
        assert rx.client is not None
        room = await room_with(sender, [rx.client])
        await rx.wait_for(lambda: has_joined(rx, room), "bob's join")
        pos = await rx.stop()
        assert pos is not None
        seen = len(rx.pushes)

        missed = [await sender.send(room, f"пока тебя не было {i}") for i in range(25)]
        await rx.start(since=pos)
        await rx.wait_synced(count=2)

        got = sync_pushes(rx, seen)
        assert [p["ev"]["event_id"] for p in got[:-1] if "ev" in p] == [
            e["event_id"] for e in missed
        ]
        assert len(got) == len(missed) + 1, "nothing but the missed events before synced"
        assert got[-1] == {"synced": {"pos": missed[-1]["pos"]}}
        assert [p["ev"]["content"]["body"] for p in got[:-1]] == [
            f"пока тебя не было {i}" for i in range(25)
        ]

        # Live delivery carries on after synced, and none of the missed events comes again.
        live = await sender.send(room, "снова онлайн")
        await rx.wait_pos(live["pos"])
        assert [p["ev"]["event_id"] for p in sync_pushes(rx, seen) if "ev" in p] == [
            e["event_id"] for e in [*missed, live]
        ]
        await rx.stop()


async def test_random_disconnects_deliver_every_event_exactly_once_in_order(daemon):
    rng = random.Random(0x5FE7)
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Борис", "Б")
    total = 300
    drop_at = set(rng.sample(range(10, total - 10), 12))
    async with (
        Client(daemon.url, alice.token) as sender,
        Receiver(daemon.url, bob.token, sync_limit=10_000) as rx,
    ):
        # The limit covers everything that can be missed, so no gap hides an event here.
        assert rx.client is not None
        room = await room_with(sender, [rx.client])
        await rx.wait_for(lambda: has_joined(rx, room), "bob's join")
        before = len(rx.events)

        acked: list[dict[str, Any]] = []
        window = asyncio.Semaphore(4)

        async def send(i: int) -> None:
            try:
                acked.append(await sender.send(room, f"msg {i}", txn=f"resume-{i}"))
            finally:
                window.release()

        def synced_count() -> int:
            return sum("synced" in p for p in rx.pushes)

        async def drop_during_catch_up(after: int) -> None:
            await rx.wait_for(lambda: len(rx.pushes) > after, "a push after reconnecting")
            rx.drop_socket()

        drops: list[str] = []
        extra: list[asyncio.Task[None]] = []
        tasks: list[asyncio.Task[None]] = []
        for i in range(total):
            if i in drop_at:
                # Each drop hits a live connection: wait for the previous resume to finish.
                n = len(drops) + 1
                await rx.wait_for(lambda n=n: synced_count() >= n, "the previous resume")
                mode = rng.choice(["socket", "close", "new client"])
                drops.append(mode)
                if mode == "socket":
                    rx.drop_socket()
                elif mode == "close":
                    await rx.close_websocket()
                else:
                    await rx.replace()
                if rng.random() < 0.4:  # and sometimes again in the middle of the catch-up
                    extra.append(asyncio.create_task(drop_during_catch_up(len(rx.pushes))))
            await window.acquire()
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
        for t in extra:
            with contextlib.suppress(AssertionError):
                await t  # a catch-up drop whose reconnect had no push left to wait for
        assert len(acked) == total

        acked.sort(key=lambda e: e["pos"])
        await rx.wait_pos(acked[-1]["pos"])
        got = rx.events[before:]
        assert [e["event_id"] for e in got] == [e["event_id"] for e in acked]
        ids = [e["event_id"] for e in rx.events]
        assert len(ids) == len(set(ids)), "an event was delivered twice"
        positions = [e["pos"] for e in rx.events]
        assert positions == sorted(positions)
        # The disruption really happened: one resume per drop, at least.
        assert synced_count() >= len(drops) + 1
        assert set(drops) == {"socket", "close", "new client"}
        await rx.stop()


async def test_catch_up_over_the_limit_marks_a_gap_that_backfill_fills(daemon):
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Борис", "Б")
    limit = 10
    async with Client(daemon.url, alice.token) as sender, Receiver(daemon.url, bob.token) as rx:
        assert rx.client is not None
        busy = await room_with(sender, [rx.client], "busy")
        quiet = await room_with(sender, [rx.client], "quiet")
        await rx.wait_for(lambda: has_joined(rx, busy) and has_joined(rx, quiet), "joins")
        pos = await rx.stop()
        assert pos is not None
        seen = len(rx.pushes)

        busy_sent, quiet_sent = [], []
        for i in range(35):
            busy_sent.append(await sender.send(busy, f"busy {i}"))
            if i % 10 == 0:
                quiet_sent.append(await sender.send(quiet, f"quiet {i}"))
        assert len(quiet_sent) < limit < len(busy_sent)

        rx.client_args["sync_limit"] = limit
        await rx.start(since=pos)
        await rx.wait_synced(count=2)
        got = sync_pushes(rx, seen)
        assert "synced" in got[-1]
        gaps = [p["gap"] for p in got if "gap" in p]
        newest = busy_sent[-limit:]
        assert gaps == [{"room_id": busy, "after": pos, "before": newest[0]["pos"]}]

        events = [p["ev"] for p in got if "ev" in p]
        assert [e["event_id"] for e in events] == [
            e["event_id"] for e in sorted(newest + quiet_sent, key=lambda e: e["pos"])
        ]

        assert rx.client is not None
        skipped = await rx.client.backfill(busy, gaps[0]["after"], gaps[0]["before"])
        assert [e["event_id"] for e in skipped] == [e["event_id"] for e in busy_sent[:-limit]]
        await rx.stop()


async def test_resume_respects_membership_changes_made_while_offline(daemon):
    alice = daemon.add_user("Алиса", "А")
    bob = daemon.add_user("Борис", "Б")
    async with Client(daemon.url, alice.token) as owner, Receiver(daemon.url, bob.token) as rx:
        assert rx.client is not None
        classroom = await room_with(owner, [rx.client], "7Б")
        await rx.wait_for(lambda: has_joined(rx, classroom), "bob's join")
        pos = await rx.stop()
        seen = len(rx.pushes)

        visible = [await owner.send(classroom, f"до исключения {i}") for i in range(3)]
        kick = await owner.kick(classroom, bob.user_id, reason="тест")
        hidden = [await owner.send(classroom, f"после исключения {i}") for i in range(3)]
        club = await owner.create_room(name="кружок")
        await owner.send(club, "before the invite: not for bob")
        invite = await owner.invite(club, bob.user_id)

        await rx.start(since=pos)
        await rx.wait_synced(count=2)
        got = [p["ev"] for p in sync_pushes(rx, seen) if "ev" in p]
        assert [e["event_id"] for e in got] == [e["event_id"] for e in [*visible, kick, invite]]
        assert kick["content"]["membership"] == "leave"
        assert kick["state_key"] == bob.user_id
        assert invite["content"]["membership"] == "invite"

        # Once bob accepts the invite, the club's live events reach him; the classroom's
        # don't. Events arrive in position order, so when the club message is there, any
        # classroom message sent before it would be there too.
        join = await rx.client.join(club)
        later = await owner.send(classroom, "всё ещё не для Бориса")
        marker = await owner.send(club, "добро пожаловать")
        await rx.wait_pos(marker["pos"])
        tail = [e["event_id"] for e in rx.events[len(rx.events) - 2 :]]
        assert tail == [join["event_id"], marker["event_id"]]
        seen_ids = {e["event_id"] for e in rx.events}
        assert not seen_ids & {e["event_id"] for e in [*hidden, later]}
        assert len(rx.events) == len(seen_ids)

        # And the room's history, read as bob, still ends at his kick.
        history = await full_history(rx.client, classroom)
        assert history[-1]["event_id"] == kick["event_id"]
        await rx.stop()


async def test_resume_far_behind_the_limit_in_one_room_with_default_limit(daemon):
    """A client without a limit of its own gets the server's default and a gap marker."""
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Борис", "Б")
    async with Client(daemon.url, alice.token) as sender, Receiver(daemon.url, bob.token) as rx:
        assert rx.client is not None
        room = await room_with(sender, [rx.client])
        await rx.wait_for(lambda: has_joined(rx, room), "bob's join")
        pos = await rx.stop()
        seen = len(rx.pushes)
        sent = await asyncio.wait_for(
            asyncio.gather(*(sender.send(room, f"{i}") for i in range(130))), WAIT
        )
        sent.sort(key=lambda e: e["pos"])
        await rx.start(since=pos)
        await rx.wait_synced(count=2)
        got = sync_pushes(rx, seen)
        default_limit = 100
        assert [p["gap"] for p in got if "gap" in p] == [
            {"room_id": room, "after": pos, "before": sent[-default_limit]["pos"]}
        ]
        assert [p["ev"]["event_id"] for p in got if "ev" in p] == [
            e["event_id"] for e in sent[-default_limit:]
        ]
        await rx.stop()
