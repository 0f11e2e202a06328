"""The aiohttp application: routes, start-up (store, state) and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from protocol.errors import CloseCode
from sferumd import __version__
from sferumd.config import Settings
from sferumd.hub import Hub
from sferumd.metrics import Metrics
from sferumd.model import Device
from sferumd.services.auth import AuthService, load_secret
from sferumd.services.ephemeral import Ephemeral
from sferumd.services.linking import LinkingService
from sferumd.services.profiles import ProfileDirectory
from sferumd.services.rooms import RoomService
from sferumd.services.roster.journal_chats import JournalChats
from sferumd.services.roster.service import RosterService
from sferumd.services.sms import build_gateway
from sferumd.store import SqliteStore
from sferumd.store.roster import RosterStore

if TYPE_CHECKING:
    from sferumd.api.ws import Session

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    """Everything one running sferumd owns."""

    settings: Settings
    store: SqliteStore
    hub: Hub
    metrics: Metrics
    rooms: RoomService
    ephemeral: Ephemeral
    auth: AuthService
    linking: LinkingService
    profiles: ProfileDirectory
    roster: RosterService
    journal_chats: JournalChats
    sessions: set[Session] = field(default_factory=set)
    ops: dict[str, Any] = field(default_factory=dict)  # websocket op table, see api.ws
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # requests and closes running
    # Called when a device's connection closes (services.calls: the device leaves its calls).
    on_detach: list[Callable[[Device], None]] = field(default_factory=list)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        done: Callable[[asyncio.Task[Any]], None] | None = None,
    ) -> None:
        """Run a task the daemon keeps track of (shutdown waits for these)."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if done is not None:
            task.add_done_callback(done)

    stopped: asyncio.Event = field(default_factory=asyncio.Event)


DAEMON = web.AppKey("daemon", Daemon)


def build_daemon(settings: Settings) -> Daemon:
    metrics = Metrics()
    store = SqliteStore(
        settings.db_path,
        synchronous=settings.store.synchronous.upper(),
        max_batch=settings.store.max_batch,
    )
    hub = Hub(
        metrics,
        max_queue_bytes=settings.websocket.max_queue_bytes,
        max_backlog=settings.websocket.max_backlog,
    )
    rooms = RoomService(store, hub, settings.limits)
    auth = AuthService(
        store,
        hub,
        build_gateway(settings.auth),
        settings.auth,
        load_secret(settings.secret_path),
    )
    j = settings.journal
    roster_store = RosterStore(store)
    roster = RosterService(
        roster_store, rooms, j.max_changes, j.max_snapshot_entities, 4 * j.max_body_bytes
    )
    # Linking changes who is in the journal's chats: reconcile before answering the person.
    linking = LinkingService(store, j, on_change=roster.reconcile)
    return Daemon(
        settings,
        store,
        hub,
        metrics,
        rooms,
        Ephemeral(store, hub, rooms),
        auth,
        linking,
        ProfileDirectory(store, rooms),
        roster,
        JournalChats(roster, roster_store, rooms),
    )


def create_app(settings: Settings) -> web.Application:
    from sferumd.api import (
        auth,
        calls,
        files,
        invites,
        journal,
        link,
        messages,
        pages,
        recordings,
        roster,
        search,
        ws,
    )

    app = web.Application(client_max_size=settings.limits.max_frame_bytes)
    daemon = build_daemon(settings)
    app[DAEMON] = daemon
    daemon.ops.update(ws.build_ops(daemon))
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/ws", ws.handler)
    auth.routes(app)
    journal.routes(app)
    link.routes(app)
    pages.routes(app)
    roster.routes(app)
    invites.routes(app)  # invite links, QR codes; the chat ops (api.chat_ops) into daemon.ops
    files.routes(app)  # uploads and downloads; hooks attachments into the send path
    messages.routes(app)  # replies, mentions, edits, reactions, pins, forwards, polls
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    # After the hooks above: search starts once the store is open and stops before it closes.
    search.routes(app)
    # Online lessons and calls: the journal's videoconferences, the call ops, the scheduler
    # (started once the store is open and the rooms loaded).
    calls.routes(app)
    recordings.routes(app)  # call_record; recordings a restart cut short finished at start-up
    return app


async def _start(app: web.Application) -> None:
    daemon = app[DAEMON]
    await daemon.store.open()
    await daemon.rooms.load()
    await daemon.roster.load()
    daemon.store.writer_task.add_done_callback(lambda t: _writer_done(daemon, t))
    log.info("ready", extra={"pos": daemon.hub.committed_pos, "db": str(daemon.settings.db_path)})


def _writer_done(daemon: Daemon, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        daemon.stopped.set()  # a failed commit stops the daemon; see SqliteStore._write_loop


async def _shutdown(app: web.Application) -> None:
    """Close every websocket with 1001 (clients resume elsewhere or later) and let the
    requests already running finish, so everything acknowledged is committed."""
    daemon = app[DAEMON]
    for session in list(daemon.sessions):
        session.conn.close(CloseCode.GOING_AWAY, "server shutting down")
    if daemon.tasks:
        await asyncio.wait(list(daemon.tasks), timeout=daemon.settings.server.shutdown_grace_s)


async def _cleanup(app: web.Application) -> None:
    await app[DAEMON].auth.gateway.close()
    await app[DAEMON].linking.close(app[DAEMON].settings.server.shutdown_grace_s)
    await app[DAEMON].store.close()
    log.info("stopped")


async def health(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return web.json_response(
        {"status": "ok", "version": __version__, "pos": daemon.hub.committed_pos}
    )


async def metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    daemon.metrics.connections = len(daemon.sessions)
    daemon.metrics.commits = daemon.store.batches
    return web.Response(text=daemon.metrics.render(), content_type="text/plain", charset="utf-8")
