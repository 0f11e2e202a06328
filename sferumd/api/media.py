"""The embedded SFU in the daemon: built when ``[media] enabled``, its pushes sent as ``call``
pushes through the hub, stopped on shutdown, and (``[media] debug_stats``, loopback callers
only) its counters at ``GET /debug/v1/media`` for tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from media.sfu import Sfu
from protocol import frames as f
from sferumd.api.app import Daemon
from sferumd.api.auth import errors, require_loopback
from sferumd.hub import Frame

SFU = web.AppKey("sfu", Sfu)


def build(app: web.Application, daemon: Daemon) -> Sfu | None:
    settings = daemon.settings.media
    if not settings.enabled:
        return None
    hub = daemon.hub

    def notify(call_id: str, users: list[str], body: dict[str, Any]) -> None:
        hub.fan_out(Frame({f.PUSH_CALL: {"call_id": call_id, **body}}), users)

    sfu = Sfu(settings, notify)
    app[SFU] = sfu
    if settings.debug_stats:
        app.router.add_get("/debug/v1/media", errors(stats))
    app.on_shutdown.append(_stop)
    return sfu


async def _stop(app: web.Application) -> None:
    await app[SFU].stop()


async def stats(request: web.Request) -> web.Response:
    require_loopback(request, "media statistics")
    return web.json_response(request.app[SFU].stats())
