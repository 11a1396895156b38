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
