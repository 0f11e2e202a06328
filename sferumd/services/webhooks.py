"""Webhooks to a journal: link changes (services.linking) and attendance (services.calls).

Signed like every webhook sferumd sends: ``X-Sferum-Journal``, ``X-Sferum-Timestamp`` and
``X-Sferum-Signature`` = hex HMAC-SHA256(secret, timestamp + "." + body). Sent in the
background with a few bounded attempts, so they never delay a request. A delivery the
journal took (2xx) is reported through ``on_sent``, if given (attendance uses it so a report
is not sent again after a restart); one that failed every attempt is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from sferumd.config import JournalSettings
from sferumd.model import Journal
from sferumd.services.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = logging.getLogger(__name__)

JOURNAL_HEADER = "X-Sferum-Journal"

OnSent = Callable[[], Awaitable[None]]


class JournalWebhooks:
    def __init__(self, settings: JournalSettings):
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def send(
        self, journal: Journal, payload: dict[str, Any], on_sent: OnSent | None = None
    ) -> None:
        if not journal.webhook_url:
            return
        task = asyncio.create_task(self._deliver(journal, payload, on_sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, journal: Journal, payload: dict[str, Any], on_sent: OnSent | None
    ) -> None:
        s = self.settings
        assert journal.webhook_url
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=s.webhook_timeout_s)
            )
        body = json.dumps(payload, ensure_ascii=False).encode()
        delay = s.webhook_backoff_s
        why = ""
        for attempt in range(1, s.webhook_attempts + 1):
            ts = str(int(time.time()))  # real time: the journal checks it against its clock
            headers = {
                "Content-Type": "application/json",
                JOURNAL_HEADER: journal.journal_id,
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(journal.secret, ts, body),
            }
            try:
                async with self._http.post(journal.webhook_url, data=body, headers=headers) as r:
                    if r.status // 100 == 2:
                        log.info(
                            "webhook sent",
                            extra={"journal_id": journal.journal_id, "type": payload["type"]},
                        )
                        if on_sent is not None:
                            # A closing store: the report is sent again after a restart.
                            with contextlib.suppress(RuntimeError):
                                await on_sent()
                        return
                    why = f"answered {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = repr(exc)
            if attempt < s.webhook_attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning(
            "webhook failed",
            extra={"journal_id": journal.journal_id, "type": payload["type"], "why": why},
        )

    async def close(self, grace_s: float) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
        if self._http is not None:
            await self._http.close()
