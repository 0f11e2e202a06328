"""The journal's side of the webhooks: a real HTTP server on 127.0.0.1 that keeps what the
daemon posts and checks each signature with the journal's secret."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Any

from aiohttp import web

from tests.test_linking import signature


class JournalHooks:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.secret = ""  # set once the journal is registered
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._seen = 0

    async def __aenter__(self) -> JournalHooks:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-Sferum-Timestamp", "")
        good = hmac.compare_digest(
            request.headers.get("X-Sferum-Signature", ""), signature(self.secret, ts, body)
        )
        if not good or abs(int(ts or 0) - time.time()) > 60:
            return web.Response(status=401)
        self.got.append(json.loads(body))
        self._arrived.set()
        return web.json_response({})

    async def next(self, timeout: float = 15.0) -> dict[str, Any]:
        """The next webhook that arrived, in order."""
        while len(self.got) <= self._seen:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), timeout)
        self._seen += 1
        return self.got[self._seen - 1]
