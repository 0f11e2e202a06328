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
    # Chats by hand (R11, R12): invite links (the code is stored only as its SHA-256, uses
    # are counted by a conditional update, so the last use goes to exactly one person) and
    # reports of messages to a chat's admins (one per reporter and event).
    """
    CREATE TABLE invite_links (
        link_id TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        room_id TEXT NOT NULL,
        creator TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        expires_ts INTEGER,  -- NULL: never expires
        max_uses INTEGER,  -- NULL: no limit
        uses INTEGER NOT NULL DEFAULT 0,
        approval INTEGER NOT NULL DEFAULT 0 CHECK (approval IN (0, 1)),
        revoked_ts INTEGER,
        revoked_by TEXT,
        CHECK (max_uses IS NULL OR uses <= max_uses)
    );
    CREATE INDEX invite_links_room ON invite_links (room_id, created_ts);
    CREATE TABLE reports (
        room_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        reporter TEXT NOT NULL,
        sender TEXT NOT NULL,  -- the reported event's author
        reason TEXT,
        ts INTEGER NOT NULL,
        PRIMARY KEY (event_id, reporter)
    ) WITHOUT ROWID;
    CREATE INDEX reports_room ON reports (room_id, ts)
    """,
    # Files (R14): one row per upload (the bytes are kept once per SHA-256 under the data
    # directory, see services.files), and one per message that carried a file, which is what
    # lets others download it (services.attachments).
    """
    CREATE TABLE files (
        file_id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        uploader TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        thumbnail INTEGER NOT NULL DEFAULT 0 CHECK (thumbnail IN (0, 1))
    );
    CREATE INDEX files_uploader_sha256 ON files (uploader, sha256);
    CREATE INDEX files_uploader_created ON files (uploader, created_ts);
    CREATE TABLE file_posts (
        file_id TEXT NOT NULL,
        pos INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        PRIMARY KEY (file_id, pos)
    ) WITHOUT ROWID
    """,
    # Message search (store.search, services.search): the full-text index of message text
    # (rowid = the event's position), the messages analysed in their event's commit and not
    # yet moved into it, which message each edit changed, whether deleted rows still need
    # purging from its segments, and the older events still to index (those stored before
    # this step).
    """
    CREATE VIRTUAL TABLE search_index USING fts5 (
        terms, room, tokenize = "ascii tokenchars '_'", detail = none, columnsize = 0
    );
    CREATE TABLE search_pending (
        pos INTEGER PRIMARY KEY,
        terms TEXT NOT NULL,
        room TEXT NOT NULL
    );
    CREATE TABLE search_edits (edit_pos INTEGER PRIMARY KEY, target_pos INTEGER NOT NULL);
    CREATE TABLE search_purge (pending INTEGER NOT NULL);
    INSERT INTO search_purge VALUES (0);
    CREATE TABLE search_backfill (after INTEGER NOT NULL, upto INTEGER NOT NULL);
    INSERT INTO search_backfill SELECT 0, pos FROM events ORDER BY pos DESC LIMIT 1
    """,
    # Rich messages (R14, store.messages): what relates to which message (its edits and
    # reactions), an edited message's versions, whom a message mentions, polls and their
    # votes. Kept by store.messages.apply_event in the transaction of the event concerned.
    # Anonymous votes are only ever read back as counts (services.polls).
    """
    CREATE TABLE relations (
        pos INTEGER PRIMARY KEY,  -- the edit or reaction event
        event_id TEXT NOT NULL,
        target_pos INTEGER NOT NULL,  -- the message it relates to
        rel TEXT NOT NULL CHECK (rel IN ('edit', 'reaction')),
        sender TEXT NOT NULL,
        key TEXT  -- a reaction's key
    );
    CREATE INDEX relations_target ON relations (target_pos, rel, sender, key);
    CREATE TABLE message_versions (
        target_pos INTEGER NOT NULL,
        pos INTEGER NOT NULL,  -- the edit, or the message itself for its first text
        event_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        body TEXT,
        PRIMARY KEY (target_pos, pos)
    ) WITHOUT ROWID;
    CREATE TABLE mentions (
        pos INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        PRIMARY KEY (pos, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX mentions_user ON mentions (user_id, room_id, pos);
    CREATE TABLE polls (
        pos INTEGER PRIMARY KEY,  -- the poll message
        room_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        options INTEGER NOT NULL,
        multiple INTEGER NOT NULL CHECK (multiple IN (0, 1)),
        anonymous INTEGER NOT NULL CHECK (anonymous IN (0, 1)),
        closed_pos INTEGER  -- the poll_close event
    );
    CREATE TABLE poll_votes (
        poll_pos INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        choice INTEGER NOT NULL,
        PRIMARY KEY (poll_pos, user_id, choice)
    ) WITHOUT ROWID
    """,
    # Online lessons and calls (store.calls, services.calls): each call's fixed facts, its
    # state (roster, presence, permissions, hands, breakout rooms) as one JSON document
    # rewritten on every change, the invitees of lesson calls by journal account (for the
    # journal's lists), and each whiteboard's ops since its last clear.
    """
    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('lesson', 'chat')),
        journal_id TEXT,  -- a lesson call's journal, subject chat, lesson and class
        chat_key TEXT,
        lesson_id TEXT,
        class_id TEXT,
        room_id TEXT NOT NULL,  -- the chat the call belongs to
        call_room_id TEXT NOT NULL,  -- the call's own chat
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        saved_ms INTEGER NOT NULL,  -- the calls clock when data was written
        data TEXT NOT NULL,
        reported_ms INTEGER  -- when the journal took the attendance
    );
    CREATE INDEX calls_active ON calls (state) WHERE state IN ('scheduled', 'open', 'running');
    CREATE INDEX calls_lesson ON calls (journal_id, lesson_id);
    CREATE TABLE call_invitees (
        call_id TEXT NOT NULL,
        person_id TEXT NOT NULL,
        category TEXT NOT NULL,
        blocked INTEGER NOT NULL CHECK (blocked IN (0, 1)),
        PRIMARY KEY (call_id, person_id)
    ) WITHOUT ROWID;
    CREATE INDEX call_invitees_person ON call_invitees (person_id, call_id);
    CREATE TABLE whiteboard_ops (
        board_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        author TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        op TEXT NOT NULL,
        PRIMARY KEY (board_id, seq)
    ) WITHOUT ROWID
    """,
    # A user's list of calls (store.call_list, the calls op): chat calls by their chat.
    """
    CREATE INDEX calls_chat ON calls (room_id, start_ms) WHERE kind = 'chat'
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
