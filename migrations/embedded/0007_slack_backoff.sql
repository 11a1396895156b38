-- Until when Slack asked (429 with Retry-After) not to call a method again.
CREATE TABLE slack_backoff (
    method TEXT PRIMARY KEY,
    until TEXT NOT NULL
);
