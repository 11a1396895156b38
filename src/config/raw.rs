//! The file's format, as serde reads it: unknown keys are errors, spans kept for messages.
use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) slack: RawSlack,
    #[serde(default)]
    pub(super) roles: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) severity: BTreeMap<Spanned<String>, RawSeverity>,
    #[serde(default)]
    pub(super) runbooks: BTreeMap<String, RawRunbook>,
    #[serde(default)]
    pub(super) services: BTreeMap<String, RawService>,
    #[serde(default)]
    pub(super) databases: BTreeMap<String, RawDatabase>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) escalation: Vec<RawEscalation>,
    #[serde(default)]
    pub(super) templates: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) statuspage: Option<RawStatusPage>,
    pub(super) alertmanager: Option<RawAlertmanager>,
    pub(super) pagerduty: Option<RawPagerDuty>,
    #[serde(default)]
    pub(super) checklists: BTreeMap<String, Spanned<RawChecklist>>,
    #[serde(default)]
    pub(super) safety: RawSafety,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChecklist {
    pub(super) title: Option<String>,
    pub(super) sections: Vec<RawChecklistSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChecklistSection {
    pub(super) name: String,
    pub(super) items: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPagerDuty {
    pub(super) api_url: Option<String>,
    pub(super) token_env: Option<String>,
    /// The variable holding an Events API v2 integration key: set, each rollback's start and
    /// end are sent as change events.
    pub(super) routing_key_env: Option<String>,
    pub(super) events_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSafety {
    /// `false` turns the two-person rule off; nothing else does.
    pub(super) two_person_rule: Option<bool>,
    /// The only hosts `http` and `health` steps may call.
    pub(super) allowed_hosts: Option<Vec<String>>,
    /// Roles that may abort any rollback, besides its requester and approvers.
    #[serde(default)]
    pub(super) abort_roles: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatusPage {
    pub(super) provider: Spanned<String>,
    pub(super) api_url: Option<String>,
    pub(super) page_id: Option<String>,
    pub(super) url: Option<String>,
    pub(super) secret_env: Option<String>,
    pub(super) impacted_status: Option<Spanned<String>>,
    pub(super) resolve_after: Option<Spanned<String>>,
    /// `components` (the default): carry on an unresolved incident that already names one of
    /// the service's components; `never`: always open one's own.
    pub(super) attach: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub(super) role: Spanned<String>,
    pub(super) after: Spanned<String>,
    pub(super) severities: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlack {
    pub(super) workspace: Option<Spanned<String>>,
    pub(super) channels: Spanned<Vec<Spanned<String>>>,
    pub(super) requesters: Option<Vec<Spanned<String>>>,
    /// Says in so many words that anyone in an incident channel may request, where `requesters`
    /// is unset and some severity runs without approval.
    pub(super) anyone_may_request: Option<bool>,
    pub(super) group_cache: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) notify_channels: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeverity {
    pub(super) approvals: Option<u32>,
    pub(super) approvers: Option<Vec<Spanned<String>>>,
    pub(super) require_reason: Option<bool>,
    pub(super) allow_self_approval: Option<bool>,
    pub(super) respond_within: Option<Spanned<String>>,
    pub(super) expire_after: Option<Spanned<String>>,
    pub(super) update_reminders: Option<Vec<Spanned<String>>>,
    pub(super) update_reminders_then_every: Option<Spanned<String>>,
    /// Post-incident checklists posted when one of its rollbacks ends.
    #[serde(default)]
    pub(super) checklists: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_reason_chars: Option<usize>,
    pub(super) max_open_requests_per_person: Option<Spanned<usize>>,
    pub(super) output_tail_bytes: Option<usize>,
    pub(super) execution_lease: Option<Spanned<String>>,
    pub(super) shutdown_grace: Option<Spanned<String>>,
    pub(super) step_progress_every: Option<Spanned<String>>,
    pub(super) delivery_gives_up_after: Option<Spanned<String>>,
    pub(super) outbox_retention: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunbook {
    pub(super) description: Option<String>,
    pub(super) expected_duration: Option<Spanned<String>>,
    pub(super) lock: Option<Spanned<RawLock>>,
    /// The runbook offered after one of this runbook's rollbacks fails or is aborted.
    pub(super) fallback: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Spanned<RawParam>>,
    pub(super) steps: Spanned<Vec<RawStep>>,
    /// Read-only checks run when a rollback is requested, before anyone approves.
    #[serde(default)]
    pub(super) preflight: Vec<RawStep>,
    /// Post-incident checklists posted when one of its rollbacks ends.
    #[serde(default)]
    pub(super) checklists: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParam {
    pub(super) pattern: Option<Spanned<String>>,
    pub(super) help: Option<String>,
    pub(super) choices: Option<Vec<String>>,
    pub(super) default: Option<Spanned<String>>,
    /// Absent: required unless there is a default. `false` without a default: empty when not given.
    pub(super) required: Option<bool>,
    /// Where the request form finds recent values to offer.
    pub(super) discover: Option<Spanned<RawDiscover>>,
}

/// `[runbooks.X.params.Y.discover]`: a read-only command or GET, and how its output reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscover {
    pub(super) run: Option<Spanned<Vec<String>>>,
    pub(super) http: Option<RawDiscoverHttp>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) workdir: Option<String>,
    pub(super) timeout: Option<Spanned<String>>,
    /// A regular expression with named groups, matched against each line.
    pub(super) lines: Option<Spanned<String>>,
    /// A JSON pointer to the list of entries (`""`: the whole output).
    pub(super) json: Option<Spanned<String>>,
    pub(super) value: Spanned<String>,
    pub(super) label: Option<Spanned<String>>,
    /// `"oldest-first"` (as `kubectl rollout history` and `helm history` list) or `"newest-first"`.
    pub(super) listed: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) skip_newest: bool,
    pub(super) limit: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscoverHttp {
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
}

impl RawDiscover {
    /// The command or GET it runs, as a step to check like a preflight check.
    pub(super) fn as_step(&self, name: Spanned<String>) -> RawStep {
        reading_step(name, &self.run, &self.http, &self.env, &self.workdir, &self.timeout)
    }
}

/// `[runbooks.X.steps.loses]` of a destructive step: a read-only command or GET that says what
/// the step would undo ("orders: +1,204 rows since the dump"), run when its confirmation opens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoses {
    pub(super) run: Option<Spanned<Vec<String>>>,
    pub(super) http: Option<RawDiscoverHttp>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) workdir: Option<String>,
    pub(super) timeout: Option<Spanned<String>>,
}

impl RawLoses {
    /// The command or GET it runs, as a step to check like a preflight check.
    pub(super) fn as_step(&self, name: Spanned<String>) -> RawStep {
        reading_step(name, &self.run, &self.http, &self.env, &self.workdir, &self.timeout)
    }
}

/// A command or GET that only reads, as a step that `check_preflight` can check.
fn reading_step(
    name: Spanned<String>,
    run: &Option<Spanned<Vec<String>>>,
    http: &Option<RawDiscoverHttp>,
    env: &BTreeMap<String, String>,
    workdir: &Option<String>,
    timeout: &Option<Spanned<String>>,
) -> RawStep {
    RawStep {
        name,
        run: run.clone(),
        gate: None,
        http: http.as_ref().map(|http| RawHttp {
            method: Spanned::new(0..0, "GET".to_owned()),
            url: http.url.clone(),
            headers: http.headers.clone(),
            json: None,
            expect_status: vec![200],
        }),
        health: None,
        sql: None,
        notify: None,
        statuspage: None,
        destructive: false,
        confirm: None,
        backup: false,
        no_backup_because: None,
        loses: None,
        verify: false,
        env: env.clone(),
        workdir: workdir.clone(),
        timeout: timeout.clone(),
        retries: 0,
        retry_delay: None,
        on_failure: None,
        skippable: false,
        drill: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) name: Spanned<String>,
    pub(super) run: Option<Spanned<Vec<String>>>,
    pub(super) gate: Option<String>,
    pub(super) http: Option<RawHttp>,
    pub(super) health: Option<RawHealth>,
    pub(super) sql: Option<RawSql>,
    pub(super) notify: Option<RawNotify>,
    pub(super) statuspage: Option<RawPageStep>,
    #[serde(default)]
    pub(super) destructive: bool,
    pub(super) confirm: Option<Spanned<String>>,
    /// This step keeps a copy (a dump, a snapshot) of what later steps change.
    #[serde(default)]
    pub(super) backup: bool,
    /// A destructive step with no backup before it says why none is needed.
    pub(super) no_backup_because: Option<Spanned<String>>,
    /// A destructive step's count of what it would undo, shown when it is confirmed.
    pub(super) loses: Option<Spanned<RawLoses>>,
    /// A command step that checks rather than changes (`kubectl rollout status`).
    #[serde(default)]
    pub(super) verify: bool,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) workdir: Option<String>,
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) retries: u32,
    pub(super) retry_delay: Option<Spanned<String>>,
    pub(super) on_failure: Option<Spanned<String>>,
    /// After it fails or is aborted, people may skip it and go on.
    #[serde(default)]
    pub(super) skippable: bool,
    pub(super) drill: Option<Spanned<RawDrill>>,
}

/// What a drill does instead of a step: the same kinds, less gates and status-page updates.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrill {
    pub(super) run: Option<Spanned<Vec<String>>>,
    pub(super) http: Option<RawHttp>,
    pub(super) health: Option<RawHealth>,
    pub(super) sql: Option<RawSql>,
    pub(super) notify: Option<RawNotify>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) workdir: Option<String>,
    pub(super) timeout: Option<Spanned<String>>,
}

/// The fields that say what a step does, from a step or its drill override.
pub(super) struct KindFields<'a> {
    pub(super) run: Option<&'a Spanned<Vec<String>>>,
    pub(super) gate: Option<&'a String>,
    pub(super) http: Option<&'a RawHttp>,
    pub(super) health: Option<&'a RawHealth>,
    pub(super) sql: Option<&'a RawSql>,
    pub(super) notify: Option<&'a RawNotify>,
    pub(super) statuspage: Option<&'a RawPageStep>,
    pub(super) env: &'a BTreeMap<String, String>,
    pub(super) workdir: Option<&'a String>,
    pub(super) timeout: Option<&'a Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default = "default_method")]
    pub(super) method: Spanned<String>,
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    pub(super) json: Option<toml::Value>,
    #[serde(default = "default_expected_statuses")]
    pub(super) expect_status: Vec<u16>,
}

pub(super) fn default_method() -> Spanned<String> {
    Spanned::new(0..0, "POST".to_owned())
}

pub(super) fn default_expected_statuses() -> Vec<u16> {
    vec![200, 201, 202, 204]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) url: Spanned<String>,
    #[serde(default = "default_health_status")]
    pub(super) expect_status: u16,
    pub(super) body_contains: Option<String>,
    pub(super) within: Option<Spanned<String>>,
    pub(super) every: Option<Spanned<String>>,
}

pub(super) fn default_health_status() -> u16 {
    200
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSql {
    pub(super) database: Spanned<String>,
    pub(super) snapshot: Option<RawSnapshot>,
    pub(super) compare: Option<RawCompare>,
    #[serde(rename = "assert")]
    pub(super) assertion: Option<RawAssert>,
    #[serde(default = "yes")]
    pub(super) read_only: bool,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSnapshot {
    #[serde(default)]
    pub(super) tables: Vec<String>,
    pub(super) schema: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompare {
    #[serde(default = "no_drift")]
    pub(super) drift: Spanned<String>,
    #[serde(default)]
    pub(super) tables: BTreeMap<String, Spanned<String>>,
}

pub(super) fn no_drift() -> Spanned<String> {
    Spanned::new(0..0, "0".to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssert {
    pub(super) query: String,
    pub(super) expect: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) channel: Option<Spanned<String>>,
    pub(super) text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPageStep {
    pub(super) status: Spanned<String>,
    pub(super) message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    /// The environment variable holding the connection string.
    pub(super) url_env: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) runbooks: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) statuspage_components: Vec<String>,
    #[serde(default)]
    pub(super) vars: BTreeMap<String, String>,
    pub(super) auto_request: Option<Spanned<bool>>,
    pub(super) lock: Option<Spanned<RawLock>>,
}

/// `lock = "key"`, `lock = false` (no lock) or `lock = true` (the default: the service).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawLock {
    On(bool),
    Key(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    pub(super) channel: Option<Spanned<String>>,
    pub(super) token_env: Option<String>,
    pub(super) service_label: Option<String>,
    pub(super) severity_label: Option<String>,
    pub(super) target_label: Option<String>,
    pub(super) default_severity: Option<Spanned<String>>,
    pub(super) auto_request_every: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) severities: BTreeMap<String, Spanned<String>>,
}
