-- 32 requests, one transaction: each table gets one multi-row insert (rollbot's filer).
BEGIN;
WITH r AS (INSERT INTO pb_rollbacks (requester, doc, at)
           SELECT 'U' || g, '{"service": "checkout-api", "target": "41"}', now() FROM generate_series(1, 32) g RETURNING id)
INSERT INTO pb_events (rollback_id, seq, event) SELECT id, 1, '{"type": "requested"}' FROM r;
INSERT INTO pb_outbox (rollback_id, payload) SELECT currval('pb_rollbacks_id_seq') - 32 + g, '{"type": "post_card"}' FROM generate_series(1, 32) g;
COMMIT;
