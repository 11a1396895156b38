-- Three tables shaped like what a request writes: the rollback, its first event, its card.
DROP TABLE IF EXISTS pb_rollbacks, pb_events, pb_outbox;
CREATE TABLE pb_rollbacks (id BIGSERIAL PRIMARY KEY, requester TEXT NOT NULL, doc JSONB NOT NULL, at TIMESTAMPTZ NOT NULL);
CREATE TABLE pb_events (rollback_id BIGINT NOT NULL, seq BIGINT NOT NULL, event JSONB NOT NULL, PRIMARY KEY (rollback_id, seq));
CREATE TABLE pb_outbox (id BIGSERIAL PRIMARY KEY, rollback_id BIGINT, payload JSONB NOT NULL, done_at TIMESTAMPTZ);
CREATE INDEX pb_outbox_pending ON pb_outbox (id) WHERE done_at IS NULL;
