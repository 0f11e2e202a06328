"""Persistence of invite links (the ``invite_links`` table of the "Chats by hand"
migration). Writes go through the main store's group commit; each one runs in a single
transaction with the writer alone, so a use is counted by one conditional update and the
last use goes to exactly one caller."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from sferumd.store.sqlite import SqliteStore

LINK_COLUMNS = (
    "link_id, room_id, creator, created_ts, expires_ts, max_uses, uses, approval,"
    " revoked_ts, revoked_by"
)
# A link that can still be used at ``?`` (ms): not revoked, not expired, not used up.
LIVE_SQL = (
    "revoked_ts IS NULL AND (expires_ts IS NULL OR expires_ts > ?)"
    " AND (max_uses IS NULL OR uses < max_uses)"
)

# A link's state, and the outcomes of ``use``: USED, or why the link can't be used.
LIVE, REVOKED, EXPIRED, USED_UP = "live", "revoked", "expired", "used_up"
USED, NOT_FOUND = "used", "not_found"


@dataclass(frozen=True, slots=True)
class InviteLink:
    link_id: str
    room_id: str
    creator: str
    created_ts: int
    expires_ts: int | None
    max_uses: int | None
    uses: int
    approval: bool
    revoked_ts: int | None = None
    revoked_by: str | None = None

    def state(self, now: int) -> str:
        """LIVE, or REVOKED, EXPIRED, USED_UP: in that order of precedence."""
        if self.revoked_ts is not None:
            return REVOKED
        if self.expires_ts is not None and self.expires_ts <= now:
            return EXPIRED
        if self.max_uses is not None and self.uses >= self.max_uses:
            return USED_UP
        return LIVE


def _link(row: Sequence[object]) -> InviteLink:
    values = list(row)
    values[7] = bool(values[7])
    return InviteLink(*values)  # type: ignore[arg-type]


class InviteStore:
    def __init__(self, store: SqliteStore):
        self.store = store

    def add(self, link: InviteLink, code_hash: str, *, limit: int, now: int) -> Awaitable[bool]:
        """Stores the link unless its room has ``limit`` live links already (False then)."""

        def write(cur: sqlite3.Cursor) -> bool:
            (live,) = cur.execute(
                f"SELECT count(*) FROM invite_links WHERE room_id = ? AND {LIVE_SQL}",
                (link.room_id, now),
            ).fetchone()
            if live >= limit:
                return False
            cur.execute(
                f"INSERT INTO invite_links (code_hash, {LINK_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    code_hash,
                    link.link_id,
                    link.room_id,
                    link.creator,
                    link.created_ts,
                    link.expires_ts,
                    link.max_uses,
                    link.uses,
                    int(link.approval),
                    link.revoked_ts,
                    link.revoked_by,
                ),
            )
            return True

        return self.store.write(write)

    async def by_code(self, code_hash: str) -> InviteLink | None:
        rows = await self.store.query(
            f"SELECT {LINK_COLUMNS} FROM invite_links WHERE code_hash = ?", (code_hash,)
        )
        return _link(rows[0]) if rows else None

    async def by_id(self, link_id: str) -> InviteLink | None:
        rows = await self.store.query(
            f"SELECT {LINK_COLUMNS} FROM invite_links WHERE link_id = ?", (link_id,)
        )
        return _link(rows[0]) if rows else None

    async def live(self, room_id: str, now: int) -> list[InviteLink]:
        """The room's links that can be used now, newest first."""
        rows = await self.store.query(
            f"SELECT {LINK_COLUMNS} FROM invite_links WHERE room_id = ? AND {LIVE_SQL}"
            " ORDER BY created_ts DESC, link_id",
            (room_id, now),
        )
        return [_link(r) for r in rows]

    def use(self, link_id: str, now: int) -> Awaitable[str]:
        """Counts one use if the link is live: USED, or why not (NOT_FOUND, REVOKED, ...)."""

        def write(cur: sqlite3.Cursor) -> str:
            cur.execute(
                f"UPDATE invite_links SET uses = uses + 1 WHERE link_id = ? AND {LIVE_SQL}",
                (link_id, now),
            )
            if cur.rowcount == 1:
                return USED
            row = cur.execute(
                f"SELECT {LINK_COLUMNS} FROM invite_links WHERE link_id = ?", (link_id,)
            ).fetchone()
            return NOT_FOUND if row is None else _link(row).state(now)

        return self.store.write(write)

    def release(self, link_id: str) -> Awaitable[None]:
        """Gives back a use counted for a join that was then refused."""

        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "UPDATE invite_links SET uses = uses - 1 WHERE link_id = ? AND uses > 0",
                (link_id,),
            )

        return self.store.write(write)

    def revoke(self, link_id: str, by: str, now: int) -> Awaitable[None]:
        """Revokes the link; a link revoked already keeps its first revocation."""

        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "UPDATE invite_links SET revoked_ts = ?, revoked_by = ?"
                " WHERE link_id = ? AND revoked_ts IS NULL",
                (now, by, link_id),
            )

        return self.store.write(write)
