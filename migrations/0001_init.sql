-- Rollbacks: the folded state of each rollback, kept beside its events for fast reads.
CREATE SEQUENCE rollback_numbers;

CREATE TABLE rollbacks (
    id           BIGINT PRIMARY KEY,
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    service      TEXT NOT NULL,
    doc          JSONB NOT NULL,
    card_channel TEXT,
    card_ts      TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX rollbacks_by_channel ON rollbacks (channel_id, id DESC);
CREATE INDEX rollbacks_waiting_to_run ON rollbacks (id) WHERE state = 'queued';

-- The record: every change, append-only, in the order it happened.
CREATE TABLE rollback_events (
    rollback_id BIGINT NOT NULL REFERENCES rollbacks (id),
    seq         BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    event       JSONB NOT NULL,
    PRIMARY KEY (rollback_id, seq)
);

-- Effects waiting to reach Slack. Rows of one rollback are delivered in id order.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    rollback_id   BIGINT REFERENCES rollbacks (id),
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    available_at  TIMESTAMPTZ NOT NULL,
    attempts      INT NOT NULL DEFAULT 0,
    claimed_until TIMESTAMPTZ,
    done_at       TIMESTAMPTZ,
    outcome       TEXT,
    last_error    TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;
CREATE INDEX outbox_pending_by_rollback ON outbox (rollback_id, id) WHERE done_at IS NULL;
