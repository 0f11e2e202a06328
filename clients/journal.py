"""A journal's side of the journal API: signed requests (see "Journal linking (HTTP)" in
PROTOCOL.md). Used by ``sferumd journal import-oneroster``, ``sferumd demo`` and the
benchmarks; a real journal implements the same few lines in its own language."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

NDJSON = "application/x-ndjson"


def signed_headers(
    journal_id: str, secret: str, method: str, target: str, body: bytes
) -> dict[str, str]:
    """Headers for one request; every call makes a new nonce, so each is accepted once."""
    ts, nonce = str(int(time.time())), secrets.token_urlsafe(18)
    message = f"{ts}.{nonce}.{method.upper()} {target}.".encode() + body
    return {
        "X-Sferum-Journal": journal_id,
        "X-Sferum-Timestamp": ts,
        "X-Sferum-Nonce": nonce,
        "X-Sferum-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
    }


class JournalError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class JournalClient:
    def __init__(self, server: str, journal_id: str, secret: str, timeout: float = 600.0):
        self.server = server.rstrip("/")
        self.journal_id = journal_id
        self.secret = secret
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    async def __aenter__(self) -> JournalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    def _headers(self, method: str, path: str, body: bytes, content_type: str) -> dict[str, str]:
        headers = signed_headers(self.journal_id, self.secret, method, path, body)
        headers["Content-Type"] = content_type
        return headers

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON request; raises JournalError with the server's code on a refusal."""
        raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = self._headers(method, path, raw, "application/json")
        async with self._session.request(
            method, self.server + path, data=raw, headers=headers
        ) as resp:
            data = await resp.json(content_type=None)
        if resp.status >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise JournalError(resp.status, err.get("code", "http"), err.get("message", ""))
        return data

    async def stream(
        self, path: str, body: bytes, content_type: str
    ) -> AsyncIterator[dict[str, Any]]:
        """POST ``body`` and yield the answer's NDJSON lines (progress, then the result)."""
        headers = self._headers("POST", path, body, content_type)
        headers["Accept"] = NDJSON
        async with self._session.post(self.server + path, data=body, headers=headers) as resp:
            if resp.status >= 400:
                data = await resp.json(content_type=None)
                err = data.get("error", {}) if isinstance(data, dict) else {}
                raise JournalError(resp.status, err.get("code", "http"), err.get("message", ""))
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
