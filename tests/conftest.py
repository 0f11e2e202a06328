"""Shared fixtures: a real sferumd process on 127.0.0.1 with its own data directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ADDRESS = re.compile(r"sferumd listening on (http://\S+)")


@dataclass
class User:
    user_id: str
    device_id: str
    token: str
    phone: str


@dataclass
class Daemon:
    """A sferumd subprocess. ``restart`` keeps the data directory."""

    data_dir: Path
    config: Path | None = None
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    port: int = 0
    args: list[str] = field(default_factory=list)  # more `sferumd serve` options
    _phones: int = field(default=0)

    def start(self, timeout: float = 20.0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "sferumd",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        cmd += self.args
        with open(self.data_dir / "daemon.log", "a") as log:  # the child keeps its own fd
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sferumd exited: {(self.data_dir / 'daemon.log').read_text()}")
            m = ADDRESS.search(line)
            if m:
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])  # a restart keeps the port
                return
        raise RuntimeError("sferumd did not start in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_user(self, first: str = "Иван", last: str = "Петров", phone: str | None = None) -> User:
        if phone is None:
            self._phones += 1
            phone = f"+7999{os.getpid() % 1000:03d}{self._phones:04d}"
        # The function behind `sferumd admin add-user`, called in this process: a subprocess
        # per user cost about a second of interpreter start-up (the command itself is tested
        # in test_ops and test_cli).
        from sferumd.store.sqlite import add_user_device_sync, connect_sync

        conn = connect_sync(self.data_dir / "sferumd.sqlite")
        try:
            new = add_user_device_sync(conn, phone, first, last)
        finally:
            conn.close()
        return User(new.user_id, new.device_id, new.token, phone)

    def log(self) -> str:
        return (self.data_dir / "daemon.log").read_text()


def run_add_user(
    data_dir: Path, phone: str, first: str, last: str
) -> subprocess.CompletedProcess[str]:
    """``sferumd admin add-user`` as an operator runs it; the caller judges the outcome."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sferumd",
            "admin",
            "add-user",
            "--data-dir",
            str(data_dir),
            "--phone",
            phone,
            "--first-name",
            first,
            "--last-name",
            last,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[type[Daemon]]:
    started: list[Daemon] = []

    def make(
        config: str | None = None, name: str = "data", args: list[str] | None = None
    ) -> Daemon:
        data = tmp_path / name
        data.mkdir(exist_ok=True)
        cfg = write_config(tmp_path / f"{name}.toml", config) if config else None
        d = Daemon(data, cfg, args=args or [])
        d.start()
        started.append(d)
        return d

    yield make  # type: ignore[misc]
    for d in started:
        if d.proc is not None:
            d.stop(signal.SIGKILL)


@pytest.fixture
def daemon(daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    return daemon_factory()


@pytest.fixture
async def cast(daemon, request) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A few users, one signed-in connection (``tests.e2e_peer.Peer``) each, by name: the
    test module's ``NAMES``; the first is the one who makes the chats."""
    from tests.e2e_peer import Peer

    names = getattr(request.module, "NAMES", ("alice", "bob", "carol", "dave"))
    peers: dict[str, Any] = {}
    try:
        for name in names:
            user = daemon.add_user(first=name.title(), last="Test")
            peers[name] = await Peer.login(daemon.url, user.token)
        yield peers
    finally:
        for peer in peers.values():
            await peer.close()
