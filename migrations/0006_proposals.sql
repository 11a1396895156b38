-- Proposals: firing alert groups offered as rollbacks, until someone starts or dismisses them.
CREATE SEQUENCE proposal_numbers;

CREATE TABLE proposals (
    id           BIGINT PRIMARY KEY,
    version      BIGINT NOT NULL,
    group_key    TEXT NOT NULL,
    service      TEXT NOT NULL,
    resolved     BOOLEAN NOT NULL DEFAULT false,
    doc          JSONB NOT NULL,
    rollback_id  BIGINT REFERENCES rollbacks (id),
    card_channel TEXT,
    card_ts      TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
-- One open proposal per alert group and service: repeated notifications update it.
CREATE UNIQUE INDEX proposals_open_by_group ON proposals (group_key, service) WHERE NOT resolved;
-- A rollback is started from one proposal at most.
CREATE UNIQUE INDEX proposals_by_rollback ON proposals (rollback_id) WHERE rollback_id IS NOT NULL;

-- A proposal's card messages belong to no rollback; they keep their order in their own lane.
CREATE INDEX outbox_pending_by_lane ON outbox (lane, id) WHERE done_at IS NULL AND rollback_id IS NULL;
