//! The one TOML file: Slack channels, roles, severity policy, runbooks and services.
//! Loading validates everything a request will later rely on, so mistakes surface in
//! `rollbot check` with a file:line:column, not during an incident. `raw` is the file's format;
//! `checker` reports mistakes; `policy`, `integrations`, `steps` and `catalog` check each concern.
use crate::domain::plan::{
    Catalog, Drift, Lock, OnFailure, PAGE_STEP_STATUSES, ParamSpec, Runbook, Service, SqlCheck, StepKind, StepTemplate,
};
use crate::domain::{ChannelId, EscalationLevel, Policy, Reminders, Severity, SeverityPolicy, TeamId};
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

mod catalog;
mod checker;
mod checklists;
mod integrations;
mod params;
mod policy;
mod raw;
mod steps;

use catalog::*;
use checker::*;
pub use checklists::Checklists;
use checklists::check_checklists;
use integrations::*;
use params::*;
use policy::*;
use raw::*;
use steps::*;

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
    /// While a step runs, how often its card shows the latest output (and at least every
    /// second period, output or not, so the time it has run stays current).
    pub step_progress_every: Duration,
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
    /// Set when a role reads who is on call from PagerDuty (or `[pagerduty]` is given).
    pub pagerduty: Option<PagerDutySettings>,
    /// Post-incident checklists, and which severities and runbooks post them.
    pub checklists: Checklists,
}

/// Where PagerDuty's REST API is and which environment variable holds its key (read when
/// rollbot starts, like the status page's).
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutySettings {
    /// A role reads who is on call (then the REST API key is required).
    pub reads_on_call: bool,
    pub api_url: String,
    pub token_env: String,
    /// Where change events go and which variable holds the integration key, when they are on.
    pub change_events: Option<ChangeEventSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEventSettings {
    pub url: String,
    pub routing_key_env: String,
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

/// Where the status page is and how rollbot reaches it; the secret itself comes from the
/// environment variable `secret_env` (or `<secret_env>_FILE`) when rollbot starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageSettings {
    pub kind: StatusPageKind,
    pub secret_env: String,
    pub impacted_status: String,
    /// Resolve by itself this long after success, unless someone clicks Mark resolved first.
    pub resolve_after: Option<Duration>,
    /// Carry on an unresolved incident that already names one of the service's components
    /// (opened by the incident commander, or by an earlier rollback) instead of opening another.
    pub attach_to_open: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatusPageKind {
    Atlassian { api_url: String, page_id: String },
    Webhook { url: String },
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
    /// A service with `auto_request` files at most one request by itself per this interval.
    pub auto_request_every: Duration,
}

pub const DEFAULT_AUTO_REQUEST_EVERY: Duration = Duration::from_secs(3600);

pub const DEFAULT_ALERTMANAGER_TOKEN_ENV: &str = "ROLLBOT_ALERTMANAGER_TOKEN";

impl AlertmanagerSettings {
    /// The severity an alert's label value stands for.
    pub fn severity_of(&self, value: Option<&str>) -> Severity {
        // A label's own wording is capped at high: only the configuration's explicit mapping
        // can make an alert critical, the severity that runs without approval.
        let named = |v: &str| v.parse::<Severity>().ok().map(|s| s.max(Severity::High));
        value
            .and_then(|v| self.severities.get(v).copied().or_else(|| named(v)))
            .unwrap_or(self.default_severity)
    }
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
        let step_progress_every = raw
            .limits
            .step_progress_every
            .as_ref()
            .and_then(|d| checker.duration(d, DurationSetting::StepProgressEvery))
            .unwrap_or(Duration::from_secs(30));
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
        // Every variable rollbot itself reads a secret from: no step may reference one.
        let mut own_secrets: Vec<(String, &str)> = vec![];
        if let Some(page) = &status_page {
            own_secrets.push((page.secret_env.clone(), "the status page's secret"));
        }
        let alertmanager_token = raw
            .alertmanager
            .as_ref()
            .map_or(DEFAULT_ALERTMANAGER_TOKEN_ENV.to_owned(), |a| {
                a.token_env
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ALERTMANAGER_TOKEN_ENV.to_owned())
            });
        own_secrets.push((alertmanager_token, "Alertmanager's token"));
        let pagerduty = check_pagerduty(raw.pagerduty.as_ref(), &roles);
        if let Some(pager) = &pagerduty {
            if pager.reads_on_call {
                own_secrets.push((pager.token_env.clone(), "PagerDuty's API key"));
            }
            if let Some(events) = &pager.change_events {
                own_secrets.push((events.routing_key_env.clone(), "PagerDuty's integration key"));
            }
        }
        let runbooks = check_runbooks(&mut checker, &raw.runbooks, &databases, &own_secrets);
        let checklists = check_checklists(&mut checker, &raw);
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
                catalog: Catalog {
                    runbooks,
                    services,
                    allowed_hosts: raw.safety.allowed_hosts.clone(),
                },
                roles: roles.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect(),
                output_tail_bytes: raw.limits.output_tail_bytes.unwrap_or(3 * 1024),
                group_cache,
                templates,
                notify_channels,
                status_page,
                alertmanager,
                pagerduty,
                checklists,
                execution_lease,
                shutdown_grace,
                step_progress_every,
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

/// Where the configuration comes from when not given: `ROLLBOT_CONFIG`, then `rollbot.toml`.
pub fn default_path() -> PathBuf {
    std::env::var_os("ROLLBOT_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("rollbot.toml"))
}

#[cfg(test)]
mod tests;
