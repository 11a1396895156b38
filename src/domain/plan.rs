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
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    pub expected_duration: Option<Duration>,
    pub params: BTreeMap<String, ParamSpec>,
    pub steps: Vec<StepTemplate>,
}

#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Matched against the whole value (anchored), whatever the config wrote.
    pub pattern: Regex,
    pub pattern_source: String,
    pub help: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StepTemplate {
    pub name: String,
    pub kind: StepKind,
    /// A destructive step waits until someone eligible types this phrase (a template).
    pub confirm: Option<String>,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Command {
        run: Vec<String>,
        env: BTreeMap<String, String>,
        workdir: Option<String>,
        timeout: Duration,
    },
    /// Pauses the run until someone eligible clicks Continue or Abort.
    Gate { message: String },
}

impl StepTemplate {
    /// Every template string of the step, for validation.
    pub fn templates(&self) -> Vec<&String> {
        let mut all: Vec<&String> = match &self.kind {
            StepKind::Command { run, env, workdir, .. } => {
                run.iter().chain(env.values()).chain(workdir.iter()).collect()
            }
            StepKind::Gate { message } => vec![message],
        };
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub service: String,
    pub runbook: String,
    pub steps: Vec<PlanStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub name: String,
    #[serde(flatten)]
    pub action: StepAction,
    /// Destructive: before it runs, someone eligible must type this phrase exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

impl PlanStep {
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

impl Catalog {
    pub fn nearest_service(&self, name: &str) -> Option<String> {
        nearest(name, self.services.keys().map(String::as_str))
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

        let mut params = request.params.clone();
        if let Some(target) = &request.target {
            if !runbook.params.contains_key("target") {
                return Err(Refusal::TargetNotTaken {
                    runbook: runbook.name.clone(),
                });
            }
            params.insert("target".into(), target.clone());
        }
        for (name, spec) in &runbook.params {
            let Some(value) = params.get(name) else {
                return Err(Refusal::MissingParam {
                    runbook: runbook.name.clone(),
                    name: name.clone(),
                    help: spec.help.clone(),
                });
            };
            if value.chars().count() > MAX_PARAM_CHARS || !spec.pattern.is_match(value) {
                return Err(Refusal::ParamMismatch {
                    name: name.clone(),
                    value: value.clone(),
                    pattern: spec.pattern_source.clone(),
                    help: spec.help.clone(),
                });
            }
        }
        if let Some(extra) = params.keys().find(|k| !runbook.params.contains_key(*k)) {
            return Err(Refusal::UnknownParam {
                runbook: runbook.name.clone(),
                name: extra.clone(),
            });
        }

        let steps = runbook
            .steps
            .iter()
            .map(|step| {
                let render = |t: &str| render_template(t, &service.name, &service.vars, &params);
                let rendered = || -> Result<PlanStep, String> {
                    let action = match &step.kind {
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
                    };
                    let confirm = step.confirm.as_deref().map(render).transpose()?;
                    Ok(PlanStep {
                        name: step.name.clone(),
                        action,
                        confirm,
                    })
                };
                rendered().map_err(|detail| Refusal::PlanTemplate {
                    step: step.name.clone(),
                    detail,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            service: service.name.clone(),
            runbook: runbook.name.clone(),
            steps,
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
    env.render_str(
        template,
        minijinja::context! { service => service, vars => vars, params => params },
    )
    .map_err(|e| match e.kind() {
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
