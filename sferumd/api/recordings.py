"""Recording calls (R20): the ``call_record`` websocket op into the daemon's op table, the
recordings a restart interrupted finished at start-up (after the calls are loaded), and the
running recorders written out at shutdown. The decisions are in services.calls.recording(s).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol import frames as f
from sferumd.api.app import DAEMON
from sferumd.api.calls import CALLS
from sferumd.api.files import FILES
from sferumd.model import Device
from sferumd.services.calls.errors import CallError
from sferumd.services.calls.recordings import CallRecordings
from sferumd.services.calls.service import wire_error

RECORDINGS = web.AppKey("recordings", CallRecordings)


def routes(app: web.Application) -> None:
    """After api.files and api.calls: it needs the files service and the call service."""
    daemon = app[DAEMON]
    recordings = CallRecordings(app[CALLS], app[FILES], daemon.settings.data_path)
    app[RECORDINGS] = recordings

    async def call_record(device: Device, req: f.CallRecord) -> dict[str, Any]:
        try:
            return await recordings.record(device, req)
        except CallError as err:
            raise wire_error(err) from None

    daemon.ops["call_record"] = call_record
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)


async def _start(app: web.Application) -> None:
    await app[RECORDINGS].recover()


async def _stop(app: web.Application) -> None:
    await app[RECORDINGS].suspend()
