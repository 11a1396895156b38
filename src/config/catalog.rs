//! Runbooks and services: what a request may name.
use super::*;

pub(super) fn check_runbooks(
    c: &mut Checker,
    raw: &BTreeMap<String, RawRunbook>,
    databases: &BTreeMap<String, String>,
    own_secrets: &[(String, &str)],
) -> BTreeMap<String, Runbook> {
    let mut runbooks = BTreeMap::new();
    for (name, rb) in raw {
        let mut params = check_params(c, name, &rb.params);
        check_discoveries(c, name, &rb.params, &mut params, databases, own_secrets);
        if rb.steps.get_ref().is_empty() {
            c.error(rb.steps.span(), format!("runbook `{name}` has no steps"), None);
        }
        let placeholder_params: BTreeMap<String, String> = rb.params.keys().map(|k| (k.clone(), "x".into())).collect();
        let mut steps = vec![];
        for step in rb.steps.get_ref() {
            if let Some(template) = check_step(c, name, step, &steps, databases, own_secrets, &placeholder_params) {
                steps.push(template);
            }
        }
        let preflight = check_preflight(c, name, &rb.preflight, databases, own_secrets, &placeholder_params);
        let expected_duration = rb
            .expected_duration
            .as_ref()
            .and_then(|d| c.duration(d, DurationSetting::ExpectedDuration));
        let lock = rb.lock.as_ref().and_then(|l| check_lock(c, l));
        let fallback = rb.fallback.as_ref().and_then(|f| {
            let fallback = f.get_ref();
            if fallback == name {
                c.error(
                    f.span(),
                    format!("runbook `{name}` names itself as its fallback"),
                    Some("a fallback is another way to recover, like a full restore after a schema rollback; use Retry step to run the same again".into()),
                );
                return None;
            }
            if !raw.contains_key(fallback) {
                c.error(
                    f.span(),
                    format!("runbook `{name}`: fallback `{fallback}` is not defined"),
                    Some(format!(
                        "defined runbooks: {}",
                        raw.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                );
                return None;
            }
            Some(fallback.clone())
        });
        runbooks.insert(
            name.clone(),
            Runbook {
                name: name.clone(),
                description: rb.description.clone(),
                expected_duration,
                params,
                steps,
                preflight,
                lock,
                fallback,
            },
        );
    }
    runbooks
}

pub(super) fn check_services(
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
            // The fallback is a request of this service: it must be one of its runbooks.
            if let Some(fallback) = &runbook.fallback
                && !svc.runbooks.get_ref().iter().any(|r| r.get_ref() == fallback)
            {
                c.error(
                    rb.span(),
                    format!(
                        "service `{name}` offers runbook `{}`, whose fallback `{fallback}` it does not offer",
                        runbook.name
                    ),
                    Some(format!("add \"{fallback}\" to [services.{name}] runbooks")),
                );
            }
            // Every `vars.*` a step or preflight check uses must be defined by this service.
            let discoveries = runbook
                .params
                .values()
                .filter_map(|p| p.discover.as_ref().map(|d| &d.source));
            for step in runbook.steps.iter().chain(&runbook.preflight).chain(discoveries) {
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
pub(super) fn check_lock(c: &mut Checker, raw: &Spanned<RawLock>) -> Option<Lock> {
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

/// A destructive step needs a step before it that keeps a copy (`backup = true`), or a stated
/// reason why none is needed: a 3 a.m. restore over the only copy cannot be taken back.
fn check_backup_before(c: &mut Checker, runbook: &str, raw: &RawStep, step: &StepTemplate, before: &[StepTemplate]) {
    let step_name = raw.name.get_ref();
    match (&raw.no_backup_because, raw.destructive) {
        (Some(reason), false) => c.error(
            reason.span(),
            format!("step `{step_name}` says why it needs no backup but is not `destructive = true`"),
            Some("remove no_backup_because".into()),
        ),
        (Some(reason), true) if reason.get_ref().trim().is_empty() => c.error(
            reason.span(),
            format!("step `{step_name}`: no_backup_because is empty"),
            Some("say why no copy is needed, for the people who approve it".into()),
        ),
        (None, true) if !before.iter().any(|earlier| earlier.backup) => c.error(
            raw.name.span(),
            format!("runbook `{runbook}`: destructive step `{step_name}` has no backup step before it"),
            Some(
                "add a step that keeps a copy (pg_dump, a snapshot) with backup = true before it, or say why none is needed: no_backup_because = \"…\""
                    .into(),
            ),
        ),
        _ => {}
    }
    if raw.verify && !matches!(step.kind, StepKind::Command { .. }) {
        c.error(
            raw.name.span(),
            format!("step `{step_name}`: only a command step takes `verify`"),
            Some("health, sql compare/assert and GET steps verify already".into()),
        );
    }
}

/// One step of runbook `name` (or one of its preflight checks), checked; `None` after
/// reporting why it cannot be one. `earlier`: the steps before it.
fn check_step(
    c: &mut Checker,
    name: &str,
    step: &RawStep,
    earlier: &[StepTemplate],
    databases: &BTreeMap<String, String>,
    own_secrets: &[(String, &str)],
    placeholder_params: &BTreeMap<String, String>,
) -> Option<StepTemplate> {
    let step_name = step.name.get_ref();
    let kind = check_kind(c, step_name, step.name.span(), step.kind_fields(), databases)?;
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
        skippable: step.skippable,
        drill,
        backup: step.backup,
        verify: step.verify,
        loses: check_loses(c, name, step, databases, own_secrets, placeholder_params),
    };
    check_backup_before(c, name, step, &template, earlier);
    // Templates may only use params here; vars are checked per service below.
    for element in template.templates() {
        if let Err(detail) = check_template_syntax(element, placeholder_params) {
            c.error(step.name.span(), format!("step `{step_name}`: {detail}"), None);
        }
        for name in secrets::references(element) {
            let base = name.strip_suffix("_FILE").unwrap_or(name);
            let problem = secrets::invalid_reference(name).or_else(|| {
                own_secrets
                    .iter()
                    .find(|(env, _)| env == base)
                    .map(|(_, what)| format!("`${{env:{name}}}` is {what}; give the step its own credential"))
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
                format!("step `{step_name}`: SQL may use `vars` but not request parameters, which come from Slack"),
                Some("put the value in the service's vars, or use a `run` step with its own checks".into()),
            );
        }
    }
    Some(template)
}

/// A destructive step's `loses`: a command or GET that only reads, checked as a preflight
/// check is, and which may use the request's parameters (the plan is frozen when it runs).
fn check_loses(
    c: &mut Checker,
    name: &str,
    step: &RawStep,
    databases: &BTreeMap<String, String>,
    own_secrets: &[(String, &str)],
    placeholder_params: &BTreeMap<String, String>,
) -> Option<StepKind> {
    let loses = step.loses.as_ref()?;
    let step_name = step.name.get_ref();
    if !step.destructive {
        c.error(
            loses.span(),
            format!("step `{step_name}` counts what it `loses` but is not `destructive = true`"),
            Some("only a destructive step's confirmation shows what it would undo".into()),
        );
        return None;
    }
    let raw = loses.get_ref();
    if raw.run.is_some() == raw.http.is_some() {
        c.error(
            loses.span(),
            format!("step `{step_name}`: `loses` needs one of `run` and `http`"),
            Some("for example run = [\"psql\", …] printing \"orders: +1204 rows since the dump\"".into()),
        );
        return None;
    }
    let as_check = raw.as_step(Spanned::new(loses.span(), format!("what {step_name} loses")));
    let before = c.errors.len();
    let checked = check_preflight(c, name, &[as_check], databases, own_secrets, placeholder_params);
    checked
        .into_iter()
        .next()
        .filter(|_| c.errors.len() == before)
        .map(|t| t.kind)
}

/// A runbook's preflight checks: steps that only read (a command, a GET or HEAD, a health
/// check, an SQL assertion), with a short default timeout, and none of a step's controls.
pub(super) fn check_preflight(
    c: &mut Checker,
    name: &str,
    raw: &[RawStep],
    databases: &BTreeMap<String, String>,
    own_secrets: &[(String, &str)],
    placeholder_params: &BTreeMap<String, String>,
) -> Vec<StepTemplate> {
    let mut checks = vec![];
    for step in raw {
        let check_name = step.name.get_ref();
        let controls = [
            ("destructive", step.destructive),
            ("confirm", step.confirm.is_some()),
            ("backup", step.backup),
            ("no_backup_because", step.no_backup_because.is_some()),
            ("loses", step.loses.is_some()),
            ("verify", step.verify),
            ("retries", step.retries > 0),
            ("on_failure", step.on_failure.is_some()),
            ("skippable", step.skippable),
            ("drill", step.drill.is_some()),
            ("gate", step.gate.is_some()),
            ("notify", step.notify.is_some()),
            ("statuspage", step.statuspage.is_some()),
        ];
        if let Some((key, _)) = controls.iter().find(|(_, given)| *given) {
            c.error(
                step.name.span(),
                format!("runbook `{name}`: preflight check `{check_name}` takes no `{key}`"),
                Some("a preflight check only reads: `run`, `http` (GET or HEAD), `health` or `sql` (assert), with `env`, `workdir` and `timeout`".into()),
            );
            continue;
        }
        let Some(mut template) = check_step(c, name, step, &[], databases, own_secrets, placeholder_params) else {
            continue;
        };
        let reads = match &mut template.kind {
            StepKind::Command { timeout, .. } | StepKind::Http { timeout, .. } => {
                if step.timeout.is_none() {
                    *timeout = PREFLIGHT_TIMEOUT;
                }
                !template.changes_something() || matches!(template.kind, StepKind::Command { .. })
            }
            StepKind::Sql { check, read_only, .. } => {
                *read_only && matches!(check, crate::domain::plan::SqlCheck::Assert { .. })
            }
            StepKind::Health { .. } => true,
            _ => false,
        };
        if !reads {
            c.error(
                step.name.span(),
                format!("runbook `{name}`: preflight check `{check_name}` would change something"),
                Some("preflight runs before anyone approves: use GET or HEAD, or an SQL assert".into()),
            );
            continue;
        }
        checks.push(template);
    }
    checks
}

/// How long a preflight command or HTTP check may take unless it says: people are waiting for
/// the card.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);
