"""HTTP for files: upload, download and thumbnails, with the device token
(``Authorization: Bearer``). Parsing and answers only; the decisions are in
services.files (uploads) and services.attachments (who may read what).

    POST /v1/files?name=NAME         raw body, Content-Type: the file's type
    GET  /v1/files/{id}              the bytes (Range requests work)
    GET  /v1/files/{id}/thumbnail    a picture's WebP thumbnail

A file the caller may not read is answered exactly like an id that does not exist.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from sferumd.api.app import DAEMON
from sferumd.api.auth import caller, errors
from sferumd.services import filetypes
from sferumd.services.attachments import Attachments
from sferumd.services.auth import AuthError
from sferumd.services.filenames import content_disposition
from sferumd.services.files import FilesService
from sferumd.services.images import THUMBNAIL_TYPE
from sferumd.store.files import FileRecord, FileStore

FILES = web.AppKey("files", FilesService)
ATTACHMENTS = web.AppKey("attachments", Attachments)


def routes(app: web.Application) -> None:
    """Builds the files services for the app's daemon and hooks them in: the send path
    checks and records attachments through ``rooms.attachments``."""
    daemon = app[DAEMON]
    store = FileStore(daemon.store)
    app[FILES] = FilesService(store, daemon.settings.files, daemon.settings.data_path)
    app[ATTACHMENTS] = daemon.rooms.attachments = Attachments(
        store, daemon.store, daemon.settings.limits
    )
    app.on_startup.append(_start)
    app.router.add_post("/v1/files", errors(upload))
    app.router.add_get("/v1/files/{file_id}", errors(download))
    app.router.add_get("/v1/files/{file_id}/thumbnail", errors(thumbnail))


async def _start(app: web.Application) -> None:
    app[FILES].start()


def _not_found() -> AuthError:
    return AuthError(404, "not_found", "no such file")


async def upload(request: web.Request) -> web.Response:
    device = await caller(request)
    files = request.app[FILES]
    name, type_ = files.check_request(
        _name_param(request), request.headers.get("Content-Type"), request.content_length
    )
    try:
        record, created = await files.upload(
            device.user_id, name, type_, request.content.iter_any()
        )
    except (ConnectionError, HttpProcessingError) as exc:
        # The client went away, or its chunked encoding broke: nothing was kept.
        raise AuthError(400, "incomplete_body", f"the body did not arrive whole: {exc}") from None
    return web.json_response(
        record.to_wire() | {"created_ts": record.created_ts},
        status=201 if created else 200,
        headers={"Location": f"/v1/files/{record.file_id}"},
    )


def _name_param(request: web.Request) -> str | None:
    """``?name=``, decoded strictly: bytes that are not UTF-8 are refused, not replaced."""
    try:
        pairs = parse_qsl(request.rel_url.raw_query_string, errors="strict")
    except UnicodeDecodeError:
        raise AuthError(400, "invalid_name", "the file name is not UTF-8") from None
    names = [value for key, value in pairs if key == "name"]
    if len(names) > 1:
        raise AuthError(400, "invalid_name", "give the file name once")
    return names[0] if names else None


async def _readable(request: web.Request) -> FileRecord:
    device = await caller(request)
    record = await request.app[ATTACHMENTS].readable(device.user_id, request.match_info["file_id"])
    if record is None:
        raise _not_found()
    return record


def _headers(content_type: str, disposition: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",  # the type is the checked one; never guess
        "Content-Security-Policy": "sandbox",  # nothing served here runs as a page
        "Cache-Control": "private, no-cache",  # access can end (a redaction): revalidate
    }


async def download(request: web.Request) -> web.StreamResponse:
    record = await _readable(request)
    files = request.app[FILES]
    inline = filetypes.shown_inline(record.type)
    disposition = content_disposition("inline" if inline else "attachment", record.name)
    return web.FileResponse(
        files.blob_path(record.sha256), headers=_headers(record.type, disposition)
    )


async def thumbnail(request: web.Request) -> web.StreamResponse:
    record = await _readable(request)
    if not record.thumbnail:
        raise AuthError(404, "no_thumbnail", "this file has no thumbnail (not a picture)")
    path = request.app[FILES].thumb_path(record.sha256)
    return web.FileResponse(path, headers=_headers(THUMBNAIL_TYPE, "inline"))
