"""Journal HTTP for the roster (``/journal/v1/events``, ``/journal/v1/snapshot``; the body
may be large, up to ``journal.max_body_bytes``) and for the journal's chats (an account's
chats, subject chats). Signed like every journal request; decisions live in
services.roster."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from sferumd.api.app import DAEMON
from sferumd.api.auth import errors, json_object
from sferumd.api.journal import base_url, signed
from sferumd.services.auth import AuthError


def routes(app: web.Application) -> None:
    app.router.add_post("/journal/v1/events", errors(events))
    app.router.add_post("/journal/v1/snapshot", errors(snapshot))
    app.router.add_post("/journal/v1/oneroster", errors(oneroster))
    app.router.add_get("/journal/v1/accounts/{account_id}/chats", errors(account_chats))
    app.router.add_post("/journal/v1/subject-chats", errors(create_chat))
    chat = "/journal/v1/subject-chats/{chat_id}"
    app.router.add_get(chat, errors(get_chat))
    app.router.add_patch(chat, errors(rename_chat))
    app.router.add_delete(chat, errors(delete_chat))
    app.router.add_post(chat + "/members", errors(edit_members))


async def events(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request, daemon.settings.journal.max_body_bytes)
    return web.json_response(await daemon.roster.deliver(journal, json_object(raw)))


async def snapshot(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request, daemon.settings.journal.max_body_bytes)
    return web.json_response(await daemon.roster.snapshot(journal, json_object(raw)))


async def oneroster(request: web.Request) -> web.StreamResponse:
    """A OneRoster CSV zip as the body. With ``Accept: application/x-ndjson`` the answer is a
    stream of ``{"progress": {"phase", "done", "total"}}`` lines and a last ``{"result"}``
    (or ``{"error"}``) line, so a client can draw a progress bar for a big import."""
    daemon = request.app[DAEMON]
    journal, raw = await signed(request, daemon.settings.journal.max_body_bytes)
    if "application/x-ndjson" not in request.headers.get("Accept", ""):
        return web.json_response(await daemon.roster.import_oneroster(journal, raw))
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    last = [0.0]

    def progress(phase: str, done: int, total: int) -> None:
        # Called from the parsing thread: at most ten lines a second reach the client.
        now = time.monotonic()
        if done < total and now - last[0] < 0.1:
            return
        last[0] = now
        line = {"progress": {"phase": phase, "done": done, "total": total}}
        loop.call_soon_threadsafe(lines.put_nowait, line)

    work = asyncio.ensure_future(daemon.roster.import_oneroster(journal, raw, progress))
    while not work.done():
        waiter = asyncio.ensure_future(lines.get())
        await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            await _write_line(response, waiter.result())
        else:
            waiter.cancel()
    while not lines.empty():
        await _write_line(response, lines.get_nowait())
    try:
        await _write_line(response, {"result": work.result()})
    except AuthError as err:
        await _write_line(response, {"error": {"code": err.code, "message": err.message}})
    await response.write_eof()
    return response


async def _write_line(response: web.StreamResponse, line: dict[str, Any]) -> None:
    await response.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")


async def account_chats(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, _ = await signed(request)
    account = request.match_info["account_id"]
    return web.json_response(
        await daemon.journal_chats.of_account(journal, account, base_url(request))
    )


async def create_chat(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request)
    chat = await daemon.journal_chats.create(journal, json_object(raw))
    return web.json_response(chat, status=201)


async def get_chat(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, _ = await signed(request)
    return web.json_response(
        await daemon.journal_chats.describe(journal, request.match_info["chat_id"])
    )


async def rename_chat(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request)
    chat_id = request.match_info["chat_id"]
    return web.json_response(await daemon.journal_chats.rename(journal, chat_id, json_object(raw)))


async def delete_chat(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, _ = await signed(request)
    await daemon.journal_chats.delete(journal, request.match_info["chat_id"])
    return web.json_response({"deleted": True})


async def edit_members(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    journal, raw = await signed(request)
    chat_id = request.match_info["chat_id"]
    return web.json_response(
        await daemon.journal_chats.edit_members(journal, chat_id, json_object(raw))
    )
