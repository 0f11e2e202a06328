"""The websocket edge at ``/v1/ws``: one ``Session`` per connection.

Frames are decoded and validated here; a rejected frame gets an error response and the
connection stays open, unless the peer keeps sending bad frames (close 4009). Requests run as
tasks, at most ``max_inflight`` per connection; they start in arrival order, so a
connection's writes are ordered as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from protocol import frames as f
from protocol import validate
from protocol.codec import SUBPROTOCOLS, Codec
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from sferumd.api.app import DAEMON, Daemon
from sferumd.hub import Connection, event_frame
from sferumd.model import Device
from sferumd.services.rooms import now_ms
from sferumd.services.sync import catch_up

log = logging.getLogger(__name__)

Handler = Callable[[Device, Any], Awaitable[Any]]


def _pick_subprotocol(request: web.Request) -> Codec | None:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    for name in (p.strip() for p in offered.split(",")):
        if name in SUBPROTOCOLS:
            return SUBPROTOCOLS[name]
    return None


async def handler(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    codec = _pick_subprotocol(request)
    if codec is None:
        return web.json_response(
            {
                "error": {
                    "code": ErrorCode.BAD_FRAME.value,
                    "message": "offer a subprotocol: " + " or ".join(SUBPROTOCOLS),
                }
            },
            status=400,
        )
    ws = web.WebSocketResponse(
        protocols=(codec.subprotocol,),
        max_msg_size=daemon.settings.limits.max_frame_bytes,
        compress=False,
    )
    writer = await ws.prepare(request)
    assert request.transport is not None
    _keepalive(request.transport, daemon.settings.websocket.heartbeat_s)
    session = Session(daemon, ws, request.transport, codec, writer.drain)
    daemon.sessions.add(session)
    try:
        await session.run()
    finally:
        daemon.sessions.discard(session)
        session.detach()
    return ws


def build_ops(daemon: Daemon) -> dict[str, Handler]:
    """The op table, built once per daemon (not per connection: idle sockets stay small)."""
    rooms = daemon.rooms
    eph = daemon.ephemeral

    async def event(coro: Awaitable[Any]) -> dict[str, Any]:
        return {"event": (await coro).to_wire()}

    async def typing(d: Device, r: f.Typing) -> dict[str, Any]:
        eph.typing(d, r)
        return {}

    async def read(d: Device, r: f.Read) -> dict[str, Any]:
        await eph.read(d, r)
        return {}

    async def create_room(d: Device, r: f.CreateRoom) -> dict[str, Any]:
        return {"room_id": await rooms.create_room(d, r)}

    async def room_list(d: Device, r: f.Rooms) -> dict[str, Any]:
        return {"rooms": await eph.room_summaries(d)}

    async def members(d: Device, r: f.Members) -> dict[str, Any]:
        return {"members": rooms.members(d, r)}

    async def presence(d: Device, r: f.Presence) -> dict[str, Any]:
        return {"presence": eph.presence(d, r)}

    async def profiles(d: Device, r: f.Profiles) -> dict[str, Any]:
        return await daemon.profiles.visible(d.user_id, r.user_ids)

    def ev(method: Callable[[Device, Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        return lambda d, r: event(method(d, r))

    return {
        "create_room": create_room,
        "rooms": room_list,
        "members": members,
        "invite": ev(rooms.invite),
        "join": ev(rooms.join),
        "leave": ev(rooms.leave),
        "kick": ev(rooms.kick),
        "ban": ev(rooms.ban),
        "unban": ev(rooms.unban),
        "send": ev(rooms.send),
        "state": ev(rooms.set_state),
        "redact": ev(rooms.redact),
        "history": rooms.history,
        "typing": typing,
        "read": read,
        "presence": presence,
        "profiles": profiles,
    }


def _keepalive(transport: asyncio.Transport, idle_s: float) -> None:
    """Dead peers are found by the kernel's TCP keepalive rather than websocket pings: no
    timer per connection in the process, which keeps idle connections small."""
    sock = transport.get_extra_info("socket")
    if sock is None or idle_s <= 0:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; other systems keep their defaults
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(idle_s)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(idle_s / 3)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class _Bucket:
    """Token bucket: ``rate`` per second, up to ``burst``."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.tokens = rate, burst, burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Session:
    # Slots keep an idle connection small (the target is <= 16 KiB with aiohttp's share).
    __slots__ = (
        "auth_timer",
        "authenticating",
        "bad_frames",
        "codec",
        "conn",
        "daemon",
        "device",
        "drain",
        "inflight",
        "limits",
        "requests",
        "resume",
        "ws",
    )

    def __init__(
        self,
        daemon: Daemon,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        codec: Codec,
        drain: Callable[[], Awaitable[None]],
    ):
        self.daemon = daemon
        self.ws = ws
        self.codec = codec
        self.drain = drain
        self.limits = daemon.settings.limits
        cfg = daemon.settings.websocket
        self.conn = Connection(daemon.hub, transport, codec.binary, self._close)
        self.device: Device | None = None
        self.authenticating = False
        self.requests = _Bucket(cfg.rate_per_s, cfg.rate_burst)
        self.bad_frames = _Bucket(cfg.bad_frames_per_minute / 60, cfg.bad_frames_per_minute)
        # Requests running now; at max_inflight the read loop waits on ``resume``. Their
        # tasks live in daemon.tasks (shutdown waits for them), not in a set per session.
        self.inflight = 0
        self.resume: asyncio.Future[None] | None = None
        self.auth_timer: asyncio.TimerHandle | None = None

    # -- the read loop ---------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.auth_timer = loop.call_later(
            self.daemon.settings.websocket.auth_timeout_s, self._auth_timeout
        )
        try:
            async for msg in self.ws:
                if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    await self._on_frame(msg.type == WSMsgType.BINARY, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
            if self.ws.close_code == CloseCode.MESSAGE_TOO_BIG:
                self.daemon.metrics.flood_closes += 1
        finally:
            if self.auth_timer is not None:
                self.auth_timer.cancel()

    def _auth_timeout(self) -> None:
        if self.device is None:
            self.conn.close(CloseCode.AUTH_TIMEOUT, "no successful auth in time")

    async def _on_frame(self, binary: bool, data: str | bytes) -> None:
        try:
            if binary != self.codec.binary:
                kind = "binary" if binary else "text"
                raise ProtocolError(
                    ErrorCode.BAD_FRAME, f"{kind} frame on subprotocol {self.codec.subprotocol}"
                )
            raw = data if isinstance(data, bytes) else data.encode()
            env = validate.parse(self.codec.decode(raw), self.limits)
            if not self.requests.take():
                raise ProtocolError(ErrorCode.RATE_LIMITED, "too many requests; slow down", env.id)
            if self.device is None and env.op not in f.UNAUTHENTICATED_OPS:
                raise ProtocolError(ErrorCode.NOT_AUTHENTICATED, "authenticate first", env.id)
        except ProtocolError as err:
            self._reject(err)
            return
        self.daemon.metrics.requests[env.op] += 1
        if self.inflight >= self.daemon.settings.websocket.max_inflight:
            self.resume = asyncio.get_running_loop().create_future()
            await self.resume  # stop reading until a request finishes: backpressure
        self.inflight += 1
        self.daemon.spawn(self._handle(env), self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight -= 1
        if self.resume is not None and not self.resume.done():
            self.resume.set_result(None)

    def _reject(self, err: ProtocolError, counts: bool = True) -> None:
        self.daemon.metrics.errors[err.code.value] += 1
        self.conn.send(err.to_frame())
        if counts and not self.bad_frames.take():
            self.daemon.metrics.flood_closes += 1
            self.conn.close(CloseCode.FLOOD, "too many rejected frames")

    # -- dispatch --------------------------------------------------------------------------

    async def _handle(self, env: f.Envelope) -> None:
        try:
            if env.op == "auth":
                await self._auth(env)
                return
            if env.op == "ping":
                result: Any = {"ts": now_ms()}
            else:
                assert self.device is not None
                result = await self.daemon.ops[env.op](self.device, env.request)
            self.conn.send(f.ok(env.id, result))
        except ProtocolError as err:
            err.request_id = env.id
            # A request well-formed but refused by the rules is no sign of a broken client.
            self._reject(err, counts=False)
        except Exception:
            log.exception("request failed", extra={"op": env.op})
            self._reject(ProtocolError(ErrorCode.INTERNAL, "internal error", env.id), counts=False)

    # -- auth and catch-up -----------------------------------------------------------------

    async def _auth(self, env: f.Envelope) -> None:
        req = env.request
        assert isinstance(req, f.Auth)
        if self.device is not None or self.authenticating:
            raise ProtocolError(ErrorCode.ALREADY_AUTHENTICATED, "this connection is authenticated")
        hub = self.daemon.hub
        if req.since is not None and req.since > hub.committed_pos:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"since {req.since} is beyond the server's newest position {hub.committed_pos}",
            )
        self.authenticating = True
        try:
            device = await self.daemon.store.device_for_token(req.token)
        finally:
            self.authenticating = False
        if device is None:
            self._reject(ProtocolError(ErrorCode.AUTH_FAILED, "unknown or revoked token", env.id))
            return
        if self.conn.closed:
            return  # the socket went away during the lookup: attaching now would leak it
        self.device = device
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        conn = self.conn
        conn.user_id, conn.device_id = device.user_id, device.device_id
        # Live events from here on wait in the backlog until the catch-up below is out.
        conn.catching_up = True
        upto = hub.committed_pos
        first = hub.attach(conn)
        # Committed with the next batch; while the store is closing (shutdown) it is skipped,
        # last-seen being only informational.
        with contextlib.suppress(RuntimeError):
            self.daemon.store.touch_device(device.device_id)
        conn.send(
            f.ok(env.id, {"user_id": device.user_id, "device_id": device.device_id, "pos": upto})
        )
        if first:
            self.daemon.ephemeral.went_online(device.user_id)
        try:
            await self._catch_up(req.since or 0, upto, req.limit)
        except ConnectionError:
            pass  # the client went away mid catch-up; it resumes from what it got
        except Exception:
            # The auth was answered already; a half-sent catch-up can't be finished here,
            # but the client can resume from the last position it received.
            log.exception("catch-up failed", extra={"user_id": device.user_id})
            conn.close(CloseCode.INTERNAL, "catch-up failed: reconnect and resume")

    async def _catch_up(self, since: int, upto: int, limit: int | None) -> None:
        conn = self.conn
        assert conn.user_id is not None
        per_room = self.limits.sync_limit_default if limit is None else limit
        result = await catch_up(self.daemon.store, conn.user_id, since, upto, per_room)
        for room_id, before in sorted(result.gaps.items()):
            conn.send({f.PUSH_GAP: {"room_id": room_id, "after": since, "before": before}})
        chunk = self.daemon.settings.websocket.catchup_chunk
        for i in range(0, len(result.events), chunk):
            for ev in result.events[i : i + chunk]:
                conn.send_frame(event_frame(ev))
            conn.flush()
            await self.drain()
            if conn.closed:
                return
        conn.send({f.PUSH_SYNCED: {"pos": upto}})
        backlog, conn.backlog = conn.backlog, []
        conn.catching_up = False
        for frame in backlog:
            if frame.pos == 0 or frame.pos > upto:
                conn.send_frame(frame)

    # -- closing ---------------------------------------------------------------------------

    def _close(self, code: int, reason: str) -> None:
        if not self.ws.closed:
            if code != CloseCode.GOING_AWAY:  # shutdown closes everyone; that is logged once
                log.info(
                    "closing connection",
                    extra={
                        "code": code,
                        "reason": reason,
                        "user_id": self.conn.user_id,
                        "device_id": self.conn.device_id,
                    },
                )
            self.daemon.spawn(self.ws.close(code=code, message=reason.encode()))

    def detach(self) -> None:
        self.conn.closed = True  # also tells a pending auth not to attach
        if self.daemon.hub.detach(self.conn):
            assert self.conn.user_id is not None
            self.daemon.ephemeral.went_offline(self.conn.user_id)
        if self.device is not None:
            for hook in self.daemon.on_detach:  # services that follow devices (calls)
                hook(self.device)
