"""Pages a person opens in a browser: the linking page behind a journal's one-time URL and
the static files (plain ES modules and CSS from ``clients/web``) they load.

Only files that exist in that folder at start-up are served, by name, so no request path can
reach anything else. Every page forbids inline script, framing and referrers: a link URL
carries a one-time token that must not leak to another site.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from protocol.calls import CALL_ID

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

WEB_FILES = web.AppKey("web_files", dict)


def web_dir() -> Path:
    return Path(str(resources.files("clients") / "web"))


def routes(app: web.Application) -> None:
    folder = web_dir()
    app[WEB_FILES] = {
        p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in CONTENT_TYPES
    }
    app.router.add_get("/web/{name}", static)
    app.router.add_get("/link/{token}", link_page)
    # Online lessons: the list of a user's calls (R25) and the call page (R19).
    app.router.add_get("/lessons", lessons_page)
    app.router.add_get("/calls/{call_id}", call_page)
    # The messenger (index.html, app.js): one page for every address it shows.
    app.router.add_get("/", app_page)
    app.router.add_get("/chats/{room_id}", app_page)


def _file(request: web.Request, name: str, cache: str) -> web.StreamResponse:
    path = request.app[WEB_FILES].get(name)
    if path is None:
        raise web.HTTPNotFound(text="no such file")
    headers = {
        **SECURITY_HEADERS,
        "Content-Type": CONTENT_TYPES[path.suffix],
        "Cache-Control": cache,
    }
    return web.FileResponse(path, headers=headers)


async def static(request: web.Request) -> web.StreamResponse:
    # no-cache: revalidate each time, so a daemon upgrade never runs old scripts.
    return _file(request, request.match_info["name"], "no-cache")


async def app_page(request: web.Request) -> web.StreamResponse:
    # The page is the same for every chat (the script reads the address); never cached, so
    # a daemon upgrade is seen at once.
    return _file(request, "index.html", "no-store")


async def lessons_page(request: web.Request) -> web.StreamResponse:
    return _file(request, "lessons.html", "no-store")


async def call_page(request: web.Request) -> web.StreamResponse:
    # The same page for every call (its script reads the call id from the address); an
    # address that can't be a call id is not a page at all.
    if CALL_ID.fullmatch(request.match_info["call_id"]) is None:
        raise web.HTTPNotFound(text="no such call")
    return _file(request, "call.html", "no-store")


async def link_page(request: web.Request) -> web.StreamResponse:
    # The token is read by the page's script from the address; the page itself is the same
    # for every token, and is never stored by a cache.
    return _file(request, "link.html", "no-store")
