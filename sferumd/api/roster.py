"""Journal HTTP for the roster (``/journal/v1/events``, ``/journal/v1/snapshot``): signed
like every journal request; the body may be large (``journal.max_body_bytes``). Decisions
live in services.roster.service."""

from __future__ import annotations

from aiohttp import web

from sferumd.api.app import DAEMON
from sferumd.api.auth import errors, json_object
from sferumd.api.journal import signed


def routes(app: web.Application) -> None:
    app.router.add_post("/journal/v1/events", errors(events))
    app.router.add_post("/journal/v1/snapshot", errors(snapshot))


async def events(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request, daemon.settings.journal.max_body_bytes)
    return web.json_response(await daemon.roster.deliver(journal, json_object(raw)))


async def snapshot(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request, daemon.settings.journal.max_body_bytes)
    return web.json_response(await daemon.roster.snapshot(journal, json_object(raw)))
