"""Phone sign-in, profiles and devices: the decisions. The store runs them atomically.

A code is 6 digits from ``secrets``, stored only as HMAC-SHA256(daemon secret, phone:code),
so a copy of the database doesn't yield usable codes and a hash can't be replayed for another
phone. Limits (lifetime, tries, cooldown, hourly sends per phone and per address) are
``[auth]`` settings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers

from protocol.errors import CloseCode
from sferumd.config import AuthSettings
from sferumd.hub import Hub
from sferumd.model import CodeWindow, NewDevice, Profile, StoredCode, User
from sferumd.services.sms import SmsFailed, SmsGateway
from sferumd.store.base import Store

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
MAX_NAME = 100
MAX_DEVICE_NAME = 100
GENDERS = ("male", "female")


class AuthError(Exception):
    """A refused request: HTTP status, error code, message and extra fields for the body."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def invalid_field(field: str, why: str) -> AuthError:
    return AuthError(400, "invalid_field", f"{field}: {why}", field=field)


@dataclass(frozen=True, slots=True)
class SignIn:
    user_id: str
    device_id: str
    token: str
    needs_profile: bool


def normalise_phone(raw: object, region: str) -> str:
    """E.164 for a valid number, else ``invalid_phone``."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
        raise AuthError(400, "invalid_phone", "phone must be a phone number, e.g. +79991234567")
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise AuthError(400, "invalid_phone", f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise AuthError(400, "invalid_phone", "not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def load_secret(path: Path) -> bytes:
    """The daemon's code-hashing key, created on first use, readable by its owner only."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _now_ms() -> int:
    return int(time.time() * 1000)


def _retry_after(ms: int) -> AuthError:
    seconds = max(1, -(-ms // 1000))  # whole seconds, rounded up
    return AuthError(
        429, "rate_limited", f"too many codes; retry in {seconds} s", retry_after=seconds
    )


def send_refusal(window: CodeWindow, now: int, s: AuthSettings) -> AuthError | None:
    """Why a code may not be sent now, or None. Pure: the store calls it in its transaction."""
    if window.last_sent_ts is not None:
        wait = window.last_sent_ts + int(s.resend_cooldown_s * 1000) - now
        if wait > 0:
            return _retry_after(wait)
    for sends, limit in (
        (window.phone_sends, s.codes_per_phone_per_hour),
        (window.address_sends, s.codes_per_address_per_hour),
    ):
        if len(sends) >= limit:
            # The window frees a slot when the oldest send counted in it turns an hour old.
            return _retry_after(sends[len(sends) - limit] + HOUR_MS - now)
    return None


def judge_code(stored: StoredCode | None, code_hash: str, now: int, max_tries: int) -> str:
    """``ok``, ``wrong``, or the error code saying why this phone's code can't be used."""
    if stored is None:
        return "no_code"
    if stored.tries >= max_tries:
        return "code_burned"
    if stored.expires_ts <= now:
        return "code_expired"
    return "ok" if hmac.compare_digest(stored.code_hash, code_hash) else "wrong"


def check_profile(body: dict[str, Any]) -> Profile:
    unknown = set(body) - {"first_name", "last_name", "patronymic", "birth_date", "gender"}
    if unknown:
        raise invalid_field(sorted(unknown)[0], "unknown field")
    first = _name(body, "first_name", required=True)
    last = _name(body, "last_name", required=True)
    assert first is not None and last is not None
    return Profile(
        first, last, _name(body, "patronymic", required=False), _birth_date(body), _gender(body)
    )


def _name(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise invalid_field(field, "required, a string")
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME:
        raise invalid_field(field, f"must be 1..{MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise invalid_field(field, "must not contain control or invisible format characters")
    return value


def _birth_date(body: dict[str, Any]) -> str | None:
    value = body.get("birth_date")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise invalid_field("birth_date", "must be an ISO date YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise invalid_field("birth_date", "must be a real date YYYY-MM-DD") from None
    if day < dt.date(1900, 1, 1) or day >= dt.date.today():
        raise invalid_field("birth_date", "must be in the past and not before 1900-01-01")
    return day.isoformat()


def _gender(body: dict[str, Any]) -> str | None:
    value = body.get("gender")
    if value is None:
        return None
    if value not in GENDERS:
        raise invalid_field("gender", "must be male or female")
    return str(value)


def check_device_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_DEVICE_NAME:
        raise invalid_field(
            "device_name", f"must be a string of at most {MAX_DEVICE_NAME} characters"
        )
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise invalid_field("device_name", "must not contain control characters")
    return value.strip() or None


class AuthService:
    def __init__(
        self, store: Store, hub: Hub, gateway: SmsGateway, settings: AuthSettings, secret: bytes
    ):
        self.store = store
        self.hub = hub
        self.gateway = gateway
        self.settings = settings
        self.secret = secret

    def _hash(self, phone: str, code: str) -> str:
        return hmac.new(self.secret, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()

    async def request_code(self, raw_phone: object, address: str) -> str:
        """Sends a new code; returns the normalised phone."""
        s = self.settings
        phone = normalise_phone(raw_phone, s.default_region)
        code = f"{secrets.randbelow(1_000_000):06d}"
        code_hash = self._hash(phone, code)
        now = _now_ms()
        refusal = await self.store.issue_code(
            phone,
            address,
            code_hash,
            now,
            now + int(s.code_ttl_s * 1000),
            lambda window: send_refusal(window, now, s),
        )
        if refusal is not None:
            raise refusal
        try:
            await self.gateway.send_code(phone, code)
        except SmsFailed as exc:
            # An unsent code must not stay usable (nor block a retry through the cooldown).
            await self.store.forget_code(phone, code_hash)
            log.warning("sms failed", extra={"phone": phone, "why": str(exc)})
            raise AuthError(502, "sms_failed", "the SMS gateway failed; try again") from None
        return phone

    async def verify(self, raw_phone: object, code: object, device_name: object) -> SignIn:
        s = self.settings
        phone = normalise_phone(raw_phone, s.default_region)
        if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
            raise invalid_field("code", "must be the 6 digits from the SMS")
        name = check_device_name(device_name)
        code_hash, now = self._hash(phone, code), _now_ms()
        verdict, stored, new = await self.store.verify_code(
            phone, lambda st: judge_code(st, code_hash, now, s.max_tries), name
        )
        if verdict == "ok":
            assert new is not None
            return await self._signed_in(new)
        if verdict == "wrong":
            assert stored is not None
            left = s.max_tries - stored.tries
            if left <= 0:
                raise AuthError(400, "code_burned", "too many wrong codes; request a new one")
            raise AuthError(400, "wrong_code", f"wrong code; {left} tries left", tries_left=left)
        raise AuthError(400, verdict, _VERDICT_MESSAGES[verdict])

    async def _signed_in(self, new: NewDevice) -> SignIn:
        user = await self.store.get_user(new.user_id)
        assert user is not None
        log.info("signed in", extra={"user_id": new.user_id, "device_id": new.device_id})
        return SignIn(new.user_id, new.device_id, new.token, user.needs_profile)

    async def profile(self, user_id: str) -> User:
        user = await self.store.get_user(user_id)
        assert user is not None  # a live token's user exists
        return user

    async def update_profile(self, user_id: str, body: dict[str, Any]) -> User:
        await self.store.update_profile(user_id, check_profile(body))
        return await self.profile(user_id)

    async def revoke(self, user_id: str, device_id: str) -> None:
        """Revoke one of the user's devices and close its live connections at once."""
        if not await self.store.revoke_device(user_id, device_id):
            raise AuthError(404, "not_found", "no such device of yours")
        for conn in list(self.hub.by_user.get(user_id, ())):
            if conn.device_id == device_id:
                conn.close(CloseCode.DEVICE_REVOKED, "device revoked")
        log.info("device revoked", extra={"user_id": user_id, "device_id": device_id})


_VERDICT_MESSAGES = {
    "no_code": "no code was requested for this phone, or it was used; request one",
    "code_expired": "the code has expired; request a new one",
    "code_burned": "too many wrong codes; request a new one",
}
