//! Runbooks and services from the configuration, and the frozen plan a request resolves to.
//! What is approved is what runs: the plan is computed once, stored with the rollback, and
//! executed as stored.
use super::Refusal;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest parameter value accepted; argv elements this long are never legitimate.
pub const MAX_PARAM_CHARS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub runbooks: BTreeMap<String, Runbook>,
    pub services: BTreeMap<String, Service>,
    /// `[safety] allowed_hosts`: the only hosts `http` and `health` steps may call, when set.
    pub allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    pub expected_duration: Option<Duration>,
    pub params: BTreeMap<String, ParamSpec>,
    pub steps: Vec<StepTemplate>,
    /// Read-only checks run when a rollback is requested (`[[runbooks.X.preflight]]`).
    pub preflight: Vec<StepTemplate>,
    /// What its rollbacks lock; `None`: as the service says.
    pub lock: Option<Lock>,
    /// The runbook offered after one of its rollbacks fails or is aborted.
    pub fallback: Option<String>,
}

/// What an open rollback holds, so that a second one cannot run beside it: two
/// `kubectl rollout undo` return to the bad version, two `pg_restore --clean` overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Lock {
    /// One open rollback per service (the default).
    #[default]
    Service,
    /// A key shared by what must not run together (a database several services use).
    Key(String),
    /// No lock: rollbacks of it may run side by side.
    Off,
}

#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Matched against the whole value (anchored), whatever the config wrote.
    pub pattern: Regex,
    pub pattern_source: String,
    pub help: Option<String>,
    /// The only values accepted, when given (the form offers them as a select).
    pub choices: Vec<String>,
    /// Taken when the request does not give the parameter.
    pub default: Option<String>,
    /// Missing and required: refused. Missing, not required and no default: empty.
    pub required: bool,
    /// Where the form finds recent values to offer (`[runbooks.X.params.Y.discover]`).
    pub discover: Option<super::discovery::Discovery>,
}

#[derive(Debug, Clone)]
pub struct StepTemplate {
    pub name: String,
    pub kind: StepKind,
    /// A destructive step waits until someone eligible types this phrase (a template).
    pub confirm: Option<String>,
    /// How many more times a failed step is tried, `retry_delay` apart (doubling each time).
    pub retries: u32,
    pub retry_delay: Duration,
    pub on_failure: OnFailure,
    /// After it fails or is aborted, people may skip it and go on (*Skip step and continue*).
    pub skippable: bool,
    /// What a drill does instead; without it a drill shows the step as "would run".
    pub drill: Option<StepKind>,
    /// It keeps a copy (a dump, a snapshot) of what later steps change (`backup = true`).
    pub backup: bool,
    /// A command that checks rather than changes (`verify = true`).
    pub verify: bool,
    /// A destructive step's read-only count of what it would undo (`loses`).
    pub loses: Option<StepKind>,
}

/// What happens to the run when a step fails after its retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Abort,
    /// Record the failure and go on with the next step (for checks that only inform).
    Continue,
}

impl OnFailure {
    fn is_abort(&self) -> bool {
        *self == OnFailure::Abort
    }
}

/// What a `sql` step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum SqlCheck {
    /// Record the row count of each listed table, or of every table of `schema`.
    Snapshot {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tables: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<String>,
    },
    /// Compare row counts now with the rollback's latest snapshot of the same database.
    Compare {
        default_drift: Drift,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        drift: BTreeMap<String, Drift>,
    },
    /// A query whose single value must meet `expect`, e.g. `>= 3`.
    Assert { query: String, expect: String },
}

/// How far a table's row count may move between the snapshot and the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    Rows(u64),
    Percent(u32),
}

impl Drift {
    /// `"0"`, `"25"` (rows) or `"10%"`.
    pub fn parse(text: &str) -> Option<Drift> {
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(p) => p.trim().parse().ok().map(Drift::Percent),
            None => text.parse().ok().map(Drift::Rows),
        }
    }

    pub fn allows(&self, before: i64, after: i64) -> bool {
        let moved = before.abs_diff(after);
        match *self {
            Drift::Rows(rows) => moved <= rows,
            Drift::Percent(p) => moved as u128 * 100 <= before.unsigned_abs() as u128 * p as u128,
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Rows(r) => write!(f, "{r} rows"),
            Drift::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The status a `statuspage` step sets on the rollback's incident.
pub const PAGE_STEP_STATUSES: [&str; 3] = ["investigating", "identified", "monitoring"];

#[derive(Debug, Clone)]
pub enum StepKind {
    Command {
        run: Vec<String>,
        env: BTreeMap<String, String>,
        workdir: Option<String>,
        timeout: Duration,
    },
    /// Pauses the run until someone eligible clicks Continue or Abort.
    Gate {
        message: String,
    },
    Http {
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        /// JSON whose string leaves are templates.
        json: Option<serde_json::Value>,
        expect_status: Vec<u16>,
        timeout: Duration,
    },
    Health {
        url: String,
        expect_status: u16,
        body_contains: Option<String>,
        within: Duration,
        every: Duration,
    },
    Sql {
        database: String,
        /// The connection string's reference, `${env:NAME}`, resolved only when the step runs.
        connection: String,
        check: SqlCheck,
        read_only: bool,
        timeout: Duration,
    },
    Notify {
        channel: Option<String>,
        text: String,
    },
    StatusPage {
        status: String,
        message: String,
    },
}

fn json_strings<'a>(value: &'a serde_json::Value, into: &mut Vec<&'a String>) {
    use serde_json::Value;
    match value {
        Value::String(s) => into.push(s),
        Value::Array(items) => items.iter().for_each(|v| json_strings(v, into)),
        Value::Object(map) => map.values().for_each(|v| json_strings(v, into)),
        _ => {}
    }
}

fn render_json(
    value: &serde_json::Value,
    render: &dyn Fn(&str) -> Result<String, String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(render(s)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, render)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| render_json(v, render).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

impl StepKind {
    /// Every template string of the action.
    pub fn templates(&self) -> Vec<&String> {
        match self {
            StepKind::Command { run, env, workdir, .. } => {
                run.iter().chain(env.values()).chain(workdir.iter()).collect()
            }
            StepKind::Gate { message } => vec![message],
            StepKind::Http { url, headers, json, .. } => {
                let mut all: Vec<&String> = std::iter::once(url).chain(headers.values()).collect();
                if let Some(json) = json {
                    json_strings(json, &mut all);
                }
                all
            }
            StepKind::Health { url, body_contains, .. } => std::iter::once(url).chain(body_contains.iter()).collect(),
            StepKind::Sql { check, .. } => match check {
                SqlCheck::Snapshot { tables, schema } => tables.iter().chain(schema.iter()).collect(),
                SqlCheck::Compare { .. } => vec![],
                SqlCheck::Assert { query, .. } => vec![query],
            },
            StepKind::Notify { text, .. } => vec![text],
            StepKind::StatusPage { message, .. } => vec![message],
        }
    }

    /// Resolves the templates into the action that will be frozen in the plan.
    /// `render_url` renders a URL: parameters percent-encoded, the result checked.
    pub(super) fn render(
        &self,
        render: &dyn Fn(&str) -> Result<String, String>,
        render_url: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<StepAction, String> {
        Ok(match self {
            StepKind::Command {
                run,
                env,
                workdir,
                timeout,
            } => StepAction::Command {
                argv: run.iter().map(|a| render(a)).collect::<Result<_, _>>()?,
                env: env
                    .iter()
                    .map(|(k, v)| render(v).map(|v| (k.clone(), v)))
                    .collect::<Result<_, _>>()?,
                workdir: workdir.as_deref().map(render).transpose()?,
                timeout_secs: timeout.as_secs(),
            },
            StepKind::Gate { message } => StepAction::Gate {
                message: render(message)?,
            },
            StepKind::Http {
                method,
                url,
                headers,
                json,
                expect_status,
                timeout,
            } => StepAction::Http {
                method: method.clone(),
                url: render_url(url)?,
                headers: headers
                    .iter()
                    .map(|(k, v)| render(v).map(|v| (k.clone(), v)))
                    .collect::<Result<_, _>>()?,
                body: json
                    .as_ref()
                    .map(|j| render_json(j, render).map(|v| v.to_string()))
                    .transpose()?,
                expect_status: expect_status.clone(),
                timeout_secs: timeout.as_secs().max(1),
            },
            StepKind::Health {
                url,
                expect_status,
                body_contains,
                within,
                every,
            } => StepAction::Health {
                url: render_url(url)?,
                expect_status: *expect_status,
                body_contains: body_contains.as_deref().map(render).transpose()?,
                within_secs: within.as_secs().max(1),
                every_ms: every.as_millis().max(100) as u64,
            },
            StepKind::Sql {
                database,
                connection,
                check,
                read_only,
                timeout,
            } => StepAction::Sql {
                database: database.clone(),
                connection: connection.clone(),
                check: match check {
                    SqlCheck::Snapshot { tables, schema } => SqlCheck::Snapshot {
                        tables: tables.iter().map(|t| render(t)).collect::<Result<_, _>>()?,
                        schema: schema.as_deref().map(render).transpose()?,
                    },
                    SqlCheck::Compare { .. } => check.clone(),
                    SqlCheck::Assert { query, expect } => SqlCheck::Assert {
                        query: render(query)?,
                        expect: expect.clone(),
                    },
                },
                read_only: *read_only,
                timeout_secs: timeout.as_secs().max(1),
            },
            StepKind::Notify { channel, text } => StepAction::Notify {
                channel: channel.clone(),
                text: render(text)?,
            },
            StepKind::StatusPage { status, message } => StepAction::StatusPage {
                status: status.clone(),
                message: render(message)?,
            },
        })
    }
}

impl StepTemplate {
    /// Whether running it changes something people would roll back: a command (unless it says
    /// it only checks), an HTTP call other than GET or HEAD. Reads, gates and messages do not.
    pub fn changes_something(&self) -> bool {
        match &self.kind {
            StepKind::Command { .. } => !self.verify,
            StepKind::Http { method, .. } => !matches!(method.to_ascii_uppercase().as_str(), "GET" | "HEAD"),
            StepKind::Sql { read_only, .. } => !read_only,
            StepKind::Gate { .. } | StepKind::Health { .. } | StepKind::Notify { .. } | StepKind::StatusPage { .. } => {
                false
            }
        }
    }

    /// Whether it checks that the service or the data is right: a health check, a row-count
    /// comparison or assertion, a GET or HEAD, or a command marked `verify = true`.
    pub fn verifies_something(&self) -> bool {
        match &self.kind {
            StepKind::Command { .. } => self.verify,
            StepKind::Http { method, .. } => matches!(method.to_ascii_uppercase().as_str(), "GET" | "HEAD"),
            StepKind::Health { .. } => true,
            StepKind::Sql { check, .. } => !matches!(check, SqlCheck::Snapshot { .. }),
            StepKind::Gate { .. } | StepKind::Notify { .. } | StepKind::StatusPage { .. } => false,
        }
    }

    /// Every template string of the step, for validation.
    pub fn templates(&self) -> Vec<&String> {
        let mut all = self.kind.templates();
        all.extend(self.drill.iter().flat_map(StepKind::templates));
        all.extend(self.loses.iter().flat_map(StepKind::templates));
        all.extend(self.confirm.iter());
        all
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// The first is the default.
    pub runbooks: Vec<String>,
    pub vars: BTreeMap<String, String>,
    /// Status page components this service's rollbacks mark as impacted.
    pub statuspage_components: Vec<String>,
    /// A firing alert files a request by itself (still waiting for the policy's approvals).
    pub auto_request: bool,
    pub lock: Lock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub service: String,
    pub runbook: String,
    pub steps: Vec<PlanStep>,
    /// The runbook to request next if this one fails or is aborted (`[runbooks.X] fallback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The runbook's parameters besides the target, as the steps were rendered with them
    /// (defaults included), so that people approve the values and the digest covers them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The runbook's read-only checks, run before anyone approves and shown on the card.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PlanStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub name: String,
    #[serde(flatten)]
    pub action: StepAction,
    /// Destructive: before it runs, someone eligible must type this phrase exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub retry_delay_ms: u64,
    #[serde(default, skip_serializing_if = "OnFailure::is_abort")]
    pub on_failure: OnFailure,
    /// After it fails or is aborted, people may skip it and go on with the next step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skippable: bool,
    /// What a drill runs instead; `None`: a drill does not execute this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Box<StepAction>>,
    /// It keeps a copy of what later steps change (`backup = true`): a destructive step's
    /// confirmation says when it ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
    /// What a destructive step runs, read-only, when its confirmation opens, to say what it
    /// would undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loses: Option<Box<StepAction>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl PlanStep {
    /// A step that runs once and ends the run if it fails.
    pub fn new(name: impl Into<String>, action: StepAction) -> PlanStep {
        PlanStep {
            name: name.into(),
            action,
            confirm: None,
            retries: 0,
            retry_delay_ms: 0,
            on_failure: OnFailure::Abort,
            skippable: false,
            drill: None,
            backup: false,
            loses: None,
        }
    }

    /// Whether a person must act before this step runs.
    pub fn needs_person(&self) -> bool {
        self.confirm.is_some() || matches!(self.action, StepAction::Gate { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    Command {
        argv: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workdir: Option<String>,
        timeout_secs: u64,
    },
    Gate {
        message: String,
    },
    Http {
        method: String,
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// JSON text, sent as `application/json`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        expect_status: Vec<u16>,
        timeout_secs: u64,
    },
    Health {
        url: String,
        expect_status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_contains: Option<String>,
        within_secs: u64,
        every_ms: u64,
    },
    Sql {
        database: String,
        connection: String,
        check: SqlCheck,
        read_only: bool,
        timeout_secs: u64,
    },
    /// Post a message; `channel` `None` is the rollback's thread.
    Notify {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        text: String,
    },
    StatusPage {
        status: String,
        message: String,
    },
}

impl StepAction {
    /// How long one attempt may take before it is stopped, for the steps that have a limit.
    pub fn time_limit(&self) -> Option<std::time::Duration> {
        let secs = match self {
            StepAction::Command { timeout_secs, .. }
            | StepAction::Http { timeout_secs, .. }
            | StepAction::Sql { timeout_secs, .. } => *timeout_secs,
            StepAction::Health { within_secs, .. } => *within_secs,
            StepAction::Gate { .. } | StepAction::Notify { .. } | StepAction::StatusPage { .. } => return None,
        };
        Some(std::time::Duration::from_secs(secs))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Command { .. } => "command",
            StepAction::Gate { .. } => "gate",
            StepAction::Http { .. } => "http",
            StepAction::Health { .. } => "health",
            StepAction::Sql { .. } => "sql",
            StepAction::Notify { .. } => "notify",
            StepAction::StatusPage { .. } => "statuspage",
        }
    }
}

impl Plan {
    /// A digest of exactly what will run; approvals are bound to it.
    pub fn digest(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a plan always serializes");
        hex::encode(Sha256::digest(&canonical))
    }

    pub fn short_digest(&self) -> String {
        self.digest()[..12].to_owned()
    }
}

/// What a request names; `target` fills the runbook parameter called `target`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanRequest {
    pub service: String,
    pub runbook: Option<String>,
    pub target: Option<String>,
    pub params: BTreeMap<String, String>,
}

/// A rollback someone asks for, as an edge (the chat grammar, the request form, a proposal)
/// hands it to the engine; the engine adds who asked, where, and the frozen plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    pub plan: PlanRequest,
    /// The edges ask for one (in text or in the form) before a request reaches the engine.
    pub severity: Option<super::Severity>,
    pub reason: Option<String>,
    /// The status page incident to carry on (`incident <id>`), instead of opening one.
    pub status_incident: Option<String>,
    /// Rehearse only: show every step, execute none.
    pub drill: bool,
    /// Asked as the fallback of this stopped rollback (its card's *Run fallback*).
    pub fallback_of: Option<super::RollbackId>,
    /// Started from an alert's proposal: when monitoring saw the issue.
    pub detected: Option<super::rollback::Detection>,
}

impl Catalog {
    pub fn nearest_service(&self, name: &str) -> Option<String> {
        nearest(name, self.services.keys().map(String::as_str))
    }

    /// The runbook a request form shows for `service`: the one named when the service offers
    /// it, else the service's default (its first).
    pub fn runbook_for_form(&self, service: &str, runbook: Option<&str>) -> Option<&String> {
        let service = self.services.get(service)?;
        runbook
            .and_then(|r| service.runbooks.iter().find(|name| *name == r))
            .or(service.runbooks.first())
    }

    /// The key an open rollback of `plan` holds: the runbook's lock, else its service's.
    /// Drills hold none, so they never block a real rollback.
    pub fn lock_key(&self, plan: &Plan, drill: bool) -> Option<String> {
        if drill {
            return None;
        }
        let service = self.services.get(&plan.service)?;
        let lock = self
            .runbooks
            .get(&plan.runbook)
            .and_then(|r| r.lock.clone())
            .unwrap_or_else(|| service.lock.clone());
        match lock {
            Lock::Service => Some(format!("service:{}", service.name)),
            Lock::Key(key) => Some(format!("key:{key}")),
            Lock::Off => None,
        }
    }

    /// Resolve a request into the plan that would be frozen. Every parameter must match its
    /// pattern before any plan exists.
    pub fn freeze(&self, request: &PlanRequest) -> Result<Plan, Refusal> {
        let service = self
            .services
            .get(&request.service)
            .ok_or_else(|| Refusal::UnknownService {
                service: request.service.clone(),
                suggestion: self.nearest_service(&request.service),
                known: self.services.keys().cloned().collect(),
            })?;
        let runbook_name = match &request.runbook {
            Some(name) => {
                if !service.runbooks.contains(name) {
                    return Err(Refusal::UnknownRunbook {
                        service: service.name.clone(),
                        runbook: name.clone(),
                        known: service.runbooks.clone(),
                    });
                }
                name.clone()
            }
            None => service
                .runbooks
                .first()
                .cloned()
                .ok_or_else(|| Refusal::UnknownRunbook {
                    service: service.name.clone(),
                    runbook: String::new(),
                    known: vec![],
                })?,
        };
        let runbook = self
            .runbooks
            .get(&runbook_name)
            .expect("config validation guarantees every service runbook exists");

        // A value typed in Slack must never name a secret that execution would resolve.
        let typed = request.params.iter().map(|(k, v)| (k.as_str(), v));
        let mut typed = typed.chain(request.target.iter().map(|t| ("target", t)));
        if let Some((name, value)) = typed.find(|(_, v)| v.contains("${")) {
            return Err(Refusal::ParamMismatch {
                name: name.to_owned(),
                value: value.clone(),
                pattern: "no `${…}` references".into(),
                help: Some("secret references belong in the configuration, not in a request".into()),
            });
        }
        let mut params = request.params.clone();
        if let Some(target) = &request.target {
            if !runbook.params.contains_key("target") {
                return Err(Refusal::TargetNotTaken {
                    runbook: runbook.name.clone(),
                });
            }
            params.insert("target".into(), target.clone());
        }
        if let Some(extra) = params.keys().find(|k| !runbook.params.contains_key(*k)) {
            return Err(Refusal::UnknownParam {
                runbook: runbook.name.clone(),
                name: extra.clone(),
                suggestion: nearest(extra, runbook.params.keys().map(String::as_str)),
                known: runbook.params.keys().cloned().collect(),
            });
        }
        for (name, spec) in &runbook.params {
            let Some(value) = params.get(name) else {
                match (&spec.default, spec.required) {
                    (Some(default), _) => {
                        params.insert(name.clone(), default.clone());
                    }
                    (None, false) => {
                        params.insert(name.clone(), String::new());
                    }
                    (None, true) => {
                        return Err(Refusal::MissingParam {
                            runbook: runbook.name.clone(),
                            name: name.clone(),
                            help: spec.help.clone(),
                        });
                    }
                }
                continue;
            };
            if !spec.choices.is_empty() && !spec.choices.contains(value) {
                return Err(Refusal::NotAChoice {
                    name: name.clone(),
                    value: value.clone(),
                    suggestion: nearest(value, spec.choices.iter().map(String::as_str)),
                    choices: spec.choices.clone(),
                });
            }
            if value.chars().count() > MAX_PARAM_CHARS || !spec.pattern.is_match(value) {
                return Err(Refusal::ParamMismatch {
                    name: name.clone(),
                    value: value.clone(),
                    pattern: spec.pattern_source.clone(),
                    help: spec.help.clone(),
                });
            }
        }

        let render = |t: &str| render_template(t, &service.name, &service.vars, &params);
        let render_url = |t: &str| render_url(t, &service.name, &service.vars, &params, self.allowed_hosts.as_deref());
        let render_step = |step: &StepTemplate| {
            let rendered = || -> Result<PlanStep, String> {
                Ok(PlanStep {
                    name: step.name.clone(),
                    action: step.kind.render(&render, &render_url)?,
                    confirm: step.confirm.as_deref().map(render).transpose()?,
                    retries: step.retries,
                    retry_delay_ms: if step.retries > 0 {
                        step.retry_delay.as_millis() as u64
                    } else {
                        0
                    },
                    on_failure: step.on_failure,
                    skippable: step.skippable,
                    drill: step
                        .drill
                        .as_ref()
                        .map(|d| d.render(&render, &render_url).map(Box::new))
                        .transpose()?,
                    backup: step.backup,
                    loses: step
                        .loses
                        .as_ref()
                        .map(|l| l.render(&render, &render_url).map(Box::new))
                        .transpose()?,
                })
            };
            rendered().map_err(|detail| Refusal::PlanTemplate {
                step: step.name.clone(),
                detail,
            })
        };
        let steps = runbook.steps.iter().map(render_step).collect::<Result<Vec<_>, _>>()?;
        let preflight = runbook
            .preflight
            .iter()
            .map(render_step)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            service: service.name.clone(),
            runbook: runbook.name.clone(),
            steps,
            fallback: runbook.fallback.clone(),
            params: params
                .iter()
                .filter(|(name, _)| *name != "target")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            preflight,
        })
    }
}

/// Renders one argv element, env value or path. Each element is rendered on its own, so a
/// parameter value can never become more than one argument.
pub fn render_template(
    template: &str,
    service: &str,
    vars: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let rendered = env.render_str(
        template,
        minijinja::context! { service => service, vars => vars, params => params },
    );
    // `${env:…}` references are the configuration's (its text and its vars), never a value's:
    // two parameters side by side could otherwise spell one out after rendering.
    const REFERENCE: &str = "${env:";
    let references = |text: &str| text.matches(REFERENCE).count();
    // Rendered again with inert parameters only when the text holds a reference at all.
    let spelled_by_params = rendered.as_ref().is_ok_and(|text| {
        references(text) > 0 && {
            let inert: BTreeMap<String, String> = params.keys().map(|k| (k.clone(), "x".to_owned())).collect();
            let configured = env
                .render_str(
                    template,
                    minijinja::context! { service => service, vars => vars, params => inert },
                )
                .map_or(0, |text| references(&text));
            references(text) > configured
        }
    });
    if spelled_by_params {
        return Err(format!(
            "`{template}` would hold a `${{env:…}}` reference made of request parameters; only the configuration may name a secret"
        ));
    }
    rendered.map_err(|e| match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            format!(
                "`{template}` uses a variable that is not defined (vars: {}; params: {})",
                join_or_none(vars.keys()),
                join_or_none(params.keys())
            )
        }
        _ => format!("`{template}`: {e}"),
    })
}

/// What a parameter's value may leave unencoded in a URL: nothing but RFC 3986's unreserved
/// characters, so a value cannot add a path segment, a query or a fragment.
const PARAM_IN_URL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Renders an `http` or `health` step's URL: each parameter percent-encoded, then the URL checked:
/// http or https, no `.` or `..` path segment (a value that would move the call to another path),
/// and a host from `allowed_hosts` when it is set.
pub fn render_url(
    template: &str,
    service: &str,
    vars: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
    allowed_hosts: Option<&[String]>,
) -> Result<String, String> {
    let encoded: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                percent_encoding::utf8_percent_encode(v, PARAM_IN_URL).to_string(),
            )
        })
        .collect();
    let url = render_template(template, service, vars, &encoded)?;
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    };
    if !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    }
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let dot_segment = path.split('/').any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    });
    if dot_segment {
        return Err(format!(
            "`{url}` has a `.` or `..` path segment, which would call another path than the runbook's"
        ));
    }
    let parsed = url::Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if let Some(hosts) = allowed_hosts {
        let host = parsed.host_str().unwrap_or_default();
        if !hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
            return Err(format!(
                "`{url}` calls `{host}`, which is not in [safety] allowed_hosts ({})",
                hosts.join(", ")
            ));
        }
    }
    Ok(url)
}

fn join_or_none<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let joined = keys.map(String::as_str).collect::<Vec<_>>().join(", ");
    if joined.is_empty() { "none".into() } else { joined }
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lowered = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(&lowered, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}
