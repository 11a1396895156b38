-- When Slack answers a method with 429 and Retry-After, every replica waits until then before
-- calling that method again: a rate limit is an appointment, not a failure, and is kept here
-- so that replicas do not each spend their own attempts finding it out.
CREATE TABLE slack_backoff (
    method TEXT PRIMARY KEY,
    until TIMESTAMPTZ NOT NULL
);
