-- Each claim of a run takes a new lease epoch (the rollback's version after the claim). Every
-- write the executor makes, renewals included, names the owner and the epoch it holds, so a
-- process that stalled past its lease can neither take the lease back nor record a result for
-- a later attempt.
ALTER TABLE rollbacks ADD COLUMN lease_epoch BIGINT;
