-- Each claim of a run takes a new lease epoch (the rollback's version after the claim); the
-- executor's writes name the owner and the epoch they hold (see the PostgreSQL migration 0011).
ALTER TABLE rollbacks ADD COLUMN lease_epoch INTEGER;
