"""Shared parts of the benchmarks: a server process, users, and a cheap websocket client.

- ``ServerProcess`` starts a server (the daemon or ``bench.baseline_server``) as a child
  process, waits for its ``listening on http://HOST:PORT`` line, measures its CPU time (user
  + system, all threads) and RSS with psutil, and stops it. ``start_daemon`` builds one for
  sferumd on a temporary data directory with the rate limiter raised out of the way.
- ``make_users`` creates users and device tokens straight in the SQLite file before the
  daemon starts (the same function ``sferumd admin add-user`` runs, without a process each).
- ``WsConn`` is a websocket client on a bare ``asyncio.Protocol``: hand-written handshake and
  frame parser, no per-frame objects, no masking work (a masking key of zeros is legal and
  makes the XOR an identity; the server still unmasks). Setup requests go through
  ``request``; the hot loops of the benches install their own ``on_message`` callback that
  sees raw frame payloads and the time the bytes arrived.

Everything talks to 127.0.0.1 only, and every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
MSGPACK_SUBPROTOCOL = "sferum.v1.msgpack"
# Every event push of the daemon on the msgpack subprotocol is the map {"ev": {...}}: a
# one-entry fixmap (0x81) whose key is the 2-byte fixstr "ev". Checking these four bytes
# tells a delivered event from a response without decoding the frame.
EV_PREFIX = b"\x81\xa2ev"
READY = re.compile(r"listening on (http://[^\s]+)")
# Raised far above any bench's request rate so the limiter does not shape the results.
BENCH_CONFIG = """\
[websocket]
rate_per_s = 10000000.0
rate_burst = 10000000
max_inflight = 1024
"""


# -- process set-up ----------------------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (in this process); returns the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, load generator CPUs): the server on one core, the clients on the rest,
    as in the reference measurements; (None, None) when not pinning or with one CPU."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def pin_load_generator(pin: bool) -> set[int] | None:
    """Moves this process to the load-generator CPUs; returns the server's CPUs."""
    server_cpus, client_cpus = cpu_split(pin)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    return server_cpus


def log(*parts: object) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server to one CPU and the load generator to the others",
    )
    return p


def run_bench(
    main_async: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]], args: Any
) -> dict[str, Any]:
    """Every script's ending: enough descriptors, uvloop, the run, its one result line."""
    raise_nofile()
    install_uvloop()
    result = asyncio.run(main_async(args))
    emit(result, args.json)
    return result


def emit(result: dict[str, Any], as_json: bool) -> None:
    """The result: human-readable lines unless --json, then the JSON object as the last line."""
    if not as_json:
        for key, value in result.items():
            print(f"{key:>40}: {value}")
    print(json.dumps(result, separators=(", ", ": ")), flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(0, min(len(sorted_values), rank) - 1)]


def latency_summary(samples_s: Sequence[float]) -> dict[str, float]:
    values = sorted(samples_s)
    return {
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p99_ms": round(percentile(values, 99) * 1000, 3),
        "max_ms": round((values[-1] if values else float("nan")) * 1000, 3),
    }


# -- server processes --------------------------------------------------------------------------


class ServerProcess:
    """A server child process that prints ``listening on http://HOST:PORT`` when ready."""

    def __init__(self, argv: list[str], *, log_path: Path, cpus: set[int] | None = None):
        self.argv = argv
        self.log_path = log_path
        self.cpus = cpus
        self.proc: subprocess.Popen[str] | None = None
        self.ps: psutil.Process | None = None
        self.url = ""
        self.port = 0
        self._log: Any = None

    def _preexec(self) -> None:
        # Runs in the child before exec: every thread the server starts inherits both.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            preexec_fn=self._preexec,
        )
        ready = threading.Event()

        def read_stdout() -> None:  # finds the address, then keeps the pipe drained
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                m = READY.search(line)
                if m and not ready.is_set():
                    self.url = m.group(1)
                    ready.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"server did not start ({' '.join(self.argv)}); log:\n{self.log_tail()}"
                )
        self.port = int(self.url.rsplit(":", 1)[1])
        self.ps = psutil.Process(self.proc.pid)
        return self

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far (all its threads)."""
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def num_fds(self) -> int:
        assert self.ps is not None
        return int(self.ps.num_fds())

    def nofile_limit(self) -> tuple[int, int]:
        assert self.ps is not None
        soft, hard = self.ps.rlimit(psutil.RLIMIT_NOFILE)
        return int(soft), int(hard)

    def get(self, path: str, timeout: float = 10.0) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return str(resp.read().decode())

    def metric(self, name: str) -> float | None:
        for line in self.get("/metrics").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait(5)
            else:
                rc = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BenchDir:
    """A temporary directory for one bench run, removed afterwards."""

    def __init__(self, name: str):
        self.path = Path(tempfile.mkdtemp(prefix=f"sferumd-bench-{name}-"))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def start_daemon(
    workdir: Path, *, cpus: set[int] | None = None, extra_config: str = ""
) -> ServerProcess:
    """sferumd on ``workdir/data`` with the bench settings (rate limits raised)."""
    data_dir = workdir / "data"
    config = workdir / "bench.toml"
    config.write_text(BENCH_CONFIG + extra_config)
    argv = [
        sys.executable, "-m", "sferumd", "serve",
        "--data-dir", str(data_dir), "--host", HOST, "--port", "0", "--config", str(config),
    ]  # fmt: skip
    return ServerProcess(argv, log_path=workdir / "daemon.log", cpus=cpus).start()


def start_baseline(workdir: Path, *, cpus: set[int] | None = None) -> ServerProcess:
    argv = [sys.executable, "-m", "bench.baseline_server", "--host", HOST, "--port", "0"]
    return ServerProcess(argv, log_path=workdir / "baseline.log", cpus=cpus).start()


@dataclass(frozen=True, slots=True)
class BenchUser:
    user_id: str
    device_id: str
    token: str


def make_users(workdir: Path, count: int, devices_per_user: int = 1) -> list[BenchUser]:
    """``count`` devices (``devices_per_user`` per user) created in the daemon's database
    before it starts; one entry per device."""
    from sferumd.store.sqlite import add_user_device_sync, connect_sync

    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect_sync(data_dir / "sferumd.sqlite")
    out: list[BenchUser] = []
    try:
        for i in range(count):
            n = i // devices_per_user
            new = add_user_device_sync(conn, f"+7900{n:07d}", "Bench", f"User{n}")
            out.append(BenchUser(new.user_id, new.device_id, new.token))
    finally:
        conn.close()
    return out


# -- the websocket client ----------------------------------------------------------------------

OnMessage = Callable[[bytes, float], None]


class BenchError(Exception):
    pass


class WsConn(asyncio.Protocol):
    """One websocket connection. Frames go to ``on_message(payload, arrival_time)``; the
    default handler decodes msgpack, resolves ``request`` futures and collects pushes."""

    def __init__(self, host: str, port: int, path: str, subprotocol: str | None):
        self.transport: asyncio.Transport | None = None
        self._request_bytes = self._handshake(host, port, path, subprotocol)
        self._head = b""
        self._buf = b""
        self._fragments: list[bytes] = []
        self.upgraded = False
        self.loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[int | None] = self.loop.create_future()
        self.close_code: int | None = None
        self.on_message: OnMessage = self._default_message
        self.clock = time.perf_counter
        self._ids = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.pushes: list[dict[str, Any]] = []
        self.auth_result: dict[str, Any] = {}
        self._push_waiter: asyncio.Future[None] | None = None
        self.frames_received = 0
        self.bytes_received = 0

    @staticmethod
    def _handshake(host: str, port: int, path: str, subprotocol: str | None) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self._request_bytes)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        t = self.clock()
        if not self.upgraded:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self._head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                if not self.handshake.done():
                    self.handshake.set_exception(BenchError(f"handshake refused: {status!r}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            data = self._head[end + 4 :]
            self._head = b""
            if not self.handshake.done():
                self.handshake.set_result(None)
            if not data:
                return
        self.bytes_received += len(data)
        buf = self._buf + data if self._buf else data
        n = len(buf)
        i = 0
        on_message = self.on_message
        frames = 0
        while n - i >= 2:
            b0 = buf[i]
            length = buf[i + 1] & 0x7F
            h = 2
            if length == 126:
                if n - i < 4:
                    break
                length = (buf[i + 2] << 8) | buf[i + 3]
                h = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                h = 10
            end = i + h + length
            if end > n:
                break
            payload = buf[i + h : end]
            i = end
            opcode = b0 & 0x0F
            if opcode in (1, 2) and b0 & 0x80:
                frames += 1
                on_message(payload, t)
            else:
                self._control(b0, opcode, payload, t)
        self.frames_received += frames
        self._buf = buf[i:] if i < n else b""

    def _control(self, b0: int, opcode: int, payload: bytes, t: float) -> None:
        if opcode in (1, 2):  # first fragment of a fragmented message
            self._fragments = [payload]
        elif opcode == 0:  # continuation
            self._fragments.append(payload)
            if b0 & 0x80:
                whole, self._fragments = b"".join(self._fragments), []
                self.frames_received += 1
                self.on_message(whole, t)
        elif opcode == 9:  # ping: answer with a pong carrying the same payload
            self._write_frame(0xA, payload)
        elif opcode == 8:  # close: echo it and hang up
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self._write_frame(0x8, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(BenchError(f"connection lost in handshake: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BenchError(f"connection closed ({self.close_code})"))
        self._pending.clear()
        if self._push_waiter is not None and not self._push_waiter.done():
            self._push_waiter.set_result(None)

    # -- sending -------------------------------------------------------------------------------

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        # Masking key 0: legal, and the masked payload is the payload itself.
        self.transport.write(header + b"\x00\x00\x00\x00" + payload)

    def send_binary(self, payload: bytes) -> None:
        self._write_frame(0x2, payload)

    def send_obj(self, value: Any) -> None:
        self._write_frame(0x2, msgpack.packb(value, use_bin_type=True))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write_frame(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- request/response (set-up, not the measured loops) -------------------------------------

    def _default_message(self, payload: bytes, t: float) -> None:
        frame = msgpack.unpackb(payload, raw=False)
        if isinstance(frame, dict) and "id" in frame:
            fut = self._pending.pop(frame["id"], None)
            if fut is not None and not fut.done():
                if "error" in frame:
                    err = frame["error"]
                    fut.set_exception(BenchError(f"{err.get('code')}: {err.get('message')}"))
                else:
                    fut.set_result(frame.get("ok"))
            return
        self.pushes.append(frame)
        if self._push_waiter is not None and not self._push_waiter.done():
            self._push_waiter.set_result(None)

    async def request(self, op: str, timeout: float = 30.0, **fields: Any) -> Any:
        self._ids += 1
        rid = self._ids
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._pending[rid] = fut
        self.send_obj({"id": rid, "op": op, **{k: v for k, v in fields.items() if v is not None}})
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)

    async def wait_push(self, key: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first collected push that has ``key``, removing it and everything before it."""
        deadline = self.loop.time() + timeout
        while True:
            for i, push in enumerate(self.pushes):
                if key in push:
                    del self.pushes[: i + 1]
                    return push
            if self.closed.done():
                raise BenchError(f"connection closed ({self.close_code}) waiting for {key}")
            left = deadline - self.loop.time()
            if left <= 0:
                raise BenchError(f"timed out waiting for a {key} push")
            self._push_waiter = self.loop.create_future()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._push_waiter, left)

    async def auth(
        self, token: str, since: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Authenticate and wait for the catch-up to finish (the ``synced`` push)."""
        result = await self.request("auth", token=token, since=since, limit=limit)
        synced = await self.wait_push("synced")
        result["synced_pos"] = synced["synced"]["pos"]
        self.auth_result = dict(result)
        return self.auth_result


async def ws_connect(
    port: int,
    *,
    path: str = "/v1/ws",
    subprotocol: str | None = MSGPACK_SUBPROTOCOL,
    timeout: float = 15.0,
) -> WsConn:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: WsConn(HOST, port, path, subprotocol), HOST, port), timeout
    )
    await asyncio.wait_for(asyncio.shield(conn.handshake), timeout)
    return conn


async def connect_many(
    port: int, count: int, *, concurrency: int = 100, retries: int = 3, **kwargs: Any
) -> list[WsConn]:
    """``count`` connections, at most ``concurrency`` handshakes at a time (the server's
    listen backlog is 128), each retried a few times."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> WsConn:
        async with sem:
            for attempt in range(retries):
                try:
                    return await ws_connect(port, **kwargs)
                except (TimeoutError, OSError, BenchError):
                    if attempt == retries - 1:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise AssertionError("unreachable")

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def authed(port: int, user: BenchUser, **auth: Any) -> WsConn:
    conn = await ws_connect(port)
    await conn.auth(user.token, **auth)
    return conn


async def make_room(port: int, users: Sequence[BenchUser]) -> tuple[str, list[WsConn]]:
    """A public room created by ``users[0]`` and joined by all the others, each with one
    authenticated connection (returned in the order of ``users``)."""
    conns = [await authed(port, users[0])]
    room_id: str = (await conns[0].request("create_room", name="bench", join_rule="public"))[
        "room_id"
    ]
    sem = asyncio.Semaphore(50)

    async def join(user: BenchUser) -> WsConn:
        async with sem:
            conn = await authed(port, user)
            await conn.request("join", room_id=room_id)
            return conn

    conns += await asyncio.gather(*(join(u) for u in users[1:]))
    for c in conns:
        c.pushes.clear()
    return room_id, conns


def body_with_marker(seq: int, size: int) -> str:
    """A ``size``-character text that carries ``~!SEQ~`` (10 digits) for the receiver to find
    with one ``bytes.find`` instead of decoding the frame."""
    head = f"~!{seq:010d}~"
    return head + "x" * max(0, size - len(head))


MARKER = b"~!"


def marker_seq(payload: bytes) -> int:
    i = payload.find(MARKER)
    if i < 0:
        return -1
    return int(payload[i + 2 : i + 12])
