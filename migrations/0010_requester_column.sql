-- Every change rewrites a rollback's document. While the per-person index was an expression on
-- that document, no update could be HOT: each one added an entry to every index of the table.
-- The requester never changes, so it gets a column of its own (filled from the document on
-- insert), and the table leaves room on each page for the next version of a row: a change that
-- keeps the rollback's state (an approval of several, a step after a step, a lease renewal)
-- then touches no index when its page has room (fill factor 50 was measured slower).
-- Replicas of an older release file requests without it: upgrade them together, as `serve`
-- applies this on start.
ALTER TABLE rollbacks ADD COLUMN requester TEXT;
UPDATE rollbacks SET requester = doc->'request'->>'requester';
CREATE INDEX rollbacks_open_by_requester_column ON rollbacks (requester)
    WHERE state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted');
DROP INDEX rollbacks_open_by_requester;
ALTER TABLE rollbacks SET (fillfactor = 80);
