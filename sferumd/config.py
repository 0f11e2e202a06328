"""Settings: defaults here, overridden by a TOML file (``--config``) and the command line.

Every limit is a named setting. The TOML file has one table per dataclass below
(``[server]``, ``[store]``, ``[websocket]``, ``[limits]``, ``[auth]``,
``[journal]``, ``[chats]``, ``[files]``, ``[search]``, ``[calls]``, ``[media]``, ``[debug]``); an
unknown key is an error, so a typo never silently keeps a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from media.settings import MediaSettings
from protocol.limits import Limits
from sferumd.services import filetypes
from sferumd.services.calls.settings import CallSettings


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    log_level: str = "INFO"
    shutdown_grace_s: float = 5.0


@dataclass(frozen=True, slots=True)
class StoreSettings:
    # NORMAL survives a crash of the process (the WAL is written before the ack); FULL also
    # survives power loss at the cost of an fsync per group commit.
    synchronous: str = "NORMAL"
    max_batch: int = 1000


@dataclass(frozen=True, slots=True)
class WebsocketSettings:
    max_queue_bytes: int = 2 * 1024 * 1024  # unsent bytes per connection before closing it
    max_backlog: int = 20_000  # live events held while a connection catches up
    auth_timeout_s: float = 10.0
    heartbeat_s: float = 30.0  # TCP keepalive idle time; a dead peer goes after ~2x this
    rate_per_s: float = 200.0  # requests per connection, sustained
    rate_burst: int = 400
    bad_frames_per_minute: int = 30  # rejected frames tolerated before closing with 4009
    max_inflight: int = 64  # requests of one connection processed at once
    catchup_chunk: int = 500  # events written between waits for the socket to drain


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Phone sign-in: code lifetime, brute-force and SMS-flood limits, the SMS gateway."""

    default_region: str = "RU"  # how numbers without a country code are read
    code_ttl_s: float = 300.0
    max_tries: int = 5  # wrong codes before the code is burned
    resend_cooldown_s: float = 60.0  # per phone
    codes_per_phone_per_hour: int = 5
    codes_per_address_per_hour: int = 20  # per client IP address
    sms_gateway: str = "console"  # console (code goes to the log) or http
    sms_http_url: str = ""
    sms_http_secret: str = ""  # HMAC-SHA256 key for the X-Sferum-Signature header
    sms_http_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class JournalSettings:
    """School journals: request signing, link sessions, outgoing webhooks."""

    clock_skew_s: float = 300.0  # how far a signed request's timestamp may be from ours
    link_ttl_s: float = 3600.0  # lifetime of a link session URL
    # An expired or used URL still says so (rather than "no such link") for this long.
    link_retention_s: float = 7 * 86400.0
    link_sessions_per_minute: int = 600  # per journal; more is refused with 429
    max_body_bytes: int = 32 * 1024 * 1024  # a roster delivery, snapshot or OneRoster zip
    max_changes: int = 10_000  # changes in one webhook batch
    max_snapshot_entities: int = 500_000  # entities in one snapshot or import
    support_contact: str = "the school's administrator"  # named in role_conflict refusals
    public_url: str = ""  # base of link URLs; empty: the address the journal called
    webhook_timeout_s: float = 5.0
    webhook_attempts: int = 3
    webhook_backoff_s: float = 1.0  # doubled after each failed attempt


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """Chats made by hand: invite links and their QR codes, reports (services.invites,
    services.moderation)."""

    public_url: str = ""  # base of invite URLs; empty: journal.public_url, else the request's
    max_links_per_room: int = 100  # live (not revoked, not expired) invite links per chat
    max_link_ttl_s: int = 366 * 86_400  # the longest expires_in_s of a link
    max_link_uses: int = 100_000  # the largest max_uses of a link
    qr_scale: int = 8  # pixels per QR module in the PNG
    max_reports_listed: int = 500  # newest reports the reports op returns


@dataclass(frozen=True, slots=True)
class FilesSettings:
    """Uploads (services.files): size, types (checked against the content), pictures."""

    max_bytes: int = 50 * 1024 * 1024  # one file; refused unread or the moment it passes
    # Types an upload may declare; each must be one the daemon can check (services.filetypes).
    allowed_types: list[str] = field(default_factory=lambda: list(filetypes.DEFAULT_ALLOWED))
    max_name_chars: int = 255
    max_image_pixels: int = 64_000_000  # width x height; more is refused as a decompression bomb
    thumbnail_px: int = 320  # the longer side of a picture's thumbnail
    bytes_per_user_per_day: int = 1024 * 1024 * 1024  # uploads in any 24 hours; 0: no quota
    uploads_in_flight_per_user: int = 4  # uploads of one user being received at once


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """Message search (services.search); the query's length and page size are [limits]."""

    max_terms: int = 16  # distinct words of a query that count; the rest are dropped
    min_prefix_chars: int = 3  # the last word matches as a prefix from this many characters
    snippet_chars: int = 160  # the text around the first match that a hit shows
    # Messages are staged in their own commit and moved into the FTS5 index in batches.
    flush_interval_s: float = 0.5
    flush_rows: int = 200  # messages moved per group commit (a few ms of the writer's time)
    purge_delay_s: float = 30.0  # how soon deleted terms are merged out of the index's files
    purge_pages: int = 200  # index pages merged per group commit while purging
    backfill_batch: int = 500  # older events indexed per group commit after an upgrade


@dataclass(frozen=True, slots=True)
class DebugSettings:
    """For tests only: never turn these on in a deployment."""

    # POST /debug/v1/clock (loopback callers only) sets the clock of calls and lessons.
    test_clock: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    websocket: WebsocketSettings = field(default_factory=WebsocketSettings)
    limits: Limits = field(default_factory=Limits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    chats: ChatSettings = field(default_factory=ChatSettings)
    files: FilesSettings = field(default_factory=FilesSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    calls: CallSettings = field(default_factory=CallSettings)  # online lessons, calls
    media: MediaSettings = field(default_factory=MediaSettings)  # the SFU (media/)
    debug: DebugSettings = field(default_factory=DebugSettings)  # tests only

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def secret_path(self) -> Path:
        return self.data_path / "auth.secret"

    @property
    def db_path(self) -> Path:
        return self.data_path / "sferumd.sqlite"


def load(path: Path | None = None, **server_overrides: Any) -> Settings:
    settings = Settings()
    if path is not None:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        settings = _apply(settings, raw, str(path))
    overrides = {k: v for k, v in server_overrides.items() if v is not None}
    if overrides:
        settings = replace(settings, server=replace(settings.server, **overrides))
    if settings.store.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError("store.synchronous must be NORMAL, FULL or EXTRA")
    if settings.auth.sms_gateway not in ("console", "http"):
        raise ValueError("auth.sms_gateway must be console or http")
    if settings.auth.sms_gateway == "http" and not (
        settings.auth.sms_http_url and settings.auth.sms_http_secret
    ):
        raise ValueError("auth.sms_gateway http needs auth.sms_http_url and auth.sms_http_secret")
    j = settings.journal
    if j.link_ttl_s <= 0 or j.clock_skew_s < 0 or j.webhook_attempts < 1:
        raise ValueError("journal: link_ttl_s > 0, clock_skew_s >= 0, webhook_attempts >= 1")
    if j.link_retention_s < 0 or j.link_sessions_per_minute < 1:
        raise ValueError("journal: link_retention_s >= 0, link_sessions_per_minute >= 1")
    if min(j.max_body_bytes, j.max_changes, j.max_snapshot_entities) < 1:
        raise ValueError("journal: max_body_bytes, max_changes, max_snapshot_entities >= 1")
    c = settings.chats
    if min(c.max_links_per_room, c.max_link_ttl_s, c.max_link_uses, c.max_reports_listed) < 1:
        raise ValueError("chats: max_links_per_room, max_link_ttl_s, max_link_uses, ... >= 1")
    if not 1 <= c.qr_scale <= 40:
        raise ValueError("chats: qr_scale must be 1..40")
    fs = settings.files
    if min(fs.max_bytes, fs.max_name_chars, fs.max_image_pixels, fs.thumbnail_px) < 1:
        raise ValueError("files: max_bytes, max_name_chars, max_image_pixels, thumbnail_px >= 1")
    if fs.bytes_per_user_per_day < 0 or fs.uploads_in_flight_per_user < 1:
        raise ValueError("files: bytes_per_user_per_day >= 0, uploads_in_flight_per_user >= 1")
    if not all(isinstance(t, str) for t in fs.allowed_types):
        raise ValueError("files.allowed_types must be a list of strings")
    filetypes.check_allowed(fs.allowed_types)
    se = settings.search
    if min(se.max_terms, se.snippet_chars, se.purge_pages, se.backfill_batch) < 1:
        raise ValueError("search: max_terms, snippet_chars, purge_pages, backfill_batch >= 1")
    if min(se.min_prefix_chars, se.flush_rows) < 1:
        raise ValueError("search: min_prefix_chars, flush_rows >= 1")
    if min(se.purge_delay_s, se.flush_interval_s) <= 0:
        raise ValueError("search: purge_delay_s, flush_interval_s > 0")
    me = settings.media
    if min(me.max_producers_per_participant, me.max_mlines, me.max_receive_slots) < 1:
        raise ValueError("media: max_producers_per_participant, max_mlines, max_receive_slots >= 1")
    if min(me.max_packets_per_s, me.history_packets, me.max_send_buffer_bytes) < 1:
        raise ValueError("media: max_packets_per_s, history_packets, max_send_buffer_bytes >= 1")
    if min(me.connect_timeout_s, me.history_max_age_ms, me.speaker_interval_ms) <= 0:
        raise ValueError("media: connect_timeout_s, history_max_age_ms, speaker_interval_ms > 0")
    if me.loudest_audio < 0:
        raise ValueError("media: loudest_audio >= 0 (0 forwards every microphone)")
    lim = settings.limits
    rich = (lim.max_reaction_key_chars, lim.max_poll_question_chars, lim.max_poll_option_chars)
    if min(*rich, lim.max_reactions_per_user, lim.max_pins) < 1 or lim.max_mentions < 0:
        raise ValueError("limits: max_reaction_*, max_pins, max_poll_*_chars >= 1, mentions >= 0")
    if lim.max_poll_options < 2:
        raise ValueError("limits.max_poll_options must be at least 2 (a poll has 2 options)")
    return settings


def _apply(settings: Settings, raw: dict[str, Any], where: str) -> Settings:
    sections = {f.name: getattr(settings, f.name) for f in fields(settings)}
    for name, table in raw.items():
        if name not in sections or not isinstance(table, dict):
            raise ValueError(f"{where}: unknown section [{name}]")
        current = sections[name]
        known = {f.name: f for f in fields(current)}
        for key, value in table.items():
            if key not in known:
                raise ValueError(f"{where}: unknown setting {name}.{key}")
            expected = type(getattr(current, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not expected:
                raise ValueError(f"{where}: {name}.{key} must be {expected.__name__}")
        sections[name] = replace(current, **table)
    return Settings(**sections)
