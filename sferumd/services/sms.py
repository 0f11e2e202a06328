"""SMS gateways: how a sign-in code reaches a phone.

``console`` writes the code to the daemon's log (``make run`` and tests read it there);
``http`` posts ``{"phone", "text"}`` as JSON to a provider, signed so the provider can tell
the request came from this daemon.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Protocol

import aiohttp

from sferumd.config import AuthSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Sferum-Signature"
TIMESTAMP_HEADER = "X-Sferum-Timestamp"


class SmsFailed(Exception):
    """The gateway did not accept the message."""


class SmsGateway(Protocol):
    async def send_code(self, phone: str, code: str) -> None: ...
    async def close(self) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``timestamp + "." + body``: the timestamp is signed too, so a
    captured request can't be replayed later with a fresh one."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def code_text(code: str) -> str:
    return f"Сферум: код для входа {code}. Никому его не сообщайте."


class ConsoleGateway:
    async def send_code(self, phone: str, code: str) -> None:
        log.info("sms code", extra={"phone": phone, "code": code})

    async def close(self) -> None:
        pass


class HttpGateway:
    def __init__(self, url: str, secret: str, timeout_s: float):
        self.url = url
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send_code(self, phone: str, code: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = json.dumps({"phone": phone, "text": code_text(code)}, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(self.secret, ts, body),
        }
        try:
            async with self._session.post(self.url, data=body, headers=headers) as resp:
                if resp.status // 100 != 2:
                    raise SmsFailed(f"provider answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SmsFailed(f"provider unreachable: {exc!r}") from exc
        log.info("sms sent", extra={"phone": phone})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def build_gateway(settings: AuthSettings) -> SmsGateway:
    if settings.sms_gateway == "http":
        return HttpGateway(
            settings.sms_http_url, settings.sms_http_secret, settings.sms_http_timeout_s
        )
    return ConsoleGateway()
