"""Acknowledged means durable: the real daemon is killed (SIGKILL) or stopped (SIGTERM)
while several clients send, restarted on the same data directory, and then every
acknowledged event is there exactly once, every unacknowledged send retried with its
transaction id makes at most one event, and every connected receiver resumes by itself to
exactly the rooms' events, in order, once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from typing import Any

import pytest

from clients.sdk import Client, ClientError, ConnectionLost
from tests.helpers_durability import (
    WAIT,
    Receiver,
    eventually,
    full_history,
    room_with,
    transport_of,
)

# Sends as fast as the pipeline allows; the per-connection rate limit is not what is tested.
LOAD_CONFIG = """
[websocket]
rate_per_s = 100000.0
rate_burst = 100000
"""
SENDERS = 3
WINDOW = 16  # sends in flight per sender
ACKED_BEFORE_CRASH = 300
MAX_PER_SENDER = 5000  # bounds the loops if the crash never came


async def answers_settled(acked_count: Any) -> None:
    """After reading is paused, answers read before the pause may still be in the client's
    buffers: wait (bounded) until the acknowledged count stops moving, so that what is
    unanswered from then on stays unanswered."""
    last, stable = -1, 0
    for _ in range(500):
        now = acked_count()
        stable = stable + 1 if now == last else 0
        if stable >= 5:
            return
        last = now
        await asyncio.sleep(0.01)
    raise AssertionError("acknowledgements kept arriving after reading was paused")


class Sender:
    """Pipelined sends, each with its own transaction id; records what was acknowledged."""

    def __init__(self, name: str, client: Client, rooms: list[str], progress: asyncio.Event):
        self.name = name
        self.client = client
        self.rooms = rooms
        self.acked: dict[str, dict[str, Any]] = {}  # txn -> event
        self.unacked: dict[str, str] = {}  # txn -> room, sent (or about to be) but unanswered
        self.in_flight = 0
        self.failed = False
        self._changed = progress

    async def run(self) -> None:
        window = asyncio.Semaphore(WINDOW)
        tasks = []
        for i in range(MAX_PER_SENDER):
            await window.acquire()
            if self.failed:
                window.release()
                break
            room = self.rooms[i % len(self.rooms)]
            tasks.append(asyncio.create_task(self._one(f"{self.name}-{i}", room, window)))
        await asyncio.gather(*tasks)

    async def _one(self, txn: str, room: str, window: asyncio.Semaphore) -> None:
        self.in_flight += 1
        self._changed.set()
        try:
            ev = await self.client.send(room, txn, txn=txn)
        except (ConnectionLost, ClientError, TimeoutError):
            self.unacked[txn] = room
            self.failed = True
        else:
            self.acked[txn] = ev
            self._changed.set()
        finally:
            self.in_flight -= 1
            window.release()


def expected_for(history: list[dict[str, Any]], user_id: str) -> list[dict[str, Any]]:
    """What live delivery gives a user invited, then joined: the invite, then all from the join."""
    mine = [e for e in history if e["type"] == "member" and e.get("state_key") == user_id]
    assert [e["content"]["membership"] for e in mine] == ["invite", "join"]
    invite, join = mine
    return [invite, *(e for e in history if e["pos"] >= join["pos"])]


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_acknowledged_events_survive_the_daemon_exactly_once(daemon_factory, how):
    daemon = daemon_factory(config=LOAD_CONFIG)
    owner = daemon.add_user("Учитель", "Т")
    sender_users = [daemon.add_user(f"Ученик{i}", "С") for i in range(SENDERS)]
    receiver_users = [daemon.add_user(f"Родитель{i}", "Р") for i in range(2)]

    async with contextlib.AsyncExitStack() as stack:
        teacher = await stack.enter_async_context(Client(daemon.url, owner.token))
        # In-flight sends of these fail on the crash: the test retries them itself.
        clients = [
            await stack.enter_async_context(Client(daemon.url, u.token, reconnect=False))
            for u in sender_users
        ]
        # The receivers keep their SDK client throughout: it must reconnect and resume itself.
        rxs = [
            await stack.enter_async_context(Receiver(daemon.url, u.token, sync_limit=10_000))
            for u in receiver_users
        ]
        rx_clients = [rx.client for rx in rxs]
        assert all(rx_clients)
        room_a = await room_with(teacher, [*clients, *rx_clients], "A")  # type: ignore[list-item]
        room_b = await room_with(teacher, [clients[0], clients[1], rx_clients[1]], "B")  # type: ignore[list-item]
        rooms_of_rx = [[room_a], [room_a, room_b]]

        progress = asyncio.Event()
        senders = [
            Sender(f"s{i}", c, [room_a, room_b] if i < 2 else [room_a], progress)
            for i, c in enumerate(clients)
        ]

        def acked_count() -> int:
            return sum(len(s.acked) for s in senders)

        runs = [asyncio.create_task(s.run()) for s in senders]
        await eventually(
            lambda: acked_count() >= ACKED_BEFORE_CRASH, progress, WAIT, "acknowledged sends"
        )
        if how == "sigkill":
            # Stop reading the senders' answers: the daemon goes on committing the sends in
            # flight (a receiver sees them) while their acknowledgements wait unread. Then
            # the crash, and the senders' connections are dropped with those answers unread:
            # committed but never acknowledged, the case a retry must not duplicate.
            transports = [transport_of(c) for c in clients]
            for t in transports:
                t.pause_reading()

            def committed_unanswered() -> int:
                answered = {txn for s in senders for txn in s.acked}
                return sum(
                    e["type"] == "message" and e["content"]["body"] not in answered
                    for e in rxs[1].events
                )

            await answers_settled(acked_count)
            await rxs[1].wait_for(lambda: committed_unanswered() >= 5, "unanswered commits")
            in_flight_at_crash = sum(s.in_flight for s in senders)
            assert daemon.proc is not None
            os.kill(daemon.proc.pid, signal.SIGKILL)
            await asyncio.to_thread(daemon.kill)  # reaps it
            for t in transports:
                t.abort()
        else:
            await eventually(
                lambda: sum(s.in_flight for s in senders) >= WINDOW,
                progress,
                WAIT,
                "sends in flight",
            )
            in_flight_at_crash = sum(s.in_flight for s in senders)
            # In a thread: the daemon's shutdown waits for our clients' close handshakes.
            rc = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
            assert rc == 0, daemon.log()[-3000:]
        await asyncio.wait_for(asyncio.gather(*runs), WAIT)
        assert in_flight_at_crash > 0, "the crash should catch sends in flight"
        assert all(s.failed for s in senders)

        await asyncio.to_thread(daemon.start)

        async with Client(daemon.url, owner.token) as reader:
            before = {r: await full_history(reader, r) for r in (room_a, room_b)}

            # Every acknowledged event is there, once, exactly as acknowledged.
            for history in before.values():
                ids = [e["event_id"] for e in history]
                positions = [e["pos"] for e in history]
                assert len(ids) == len(set(ids))
                assert positions == sorted(set(positions))
            stored = {e["event_id"]: e for h in before.values() for e in h}
            bodies = Counter(e["content"].get("body") for e in stored.values())
            for s in senders:
                for txn, ev in s.acked.items():
                    assert stored.get(ev["event_id"]) == ev, f"acknowledged {txn} lost or changed"
                    assert bodies[txn] == 1

            # Unacknowledged sends: stored at most once; a retry returns that one or makes it.
            unacked = {txn: room for s in senders for txn, room in s.unacked.items()}
            assert unacked
            for txn in unacked:
                assert bodies[txn] <= 1, f"{txn} stored {bodies[txn]} times"
            if how == "sigkill":
                assert sum(bodies[txn] for txn in unacked) >= 5, "committed, unacknowledged"
            retried: dict[str, dict[str, Any]] = {}
            for u, s in zip(sender_users, senders, strict=True):
                async with Client(daemon.url, u.token) as again:  # same device, new connection
                    for txn, room in s.unacked.items():
                        retried[txn] = await again.send(room, txn, txn=txn)
                        assert await again.send(room, txn, txn=txn) == retried[txn]
            for txn, ev in retried.items():
                if bodies[txn] == 1:
                    assert stored.get(ev["event_id"]) == ev, f"retry of {txn} made a new event"

            after = {r: await full_history(reader, r) for r in (room_a, room_b)}
            final_bodies = Counter(e["content"].get("body") for h in after.values() for e in h)
            for s in senders:
                for txn in [*s.acked, *s.unacked]:
                    assert final_bodies[txn] == 1, f"{txn} stored {final_bodies[txn]} times"
            for room in (room_a, room_b):
                assert after[room][: len(before[room])] == before[room]

            # The receivers reconnected on their own and got every event once, in order.
            for rx, rooms in zip(rxs, rooms_of_rx, strict=True):
                newest = max(after[r][-1]["pos"] for r in rooms)
                await rx.wait_synced(count=2)  # the resume after the restart completed
                await rx.wait_pos(newest)
                assert rx.clients_used == 1 and rx.client is not None
                assert rx.client.reconnects >= 1
                if how == "sigterm":
                    assert rx.client.close_code == 1001  # "going away": resume later
                ids = [e["event_id"] for e in rx.events]
                assert len(ids) == len(set(ids)), "a receiver got an event twice"
                for room in rooms:
                    want = expected_for(after[room], rx.client.user_id or "")
                    got = rx.events_in(room)
                    assert [e["event_id"] for e in got] == [e["event_id"] for e in want]
                positions = [e["pos"] for e in rx.events]
                assert positions == sorted(positions)

            # No position ever named two events, whoever observed it, before or after.
            truth = {e["pos"]: e["event_id"] for h in after.values() for e in h}
            observed = [
                *(ev for s in senders for ev in s.acked.values()),
                *retried.values(),
                *(ev for rx in rxs for ev in rx.events),
            ]
            for ev in observed:
                if ev["room_id"] in (room_a, room_b):
                    assert truth.get(ev["pos"]) == ev["event_id"], f"position {ev['pos']} reused"
