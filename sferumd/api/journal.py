"""Server-to-server HTTP for school journals under ``/journal/v1/``: every request is signed
with the journal's key (see services.linking.verify_request); decisions live in
services.linking."""

from __future__ import annotations

from aiohttp import web

from sferumd.api.app import DAEMON
from sferumd.api.auth import MAX_BODY, errors, json_object, read_body
from sferumd.api.openapi import document
from sferumd.model import Journal
from sferumd.services.linking import NONCE_HEADER, iso, request_message
from sferumd.services.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER
from sferumd.services.webhooks import JOURNAL_HEADER


def routes(app: web.Application) -> None:
    app.router.add_get("/journal/v1/openapi.json", openapi)
    app.router.add_post("/journal/v1/link-sessions", errors(create_session))
    app.router.add_get("/journal/v1/accounts/{account_id}/link", errors(link_status))
    app.router.add_delete("/journal/v1/accounts/{account_id}/link", errors(unlink))


async def signed(request: web.Request, limit: int = MAX_BODY) -> tuple[Journal, bytes]:
    """The signed caller and the body its signature covers (read before anything else)."""
    raw = await read_body(request, limit)
    h = request.headers
    nonce = h.get(NONCE_HEADER, "")
    message = request_message(nonce, request.method, request.raw_path, raw)
    journal = await request.app[DAEMON].linking.authenticate(
        h.get(JOURNAL_HEADER, ""),
        h.get(TIMESTAMP_HEADER, ""),
        nonce,
        h.get(SIGNATURE_HEADER, ""),
        message,
    )
    return journal, raw


def base_url(request: web.Request) -> str:
    public = request.app[DAEMON].settings.journal.public_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


async def create_session(request: web.Request) -> web.Response:
    journal, raw = await signed(request)
    new = await request.app[DAEMON].linking.create_session(journal, json_object(raw))
    return web.json_response(
        {
            "session_id": new.session.session_id,
            "url": f"{base_url(request)}/link/{new.token}",
            "expires_at": iso(new.session.expires_ts),
        }
    )


async def link_status(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    link = await request.app[DAEMON].linking.status(journal, request.match_info["account_id"])
    if link is None:
        return web.json_response({"linked": False})
    return web.json_response(
        {"linked": True, "user_id": link.user_id, "linked_at": iso(link.linked_ts)}
    )


async def unlink(request: web.Request) -> web.Response:
    journal, _ = await signed(request)
    await request.app[DAEMON].linking.unlink_by_journal(journal, request.match_info["account_id"])
    return web.json_response({"linked": False})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
