//! `GET /metrics` in Prometheus's text format. The store's figures are every replica's same
//! truth about the shared queue; they are read at most once per `FIGURES_EVERY` (one read at a
//! time, whatever the number of scrapers), so a flood of scrapes costs no more than one.
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFigures {
    pub outbox_pending: i64,
    pub outbox_oldest_pending_age_seconds: f64,
    pub outbox_undeliverable: i64,
    /// (state, severity, count)
    pub rollbacks: Vec<(String, String, i64)>,
}

/// How old the store's figures may be before a scrape reads them again.
pub const FIGURES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The store's figures as last read, shared by every scrape.
#[derive(Default)]
pub struct FiguresCache {
    latest: std::sync::RwLock<Option<(std::time::Instant, StoreFigures)>>,
    /// One read of the store at a time; the other scrapers wait for it and share its result.
    reading: tokio::sync::Mutex<()>,
}

impl FiguresCache {
    /// Figures at most `FIGURES_EVERY` old, and how old they are; `read` reads them afresh.
    pub async fn get<F>(&self, read: impl FnOnce() -> F) -> anyhow::Result<(StoreFigures, std::time::Duration)>
    where
        F: std::future::Future<Output = anyhow::Result<StoreFigures>>,
    {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _reading = self.reading.lock().await;
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let figures = read().await?;
        *self.latest.write().expect("figures lock") = Some((std::time::Instant::now(), figures.clone()));
        Ok((figures, std::time::Duration::ZERO))
    }

    fn fresh(&self) -> Option<(StoreFigures, std::time::Duration)> {
        let latest = self.latest.read().expect("figures lock");
        let (at, figures) = latest.as_ref()?;
        let age = at.elapsed();
        (age < FIGURES_EVERY).then(|| (figures.clone(), age))
    }
}

pub fn render(figures: &StoreFigures, age: std::time::Duration) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, lines: Vec<(String, String)>| {
        header(&mut out, name, "gauge", help);
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "rollbot_store_figures_age_seconds",
        "How long ago the figures read from the store (outbox, rollbacks) were read.",
        vec![(String::new(), format!("{:.3}", age.as_secs_f64()))],
    );
    gauge(
        "rollbot_outbox_pending",
        "Messages waiting to be delivered to Slack.",
        vec![(String::new(), figures.outbox_pending.to_string())],
    );
    gauge(
        "rollbot_outbox_oldest_pending_age_seconds",
        "Age of the oldest message waiting to be delivered.",
        vec![(String::new(), figures.outbox_oldest_pending_age_seconds.to_string())],
    );
    gauge(
        "rollbot_outbox_undeliverable",
        "Messages Slack would not take, kept with their error.",
        vec![(String::new(), figures.outbox_undeliverable.to_string())],
    );
    gauge(
        "rollbot_rollbacks",
        "Rollbacks by state and severity.",
        figures
            .rollbacks
            .iter()
            .map(|(state, severity, n)| (format!("{{state=\"{state}\",severity=\"{severity}\"}}"), n.to_string()))
            .collect(),
    );
    out
}

/// Upper bounds of the acknowledgement-latency buckets, in seconds. Slack gives up at 3 s.
pub const ACK_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 3.0];
/// From a request to its last needed approval: people answering pages, so seconds to an hour.
pub const APPROVAL_BUCKETS: [f64; 10] = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0];
/// A step runs from milliseconds (a notify) to many minutes (a full restore).
pub const STEP_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// A Prometheus histogram: cumulative buckets, a sum and a count.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        for (bucket, bound) in self.buckets.iter_mut().zip(self.bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
    }

    /// `labels` are the series' own labels, already formatted (`kind="sql",result="failed"`).
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// What this process saw since it started (per replica, unlike the store's figures, so
/// Prometheus sums them across replicas): its HTTP traffic, the decisions it recorded, and its
/// calls to Slack. Each decision is recorded by exactly one process, so nothing is counted twice.
pub struct Live {
    inner: std::sync::Mutex<LiveInner>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            inner: std::sync::Mutex::new(LiveInner {
                requests: Default::default(),
                signature_failures: Default::default(),
                ack: Histogram::new(&ACK_BUCKETS),
                approval: Default::default(),
                escalations: Default::default(),
                steps: Default::default(),
                slack_errors: Default::default(),
                alerts: Default::default(),
            }),
        }
    }
}

struct LiveInner {
    requests: BTreeMap<(String, &'static str), u64>,
    signature_failures: BTreeMap<String, u64>,
    ack: Histogram,
    /// By severity.
    approval: BTreeMap<String, Histogram>,
    /// By ladder level (1 = the first escalation).
    escalations: BTreeMap<usize, u64>,
    /// By step kind and result.
    steps: BTreeMap<(&'static str, &'static str), Histogram>,
    /// By Slack API method and error code.
    slack_errors: BTreeMap<(&'static str, String), u64>,
    /// Alerts received from Alertmanager, by what became of them.
    alerts: BTreeMap<&'static str, u64>,
}

/// How a request ended, as a label: `ok`, `refused` (4xx other than a bad signature),
/// `unauthorized` (401) or `error` (5xx).
pub fn outcome(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 => "unauthorized",
        400..=499 => "refused",
        _ => "error",
    }
}

/// A label value may hold anything Slack sends back; keep it to a safe, short alphabet.
fn label_value(raw: &str) -> String {
    raw.chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, LiveInner> {
        // A panic while holding the lock leaves plain counters behind: still worth reporting.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let mut inner = self.lock();
        *inner.requests.entry((route.to_owned(), outcome(status))).or_default() += 1;
        if route.starts_with("/slack/") {
            if status == 401 {
                *inner.signature_failures.entry(route.to_owned()).or_default() += 1;
            }
            inner.ack.observe(seconds);
        }
    }

    /// A rollback's last needed approval arrived `seconds` after it was requested.
    pub fn approved_after(&self, severity: &str, seconds: f64) {
        self.lock()
            .approval
            .entry(severity.to_owned())
            .or_insert_with(|| Histogram::new(&APPROVAL_BUCKETS))
            .observe(seconds);
    }

    pub fn escalated(&self, level: usize) {
        *self.lock().escalations.entry(level).or_default() += 1;
    }

    pub fn step_finished(&self, kind: &'static str, result: &'static str, seconds: f64) {
        self.lock()
            .steps
            .entry((kind, result))
            .or_insert_with(|| Histogram::new(&STEP_BUCKETS))
            .observe(seconds);
    }

    pub fn slack_error(&self, method: &'static str, code: &str) {
        *self.lock().slack_errors.entry((method, label_value(code))).or_default() += 1;
    }

    /// `count` alerts of a notification ended as `outcome`: `matched` (a configured service),
    /// `unknown_service`, or `no_service_label`.
    pub fn alerts(&self, outcome: &'static str, count: u64) {
        *self.lock().alerts.entry(outcome).or_default() += count;
    }

    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        header(
            &mut out,
            "rollbot_http_requests_total",
            "counter",
            "HTTP requests by route and outcome.",
        );
        for ((route, outcome), n) in &inner.requests {
            let _ = writeln!(
                out,
                "rollbot_http_requests_total{{route=\"{route}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        header(
            &mut out,
            "rollbot_signature_failures_total",
            "counter",
            "Slack requests refused for a missing, stale or wrong signature.",
        );
        for (route, n) in &inner.signature_failures {
            let _ = writeln!(out, "rollbot_signature_failures_total{{route=\"{route}\"}} {n}");
        }
        header(
            &mut out,
            "rollbot_slack_ack_seconds",
            "histogram",
            "Time to answer Slack's requests (Slack gives up at 3 s).",
        );
        inner.ack.write(&mut out, "rollbot_slack_ack_seconds", "");
        header(
            &mut out,
            "rollbot_time_to_approval_seconds",
            "histogram",
            "From a request to its last needed approval, by severity (drills not included).",
        );
        for (severity, histogram) in &inner.approval {
            histogram.write(
                &mut out,
                "rollbot_time_to_approval_seconds",
                &format!("severity=\"{severity}\""),
            );
        }
        header(
            &mut out,
            "rollbot_escalations_total",
            "counter",
            "Escalations by ladder level (1 is the first level above the severity's approvers).",
        );
        for (level, n) in &inner.escalations {
            let _ = writeln!(out, "rollbot_escalations_total{{level=\"{level}\"}} {n}");
        }
        header(
            &mut out,
            "rollbot_step_duration_seconds",
            "histogram",
            "How long runbook steps took, by kind and result.",
        );
        for ((kind, result), histogram) in &inner.steps {
            histogram.write(
                &mut out,
                "rollbot_step_duration_seconds",
                &format!("kind=\"{kind}\",result=\"{result}\""),
            );
        }
        header(
            &mut out,
            "rollbot_slack_api_errors_total",
            "counter",
            "Failed Slack API calls by method and error code (ratelimited, timeout, http_5xx, or Slack's own code).",
        );
        for ((method, code), n) in &inner.slack_errors {
            let _ = writeln!(
                out,
                "rollbot_slack_api_errors_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        header(
            &mut out,
            "rollbot_alerts_total",
            "counter",
            "Alerts received from Alertmanager: matched to a service, or not (unknown_service, no_service_label).",
        );
        for (outcome, n) in &inner.alerts {
            let _ = writeln!(out, "rollbot_alerts_total{{outcome=\"{outcome}\"}} {n}");
        }
        out
    }
}
