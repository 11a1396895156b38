//! Where mistakes are collected, with file:line:column, and the bounds every duration has.
use super::*;

pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) source: &'a str,
    pub(super) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = line_column(self.source, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
            hint,
        });
    }

    /// A duration within the bounds of `setting`: every duration has a least value that can
    /// work and a largest that makes sense, so a file that validates also runs.
    pub(super) fn duration(&mut self, value: &Spanned<String>, setting: DurationSetting) -> Option<Duration> {
        let parsed = match humantime::parse_duration(value.get_ref()) {
            Ok(d) => d,
            Err(_) => {
                self.error(
                    value.span(),
                    format!("`{}` is not a duration", value.get_ref()),
                    Some("write durations like \"90s\", \"30m\" or \"1h\"".into()),
                );
                return None;
            }
        };
        let (name, least, most, why) = setting.bounds();
        let words = |d: Duration| humantime::format_duration(d).to_string();
        if parsed < least || parsed > most {
            let (which, bound) = if parsed < least {
                ("short", least)
            } else {
                ("long", most)
            };
            self.error(
                value.span(),
                format!(
                    "`{}` is too {which} for `{name}`: it must be between {} and {}",
                    value.get_ref(),
                    words(least),
                    words(most)
                ),
                Some(format!(
                    "{why}; use {} or {}",
                    words(bound),
                    if which == "short" { "more" } else { "less" }
                )),
            );
            return None;
        }
        Some(parsed)
    }
}

/// Each duration the configuration takes, with its bounds.
#[derive(Debug, Clone, Copy)]
pub(super) enum DurationSetting {
    ExecutionLease,
    ShutdownGrace,
    GroupCache,
    ResolveAfter,
    RespondWithin,
    ExpireAfter,
    EscalationAfter,
    StepTimeout,
    HealthWithin,
    HealthEvery,
    RetryDelay,
    ExpectedDuration,
    DeliveryGivesUpAfter,
    OutboxRetention,
    AutoRequestEvery,
    UpdateReminder,
    StepProgressEvery,
}

impl DurationSetting {
    /// The setting's name, its least and largest values, and why.
    pub(super) fn bounds(self) -> (&'static str, Duration, Duration, &'static str) {
        const SECOND: Duration = Duration::from_secs(1);
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        match self {
            DurationSetting::ExecutionLease => (
                "execution_lease",
                2 * SECOND,
                HOUR,
                "it is renewed every third of it, and a renewal must fit a database round trip; past it, a dead process's run waits that long to be noticed",
            ),
            DurationSetting::ShutdownGrace => (
                "shutdown_grace",
                Duration::ZERO,
                HOUR,
                "container runtimes kill a process that takes longer to stop",
            ),
            DurationSetting::GroupCache => (
                "group_cache",
                SECOND,
                DAY,
                "user groups are read from Slack at most this often",
            ),
            DurationSetting::ResolveAfter => ("resolve_after", MINUTE, 7 * DAY, "the watch window after success"),
            DurationSetting::RespondWithin => ("respond_within", MINUTE, 7 * DAY, "how long approvers have to answer"),
            DurationSetting::ExpireAfter => (
                "expire_after",
                MINUTE,
                7 * DAY,
                "a request nobody approved expires then",
            ),
            DurationSetting::EscalationAfter => (
                "after",
                Duration::ZERO,
                7 * DAY,
                "when the level joins after the request",
            ),
            DurationSetting::StepTimeout => ("timeout", SECOND, DAY, "a step is killed after this long"),
            DurationSetting::HealthWithin => ("within", SECOND, DAY, "how long a health check may take to pass"),
            DurationSetting::HealthEvery => (
                "every",
                Duration::from_millis(100),
                10 * MINUTE,
                "how often a health check polls",
            ),
            DurationSetting::RetryDelay => (
                "retry_delay",
                Duration::ZERO,
                HOUR,
                "the wait before a failed step is tried again",
            ),
            DurationSetting::ExpectedDuration => (
                "expected_duration",
                SECOND,
                7 * DAY,
                "what the announcement says the rollback takes",
            ),
            DurationSetting::DeliveryGivesUpAfter => (
                "delivery_gives_up_after",
                MINUTE,
                30 * DAY,
                "a message Slack could not take for this long is kept as undeliverable; outages last hours",
            ),
            DurationSetting::StepProgressEvery => (
                "step_progress_every",
                SECOND,
                10 * MINUTE,
                "a running step's card shows its latest output this often; each refresh is one chat.update",
            ),
            DurationSetting::UpdateReminder => (
                "update_reminders",
                MINUTE,
                7 * DAY,
                "the point of contact is reminded to post an update this long after the request (or this often after the last mark)",
            ),
            DurationSetting::AutoRequestEvery => (
                "auto_request_every",
                MINUTE,
                7 * DAY,
                "a service files at most one request by itself this often, so a flapping alert cannot file request after request",
            ),
            DurationSetting::OutboxRetention => (
                "outbox_retention",
                HOUR,
                3650 * DAY,
                "delivered messages are deleted after this long (the timeline is kept)",
            ),
        }
    }
}

pub(super) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub(super) fn is_slack_member_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'W' | 'S'))
        && id.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

pub(super) fn is_channel_id(id: &str) -> bool {
    (id.starts_with('C') || id.starts_with('G'))
        && id.len() >= 3
        && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

pub(super) fn join_keys(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        "none".into()
    } else {
        map.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}
