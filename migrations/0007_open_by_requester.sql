-- The per-person limit on open requests looks up a requester's unfinished rollbacks on every
-- request; the index holds only unfinished ones, so it stays small however long the history.
CREATE INDEX rollbacks_open_by_requester ON rollbacks ((doc->'request'->>'requester'))
    WHERE state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted');
