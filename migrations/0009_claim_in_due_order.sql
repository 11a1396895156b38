-- Claiming outbox rows walks the due-time index in order and stops once it has enough.
-- The outbox changes faster than its statistics: after a burst (thousands of cards at once,
-- each waiting for its channel's slot) the planner believed a handful of rows were due and
-- chose to fetch and sort all of them on every claim — 7,600 buffer reads for 16 rows,
-- quadratic in the backlog. The function's settings rule out that plan whatever the
-- statistics say; the predecessor probes and the lock are unchanged.
CREATE FUNCTION claim_outbox(now TIMESTAMPTZ, until TIMESTAMPTZ, wanted BIGINT)
RETURNS TABLE (id BIGINT, rollback_id BIGINT, payload JSONB, attempts INT, slot_reserved BOOLEAN)
LANGUAGE sql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
    UPDATE outbox SET claimed_until = until, attempts = outbox.attempts + 1
    WHERE outbox.id IN (
        SELECT o.id FROM outbox o
        WHERE o.done_at IS NULL AND o.available_at <= now
          AND (o.claimed_until IS NULL OR o.claimed_until < now)
          AND NOT EXISTS (SELECT 1 FROM outbox p
                          WHERE p.rollback_id = o.rollback_id AND p.lane = o.lane
                            AND p.id < o.id AND p.done_at IS NULL)
          -- Apart, not OR-ed: each probe then walks its own index.
          AND NOT (o.rollback_id IS NULL AND o.lane <> 'slack'
                   AND EXISTS (SELECT 1 FROM outbox p
                               WHERE p.rollback_id IS NULL AND p.lane = o.lane
                                 AND p.id < o.id AND p.done_at IS NULL))
        ORDER BY o.available_at, o.id LIMIT wanted
        FOR UPDATE SKIP LOCKED)
    RETURNING outbox.id, outbox.rollback_id, outbox.payload, outbox.attempts, outbox.slot_at IS NOT NULL
$$;
