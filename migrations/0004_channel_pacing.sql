-- Slack accepts about one message per second per channel. Every replica reserves its posts to
-- a channel here, so together they stay under the limit.
CREATE TABLE channel_pace (
    channel TEXT PRIMARY KEY,
    next_at TIMESTAMPTZ NOT NULL
);
