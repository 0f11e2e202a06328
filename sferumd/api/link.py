"""HTTP for the person's side of linking: what a link URL offers, confirming it with a
signed-in device, and the profile's own links. Decisions live in services.linking."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sferumd.api.app import DAEMON
from sferumd.api.auth import caller, errors
from sferumd.model import Link
from sferumd.services.linking import iso


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/link/{token}", errors(show))
    app.router.add_post("/v1/link/{token}/confirm", errors(confirm))
    app.router.add_get("/v1/links", errors(list_links))
    app.router.add_delete("/v1/links/{journal_id}/{account_id}", errors(unlink))


async def show(request: web.Request) -> web.Response:
    """No sign-in needed: only what the journal offers (role, school, expiry), nobody's
    personal data; a used or expired URL says only that."""
    session = await request.app[DAEMON].linking.session_for_token(request.match_info["token"])
    journal = await request.app[DAEMON].store.get_journal(session.journal_id)
    return web.json_response(
        {
            "journal": journal.name if journal else None,
            "role": session.role,
            "school_id": session.school_id,
            "school_name": session.school_name,
            "expires_at": iso(session.expires_ts),
        }
    )


def _link_json(link: Link, journal_name: str) -> dict[str, Any]:
    return {
        "journal_id": link.journal_id,
        "journal": journal_name,
        "account_id": link.account_id,
        "role": link.role,
        "school_id": link.school_id,
        "school_name": link.school_name,
        "linked_at": iso(link.linked_ts),
    }


async def confirm(request: web.Request) -> web.Response:
    device = await caller(request)
    link, journal_name = await request.app[DAEMON].linking.confirm(
        request.match_info["token"], device.user_id
    )
    return web.json_response({"linked": True, **_link_json(link, journal_name)})


async def list_links(request: web.Request) -> web.Response:
    device = await caller(request)
    links = await request.app[DAEMON].linking.links(device.user_id)
    return web.json_response({"links": [_link_json(link, name) for link, name in links]})


async def unlink(request: web.Request) -> web.Response:
    device = await caller(request)
    await request.app[DAEMON].linking.unlink_by_user(
        device.user_id, request.match_info["journal_id"], request.match_info["account_id"]
    )
    return web.json_response({"linked": False})
