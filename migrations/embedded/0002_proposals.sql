-- Proposals (PostgreSQL's migration 0006): firing alert groups offered as rollbacks.
CREATE TABLE proposals (
    id           INTEGER PRIMARY KEY,
    version      INTEGER NOT NULL,
    group_key    TEXT NOT NULL,
    service      TEXT NOT NULL,
    resolved     INTEGER NOT NULL DEFAULT 0,
    doc          TEXT NOT NULL,
    rollback_id  INTEGER REFERENCES rollbacks (id),
    card_channel TEXT,
    card_ts      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX proposals_open_by_group ON proposals (group_key, service) WHERE resolved = 0;
CREATE UNIQUE INDEX proposals_by_rollback ON proposals (rollback_id) WHERE rollback_id IS NOT NULL;
CREATE INDEX outbox_pending_by_lane ON outbox (lane, id) WHERE done_at IS NULL AND rollback_id IS NULL;
