-- The process running a rollback holds a lease it renews while steps run. When the lease lapses,
-- another process marks the rollback interrupted; nothing started is ever re-run by itself.
ALTER TABLE rollbacks ADD COLUMN lease_owner TEXT;
ALTER TABLE rollbacks ADD COLUMN lease_until TIMESTAMPTZ;
CREATE INDEX rollbacks_running ON rollbacks (id) WHERE state = 'running';
