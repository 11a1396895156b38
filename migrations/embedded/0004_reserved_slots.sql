-- PostgreSQL's migration 0008: a message waiting for its channel holds a reserved slot.
ALTER TABLE outbox ADD COLUMN slot_at TEXT;
CREATE INDEX outbox_due ON outbox (available_at, id) WHERE done_at IS NULL;
