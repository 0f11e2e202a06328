"""The ``sferum`` command-line client against a real daemon: JSON lines out, one per item."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e_peer import Peer, health_pos, wait_metric

_SCRIPT = Path(sys.executable).parent / "sferum"
SFERUM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "clients.cli"]


async def sferum(url: str, token: str, *args: str, timeout: float = 20) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SFERUM,
        "--server",
        url,
        "--token",
        token,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def lines(url: str, token: str, *args: str) -> list[dict[str, Any]]:
    """Run a command that must succeed; its stdout as parsed JSON lines."""
    rc, out, err = await sferum(url, token, *args)
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def assert_stored_event(ev: dict[str, Any]) -> None:
    for key in ("event_id", "room_id", "sender", "type", "content", "pos"):
        assert key in ev, ev


async def test_rooms_create_list_invite_join(daemon) -> None:  # type: ignore[no-untyped-def]
    alice, bob = daemon.add_user(), daemon.add_user()
    url = daemon.url

    [created] = await lines(url, alice.token, "rooms", "create", "8Г класс")
    assert set(created) == {"room_id"}
    room = created["room_id"]

    listed = await lines(url, alice.token, "rooms", "list")
    assert [r["room_id"] for r in listed] == [room]
    assert listed[0]["name"] == "8Г класс" and listed[0]["membership"] == "join"

    [invite] = await lines(url, alice.token, "invite", room, bob.user_id)
    assert_stored_event(invite)
    assert invite["type"] == "member" and invite["state_key"] == bob.user_id
    assert invite["content"]["membership"] == "invite"
    [bob_sees] = await lines(url, bob.token, "rooms", "list")
    assert (bob_sees["room_id"], bob_sees["membership"]) == (room, "invite")

    [join] = await lines(url, bob.token, "join", room)
    assert join["sender"] == bob.user_id and join["content"]["membership"] == "join"
    [bob_sees] = await lines(url, bob.token, "rooms", "list")
    assert (bob_sees["membership"], bob_sees["members"]) == ("join", 2)


async def test_send_and_history(daemon) -> None:  # type: ignore[no-untyped-def]
    alice, bob = daemon.add_user(), daemon.add_user()
    url = daemon.url
    owner = await Peer.login(url, alice.token)
    try:
        room = (await owner.request("create_room", invite=[bob.user_id]))["room_id"]
    finally:
        await owner.close()
    guest = await Peer.login(url, bob.token)
    try:
        await guest.request("join", room_id=room)
    finally:
        await guest.close()

    sent = []
    for i, (who, text) in enumerate(
        [(alice, "Завтра контрольная"), (bob, "Ок"), (alice, "Не забудьте линейки")]
    ):
        [ev] = await lines(url, who.token, "send", room, text)
        assert_stored_event(ev)
        assert ev["room_id"] == room and ev["sender"] == who.user_id
        assert ev["type"] == "message" and ev["content"]["body"] == text
        assert not sent or ev["pos"] > sent[-1]["pos"], i
        sent.append(ev)

    history = await lines(url, bob.token, "history", room)
    assert history[-3:] == sent
    assert [e["pos"] for e in history] == sorted(e["pos"] for e in history)
    assert history[0]["type"] == "create"
    assert await lines(url, bob.token, "history", room, "--limit", "2") == sent[-2:]


async def test_send_with_txn_prints_the_original_event(daemon) -> None:  # type: ignore[no-untyped-def]
    alice = daemon.add_user()
    url = daemon.url
    peer = await Peer.login(url, alice.token)
    try:
        room = (await peer.request("create_room", name="повтор"))["room_id"]
    finally:
        await peer.close()
    [first] = await lines(url, alice.token, "send", room, "один раз", "--txn", "txn-42")
    pos = await health_pos(url)
    [again] = await lines(url, alice.token, "send", room, "один раз", "--txn", "txn-42")
    assert again == first
    # Even with other text, the same transaction id is the same send.
    [third] = await lines(url, alice.token, "send", room, "другой текст", "--txn", "txn-42")
    assert third == first
    assert await health_pos(url) == pos
    history = await lines(url, alice.token, "history", room)
    assert [e for e in history if e["type"] == "message"] == [first]
    # A different transaction id is a new message.
    [other] = await lines(url, alice.token, "send", room, "один раз", "--txn", "txn-43")
    assert other["event_id"] != first["event_id"] and other["pos"] > first["pos"]


async def test_errors_go_to_stderr_with_exit_1(daemon) -> None:  # type: ignore[no-untyped-def]
    alice, carol = daemon.add_user(), daemon.add_user()
    url = daemon.url
    [created] = await lines(url, alice.token, "rooms", "create", "закрытая")
    pos = await health_pos(url)
    rc, out, err = await sferum(url, carol.token, "send", created["room_id"], "можно?")
    assert rc == 1 and out == ""
    [line] = err.strip().splitlines()  # one JSON line and no other noise
    assert json.loads(line)["error"]["code"] == "not_member"
    rc, out, err = await sferum(url, "wrong-token", "rooms", "list")
    assert rc == 1 and out == ""
    [line] = err.strip().splitlines()
    assert json.loads(line)["error"]["code"] == "auth_failed"
    assert await health_pos(url) == pos


async def _next_json_line(proc: asyncio.subprocess.Process, timeout: float = 10) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert line, "tail exited without printing"
    return json.loads(line)  # type: ignore[no-any-return]


async def test_tail_prints_messages_sent_by_others(daemon) -> None:  # type: ignore[no-untyped-def]
    alice, bob = daemon.add_user(), daemon.add_user()
    url = daemon.url
    bob_peer = await Peer.login(url, bob.token)
    [created] = await lines(url, alice.token, "rooms", "create", "чат", "--invite", bob.user_id)
    room = created["room_id"]
    await bob_peer.request("join", room_id=room)
    [old] = await lines(url, bob.token, "send", room, "до tail")

    connected = await wait_metric(url, "sferumd_authenticated_connections", lambda v: True)
    proc = await asyncio.create_subprocess_exec(
        *SFERUM,
        "--server",
        url,
        "--token",
        alice.token,
        "tail",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Tail starts from now: wait until its connection is signed in, then send.
        await wait_metric(
            url, "sferumd_authenticated_connections", lambda v: v == connected + 1, timeout=15
        )
        live = (
            await bob_peer.request(
                "send", room_id=room, content={"body": "привет из другого клиента"}
            )
        )["event"]
        printed = await _next_json_line(proc)
        assert printed == live  # the message before tail started is not printed
        assert printed["content"]["body"] == "привет из другого клиента"
        assert printed["sender"] == bob.user_id and printed["event_id"] != old["event_id"]
        second = (await bob_peer.request("send", room_id=room, content={"body": "ещё"}))["event"]
        assert await _next_json_line(proc) == second
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        await bob_peer.close()


async def test_tail_since_resumes_from_a_position(daemon) -> None:  # type: ignore[no-untyped-def]
    alice = daemon.add_user()
    url = daemon.url
    peer = await Peer.login(url, alice.token)
    try:
        room = (await peer.request("create_room", name="журнал"))["room_id"]
        first = (await peer.request("send", room_id=room, content={"body": "первое"}))["event"]
        missed = [
            (await peer.request("send", room_id=room, content={"body": f"пропущено {i}"}))["event"]
            for i in range(3)
        ]
    finally:
        await peer.close()
    proc = await asyncio.create_subprocess_exec(
        *SFERUM,
        "--server",
        url,
        "--token",
        alice.token,
        "tail",
        "--since",
        str(first["pos"]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        printed = [await _next_json_line(proc) for _ in missed]
        assert printed == missed
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
