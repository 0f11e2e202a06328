"""Idempotent sends: a transaction id, per device, makes a retried send return the original
event and never store a second one — sequentially, concurrently, across connections and
across daemon restarts."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import Any

import pytest

from clients.sdk import Client
from tests.helpers_durability import (
    WAIT,
    RawWebSocket,
    Receiver,
    drop_socket,
    full_history,
    room_with,
)


def bodies(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["content"].get("body") for e in events if e["type"] == "message")


async def test_same_txn_twice_returns_the_original_and_stores_one(daemon):
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Борис", "Б")
    async with Client(daemon.url, alice.token) as a, Receiver(daemon.url, bob.token) as rx:
        assert rx.client is not None
        room = await room_with(a, [rx.client])

        first = await a.send(room, "домашнее задание", txn="hw-1")
        again = await a.send(room, "домашнее задание", txn="hw-1")
        assert again == first
        # A retry is recognised by its id, not its content: the original comes back.
        changed = await a.send(room, "другой текст", txn="hw-1")
        assert changed == first

        marker = await a.send(room, "marker")
        await rx.wait_pos(marker["pos"])
        assert [e["event_id"] for e in rx.events_in(room) if e["type"] == "message"] == [
            first["event_id"],
            marker["event_id"],
        ]
        history = await full_history(a, room)
        assert bodies(history) == {"домашнее задание": 1, "marker": 1}
        await rx.stop()


async def test_concurrent_sends_with_one_txn_make_one_event(daemon):
    alice = daemon.add_user()
    async with Client(daemon.url, alice.token) as a, Client(daemon.url, alice.token) as a2:
        room = await a.create_room(name="r")
        # The same device on one connection, and on a second connection at the same time.
        results = await asyncio.wait_for(
            asyncio.gather(
                *(a.send(room, "once", txn="dup") for _ in range(6)),
                *(a2.send(room, "once", txn="dup") for _ in range(6)),
            ),
            WAIT,
        )
        assert len({r["event_id"] for r in results}) == 1
        assert all(r == results[0] for r in results)

        distinct = await asyncio.wait_for(
            asyncio.gather(*(a.send(room, f"m{i}", txn=f"t{i}") for i in range(10))), WAIT
        )
        assert len({r["event_id"] for r in distinct}) == 10

        history = await full_history(a, room)
        assert bodies(history) == {"once": 1, **{f"m{i}": 1 for i in range(10)}}
        ids = [e["event_id"] for e in history]
        assert len(ids) == len(set(ids))


async def test_concurrent_state_changes_with_one_txn_make_one_event(daemon):
    alice = daemon.add_user()
    async with Client(daemon.url, alice.token) as a:
        room = await a.create_room(name="old")
        results = await asyncio.wait_for(
            asyncio.gather(
                *(a.set_state(room, "name", {"name": "7Б"}, txn="rename") for _ in range(5))
            ),
            WAIT,
        )
        assert len({r["event_id"] for r in results}) == 1
        names = [e for e in await full_history(a, room) if e["type"] == "name"]
        assert [e["content"] for e in names] == [{"name": "old"}, {"name": "7Б"}]
        assert names[-1]["event_id"] == results[0]["event_id"]


async def test_txn_ids_are_per_device(daemon):
    alice = daemon.add_user("Алиса", "А")
    phone2 = daemon.add_user("Алиса", "А", phone=alice.phone)  # her second device
    assert phone2.user_id == alice.user_id and phone2.device_id != alice.device_id
    async with Client(daemon.url, alice.token) as laptop, Client(daemon.url, phone2.token) as phone:
        room = await laptop.create_room(name="r")
        on_laptop = await laptop.send(room, "с ноутбука", txn="same-id")
        on_phone = await phone.send(room, "с телефона", txn="same-id")
        assert on_phone["event_id"] != on_laptop["event_id"]
        assert on_phone["sender"] == on_laptop["sender"] == alice.user_id
        # Each device's retry still finds its own original.
        assert await laptop.send(room, "с ноутбука", txn="same-id") == on_laptop
        assert await phone.send(room, "с телефона", txn="same-id") == on_phone
        assert bodies(await full_history(laptop, room)) == {"с ноутбука": 1, "с телефона": 1}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_retry_after_a_daemon_restart_returns_the_original(daemon, sig):
    alice = daemon.add_user()
    async with Client(daemon.url, alice.token, reconnect=False) as a:
        room = await a.create_room(name="r")
        original = await a.send(room, "до перезапуска", txn="restart-1")
    daemon.stop(sig)
    daemon.start()
    async with Client(daemon.url, alice.token) as a:
        assert await a.send(room, "до перезапуска", txn="restart-1") == original
        fresh = await a.send(room, "после перезапуска", txn="restart-2")
        assert fresh["pos"] > original["pos"]
        history = await full_history(a, room)
        assert bodies(history) == {"до перезапуска": 1, "после перезапуска": 1}
        assert [e for e in history if e["event_id"] == original["event_id"]] == [original]


async def test_sdk_retries_sends_cut_off_by_a_dropped_connection_without_duplicates(daemon):
    """Requests reach the server, the connection drops before any answer, the SDK resends
    them on its new connection: each message is stored once."""
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Борис", "Б")
    assert daemon.proc is not None
    pid = daemon.proc.pid
    async with Client(daemon.url, alice.token) as a, Receiver(daemon.url, bob.token) as rx:
        assert rx.client is not None
        room = await room_with(a, [rx.client])
        for round_ in range(3):
            # With the daemon frozen, the requests wait unread in its socket buffer and no
            # answer can come back before the connection is cut.
            os.kill(pid, signal.SIGSTOP)
            try:
                sends = [asyncio.create_task(a.send(room, f"{round_}-{i}")) for i in range(20)]
                await asyncio.sleep(0)  # each task writes its request, then awaits the answer
                drop_socket(a)
            finally:
                os.kill(pid, signal.SIGCONT)
            results = await asyncio.wait_for(asyncio.gather(*sends), WAIT)
            assert len({r["event_id"] for r in results}) == 20
        history = await full_history(a, room)
        assert bodies(history) == {f"{r}-{i}": 1 for r in range(3) for i in range(20)}
        last = max(e["pos"] for e in history)
        await rx.wait_pos(last)
        assert bodies(rx.events_in(room)) == bodies(history)
        await rx.stop()


async def test_raw_websocket_send_with_txn_twice(daemon):
    alice = daemon.add_user()
    ws = await RawWebSocket.connect(daemon.url)
    try:
        auth = await ws.request({"id": "a", "op": "auth", "token": alice.token})
        assert auth["ok"]["user_id"] == alice.user_id
        created = await ws.request({"id": 1, "op": "create_room", "name": "raw"})
        room = created["ok"]["room_id"]
        send = {"op": "send", "room_id": room, "content": {"body": "raw"}, "txn": "wire-1"}
        first = await ws.request({"id": 2, **send})
        second = await ws.request({"id": 3, **send})
        assert "ok" in first and second["ok"] == first["ok"]

        # Pipelined: three copies of a new transaction before any answer comes back.
        piped = {**send, "txn": "wire-2", "content": {"body": "piped"}}
        for rid in (10, 11, 12):
            ws.send_json({"id": rid, **piped})
        answers: dict[Any, dict[str, Any]] = {}
        for _ in range(50):
            if len(answers) == 3:
                break
            frame = await ws.recv_json()
            assert frame is not None
            if frame.get("id") in (10, 11, 12):
                answers[frame["id"]] = frame
        assert len({a["ok"]["event"]["event_id"] for a in answers.values()}) == 1

        history = await ws.request({"id": 20, "op": "history", "room_id": room, "limit": 100})
        assert bodies(history["ok"]["events"]) == {"raw": 1, "piped": 1}
        assert first["ok"]["event"]["event_id"] in {e["event_id"] for e in history["ok"]["events"]}
    finally:
        await ws.close()
