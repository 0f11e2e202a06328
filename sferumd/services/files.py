"""Uploads: a body streamed to disk while hashed, checked for what it really is, stored once
per content and recorded per upload.

Layout under the data directory (content-addressed: the same bytes are kept once, whoever
uploads them and under whatever name)::

    files/tmp/                  uploads being received; emptied at start-up
    files/ab/cdef...            the bytes of SHA-256 abcdef...
    files/thumbs/ab/cdef....webp  the thumbnail of a picture

An upload is refused before its body is read when its name, type or declared length already
say no, or the uploader has too many uploads running; otherwise the body goes to a
temporary file (never into memory), and the refusal of a body over ``files.max_bytes``
comes the moment it passes that. Then, in order: the same user's identical earlier upload
(same bytes, name and type) is answered as it is (a retry is safe); the daily quota; the
content against the declared type, and a picture's pixel count, decoding and thumbnail.
Only a file that passed every check is moved into place and then recorded; a refused one
leaves no temporary file and no row. Paths are made from the hash, never from input.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sferumd.config import FilesSettings
from sferumd.services import filetypes, images
from sferumd.services.auth import AuthError
from sferumd.services.filenames import validate_name
from sferumd.services.filetypes import Refused
from sferumd.store.files import FileRecord, FileStore

log = logging.getLogger(__name__)

WRITE_CHUNK = 1 << 20  # bytes gathered before each write to the temporary file
QUOTA_WINDOW_MS = 86_400_000  # files.bytes_per_user_per_day counts the last 24 hours


def new_file_id() -> str:
    """Opaque and unguessable (128 random bits): knowing a file's hash or name gives no id."""
    return "F" + secrets.token_urlsafe(16)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class _Received:
    path: Path
    size: int
    sha256: str
    head: bytes
    has_nul: bool


class FilesService:
    def __init__(self, store: FileStore, settings: FilesSettings, data_dir: Path):
        self.store = store
        self.settings = settings
        self.allowed = frozenset(settings.allowed_types)
        self.root = data_dir / "files"
        self.tmp = self.root / "tmp"
        self.thumbs = self.root / "thumbs"
        self._in_flight: dict[str, int] = {}  # uploads being received, per user

    def start(self) -> None:
        """Makes the directories and removes what uploads cut short by a crash left."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.thumbs.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()

    def blob_path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def thumb_path(self, sha256: str) -> Path:
        return self.thumbs / sha256[:2] / f"{sha256[2:]}.webp"

    # -- upload ----------------------------------------------------------------------------

    def check_request(
        self, raw_name: str | None, raw_type: str | None, length: int | None
    ) -> tuple[str, str]:
        """The checks made before a byte of the body is read; returns (name, type)."""
        try:
            name = validate_name(raw_name, self.settings.max_name_chars)
        except ValueError as exc:
            raise AuthError(400, "invalid_name", str(exc)) from None
        try:
            type_ = filetypes.canonical(raw_type, self.allowed)
        except Refused as exc:
            raise AuthError(exc.status, exc.code, exc.message) from None
        if length is not None and length > self.settings.max_bytes:
            raise self._too_large()
        return name, type_

    async def upload(
        self,
        uploader: str,
        name: str,
        type_: str,
        body: AsyncIterator[bytes],
    ) -> tuple[FileRecord, bool]:
        """Receives, checks and stores one upload (see the module doc); returns the record
        and whether it is new (False: the same user's identical earlier upload)."""
        if self._in_flight.get(uploader, 0) >= self.settings.uploads_in_flight_per_user:
            raise AuthError(
                429,
                "too_many_uploads",
                f"at most {self.settings.uploads_in_flight_per_user} uploads at once",
            )
        self._in_flight[uploader] = self._in_flight.get(uploader, 0) + 1
        loop = asyncio.get_running_loop()
        suffix = secrets.token_hex(8)
        part = self.tmp / f"{suffix}.part"
        thumb_part = self.tmp / f"{suffix}.thumb"
        try:
            got = await self._receive(body, part)
            if got.size == 0:
                raise AuthError(400, "empty_file", "the file is empty")
            same = await self.store.find_same(uploader, got.sha256, name, type_)
            if same is not None:
                return same, False  # a retry: these bytes passed the checks already
            # The quota is judged once the bytes are known, so that a retry of an upload
            # that got in (above) is never refused for the bytes it already counted.
            since = _now_ms() - QUOTA_WINDOW_MS
            await self._check_quota(uploader, got.size, since)
            kind = filetypes.KINDS[type_]
            picture = await loop.run_in_executor(None, self._check_content, got, type_, thumb_part)
            record = FileRecord(
                new_file_id(),
                got.sha256,
                got.size,
                type_,
                name,
                uploader,
                _now_ms(),
                picture.width if picture else None,
                picture.height if picture else None,
                thumbnail=kind.pillow is not None,
            )
            await loop.run_in_executor(None, self._place, got, thumb_part if picture else None)
            added = await self.store.add(
                record, quota=self.settings.bytes_per_user_per_day, since_ts=since
            )
            if added is None:
                # Another upload of the same user got in first. The bytes stay stored under
                # their hash (complete, harmless, reused by the next identical upload).
                raise self._over_quota()
            return added
        finally:
            self._in_flight[uploader] -= 1
            if not self._in_flight[uploader]:
                del self._in_flight[uploader]
            for leftover in (part, thumb_part):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    async def _receive(self, body: AsyncIterator[bytes], part: Path) -> _Received:
        """Streams the body into ``part``, hashing it; refuses it the moment it passes the
        limit. Writes and hashing run in a worker thread, a megabyte at a time."""
        loop = asyncio.get_running_loop()
        limit = self.settings.max_bytes
        digest = hashlib.sha256()
        fh: BinaryIO = await loop.run_in_executor(None, open, part, "xb")
        size, head, has_nul = 0, bytearray(), False
        pending: list[bytes] = []
        pending_size = 0

        def write(chunks: list[bytes]) -> bool:
            nul = False
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                nul = nul or b"\0" in chunk
            return nul

        try:
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise self._too_large()
                if len(head) < filetypes.HEAD_BYTES:
                    head += chunk[: filetypes.HEAD_BYTES - len(head)]
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_CHUNK:
                    batch, pending, pending_size = pending, [], 0
                    has_nul = await loop.run_in_executor(None, write, batch) or has_nul
            if pending:
                has_nul = await loop.run_in_executor(None, write, pending) or has_nul
            # Acknowledged means durable: the bytes are on disk before any row points at them.
            await loop.run_in_executor(None, _flush_and_sync, fh)
        finally:
            await loop.run_in_executor(None, fh.close)
        return _Received(part, size, digest.hexdigest(), bytes(head), has_nul)

    def _check_content(self, got: _Received, type_: str, thumb: Path) -> images.Picture | None:
        """In a worker thread: the content must be what was declared; a picture must decode
        within the pixel limit, and gets its thumbnail written to ``thumb``."""
        label = filetypes.sniff(got.path, got.head, got.has_nul)
        if not filetypes.accepts(type_, label):
            what = "of no type known here" if label == filetypes.UNKNOWN else label
            raise AuthError(415, "type_mismatch", f"declared {type_}, but the content is {what}")
        kind = filetypes.KINDS[type_]
        if kind.pillow is None:
            return None
        try:
            return images.inspect(
                got.path,
                kind.pillow,
                self.settings.max_image_pixels,
                self.settings.thumbnail_px,
                thumb,
            )
        except Refused as exc:
            raise AuthError(exc.status, exc.code, exc.message) from None

    def _place(self, got: _Received, thumb: Path | None) -> None:
        """In a worker thread: moves the checked bytes (and thumbnail) to their hash's place,
        unless the same bytes are there already."""
        moves = [(got.path, self.blob_path(got.sha256))]
        if thumb is not None:
            moves.append((thumb, self.thumb_path(got.sha256)))
        for source, target in moves:
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source == thumb:  # the body was synced as it was received
                with open(source, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(source, target)
            _sync_dir(target.parent)

    async def _check_quota(self, uploader: str, size: int, since: int) -> None:
        quota = self.settings.bytes_per_user_per_day
        if quota > 0 and await self.store.uploaded_since(uploader, since) + size > quota:
            raise self._over_quota()

    def _over_quota(self) -> AuthError:
        return AuthError(
            429,
            "quota_exceeded",
            f"you may upload {self.settings.bytes_per_user_per_day} bytes a day",
        )

    def _too_large(self) -> AuthError:
        return AuthError(
            413, "too_large", f"files may have at most {self.settings.max_bytes} bytes"
        )


def _flush_and_sync(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
