-- PostgreSQL's migration 0007: a requester's unfinished rollbacks, for the per-person limit.
CREATE INDEX rollbacks_open_by_requester ON rollbacks (json_extract(doc, '$.request.requester'))
    WHERE state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted');
