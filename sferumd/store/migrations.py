"""Versioned schema migrations. Append new steps; never edit a released one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: event log, transactions, current state, receipts, accounts
    """
    CREATE TABLE events (
        pos INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,  -- carries pos (see ids.event_id): no index needed
        room_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        type TEXT NOT NULL,
        state_key TEXT,
        content BLOB NOT NULL,
        ts INTEGER NOT NULL,
        redacts TEXT,
        redacted_by TEXT
    );
    CREATE INDEX events_room_pos ON events (room_id, pos);
    CREATE INDEX events_member_target ON events (state_key, pos) WHERE type = 'member';
    CREATE TABLE txns (
        device_id TEXT NOT NULL,
        txn TEXT NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (device_id, txn)
    ) WITHOUT ROWID;
    CREATE TABLE current_state (
        room_id TEXT NOT NULL,
        type TEXT NOT NULL,
        state_key TEXT NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (room_id, type, state_key)
    ) WITHOUT ROWID;
    CREATE TABLE receipts (
        room_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (user_id, room_id)
    ) WITHOUT ROWID;
    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        phone TEXT NOT NULL UNIQUE,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        created_ts INTEGER NOT NULL
    );
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (user_id),
        token_hash TEXT NOT NULL UNIQUE,
        created_ts INTEGER NOT NULL,
        revoked_ts INTEGER
    );
    CREATE INDEX devices_user ON devices (user_id);
    """,
    # 2: profile fields, device names and last use, sign-in codes and their send log.
    # Names may be empty until a phone sign-in fills the profile in.
    """
    ALTER TABLE users ADD COLUMN patronymic TEXT;
    ALTER TABLE users ADD COLUMN birth_date TEXT;
    ALTER TABLE users ADD COLUMN gender TEXT CHECK (gender IN ('male', 'female'));
    ALTER TABLE devices ADD COLUMN name TEXT;
    ALTER TABLE devices ADD COLUMN last_seen_ts INTEGER;
    CREATE TABLE auth_codes (
        phone TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL,
        sent_ts INTEGER NOT NULL,
        expires_ts INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE auth_sends (
        phone TEXT NOT NULL,
        address TEXT NOT NULL,
        ts INTEGER NOT NULL
    );
    CREATE INDEX auth_sends_phone ON auth_sends (phone, ts);
    CREATE INDEX auth_sends_address ON auth_sends (address, ts)
    """,
    # 3: journals (server-to-server keys), link sessions and journal account links.
    # journals.secret is a shared HMAC key that sferumd must sign webhooks with, so it is
    # stored as is (a hash would not do); protecting the database file is the operator's job.
    """
    CREATE TABLE journals (
        journal_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        webhook_url TEXT,
        created_ts INTEGER NOT NULL
    );
    CREATE TABLE link_sessions (
        session_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        journal_id TEXT NOT NULL REFERENCES journals (journal_id),
        account_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('teacher', 'student', 'parent')),
        school_id TEXT NOT NULL,
        school_name TEXT,
        display_name TEXT,
        created_ts INTEGER NOT NULL,
        expires_ts INTEGER NOT NULL,
        used_ts INTEGER,
        used_by TEXT
    );
    CREATE TABLE links (
        journal_id TEXT NOT NULL REFERENCES journals (journal_id),
        account_id TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (user_id),
        role TEXT NOT NULL CHECK (role IN ('teacher', 'student', 'parent')),
        school_id TEXT NOT NULL,
        school_name TEXT,
        linked_ts INTEGER NOT NULL,
        PRIMARY KEY (journal_id, account_id)
    );
    CREATE INDEX links_user ON links (user_id)
    """,
    # 4: nonces of signed journal requests seen inside the clock-skew window (replays are
    # refused); link sessions found by age, for the creation rate limit and for cleanup.
    """
    CREATE TABLE journal_nonces (
        journal_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_ts INTEGER NOT NULL,
        PRIMARY KEY (journal_id, nonce)
    ) WITHOUT ROWID;
    CREATE INDEX journal_nonces_expiry ON journal_nonces (expires_ts);
    CREATE INDEX link_sessions_created ON link_sessions (journal_id, created_ts);
    CREATE INDEX link_sessions_expiry ON link_sessions (expires_ts)
    """,
    # 5: the journals' rosters (latest version of every entity, deletes kept as tombstones),
    # the deliveries already applied (a replay is a no-op), and the chats the journal
    # adapter manages: which room is which class's chat, and the journal's subject chats
    # with their manual membership edits.
    """
    CREATE TABLE roster_entities (
        journal_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        sourced_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        data TEXT,  -- the entity's wire JSON, NULL for a delete (a tombstone)
        PRIMARY KEY (journal_id, kind, sourced_id)
    ) WITHOUT ROWID;
    CREATE TABLE roster_deliveries (
        journal_id TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        received_ts INTEGER NOT NULL,
        summary TEXT NOT NULL,  -- the answer given, repeated for a replay
        PRIMARY KEY (journal_id, delivery_id)
    ) WITHOUT ROWID;
    CREATE TABLE journal_chats (
        journal_id TEXT NOT NULL,
        chat_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('class', 'parents', 'colleagues', 'subject')),
        room_id TEXT UNIQUE,
        class_id TEXT NOT NULL,
        subject_id TEXT,
        group_id TEXT,
        teacher_id TEXT,
        name TEXT,  -- the journal's choice (subject chats)
        applied_name TEXT,  -- what reconciliation last named the room
        added TEXT NOT NULL DEFAULT '[]',  -- user ids added by hand (subject chats)
        removed TEXT NOT NULL DEFAULT '[]',  -- user ids removed by hand
        created_ts INTEGER NOT NULL,
        deleted_ts INTEGER,  -- the journal deleted this subject chat
        archived_ts INTEGER,  -- nobody is left: the room stays as history
        PRIMARY KEY (journal_id, chat_key)
    )
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it. Each step is one transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this sferumd ({len(MIGRATIONS)})"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
