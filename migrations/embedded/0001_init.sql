-- The embedded store's schema: the same tables as PostgreSQL's migrations 0001–0005, in SQLite.
-- Times are UTC text in one fixed-width format (2026-11-22T03:00:00.000000Z), so text order is
-- time order; documents are JSON text.
CREATE TABLE rollbacks (
    id               INTEGER PRIMARY KEY,
    version          INTEGER NOT NULL,
    state            TEXT NOT NULL,
    channel_id       TEXT NOT NULL,
    service          TEXT NOT NULL,
    doc              TEXT NOT NULL,
    card_channel     TEXT,
    card_ts          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    lease_owner      TEXT,
    lease_until      TEXT,
    page_incident_id TEXT
);
CREATE INDEX rollbacks_by_channel ON rollbacks (channel_id, id DESC);
CREATE INDEX rollbacks_by_state ON rollbacks (state, id);

CREATE TABLE rollback_events (
    rollback_id INTEGER NOT NULL REFERENCES rollbacks (id),
    seq         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    PRIMARY KEY (rollback_id, seq)
) WITHOUT ROWID;

-- AUTOINCREMENT: an id is never handed out twice, as with PostgreSQL's sequences.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    rollback_id   INTEGER REFERENCES rollbacks (id),
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    available_at  TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_until TEXT,
    done_at       TEXT,
    outcome       TEXT,
    last_error    TEXT,
    lane          TEXT NOT NULL DEFAULT 'slack'
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;
CREATE INDEX outbox_pending_by_rollback ON outbox (rollback_id, lane, id) WHERE done_at IS NULL;

CREATE TABLE timers (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    rollback_id   INTEGER NOT NULL REFERENCES rollbacks (id),
    action        TEXT NOT NULL,
    due_at        TEXT NOT NULL,
    claimed_until TEXT,
    fired_at      TEXT
);
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;
CREATE INDEX timers_by_rollback ON timers (rollback_id) WHERE fired_at IS NULL;

CREATE TABLE channel_pace (
    channel TEXT PRIMARY KEY,
    next_at TEXT NOT NULL
);
