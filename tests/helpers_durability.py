"""Helpers shared by the resume, transaction, crash and slow-consumer tests.

``Receiver`` keeps every push a user got, across reconnects and across replacing its SDK
client by a new one that resumes from the old one's position. ``RawWebSocket`` is a
minimal RFC 6455 client on a plain socket, for tests that need control over reading (a
consumer that stops reading) or over the exact frames sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from clients.sdk import Client

# Every wait in these tests is for a concrete condition, bounded by this many seconds.
WAIT = 20.0


async def eventually(
    predicate: Callable[[], bool], changed: asyncio.Event, timeout: float, what: str
) -> None:
    """Until ``predicate()`` holds, re-checked whenever ``changed`` is set."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), remaining)


def drop_socket(client: Client) -> None:
    """Cut the TCP connection under an SDK client; it notices, reconnects and resumes."""
    ws = client._ws
    sock = ws.get_extra_info("socket") if ws is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def transport_of(client: Client) -> asyncio.Transport:
    """The socket transport under an SDK client's websocket (to pause reading or abort)."""
    assert client._ws is not None
    conn = client._ws._response.connection
    assert conn is not None and conn.transport is not None
    return conn.transport


class Receiver:
    """One user's view of the stream: every push, in arrival order, over any reconnects."""

    def __init__(self, url: str, token: str, **client_args: Any):
        self.url = url
        self.token = token
        self.client_args = client_args
        self.pushes: list[dict[str, Any]] = []
        self.client: Client | None = None
        self.clients_used = 0
        self.changed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Receiver:
        if self.client is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            await self.stop()

    async def start(self, since: int | None = None) -> Receiver:
        client = Client(self.url, self.token, since=since, **self.client_args)
        await client.connect()
        self.client = client
        self.clients_used += 1
        self._pump = asyncio.create_task(self._run(client))
        return self

    async def _run(self, client: Client) -> None:
        while True:
            self._record(await client.next_push())

    def _record(self, push: dict[str, Any]) -> None:
        if "closed" not in push:  # the SDK's own end-of-stream marker, not a server push
            self.pushes.append(push)
        self.changed.set()

    async def stop(self) -> int | None:
        """Close the client, keep everything it received; returns its last position."""
        client, pump = self.client, self._pump
        assert client is not None and pump is not None
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await client.close()
        # The reader has stopped: whatever is still queued was received before the close.
        queue: asyncio.Queue[dict[str, Any]] = client._pushes
        while not queue.empty():
            self._record(queue.get_nowait())
        self.client = self._pump = None
        return client.pos

    async def replace(self) -> None:
        """A new client that resumes from where this one stopped."""
        pos = await self.stop()
        await self.start(since=pos)

    def drop_socket(self) -> None:
        assert self.client is not None
        drop_socket(self.client)

    async def close_websocket(self) -> None:
        """A clean websocket close from the client side; the SDK reconnects and resumes."""
        assert self.client is not None and self.client._ws is not None
        await self.client._ws.close()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [p["ev"] for p in self.pushes if "ev" in p]

    def events_in(self, room_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["room_id"] == room_id]

    def has_pos(self, pos: int) -> bool:
        return any(e["pos"] >= pos for e in self.events)

    async def wait_for(
        self, predicate: Callable[[], bool], what: str, timeout: float = WAIT
    ) -> None:
        await eventually(predicate, self.changed, timeout, what)

    async def wait_pos(self, pos: int, timeout: float = WAIT) -> None:
        await self.wait_for(lambda: self.has_pos(pos), f"an event at position {pos}", timeout)

    async def wait_synced(self, count: int = 1, timeout: float = WAIT) -> None:
        await self.wait_for(
            lambda: sum("synced" in p for p in self.pushes) >= count, f"{count} synced", timeout
        )


async def room_with(owner: Client, members: list[Client], name: str = "room") -> str:
    """A room created by ``owner`` that every client in ``members`` has joined."""
    ids = [m.user_id for m in members]
    assert all(ids)
    room = await owner.create_room(name=name, invite=[i for i in ids if i is not None])
    for m in members:
        await m.join(room)
    return room


async def full_history(client: Client, room_id: str) -> list[dict[str, Any]]:
    """Every event of a room the client may read, ascending, paging backwards."""
    out: list[dict[str, Any]] = []
    before: int | None = None
    for _ in range(1000):
        page = await client.history(room_id, before=before, limit=1000)
        out[:0] = page["events"]
        before = page["prev"]
        if before is None:
            return out
    raise AssertionError("history did not end within 1000 pages")


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not in /metrics")


# -- a raw websocket client ------------------------------------------------------------------

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class RawWebSocket:
    """JSON subprotocol over a socket whose reading the test controls.

    ``rcvbuf`` shrinks the kernel's receive buffer so that a client that stops reading
    pushes back on the server after little data, as a stalled phone on a bad network does.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.close_code: int | None = None

    @classmethod
    async def connect(
        cls, url: str, rcvbuf: int | None = None, protocol: str = "sferum.v1.json"
    ) -> RawWebSocket:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        # A small stream limit: the reader pauses the socket after a few KiB of unread data.
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        status = head.split(b"\r\n", 1)[0]
        assert b" 101 " in status, head.decode(errors="replace")
        return cls(reader, writer)

    def send_frame(self, payload: bytes, opcode: int = OP_TEXT) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def send_json(self, value: Any) -> None:
        self.send_frame(json.dumps(value).encode())

    async def recv_frame(self, timeout: float = WAIT) -> tuple[int, bytes]:
        async def read() -> tuple[int, bytes]:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert not b1 & 0x80, "server frames are never masked"
            assert b0 & 0x80, "the server sends unfragmented frames"
            return b0 & 0x0F, await self.reader.readexactly(n)

        return await asyncio.wait_for(read(), timeout)

    async def recv_json(self, timeout: float = WAIT) -> dict[str, Any] | None:
        """The next data frame decoded, answering pings; None once a close frame arrived."""
        for _ in range(100):
            opcode, payload = await self.recv_frame(timeout)
            if opcode == OP_TEXT:
                value = json.loads(payload)
                assert isinstance(value, dict)
                return value
            if opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                return None
            if opcode == OP_PING:
                self.send_frame(payload, OP_PONG)
        raise AssertionError("100 control frames in a row")

    async def request(self, frame: dict[str, Any], timeout: float = WAIT) -> dict[str, Any]:
        """Send a request and return its response, skipping pushes."""
        self.send_json(frame)
        for _ in range(10_000):
            reply = await self.recv_json(timeout)
            assert reply is not None, f"closed ({self.close_code}) while waiting for a response"
            if reply.get("id") == frame["id"]:
                return reply
        raise AssertionError("no response among 10,000 frames")

    async def close(self) -> None:
        if not self.writer.is_closing():
            with contextlib.suppress(OSError):
                self.send_frame(struct.pack("!H", 1000), OP_CLOSE)
            self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
