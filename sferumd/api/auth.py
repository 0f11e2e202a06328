"""HTTP (JSON) for phone sign-in, profile and devices: parsing and answers only; the
decisions are in services.auth. Errors are ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sferumd.api.app import DAEMON
from sferumd.model import Device, User
from sferumd.services.auth import AuthError

MAX_BODY = 4096  # sign-in and profile bodies are tiny; anything bigger is refused unread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(app: web.Application) -> None:
    app.router.add_post("/v1/auth/code", errors(request_code))
    app.router.add_post("/v1/auth/verify", errors(verify))
    app.router.add_post("/v1/auth/logout", errors(logout))
    app.router.add_get("/v1/profile", errors(get_profile))
    app.router.add_put("/v1/profile", errors(put_profile))
    app.router.add_get("/v1/devices", errors(list_devices))
    app.router.add_delete("/v1/devices/{device_id}", errors(revoke_device))


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, headers=headers)


def errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AuthError as err:
            return error(err.status, err.code, err.message, **err.extra)

    return wrapped


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused unread past ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise AuthError(413, "too_large", f"body over {limit} bytes")
    chunks, size = [], 0
    while size <= limit:
        chunk = await request.content.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise AuthError(413, "too_large", f"body over {limit} bytes")
    return b"".join(chunks)


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AuthError(400, "bad_json", "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise AuthError(400, "bad_json", "body must be a JSON object")
    return body


async def _body(request: web.Request) -> dict[str, Any]:
    return json_object(await read_body(request))


async def caller(request: web.Request) -> Device:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        raise AuthError(401, "auth_failed", "send Authorization: Bearer TOKEN")
    device = await request.app[DAEMON].store.device_for_token(token)
    if device is None:
        raise AuthError(401, "auth_failed", "unknown or revoked token")
    return device


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


async def request_code(request: web.Request) -> web.Response:
    body = await _body(request)
    phone = await request.app[DAEMON].auth.request_code(body.get("phone"), _address(request))
    cooldown = request.app[DAEMON].settings.auth.resend_cooldown_s
    return web.json_response({"phone": phone, "sent": True, "resend_after_s": cooldown})


async def verify(request: web.Request) -> web.Response:
    body = await _body(request)
    signed = await request.app[DAEMON].auth.verify(
        body.get("phone"), body.get("code"), body.get("device_name")
    )
    return web.json_response(
        {
            "user_id": signed.user_id,
            "device_id": signed.device_id,
            "token": signed.token,
            "needs_profile": signed.needs_profile,
        }
    )


async def logout(request: web.Request) -> web.Response:
    device = await caller(request)
    await request.app[DAEMON].auth.revoke(device.user_id, device.device_id)
    return web.json_response({"revoked": device.device_id})


def _profile_json(user: User) -> dict[str, Any]:
    # The owner's own view: the only response that carries the phone and birth date.
    return {
        "user_id": user.user_id,
        "phone": user.phone,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "patronymic": user.patronymic,
        "birth_date": user.birth_date,
        "gender": user.gender,
        "needs_profile": user.needs_profile,
    }


async def get_profile(request: web.Request) -> web.Response:
    device = await caller(request)
    return web.json_response(_profile_json(await request.app[DAEMON].auth.profile(device.user_id)))


async def put_profile(request: web.Request) -> web.Response:
    device = await caller(request)
    body = await _body(request)
    user = await request.app[DAEMON].auth.update_profile(device.user_id, body)
    return web.json_response(_profile_json(user))


async def list_devices(request: web.Request) -> web.Response:
    device = await caller(request)
    devices = await request.app[DAEMON].store.list_devices(device.user_id)
    return web.json_response(
        {
            "devices": [
                {
                    "device_id": d.device_id,
                    "name": d.name,
                    "created_ts": d.created_ts,
                    "last_seen_ts": d.last_seen_ts,
                    "current": d.device_id == device.device_id,
                }
                for d in devices
            ]
        }
    )


async def revoke_device(request: web.Request) -> web.Response:
    device = await caller(request)
    target = request.match_info["device_id"]
    await request.app[DAEMON].auth.revoke(device.user_id, target)
    return web.json_response({"revoked": target})


def require_loopback(request: web.Request, what: str) -> None:
    """Debug endpoints answer callers on this machine only (403 ``forbidden`` otherwise)."""
    try:
        local = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        local = False
    if not local:
        raise AuthError(403, "forbidden", f"{what} answers the loopback address only")
