//! Slack's published rate limits as a model: what a stand-in for Slack (the test suite's fake,
//! the benchmark's, a local playground) answers so that rollbot meets them as it would Slack.
//! Per app and workspace, from Slack's documentation: `chat.postMessage` about one message a
//! second per channel with short bursts; `chat.update`, `conversations.history` Tier 3 (50 a
//! minute); `chat.postEphemeral`, `views.open`, `views.update` Tier 4 (100 a minute);
//! `usergroups.users.list` Tier 2 (20 a minute). Past them Slack answers HTTP 429 with
//! `Retry-After` in seconds. Pure: the time is passed in.
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// How a method is limited: `burst` calls at once, refilled at `per_minute`, for the whole
/// workspace or for each channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub burst: f64,
    pub per_minute: f64,
    pub per_channel: bool,
}

impl Limit {
    const fn tier(per_minute: f64) -> Limit {
        Limit {
            burst: per_minute,
            per_minute,
            per_channel: false,
        }
    }

    /// The limit Slack documents for `method`; `None` for the ones this model leaves open.
    pub fn of(method: &str) -> Option<Limit> {
        Some(match method {
            "chat.postMessage" => Limit {
                burst: 3.0,
                per_minute: 60.0,
                per_channel: true,
            },
            "chat.update" | "conversations.history" | "users.lookupByEmail" => Limit::tier(50.0),
            "chat.postEphemeral" | "views.open" | "views.update" => Limit::tier(100.0),
            "usergroups.users.list" => Limit::tier(20.0),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// The buckets of one workspace.
#[derive(Debug, Clone, Default)]
pub struct SlackLimits {
    buckets: HashMap<(String, String), Bucket>,
    /// Calls answered 429, by method.
    pub rate_limited: HashMap<String, u64>,
}

impl SlackLimits {
    /// Admits a call to `method` (about `channel`, when it has one) at `now`, or says how many
    /// seconds Slack would ask to wait (`Retry-After`); a refused call takes nothing.
    pub fn admit(&mut self, method: &str, channel: Option<&str>, now: DateTime<Utc>) -> Result<(), u64> {
        let Some(limit) = Limit::of(method) else {
            return Ok(());
        };
        let scope = if limit.per_channel {
            channel.unwrap_or_default()
        } else {
            ""
        };
        let bucket = self
            .buckets
            .entry((method.to_owned(), scope.to_owned()))
            .or_insert(Bucket {
                tokens: limit.burst,
                at: now,
            });
        let per_second = limit.per_minute / 60.0;
        let elapsed = (now - bucket.at).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6;
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        *self.rate_limited.entry(method.to_owned()).or_default() += 1;
        Err(((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64)
    }

    /// How many calls were answered 429.
    pub fn refused(&self) -> u64 {
        self.rate_limited.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_790_000_000_000 + ms).unwrap()
    }

    #[test]
    fn posts_burst_three_then_one_a_second_per_channel() {
        let mut slack = SlackLimits::default();
        for _ in 0..3 {
            assert_eq!(slack.admit("chat.postMessage", Some("C1"), at(0)), Ok(()));
        }
        assert_eq!(
            slack.admit("chat.postMessage", Some("C1"), at(0)),
            Err(1),
            "the fourth at once"
        );
        assert_eq!(
            slack.admit("chat.postMessage", Some("C2"), at(0)),
            Ok(()),
            "another channel has its own"
        );
        assert_eq!(
            slack.admit("chat.postMessage", Some("C1"), at(1000)),
            Ok(()),
            "a second later"
        );
        assert_eq!(slack.admit("chat.postMessage", Some("C1"), at(1500)), Err(1));
        assert_eq!(slack.refused(), 2);
    }

    #[test]
    fn updates_share_fifty_a_minute_across_the_workspace() {
        let mut slack = SlackLimits::default();
        for i in 0..50 {
            assert_eq!(slack.admit("chat.update", Some(&format!("C{i}")), at(0)), Ok(()));
        }
        assert_eq!(
            slack.admit("chat.update", Some("C99"), at(0)),
            Err(2),
            "60/50 s for the next one"
        );
        assert_eq!(slack.admit("chat.update", Some("C99"), at(1200)), Ok(()));
        assert_eq!(slack.admit("auth.test", None, at(0)), Ok(()), "not modelled: open");
        for _ in 0..100 {
            assert_eq!(slack.admit("views.open", None, at(0)), Ok(()));
        }
        assert!(
            slack.admit("views.open", None, at(0)).is_err(),
            "Tier 4: a hundred a minute"
        );
    }
}
