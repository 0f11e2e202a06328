"""Journal accounts linked to profiles: signed journal requests, link sessions, the R5 role
rule, unlinking and the outgoing signed webhooks. The decisions are pure functions
(``verify_request``, ``judge_link``, ``check_session_request``); the store runs the writes
atomically.

Authority comes from the journal: a link's role and school are copied from the link
session the journal created (a signed request), never from what the person's browser sends.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sferumd import ids
from sferumd.config import JournalSettings
from sferumd.model import Journal, Link, LinkSession
from sferumd.services.auth import AuthError, invalid_field
from sferumd.services.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from sferumd.services.webhooks import JOURNAL_HEADER, JournalWebhooks
from sferumd.store.base import Store

log = logging.getLogger(__name__)

NONCE_HEADER = "X-Sferum-Nonce"
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
ROLES = ("teacher", "student", "parent")
MAX_ID = 128
MAX_TEXT = 200


def _now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def check_text(value: object, field: str, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid_field(field, "required, a non-empty string")
    value = value.strip()
    if len(value) > limit:
        raise invalid_field(field, f"at most {limit} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise invalid_field(field, "must not contain control or invisible format characters")
    return value


def check_account_id(value: object) -> str:
    account = check_text(value, "account_id", MAX_ID, required=True)
    assert account is not None
    return account


@dataclass(frozen=True, slots=True)
class SessionRequest:
    account_id: str
    role: str
    school_id: str
    school_name: str | None
    display_name: str | None


def check_session_request(body: dict[str, Any]) -> SessionRequest:
    allowed = {"account_id", "role", "school_id", "school_name", "display_name"}
    unknown = set(body) - allowed
    if unknown:
        raise invalid_field(sorted(unknown)[0], "unknown field")
    if body.get("role") not in ROLES:
        raise invalid_field("role", "must be teacher, student or parent")
    school = check_text(body.get("school_id"), "school_id", MAX_ID, required=True)
    assert school is not None
    return SessionRequest(
        check_account_id(body.get("account_id")),
        str(body["role"]),
        school,
        check_text(body.get("school_name"), "school_name", MAX_TEXT, required=False),
        check_text(body.get("display_name"), "display_name", MAX_TEXT, required=False),
    )


def request_message(nonce: str, method: str, target: str, body: bytes) -> bytes:
    """What a journal request's signature covers besides the timestamp: a nonce (so the
    same request can't be sent twice), the method and the target (path and query, as
    sent), so a signed GET can't be replayed as a DELETE either."""
    return f"{nonce}.{method.upper()} {target}".encode() + b"." + body


def check_nonce(nonce: str) -> None:
    if not NONCE_RE.fullmatch(nonce):
        raise AuthError(
            401, "bad_nonce", f"{NONCE_HEADER} must be 16..64 characters of A-Z a-z 0-9 _ -"
        )


def verify_request(
    journal: Journal | None,
    timestamp: str,
    signature: str,
    message: bytes,
    now_s: float,
    skew_s: float,
) -> None:
    """Raises 401 ``unknown_journal``, ``bad_signature`` or ``stale_request``."""
    if journal is None:
        raise AuthError(401, "unknown_journal", f"send {JOURNAL_HEADER} with a registered id")
    expected = sign(journal.secret, timestamp, message)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise AuthError(
            401,
            "bad_signature",
            f"{SIGNATURE_HEADER} must be hex HMAC-SHA256(secret,"
            " timestamp + '.' + nonce + '.' + METHOD + ' ' + path + '.' + body)",
        )
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise AuthError(401, "stale_request", f"{TIMESTAMP_HEADER} must be unix seconds")
    if abs(now_s - int(timestamp)) > skew_s:
        raise AuthError(
            401, "stale_request", f"{TIMESTAMP_HEADER} is more than {skew_s:g} s from our clock"
        )


def conflicting_role(role: str, mine: list[Link]) -> Link | None:
    """R5: a student account never shares a profile with a parent or teacher account."""
    for link in mine:
        if (role == "student") != (link.role == "student"):
            return link
    return None


def judge_link(
    session: LinkSession | None, current: Link | None, mine: list[Link], user_id: str, now: int
) -> str:
    """``ok`` or the error code saying why this user can't confirm this session now."""
    if session is None:
        return "link_not_found"
    if session.used_ts is not None:
        return "link_used"
    if session.expires_ts <= now:
        return "link_expired"
    if current is not None:
        return "ok" if current.user_id == user_id else "already_linked"
    if conflicting_role(session.role, mine) is not None:
        return "role_conflict"
    return "ok"


_MESSAGES = {
    "link_not_found": (404, "no such link; ask the journal for a new one"),
    "link_used": (410, "this link was used already; ask the journal for a new one"),
    "link_expired": (410, "this link has expired; ask the journal for a new one"),
    "already_linked": (409, "this journal account is linked to another profile already"),
}


def link_refusal(verdict: str, session: LinkSession | None, support: str) -> AuthError:
    if verdict == "role_conflict":
        assert session is not None
        if session.role == "student":
            why = (
                "this profile holds a parent or teacher account, so a student account can't be"
                " linked to it. Register the child with the child's own phone number"
            )
        else:
            why = (
                f"this profile holds a student account, so a {session.role} account can't be"
                " linked to it. Sign in with your own phone number, not the child's"
            )
        return AuthError(
            409, "role_conflict", f"{why}; for help contact {support}.", support_contact=support
        )
    status, message = _MESSAGES[verdict]
    return AuthError(status, verdict, message)


@dataclass(frozen=True, slots=True)
class NewSession:
    session: LinkSession
    token: str


class LinkingService:
    def __init__(
        self,
        store: Store,
        settings: JournalSettings,
        on_change: Callable[[str], Awaitable[None]] | None = None,
    ):
        self.store = store
        self.settings = settings
        self.on_change = on_change  # told the journal id after every link and unlink
        self.webhooks = JournalWebhooks(settings)

    # -- the journal's side ---------------------------------------------------------------

    async def authenticate(
        self, journal_id: str, timestamp: str, nonce: str, signature: str, message: bytes
    ) -> Journal:
        """``message`` is ``request_message(nonce, method, target, body)``. A nonce is
        remembered for twice the clock-skew window: any copy of the request that still has
        an acceptable timestamp is refused as ``replayed_request``."""
        journal = None
        if journal_id and len(journal_id) <= MAX_ID:
            journal = await self.store.get_journal(journal_id)
        now = time.time()
        skew = self.settings.clock_skew_s
        verify_request(journal, timestamp, signature, message, now, skew)
        assert journal is not None
        check_nonce(nonce)
        now_ms = int(now * 1000)
        expires = now_ms + int(2 * skew * 1000) + 1000
        if not await self.store.remember_nonce(journal.journal_id, nonce, now_ms, expires):
            raise AuthError(401, "replayed_request", "this request was received already")
        return journal

    async def create_session(self, journal: Journal, body: dict[str, Any]) -> NewSession:
        req = check_session_request(body)
        now = _now_ms()
        session = LinkSession(
            ids.link_session_id(),
            journal.journal_id,
            req.account_id,
            req.role,
            req.school_id,
            req.school_name,
            req.display_name,
            now,
            now + int(self.settings.link_ttl_s * 1000),
        )
        token = ids.link_token()
        s = self.settings
        oldest = await self.store.add_link_session(
            session,
            ids.token_hash(token),
            limit=s.link_sessions_per_minute,
            window_start_ts=now - 60_000,
            purge_before_ts=now - int(s.link_retention_s * 1000),
        )
        if oldest is not None:
            wait = max(1, -(-(oldest + 60_000 - now) // 1000))
            raise AuthError(
                429,
                "rate_limited",
                f"more than {s.link_sessions_per_minute} link sessions a minute; retry in {wait} s",
                retry_after=wait,
            )
        log.info(
            "link session",
            extra={"journal_id": journal.journal_id, "session_id": session.session_id},
        )
        return NewSession(session, token)

    async def status(self, journal: Journal, raw_account: str) -> Link | None:
        return await self.store.get_link(journal.journal_id, check_account_id(raw_account))

    async def unlink_by_journal(self, journal: Journal, raw_account: str) -> None:
        link = await self.store.unlink(journal.journal_id, check_account_id(raw_account))
        if link is not None:
            await self._changed(journal, "unlinked", link)

    # -- the person's side ----------------------------------------------------------------

    async def session_for_token(self, token: str) -> LinkSession:
        session = None
        if 0 < len(token) <= 128:
            session = await self.store.link_session(ids.token_hash(token))
        verdict = judge_link(session, None, [], "", _now_ms())
        if verdict != "ok":
            raise link_refusal(verdict, session, self.settings.support_contact)
        assert session is not None
        return session

    async def confirm(self, token: str, user_id: str) -> tuple[Link, str]:
        """Links the session's account to the user; returns the link and the journal name."""
        if not 0 < len(token) <= 128:
            raise link_refusal("link_not_found", None, self.settings.support_contact)
        now = _now_ms()
        verdict, session, link = await self.store.confirm_link(
            ids.token_hash(token),
            user_id,
            now,
            lambda s, cur, mine: judge_link(s, cur, mine, user_id, now),
        )
        if verdict != "ok":
            raise link_refusal(verdict, session, self.settings.support_contact)
        assert session is not None and link is not None
        journal = await self.store.get_journal(session.journal_id)
        assert journal is not None
        log.info(
            "linked",
            extra={
                "journal_id": link.journal_id,
                "account_id": link.account_id,
                "user_id": user_id,
            },
        )
        if link.linked_ts == now:  # newly linked (not a repeat of an earlier confirm)
            await self._changed(journal, "linked", link)
        return link, journal.name

    async def links(self, user_id: str) -> list[tuple[Link, str]]:
        return await self.store.user_links(user_id)

    async def unlink_by_user(self, user_id: str, journal_id: str, raw_account: str) -> None:
        link = None
        if 0 < len(journal_id) <= MAX_ID:
            link = await self.store.unlink(journal_id, check_account_id(raw_account), user_id)
        if link is None:
            raise AuthError(404, "not_found", "no such link of yours")
        journal = await self.store.get_journal(journal_id)
        if journal is not None:
            await self._changed(journal, "unlinked", link)

    # -- outgoing webhooks ----------------------------------------------------------------

    async def _changed(self, journal: Journal, kind: str, link: Link) -> None:
        if self.on_change is not None:
            try:
                await self.on_change(journal.journal_id)
            except Exception:
                # The link itself is committed; the next reconciliation catches up.
                log.exception("reconcile after link change failed")
        self._notify(journal, kind, link)

    def _notify(self, journal: Journal, kind: str, link: Link) -> None:
        body = {
            "type": kind,
            "account_id": link.account_id,
            "user_id": link.user_id,
            "ts": int(time.time()),
        }
        self.webhooks.send(journal, body)

    async def close(self, grace_s: float) -> None:
        await self.webhooks.close(grace_s)
