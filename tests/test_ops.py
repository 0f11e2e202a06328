"""Operating the daemon: health, metrics, the admin command, settings files, SIGTERM."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.errors import CloseCode
from tests.conftest import run_add_user
from tests.e2e_peer import Peer, http_get, metric, wait_metric

SFERUMD = [sys.executable, "-m", "sferumd"]


def add_user(
    data_dir: Path, phone: str, first: str = "Мария", last: str = "Иванова"
) -> subprocess.CompletedProcess[str]:
    return run_add_user(data_dir, phone, first, last)


async def test_health_is_json_ok(daemon) -> None:  # type: ignore[no-untyped-def]
    status, content_type, text = await http_get(daemon.url, "/health")
    assert status == 200
    assert content_type.startswith("application/json")
    assert json.loads(text)["status"] == "ok"


async def test_metrics_count_connections_events_and_frames(daemon) -> None:  # type: ignore[no-untyped-def]
    status, content_type, text = await http_get(daemon.url, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    for name, kind in (
        ("sferumd_connections", "gauge"),
        ("sferumd_events_appended_total", "counter"),
        ("sferumd_frames_sent_total", "counter"),
        ("sferumd_slow_consumer_closes_total", "counter"),
    ):
        assert f"# TYPE {name} {kind}" in text
        assert f"# HELP {name} " in text
    assert metric(text, "sferumd_connections") == 0
    before_events = metric(text, "sferumd_events_appended_total")
    before_frames = metric(text, "sferumd_frames_sent_total")

    alice_user, bob_user = daemon.add_user(), daemon.add_user()
    alice = await Peer.login(daemon.url, alice_user.token)
    bob = await Peer.login(daemon.url, bob_user.token)
    try:
        _, _, text = await http_get(daemon.url, "/metrics")
        assert metric(text, "sferumd_connections") == 2
        room = (await alice.request("create_room", invite=[bob.user_id]))["room_id"]
        await bob.request("join", room_id=room)
        _, _, text = await http_get(daemon.url, "/metrics")
        after_room = metric(text, "sferumd_events_appended_total")
        # create, alice's join, power levels, join rule, bob's invite, bob's join
        assert after_room - before_events == 6

        b0 = bob.mark()
        sent = (await alice.request("send", room_id=room, content={"body": "раз"}))["event"]
        await bob.wait_event(lambda e: e["event_id"] == sent["event_id"], since=b0)
        _, _, text = await http_get(daemon.url, "/metrics")
        assert metric(text, "sferumd_events_appended_total") == after_room + 1
        # At least: the reply to alice and the event pushed to alice and to bob.
        assert metric(text, "sferumd_frames_sent_total") >= before_frames + 3
    finally:
        await alice.close()
        await bob.close()
    await wait_metric(daemon.url, "sferumd_connections", lambda v: v == 0)


async def test_admin_add_user_prints_one_json_line_and_adds_devices(daemon) -> None:  # type: ignore[no-untyped-def]
    phone = "+79990001122"
    first = add_user(daemon.data_dir, phone)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 1
    one = json.loads(lines[0])
    assert set(one) == {"user_id", "device_id", "token", "created"}
    assert one["created"] is True and one["user_id"].startswith("@")

    second = add_user(daemon.data_dir, phone)
    assert second.returncode == 0, second.stderr
    two = json.loads(second.stdout)
    assert two["created"] is False
    assert two["user_id"] == one["user_id"]
    assert two["device_id"] != one["device_id"] and two["token"] != one["token"]

    # Both devices' tokens sign in, as the same user on different devices.
    for made in (one, two):
        peer = await Peer.login(daemon.url, made["token"])
        try:
            assert (peer.user_id, peer.device_id) == (made["user_id"], made["device_id"])
        finally:
            await peer.close()

    # Tokens are stored hashed: the token appears nowhere in the database files.
    with sqlite3.connect(daemon.data_dir / "sferumd.sqlite") as db:
        rows = db.execute("SELECT * FROM devices").fetchall()
    assert any(made["device_id"] in row for row in rows for made in (one, two))
    for made in (one, two):
        assert not any(made["token"] in str(value) for row in rows for value in row)
        for path in daemon.data_dir.glob("sferumd.sqlite*"):
            assert made["token"].encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("phone", "first", "last"),
    [
        ("89990001122", "Иван", "Петров"),  # no +
        ("+7 999 000 11 22", "Иван", "Петров"),
        ("+0999000112", "Иван", "Петров"),
        ("+7999abc1122", "Иван", "Петров"),
        ("+79990001122", "  ", "Петров"),  # empty name
    ],
)
def test_admin_add_user_rejects_bad_input_with_exit_2(
    tmp_path: Path, phone: str, first: str, last: str
) -> None:
    data = tmp_path / "data"
    result = add_user(data, phone, first, last)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip()
    if data.exists() and (data / "sferumd.sqlite").exists():
        with sqlite3.connect(data / "sferumd.sqlite") as db:
            assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[websocket]\nauth_timeout = 1.0\n", "websocket.auth_timeout"),
        ("[limits]\nmax_frame_byte = 100\n", "limits.max_frame_byte"),
        ("[sever]\nport = 1\n", "sever"),
        ('[websocket]\nrate_burst = "many"\n', "websocket.rate_burst"),
    ],
)
def test_bad_config_file_exits_2_with_a_clear_message(
    tmp_path: Path, toml: str, expected: str
) -> None:
    config = tmp_path / "sferumd.toml"
    config.write_text(toml)
    result = subprocess.run(
        [
            *SFERUMD,
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert expected in result.stderr and str(config) in result.stderr
    assert "listening" not in result.stdout


async def test_sigterm_stops_cleanly_and_keeps_what_was_acknowledged(daemon) -> None:  # type: ignore[no-untyped-def]
    user = daemon.add_user()
    peer = await Peer.login(daemon.url, user.token)
    room = (await peer.request("create_room", name="архив"))["room_id"]
    sent = [
        (await peer.request("send", room_id=room, content={"body": f"№{i}"}))["event"]
        for i in range(5)
    ]
    assert daemon.stop(signal.SIGTERM) == 0
    assert await peer.wait_closed() == CloseCode.GOING_AWAY  # told to come back later
    await peer.close()
    logs = [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "stopped" for entry in logs)

    daemon.start()
    again = await Peer.login(daemon.url, user.token)
    try:
        history = (await again.request("history", room_id=room, limit=100))["events"]
        assert [e for e in history if e["type"] == "message"] == sent
    finally:
        await again.close()
