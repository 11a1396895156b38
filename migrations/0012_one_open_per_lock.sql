-- One open rollback per lock key (its service's by default, `lock` in the configuration): a
-- second request is refused while the first is unfinished, so two undos cannot fight. The key is
-- copied from the request on insert; filings take an advisory lock on it first, and the index
-- holds the rule whatever happens.
ALTER TABLE rollbacks ADD COLUMN lock_key TEXT;
CREATE UNIQUE INDEX rollbacks_one_open_per_lock ON rollbacks (lock_key)
    WHERE lock_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted');
-- The same signed delivery (a digest of Slack's signature) files one rollback, whichever replica
-- it reaches and however often it comes. Kept apart from `rollbacks`, so that a rollback's many
-- updates never touch it, and pruned once Slack's signature window is long past.
CREATE TABLE deliveries (
    key TEXT PRIMARY KEY,
    rollback_id BIGINT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
