"""HTTP of online lessons: the journal's videoconference API under ``/journal/v1/`` (signed
like every journal request; decisions in services.calls.lessons), and the test clock
(``/debug/v1/clock``, only with ``[debug] test_clock`` and only from the loopback address).

``routes`` also makes the call service, puts the call ops (api.call_ops) into the daemon's
websocket op table, follows devices' disconnects, and starts the scheduler once the store is
open (stopping it, with everybody in a call leaving, on shutdown).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sferumd.api import call_ops, media
from sferumd.api.app import DAEMON
from sferumd.api.auth import errors, json_object, read_body, require_loopback
from sferumd.api.journal import base_url, signed
from sferumd.services.auth import AuthError
from sferumd.services.calls.boards import Whiteboards
from sferumd.services.calls.breakouts import BreakoutRooms
from sferumd.services.calls.lessons import LessonCalls
from sferumd.services.calls.scheduler import Clock
from sferumd.services.calls.service import CallService
from sferumd.services.webhooks import JournalWebhooks
from sferumd.store.calls import CallStore
from sferumd.store.roster import RosterStore

CALLS = web.AppKey("calls", CallService)
LESSONS = web.AppKey("lessons", LessonCalls)
MAX_CLOCK_MS = 2**53 - 1
MAX_BODY = 64 * 1024  # a create body lists at most 2000 blocked accounts


def routes(app: web.Application) -> None:
    daemon = app[DAEMON]
    roster_store = RosterStore(daemon.store)
    calls = CallService(
        store=CallStore(daemon.store),
        db=daemon.store,
        rooms=daemon.rooms,
        hub=daemon.hub,
        roster_store=roster_store,
        settings=daemon.settings.calls,
        webhooks=JournalWebhooks(daemon.settings.journal),
        clock=Clock(),
        spawn=daemon.spawn,
        media=media.build(app, daemon),  # the SFU, when [media] enabled
    )
    app[CALLS] = calls
    app[LESSONS] = LessonCalls(calls, daemon.roster, roster_store)
    daemon.ops.update(
        call_ops.build(calls, BreakoutRooms(calls, daemon.roster), Whiteboards(calls))
    )
    daemon.on_detach.append(calls.on_detach)
    vc = "/journal/v1/videoconferences"
    one = vc + "/{videoconference_id}"
    app.router.add_post(vc, errors(create))
    app.router.add_get(one, errors(get))
    app.router.add_patch(one, errors(edit))
    app.router.add_delete(one, errors(delete))
    app.router.add_post(one + "/end", errors(end))
    app.router.add_put(one + "/participants/{account_id}", errors(block))
    app.router.add_get(one + "/attendance", errors(attendance))
    app.router.add_get("/journal/v1/accounts/{account_id}/videoconferences", errors(of_account))
    if daemon.settings.debug.test_clock:
        app.router.add_get("/debug/v1/clock", errors(get_clock))
        app.router.add_post("/debug/v1/clock", errors(set_clock))
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)


async def _start(app: web.Application) -> None:
    await app[CALLS].load()


async def _stop(app: web.Application) -> None:
    await app[CALLS].stop(app[DAEMON].settings.server.shutdown_grace_s)


# -- the journal's videoconferences -----------------------------------------------------------


def _id(request: web.Request) -> str:
    return request.match_info["videoconference_id"]


async def create(request: web.Request) -> web.Response:
    journal, raw = await signed(request, MAX_BODY)
    made = await request.app[LESSONS].create(journal, json_object(raw), base_url(request))
    return web.json_response(made, status=201)


async def get(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    return web.json_response(
        await request.app[LESSONS].get(journal, _id(request), base_url(request))
    )


async def edit(request: web.Request) -> web.Response:
    journal, raw = await signed(request)
    body = json_object(raw)
    return web.json_response(
        await request.app[LESSONS].edit(journal, _id(request), body, base_url(request))
    )


async def delete(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    return web.json_response(
        await request.app[LESSONS].delete(journal, _id(request), base_url(request))
    )


async def end(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    return web.json_response(
        await request.app[LESSONS].end(journal, _id(request), base_url(request))
    )


async def block(request: web.Request) -> web.Response:
    journal, raw = await signed(request)
    account = request.match_info["account_id"]
    return web.json_response(
        await request.app[LESSONS].set_blocked(
            journal, _id(request), account, json_object(raw), base_url(request)
        )
    )


async def attendance(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    return web.json_response(await request.app[LESSONS].attendance(journal, _id(request)))


async def of_account(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    account = request.match_info["account_id"]
    return web.json_response(
        await request.app[LESSONS].of_account(journal, account, base_url(request))
    )


# -- the test clock ----------------------------------------------------------------------------


def _clock_json(calls: CallService) -> dict[str, Any]:
    return {"now_ms": calls.clock.now_ms(), "fixed": calls.clock.fixed}


async def get_clock(request: web.Request) -> web.Response:
    require_loopback(request, "the test clock")
    return web.json_response(_clock_json(request.app[CALLS]))


async def set_clock(request: web.Request) -> web.Response:
    """``{"now_ms": MS}`` stops the clock there (``null``: real time again); answers once the
    scheduler has done everything due at that time."""
    require_loopback(request, "the test clock")
    body = json_object(await read_body(request))
    now = body.get("now_ms")
    if set(body) != {"now_ms"} or not (
        now is None or (type(now) is int and 0 <= now <= MAX_CLOCK_MS)
    ):
        raise AuthError(400, "invalid_field", "send {now_ms: milliseconds since the epoch}")
    calls = request.app[CALLS]
    calls.clock.set(now)
    await calls.scheduler.run_now()
    return web.json_response(_clock_json(calls))
