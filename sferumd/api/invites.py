"""HTTP for invite links (R12): making, listing and revoking them (bearer), what a link
leads to and joining by it, its QR code, and the page its URL opens. The decisions are in
services.invites; ``routes`` also puts the websocket ops of chats (api.chat_ops) into the
daemon's op table, since it is where the chat services are made.

The QR code of a code needs no sign-in: it encodes only the URL, which whoever asks for the
picture has already.
"""

from __future__ import annotations

import html
import io
from typing import Any

import segno
from aiohttp import web

from sferumd.api import chat_ops
from sferumd.api.app import DAEMON
from sferumd.api.auth import caller, errors, json_object, read_body
from sferumd.api.pages import SECURITY_HEADERS
from sferumd.services.auth import AuthError
from sferumd.services.invites import REFUSALS, InviteService, NewLink, link_json, now_ms, valid_code
from sferumd.services.moderation import ModerationService
from sferumd.store import invites as st
from sferumd.store.invites import InviteStore
from sferumd.store.reports import ReportStore

INVITES = web.AppKey("invites", InviteService)
QR_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
MAX_BODY = 1024  # a link's options are three small fields


def routes(app: web.Application) -> None:
    daemon = app[DAEMON]
    settings = daemon.settings.chats
    invites = InviteService(InviteStore(daemon.store), daemon.rooms, settings)
    moderation = ModerationService(daemon.rooms, ReportStore(daemon.store), daemon.hub, settings)
    app[INVITES] = invites
    daemon.ops.update(chat_ops.build(invites, moderation))
    app.router.add_post("/v1/rooms/{room_id}/invite-links", errors(create))
    app.router.add_get("/v1/rooms/{room_id}/invite-links", errors(list_links))
    app.router.add_delete("/v1/rooms/{room_id}/invite-links/{link_id}", errors(revoke))
    app.router.add_get("/v1/invites/{code}", errors(preview))
    app.router.add_post("/v1/invites/{code}/join", errors(join))
    app.router.add_get("/v1/invites/{code}/qr.{format}", errors(qr))
    app.router.add_get("/join/{code}", join_page)


def base_url(request: web.Request) -> str:
    settings = request.app[DAEMON].settings
    public = settings.chats.public_url or settings.journal.public_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


def join_url(request: web.Request, code: str) -> str:
    return f"{base_url(request)}/join/{code}"


def _new_link_json(request: web.Request, new: NewLink) -> dict[str, Any]:
    base = base_url(request)
    return {
        **link_json(new.link, now_ms()),
        "code": new.code,
        "url": f"{base}/join/{new.code}",
        "qr_png": f"{base}/v1/invites/{new.code}/qr.png",
        "qr_svg": f"{base}/v1/invites/{new.code}/qr.svg",
    }


async def create(request: web.Request) -> web.Response:
    device = await caller(request)
    raw = await read_body(request, MAX_BODY)
    body = json_object(raw) if raw.strip() else {}
    new = await request.app[INVITES].create(device.user_id, request.match_info["room_id"], body)
    return web.json_response(_new_link_json(request, new), status=201)


async def list_links(request: web.Request) -> web.Response:
    device = await caller(request)
    links = await request.app[INVITES].live_links(device.user_id, request.match_info["room_id"])
    now = now_ms()
    return web.json_response({"links": [link_json(link, now) for link in links]})


async def revoke(request: web.Request) -> web.Response:
    device = await caller(request)
    link = await request.app[INVITES].revoke(
        device.user_id, request.match_info["room_id"], request.match_info["link_id"]
    )
    return web.json_response(link_json(link, now_ms()))


async def preview(request: web.Request) -> web.Response:
    found = await request.app[INVITES].preview(request.match_info["code"])
    return web.json_response(
        {"name": found.name, "members": found.members, "approval": found.approval}
    )


async def join(request: web.Request) -> web.Response:
    device = await caller(request)
    event = await request.app[INVITES].join(device.user_id, request.match_info["code"])
    return web.json_response(
        {
            "room_id": event.room_id,
            "membership": event.content["membership"],
            "event": event.to_wire(),
        }
    )


def qr_image(url: str, kind: str, scale: int) -> bytes:
    """The QR code of ``url`` as PNG or SVG (error correction M, the standard quiet zone)."""
    code = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, border=4, light="#fff", title=url)
    else:
        code.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


async def qr(request: web.Request) -> web.Response:
    code, kind = request.match_info["code"], request.match_info["format"]
    if kind not in QR_FORMATS:
        raise AuthError(404, "not_found", "a QR code is qr.png or qr.svg")
    if not valid_code(code):
        raise AuthError(*REFUSALS[st.NOT_FOUND])
    scale = request.app[DAEMON].settings.chats.qr_scale
    return web.Response(
        body=qr_image(join_url(request, code), kind, scale),
        content_type=QR_FORMATS[kind],
        headers={"Cache-Control": "private, max-age=86400", "Referrer-Policy": "no-referrer"},
    )


PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/web/style.css"></head>
<body><main><h1>{title}</h1><p>{text}</p>{extra}</main></body></html>
"""


async def join_page(request: web.Request) -> web.Response:
    """What the link's URL (and its QR code) opens in a browser: the preview and how to
    join from the app. Rendered on the server, no script; the code never leaves the page."""
    code = request.match_info["code"]
    status = 200
    try:
        found = await request.app[INVITES].preview(code)
    except AuthError as err:
        status = err.status
        title, text, extra = "Приглашение недействительно", err.message, ""
    else:
        title = found.name or "Чат"
        need = " Вступление одобряет администратор." if found.approval else ""
        text = f"Участников: {found.members}.{need}"
        url = html.escape(join_url(request, code))
        # The web app (clients/web/app.js) joins from its #join= address, signing in first.
        extra = (
            f'<p><a class="button" href="/#join={html.escape(code)}">Присоединиться</a></p>'
            f'<p>Откройте ссылку в приложении Сферум или выполните <code>sferum join-link "{url}"'
            f'</code>.</p><img alt="QR" width="240" src="/v1/invites/{html.escape(code)}/qr.svg">'
        )
    body = PAGE.format(title=html.escape(title), text=html.escape(text), extra=extra)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=headers
    )
