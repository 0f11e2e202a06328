"""Files end to end: real uploads over HTTP to a real daemon, attachments in messages over the
websocket, downloads and thumbnails with their permissions; plus property tests of the name,
type and header parsers the upload path relies on.

After every refusal the test checks that nothing was kept: no temporary file, no stored
bytes, no row.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import random
import sqlite3
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from yarl import URL

from sferumd import config
from sferumd.services import filetypes
from sferumd.services.filenames import content_disposition, validate_name
from sferumd.services.filetypes import Refused
from tests.e2e_peer import Peer, Rejected, room_history
from tests.test_cli import lines, sferum

SMALL = """
[files]
max_bytes = 1048576
max_image_pixels = 25000000
"""

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# -- making files --------------------------------------------------------------------------


def png(width: int = 800, height: int = 600, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    """A photo-like JPEG (shapes of many colours), with an EXIF orientation if given."""
    im = Image.new("RGB", (width, height), (240, 240, 230))
    draw = ImageDraw.Draw(im)
    rnd = random.Random(width * height)
    for _ in range(300):
        x, y = rnd.randrange(width), rnd.randrange(height)
        w, h = rnd.randrange(5, 1 + width // 8), rnd.randrange(5, 1 + height // 6)
        draw.ellipse((x, y, x + w, y + h), fill=tuple(rnd.randrange(256) for _ in range(3)))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 100_000) -> bytes:
    """A few hundred bytes that claim a side x side greyscale picture."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (side + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_damaged() -> bytes:
    """A PNG header of a 64x64 picture, then pixel data that is not zlib."""
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"this is not deflate data" * 4)
        + png_chunk(b"IEND", b"")
    )


def office_zip(part: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("_rels/.rels", "<Relationships/>")
        zf.writestr(f"{part}/document.xml", "<document/>")
    return buf.getvalue()


def plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("homework.txt", "решение")
    return buf.getvalue()


OLE2 = filetypes.OLE2_MAGIC + b"\0" * 1016
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 100


# -- talking to the daemon -----------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers: Any, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["error"]["code"])


async def upload(
    url: str,
    token: str | None,
    data: bytes | AsyncIterator[bytes],
    name: str | None = "file.bin",
    ctype: str | None = "application/octet-stream",
    raw_query: str | None = None,
) -> Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if ctype is not None:
        headers["Content-Type"] = ctype
    target = url + "/v1/files"
    if raw_query is not None:
        target += "?" + raw_query
    elif name is not None:
        target += "?name=" + quote(name, safe="")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            URL(target, encoded=True),
            data=data,
            headers=headers,
            skip_auto_headers=() if ctype is not None else ("Content-Type",),
        ) as resp,
    ):
        return Response(resp.status, resp.headers, await resp.read())


async def get(url: str, token: str | None, path: str, **headers: str) -> Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers) as r:
        return Response(r.status, r.headers, await r.read())


async def uploaded(url: str, token: str, data: bytes, name: str, ctype: str) -> dict[str, Any]:
    resp = await upload(url, token, data, name, ctype)
    assert resp.status in (200, 201), resp.body
    return resp.json()  # type: ignore[no-any-return]


def rows(data_dir: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(data_dir / "sferumd.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def blobs(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "files").glob("[0-9a-f][0-9a-f]/*"))


def leftovers(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "files" / "tmp").iterdir())


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Until ``condition`` holds (checked every few milliseconds), at most ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def filename_of(header: str) -> str | None:
    _, params = parse_content_disposition(header)
    return content_disposition_filename(params, "filename")


async def send_file(peer: Peer, room: str, file_id: str, **more: Any) -> dict[str, Any]:
    content = {"body": "ДЗ", "file": {"id": file_id, **more}}
    return (await peer.request("send", room_id=room, content=content))["event"]  # type: ignore[no-any-return]


@pytest.fixture
def small(daemon_factory):  # type: ignore[no-untyped-def]
    return daemon_factory(SMALL)


@pytest.fixture
async def cast(small) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """alice, bob, carol, dave: each a user with an open websocket."""
    peers: dict[str, Any] = {}
    try:
        for name in ("alice", "bob", "carol", "dave"):
            user = small.add_user(first=name.title(), last="Test")
            peers[name] = await Peer.login(small.url, user.token)
        yield peers
    finally:
        for peer in peers.values():
            await peer.close()


# -- upload and download -------------------------------------------------------------------


async def test_upload_download_round_trip_with_cyrillic_name(small) -> None:  # type: ignore[no-untyped-def]
    alice = small.add_user()
    name = 'Домашнее задание №5 ("черновик").pdf'
    resp = await upload(small.url, alice.token, PDF, name, "application/pdf; charset=binary")
    assert resp.status == 201, resp.body
    info = resp.json()
    assert info["name"] == name and info["size"] == len(PDF)
    assert info["type"] == "application/pdf" and info["thumbnail"] is False
    assert info["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert "width" not in info
    assert resp.headers["Location"] == f"/v1/files/{info['id']}"
    # The id is not the hash: knowing the bytes gives no way in.
    assert info["sha256"] not in info["id"]

    got = await get(small.url, alice.token, f"/v1/files/{info['id']}")
    assert got.status == 200 and got.body == PDF
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert filename_of(disposition) == name
    assert disposition.isascii() and "\n" not in disposition

    part = await get(small.url, alice.token, f"/v1/files/{info['id']}", Range="bytes=5-12")
    assert part.status == 206 and part.body == PDF[5:13]

    # The bytes are stored once, under their hash; no temporary file is left.
    assert [p.name for p in blobs(small.data_dir)] == [info["sha256"][2:]]
    assert leftovers(small.data_dir) == []


async def test_dedup_same_bytes_stored_once(small) -> None:  # type: ignore[no-untyped-def]
    alice, bob = small.add_user(), small.add_user()
    data = png(300, 200)
    first = await upload(small.url, alice.token, data, "фото.png", "image/png")
    again = await upload(small.url, alice.token, data, "фото.png", "image/png")
    assert (first.status, again.status) == (201, 200)
    assert again.json()["id"] == first.json()["id"]  # a retried upload: the same file
    renamed = await uploaded(small.url, alice.token, data, "другое.png", "image/png")
    by_bob = await uploaded(small.url, bob.token, data, "фото.png", "image/png")
    ids = {first.json()["id"], renamed["id"], by_bob["id"]}
    assert len(ids) == 3
    assert {renamed["sha256"], by_bob["sha256"]} == {first.json()["sha256"]}
    assert len(blobs(small.data_dir)) == 1
    assert len(list((small.data_dir / "files" / "thumbs").glob("*/*"))) == 1
    assert rows(small.data_dir, "SELECT count(*) FROM files") == [(3,)]


async def test_refusals_keep_nothing(small) -> None:  # type: ignore[no-untyped-def]
    alice = small.add_user()
    url, token = small.url, alice.token

    async def chunks(total: int) -> AsyncIterator[bytes]:
        """``total`` bytes, and then a body that never ends: only an answer given while the
        body is still coming (the refusal mid-stream) lets this request finish."""
        sent = 0
        while sent < total:
            yield b"a" * 65536
            sent += 65536
        await asyncio.Event().wait()
        yield b""

    cases: list[tuple[str, Any, int, str]] = [
        (
            "declared too large",
            upload(url, token, b"x" * 1048577, "big.txt", "text/plain"),
            413,
            "too_large",
        ),
        (
            "too large mid-stream",
            asyncio.wait_for(upload(url, token, chunks(3 << 20), "big.txt", "text/plain"), 30),
            413,
            "too_large",
        ),
        ("svg", upload(url, token, b"<svg/>", "a.svg", "image/svg+xml"), 415, "type_not_allowed"),
        ("html", upload(url, token, b"<html>", "a.html", "text/html"), 415, "type_not_allowed"),
        ("no type", upload(url, token, b"hello", "a.txt", None), 415, "type_not_allowed"),
        ("bad type", upload(url, token, b"hello", "a.txt", "text"), 415, "type_not_allowed"),
        ("png as pdf", upload(url, token, png(), "a.pdf", "application/pdf"), 415, "type_mismatch"),
        ("exe as text", upload(url, token, EXE, "a.txt", "text/plain"), 415, "type_mismatch"),
        (
            "html as png",
            upload(url, token, b"<script>alert(1)</script>", "a.png", "image/png"),
            415,
            "type_mismatch",
        ),
        ("pdf as jpeg", upload(url, token, PDF, "a.jpg", "image/jpeg"), 415, "type_mismatch"),
        ("zip as docx", upload(url, token, plain_zip(), "a.docx", DOCX), 415, "type_mismatch"),
        (
            "docx as xlsx",
            upload(url, token, office_zip("word"), "a.xlsx", XLSX),
            415,
            "type_mismatch",
        ),
        (
            "nul bytes as text",
            upload(url, token, b"a\0b", "a.txt", "text/plain"),
            415,
            "type_mismatch",
        ),
        ("empty", upload(url, token, b"", "a.txt", "text/plain"), 400, "empty_file"),
        ("no name", upload(url, token, b"hi", None, "text/plain"), 400, "invalid_name"),
        ("path", upload(url, token, b"hi", "../etc/passwd", "text/plain"), 400, "invalid_name"),
        ("slash", upload(url, token, b"hi", "a/b.txt", "text/plain"), 400, "invalid_name"),
        ("backslash", upload(url, token, b"hi", "a\\b.txt", "text/plain"), 400, "invalid_name"),
        ("dotdot", upload(url, token, b"hi", "..", "text/plain"), 400, "invalid_name"),
        ("nul", upload(url, token, b"hi", "a\0.txt", "text/plain"), 400, "invalid_name"),
        ("newline", upload(url, token, b"hi", "a\r\nb.txt", "text/plain"), 400, "invalid_name"),
        ("bidi", upload(url, token, b"hi", "фото\u202egpj.exe", "text/plain"), 400, "invalid_name"),
        ("spaces", upload(url, token, b"hi", " a.txt", "text/plain"), 400, "invalid_name"),
        ("long", upload(url, token, b"hi", "я" * 256, "text/plain"), 400, "invalid_name"),
        (
            "not utf-8",
            upload(url, token, b"hi", raw_query="name=%FF.txt", ctype="text/plain"),
            400,
            "invalid_name",
        ),
        (
            "two names",
            upload(url, token, b"hi", raw_query="name=a&name=b", ctype="text/plain"),
            400,
            "invalid_name",
        ),
        ("bomb", upload(url, token, png_bomb(), "bomb.png", "image/png"), 413, "image_too_large"),
        (
            "damaged picture",
            upload(url, token, png_damaged(), "x.png", "image/png"),
            422,
            "bad_image",
        ),
        ("no token", upload(url, None, b"hi", "a.txt", "text/plain"), 401, "auth_failed"),
        ("bad token", upload(url, "0" * 64, b"hi", "a.txt", "text/plain"), 401, "auth_failed"),
    ]
    for label, request, status, code in cases:
        resp = await request
        assert (resp.status, resp.code) == (status, code), (label, resp.body)
        assert resp.json()["error"]["message"], label
    assert leftovers(small.data_dir) == []
    assert blobs(small.data_dir) == []
    assert list((small.data_dir / "files" / "thumbs").glob("*/*")) == []
    assert rows(small.data_dir, "SELECT count(*) FROM files") == [(0,)]
    # The refusals say what is wrong.
    lying = await upload(url, token, png(), "a.pdf", "application/pdf")
    assert (
        lying.json()["error"]["message"] == "declared application/pdf, but the content is image/png"
    )
    # Past files.max_image_pixels (25 MP here), and past Pillow's own hard limit: both refused
    # before a pixel is decoded.
    for side, message in (
        (10_000, "the picture is 10000x10000 pixels; at most 25000000 pixels are allowed"),
        (100_000, "the picture has more than 25000000 pixels"),
    ):
        bomb = await upload(url, token, png_bomb(side), "bomb.png", "image/png")
        assert (bomb.status, bomb.code, bomb.json()["error"]["message"]) == (
            413,
            "image_too_large",
            message,
        )
    assert rows(small.data_dir, "SELECT count(*) FROM files") == [(0,)]


async def test_client_gone_mid_upload_leaves_nothing(small) -> None:  # type: ignore[no-untyped-def]
    token = small.add_user().token
    for framing in ("Content-Length: 100000\r\n", "Transfer-Encoding: chunked\r\n"):
        _, writer = await asyncio.open_connection("127.0.0.1", small.port)
        head = (
            f"POST /v1/files?name=a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: text/plain\r\n{framing}\r\n"
        )
        chunked = framing.startswith("Transfer")
        writer.write(head.encode() + (b"3e8\r\n" if chunked else b"") + b"a" * 1000)
        await writer.drain()
        await wait_for(lambda: leftovers(small.data_dir) != [])  # being received
        writer.close()
        await wait_for(lambda: leftovers(small.data_dir) == [])
    assert blobs(small.data_dir) == []
    assert rows(small.data_dir, "SELECT count(*) FROM files") == [(0,)]
    assert "Traceback" not in small.log()
    await uploaded(small.url, token, b"after", "a.txt", "text/plain")  # the daemon is fine


async def test_types_are_checked_against_content_not_names(small) -> None:  # type: ignore[no-untyped-def]
    token = small.add_user().token
    accepted = [
        (office_zip("word"), "сочинение.docx", DOCX),
        (office_zip("xl"), "оценки.xlsx", XLSX),
        (office_zip("word"), "сочинение.zip", "application/zip"),  # an Office file is a zip
        (plain_zip(), "архив.zip", "application/x-zip-compressed"),  # an alias
        (OLE2, "старый.doc", "application/msword"),
        ("Задание: стр. 12, №3\n".encode(), "задание.txt", "text/plain; charset=utf-8"),
        ("Задание".encode("cp1251"), "задание.txt", "text/plain"),  # not UTF-8, still text
        (b"\xff\xfeh\0i\0", "utf16.txt", "text/plain"),  # UTF-16 with its byte order mark
        ("имя;оценка\nАня;5\n".encode(), "оценки.csv", "text/csv"),
        (PDF, "a.pdf", "APPLICATION/PDF"),
        (jpeg(40, 30), "a.jpg", "image/jpg"),  # an alias
    ]
    for data, name, ctype in accepted:
        info = await uploaded(small.url, token, data, name, ctype)
        assert info["size"] == len(data)
    types = [t for (t,) in rows(small.data_dir, "SELECT type FROM files ORDER BY created_ts")]
    assert types == [
        DOCX,
        XLSX,
        "application/zip",
        "application/zip",
        "application/msword",
        "text/plain",
        "text/plain",
        "text/plain",
        "text/csv",
        "application/pdf",
        "image/jpeg",
    ]


async def test_thumbnails_are_small_and_follow_exif_orientation(small) -> None:  # type: ignore[no-untyped-def]
    token = small.add_user().token
    photo = jpeg(1600, 1200)
    info = await uploaded(small.url, token, photo, "доска.jpg", "image/jpeg")
    assert (info["width"], info["height"], info["thumbnail"]) == (1600, 1200, True)
    thumb = await get(small.url, token, f"/v1/files/{info['id']}/thumbnail")
    assert thumb.status == 200 and thumb.headers["Content-Type"] == "image/webp"
    assert thumb.headers["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(thumb.body)) as im:
        assert im.format == "WEBP" and max(im.size) == 320 and im.size == (320, 240)
    assert len(thumb.body) < len(photo) // 10
    full = await get(small.url, token, f"/v1/files/{info['id']}")
    assert full.body == photo  # the original bytes, untouched
    assert full.headers["Content-Disposition"].startswith("inline;")  # a picture is shown

    # A phone photo stored sideways with "rotate 90" in its EXIF: shown (and sized) upright.
    turned = await uploaded(small.url, token, jpeg(400, 100, orientation=6), "t.jpg", "image/jpeg")
    assert (turned["width"], turned["height"]) == (100, 400)
    thumb = await get(small.url, token, f"/v1/files/{turned['id']}/thumbnail")
    with Image.open(io.BytesIO(thumb.body)) as im:
        assert im.size == (80, 320)

    doc = await uploaded(small.url, token, PDF, "a.pdf", "application/pdf")
    none = await get(small.url, token, f"/v1/files/{doc['id']}/thumbnail")
    assert (none.status, none.code) == (404, "no_thumbnail")


async def test_message_carries_server_checked_details(cast, small) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = (await alice.request("create_room", invite=[bob.user_id]))["room_id"]
    await bob.request("join", room_id=room)
    info = await uploaded(small.url, alice.token, png(640, 480), "схема.png", "image/png")
    mark = bob.mark()
    # Whatever the client claims about the file is replaced by the server's record.
    event = await send_file(alice, room, info["id"], name="evil.exe", size=1, type="text/html")
    expected = {k: info[k] for k in ("id", "name", "size", "type", "sha256", "width", "height")}
    assert event["content"]["file"] == expected | {"thumbnail": True}
    assert event["content"]["body"] == "ДЗ"
    pushed = await bob.wait_frame(
        lambda f: "ev" in f and f["ev"]["event_id"] == event["event_id"], since=mark
    )
    assert pushed["ev"]["content"] == event["content"]
    history = await room_history(bob, room)
    assert history[-1]["content"]["file"]["name"] == "схема.png"

    before = (await get(small.url, None, "/health")).json()["pos"]
    bad: list[tuple[Any, str]] = [
        (info["id"], "invalid_field"),
        ({"name": "x"}, "invalid_field"),
        ({"id": 5}, "invalid_field"),
        ({"id": "../../etc/passwd"}, "invalid_field"),
        ({"id": "F" + "a" * 22}, "not_found"),
    ]
    for ref, code in bad:
        with pytest.raises(Rejected) as err:
            await alice.request("send", room_id=room, content={"file": ref})
        assert err.value.code == code, ref
    # Bob may download the file, but can't post it as his: it is not his upload.
    with pytest.raises(Rejected) as err:
        await send_file(bob, room, info["id"])
    assert err.value.code == "not_found"
    assert (await get(small.url, None, "/health")).json()["pos"] == before


async def test_who_may_download(cast, small) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    url = small.url
    room = (await alice.request("create_room", invite=[bob.user_id, dave.user_id]))["room_id"]
    await bob.request("join", room_id=room)
    info = await uploaded(url, alice.token, png(500, 500), "задача.png", "image/png")
    path = f"/v1/files/{info['id']}"

    async def status(peer: Peer, p: str = path) -> int:
        return (await get(url, peer.token, p)).status

    # Before it is posted, only the uploader has it.
    assert [await status(p) for p in (alice, bob, carol, dave)] == [200, 404, 404, 404]
    post = await send_file(alice, room, info["id"])
    assert await status(bob) == 200 and await status(bob, path + "/thumbnail") == 200

    # A stranger gets exactly what an unknown id gets.
    stranger = await get(url, carol.token, path)
    unknown = await get(url, carol.token, "/v1/files/F" + "x" * 22)
    assert (
        (stranger.status, stranger.body)
        == (unknown.status, unknown.body)
        == (
            404,
            b'{"error": {"code": "not_found", "message": "no such file"}}',
        )
    )
    thumb = await get(url, carol.token, path + "/thumbnail")
    assert (thumb.status, thumb.body) == (unknown.status, unknown.body)
    # Invited is not joined: nothing yet. Joining after the post opens the room's past
    # (history visibility "shared"), the file included.
    assert await status(dave) == 404
    await dave.request("join", room_id=room)
    assert await status(dave) == 200

    # Bob leaves: what he could see stays his; a file posted after he left does not.
    await bob.request("leave", room_id=room)
    assert await status(bob) == 200
    later = await uploaded(url, alice.token, PDF, "после.pdf", "application/pdf")
    await send_file(alice, room, later["id"])
    assert await status(dave, f"/v1/files/{later['id']}") == 200
    assert await status(bob, f"/v1/files/{later['id']}") == 404

    # Posted again elsewhere: carol's room grants her the same file.
    other = (await alice.request("create_room", invite=[carol.user_id]))["room_id"]
    await carol.request("join", room_id=other)
    second = await send_file(alice, other, info["id"])
    assert await status(carol) == 200
    # Redacting a post removes its grant, and only its own.
    await alice.request("redact", room_id=other, event_id=second["event_id"])
    assert await status(carol) == 404
    assert await status(dave) == 200
    await alice.request("redact", room_id=room, event_id=post["event_id"])
    assert [await status(p) for p in (alice, bob, carol, dave)] == [200, 404, 404, 404]
    assert await status(dave, f"/v1/files/{later['id']}") == 200  # its own post still stands

    for bad in ("/v1/files/..%2F..%2Fsferumd.sqlite", "/v1/files/%2e%2e", "/v1/files/x" * 3):
        assert (await get(url, alice.token, bad)).status == 404
    assert (await get(url, None, path)).status == 401


async def test_restart_keeps_files_and_clears_cut_short_uploads(small) -> None:  # type: ignore[no-untyped-def]
    token = small.add_user().token
    info = await uploaded(small.url, token, PDF, "a.pdf", "application/pdf")
    (small.data_dir / "files" / "tmp" / "cut-short.part").write_bytes(b"half")
    small.restart()
    assert leftovers(small.data_dir) == []
    got = await get(small.url, token, f"/v1/files/{info['id']}")
    assert got.status == 200 and got.body == PDF


async def test_quota_and_uploads_at_once(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory("[files]\nbytes_per_user_per_day = 3000\nuploads_in_flight_per_user = 1\n")
    token, other = d.add_user().token, d.add_user().token
    await uploaded(d.url, token, b"a" * 2000, "a.txt", "text/plain")
    over = await upload(d.url, token, b"b" * 1500, "b.txt", "text/plain")
    assert (over.status, over.code) == (429, "quota_exceeded")
    await uploaded(d.url, other, b"b" * 1500, "b.txt", "text/plain")  # a quota per user
    # A retry of an upload that got in is answered, quota or not; what is left can be used.
    assert (await upload(d.url, token, b"a" * 2000, "a.txt", "text/plain")).status == 200
    assert (await upload(d.url, token, b"a" * 1000, "c.txt", "text/plain")).status == 201
    assert rows(d.data_dir, "SELECT count(*), sum(size) FROM files") == [(3, 4500)]

    # One upload at a time: a second one while the first is still being received is refused.
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * 10
        await release.wait()
        yield b"y" * 10

    first = asyncio.create_task(upload(d.url, other, slow(), "slow.txt", "text/plain"))
    await wait_for(lambda: leftovers(d.data_dir) != [])  # the first one is being received
    second = await upload(d.url, other, b"z", "z.txt", "text/plain")
    assert (second.status, second.code) == (429, "too_many_uploads")
    release.set()
    assert (await first).status == 201
    assert leftovers(d.data_dir) == []


async def test_cli_upload_send_download(cast, small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = (await alice.request("create_room", invite=[bob.user_id]))["room_id"]
    await bob.request("join", room_id=room)
    source = tmp_path / "Контрольная работа.pdf"
    source.write_bytes(PDF)
    [info] = await lines(small.url, alice.token, "upload", str(source))
    assert info["name"] == "Контрольная работа.pdf" and info["type"] == "application/pdf"
    [event] = await lines(small.url, alice.token, "send", room, "к пятнице", "--file", str(source))
    assert event["content"]["body"] == "к пятнице"
    assert event["content"]["file"]["id"] == info["id"]  # the same upload: the same id
    assert event["content"]["file"]["size"] == len(PDF)

    out = tmp_path / "bob"
    out.mkdir()
    [saved] = await lines(small.url, bob.token, "download", info["id"], "-o", str(out))
    assert Path(saved["saved"]) == out / "Контрольная работа.pdf"
    assert (out / "Контрольная работа.pdf").read_bytes() == PDF
    [saved] = await lines(small.url, bob.token, "download", info["id"], "-o", str(out / "x.pdf"))
    assert (out / "x.pdf").read_bytes() == PDF and saved["bytes"] == len(PDF)
    assert sorted(p.name for p in out.iterdir()) == ["x.pdf", "Контрольная работа.pdf"]

    rc, _, err = await sferum(
        small.url, cast["carol"].token, "download", info["id"], "-o", str(out)
    )
    assert rc == 1 and json.loads(err)["error"]["code"] == "not_found"
    rc, _, err = await sferum(small.url, alice.token, "send", room)
    assert rc == 1 and json.loads(err)["error"]["code"] == "usage"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            'allowed_types = ["image/png", "text/html"]',
            "files.allowed_types: unknown types 'text/html'",
        ),
        ('allowed_types = ["image/jpg"]', "unknown types 'image/jpg'"),  # aliases are for requests
        ('allowed_types = "image/png"', "files.allowed_types must be list"),
        ("allowed_types = [1]", "files.allowed_types must be a list of strings"),
        ("max_bytes = 0", "files: max_bytes"),
        ("bytes_per_user_per_day = -1", "files: bytes_per_user_per_day >= 0"),
        ("max_bytes = 1.5", "files.max_bytes must be int"),
    ],
)
def test_bad_files_settings_stop_the_daemon(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "sferumd.toml"
    path.write_text(f"[files]\n{toml}\n")
    with pytest.raises(ValueError) as err:
        config.load(path)
    assert expected in str(err.value)


def test_files_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "sferumd.toml"
    path.write_text(
        '[files]\nallowed_types = ["application/pdf", "image/bmp"]\nthumbnail_px = 200\n'
    )
    loaded = config.load(path).files
    assert loaded.allowed_types == ["application/pdf", "image/bmp"] and loaded.thumbnail_px == 200
    assert config.load(None).files.allowed_types == list(filetypes.DEFAULT_ALLOWED)


# -- the parsers, for any input ------------------------------------------------------------

MAX = 255


@given(st.text(max_size=300))
def test_validate_name_accepts_only_clean_names(raw: str) -> None:
    try:
        name = validate_name(raw, MAX)
    except ValueError as exc:
        assert str(exc)
        return
    assert name == unicodedata.normalize("NFC", raw)
    assert 1 <= len(name) <= MAX and name.strip() == name and name not in (".", "..")
    assert not any(ch in "/\\" for ch in name)
    assert not any(unicodedata.category(ch)[0] == "C" for ch in name)


@given(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"),
            blacklist_characters="/\\",
        ),
        min_size=1,
        max_size=100,
    )
)
def test_clean_names_pass_and_round_trip_in_content_disposition(raw: str) -> None:
    if raw in (".", ".."):
        return
    name = validate_name(raw, MAX)
    for disposition in ("attachment", "inline"):
        header = content_disposition(disposition, name)
        assert header.isascii() and "\r" not in header and "\n" not in header
        kind, params = parse_content_disposition(header)
        assert kind == disposition
        assert content_disposition_filename(params, "filename") == name


@given(st.one_of(st.none(), st.text(max_size=300)))
def test_declared_type_is_canonical_or_refused(header: str | None) -> None:
    allowed = frozenset(filetypes.DEFAULT_ALLOWED)
    try:
        media = filetypes.canonical(header, allowed)
    except Refused as exc:
        assert (exc.status, exc.code) == (415, "type_not_allowed")
        return
    assert media in allowed and filetypes.accepts(media, next(iter(filetypes.KINDS[media].accepts)))


@given(
    st.sampled_from(["image/jpg", "IMAGE/JPEG", "image/jpeg ; q=1", "image/pjpeg;x=y"]),
)
def test_declared_type_aliases_case_and_parameters(header: str) -> None:
    assert filetypes.canonical(header, frozenset(filetypes.DEFAULT_ALLOWED)) == "image/jpeg"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.text(min_size=1, max_size=60))
def test_any_name_over_http_is_stored_exactly_or_refused(daemon, raw: str) -> None:  # type: ignore[no-untyped-def]
    """Whatever the name, the daemon either refuses it as invalid_name, or keeps it exactly
    (in NFC) and gives it back in Content-Disposition."""
    if not hasattr(daemon, "files_token"):
        daemon.files_token = daemon.add_user().token
    host = urlsplit(daemon.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    try:
        auth = {"Authorization": f"Bearer {daemon.files_token}"}
        conn.request(
            "POST",
            "/v1/files?name=" + quote(raw, safe=""),
            body=b"hello",
            headers={**auth, "Content-Type": "text/plain"},
        )
        resp = conn.getresponse()
        body = json.loads(resp.read())
        try:
            expected = validate_name(raw, MAX)
        except ValueError:
            assert (resp.status, body["error"]["code"]) == (400, "invalid_name")
            return
        assert resp.status in (200, 201) and body["name"] == expected
        conn.request("GET", f"/v1/files/{body['id']}", headers=auth)
        got = conn.getresponse()
        assert got.read() == b"hello"
        assert filename_of(got.getheader("Content-Disposition") or "") == expected
    finally:
        conn.close()
