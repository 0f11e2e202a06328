"""The ``search`` websocket op (services.search), hooked into the daemon's op table.

``routes`` is called after the daemon's own start-up hook is registered, so the index's
connection and chores start once the store is open, and stop (on shutdown) before it
closes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol import frames as f
from sferumd.api.app import DAEMON
from sferumd.model import Device
from sferumd.services.search import SearchService
from sferumd.store.search import SearchStore

SEARCH = web.AppKey("search", SearchService)


def routes(app: web.Application) -> None:
    daemon = app[DAEMON]
    service = SearchService(
        SearchStore(daemon.store), daemon.hub, daemon.settings.search, daemon.settings.limits
    )
    app[SEARCH] = service

    async def search(d: Device, r: f.Search) -> dict[str, Any]:
        return await service.search(d, r)

    daemon.ops["search"] = search
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)


async def _start(app: web.Application) -> None:
    await app[SEARCH].start()


async def _stop(app: web.Application) -> None:
    await app[SEARCH].stop()
