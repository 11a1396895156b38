//! The one TOML file: Slack channels, roles, severity policy, runbooks and services.
//! Loading validates everything a request will later rely on, so mistakes surface in
//! `rollbot check` with a file:line:column, not during an incident.
use crate::domain::plan::{
    Catalog, Drift, Lock, OnFailure, PAGE_STEP_STATUSES, ParamSpec, Runbook, Service, SqlCheck, StepKind, StepTemplate,
};
use crate::domain::{ChannelId, EscalationLevel, Policy, Severity, SeverityPolicy, TeamId};
use crate::engine::secrets;
use crate::templates::Announcement;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// One HTTP attempt, and one SQL check, unless the step says otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The validated configuration, in the core's terms.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    pub catalog: Catalog,
    /// Role name → Slack user IDs (U…/W…) and user-group IDs (S…).
    pub roles: BTreeMap<String, Vec<String>>,
    pub output_tail_bytes: usize,
    /// How long a user group's membership read from Slack is trusted.
    pub group_cache: Duration,
    /// How long a running rollback's process may go without renewing its lease before the
    /// rollback is marked interrupted.
    pub execution_lease: Duration,
    /// On SIGTERM, how long running steps may go on before they are stopped and recorded as
    /// interrupted.
    pub shutdown_grace: Duration,
    /// A Slack message (or status page update) that could not be delivered for this long is
    /// kept as undeliverable: outages are measured in hours, so this is an age, not a count.
    pub delivery_gives_up_after: Duration,
    /// Delivered messages are deleted from the outbox after this long; the timeline stays.
    pub outbox_retention: Duration,
    /// The communication templates, defaults filled in.
    pub templates: BTreeMap<Announcement, String>,
    /// Channels that also receive the lifecycle announcements (stakeholders, #status).
    pub notify_channels: Vec<ChannelId>,
    pub status_page: Option<StatusPageSettings>,
    /// `None`: the Alertmanager hook is off.
    pub alertmanager: Option<AlertmanagerSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    slack: RawSlack,
    #[serde(default)]
    roles: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    severity: BTreeMap<Spanned<String>, RawSeverity>,
    #[serde(default)]
    runbooks: BTreeMap<String, RawRunbook>,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
    #[serde(default)]
    databases: BTreeMap<String, RawDatabase>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    escalation: Vec<RawEscalation>,
    #[serde(default)]
    templates: BTreeMap<Spanned<String>, Spanned<String>>,
    statuspage: Option<RawStatusPage>,
    alertmanager: Option<RawAlertmanager>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusPage {
    provider: Spanned<String>,
    api_url: Option<String>,
    page_id: Option<String>,
    url: Option<String>,
    secret_env: Option<String>,
    impacted_status: Option<Spanned<String>>,
    resolve_after: Option<Spanned<String>>,
}

/// Where the status page is and how rollbot reaches it; the secret itself comes from the
/// environment variable `secret_env` (or `<secret_env>_FILE`) when rollbot starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageSettings {
    pub kind: StatusPageKind,
    pub secret_env: String,
    pub impacted_status: String,
    /// Resolve by itself this long after success, unless someone clicks Mark resolved first.
    pub resolve_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatusPageKind {
    Atlassian { api_url: String, page_id: String },
    Webhook { url: String },
}

const COMPONENT_STATUSES: [&str; 4] = [
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    role: Spanned<String>,
    after: Spanned<String>,
    severities: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    workspace: Option<Spanned<String>>,
    channels: Spanned<Vec<Spanned<String>>>,
    requesters: Option<Vec<Spanned<String>>>,
    group_cache: Option<Spanned<String>>,
    #[serde(default)]
    notify_channels: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverity {
    approvals: Option<u32>,
    approvers: Option<Vec<Spanned<String>>>,
    require_reason: Option<bool>,
    allow_self_approval: Option<bool>,
    respond_within: Option<Spanned<String>>,
    expire_after: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_reason_chars: Option<usize>,
    max_open_requests_per_person: Option<Spanned<usize>>,
    output_tail_bytes: Option<usize>,
    execution_lease: Option<Spanned<String>>,
    shutdown_grace: Option<Spanned<String>>,
    delivery_gives_up_after: Option<Spanned<String>>,
    outbox_retention: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    description: Option<String>,
    expected_duration: Option<Spanned<String>>,
    lock: Option<Spanned<RawLock>>,
    #[serde(default)]
    params: BTreeMap<String, RawParam>,
    steps: Spanned<Vec<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    pattern: Spanned<String>,
    help: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    run: Option<Spanned<Vec<String>>>,
    gate: Option<String>,
    http: Option<RawHttp>,
    health: Option<RawHealth>,
    sql: Option<RawSql>,
    notify: Option<RawNotify>,
    statuspage: Option<RawPageStep>,
    #[serde(default)]
    destructive: bool,
    confirm: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    workdir: Option<String>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    retries: u32,
    retry_delay: Option<Spanned<String>>,
    on_failure: Option<Spanned<String>>,
    drill: Option<Spanned<RawDrill>>,
}

/// What a drill does instead of a step: the same kinds, less gates and status-page updates.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    run: Option<Spanned<Vec<String>>>,
    http: Option<RawHttp>,
    health: Option<RawHealth>,
    sql: Option<RawSql>,
    notify: Option<RawNotify>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    workdir: Option<String>,
    timeout: Option<Spanned<String>>,
}

/// The fields that say what a step does, from a step or its drill override.
struct KindFields<'a> {
    run: Option<&'a Spanned<Vec<String>>>,
    gate: Option<&'a String>,
    http: Option<&'a RawHttp>,
    health: Option<&'a RawHealth>,
    sql: Option<&'a RawSql>,
    notify: Option<&'a RawNotify>,
    statuspage: Option<&'a RawPageStep>,
    env: &'a BTreeMap<String, String>,
    workdir: Option<&'a String>,
    timeout: Option<&'a Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "default_method")]
    method: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    json: Option<toml::Value>,
    #[serde(default = "default_expected_statuses")]
    expect_status: Vec<u16>,
}

fn default_method() -> Spanned<String> {
    Spanned::new(0..0, "POST".to_owned())
}

fn default_expected_statuses() -> Vec<u16> {
    vec![200, 201, 202, 204]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    url: Spanned<String>,
    #[serde(default = "default_health_status")]
    expect_status: u16,
    body_contains: Option<String>,
    within: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
}

fn default_health_status() -> u16 {
    200
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    database: Spanned<String>,
    snapshot: Option<RawSnapshot>,
    compare: Option<RawCompare>,
    #[serde(rename = "assert")]
    assertion: Option<RawAssert>,
    #[serde(default = "yes")]
    read_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnapshot {
    #[serde(default)]
    tables: Vec<String>,
    schema: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompare {
    #[serde(default = "no_drift")]
    drift: Spanned<String>,
    #[serde(default)]
    tables: BTreeMap<String, Spanned<String>>,
}

fn no_drift() -> Spanned<String> {
    Spanned::new(0..0, "0".to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssert {
    query: String,
    expect: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    channel: Option<Spanned<String>>,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPageStep {
    status: Spanned<String>,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    /// The environment variable holding the connection string.
    url_env: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    runbooks: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    statuspage_components: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    auto_request: Option<Spanned<bool>>,
    lock: Option<Spanned<RawLock>>,
}

/// `lock = "key"`, `lock = false` (no lock) or `lock = true` (the default: the service).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawLock {
    On(bool),
    Key(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    channel: Option<Spanned<String>>,
    token_env: Option<String>,
    service_label: Option<String>,
    severity_label: Option<String>,
    target_label: Option<String>,
    default_severity: Option<Spanned<String>>,
    #[serde(default)]
    severities: BTreeMap<String, Spanned<String>>,
}

/// How Alertmanager's notifications become proposals; the bearer token itself comes from the
/// environment variable `token_env` (or `<token_env>_FILE`) when rollbot starts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSettings {
    /// Where proposal cards are posted: an incident channel.
    pub channel: ChannelId,
    pub token_env: String,
    pub service_label: String,
    pub severity_label: String,
    /// The label that names the release to roll back to, if alerts carry one.
    pub target_label: Option<String>,
    /// For alerts without a severity label, or with a value not mapped.
    pub default_severity: Severity,
    /// Label value → severity, besides rollbot's own names (critical, high, medium, low, sev1–4).
    pub severities: BTreeMap<String, Severity>,
}

pub const DEFAULT_ALERTMANAGER_TOKEN_ENV: &str = "ROLLBOT_ALERTMANAGER_TOKEN";

impl AlertmanagerSettings {
    /// The severity an alert's label value stands for.
    pub fn severity_of(&self, value: Option<&str>) -> Severity {
        value
            .and_then(|v| self.severities.get(v).copied().or_else(|| v.parse().ok()))
            .unwrap_or(self.default_severity)
    }
}

struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
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
    fn duration(&mut self, value: &Spanned<String>, setting: DurationSetting) -> Option<Duration> {
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
enum DurationSetting {
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
}

impl DurationSetting {
    /// The setting's name, its least and largest values, and why.
    fn bounds(self) -> (&'static str, Duration, Duration, &'static str) {
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
            DurationSetting::OutboxRetention => (
                "outbox_retention",
                HOUR,
                3650 * DAY,
                "delivered messages are deleted after this long (the timeline is kept)",
            ),
        }
    }
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn is_slack_member_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'W' | 'S'))
        && id.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the configuration: {e}"),
                hint: Some("pass the file with --config or ROLLBOT_CONFIG".into()),
            }])
        })?;
        Config::parse(&file, &source)
    }

    pub fn parse(file: &str, source: &str) -> Result<Config, ConfigErrors> {
        let mut checker = Checker {
            file,
            source,
            errors: vec![],
        };
        let raw: RawConfig = match toml::from_str(source) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let hint = e.message().contains("unknown field").then(|| {
                    "every key is documented in docs/configuration.md; unknown keys are errors so typos cannot pass silently"
                        .to_owned()
                });
                checker.error(span, e.message().trim().to_owned(), hint);
                return Err(ConfigErrors(checker.errors));
            }
        };

        let roles = check_roles(&mut checker, &raw.roles);
        let execution_lease = raw
            .limits
            .execution_lease
            .as_ref()
            .and_then(|d| checker.duration(d, DurationSetting::ExecutionLease))
            .unwrap_or(Duration::from_secs(30));
        let shutdown_grace = raw
            .limits
            .shutdown_grace
            .as_ref()
            .and_then(|d| checker.duration(d, DurationSetting::ShutdownGrace))
            .unwrap_or(Duration::from_secs(20));
        let delivery_gives_up_after = raw
            .limits
            .delivery_gives_up_after
            .as_ref()
            .and_then(|d| checker.duration(d, DurationSetting::DeliveryGivesUpAfter))
            .unwrap_or(Duration::from_secs(24 * 3600));
        let outbox_retention = raw
            .limits
            .outbox_retention
            .as_ref()
            .and_then(|d| checker.duration(d, DurationSetting::OutboxRetention))
            .unwrap_or(Duration::from_secs(30 * 24 * 3600));
        let templates = check_templates(&mut checker, &raw.templates);
        let status_page = raw.statuspage.as_ref().and_then(|p| check_status_page(&mut checker, p));
        let notify_channels = raw
            .slack
            .notify_channels
            .iter()
            .map(|c| {
                if !is_channel_id(c.get_ref()) {
                    checker.error(
                        c.span(),
                        format!("`{}` is not a Slack channel ID", c.get_ref()),
                        Some("channel IDs look like C0123ABCD".into()),
                    );
                }
                ChannelId(c.get_ref().clone())
            })
            .collect();
        let group_cache = raw
            .slack
            .group_cache
            .as_ref()
            .and_then(|d| checker.duration(d, DurationSetting::GroupCache))
            .unwrap_or(Duration::from_secs(60));
        let mut policy = check_policy(&mut checker, &raw, &roles);
        policy.status_page = status_page.is_some();
        let databases = check_databases(&mut checker, &raw.databases);
        let page_secret = status_page.as_ref().map(|p| p.secret_env.as_str());
        let runbooks = check_runbooks(&mut checker, &raw.runbooks, &databases, page_secret);
        let services = check_services(&mut checker, &raw.services, &runbooks);
        let alertmanager = raw
            .alertmanager
            .as_ref()
            .and_then(|a| check_alertmanager(&mut checker, a, &policy.channels));
        if alertmanager.is_none() {
            for (name, svc) in &raw.services {
                if let Some(auto) = svc.auto_request.as_ref().filter(|a| *a.get_ref()) {
                    checker.error(
                        auto.span(),
                        format!("service `{name}` sets auto_request, but [alertmanager] is not configured"),
                        Some("configure [alertmanager] (docs/alerts.md), or remove auto_request".into()),
                    );
                }
            }
        }
        if status_page.is_none() {
            for (name, rb) in &raw.runbooks {
                for step in rb.steps.get_ref().iter().filter(|s| s.statuspage.is_some()) {
                    checker.error(
                        step.name.span(),
                        format!(
                            "runbook `{name}` step `{}` sets the status page, but [statuspage] is not configured",
                            step.name.get_ref()
                        ),
                        Some("configure [statuspage] (docs/configuration.md#statuspage), or remove the step".into()),
                    );
                }
            }
        }

        if checker.errors.is_empty() {
            Ok(Config {
                policy,
                catalog: Catalog { runbooks, services },
                roles: roles.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect(),
                output_tail_bytes: raw.limits.output_tail_bytes.unwrap_or(3 * 1024),
                group_cache,
                templates,
                notify_channels,
                status_page,
                alertmanager,
                execution_lease,
                shutdown_grace,
                delivery_gives_up_after,
                outbox_retention,
            })
        } else {
            Err(ConfigErrors(checker.errors))
        }
    }

    /// The roles a Slack user holds by direct membership.
    pub fn roles_of(&self, user: &str) -> std::collections::BTreeSet<String> {
        self.roles
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == user))
            .map(|(role, _)| role.clone())
            .collect()
    }
}

fn is_channel_id(id: &str) -> bool {
    (id.starts_with('C') || id.starts_with('G'))
        && id.len() >= 3
        && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn check_alertmanager(c: &mut Checker, raw: &RawAlertmanager, channels: &[ChannelId]) -> Option<AlertmanagerSettings> {
    let severity = |c: &mut Checker, value: &Spanned<String>| match value.get_ref().parse::<Severity>() {
        Ok(severity) => Some(severity),
        Err(()) => {
            c.error(
                value.span(),
                format!("`{}` is not a severity", value.get_ref()),
                Some("severities are critical, high, medium and low".into()),
            );
            None
        }
    };
    let channel = match &raw.channel {
        Some(channel) if !channels.iter().any(|c| &c.0 == channel.get_ref()) => {
            c.error(
                channel.span(),
                format!("`{}` is not one of the incident channels", channel.get_ref()),
                Some(
                    "proposals are requests in waiting: post them where requests are accepted ([slack] channels)"
                        .into(),
                ),
            );
            return None;
        }
        Some(channel) => ChannelId(channel.get_ref().clone()),
        None => channels.first()?.clone(),
    };
    let default_severity = match &raw.default_severity {
        Some(value) => severity(c, value)?,
        None => Severity::High,
    };
    let mut severities = BTreeMap::new();
    for (label, value) in &raw.severities {
        if let Some(severity) = severity(c, value) {
            severities.insert(label.clone(), severity);
        }
    }
    let label = |name: &Option<String>, default: &str| name.clone().unwrap_or_else(|| default.to_owned());
    Some(AlertmanagerSettings {
        channel,
        token_env: label(&raw.token_env, DEFAULT_ALERTMANAGER_TOKEN_ENV),
        service_label: label(&raw.service_label, "service"),
        severity_label: label(&raw.severity_label, "severity"),
        target_label: raw.target_label.clone(),
        default_severity,
        severities,
    })
}

fn check_status_page(c: &mut Checker, raw: &RawStatusPage) -> Option<StatusPageSettings> {
    let kind = match raw.provider.get_ref().as_str() {
        "atlassian" => match &raw.page_id {
            Some(page_id) => StatusPageKind::Atlassian {
                api_url: raw
                    .api_url
                    .clone()
                    .unwrap_or_else(|| "https://api.statuspage.io/v1".into()),
                page_id: page_id.clone(),
            },
            None => {
                c.error(
                    raw.provider.span(),
                    "the atlassian status page needs `page_id`",
                    Some("the page ID is in the page's API settings".into()),
                );
                return None;
            }
        },
        "webhook" => match &raw.url {
            Some(url) => StatusPageKind::Webhook { url: url.clone() },
            None => {
                c.error(raw.provider.span(), "the webhook status page needs `url`", None);
                return None;
            }
        },
        other => {
            c.error(
                raw.provider.span(),
                format!("unknown status page provider `{other}`"),
                Some("providers are atlassian and webhook".into()),
            );
            return None;
        }
    };
    let impacted_status = match &raw.impacted_status {
        Some(s) if !COMPONENT_STATUSES.contains(&s.get_ref().as_str()) => {
            c.error(
                s.span(),
                format!("`{}` is not a component status", s.get_ref()),
                Some(format!("use one of {}", COMPONENT_STATUSES.join(", "))),
            );
            return None;
        }
        Some(s) => s.get_ref().clone(),
        None => "partial_outage".into(),
    };
    let default_env = if matches!(kind, StatusPageKind::Atlassian { .. }) {
        "STATUSPAGE_API_KEY"
    } else {
        "STATUSPAGE_WEBHOOK_SECRET"
    };
    Some(StatusPageSettings {
        kind,
        secret_env: raw.secret_env.clone().unwrap_or_else(|| default_env.into()),
        impacted_status,
        resolve_after: raw
            .resolve_after
            .as_ref()
            .and_then(|d| c.duration(d, DurationSetting::ResolveAfter)),
    })
}

fn check_templates(
    c: &mut Checker,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> BTreeMap<Announcement, String> {
    let mut templates: BTreeMap<Announcement, String> = Announcement::ALL
        .iter()
        .map(|a| (*a, a.default_text().to_owned()))
        .collect();
    for (name, text) in raw {
        let Some(which) = Announcement::ALL.iter().find(|a| a.key() == name.get_ref()) else {
            let known: Vec<&str> = Announcement::ALL.iter().map(|a| a.key()).collect();
            c.error(
                name.span(),
                format!("unknown template `{}`", name.get_ref()),
                Some(format!("templates are {}", known.join(", "))),
            );
            continue;
        };
        if let Err(detail) = crate::templates::check(text.get_ref()) {
            let names: Vec<&str> = crate::templates::VARIABLES.iter().map(|(n, _)| *n).collect();
            c.error(
                text.span(),
                format!("template `{}` {detail}", name.get_ref()),
                Some(format!(
                    "variables are {} (docs/configuration.md says what each holds)",
                    names.join(", ")
                )),
            );
            continue;
        }
        templates.insert(*which, text.get_ref().clone());
    }
    templates
}

fn check_roles(c: &mut Checker, raw: &BTreeMap<String, Vec<Spanned<String>>>) -> BTreeMap<String, Vec<String>> {
    let mut roles = BTreeMap::new();
    for (name, members) in raw {
        for member in members {
            if !is_slack_member_id(member.get_ref()) {
                c.error(
                    member.span(),
                    format!("`{}` in role `{name}` is not a Slack user ID or user-group ID", member.get_ref()),
                    Some("use IDs like U0123ABCD (user) or S0123ABCD (user group), from the profile's \"Copy member ID\"".into()),
                );
            }
        }
        roles.insert(name.clone(), members.iter().map(|m| m.get_ref().clone()).collect());
    }
    roles
}

fn check_policy(c: &mut Checker, raw: &RawConfig, roles: &BTreeMap<String, Vec<String>>) -> Policy {
    let known_roles = || roles.keys().cloned().collect::<Vec<_>>().join(", ");
    let check_role_ref = |c: &mut Checker, role: &Spanned<String>| {
        if !roles.contains_key(role.get_ref()) {
            c.error(
                role.span(),
                format!("role `{}` is not defined in [roles]", role.get_ref()),
                Some(format!(
                    "defined roles: {}",
                    if roles.is_empty() { "none".into() } else { known_roles() }
                )),
            );
        }
    };

    let workspace = raw.slack.workspace.as_ref().map(|w| {
        if !w.get_ref().starts_with('T') && !w.get_ref().starts_with('E') {
            c.error(
                w.span(),
                format!("`{}` is not a Slack workspace ID", w.get_ref()),
                Some("workspace IDs start with T (or E for Enterprise Grid)".into()),
            );
        }
        TeamId(w.get_ref().clone())
    });
    if raw.slack.channels.get_ref().is_empty() {
        c.error(
            raw.slack.channels.span(),
            "no incident channel is configured",
            Some("list the channel IDs where /rollback is accepted, e.g. channels = [\"C0INCIDENTS\"]".into()),
        );
    }
    for channel in raw.slack.channels.get_ref() {
        let id = channel.get_ref();
        if !(id.starts_with('C') || id.starts_with('G')) || id.len() < 3 {
            c.error(
                channel.span(),
                format!("`{id}` is not a Slack channel ID"),
                Some(
                    "channel IDs look like C0123ABCD: open the channel's details and copy the ID at the bottom".into(),
                ),
            );
        }
    }
    let channels = raw
        .slack
        .channels
        .get_ref()
        .iter()
        .map(|ch| ChannelId(ch.get_ref().clone()))
        .collect();
    let requester_roles = raw.slack.requesters.as_ref().map(|list| {
        for role in list {
            check_role_ref(c, role);
        }
        list.iter().map(|r| r.get_ref().clone()).collect()
    });

    let mut severities = BTreeMap::new();
    for (name, section) in &raw.severity {
        let Ok(severity) = name.get_ref().parse::<Severity>() else {
            c.error(
                name.span(),
                format!("unknown severity `{}`", name.get_ref()),
                Some("severities are critical, high, medium and low".into()),
            );
            continue;
        };
        let defaults = SeverityPolicy::default_for(severity);
        let approvers: Vec<String> = match &section.approvers {
            Some(list) => {
                for role in list {
                    check_role_ref(c, role);
                }
                list.iter().map(|r| r.get_ref().clone()).collect()
            }
            None => defaults.approvers.clone(),
        };
        let approvals = section.approvals.unwrap_or(defaults.approvals);
        if approvals > 0 && approvers.is_empty() {
            c.error(
                name.span(),
                format!("severity `{severity}` needs {approvals} approval(s) but names no approvers"),
                Some("add approvers = [\"<role>\"] or set approvals = 0".into()),
            );
        }
        let respond_within = match &section.respond_within {
            Some(d) => c.duration(d, DurationSetting::RespondWithin),
            None => defaults.respond_within,
        };
        let expire_after = match &section.expire_after {
            Some(d) => c.duration(d, DurationSetting::ExpireAfter),
            None => defaults.expire_after,
        };
        severities.insert(
            severity,
            SeverityPolicy {
                approvals,
                approvers,
                require_reason: section.require_reason.unwrap_or(defaults.require_reason),
                allow_self_approval: section.allow_self_approval.unwrap_or(defaults.allow_self_approval),
                respond_within,
                review_required: approvals == 0,
                expire_after,
            },
        );
    }
    for severity in Severity::ALL {
        let policy = severities
            .entry(severity)
            .or_insert_with(|| SeverityPolicy::default_for(severity));
        let missing: Vec<_> = policy
            .approvers
            .iter()
            .filter(|r| !roles.contains_key(*r))
            .cloned()
            .collect();
        if policy.approvals > 0 && !raw.severity.keys().any(|k| k.get_ref() == severity.as_str()) && !missing.is_empty()
        {
            c.error(
                0..0,
                format!(
                    "severity `{severity}` uses its default approvers ({}) but [roles] does not define them",
                    missing.join(", ")
                ),
                Some(format!(
                    "define {} in [roles], or set [severity.{severity}] approvers",
                    missing.join(", ")
                )),
            );
        }
    }

    let mut escalation = vec![];
    for level in &raw.escalation {
        check_role_ref(c, &level.role);
        let severities = level.severities.as_ref().map(|list| {
            list.iter()
                .filter_map(|name| match name.get_ref().parse::<Severity>() {
                    Ok(s) => Some(s),
                    Err(()) => {
                        c.error(
                            name.span(),
                            format!("unknown severity `{}`", name.get_ref()),
                            Some("severities are critical, high, medium and low".into()),
                        );
                        None
                    }
                })
                .collect()
        });
        if let Some(after) = c.duration(&level.after, DurationSetting::EscalationAfter) {
            escalation.push(EscalationLevel {
                role: level.role.get_ref().clone(),
                after,
                severities,
            });
        }
    }

    Policy {
        workspace,
        channels,
        requester_roles,
        severities,
        max_reason_chars: raw.limits.max_reason_chars.unwrap_or(500),
        max_open_requests_per_person: match &raw.limits.max_open_requests_per_person {
            Some(n) if *n.get_ref() == 0 => {
                c.error(
                    n.span(),
                    "`max_open_requests_per_person` is 0, which would refuse every request",
                    Some("use at least 1, or leave it out for the default of 5".into()),
                );
                0
            }
            Some(n) => *n.get_ref(),
            None => 5,
        },
        escalation,
        status_page: false,
    }
}

/// Database name → the environment variable with its connection string.
fn check_databases(c: &mut Checker, raw: &BTreeMap<String, RawDatabase>) -> BTreeMap<String, String> {
    raw.iter()
        .map(|(name, db)| {
            if let Some(problem) = secrets::invalid_reference(db.url_env.get_ref()) {
                c.error(
                    db.url_env.span(),
                    format!("database `{name}`: {problem}"),
                    Some(
                        "url_env names the variable that holds the connection string, e.g. ORDERS_DATABASE_URL".into(),
                    ),
                );
            }
            (name.clone(), db.url_env.get_ref().clone())
        })
        .collect()
}

impl RawStep {
    fn kind_fields(&self) -> KindFields<'_> {
        KindFields {
            run: self.run.as_ref(),
            gate: self.gate.as_ref(),
            http: self.http.as_ref(),
            health: self.health.as_ref(),
            sql: self.sql.as_ref(),
            notify: self.notify.as_ref(),
            statuspage: self.statuspage.as_ref(),
            env: &self.env,
            workdir: self.workdir.as_ref(),
            timeout: self.timeout.as_ref(),
        }
    }
}

impl RawDrill {
    fn kind_fields(&self) -> KindFields<'_> {
        KindFields {
            run: self.run.as_ref(),
            gate: None,
            http: self.http.as_ref(),
            health: self.health.as_ref(),
            sql: self.sql.as_ref(),
            notify: self.notify.as_ref(),
            statuspage: None,
            env: &self.env,
            workdir: self.workdir.as_ref(),
            timeout: self.timeout.as_ref(),
        }
    }
}

const STEP_KINDS: &str = "`run` (a command), `gate`, `http`, `health`, `sql`, `notify` or `statuspage`";

/// What one step (or its drill override) does; `None` after reporting why not.
fn check_kind(
    c: &mut Checker,
    step_name: &str,
    at: Range<usize>,
    f: KindFields,
    databases: &BTreeMap<String, String>,
) -> Option<StepKind> {
    let given = [
        f.run.is_some(),
        f.gate.is_some(),
        f.http.is_some(),
        f.health.is_some(),
        f.sql.is_some(),
        f.notify.is_some(),
        f.statuspage.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        c.error(
            at,
            format!("step `{step_name}` needs exactly one of {STEP_KINDS}"),
            Some("docs/configuration.md#steps describes each kind".into()),
        );
        return None;
    }
    let timeout = |c: &mut Checker, default: Duration| {
        f.timeout
            .and_then(|t| c.duration(t, DurationSetting::StepTimeout))
            .unwrap_or(default)
    };
    if let Some(run) = f.run {
        if run.get_ref().is_empty() {
            c.error(
                run.span(),
                format!("step `{step_name}` has an empty `run`"),
                Some("run is the argv: [\"program\", \"arg\", …]".into()),
            );
        }
        return Some(StepKind::Command {
            run: run.get_ref().clone(),
            env: f.env.clone(),
            workdir: f.workdir.cloned(),
            timeout: timeout(c, DEFAULT_STEP_TIMEOUT),
        });
    }
    if !f.env.is_empty() || f.workdir.is_some() {
        c.error(
            at.clone(),
            format!("step `{step_name}`: `env` and `workdir` apply only to `run` steps"),
            None,
        );
    }
    if let Some(message) = f.gate {
        return Some(StepKind::Gate {
            message: message.clone(),
        });
    }
    if let Some(http) = f.http {
        let method = http.method.get_ref().to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str()) {
            c.error(
                http.method.span(),
                format!(
                    "step `{step_name}`: `{}` is not an HTTP method rollbot sends",
                    http.method.get_ref()
                ),
                Some("GET, POST, PUT, PATCH, DELETE or HEAD".into()),
            );
        }
        check_url(c, step_name, &http.url);
        if http.expect_status.is_empty() || http.expect_status.iter().any(|s| !(100..=599).contains(s)) {
            c.error(
                at.clone(),
                format!("step `{step_name}`: `expect_status` must list HTTP status codes"),
                None,
            );
        }
        let json = match http.json.as_ref().map(serde_json::to_value) {
            Some(Ok(json)) => Some(json),
            Some(Err(e)) => {
                c.error(
                    at.clone(),
                    format!("step `{step_name}`: `json` cannot be sent as JSON: {e}"),
                    None,
                );
                None
            }
            None => None,
        };
        return Some(StepKind::Http {
            method,
            url: http.url.get_ref().clone(),
            headers: http.headers.clone(),
            json,
            expect_status: http.expect_status.clone(),
            timeout: timeout(c, DEFAULT_CALL_TIMEOUT),
        });
    }
    if let Some(health) = f.health {
        check_url(c, step_name, &health.url);
        let within = health
            .within
            .as_ref()
            .and_then(|d| c.duration(d, DurationSetting::HealthWithin))
            .unwrap_or_else(|| timeout(c, Duration::from_secs(120)));
        let every = health
            .every
            .as_ref()
            .and_then(|d| c.duration(d, DurationSetting::HealthEvery))
            .unwrap_or(Duration::from_secs(5));
        if every.is_zero() || every > within {
            c.error(
                at.clone(),
                format!("step `{step_name}`: `every` must be shorter than `within`"),
                Some("e.g. within = \"2m\", every = \"5s\"".into()),
            );
        }
        return Some(StepKind::Health {
            url: health.url.get_ref().clone(),
            expect_status: health.expect_status,
            body_contains: health.body_contains.clone(),
            within,
            every,
        });
    }
    if let Some(sql) = f.sql {
        let Some(url_env) = databases.get(sql.database.get_ref()) else {
            c.error(
                sql.database.span(),
                format!(
                    "step `{step_name}`: database `{}` is not defined",
                    sql.database.get_ref()
                ),
                Some(format!(
                    "add [databases.{}] url_env = \"<VARIABLE>\" (defined: {})",
                    sql.database.get_ref(),
                    if databases.is_empty() {
                        "none".into()
                    } else {
                        databases.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                )),
            );
            return None;
        };
        let checks = [sql.snapshot.is_some(), sql.compare.is_some(), sql.assertion.is_some()];
        if checks.iter().filter(|g| **g).count() != 1 {
            c.error(
                sql.database.span(),
                format!("step `{step_name}`: a `sql` step needs exactly one of `snapshot`, `compare` or `assert`"),
                None,
            );
            return None;
        }
        let check = if let Some(snapshot) = &sql.snapshot {
            if snapshot.tables.is_empty() == snapshot.schema.is_none() {
                c.error(
                    sql.database.span(),
                    format!("step `{step_name}`: `snapshot` takes either `tables` or `schema`"),
                    Some("tables = [\"orders\", \"order_items\"], or schema = \"public\" for all its tables".into()),
                );
            }
            SqlCheck::Snapshot {
                tables: snapshot.tables.clone(),
                schema: snapshot.schema.clone(),
            }
        } else if let Some(compare) = &sql.compare {
            let drift_of = |c: &mut Checker, text: &Spanned<String>| {
                Drift::parse(text.get_ref()).unwrap_or_else(|| {
                    c.error(
                        text.span(),
                        format!("step `{step_name}`: `{}` is not an allowed drift", text.get_ref()),
                        Some("a number of rows (\"0\", \"25\") or a percentage (\"10%\")".into()),
                    );
                    Drift::Rows(0)
                })
            };
            SqlCheck::Compare {
                default_drift: drift_of(c, &compare.drift),
                drift: compare
                    .tables
                    .iter()
                    .map(|(t, d)| (t.clone(), drift_of(c, d)))
                    .collect(),
            }
        } else {
            let assertion = sql.assertion.as_ref().expect("one check is given");
            if crate::engine::steps::Expectation::parse(assertion.expect.get_ref()).is_none() {
                c.error(
                    assertion.expect.span(),
                    format!(
                        "step `{step_name}`: `{}` is not an expectation",
                        assertion.expect.get_ref()
                    ),
                    Some("an operator and a value: \"= 0\", \">= 3\", \"!= 0\", \"= true\"".into()),
                );
            }
            SqlCheck::Assert {
                query: assertion.query.clone(),
                expect: assertion.expect.get_ref().trim().to_owned(),
            }
        };
        if !sql.read_only && !matches!(check, SqlCheck::Assert { .. }) {
            c.error(
                sql.database.span(),
                format!("step `{step_name}`: only an `assert` query can be given `read_only = false`"),
                None,
            );
        }
        return Some(StepKind::Sql {
            database: sql.database.get_ref().clone(),
            connection: format!("${{env:{url_env}}}"),
            check,
            read_only: sql.read_only,
            timeout: timeout(c, DEFAULT_CALL_TIMEOUT),
        });
    }
    if let Some(notify) = f.notify {
        if let Some(channel) = &notify.channel
            && !is_channel_id(channel.get_ref())
        {
            c.error(
                channel.span(),
                format!("step `{step_name}`: `{}` is not a Slack channel ID", channel.get_ref()),
                Some("channel IDs look like C0123ABCD; leave `channel` out to post in the rollback's thread".into()),
            );
        }
        return Some(StepKind::Notify {
            channel: notify.channel.as_ref().map(|c| c.get_ref().clone()),
            text: notify.text.clone(),
        });
    }
    let page = f.statuspage.expect("one kind is given");
    if !PAGE_STEP_STATUSES.contains(&page.status.get_ref().as_str()) {
        c.error(
            page.status.span(),
            format!(
                "step `{step_name}`: `{}` is not a status a step can set",
                page.status.get_ref()
            ),
            Some(format!(
                "one of {}; resolving is done by people or the watch window",
                PAGE_STEP_STATUSES.join(", ")
            )),
        );
    }
    Some(StepKind::StatusPage {
        status: page.status.get_ref().clone(),
        message: page.message.clone(),
    })
}

fn check_url(c: &mut Checker, step_name: &str, url: &Spanned<String>) {
    let text = url.get_ref();
    if !(text.starts_with("https://") || text.starts_with("http://") || text.starts_with("{{")) {
        c.error(
            url.span(),
            format!("step `{step_name}`: `{text}` is not an http:// or https:// URL"),
            None,
        );
    }
}

fn check_runbooks(
    c: &mut Checker,
    raw: &BTreeMap<String, RawRunbook>,
    databases: &BTreeMap<String, String>,
    page_secret: Option<&str>,
) -> BTreeMap<String, Runbook> {
    let mut runbooks = BTreeMap::new();
    for (name, rb) in raw {
        let mut params = BTreeMap::new();
        for (param, spec) in &rb.params {
            match Regex::new(&format!("^(?:{})$", spec.pattern.get_ref())) {
                Ok(pattern) => {
                    params.insert(
                        param.clone(),
                        ParamSpec {
                            pattern,
                            pattern_source: spec.pattern.get_ref().clone(),
                            help: spec.help.clone(),
                        },
                    );
                }
                Err(e) => c.error(
                    spec.pattern.span(),
                    format!("pattern of parameter `{param}` is not a valid regular expression: {e}"),
                    None,
                ),
            }
        }
        if rb.steps.get_ref().is_empty() {
            c.error(rb.steps.span(), format!("runbook `{name}` has no steps"), None);
        }
        let placeholder_params: BTreeMap<String, String> = rb.params.keys().map(|k| (k.clone(), "x".into())).collect();
        let mut steps = vec![];
        for step in rb.steps.get_ref() {
            let step_name = step.name.get_ref();
            let Some(kind) = check_kind(c, step_name, step.name.span(), step.kind_fields(), databases) else {
                continue;
            };
            let drill = step.drill.as_ref().and_then(|d| {
                if matches!(kind, StepKind::Gate { .. } | StepKind::StatusPage { .. }) {
                    c.error(
                        d.span(),
                        format!("step `{step_name}`: a gate or status-page step takes no `drill` override"),
                        Some("a drill stops at gates like a rollback, and never touches the status page".into()),
                    );
                    return None;
                }
                check_kind(c, step_name, d.span(), d.get_ref().kind_fields(), databases)
            });
            let on_failure = match step.on_failure.as_ref().map(|o| (o, o.get_ref().as_str())) {
                None | Some((_, "abort")) => OnFailure::Abort,
                Some((_, "continue")) => OnFailure::Continue,
                Some((o, other)) => {
                    c.error(
                        o.span(),
                        format!("step `{step_name}`: on_failure `{other}` is neither `abort` nor `continue`"),
                        None,
                    );
                    OnFailure::Abort
                }
            };
            if step.retries > 10 {
                c.error(
                    step.name.span(),
                    format!(
                        "step `{step_name}`: {} retries is more than the 10 rollbot allows",
                        step.retries
                    ),
                    Some("a step that fails ten times needs a person; use a gate".into()),
                );
            }
            if step.retries > 0 && matches!(kind, StepKind::Gate { .. }) {
                c.error(
                    step.name.span(),
                    format!("step `{step_name}`: a gate cannot be retried"),
                    None,
                );
            }
            let retry_delay = step
                .retry_delay
                .as_ref()
                .and_then(|d| c.duration(d, DurationSetting::RetryDelay))
                .unwrap_or(Duration::from_secs(5));
            let confirm = match (step.destructive, &step.confirm) {
                (true, Some(phrase)) => Some(phrase.get_ref().clone()),
                (true, None) => Some("{{ service }}".to_owned()),
                (false, Some(phrase)) => {
                    c.error(
                        phrase.span(),
                        format!("step `{step_name}` has a `confirm` phrase but is not `destructive = true`"),
                        Some("add destructive = true, or remove confirm".into()),
                    );
                    None
                }
                (false, None) => None,
            };
            let template = StepTemplate {
                name: step_name.clone(),
                kind,
                confirm,
                retries: step.retries,
                retry_delay,
                on_failure,
                drill,
            };
            // Templates may only use params here; vars are checked per service below.
            for element in template.templates() {
                if let Err(detail) = check_template_syntax(element, &placeholder_params) {
                    c.error(step.name.span(), format!("step `{step_name}`: {detail}"), None);
                }
                for name in secrets::references(element) {
                    let is_page_secret = page_secret.is_some_and(|p| name.strip_suffix("_FILE").unwrap_or(name) == p);
                    let problem = secrets::invalid_reference(name).or_else(|| {
                        is_page_secret.then(|| {
                            format!("`${{env:{name}}}` is the status page's secret; give the step its own credential")
                        })
                    });
                    if let Some(problem) = problem {
                        c.error(step.name.span(), format!("step `{step_name}`: {problem}"), None);
                    }
                }
            }
            // Parameters come from Slack; a query must never be built from them.
            let queries = [&template.kind]
                .into_iter()
                .chain(template.drill.iter())
                .filter(|k| matches!(k, StepKind::Sql { .. }))
                .flat_map(StepKind::templates);
            for query in queries {
                if template_references(query)
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.starts_with("params"))
                {
                    c.error(
                        step.name.span(),
                        format!(
                            "step `{step_name}`: SQL may use `vars` but not request parameters, which come from Slack"
                        ),
                        Some("put the value in the service's vars, or use a `run` step with its own checks".into()),
                    );
                }
            }
            steps.push(template);
        }
        let expected_duration = rb
            .expected_duration
            .as_ref()
            .and_then(|d| c.duration(d, DurationSetting::ExpectedDuration));
        let lock = rb.lock.as_ref().and_then(|l| check_lock(c, l));
        runbooks.insert(
            name.clone(),
            Runbook {
                name: name.clone(),
                description: rb.description.clone(),
                expected_duration,
                params,
                steps,
                lock,
            },
        );
    }
    runbooks
}

/// The variables a template refers to, as dotted paths (`vars.deployment`, `params.target`).
fn template_references(template: &str) -> Result<Vec<String>, String> {
    let env = minijinja::Environment::new();
    let parsed = env
        .template_from_str(template)
        .map_err(|e| format!("`{template}`: {e}"))?;
    Ok(parsed.undeclared_variables(true).into_iter().collect())
}

/// Checks syntax and param references; `vars.*` references are resolved per service later.
fn check_template_syntax(template: &str, params: &BTreeMap<String, String>) -> Result<(), String> {
    for name in template_references(template)? {
        let ok = name == "vars"
            || name == "service"
            || name.starts_with("vars.")
            || name.strip_prefix("params.").is_some_and(|p| params.contains_key(p));
        if !ok {
            let declared = if params.is_empty() {
                "none".into()
            } else {
                params.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(format!(
                "`{template}` uses `{name}`, which is neither vars.<name> nor a declared parameter (params: {declared})"
            ));
        }
    }
    Ok(())
}

fn check_services(
    c: &mut Checker,
    raw: &BTreeMap<String, RawService>,
    runbooks: &BTreeMap<String, Runbook>,
) -> BTreeMap<String, Service> {
    let mut services = BTreeMap::new();
    for (name, svc) in raw {
        if svc.runbooks.get_ref().is_empty() {
            c.error(
                svc.runbooks.span(),
                format!("service `{name}` names no runbook"),
                Some("runbooks = [\"<name>\"]; the first is the default".into()),
            );
        }
        let lower = name.to_lowercase();
        if crate::grammar::SUBCOMMANDS.contains(&lower.as_str())
            || crate::grammar::OPTION_KEYWORDS.contains(&lower.as_str())
        {
            c.error(
                svc.runbooks.span(),
                format!("`{name}` cannot be a service name: it is a word of the /rollback grammar"),
                Some("`/rollback <name> …` would read it as that word; rename the service".into()),
            );
        }
        if !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
            c.error(
                svc.runbooks.span(),
                format!("service name `{name}` must be letters, digits, `-`, `_` or `.`"),
                Some("it is typed in `/rollback <service>`".into()),
            );
        }
        for rb in svc.runbooks.get_ref() {
            let Some(runbook) = runbooks.get(rb.get_ref()) else {
                c.error(
                    rb.span(),
                    format!("runbook `{}` is not defined", rb.get_ref()),
                    Some(format!(
                        "defined runbooks: {}",
                        runbooks.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                );
                continue;
            };
            // Every `vars.*` a step uses must be defined by this service.
            for step in &runbook.steps {
                for element in step.templates() {
                    let missing: Vec<String> = template_references(element)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|r| r.strip_prefix("vars.").map(str::to_owned))
                        .filter(|var| !svc.vars.contains_key(var))
                        .collect();
                    for var in missing {
                        c.error(
                            rb.span(),
                            format!(
                                "service `{name}` does not define `vars.{var}`, which runbook `{}` step `{}` uses in `{element}`",
                                runbook.name, step.name
                            ),
                            Some(format!("add it to [services.{name}] vars (defined: {})", join_keys(&svc.vars))),
                        );
                    }
                }
            }
        }
        services.insert(
            name.clone(),
            Service {
                name: name.clone(),
                statuspage_components: svc.statuspage_components.clone(),
                runbooks: svc.runbooks.get_ref().iter().map(|r| r.get_ref().clone()).collect(),
                vars: svc.vars.clone(),
                auto_request: svc.auto_request.as_ref().is_some_and(|a| *a.get_ref()),
                lock: svc.lock.as_ref().and_then(|l| check_lock(c, l)).unwrap_or_default(),
            },
        );
    }
    services
}

/// A lock key is a name people read in a refusal: letters, digits and `-_.:`.
fn check_lock(c: &mut Checker, raw: &Spanned<RawLock>) -> Option<Lock> {
    match raw.get_ref() {
        RawLock::On(true) => Some(Lock::Service),
        RawLock::On(false) => Some(Lock::Off),
        RawLock::Key(key)
            if !key.is_empty()
                && key.len() <= 100
                && key.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch)) =>
        {
            Some(Lock::Key(key.clone()))
        }
        RawLock::Key(key) => {
            c.error(
                raw.span(),
                format!("`{key}` is not a lock key"),
                Some("a lock key is up to 100 letters, digits, `-`, `_`, `.` or `:`, like \"orders-db\"; or lock = false for none".into()),
            );
            None
        }
    }
}

fn join_keys(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        "none".into()
    } else {
        map.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Where the configuration comes from when not given: `ROLLBOT_CONFIG`, then `rollbot.toml`.
pub fn default_path() -> PathBuf {
    std::env::var_os("ROLLBOT_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("rollbot.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(source: &str) -> Vec<String> {
        Config::parse("rollbot.toml", source)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const MINIMAL: &str = r#"
[slack]
channels = ["C0INCIDENTS"]
[roles]
on_call = ["U0BOB"]
team_lead = ["U0CAROL"]
[runbooks.k8s]
params.target = { pattern = "[0-9]+" }
[[runbooks.k8s.steps]]
name = "Undo"
run = ["kubectl", "rollout", "undo", "deployment/{{ vars.deployment }}", "--to-revision={{ params.target }}"]
[services.api]
runbooks = ["k8s"]
vars = { deployment = "api" }
"#;

    #[test]
    fn a_word_of_the_grammar_cannot_name_a_service() {
        assert_eq!(
            errors(&MINIMAL.replace("[services.api]", "[services.status]")),
            [
                "rollbot.toml:13:12: `status` cannot be a service name: it is a word of the /rollback grammar\n  hint: `/rollback <name> …` would read it as that word; rename the service"
            ]
        );
    }

    #[test]
    fn the_alertmanager_section_is_checked_and_defaulted() {
        let config = Config::parse(
            "rollbot.toml",
            &format!("{MINIMAL}\n[alertmanager]\ntarget_label = \"previous_release\"\nseverities = {{ page = \"critical\" }}\n"),
        )
        .unwrap();
        let settings = config.alertmanager.unwrap();
        assert_eq!(
            settings.channel,
            ChannelId("C0INCIDENTS".into()),
            "the first incident channel"
        );
        assert_eq!(settings.token_env, DEFAULT_ALERTMANAGER_TOKEN_ENV);
        assert_eq!(
            (settings.service_label.as_str(), settings.severity_label.as_str()),
            ("service", "severity")
        );
        assert_eq!(settings.severity_of(Some("page")), Severity::Critical);
        assert_eq!(
            settings.severity_of(Some("sev3")),
            Severity::Medium,
            "rollbot's own names work too"
        );
        assert_eq!(
            settings.severity_of(Some("warning")),
            Severity::High,
            "unmapped: the default"
        );
        assert_eq!(settings.severity_of(None), Severity::High);

        assert_eq!(
            errors(&format!(
                "{MINIMAL}\n[alertmanager]\nchannel = \"C0RANDOM\"\ndefault_severity = \"urgent\"\n"
            )),
            [
                "rollbot.toml:17:11: `C0RANDOM` is not one of the incident channels\n  hint: proposals are requests in waiting: post them where requests are accepted ([slack] channels)"
            ]
        );
        assert_eq!(
            errors(&format!("{MINIMAL}\n[alertmanager]\ndefault_severity = \"urgent\"\n")),
            ["rollbot.toml:17:20: `urgent` is not a severity\n  hint: severities are critical, high, medium and low"]
        );
        assert_eq!(
            errors(&MINIMAL.replace("[services.api]\n", "[services.api]\nauto_request = true\n")),
            [
                "rollbot.toml:13:16: service `api` sets auto_request, but [alertmanager] is not configured\n  hint: configure [alertmanager] (docs/alerts.md), or remove auto_request"
            ]
        );
    }

    #[test]
    fn every_example_passes_check() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut checked = vec![];
        for dir in [root.to_owned(), format!("{root}/runbooks")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                    checked.push(path.file_stem().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        checked.sort();
        // One file per rollback family in DESIGN.md; a missing one is a gap in the library.
        assert_eq!(
            checked,
            [
                "blue-green",
                "canary",
                "cloud-snapshot",
                "configuration",
                "database-full-restore",
                "database-partial-restore",
                "database-schema",
                "docker-compose",
                "feature-flags",
                "git-revert",
                "helm",
                "kubernetes",
                "maintenance",
                "pm2-systemd",
                "rollbot",
            ]
        );
    }

    #[test]
    fn defaults_fill_in_the_severity_policy() {
        let config = Config::parse("rollbot.toml", MINIMAL).unwrap();
        let high = config.policy.severity(Severity::High);
        assert_eq!(
            (high.approvals, high.approvers.as_slice()),
            (1, ["on_call".to_owned()].as_slice())
        );
        assert!(config.policy.severity(Severity::Low).require_reason);
        assert_eq!(config.policy.severity(Severity::Critical).approvals, 0);
        assert!(matches!(
            config.catalog.runbooks["k8s"].steps[0].kind,
            StepKind::Command { timeout, .. } if timeout == DEFAULT_STEP_TIMEOUT
        ));
    }

    #[test]
    fn mistakes_are_reported_with_file_line_and_column() {
        assert_eq!(
            errors(&MINIMAL.replace("[runbooks.k8s]", "[runbooks.k8s]\ntimout = \"1m\"")),
            [
                "rollbot.toml:8:1: unknown field `timout`, expected one of `description`, `expected_duration`, `lock`, `params`, `steps`\n  hint: every key is documented in docs/configuration.md; unknown keys are errors so typos cannot pass silently"
            ]
        );
        assert_eq!(
            errors(&MINIMAL.replace("runbooks = [\"k8s\"]", "runbooks = [\"k9s\"]")),
            ["rollbot.toml:13:13: runbook `k9s` is not defined\n  hint: defined runbooks: k8s"]
        );
        assert_eq!(
            errors(&MINIMAL.replace("{{ vars.deployment }}", "{{ vars.deploymnet }}")),
            [
                "rollbot.toml:13:13: service `api` does not define `vars.deploymnet`, which runbook `k8s` step `Undo` uses in `deployment/{{ vars.deploymnet }}`\n  hint: add it to [services.api] vars (defined: deployment)"
            ]
        );
        assert_eq!(
            errors(&MINIMAL.replace("params.target }}", "params.revision }}")),
            [
                "rollbot.toml:10:8: step `Undo`: `--to-revision={{ params.revision }}` uses `params.revision`, which is neither vars.<name> nor a declared parameter (params: target)"
            ]
        );
        assert_eq!(
            errors(&MINIMAL.replace("pattern = \"[0-9]+\"", "pattern = \"[0-9\"")).len(),
            1,
            "a broken pattern is one error"
        );
        assert_eq!(
            errors(&format!("{MINIMAL}\n[severity.high]\napprovers = [\"oncall\"]\n")),
            ["rollbot.toml:17:14: role `oncall` is not defined in [roles]\n  hint: defined roles: on_call, team_lead"]
        );
        assert_eq!(
            errors(&MINIMAL.replace("on_call = [\"U0BOB\"]", "on_call = [\"bob\"]")),
            [
                "rollbot.toml:5:12: `bob` in role `on_call` is not a Slack user ID or user-group ID\n  hint: use IDs like U0123ABCD (user) or S0123ABCD (user group), from the profile's \"Copy member ID\""
            ]
        );
        assert_eq!(
            errors(&MINIMAL.replace("channels = [\"C0INCIDENTS\"]", "channels = [\"#incidents\"]")),
            [
                "rollbot.toml:3:13: `#incidents` is not a Slack channel ID\n  hint: channel IDs look like C0123ABCD: open the channel's details and copy the ID at the bottom"
            ]
        );
    }

    #[test]
    fn a_duration_that_cannot_work_fails_check_instead_of_the_run() {
        // A zero lease used to pass check and then panic the run's task after its step was
        // recorded as started.
        assert_eq!(
            errors(&format!("{MINIMAL}\n[limits]\nexecution_lease = \"0s\"\n")),
            [
                "rollbot.toml:17:19: `0s` is too short for `execution_lease`: it must be between 2s and 1h\n  hint: it is renewed every third of it, and a renewal must fit a database round trip; past it, a dead process's run waits that long to be noticed; use 2s or more"
            ]
        );
        assert_eq!(
            errors(&MINIMAL.replace("name = \"Undo\"", "name = \"Undo\"\ntimeout = \"400d\"")),
            [
                "rollbot.toml:11:11: `400d` is too long for `timeout`: it must be between 1s and 1day\n  hint: a step is killed after this long; use 1day or less"
            ]
        );
        for (section, line) in [
            ("[limits]", "shutdown_grace = \"2h\""),
            ("[slack]", "group_cache = \"0s\""),
            ("[severity.high]", "expire_after = \"10s\""),
            ("[severity.high]", "respond_within = \"30d\""),
        ] {
            let source = if section == "[slack]" {
                MINIMAL.replace("[slack]\n", &format!("[slack]\n{line}\n"))
            } else {
                format!("{MINIMAL}\n{section}\n{line}\n")
            };
            let found = errors(&source);
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            assert!(found[0].contains("is too"), "{line}: {found:?}");
        }
        for fine in ["2s", "30s", "1h"] {
            let config = Config::parse(
                "rollbot.toml",
                &format!("{MINIMAL}\n[limits]\nexecution_lease = \"{fine}\"\n"),
            )
            .unwrap();
            assert_eq!(config.execution_lease, humantime::parse_duration(fine).unwrap());
        }
    }

    #[test]
    fn templates_with_unknown_variables_fail_check_not_an_incident() {
        let with = |extra: &str| format!("{MINIMAL}\n[templates]\n{extra}\n");
        assert!(
            Config::parse(
                "rollbot.toml",
                &with("started = \"Rolling back {{ service }} to {{ target }}\"")
            )
            .is_ok()
        );
        assert_eq!(
            errors(&with("succeeded = \"{{ servce }} is back\"")),
            [
                "rollbot.toml:17:13: template `succeeded` uses servce which is not a template variable\n  hint: variables are id, service, target, runbook, severity, reason, requester, approvers, started, expected_completion, duration, state, failed_step, failure_reason, cancelled_by, thread, steps, requested, finished (docs/configuration.md says what each holds)"
            ]
        );
        assert_eq!(
            errors(&with("finished = \"done\"")),
            [
                "rollbot.toml:17:1: unknown template `finished`\n  hint: templates are started, succeeded, failed, cancelled, customer_notice, page_opened, page_monitoring, page_still_investigating, page_resolved"
            ]
        );
    }

    /// Each mistake in a step of the new kinds, with the exact words `rollbot check` prints.
    #[test]
    fn step_kind_mistakes_are_explained() {
        let step = |body: &str| {
            let source = format!(
                "{MINIMAL}\n[databases.shop]\nurl_env = \"SHOP_DATABASE_URL\"\n[runbooks.extra]\n[[runbooks.extra.steps]]\nname = \"S\"\n{body}\n"
            );
            errors(&source).join("\n")
        };
        let cases = [
            r#"run = ["true"]
http = { url = "https://example.com" }"#,
            r#"sql = { database = "orders", snapshot = { schema = "public" } }"#,
            r#"sql = { database = "shop", snapshot = { schema = "public", tables = ["a"] } }"#,
            r#"sql = { database = "shop", compare = { drift = "lots" } }"#,
            r#"sql = { database = "shop", assert = { query = "select 1", expect = "about 1" } }"#,
            r#"sql = { database = "shop", snapshot = { tables = ["a"] }, read_only = false }"#,
            r#"http = { url = "https://flags.example.com", headers = { Authorization = "${env:SLACK_BOT_TOKEN}" } }"#,
            r#"http = { method = "FETCH", url = "ftp://example.com", expect_status = [42] }"#,
            r#"health = { url = "https://example.com/healthz", within = "5s", every = "10s" }"#,
            r#"statuspage = { status = "identified", message = "x" }"#,
            r##"notify = { channel = "#general", text = "x" }"##,
            r#"run = ["true"]
on_failure = "ignore"
retries = 11"#,
            r#"gate = "wait"
drill = { run = ["true"] }"#,
        ];
        let table: Vec<String> = cases.iter().map(|c| format!("{c}\n  => {}", step(c))).collect();
        insta::assert_snapshot!(table.join("\n\n"));
    }

    #[test]
    fn a_step_cannot_borrow_the_status_pages_secret() {
        let source = format!(
            "{MINIMAL}\n[statuspage]\nprovider = \"atlassian\"\npage_id = \"p1\"\nsecret_env = \"PAGE_KEY\"\n[runbooks.extra]\n[[runbooks.extra.steps]]\nname = \"S\"\nhttp = {{ url = \"https://example.com\", headers = {{ Authorization = \"${{env:PAGE_KEY}}\" }} }}\n"
        );
        assert_eq!(
            errors(&source),
            [
                "rollbot.toml:22:8: step `S`: `${env:PAGE_KEY}` is the status page's secret; give the step its own credential"
            ]
        );
    }

    #[test]
    fn sql_never_takes_request_parameters() {
        let source = format!(
            "{MINIMAL}\n[databases.shop]\nurl_env = \"SHOP_DATABASE_URL\"\n[runbooks.extra]\nparams.table = {{ pattern = \"[a-z]+\" }}\n[[runbooks.extra.steps]]\nname = \"S\"\nsql = {{ database = \"shop\", assert = {{ query = \"select count(*) from {{{{ params.table }}}}\", expect = \"> 0\" }} }}\n"
        );
        assert_eq!(
            errors(&source),
            [
                "rollbot.toml:21:8: step `S`: SQL may use `vars` but not request parameters, which come from Slack\n  hint: put the value in the service's vars, or use a `run` step with its own checks"
            ]
        );
    }

    #[test]
    fn patterns_match_the_whole_value() {
        let config = Config::parse("rollbot.toml", MINIMAL).unwrap();
        let pattern = &config.catalog.runbooks["k8s"].params["target"].pattern;
        assert!(pattern.is_match("41"));
        assert!(
            !pattern.is_match("41; rm -rf /"),
            "an unanchored pattern would accept this"
        );
    }
}
