"""``sferum call`` and ``sferum breakout`` against a real daemon: a call in a chat started,
joined and watched from the command line, breakout rooms planned from it, and ended."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from clients.sdk import Client
from tests.test_cli import SFERUM, lines, sferum


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), 15)
    assert raw, "sferum call join exited without printing"
    return json.loads(raw)  # type: ignore[no-any-return]


async def test_call_commands(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    host, guest = d.add_user(), d.add_user()
    [made] = await lines(d.url, host.token, "rooms", "create", "Кружок", "--invite", guest.user_id)
    room = made["room_id"]
    async with Client(d.url, guest.token) as g:
        await g.join(room)
        [started] = await lines(d.url, host.token, "call", "start", room)
        call_id = started["call_id"]
        assert started["state"] == "running" and started["kind"] == "chat"
        rc, _, err = await sferum(d.url, guest.token, "call", "end", call_id)
        assert rc == 1 and json.loads(err)["error"]["code"] == "forbidden"

        # The host joins and watches; the guest joins; the host's watch prints the state.
        proc = await asyncio.create_subprocess_exec(
            *SFERUM,
            "--server",
            d.url,
            "--token",
            host.token,
            "call",
            "join",
            call_id,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert (await _line(proc))["joined"] is True
            await g.call_join(call_id)
            while True:
                pushed = await _line(proc)
                people = [p["user_id"] for p in pushed["state"]["participants"]]
                if g.user_id in people:
                    break
            [plan] = await lines(
                d.url, host.token, "breakout", "plan", call_id, "--room", g.user_id
            )
            assert plan["breakout"]["rooms"][0]["members"] == [g.user_id]
            [opened] = await lines(d.url, host.token, "breakout", "start", call_id)
            assert opened["phase"] == "running"
            [shown] = await lines(d.url, guest.token, "call", "show", call_id)
            assert {p["user_id"]: p["room"] for p in shown["participants"]}[g.user_id] == "p1.1"
            [hands] = await lines(d.url, guest.token, "call", "hand", call_id)
            assert hands == {"hands": [g.user_id]}
            await lines(d.url, host.token, "call", "end", call_id)
            while True:
                pushed = await _line(proc)
                if pushed["type"] == "state" and pushed["state"]["state"] == "ended":
                    break
            assert await asyncio.wait_for(proc.wait(), 15) == 0  # the watch ends with the call
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
