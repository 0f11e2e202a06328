"""A raw websocket peer for end-to-end tests: every frame the server sends is kept, in order.

The SDK hides the wire; these tests want to see it: which pushes arrived and which did not,
error frames with a null id, close codes. ``Peer`` keeps every received frame in ``frames``;
``request`` matches a reply by id; ``wait_frame`` waits (bounded) for a frame matching a
predicate, from a cursor taken with ``mark``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from protocol.codec import JSON, MSGPACK, Codec

TIMEOUT = 5.0
MSGPACK_PROTO = MSGPACK.subprotocol
JSON_PROTO = JSON.subprotocol


class Rejected(Exception):
    """An error reply to a request."""

    def __init__(self, code: str, message: str, frame: dict[str, Any]):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.frame = frame


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/v1/ws"


class Peer:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        codec: Codec,
        own_session: bool,
    ):
        self.session = session
        self.ws = ws
        self.codec = codec
        self.own_session = own_session
        self.frames: list[dict[str, Any]] = []
        self.binary: list[bool] = []  # per frame: did it come on a binary websocket frame
        self.user_id: str | None = None
        self.device_id: str | None = None
        self.token: str | None = None
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base_url: str, *, json_codec: bool = False, max_msg_size: int = 0) -> Peer:
        codec = JSON if json_codec else MSGPACK
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                ws_url(base_url),
                protocols=(codec.subprotocol,),
                max_msg_size=max_msg_size,
                autoping=True,
            )
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, codec, True)

    @classmethod
    async def login(
        cls,
        base_url: str,
        token: str,
        *,
        json_codec: bool = False,
        since: int | None = None,
        limit: int | None = None,
    ) -> Peer:
        """Open, authenticate and wait for the end of the catch-up."""
        peer = await cls.open(base_url, json_codec=json_codec)
        try:
            mark = peer.mark()
            ok = await peer.request("auth", token=token, since=since, limit=limit)
            peer.user_id, peer.device_id = ok["user_id"], ok["device_id"]
            peer.token = token
            await peer.wait_frame(lambda f: "synced" in f, since=mark)
        except BaseException:
            await peer.close()
            raise
        return peer

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if self.own_session:
            await self.session.close()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                frame = self.codec.decode(data)
                assert isinstance(frame, dict), frame
                self.binary.append(msg.type == aiohttp.WSMsgType.BINARY)
                self.frames.append(frame)
                self._arrived.set()
            elif msg.type == aiohttp.WSMsgType.ERROR:
                break
        self._arrived.set()

    # -- sending ---------------------------------------------------------------------------

    async def send_value(self, value: Any) -> None:
        data = self.codec.encode(value)
        if self.codec.binary:
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data.decode())

    async def send_raw(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    def next_id(self) -> int:
        return next(self._ids)

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request; returns its reply frame (ok or error)."""
        rid = self.next_id()
        frame = {"id": rid, "op": op, **{k: v for k, v in fields.items() if v is not None}}
        mark = self.mark()
        await self.send_value(frame)
        return await self.wait_frame(lambda f: f.get("id") == rid, since=mark)

    async def request(self, op: str, **fields: Any) -> Any:
        reply = await self.call(op, **fields)
        if "error" in reply:
            err = reply["error"]
            raise Rejected(err["code"], err["message"], reply)
        return reply["ok"]

    async def reject(self, op: str, **fields: Any) -> str:
        """Send a request that must be refused; returns the error code."""
        reply = await self.call(op, **fields)
        assert "error" in reply, f"{op} {fields} was accepted: {reply}"
        return str(reply["error"]["code"])

    # -- receiving -------------------------------------------------------------------------

    def mark(self) -> int:
        return len(self.frames)

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_frame(
        self, pred: Callable[[dict[str, Any]], bool], *, since: int = 0, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for frame in self.frames[since:]:
                if pred(frame):
                    return frame
            if self.closed:
                raise AssertionError(
                    f"connection closed ({self.ws.close_code}) before a matching frame; "
                    f"got {self.frames[since:]}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching frame within {timeout}s; got {self.frames[since:]}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def wait_event(
        self, pred: Callable[[dict[str, Any]], bool], *, since: int = 0, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """A pushed room event matching ``pred``."""
        frame = await self.wait_frame(
            lambda f: "ev" in f and pred(f["ev"]), since=since, timeout=timeout
        )
        return frame["ev"]  # type: ignore[no-any-return]

    async def barrier(self) -> None:
        """Everything the server queued for this connection before now has arrived.

        The server writes a connection's frames in order, so once the reply to a ping sent
        now is here, every push queued before it is here too.
        """
        await self.request("ping")

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return [f["ev"] for f in self.frames[since:] if "ev" in f]

    def pushes(self, key: str, since: int = 0) -> list[dict[str, Any]]:
        return [f[key] for f in self.frames[since:] if key in f]

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Until the server closes the connection; returns the close code."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.ws.close_code


async def http_get(base_url: str, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(base_url + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def health_pos(base_url: str) -> int:
    """The server's newest committed stream position: any append anywhere moves it."""
    status, _, text = await http_get(base_url, "/health")
    assert status == 200
    return int(json.loads(text)["pos"])


async def room_history(peer: Peer, room_id: str) -> list[dict[str, Any]]:
    """The whole visible history of a room, oldest first, by paging backwards."""
    out: list[dict[str, Any]] = []
    before: int | None = None
    for _ in range(1000):
        page = await peer.request("history", room_id=room_id, before=before, limit=1000)
        out[:0] = page["events"]
        if page["prev"] is None:
            return out
        before = page["prev"]
    raise AssertionError("history did not end")


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found in:\n{text}")


async def wait_metric(
    base_url: str, name: str, pred: Callable[[float], bool], timeout: float = TIMEOUT
) -> float:
    """Poll ``GET /metrics`` (bounded) until ``pred`` holds for the metric's value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        _, _, text = await http_get(base_url, "/metrics")
        value = metric(text, name)
        if pred(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{name} = {value} after {timeout}s")
        await asyncio.sleep(0.02)


class Snapshot:
    """What is stored, taken before a request that must be refused: the room's history as a
    member sees it and the server's newest position."""

    def __init__(self, base_url: str, peer: Peer, room_id: str):
        self.base_url, self.peer, self.room_id = base_url, peer, room_id
        self.history: list[dict[str, Any]] = []
        self.pos = -1

    async def take(self) -> Snapshot:
        self.history = await room_history(self.peer, self.room_id)
        self.pos = await health_pos(self.base_url)
        return self

    async def assert_unchanged(self) -> None:
        assert await room_history(self.peer, self.room_id) == self.history
        assert await health_pos(self.base_url) == self.pos


async def snapshot(base_url: str, peer: Peer, room_id: str) -> Snapshot:
    return await Snapshot(base_url, peer, room_id).take()
