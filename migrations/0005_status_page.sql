-- Status page updates are delivered in their own lane: a slow or failing page never holds up
-- the rollback's Slack messages, while its own updates stay in order.
ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT 'slack';
DROP INDEX outbox_pending_by_rollback;
CREATE INDEX outbox_pending_by_rollback ON outbox (rollback_id, lane, id) WHERE done_at IS NULL;
-- The incident the status page provider created for a rollback.
ALTER TABLE rollbacks ADD COLUMN page_incident_id TEXT;
