"""A consumer too slow for its outgoing queue is closed with 4008 and resumes from its
position; the sender, the other members and the daemon's memory don't pay for it."""

from __future__ import annotations

import asyncio
from typing import Any

import psutil

from clients.sdk import Client
from tests.helpers_durability import WAIT, RawWebSocket, Receiver, metric, room_with

MAX_QUEUE = 256 * 1024
SLOW_CONFIG = f"""
[websocket]
max_queue_bytes = {MAX_QUEUE}
rate_per_s = 100000.0
rate_burst = 100000
"""
FLOOD = 4000  # messages
BODY = 8000  # characters (16 KB of UTF-8) each: ~64 MB in all, far past the queue bound
RSS_GROWTH_LIMIT = 24 * 1024 * 1024  # an unbounded queue would hold most of the flood


class RssPeak:
    """The daemon's peak resident memory, sampled while a flood runs."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.baseline = self.peak = self.process.memory_info().rss
        self._running = True
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        for _ in range(100_000):
            if not self._running:
                return
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.005)  # a sampling period, not a wait for anything

    async def stop(self) -> int:
        self._running = False
        await self._task
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak - self.baseline


async def test_slow_consumer_is_closed_and_resumes_without_loss_or_duplicates(daemon_factory):
    daemon = daemon_factory(config=SLOW_CONFIG)
    assert daemon.proc is not None
    alice = daemon.add_user("Алиса", "А")
    bob = daemon.add_user("Борис", "Б")
    carol = daemon.add_user("Вера", "В")

    async with (
        Client(daemon.url, alice.token) as sender,
        Receiver(daemon.url, bob.token, sync_limit=10_000) as other,
    ):
        assert other.client is not None
        async with Client(daemon.url, carol.token) as c:
            room = await room_with(sender, [other.client, c])
            joined = (await c.join(room))["pos"]  # joining twice returns her join

        # Carol's phone: authenticates, reads up to synced, then stops reading for good.
        slow = await RawWebSocket.connect(daemon.url, rcvbuf=4096)
        try:
            reply = await slow.request(
                {"id": 1, "op": "auth", "token": carol.token, "since": joined}
            )
            assert "ok" in reply
            for _ in range(100):
                push = await slow.recv_json()
                assert push is not None
                if "synced" in push:
                    break
            else:
                raise AssertionError("no synced push")

            memory = RssPeak(daemon.proc.pid)
            body = "ж" * BODY
            window = asyncio.Semaphore(32)
            acked: list[dict[str, Any]] = []

            async def send(i: int) -> None:
                try:
                    acked.append(await sender.send(room, f"{i:05d}{body}"))
                finally:
                    window.release()

            tasks = []
            for i in range(FLOOD):
                await window.acquire()
                tasks.append(asyncio.create_task(send(i)))
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            acked.sort(key=lambda e: e["pos"])
            await other.wait_pos(acked[-1]["pos"], timeout=60)
            growth = await memory.stop()

            # The other member got the whole flood, in order, without being disconnected.
            assert [e["event_id"] for e in other.events_in(room) if e["type"] == "message"] == [
                e["event_id"] for e in acked
            ]
            assert other.client is not None and other.client.reconnects == 0
            assert sender.reconnects == 0
            assert growth < RSS_GROWTH_LIMIT, f"daemon RSS grew {growth / 2**20:.1f} MiB"
            assert await metric(daemon.url, "sferumd_slow_consumer_closes_total") == 1

            # Carol reads at last: what was already on its way, then the close with 4008.
            got: list[dict[str, Any]] = []
            for _ in range(FLOOD + 100):
                push = await slow.recv_json()
                if push is None:
                    break
                if "ev" in push:
                    got.append(push["ev"])
            assert slow.close_code == 4008
            assert len(got) < FLOOD // 2, "the close came long before the flood ended"
        finally:
            await slow.close()

        last = got[-1]["pos"] if got else joined
        async with Client(daemon.url, carol.token, since=last, sync_limit=10_000) as resumed:
            rest: list[dict[str, Any]] = []
            for _ in range(FLOOD + 100):
                push = await resumed.next_push(WAIT)
                if "ev" in push:
                    rest.append(push["ev"])
                if "synced" in push:
                    break
        assert [e["event_id"] for e in got + rest] == [e["event_id"] for e in acked]
