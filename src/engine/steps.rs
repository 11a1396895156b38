//! The step kinds that talk to services rather than run programs: `http`, `health` and `sql`.
//! Each returns a `StepResult` like a command does; `${env:NAME}` references are resolved here
//! and their values scrubbed from everything returned.
use super::secrets::{Resolved, SecretSource};
use crate::domain::plan::{Drift, SqlCheck};
use crate::domain::rollback::RowCounts;
use crate::domain::{StepOutcome, StepResult};
use crate::outbound::{Answer, ExchangeError, HttpClient};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runs an `http`, `health` or `sql` action as its step kind does (`None`: not one of them).
/// `snapshot`: the rollback's latest row counts of the action's database, for `compare`.
pub async fn call_service(
    client: Result<&HttpClient, String>,
    secrets: &SecretSource,
    action: &crate::domain::StepAction,
    tail_bytes: usize,
    snapshot: Option<&RowCounts>,
) -> Option<StepResult> {
    use crate::domain::StepAction;
    let no_client = |detail: String| StepResult {
        outcome: StepOutcome::CouldNotStart,
        detail: Some(detail),
        ..Default::default()
    };
    Some(match action {
        StepAction::Http {
            method,
            url,
            headers,
            body,
            expect_status,
            timeout_secs,
        } => match client {
            Ok(client) => {
                let spec = HttpSpec {
                    method,
                    url,
                    headers,
                    body: body.as_deref(),
                    expect_status,
                    timeout: Duration::from_secs(*timeout_secs),
                    tail_bytes,
                };
                http(client, secrets, spec).await
            }
            Err(detail) => no_client(detail),
        },
        StepAction::Health {
            url,
            expect_status,
            body_contains,
            within_secs,
            every_ms,
        } => match client {
            Ok(client) => {
                let spec = HealthSpec {
                    url,
                    expect_status: *expect_status,
                    body_contains: body_contains.as_deref(),
                    within: Duration::from_secs(*within_secs),
                    every: Duration::from_millis(*every_ms),
                    tail_bytes,
                };
                health(client, secrets, spec).await
            }
            Err(detail) => no_client(detail),
        },
        StepAction::Sql {
            database,
            connection,
            check,
            read_only,
            timeout_secs,
        } => {
            let spec = SqlSpec {
                database,
                connection,
                check,
                read_only: *read_only,
                timeout: Duration::from_secs(*timeout_secs),
                snapshot,
            };
            sql(secrets, spec).await
        }
        _ => return None,
    })
}

/// A condition on a single value: `>= 3`, `= 0`, `!= 0`, `= true`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    op: &'static str,
    value: String,
}

impl Expectation {
    pub fn parse(text: &str) -> Option<Expectation> {
        let text = text.trim();
        let op = ["==", ">=", "<=", "!=", "=", ">", "<"]
            .into_iter()
            .find(|op| text.starts_with(op))?;
        let value = text[op.len()..].trim();
        if value.is_empty() {
            return None;
        }
        let op = if op == "==" { "=" } else { op };
        let numeric = value.parse::<f64>().is_ok();
        if !numeric && !["=", "!="].contains(&op) {
            return None;
        }
        Some(Expectation {
            op,
            value: value.trim_matches('\'').to_owned(),
        })
    }

    /// Numbers compare as numbers; anything else only for (in)equality, `t`/`true` alike.
    pub fn holds(&self, actual: &str) -> bool {
        let normal = |s: &str| match s {
            "t" | "true" => "true".to_owned(),
            "f" | "false" => "false".to_owned(),
            other => other.to_owned(),
        };
        if let (Ok(a), Ok(e)) = (actual.trim().parse::<f64>(), self.value.parse::<f64>()) {
            return match self.op {
                "=" => a == e,
                "!=" => a != e,
                ">" => a > e,
                ">=" => a >= e,
                "<" => a < e,
                _ => a <= e,
            };
        }
        // `parse` allows only `=` and `!=` for values that are not numbers.
        let equal = normal(actual.trim()) == normal(&self.value);
        if self.op == "=" { equal } else { !equal }
    }
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op, self.value)
    }
}

/// The answer of one attempt, or why there was none, as a step reports it.
async fn attempt(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Answer, String> {
    let headers = headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    client
        .exchange(method, url, headers, body.map(|b| b.as_bytes().to_vec()), timeout)
        .await
        .map_err(|e| match e {
            ExchangeError::Build(e) => format!("the request cannot be built: {e}"),
            ExchangeError::Unreachable(e) => format!("could not reach it: {e}"),
            ExchangeError::TimedOut(t) => format!("no answer within {}s", t.as_secs_f32()),
        })
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub struct HttpSpec<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a str>,
    pub expect_status: &'a [u16],
    pub timeout: Duration,
    pub tail_bytes: usize,
}

pub async fn http(client: &HttpClient, secrets: &SecretSource, spec: HttpSpec<'_>) -> StepResult {
    let started = Instant::now();
    let mut resolved = Resolved::default();
    let prepared = (|| -> Result<_, String> {
        let url = resolved.resolve(secrets, spec.url)?;
        let headers = spec
            .headers
            .iter()
            .map(|(k, v)| resolved.resolve(secrets, v).map(|v| (k.clone(), v)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let body = spec.body.map(|b| resolved.resolve(secrets, b)).transpose()?;
        Ok((url, headers, body))
    })();
    let (url, headers, body) = match prepared {
        Ok(p) => p,
        Err(detail) => {
            return StepResult {
                outcome: StepOutcome::CouldNotStart,
                duration_ms: elapsed_ms(started),
                detail: Some(detail),
                ..Default::default()
            };
        }
    };
    let answer = attempt(client, spec.method, &url, &headers, body.as_deref(), spec.timeout).await;
    let result = match answer {
        Ok(answer) => {
            let expected = spec.expect_status.contains(&answer.status);
            StepResult {
                outcome: if expected {
                    StepOutcome::Succeeded
                } else {
                    StepOutcome::Failed
                },
                duration_ms: elapsed_ms(started),
                // Scrubbed whole, then cut: a secret straddling the cut cannot leak in part.
                output_tail: excerpt(
                    &resolved.scrub(&format!("HTTP {}\n{}", answer.status, answer.body)),
                    spec.tail_bytes,
                ),
                detail: (!expected).then(|| {
                    format!(
                        "answered HTTP {}; expected {}",
                        answer.status,
                        spec.expect_status
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                }),
                ..Default::default()
            }
        }
        Err(detail) => StepResult {
            outcome: if detail.starts_with("no answer") {
                StepOutcome::TimedOut
            } else {
                StepOutcome::Failed
            },
            duration_ms: elapsed_ms(started),
            detail: Some(detail),
            ..Default::default()
        },
    };
    scrubbed(result, &resolved)
}

pub struct HealthSpec<'a> {
    pub url: &'a str,
    pub expect_status: u16,
    pub body_contains: Option<&'a str>,
    pub within: Duration,
    pub every: Duration,
    pub tail_bytes: usize,
}

/// Polls until the answer is as expected or `within` has passed.
pub async fn health(client: &HttpClient, secrets: &SecretSource, spec: HealthSpec<'_>) -> StepResult {
    let started = Instant::now();
    let mut resolved = Resolved::default();
    let url = match resolved.resolve(secrets, spec.url) {
        Ok(url) => url,
        Err(detail) => {
            return StepResult {
                outcome: StepOutcome::CouldNotStart,
                detail: Some(detail),
                ..Default::default()
            };
        }
    };
    let deadline = started + spec.within;
    let mut attempts = 0u32;
    let no_headers = BTreeMap::new();
    loop {
        attempts += 1;
        let attempt_started = Instant::now();
        let left = deadline.saturating_duration_since(attempt_started);
        let per_attempt = spec
            .every
            .max(Duration::from_secs(1))
            .min(Duration::from_secs(10))
            .min(left);
        let answer = attempt(client, "GET", &url, &no_headers, None, per_attempt).await;
        let (healthy, last) = match &answer {
            Ok(a) => {
                let body_ok = spec.body_contains.is_none_or(|needle| a.body.contains(needle));
                let status_ok = a.status == spec.expect_status;
                let verdict = match (status_ok, body_ok) {
                    (true, true) => "healthy",
                    (false, _) => "wrong status",
                    (true, false) => "body does not match",
                };
                (
                    status_ok && body_ok,
                    format!("HTTP {} ({verdict})\n{}", a.status, a.body),
                )
            }
            Err(e) => (false, e.clone()),
        };
        let summary = format!("attempt {attempts}: {last}");
        if healthy {
            return scrubbed(
                StepResult {
                    outcome: StepOutcome::Succeeded,
                    duration_ms: elapsed_ms(started),
                    output_tail: excerpt(&summary, spec.tail_bytes),
                    detail: Some(format!("healthy after {attempts} attempt(s)")),
                    attempts: Some(attempts),
                    ..Default::default()
                },
                &resolved,
            );
        }
        let next = attempt_started + spec.every;
        if next >= deadline {
            return scrubbed(
                StepResult {
                    outcome: StepOutcome::TimedOut,
                    duration_ms: elapsed_ms(started),
                    output_tail: excerpt(&summary, spec.tail_bytes),
                    detail: Some(format!(
                        "not healthy within {}s ({attempts} attempts); last answer: {}",
                        spec.within.as_secs(),
                        last.lines().next().unwrap_or_default()
                    )),
                    attempts: Some(attempts),
                    ..Default::default()
                },
                &resolved,
            );
        }
        tokio::time::sleep_until(next.into()).await;
    }
}

fn scrubbed(mut result: StepResult, resolved: &Resolved) -> StepResult {
    result.output_tail = resolved.scrub(&result.output_tail);
    result.detail = result.detail.map(|d| resolved.scrub(&d));
    result
}

pub struct SqlSpec<'a> {
    pub database: &'a str,
    pub connection: &'a str,
    pub check: &'a SqlCheck,
    pub read_only: bool,
    pub timeout: Duration,
    /// The latest snapshot of this database taken earlier in the rollback, for `compare`.
    pub snapshot: Option<&'a RowCounts>,
}

/// How long a `sql` step waits for its database to accept a connection, unless its URL says
/// (`connect_timeout`); never longer than the step's own timeout.
const SQL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn sql(secrets: &SecretSource, spec: SqlSpec<'_>) -> StepResult {
    let started = Instant::now();
    let mut resolved = Resolved::default();
    let work = async {
        let url = resolved
            .resolve(secrets, spec.connection)
            .map_err(|d| (StepOutcome::CouldNotStart, d))?;
        let cannot_connect = |e: String| {
            (
                StepOutcome::CouldNotStart,
                format!("cannot connect to database `{}`: {e}", spec.database),
            )
        };
        // TLS as libpq does it (`sslmode`, `sslrootcert`, … in the URL); a database that never
        // answers costs the connect timeout (the URL's `connect_timeout`, else ours), not the step.
        let connector = crate::postgres_tls::connector(&url).map_err(|e| cannot_connect(format!("{e:#}")))?;
        let mut config = connector.config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(SQL_CONNECT_TIMEOUT.min(spec.timeout));
        }
        let (mut client, connection) = config
            .connect(connector.tls)
            .await
            .map_err(|e| cannot_connect(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let outcome = check(&mut client, &spec).await;
        drop(client);
        driver.abort();
        outcome.map_err(|d| (StepOutcome::Failed, d))
    };
    let outcome = match tokio::time::timeout(spec.timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err((
            StepOutcome::TimedOut,
            format!("no result within {}s", spec.timeout.as_secs()),
        )),
    };
    let result = match outcome {
        Ok(checked) => StepResult {
            outcome: if checked.passed {
                StepOutcome::Succeeded
            } else {
                StepOutcome::Failed
            },
            duration_ms: elapsed_ms(started),
            output_tail: checked.report,
            detail: checked.detail,
            snapshot: checked.snapshot,
            ..Default::default()
        },
        Err((outcome, detail)) => StepResult {
            outcome,
            duration_ms: elapsed_ms(started),
            detail: Some(detail),
            ..Default::default()
        },
    };
    scrubbed(result, &resolved)
}

struct Checked {
    passed: bool,
    report: String,
    detail: Option<String>,
    snapshot: Option<RowCounts>,
}

fn quote_identifier(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

async fn row_counts(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &[String],
) -> Result<BTreeMap<String, Option<i64>>, String> {
    let mut counts = BTreeMap::new();
    for table in tables {
        let quoted = quote_identifier(table);
        // A missing table is a finding, not an error that would end the transaction.
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])
            .await
            .map_err(|e| format!("looking up `{table}`: {}", db_error(&e)))?
            .get(0);
        if !exists {
            counts.insert(table.clone(), None);
            continue;
        }
        let row = tx
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
            .map_err(|e| format!("counting rows of `{table}`: {}", db_error(&e)))?;
        counts.insert(table.clone(), Some(row.get::<_, i64>(0)));
    }
    Ok(counts)
}

fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

async fn check(client: &mut tokio_postgres::Client, spec: &SqlSpec<'_>) -> Result<Checked, String> {
    let read_only = spec.read_only || !matches!(spec.check, SqlCheck::Assert { .. });
    let tx = client
        .build_transaction()
        .read_only(read_only)
        .start()
        .await
        .map_err(|e| db_error(&e))?;
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {}", spec.timeout.as_millis()))
        .await
        .map_err(|e| db_error(&e))?;
    let checked = match spec.check {
        SqlCheck::Snapshot { tables, schema } => {
            let tables = match schema {
                Some(schema) => tx
                    .query(
                        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
                         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
                        &[schema],
                    )
                    .await
                    .map_err(|e| db_error(&e))?
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect(),
                None => tables.clone(),
            };
            let counts = row_counts(&tx, &tables).await?;
            let missing: Vec<&String> = counts.iter().filter(|(_, c)| c.is_none()).map(|(t, _)| t).collect();
            let report = counts
                .iter()
                .map(|(t, c)| match c {
                    Some(c) => format!("{t}: {c} rows"),
                    None => format!("{t}: no such table"),
                })
                .collect::<Vec<_>>()
                .join("\n");
            Checked {
                passed: missing.is_empty() && !counts.is_empty(),
                detail: if counts.is_empty() {
                    Some("no tables to snapshot".into())
                } else if missing.is_empty() {
                    Some(format!("recorded row counts of {} table(s)", counts.len()))
                } else {
                    Some(format!(
                        "no such table: {}",
                        missing.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                },
                report,
                snapshot: Some(RowCounts {
                    database: spec.database.to_owned(),
                    counts: counts.into_iter().filter_map(|(t, c)| c.map(|c| (t, c))).collect(),
                }),
            }
        }
        SqlCheck::Compare { default_drift, drift } => {
            let Some(before) = spec.snapshot else {
                return Err(format!(
                    "no snapshot of database `{}` was taken earlier in this rollback; add a `sql` snapshot step before this one",
                    spec.database
                ));
            };
            let tables: Vec<String> = before.counts.keys().cloned().collect();
            let now = row_counts(&tx, &tables).await?;
            let mut lines = vec![];
            let mut off = vec![];
            for (table, then) in &before.counts {
                let allowed: Drift = drift.get(table).copied().unwrap_or(*default_drift);
                match now.get(table).copied().flatten() {
                    Some(count) => {
                        let ok = allowed.allows(*then, count);
                        lines.push(format!(
                            "{} {table}: {then} → {count} ({:+}; allowed {allowed})",
                            if ok { "✓" } else { "✗" },
                            count - then
                        ));
                        if !ok {
                            off.push(table.clone());
                        }
                    }
                    None => {
                        lines.push(format!("✗ {table}: {then} → table is gone"));
                        off.push(table.clone());
                    }
                }
            }
            Checked {
                passed: off.is_empty(),
                detail: Some(if off.is_empty() {
                    format!("{} table(s) within the allowed drift", tables.len())
                } else {
                    format!("row counts moved beyond the allowed drift: {}", off.join(", "))
                }),
                report: lines.join("\n"),
                snapshot: None,
            }
        }
        SqlCheck::Assert { query, expect } => {
            let expectation = Expectation::parse(expect).ok_or_else(|| format!("`{expect}` is not an expectation"))?;
            let query = query.trim().trim_end_matches(';');
            let rows = tx
                .query(&format!("SELECT (q.v)::text FROM ({query}) AS q(v)"), &[])
                .await
                .map_err(|e| format!("the query failed: {}", db_error(&e)))?;
            let value = match rows.as_slice() {
                [row] => row.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into()),
                other => {
                    return Err(format!(
                        "the query returned {} rows; an assertion needs exactly one",
                        other.len()
                    ));
                }
            };
            let passed = expectation.holds(&value);
            Checked {
                passed,
                report: format!("value: {value}"),
                detail: Some(format!(
                    "{value} {} {expectation}",
                    if passed { "meets" } else { "does not meet" }
                )),
                snapshot: None,
            }
        }
    };
    tx.commit().await.map_err(|e| db_error(&e))?;
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_compare_numbers_as_numbers_and_text_for_equality() {
        let at_least_three = Expectation::parse(">= 3").unwrap();
        assert!(at_least_three.holds("3") && at_least_three.holds("12") && !at_least_three.holds("2"));
        assert!(Expectation::parse("= 0").unwrap().holds("0"));
        assert!(Expectation::parse("= true").unwrap().holds("t"));
        assert!(Expectation::parse("!= 'broken'").unwrap().holds("ok"));
        assert!(!Expectation::parse("!= 0").unwrap().holds("0"));
        assert_eq!(Expectation::parse("> abc"), None, "order needs numbers");
        assert_eq!(Expectation::parse("3"), None, "an operator is required");
        assert_eq!(Expectation::parse(">="), None);
    }

    #[test]
    fn drift_is_rows_or_a_share_of_the_snapshot() {
        assert!(Drift::parse("0").unwrap().allows(10, 10));
        assert!(!Drift::parse("0").unwrap().allows(10, 9));
        assert!(Drift::parse("10%").unwrap().allows(1000, 1100));
        assert!(!Drift::parse("10%").unwrap().allows(1000, 1101));
        assert!(Drift::parse("25").unwrap().allows(100, 75));
        assert_eq!(Drift::parse("ten"), None);
    }

    #[test]
    fn identifiers_are_quoted_part_by_part() {
        assert_eq!(quote_identifier("public.orders"), "\"public\".\"orders\"");
        assert_eq!(quote_identifier("we\"ird"), "\"we\"\"ird\"");
    }
}
