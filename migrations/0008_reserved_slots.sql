-- A message that must wait for its channel's posting slot gets a slot of its own, reserved in
-- channel_pace, and waits for it once: slot_at says it holds one. Messages that wait are
-- skipped by the due-time index instead of being scanned at every claim.
ALTER TABLE outbox ADD COLUMN slot_at TIMESTAMPTZ;
CREATE INDEX outbox_due ON outbox (available_at, id) WHERE done_at IS NULL;
