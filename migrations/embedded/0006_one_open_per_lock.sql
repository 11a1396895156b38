-- One open rollback per lock key, and one rollback per signed delivery (see the PostgreSQL
-- migration 0012). One process owns the file, so filing checks both in its transaction; the
-- index and the key hold the rule whatever happens.
ALTER TABLE rollbacks ADD COLUMN lock_key TEXT;
CREATE UNIQUE INDEX rollbacks_one_open_per_lock ON rollbacks (lock_key)
    WHERE lock_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted');
CREATE TABLE deliveries (
    key TEXT PRIMARY KEY,
    rollback_id INTEGER NOT NULL,
    seen_at TEXT NOT NULL
);
