"""Shared set-up of the SFU tests: a daemon with the SFU on loopback, a chat call, and real
aiortc participants (clients.rtc) joined to it."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from clients.rtc import RtcParticipant
from clients.sdk import Client

MEDIA_CONFIG = """
[media]
loopback_candidates = true
debug_stats = true
# Every microphone reaches everyone here (these tests count each one's packets); forwarding
# only the loudest is tested on its own (test_media_loudest, test_bench_sfu).
loudest_audio = 0
"""


def media_stats(daemon: Any) -> dict[str, Any]:
    with urllib.request.urlopen(daemon.url + "/debug/v1/media", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def producers(daemon: Any, call_id: str, room: str = "main") -> dict[tuple[str, str], Any]:
    call = media_stats(daemon)["calls"].get(call_id)
    if call is None or room not in call["routers"]:
        return {}
    return {(p["user_id"], p["kind"]): p for p in call["routers"][room]["producers"]}


async def until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


@dataclass
class World:
    daemon: Any
    call_id: str
    clients: dict[str, Client] = field(default_factory=dict)
    people: dict[str, RtcParticipant] = field(default_factory=dict)

    def uid(self, name: str) -> str:
        user_id = self.clients[name].user_id
        assert user_id is not None
        return user_id


@asynccontextmanager
async def world(
    daemon_factory: Any, names: tuple[str, ...], config: str = "", **media: Any
) -> AsyncIterator[World]:
    """A chat call started by the first name (its admin) with everybody in it, each joined
    with media (``media``: RtcParticipant options)."""
    d = daemon_factory(MEDIA_CONFIG + config)
    async with AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for name in names:
            user = d.add_user(first=name.title(), last="Test")
            clients[name] = await stack.enter_async_context(Client(d.url, user.token))
        owner = clients[names[0]]
        room = await owner.create_room("Урок", invite=[c.user_id for c in clients.values()][1:])
        for name in names[1:]:
            await clients[name].join(room)
        call_id = (await owner.call_start(room))["call_id"]
        w = World(d, call_id, clients)
        try:
            for name in names:
                w.people[name] = RtcParticipant(clients[name], call_id, **media)
            yield w
        finally:
            for p in w.people.values():
                await p.close()


def assert_clean(daemon: Any) -> None:
    """No traceback in the daemon's log (shown with its context when there is one)."""
    log = daemon.log()
    at = log.find("Traceback")
    assert at < 0, log[max(0, at - 600) : at + 3000]
