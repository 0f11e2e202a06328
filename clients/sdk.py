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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from protocol.codec import JSON, MSGPACK, Codec
from protocol.errors import CloseCode

log = logging.getLogger(__name__)

# Ops that are safe to send again after a reconnect (reads, joins, and writes with a txn).
RETRY_SAFE = frozenset(
    {"ping", "rooms", "members", "history", "presence", "join", "send", "state", "redact", "read"}
    | {"set_closed", "knocks", "report", "reports"}
    | {"edit", "edits", "react", "reactions", "pin", "unpin", "forward"}
    | {"poll", "vote", "close_poll", "poll_results"}  # a vote is the same choice again
    | {"call_get", "call_join", "call_media", "call_hand", "whiteboard", "calls"}  # calls
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
        # Called with each ``call`` push's value as it arrives (it is queued as well): the
        # media client (clients/rtc.py) answers media_offer pushes this way.
        self.call_listeners: list[Callable[[dict[str, Any]], None]] = []
        # Called after each reconnect: the server took this device out of its calls when the
        # connection dropped (clients.rtc.RtcParticipant joins again from here).
        self.reconnect_listeners: list[Callable[[], None]] = []

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
                for listener in list(self.reconnect_listeners):
                    listener()
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
        call = frame.get("call")
        if call is not None:
            for listener in self.call_listeners:
                listener(call)
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
        reply_to: str | None = None,
        mentions: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a message; returns the stored event (the original one for a repeated txn).
        ``reply_to``: an event id of a message in the room; ``mentions``: members' user ids,
        who get a ``mention`` push."""
        content = dict(content or {})
        if body is not None:
            content["body"] = body
        if reply_to is not None:
            content["reply_to"] = reply_to
        if mentions is not None:
            content["mentions"] = mentions
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
        closed: bool | None = None,
    ) -> str:
        result = await self.request(
            "create_room",
            name=name,
            topic=topic,
            join_rule=join_rule,
            invite=invite,
            closed=closed,
        )
        return result["room_id"]  # type: ignore[no-any-return]

    async def rooms(self) -> list[dict[str, Any]]:
        return (await self.request("rooms"))["rooms"]  # type: ignore[no-any-return]

    async def history(
        self, room_id: str, *, before: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        return await self.request("history", room_id=room_id, before=before, limit=limit)  # type: ignore[no-any-return]

    async def search(
        self,
        query: str,
        *,
        room_id: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Messages you were delivered that match the words of ``query`` (any text), newest
        first: ``{"results": [{"event", "snippet"?}, ...], "next": POS or None}``; pass
        ``next`` as ``before`` for the next page."""
        return await self.request(  # type: ignore[no-any-return]
            "search", query=query, room_id=room_id, before=before, limit=limit
        )

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

    # -- files (see "Files (HTTP)" in PROTOCOL.md) -------------------------------------------

    @property
    def http_url(self) -> str:
        """The daemon's HTTP base address (the websocket's, without /v1/ws)."""
        return self.url.removesuffix("/v1/ws").replace("ws", "http", 1)

    async def upload(
        self, path: str | Path, *, name: str | None = None, content_type: str | None = None
    ) -> dict[str, Any]:
        """Uploads a file; returns {"id", "name", "size", "type", "sha256", ...}."""
        return await upload(self.http_url, self.token, path, name=name, content_type=content_type)

    async def download(self, file_id: str, dest: str | Path, *, thumbnail: bool = False) -> Path:
        """Saves a file (or its thumbnail) to ``dest``, or into it if it is a directory."""
        return await download(self.http_url, self.token, file_id, dest, thumbnail=thumbnail)

    async def send_file(
        self,
        room_id: str,
        path: str | Path,
        body: str | None = None,
        *,
        txn: str | None = None,
    ) -> dict[str, Any]:
        """Uploads a file and sends it as a message (``body`` defaults to the file's name);
        returns the stored event, whose ``content.file`` the server filled in."""
        info = await self.upload(path)
        content = {"body": info["name"] if body is None else body, "file": {"id": info["id"]}}
        return await self.send(room_id, content=content, txn=txn)

    async def presence(self, user_ids: list[str]) -> dict[str, str]:
        return (await self.request("presence", user_ids=user_ids))["presence"]  # type: ignore[no-any-return]

    # -- chats: closed setting, requests to join, moderation (see "Closed chats" in PROTOCOL.md)

    async def set_closed(self, room_id: str, closed: bool = True) -> dict[str, Any]:
        """Closes (only admins invite, rename, pin) or opens the chat; the power-levels event."""
        return await self._event_op("set_closed", room_id=room_id, closed=closed)

    async def knocks(self, room_id: str) -> list[dict[str, Any]]:
        """Pending requests to join (made through links that need approval)."""
        return (await self.request("knocks", room_id=room_id))["knocks"]  # type: ignore[no-any-return]

    async def accept_knock(self, room_id: str, user_id: str) -> dict[str, Any]:
        return await self._event_op("accept_knock", room_id=room_id, user_id=user_id)

    async def refuse_knock(
        self, room_id: str, user_id: str, reason: str | None = None
    ) -> dict[str, Any]:
        return await self._event_op("refuse_knock", room_id=room_id, user_id=user_id, reason=reason)

    async def mute(
        self, room_id: str, user_id: str, duration_s: int | None = None
    ) -> dict[str, Any]:
        """Mutes a member for ``duration_s`` seconds (None: until unmuted)."""
        return await self._event_op("mute", room_id=room_id, user_id=user_id, duration_s=duration_s)

    async def unmute(self, room_id: str, user_id: str) -> dict[str, Any]:
        return await self._event_op("unmute", room_id=room_id, user_id=user_id)

    async def report(
        self, room_id: str, event_id: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Reports a message to the chat's admins: {"reported": true, "new": bool}."""
        return await self.request("report", room_id=room_id, event_id=event_id, reason=reason)  # type: ignore[no-any-return]

    async def reports(self, room_id: str) -> list[dict[str, Any]]:
        return (await self.request("reports", room_id=room_id))["reports"]  # type: ignore[no-any-return]

    # -- rich messages (see "Rich messages" in PROTOCOL.md) ------------------------------

    async def edit(
        self, room_id: str, event_id: str, body: str, txn: str | None = None
    ) -> dict[str, Any]:
        """Replaces the text of one of your messages; returns the ``edit`` event."""
        return await self._event_op(
            "edit", room_id=room_id, event_id=event_id, body=body, txn=txn or uuid.uuid4().hex
        )

    async def edits(self, room_id: str, event_id: str) -> list[dict[str, Any]]:
        """A message's texts, first to newest: [{"event_id", "ts", "body"}, ...]."""
        return (await self.request("edits", room_id=room_id, event_id=event_id))["versions"]  # type: ignore[no-any-return]

    async def react(
        self, room_id: str, event_id: str, key: str, txn: str | None = None
    ) -> dict[str, Any]:
        """Reacts to a message (one reaction per key: a repeat returns the first). To take it
        back, ``redact`` the returned event."""
        return await self._event_op(
            "react", room_id=room_id, event_id=event_id, key=key, txn=txn or uuid.uuid4().hex
        )

    async def reactions(self, room_id: str, event_id: str) -> list[dict[str, Any]]:
        """[{"key", "count", "users", "mine"}, ...]: ``mine`` is your reaction's event id."""
        return (await self.request("reactions", room_id=room_id, event_id=event_id))[  # type: ignore[no-any-return]
            "reactions"
        ]

    async def pin(self, room_id: str, event_id: str, txn: str | None = None) -> dict[str, Any]:
        """Pins a message; returns the room's ``pins`` state event."""
        return await self._event_op(
            "pin", room_id=room_id, event_id=event_id, txn=txn or uuid.uuid4().hex
        )

    async def unpin(self, room_id: str, event_id: str, txn: str | None = None) -> dict[str, Any]:
        return await self._event_op(
            "unpin", room_id=room_id, event_id=event_id, txn=txn or uuid.uuid4().hex
        )

    async def forward(
        self, from_room: str, event_id: str, to_room: str, txn: str | None = None
    ) -> dict[str, Any]:
        """Copies a message you could see into another room; returns the copy."""
        return await self._event_op(
            "forward",
            from_room=from_room,
            event_id=event_id,
            to_room=to_room,
            txn=txn or uuid.uuid4().hex,
        )

    async def create_poll(
        self,
        room_id: str,
        question: str,
        options: list[str],
        *,
        multiple: bool = False,
        anonymous: bool = False,
        txn: str | None = None,
    ) -> dict[str, Any]:
        """Posts a poll; returns its message event."""
        return await self._event_op(
            "poll",
            room_id=room_id,
            question=question,
            options=options,
            multiple=multiple or None,
            anonymous=anonymous or None,
            txn=txn or uuid.uuid4().hex,
        )

    async def vote(self, room_id: str, event_id: str, choices: list[int]) -> dict[str, Any]:
        """Votes (replacing your earlier vote); returns the results, as ``poll_results``."""
        return await self.request("vote", room_id=room_id, event_id=event_id, choices=choices)  # type: ignore[no-any-return]

    async def close_poll(
        self, room_id: str, event_id: str, txn: str | None = None
    ) -> dict[str, Any]:
        return await self._event_op(
            "close_poll", room_id=room_id, event_id=event_id, txn=txn or uuid.uuid4().hex
        )

    async def poll_results(self, room_id: str, event_id: str) -> dict[str, Any]:
        """{"counts", "total_voters", "closed", "mine", "voters" (not anonymous polls), ...}."""
        return await self.request("poll_results", room_id=room_id, event_id=event_id)  # type: ignore[no-any-return]

    # -- calls (PROTOCOL.md "Calls"): online lessons, calls in chats, breakout rooms --------

    async def call_start(self, room_id: str) -> dict[str, Any]:
        """Start a call in a chat (or get the one running there); returns its state."""
        return (await self.request("call_start", room_id=room_id))["call"]  # type: ignore[no-any-return]

    async def call_join(
        self, call_id: str, offer: str | None = None, tracks: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """``{"joined": bool (false: in the waiting room), "answer": SDP or None, "call"}``;
        ``tracks``: mid -> audio, video or screen (PROTOCOL.md "Media")."""
        return await self.request("call_join", call_id=call_id, offer=offer, tracks=tracks)  # type: ignore[no-any-return]

    async def call_publish(
        self, call_id: str, offer: str, tracks: dict[str, str] | None = None
    ) -> str | None:
        """A new offer of your send transport; returns the SFU's answer."""
        result = await self.request("call_publish", call_id=call_id, offer=offer, tracks=tracks)
        return result["answer"]  # type: ignore[no-any-return]

    async def call_media_answer(self, call_id: str, version: int, answer: str) -> None:
        """Your answer to the SFU's ``media_offer`` push of that version."""
        await self.request("call_media_answer", call_id=call_id, version=version, answer=answer)

    async def call_leave(self, call_id: str) -> None:
        await self.request("call_leave", call_id=call_id)

    async def call(self, call_id: str) -> dict[str, Any]:
        """The call's state, as in the ``call`` push."""
        return (await self.request("call_get", call_id=call_id))["call"]  # type: ignore[no-any-return]

    async def call_media(self, call_id: str, kind: str, on: bool = True) -> None:
        """Your microphone (audio), camera (video) or screen share on or off."""
        await self.request("call_media", call_id=call_id, kind=kind, on=on)

    async def raise_hand(self, call_id: str) -> list[str]:
        return (await self.request("call_hand", call_id=call_id, raised=True))["hands"]  # type: ignore[no-any-return]

    async def lower_hand(self, call_id: str, user_id: str | None = None) -> list[str]:
        """Your hand, or (admins) someone else's; returns the hands still up, in order."""
        result = await self.request("call_hand", call_id=call_id, raised=False, user_id=user_id)
        return result["hands"]  # type: ignore[no-any-return]

    async def lower_hands(self, call_id: str) -> None:
        await self.request("call_lower_hands", call_id=call_id)

    async def call_permission(
        self,
        call_id: str,
        capability: str,
        allowed: bool | None,
        user_id: str | None = None,
        *,
        reset_personal: bool | None = None,
    ) -> dict[str, Any]:
        """Grant (True), revoke (False) or forget (None) a capability for one user or, without
        ``user_id``, for everyone (admins)."""
        result = await self.request(
            "call_permission",
            call_id=call_id,
            capability=capability,
            allowed=allowed,
            user_id=user_id,
            reset_personal=reset_personal,
        )
        return result["permissions"]  # type: ignore[no-any-return]

    async def call_mute(
        self, call_id: str, user_id: str | None = None, *, force: bool = False
    ) -> list[str]:
        """Ask (or with ``force`` make) a user, or everyone, mute; returns whom it asked."""
        result = await self.request(
            "call_mute", call_id=call_id, user_id=user_id, force=force or None
        )
        return result["asked"]  # type: ignore[no-any-return]

    async def call_remove(self, call_id: str, user_id: str) -> None:
        await self.request("call_remove", call_id=call_id, user_id=user_id)

    async def call_allow_back(self, call_id: str, user_id: str) -> None:
        await self.request("call_allow_back", call_id=call_id, user_id=user_id)

    async def call_admit(self, call_id: str, user_id: str | None = None) -> None:
        """Let one user (or everyone) in from the waiting room."""
        await self.request("call_admit", call_id=call_id, user_id=user_id)

    async def call_refuse(self, call_id: str, user_id: str) -> None:
        await self.request("call_refuse", call_id=call_id, user_id=user_id)

    async def call_waiting_room(self, call_id: str, on: bool) -> None:
        await self.request("call_waiting_room", call_id=call_id, on=on)

    async def call_admin(self, call_id: str, user_id: str, admin: bool = True) -> None:
        await self.request("call_admin", call_id=call_id, user_id=user_id, admin=admin)

    async def call_end(self, call_id: str) -> None:
        """End the call for everyone (admins)."""
        await self.request("call_end", call_id=call_id)

    async def call_record(self, call_id: str, on: bool = True) -> None:
        """Start or stop recording the call (admins); the file is posted in the call's chat."""
        await self.request("call_record", call_id=call_id, on=on)

    async def calls(self, from_ms: int | None = None, limit: int = 50) -> dict[str, Any]:
        """Your calls (lesson calls you are one of the people of, calls in your chats) by
        start time: ``{"calls": [...], "more": bool}``."""
        return await self.request("calls", from_ms=from_ms, limit=limit)  # type: ignore[no-any-return]

    async def breakout_plan(self, call_id: str, mode: str, **fields: Any) -> dict[str, Any]:
        """``mode``: hand (``rooms``), random (``room_count``, ``seed``), groups
        (``group_ids``) or self (``room_count``, ``capacity``); also ``names``,
        ``duration_s``. Returns ``{"breakout", "skipped"}``."""
        return await self.request("breakout_plan", call_id=call_id, mode=mode, **fields)  # type: ignore[no-any-return]

    async def _breakout(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self.request(op, **fields)  # type: ignore[no-any-return]

    async def breakout_start(self, call_id: str) -> dict[str, Any]:
        return (await self._breakout("breakout_start", call_id=call_id))["breakout"]  # type: ignore[no-any-return]

    async def breakout_move(self, call_id: str, user_id: str, room: str) -> dict[str, Any]:
        """Move a user to a breakout room (``room``: its id, or ``main``)."""
        result = await self._breakout("breakout_move", call_id=call_id, user_id=user_id, room=room)
        return result["breakout"]  # type: ignore[no-any-return]

    async def breakout_choose(self, call_id: str, room: str) -> dict[str, Any]:
        result = await self._breakout("breakout_choose", call_id=call_id, room=room)
        return result["breakout"]  # type: ignore[no-any-return]

    async def breakout_visit(self, call_id: str, room: str) -> dict[str, Any]:
        result = await self._breakout("breakout_visit", call_id=call_id, room=room)
        return result["breakout"]  # type: ignore[no-any-return]

    async def breakout_broadcast(self, call_id: str, text: str) -> int:
        """A message to every room's chat; returns how many rooms it went to."""
        result = await self._breakout("breakout_broadcast", call_id=call_id, text=text)
        return result["rooms"]  # type: ignore[no-any-return]

    async def breakout_extend(self, call_id: str, duration_s: int) -> dict[str, Any]:
        result = await self._breakout("breakout_extend", call_id=call_id, duration_s=duration_s)
        return result["breakout"]  # type: ignore[no-any-return]

    async def breakout_close(self, call_id: str, *, immediate: bool = False) -> dict[str, Any]:
        result = await self._breakout(
            "breakout_close", call_id=call_id, immediate=immediate or None
        )
        return result["breakout"]  # type: ignore[no-any-return]

    async def whiteboard_draw(
        self, call_id: str, item: dict[str, Any], board: str | None = None
    ) -> int:
        """Draw on the board of your room (or, admins, ``board``); returns the item's seq."""
        result = await self.request("whiteboard_draw", call_id=call_id, item=item, board=board)
        return result["seq"]  # type: ignore[no-any-return]

    async def whiteboard_clear(self, call_id: str, board: str | None = None) -> int:
        result = await self.request("whiteboard_clear", call_id=call_id, board=board)
        return result["seq"]  # type: ignore[no-any-return]

    async def whiteboard(self, call_id: str, board: str | None = None) -> dict[str, Any]:
        """What a board shows: ``{"board", "items", "next_seq", "cleared_seq"}``."""
        return await self.request("whiteboard", call_id=call_id, board=board)  # type: ignore[no-any-return]

    async def next_call_push(
        self,
        match: Any = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The next ``call`` push (its value) for which ``match(value)`` is true; every push
        before it, of any kind, is taken and dropped."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            push = await asyncio.wait_for(self._pushes.get(), left)
            value = push.get("call")
            if value is not None and (match is None or match(value)):
                return value  # type: ignore[no-any-return]

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


# -- invite links and QR codes (see "Invite links (HTTP)" in PROTOCOL.md)


def invite_code(url_or_code: str) -> str:
    """The code of an invite URL (``https://host/join/CODE``), or the code itself."""
    return url_or_code.strip().rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0].split("#", 1)[0]


def _room_links_path(room_id: str) -> str:
    from urllib.parse import quote

    return f"/v1/rooms/{quote(room_id, safe='')}/invite-links"


async def create_invite_link(
    server: str,
    token: str,
    room_id: str,
    *,
    expires_in_s: int | None = None,
    max_uses: int | None = None,
    approval: bool = False,
) -> dict[str, Any]:
    """A new link: {"link_id", "code", "url", "qr_png", "qr_svg", ...}; the code is shown
    only now."""
    body: dict[str, Any] = {"approval": approval}
    if expires_in_s is not None:
        body["expires_in_s"] = expires_in_s
    if max_uses is not None:
        body["max_uses"] = max_uses
    return await _http(server, "POST", _room_links_path(room_id), token=token, body=body)  # type: ignore[no-any-return]


async def invite_links(server: str, token: str, room_id: str) -> list[dict[str, Any]]:
    """The chat's links that can still be used (codes are never shown again)."""
    return (await _http(server, "GET", _room_links_path(room_id), token=token))["links"]  # type: ignore[no-any-return]


async def revoke_invite_link(server: str, token: str, room_id: str, link_id: str) -> dict[str, Any]:
    from urllib.parse import quote

    path = f"{_room_links_path(room_id)}/{quote(link_id, safe='')}"
    return await _http(server, "DELETE", path, token=token)  # type: ignore[no-any-return]


async def invite_preview(server: str, url_or_code: str) -> dict[str, Any]:
    """What a link leads to, without joining: {"name", "members", "approval"}."""
    from urllib.parse import quote

    path = "/v1/invites/" + quote(invite_code(url_or_code), safe="")
    return await _http(server, "GET", path)  # type: ignore[no-any-return]


async def join_by_link(server: str, token: str, url_or_code: str) -> dict[str, Any]:
    """Joins by a link, or asks to (membership "knock") when it needs approval:
    {"room_id", "membership", "event"}."""
    from urllib.parse import quote

    path = f"/v1/invites/{quote(invite_code(url_or_code), safe='')}/join"
    return await _http(server, "POST", path, token=token)  # type: ignore[no-any-return]


async def invite_qr(server: str, url_or_code: str, kind: str = "png") -> bytes:
    """The QR code of a link as PNG or SVG bytes."""
    from urllib.parse import quote

    path = f"/v1/invites/{quote(invite_code(url_or_code), safe='')}/qr.{kind}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30.0)) as session,
        session.get(server.rstrip("/") + path) as resp,
    ):
        data = await resp.read()
        if resp.status >= 400:
            err = await resp.json(content_type=None)
            raise ClientError(err["error"]["code"], err["error"]["message"])
    return data


# -- files (see "Files (HTTP)" in PROTOCOL.md)


def guess_type(path: str | Path) -> str:
    """The media type a file's extension suggests (the server checks it against the bytes)."""
    import mimetypes

    return mimetypes.guess_type(str(path))[0] or "application/octet-stream"


async def _raise_for_error(resp: aiohttp.ClientResponse) -> None:
    if resp.status >= 400:
        data = await resp.json(content_type=None)
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise ClientError(err.get("code", f"http_{resp.status}"), err.get("message", ""))


async def upload(
    server: str,
    token: str,
    path: str | Path,
    *,
    name: str | None = None,
    content_type: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Streams a file to ``POST /v1/files``; returns the server's record of it. The same
    file uploaded again under the same name returns the same id."""
    path = Path(path)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": content_type or guess_type(path),
    }
    params = {"name": name or path.name}
    with open(path, "rb") as fh:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(
                server.rstrip("/") + "/v1/files", data=fh, headers=headers, params=params
            ) as resp,
        ):
            await _raise_for_error(resp)
            return await resp.json()  # type: ignore[no-any-return]


async def download(
    server: str,
    token: str,
    file_id: str,
    dest: str | Path,
    *,
    thumbnail: bool = False,
    timeout: float = 600.0,
) -> Path:
    """Saves a file (or a picture's thumbnail) to ``dest``; into it, under the file's own
    name, when ``dest`` is a directory. Written to a ``.part`` file first, then renamed."""
    import os
    from urllib.parse import quote

    target = Path(dest)
    path = "/v1/files/" + quote(file_id, safe="") + ("/thumbnail" if thumbnail else "")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(
            server.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        await _raise_for_error(resp)
        if target.is_dir():
            # The server's name has no path in it; Path.name makes sure of that here too.
            disposition = resp.content_disposition
            name = Path(disposition.filename or "").name if disposition else ""
            target = target / (name if name not in ("", ".", "..") else file_id)
        part = target.with_name(target.name + ".part")
        try:
            with open(part, "wb") as fh:
                async for chunk in resp.content.iter_chunked(1 << 16):
                    fh.write(chunk)
            os.replace(part, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    return target
