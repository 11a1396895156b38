//! Runs a rollback's preflight checks: read-only, bounded by their timeouts, before anyone
//! approves. What they find goes on the card and the timeline; nothing here changes anything.
use super::Engine;
use super::command::{self, CommandSpec};
use super::secrets::Resolved;
use super::steps;
use crate::domain::plan::PlanStep;
use crate::domain::preflight::{CheckOutcome, PreflightCheck};
use crate::domain::{Rollback, StepAction, StepOutcome, StepResult};
use crate::outbound::HttpClient;
use std::collections::BTreeSet;
use std::time::Duration;

/// How much of a check's output the card shows.
const DETAIL_CHARS: usize = 200;

/// Every check for `rollback`: the programs its command steps start, the `${env:…}` they
/// reference, the status page incident it names, then the runbook's declared checks (run side
/// by side). A drill checks what a drill runs: its steps' drill overrides, and no page.
pub async fn check(engine: &Engine, rollback: &Rollback) -> Vec<PreflightCheck> {
    let runs: Vec<&StepAction> = rollback
        .plan
        .steps
        .iter()
        .filter_map(|step| match (&step.drill, rollback.request.drill) {
            (_, false) => Some(&step.action),
            (Some(drill), true) => Some(drill.as_ref()),
            (None, true) => None,
        })
        .collect();
    let mut checks = programs_found(&runs);
    checks.extend(references_set(engine, &runs, &rollback.plan.preflight));
    let client = HttpClient::new().map_err(|e| format!("no HTTP client: {e:#}"));
    let declared = rollback
        .plan
        .preflight
        .iter()
        .map(|step| declared_check(engine, client.as_ref(), rollback, step));
    let (named, declared) = futures_util::future::join(
        named_incident(engine, rollback),
        futures_util::future::join_all(declared),
    )
    .await;
    checks.extend(named);
    checks.extend(declared);
    checks
}

/// Whether the status page holds the incident the request names, and open: a typo, another
/// page's incident or a resolved one is seen before approval, not when the page is updated.
async fn named_incident(engine: &Engine, rollback: &Rollback) -> Option<PreflightCheck> {
    let named = rollback.request.status_incident.as_deref()?;
    let page = engine.status_page.as_ref().filter(|_| !rollback.request.drill)?;
    let started = std::time::Instant::now();
    let (outcome, detail) = match page.incident(named).await {
        Ok(Some(held)) if !held.resolved() => (
            CheckOutcome::Passed,
            format!("“{}”, {}: the rollback's updates carry it on", held.name, held.status),
        ),
        Ok(Some(held)) => (
            CheckOutcome::Failed,
            format!(
                "“{}” is {}: carrying it on reopens it on the public page; request again without `incident` to open a new one",
                held.name, held.status
            ),
        ),
        // A webhook receiver keeps its own incidents: rollbot cannot ask it.
        Ok(None) if !page.can_look_up() => return None,
        Ok(None) => (
            CheckOutcome::Failed,
            "the page has no such incident: check the link or id, or request again without `incident` to open a new one"
                .into(),
        ),
        Err(error) => (CheckOutcome::Failed, format!("the page could not be asked: {error}")),
    };
    Some(PreflightCheck {
        name: format!("Status page incident `{named}` is open"),
        outcome,
        detail: crate::text::truncate(&detail, DETAIL_CHARS),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn programs_found(runs: &[&StepAction]) -> Vec<PreflightCheck> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let programs: BTreeSet<(&str, std::ffi::OsString, bool)> = runs
        .iter()
        .filter_map(|action| match action {
            StepAction::Command { argv, workdir, env, .. } => {
                let program = argv.first()?;
                // A relative path is only known in the step's directory; a reference, when it runs.
                if program.contains("${") || workdir.is_some() && program.contains('/') {
                    return None;
                }
                Some((
                    program.as_str(),
                    command::search_path(env, &path)?,
                    env.contains_key("PATH"),
                ))
            }
            _ => None,
        })
        .collect();
    programs
        .into_iter()
        .map(
            |(program, searched, own_path)| match command::find_program(program, &searched) {
                Some(found) => PreflightCheck {
                    name: format!("`{program}` can be started"),
                    outcome: CheckOutcome::Passed,
                    detail: found.display().to_string(),
                    duration_ms: 0,
                },
                None => PreflightCheck {
                    name: format!("`{program}` can be started"),
                    outcome: CheckOutcome::Failed,
                    detail: if own_path {
                        format!(
                            "not found on the step's PATH ({}): install it there or fix the step's `env.PATH`",
                            searched.to_string_lossy()
                        )
                    } else {
                        "not found on rollbot's PATH: install it where rollbot runs".into()
                    },
                    duration_ms: 0,
                },
            },
        )
        .collect()
}

fn references_set(engine: &Engine, runs: &[&StepAction], declared: &[PlanStep]) -> Vec<PreflightCheck> {
    let texts = runs
        .iter()
        .copied()
        .chain(declared.iter().map(|d| &d.action))
        .flat_map(action_texts);
    let names: BTreeSet<String> = texts
        .flat_map(|t| {
            super::secrets::references(t)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    if names.is_empty() {
        return vec![];
    }
    let missing: Vec<String> = names
        .iter()
        .filter(|name| {
            !engine.secrets.is_set(name.strip_suffix("_FILE").unwrap_or(name)) && !engine.secrets.is_set(name)
        })
        .map(|name| format!("${{env:{name}}}"))
        .collect();
    let name = format!("{} referenced variable(s) set", names.len());
    let check = if missing.is_empty() {
        PreflightCheck {
            name,
            outcome: CheckOutcome::Passed,
            detail: String::new(),
            duration_ms: 0,
        }
    } else {
        PreflightCheck {
            name,
            outcome: CheckOutcome::Failed,
            detail: format!("not set where rollbot runs: {}", missing.join(", ")),
            duration_ms: 0,
        }
    };
    vec![check]
}

/// The strings of an action a `${env:…}` may hide in.
fn action_texts(action: &StepAction) -> Vec<&str> {
    match action {
        StepAction::Command { argv, env, .. } => argv.iter().chain(env.values()).map(String::as_str).collect(),
        StepAction::Http { url, headers, body, .. } => std::iter::once(url.as_str())
            .chain(headers.values().map(String::as_str))
            .chain(body.as_deref())
            .collect(),
        StepAction::Health { url, .. } => vec![url.as_str()],
        StepAction::Sql { connection, .. } => vec![connection.as_str()],
        StepAction::Gate { .. } | StepAction::Notify { .. } | StepAction::StatusPage { .. } => vec![],
    }
}

async fn declared_check(
    engine: &Engine,
    client: Result<&HttpClient, &String>,
    rollback: &Rollback,
    step: &PlanStep,
) -> PreflightCheck {
    let about = [
        ("ROLLBOT_ROLLBACK_ID", rollback.id.to_string()),
        ("ROLLBOT_SERVICE", rollback.request.service.clone()),
    ];
    let result = run_reading(engine, client, &about, &step.action, engine.config.output_tail_bytes).await;
    let passed = result.outcome == StepOutcome::Succeeded;
    let said = result.output_tail.trim();
    let detail = match (&result.detail, said.is_empty()) {
        (Some(why), true) => why.clone(),
        (Some(why), false) => format!("{why}: {}", last_line(said)),
        (None, false) => last_line(said).to_owned(),
        (None, true) => match (passed, result.exit_code) {
            (false, Some(code)) => format!("exited with code {code}"),
            _ => String::new(),
        },
    };
    PreflightCheck {
        name: step.name.clone(),
        outcome: if passed {
            CheckOutcome::Passed
        } else {
            CheckOutcome::Failed
        },
        detail: crate::text::truncate(&detail, DETAIL_CHARS),
        duration_ms: result.duration_ms,
    }
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default().trim()
}

/// Runs an action that only reads (a preflight check, a discovery), keeping `tail_bytes` of
/// what it says; `about` is the environment it gets besides its own.
pub(super) async fn run_reading(
    engine: &Engine,
    client: Result<&HttpClient, &String>,
    about: &[(&str, String)],
    action: &StepAction,
    tail_bytes: usize,
) -> StepResult {
    let could_not_start = |detail: String| StepResult {
        outcome: StepOutcome::CouldNotStart,
        detail: Some(detail),
        ..Default::default()
    };
    match action {
        StepAction::Command {
            argv,
            env,
            workdir,
            timeout_secs,
        } => {
            let mut resolved = Resolved::default();
            let (argv, mut env) = match command::resolve(&mut resolved, &engine.secrets, argv, env) {
                Ok(prepared) => prepared,
                Err(detail) => return could_not_start(detail),
            };
            env.extend(about.iter().map(|(k, v)| (k.to_string(), v.clone())));
            // No lease is involved: the check is short, read-only and dies with its timeout.
            let spec = CommandSpec {
                argv: &argv,
                env: &env,
                workdir: workdir.as_deref(),
                timeout: Duration::from_secs(*timeout_secs),
                tail_bytes,
                supervision: None,
                abort: None,
                live: None,
            };
            let mut result = command::run(spec).await;
            result.output_tail = resolved.scrub(&result.output_tail);
            result.detail = result.detail.map(|d| resolved.scrub(&d));
            result
        }
        // Read-only by configuration: `check` lets only GET, HEAD, health and SQL asserts through.
        other => steps::call_service(client.map_err(Clone::clone), &engine.secrets, other, tail_bytes, None)
            .await
            .unwrap_or_else(|| could_not_start("not a check".into())),
    }
}
