-- One open rollback per lock key (its service's by default, `lock` in the configuration): a
-- second request is refused while the first is unfinished, so two undos cannot fight. The same
-- signed delivery (a digest of Slack's signature) files one rollback, whichever replica it
-- reaches and however often it comes. Both keys are copied from the request on insert; filings
-- take an advisory lock on each key first, and these indexes hold the rule whatever happens.
ALTER TABLE rollbacks ADD COLUMN lock_key TEXT;
ALTER TABLE rollbacks ADD COLUMN delivery_key TEXT;
CREATE UNIQUE INDEX rollbacks_one_open_per_lock ON rollbacks (lock_key)
    WHERE lock_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted');
CREATE UNIQUE INDEX rollbacks_by_delivery ON rollbacks (delivery_key) WHERE delivery_key IS NOT NULL;
