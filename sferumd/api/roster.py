"""Journal HTTP for the roster (``/journal/v1/events``, ``/journal/v1/snapshot``; the body
may be large, up to ``journal.max_body_bytes``) and for the journal's chats (an account's
chats, subject chats). Signed like every journal request; decisions live in
services.roster."""

from __future__ import annotations

from aiohttp import web

from sferumd.api.app import DAEMON
from sferumd.api.auth import errors, json_object
from sferumd.api.journal import base_url, signed


def routes(app: web.Application) -> None:
    app.router.add_post("/journal/v1/events", errors(events))
    app.router.add_post("/journal/v1/snapshot", errors(snapshot))
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
