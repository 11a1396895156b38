-- One request, one transaction: three inserts and a commit (rollbot before group commit).
BEGIN;
INSERT INTO pb_rollbacks (requester, doc, at) VALUES ('U' || :client_id, '{"service": "checkout-api", "target": "41"}', now());
INSERT INTO pb_events (rollback_id, seq, event) VALUES (currval('pb_rollbacks_id_seq'), 1, '{"type": "requested"}');
INSERT INTO pb_outbox (rollback_id, payload) VALUES (currval('pb_rollbacks_id_seq'), '{"type": "post_card"}');
COMMIT;
