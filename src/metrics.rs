//! `GET /metrics` in Prometheus's text format. These figures are read from the store at scrape
//! time, so every replica reports the same truth about the shared queue.
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFigures {
    pub outbox_pending: i64,
    pub outbox_oldest_pending_age_seconds: f64,
    pub outbox_undeliverable: i64,
    /// (state, severity, count)
    pub rollbacks: Vec<(String, String, i64)>,
}

pub fn render(figures: &StoreFigures) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
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

/// What this process saw of its HTTP traffic since it started (per replica, unlike the store's
/// figures): requests by route and outcome, signature failures, and how fast Slack was answered.
#[derive(Default)]
pub struct Live {
    inner: std::sync::Mutex<LiveInner>,
}

#[derive(Default)]
struct LiveInner {
    requests: std::collections::BTreeMap<(String, &'static str), u64>,
    signature_failures: std::collections::BTreeMap<String, u64>,
    ack_buckets: [u64; ACK_BUCKETS.len()],
    ack_count: u64,
    ack_sum: f64,
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

impl Live {
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let mut inner = self.inner.lock().expect("metrics lock");
        *inner.requests.entry((route.to_owned(), outcome(status))).or_default() += 1;
        if route.starts_with("/slack/") {
            if status == 401 {
                *inner.signature_failures.entry(route.to_owned()).or_default() += 1;
            }
            inner.ack_count += 1;
            inner.ack_sum += seconds;
            for (i, bound) in ACK_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    inner.ack_buckets[i] += 1;
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let inner = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP rollbot_http_requests_total HTTP requests by route and outcome."
        );
        let _ = writeln!(out, "# TYPE rollbot_http_requests_total counter");
        for ((route, outcome), n) in &inner.requests {
            let _ = writeln!(
                out,
                "rollbot_http_requests_total{{route=\"{route}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rollbot_signature_failures_total Slack requests refused for a missing, stale or wrong signature."
        );
        let _ = writeln!(out, "# TYPE rollbot_signature_failures_total counter");
        for (route, n) in &inner.signature_failures {
            let _ = writeln!(out, "rollbot_signature_failures_total{{route=\"{route}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP rollbot_slack_ack_seconds Time to answer Slack's requests (Slack gives up at 3 s)."
        );
        let _ = writeln!(out, "# TYPE rollbot_slack_ack_seconds histogram");
        for (bound, n) in ACK_BUCKETS.iter().zip(inner.ack_buckets) {
            let _ = writeln!(out, "rollbot_slack_ack_seconds_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "rollbot_slack_ack_seconds_bucket{{le=\"+Inf\"}} {}",
            inner.ack_count
        );
        let _ = writeln!(out, "rollbot_slack_ack_seconds_sum {}", inner.ack_sum);
        let _ = writeln!(out, "rollbot_slack_ack_seconds_count {}", inner.ack_count);
        out
    }
}
