//! What the command line prints: the checked configuration and dry-run plans.
use crate::config::Config;
use crate::domain::plan::Plan;
use crate::domain::{Refusal, Severity};
use crate::grammar::ParseError;
use crate::slack::messages;
use std::fmt::Write;

pub fn check(config: &Config) -> String {
    let mut out = String::new();
    let policy = &config.policy;
    let _ = writeln!(out, "Slack");
    let _ = writeln!(
        out,
        "  workspace: {}",
        policy.workspace.as_ref().map_or("(any)".to_owned(), |w| w.0.clone())
    );
    let _ = writeln!(
        out,
        "  incident channels: {}",
        policy
            .channels
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let requesters = policy
        .requester_roles
        .as_ref()
        .map_or("anyone in an incident channel".to_owned(), |r| r.join(", "));
    let _ = writeln!(out, "  who may request: {requesters}");
    if policy.two_person_rule {
        let _ = writeln!(
            out,
            "  two-person rule: on (a gate or a destructive step is passed by someone other than the requester)"
        );
    } else {
        let _ = writeln!(
            out,
            "  ⚠️  TWO-PERSON RULE OFF ([safety] two_person_rule = false): a requester may pass their own gates and confirm their own destructive steps, alone"
        );
    }
    let _ = writeln!(out, "\nRoles");
    for (role, members) in &config.roles {
        let _ = writeln!(out, "  {role}: {}", members.join(", "));
    }
    let _ = writeln!(out, "\nPolicy by severity: who may approve, and from when");
    let members = |role: &str| config.roles.get(role).map(|m| m.join(", ")).unwrap_or_default();
    for severity in Severity::ALL {
        let p = policy.severity(severity);
        let ladder = policy.ladder(severity);
        if p.approvals == 0 {
            let _ = writeln!(
                out,
                "  {severity}: runs at once without approval; post-incident review flagged"
            );
            if !ladder.is_empty() {
                let told: Vec<String> = ladder
                    .iter()
                    .map(|l| format!("{} ({})", l.role, members(&l.role)))
                    .collect();
                let _ = writeln!(out, "    notified at once: {}", told.join(", "));
            }
            continue;
        }
        let mut rules = vec![format!("{} approval(s)", p.approvals)];
        if !p.allow_self_approval {
            rules.push("no self-approval".into());
        }
        if p.require_reason {
            rules.push("reason required".into());
        }
        if let Some(d) = p.respond_within {
            rules.push(format!("respond within {}", humantime::format_duration(d)));
        }
        if let Some(d) = p.expire_after {
            rules.push(format!("expires after {}", humantime::format_duration(d)));
        }
        let _ = writeln!(out, "  {severity}: {}", rules.join("; "));
        let base: Vec<String> = p.approvers.iter().map(|r| format!("{r} ({})", members(r))).collect();
        let _ = writeln!(out, "    level 0, at once: {}", base.join(", "));
        for (index, level) in ladder.iter().enumerate() {
            let after = humantime::format_duration(std::time::Duration::from_secs(level.after_secs));
            let _ = writeln!(
                out,
                "    level {}, after {after}: + {} ({})",
                index + 1,
                level.role,
                members(&level.role)
            );
        }
    }
    let _ = writeln!(out, "\nRunbooks");
    for (name, runbook) in &config.catalog.runbooks {
        let params: Vec<String> = runbook
            .params
            .iter()
            .map(|(p, s)| {
                let accepts = if s.choices.is_empty() {
                    format!("{p} ~ /{}/", s.pattern_source)
                } else {
                    format!("{p} one of {}", s.choices.join("|"))
                };
                let accepts = match &s.discover {
                    Some(d) => format!("{accepts} offered from `{}`", discovery_source(&d.source.kind)),
                    None => accepts,
                };
                match (&s.default, s.required) {
                    (Some(default), _) => format!("{accepts} (default {default})"),
                    (None, false) => format!("{accepts} (optional)"),
                    (None, true) => accepts,
                }
            })
            .collect();
        let params = if params.is_empty() {
            String::new()
        } else {
            format!(" [params: {}]", params.join(", "))
        };
        let _ = writeln!(
            out,
            "  {name}: {} step(s){}{params}{}",
            runbook.steps.len(),
            match runbook.preflight.len() {
                0 => String::new(),
                n => format!(", {n} preflight check(s)"),
            },
            runbook
                .description
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for warning in secrets_in_argv(config)
        .into_iter()
        .chain(unverified_changes(config))
        .chain(programs_not_found(config, &path))
    {
        let _ = writeln!(out, "  ⚠️  {warning}");
    }
    let _ = writeln!(out, "\nServices");
    for (name, service) in &config.catalog.services {
        let _ = writeln!(
            out,
            "  {name}: runbooks {} (default {})",
            service.runbooks.join(", "),
            service.runbooks.first().map(String::as_str).unwrap_or("-")
        );
    }
    out
}

pub fn plan(plan: &Plan) -> String {
    let mut out = format!(
        "Plan for {} (runbook {}, digest {}); nothing was requested or run:\n",
        plan.service,
        plan.runbook,
        plan.short_digest()
    );
    if !plan.params.is_empty() {
        let params: Vec<String> = plan.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out += &format!("Parameters: {}\n", params.join(" "));
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let mut notes = match &step.action {
            crate::domain::StepAction::Command {
                timeout_secs, workdir, ..
            } => {
                let dir = workdir.as_deref().map(|d| format!(", in {d}")).unwrap_or_default();
                format!("timeout {timeout_secs}s{dir}")
            }
            crate::domain::StepAction::Gate { .. } => "gate: waits for Continue or Abort".to_owned(),
            crate::domain::StepAction::Http { timeout_secs, .. }
            | crate::domain::StepAction::Sql { timeout_secs, .. } => {
                format!("{}, timeout {timeout_secs}s", step.action.kind())
            }
            other => other.kind().to_owned(),
        };
        if step.retries > 0 {
            notes += &format!("; retried up to {} times", step.retries);
        }
        if step.on_failure == crate::domain::plan::OnFailure::Continue {
            notes += "; the run goes on if it fails";
        }
        if let Some(instead) = &step.drill {
            notes += &format!("; in a drill: {}", messages::step_line(instead));
        }
        if let Some(phrase) = &step.confirm {
            notes += &format!("; destructive: waits until someone types {phrase}");
        }
        let _ = writeln!(
            out,
            "{}. {} ({notes})\n   {}",
            i + 1,
            step.name,
            messages::step_line(&step.action)
        );
    }
    out
}

pub fn refusal(refusal: &Refusal) -> String {
    messages::refusal(refusal).text
}

pub fn parse_error(error: &ParseError) -> String {
    messages::parse_error(error).text
}

/// Command steps (and drill overrides) whose program is not where they would look for it: not
/// on `path` (the `PATH` rollbot runs with), or, given as a path, not an executable file. Found
/// here, it is a line to fix now instead of a step that cannot start in the middle of a run.
fn programs_not_found(config: &Config, path: &std::ffi::OsStr) -> Vec<String> {
    let mut warnings = vec![];
    for (name, runbook) in &config.catalog.runbooks {
        for step in &runbook.steps {
            for kind in std::iter::once(&step.kind).chain(step.drill.iter()) {
                let crate::domain::plan::StepKind::Command { run, workdir, env, .. } = kind else {
                    continue;
                };
                let Some(program) = run.first() else { continue };
                // A templated or relative program (or PATH) is only known when the step runs.
                if program.contains("{{") || program.contains("${") || (workdir.is_some() && program.contains('/')) {
                    continue;
                }
                let Some(path) = crate::engine::command::search_path(env, path) else {
                    continue;
                };
                if crate::engine::command::find_program(program, &path).is_none() {
                    let where_ = if program.contains('/') {
                        "is not an executable file here".to_owned()
                    } else {
                        format!("is not on PATH here ({})", path.to_string_lossy())
                    };
                    warnings.push(format!(
                        "runbook `{name}`, step `{}` runs `{program}`, which {where_}; install it where rollbot runs (or set PATH), or the step cannot start",
                        step.name
                    ));
                }
            }
        }
    }
    warnings
}

/// Runbooks whose last change is not checked by any step after it: the run would say
/// *Succeeded* on the strength of exit codes alone.
fn unverified_changes(config: &Config) -> Vec<String> {
    let mut warnings = vec![];
    for (name, runbook) in &config.catalog.runbooks {
        let Some(last_change) = runbook.steps.iter().rposition(|s| s.changes_something()) else {
            continue;
        };
        if !runbook.steps[last_change + 1..].iter().any(|s| s.verifies_something()) {
            warnings.push(format!(
                "runbook `{name}`: nothing checks the result after its last change (step `{}`); add a health, sql compare/assert or GET step after it, or mark a checking command verify = true",
                runbook.steps[last_change].name
            ));
        }
    }
    warnings
}

/// Steps that pass a secret on their command line, where any local user can read it in
/// `/proc/<pid>/cmdline`, with how to pass it through the step's environment instead.
fn secrets_in_argv(config: &Config) -> Vec<String> {
    let mut warnings = vec![];
    for (name, runbook) in &config.catalog.runbooks {
        for step in &runbook.steps {
            let crate::domain::plan::StepKind::Command { run, .. } = &step.kind else {
                continue;
            };
            for reference in run.iter().flat_map(|a| crate::engine::secrets::references(a)) {
                warnings.push(format!(
                    "runbook `{name}`, step `{}` passes `${{env:{reference}}}` in its argv, which other local users can read in /proc; pass it in the step's env instead: env = {{ {reference} = \"${{env:{reference}}}\" }}, and read ${reference} in the command",
                    step.name
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
pub(crate) fn programs_not_found_for_tests(config: &Config, path: &std::ffi::OsStr) -> Vec<String> {
    programs_not_found(config, path)
}

/// What a discovery runs, as its template reads.
fn discovery_source(kind: &crate::domain::plan::StepKind) -> String {
    use crate::domain::plan::StepKind;
    match kind {
        StepKind::Command { run, .. } => run.join(" "),
        StepKind::Http { url, .. } => format!("GET {url}"),
        other => format!("{other:?}"),
    }
}
