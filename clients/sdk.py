"""Asyncio Python SDK for sferumd.

    async with Client("http://127.0.0.1:8080", token) as client:
        room = await client.create_room(name="7B")
        await client.send(room, "hello")
        async for push in client.stream():
            ...

The client authenticates, receives the catch-up and then live pushes on ``stream()``, and
keeps ``pos``, the stream position of the last event it received. When the connection
drops (network, server restart, slow-consumer close) it reconnects with that position and
the server sends exactly what was missed. Sends carry a transaction id, chosen by the
client unless given, and are retried across reconnects: the server returns the original
event for a repeated id, so a retried send never makes a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from protocol.codec import JSON, MSGPACK, Codec
from protocol.errors import CloseCode

log = logging.getLogger(__name__)

# Ops that are safe to send again after a reconnect (reads, joins, and writes with a txn).
RETRY_SAFE = frozenset(
    {"ping", "rooms", "members", "history", "presence", "join", "send", "state", "redact", "read"}
)
# Close codes after which reconnecting cannot help.
FATAL_CLOSES = frozenset({CloseCode.AUTH_TIMEOUT, CloseCode.DEVICE_REVOKED, CloseCode.UNSUPPORTED})


class ClientError(Exception):
    """An error response from the server."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection dropped and the request was not safe to repeat (or reconnect is off)."""


@dataclass(slots=True)
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future[Any]


class Client:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        since: int | None = None,
        sync_limit: int | None = None,
        json: bool = False,
        reconnect: bool = True,
        max_reconnect_attempts: int = 50,
        request_timeout: float = 30.0,
    ):
        self.url = server.rstrip("/").replace("http", "ws", 1) + "/v1/ws"
        self.token = token
        self.pos = since  # last stream position received; None until the first sync
        self.sync_limit = sync_limit
        self.codec: Codec = JSON if json else MSGPACK
        self.reconnect = reconnect
        self.max_reconnect_attempts = max_reconnect_attempts
        self.request_timeout = request_timeout
        self.user_id: str | None = None
        self.device_id: str | None = None
        self.reconnects = 0
        self.close_code: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._synced = asyncio.Event()
        self._closing = False
        self._failure: BaseException | None = None

    # -- life cycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, authenticate and start receiving; returns once authenticated."""
        self._session = aiohttp.ClientSession()
        try:
            await self._open()
        except BaseException:
            await self._session.close()  # e.g. auth failed: leave no session open behind
            raise
        self._reader = asyncio.create_task(self._read_loop())

    async def close(self) -> None:
        self._closing = True
        try:
            if self._ws is not None:
                await self._ws.close()
            if self._reader is not None:
                self._reader.cancel()
                # A reader that already failed (connection lost with reconnect off, gave up
                # reconnecting) reported it to the pending requests and the stream; closing
                # such a client must still succeed and release its session.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._reader
        finally:
            if self._session is not None:
                await self._session.close()
            self._fail_pending(ConnectionLost("client closed"))

    async def wait_synced(self) -> None:
        """Until the catch-up after the latest (re)connect has been received."""
        await self._synced.wait()

    async def _open(self) -> None:
        assert self._session is not None
        self._connected.clear()
        self._synced.clear()
        ws = await self._session.ws_connect(
            self.url, protocols=(self.codec.subprotocol,), max_msg_size=0, autoping=True
        )
        self._ws = ws
        auth: dict[str, Any] = {"id": 0, "op": "auth", "token": self.token}
        if self.pos is not None:
            auth["since"] = self.pos
        if self.sync_limit is not None:
            auth["limit"] = self.sync_limit
        await self._send_raw(auth)
        msg = await ws.receive()
        if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            raise ConnectionLost(f"connection closed during auth ({ws.close_code})")
        reply = self._decode(msg.data)
        if "error" in reply:
            await ws.close()
            raise ClientError(reply["error"]["code"], reply["error"]["message"])
        self.user_id = reply["ok"]["user_id"]
        self.device_id = reply["ok"]["device_id"]
        if self.pos is None:
            self.pos = 0
        # Requests that waited for this reconnect, including any added while sending these.
        sent: set[int] = set()
        while todo := [(rid, p) for rid, p in self._pending.items() if rid not in sent]:
            for rid, pending in todo:
                await self._send_raw(pending.frame)
                sent.add(rid)
        self._connected.set()

    def _decode(self, data: str | bytes) -> dict[str, Any]:
        raw = data if isinstance(data, bytes) else data.encode()
        value = self.codec.decode(raw)
        assert isinstance(value, dict)
        return value

    async def _send_raw(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        data = self.codec.encode(frame)
        if self.codec.binary:
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data.decode())

    # -- the read loop ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                await self._read_until_closed()
                if self._closing:
                    return
                if not self.reconnect or self.close_code in FATAL_CLOSES:
                    raise ConnectionLost(f"connection closed ({self.close_code})")
                self._drop_unsafe()
                await self._reconnect()
        except BaseException as exc:
            self._failure = exc
            self._fail_pending(exc if isinstance(exc, Exception) else ConnectionLost("cancelled"))
            await self._pushes.put({"closed": {"code": self.close_code, "error": repr(exc)}})
            raise

    async def _read_until_closed(self) -> None:
        ws = self._ws
        assert ws is not None
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                self._on_frame(self._decode(msg.data))
            elif msg.type == aiohttp.WSMsgType.ERROR:
                break
        self.close_code = ws.close_code

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if "id" in frame:
            pending = self._pending.pop(frame["id"], None) if frame["id"] is not None else None
            if pending is None:
                if "error" in frame:
                    log.warning("unmatched error from server: %s", frame["error"])
                return
            if not pending.future.done():
                if "error" in frame:
                    err = frame["error"]
                    pending.future.set_exception(ClientError(err["code"], err["message"]))
                else:
                    pending.future.set_result(frame["ok"])
            return
        ev = frame.get("ev")
        if ev is not None:
            self.pos = max(self.pos or 0, ev["pos"])
        elif "synced" in frame:
            self.pos = max(self.pos or 0, frame["synced"]["pos"])
            self._synced.set()
        self._pushes.put_nowait(frame)

    async def _reconnect(self) -> None:
        delay = 0.05
        for attempt in range(self.max_reconnect_attempts):
            try:
                await self._open()
                self.reconnects += 1
                return
            except ClientError:
                raise  # e.g. the token was revoked: retrying cannot help
            except (aiohttp.ClientError, ConnectionLost, OSError) as exc:
                log.info("reconnect attempt %d failed: %r", attempt + 1, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise ConnectionLost(f"gave up after {self.max_reconnect_attempts} reconnect attempts")

    def _drop_unsafe(self) -> None:
        for rid, pending in list(self._pending.items()):
            if pending.frame["op"] not in RETRY_SAFE:
                del self._pending[rid]
                if not pending.future.done():
                    pending.future.set_exception(
                        ConnectionLost(f"connection lost during {pending.frame['op']}")
                    )

    def _fail_pending(self, exc: BaseException) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()

    # -- requests --------------------------------------------------------------------------

    async def request(self, op: str, **fields: Any) -> Any:
        """Send one request and return its result; raises ``ClientError`` on an error reply."""
        if self._failure is not None:
            raise ConnectionLost(f"client stopped: {self._failure!r}")
        rid = next(self._ids)
        frame = {"id": rid, "op": op, **{k: v for k, v in fields.items() if v is not None}}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(frame, future)
        if self._connected.is_set():
            # On failure the read loop notices the close and resends or fails the request.
            with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                await self._send_raw(frame)
        try:
            return await asyncio.wait_for(future, self.request_timeout)
        finally:
            self._pending.pop(rid, None)

    async def send(
        self,
        room_id: str,
        body: str | None = None,
        *,
        content: dict[str, Any] | None = None,
        type: str = "message",
        txn: str | None = None,
    ) -> dict[str, Any]:
        """Send a message; returns the stored event (the original one for a repeated txn)."""
        content = dict(content or {})
        if body is not None:
            content["body"] = body
        txn = txn or uuid.uuid4().hex
        result = await self.request(
            "send",
            room_id=room_id,
            content=content,
            type=None if type == "message" else type,
            txn=txn,
        )
        return result["event"]  # type: ignore[no-any-return]

    async def create_room(
        self,
        name: str | None = None,
        *,
        topic: str | None = None,
        join_rule: str | None = None,
        invite: list[str] | None = None,
    ) -> str:
        result = await self.request(
            "create_room", name=name, topic=topic, join_rule=join_rule, invite=invite
        )
        return result["room_id"]  # type: ignore[no-any-return]

    async def rooms(self) -> list[dict[str, Any]]:
        return (await self.request("rooms"))["rooms"]  # type: ignore[no-any-return]

    async def history(
        self, room_id: str, *, before: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        return await self.request("history", room_id=room_id, before=before, limit=limit)  # type: ignore[no-any-return]

    async def backfill(
        self, room_id: str, after: int, before: int, page: int = 500
    ) -> list[dict[str, Any]]:
        """Events of a room with after < pos < before, ascending: what a gap marker skipped."""
        out: list[dict[str, Any]] = []
        cursor: int | None = before
        while cursor is not None:
            result = await self.history(room_id, before=cursor, limit=page)
            events = [e for e in result["events"] if e["pos"] > after]
            out[:0] = events
            if len(events) < len(result["events"]):
                break
            cursor = result["prev"]
        return out

    async def _event_op(self, op: str, **fields: Any) -> dict[str, Any]:
        return (await self.request(op, **fields))["event"]  # type: ignore[no-any-return]

    async def invite(self, room_id: str, user_id: str) -> dict[str, Any]:
        return await self._event_op("invite", room_id=room_id, user_id=user_id)

    async def join(self, room_id: str) -> dict[str, Any]:
        return await self._event_op("join", room_id=room_id)

    async def leave(self, room_id: str) -> dict[str, Any]:
        return await self._event_op("leave", room_id=room_id)

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> dict[str, Any]:
        return await self._event_op("kick", room_id=room_id, user_id=user_id, reason=reason)

    async def ban(self, room_id: str, user_id: str, reason: str | None = None) -> dict[str, Any]:
        return await self._event_op("ban", room_id=room_id, user_id=user_id, reason=reason)

    async def unban(self, room_id: str, user_id: str) -> dict[str, Any]:
        return await self._event_op("unban", room_id=room_id, user_id=user_id)

    async def set_state(
        self, room_id: str, type: str, content: dict[str, Any], txn: str | None = None
    ) -> dict[str, Any]:
        return await self._event_op(
            "state", room_id=room_id, type=type, content=content, txn=txn or uuid.uuid4().hex
        )

    async def redact(
        self, room_id: str, event_id: str, reason: str | None = None, txn: str | None = None
    ) -> dict[str, Any]:
        return await self._event_op(
            "redact", room_id=room_id, event_id=event_id, reason=reason, txn=txn or uuid.uuid4().hex
        )

    async def members(self, room_id: str) -> list[dict[str, Any]]:
        return (await self.request("members", room_id=room_id))["members"]  # type: ignore[no-any-return]

    async def typing(
        self, room_id: str, typing: bool = True, timeout_ms: int | None = None
    ) -> None:
        await self.request("typing", room_id=room_id, typing=typing, timeout_ms=timeout_ms)

    async def read(self, room_id: str, pos: int) -> None:
        await self.request("read", room_id=room_id, pos=pos)

    async def presence(self, user_ids: list[str]) -> dict[str, str]:
        return (await self.request("presence", user_ids=user_ids))["presence"]  # type: ignore[no-any-return]

    # -- pushes ----------------------------------------------------------------------------

    async def next_push(self, timeout: float | None = None) -> dict[str, Any]:
        return await asyncio.wait_for(self._pushes.get(), timeout)

    def take_pushes(self) -> list[dict[str, Any]]:
        """Every push received so far and not yet taken, without waiting."""
        out = []
        while not self._pushes.empty():
            out.append(self._pushes.get_nowait())
        return out

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """Every push in order: ``ev``, ``gap``, ``synced``, ``typing``, ``receipt``,
        ``presence``; a final ``closed`` push if the client stops for good."""
        while True:
            push = await self._pushes.get()
            yield push
            if "closed" in push:
                return

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Only room events, in order."""
        async for push in self.stream():
            if "ev" in push:
                yield push["ev"]


# -- sign-in, profile and devices over HTTP (see "Sign-in, profile and devices" in PROTOCOL.md)


async def _http(
    server: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.request(method, server.rstrip("/") + path, json=body, headers=headers) as resp,
    ):
        data = await resp.json(content_type=None)
    if resp.status >= 400:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise ClientError(err.get("code", f"http_{resp.status}"), err.get("message", ""))
    return data


async def request_code(server: str, phone: str) -> dict[str, Any]:
    """Asks for an SMS code; returns {"phone": E.164, "sent": true}."""
    return await _http(server, "POST", "/v1/auth/code", body={"phone": phone})  # type: ignore[no-any-return]


async def verify_code(
    server: str, phone: str, code: str, device_name: str | None = None
) -> dict[str, Any]:
    """Returns {"user_id", "device_id", "token", "needs_profile"}."""
    body: dict[str, Any] = {"phone": phone, "code": code}
    if device_name is not None:
        body["device_name"] = device_name
    return await _http(server, "POST", "/v1/auth/verify", body=body)  # type: ignore[no-any-return]


async def profile(server: str, token: str) -> dict[str, Any]:
    return await _http(server, "GET", "/v1/profile", token=token)  # type: ignore[no-any-return]


async def update_profile(server: str, token: str, fields: dict[str, Any]) -> dict[str, Any]:
    return await _http(server, "PUT", "/v1/profile", token=token, body=fields)  # type: ignore[no-any-return]


async def devices(server: str, token: str) -> list[dict[str, Any]]:
    return (await _http(server, "GET", "/v1/devices", token=token))["devices"]  # type: ignore[no-any-return]


async def revoke_device(server: str, token: str, device_id: str) -> dict[str, Any]:
    from urllib.parse import quote

    path = "/v1/devices/" + quote(device_id, safe="")
    return await _http(server, "DELETE", path, token=token)  # type: ignore[no-any-return]


async def logout(server: str, token: str) -> dict[str, Any]:
    return await _http(server, "POST", "/v1/auth/logout", token=token)  # type: ignore[no-any-return]


# -- journal links (see "Journal linking (HTTP)" in PROTOCOL.md)


def link_token(url_or_token: str) -> str:
    """The token of a journal's link URL (``https://host/link/TOKEN``), or the token itself."""
    return url_or_token.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


async def link_offer(server: str, url_or_token: str) -> dict[str, Any]:
    """What a link URL offers: {"journal", "role", "school_id", "school_name", "expires_at"}."""
    from urllib.parse import quote

    path = "/v1/link/" + quote(link_token(url_or_token), safe="")
    return await _http(server, "GET", path)  # type: ignore[no-any-return]


async def confirm_link(server: str, token: str, url_or_token: str) -> dict[str, Any]:
    """Links the journal account behind the URL to the signed-in profile."""
    from urllib.parse import quote

    path = f"/v1/link/{quote(link_token(url_or_token), safe='')}/confirm"
    return await _http(server, "POST", path, token=token)  # type: ignore[no-any-return]


async def links(server: str, token: str) -> list[dict[str, Any]]:
    return (await _http(server, "GET", "/v1/links", token=token))["links"]  # type: ignore[no-any-return]


async def unlink(server: str, token: str, journal_id: str, account_id: str) -> dict[str, Any]:
    from urllib.parse import quote

    path = f"/v1/links/{quote(journal_id, safe='')}/{quote(account_id, safe='')}"
    return await _http(server, "DELETE", path, token=token)  # type: ignore[no-any-return]
