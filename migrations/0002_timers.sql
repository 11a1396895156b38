-- Durable timers: escalation levels and expiry of rollbacks awaiting approval. A timer is
-- claimed with a lease, fires once, and is deleted when the rollback no longer awaits approval.
CREATE TABLE timers (
    id            BIGSERIAL PRIMARY KEY,
    rollback_id   BIGINT NOT NULL REFERENCES rollbacks (id),
    action        JSONB NOT NULL,
    due_at        TIMESTAMPTZ NOT NULL,
    claimed_until TIMESTAMPTZ,
    fired_at      TIMESTAMPTZ
);
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;
CREATE INDEX timers_by_rollback ON timers (rollback_id) WHERE fired_at IS NULL;
