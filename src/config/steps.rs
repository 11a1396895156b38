//! Databases and every step kind of a runbook.
use super::*;

/// Database name → the environment variable with its connection string.
pub(super) fn check_databases(c: &mut Checker, raw: &BTreeMap<String, RawDatabase>) -> BTreeMap<String, String> {
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
    pub(super) fn kind_fields(&self) -> KindFields<'_> {
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
    pub(super) fn kind_fields(&self) -> KindFields<'_> {
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

pub(super) const STEP_KINDS: &str = "`run` (a command), `gate`, `http`, `health`, `sql`, `notify` or `statuspage`";

/// What one step (or its drill override) does; `None` after reporting why not.
pub(super) fn check_kind(
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
            timeout: step_timeout(c, f.timeout, DEFAULT_STEP_TIMEOUT),
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
        return Some(check_http(c, step_name, at, http, f.timeout));
    }
    if let Some(health) = f.health {
        return Some(check_health(c, step_name, at, health, f.timeout));
    }
    if let Some(sql) = f.sql {
        return check_sql(c, step_name, sql, databases, f.timeout);
    }
    if let Some(notify) = f.notify {
        return Some(check_notify(c, step_name, notify));
    }
    Some(check_page_step(c, step_name, f.statuspage.expect("one kind is given")))
}

/// A step's `timeout`, or `default` when it has none (or an invalid one, reported).
fn step_timeout(c: &mut Checker, timeout: Option<&Spanned<String>>, default: Duration) -> Duration {
    timeout
        .and_then(|t| c.duration(t, DurationSetting::StepTimeout))
        .unwrap_or(default)
}

type Timeout<'a> = Option<&'a Spanned<String>>;

fn check_http(c: &mut Checker, step_name: &str, at: Range<usize>, http: &RawHttp, timeout: Timeout) -> StepKind {
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
    StepKind::Http {
        method,
        url: http.url.get_ref().clone(),
        headers: http.headers.clone(),
        json,
        expect_status: http.expect_status.clone(),
        timeout: step_timeout(c, timeout, DEFAULT_CALL_TIMEOUT),
    }
}

/// `timeout` is how long it waits for health when `within` is not given.
fn check_health(c: &mut Checker, step_name: &str, at: Range<usize>, health: &RawHealth, timeout: Timeout) -> StepKind {
    check_url(c, step_name, &health.url);
    let within = health
        .within
        .as_ref()
        .and_then(|d| c.duration(d, DurationSetting::HealthWithin))
        .unwrap_or_else(|| step_timeout(c, timeout, Duration::from_secs(120)));
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
    StepKind::Health {
        url: health.url.get_ref().clone(),
        expect_status: health.expect_status,
        body_contains: health.body_contains.clone(),
        within,
        every,
    }
}

fn check_sql(
    c: &mut Checker,
    step_name: &str,
    sql: &RawSql,
    databases: &BTreeMap<String, String>,
    timeout: Timeout,
) -> Option<StepKind> {
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
    Some(StepKind::Sql {
        database: sql.database.get_ref().clone(),
        connection: format!("${{env:{url_env}}}"),
        check,
        read_only: sql.read_only,
        timeout: step_timeout(c, timeout, DEFAULT_CALL_TIMEOUT),
    })
}

fn check_notify(c: &mut Checker, step_name: &str, notify: &RawNotify) -> StepKind {
    if let Some(channel) = &notify.channel
        && !is_channel_id(channel.get_ref())
    {
        c.error(
            channel.span(),
            format!("step `{step_name}`: `{}` is not a Slack channel ID", channel.get_ref()),
            Some("channel IDs look like C0123ABCD; leave `channel` out to post in the rollback's thread".into()),
        );
    }
    StepKind::Notify {
        channel: notify.channel.as_ref().map(|c| c.get_ref().clone()),
        text: notify.text.clone(),
    }
}

fn check_page_step(c: &mut Checker, step_name: &str, page: &RawPageStep) -> StepKind {
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
    StepKind::StatusPage {
        status: page.status.get_ref().clone(),
        message: page.message.clone(),
    }
}

pub(super) fn check_url(c: &mut Checker, step_name: &str, url: &Spanned<String>) {
    let text = url.get_ref();
    if !(text.starts_with("https://") || text.starts_with("http://") || text.starts_with("{{")) {
        c.error(
            url.span(),
            format!("step `{step_name}`: `{text}` is not an http:// or https:// URL"),
            None,
        );
    }
    // Where the call goes (scheme, host, port) is the configuration's to say, never a request's.
    let origin = match text.split_once("://") {
        Some((_, rest)) => &text[..text.len() - rest.len() + rest.find(['/', '?', '#']).unwrap_or(rest.len())],
        None => text.find("}}").map_or(text.as_str(), |end| &text[..end]),
    };
    if origin.contains("params.") {
        c.error(
            url.span(),
            format!("step `{step_name}`: `{text}` takes its scheme, host or port from a request parameter"),
            Some("put the host in the URL or in the service's vars; parameters may fill the path and the query, where they are percent-encoded".into()),
        );
    }
}

/// The variables a template refers to, as dotted paths (`vars.deployment`, `params.target`).
pub(super) fn template_references(template: &str) -> Result<Vec<String>, String> {
    let env = minijinja::Environment::new();
    let parsed = env
        .template_from_str(template)
        .map_err(|e| format!("`{template}`: {e}"))?;
    Ok(parsed.undeclared_variables(true).into_iter().collect())
}

/// Checks syntax and param references; `vars.*` references are resolved per service later.
pub(super) fn check_template_syntax(template: &str, params: &BTreeMap<String, String>) -> Result<(), String> {
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
