//! Prometheus Alertmanager's webhook (payload version 4), and Grafana Alerting's webhook contact
//! point, which sends the same shape with a few fields more as its version 1: the wire format,
//! and how their alerts map to services and severities by label. The core only sees `AlertGroup`s.
use crate::config::AlertmanagerSettings;
use crate::domain::plan::Catalog;
use crate::domain::proposal::{AlertGroup, AlertSummary};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The payload version Alertmanager has sent since 2016.
pub const VERSION: &str = "4";
/// The payload version of Grafana Alerting's webhook contact point: Alertmanager's fields, and
/// `orgId`, `title`, `state`, `message` and per-alert URLs and values, which rollbot does not need.
pub const GRAFANA_VERSION: &str = "1";
/// Alerts kept per proposal: a card shows a handful, and a storm must not grow one record
/// without bound. The rest are counted.
pub const MAX_ALERTS_KEPT: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// Reads a notification, or says what is wrong with it (for the log and Alertmanager's).
pub fn parse(body: &[u8]) -> Result<Notification, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not an Alertmanager notification: {e}"))?;
    // An alert's text is relayed, not typed to rollbot: a control character in it is replaced,
    // so that the notification is never refused (Alertmanager would resend it forever).
    make_printable(&mut value);
    let notification: Notification =
        serde_json::from_value(value).map_err(|e| format!("not an Alertmanager notification: {e}"))?;
    if notification.version != VERSION && notification.version != GRAFANA_VERSION {
        return Err(format!(
            "payload version {:?} is not supported; rollbot reads Alertmanager's version {VERSION} and Grafana Alerting's version {GRAFANA_VERSION}",
            notification.version
        ));
    }
    if notification.group_key.is_empty() {
        return Err("the notification has no groupKey".into());
    }
    for alert in &notification.alerts {
        if alert.status != "firing" && alert.status != "resolved" {
            return Err(format!(
                "alert status {:?} is neither firing nor resolved",
                alert.status
            ));
        }
    }
    Ok(notification)
}

fn make_printable(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if let std::borrow::Cow::Owned(clean) = crate::text::printable(text) {
                *text = clean;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(make_printable),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(make_printable);
            if fields.keys().any(|key| key.chars().any(crate::text::is_unprintable)) {
                let cleaned = std::mem::take(fields)
                    .into_iter()
                    .map(|(key, value)| (crate::text::printable(&key).into_owned(), value))
                    .collect();
                *fields = cleaned;
            }
        }
        _ => {}
    }
}

/// A time Alertmanager sent; its "no time" (`0001-01-01T00:00:00Z`) and anything unreadable is `None`.
fn time(value: &Option<String>) -> Option<DateTime<Utc>> {
    let at = DateTime::parse_from_rfc3339(value.as_deref()?)
        .ok()?
        .with_timezone(&Utc);
    (at.timestamp() > 0).then_some(at)
}

/// Where a notification's alerts go: one group per configured service, and the alerts that
/// name no configured service (by the service label's value, `None` when it is missing).
#[derive(Debug, Default)]
pub struct Sorted {
    pub groups: Vec<AlertGroup>,
    pub unknown: Vec<Option<String>>,
}

pub fn sort(notification: &Notification, settings: &AlertmanagerSettings, catalog: &Catalog) -> Sorted {
    let mut by_service: BTreeMap<String, Vec<&Alert>> = BTreeMap::new();
    let mut sorted = Sorted::default();
    for alert in &notification.alerts {
        match alert.labels.get(&settings.service_label) {
            Some(service) if catalog.services.contains_key(service) => {
                by_service.entry(service.clone()).or_default().push(alert)
            }
            other => sorted.unknown.push(other.cloned()),
        }
    }
    for (service, alerts) in by_service {
        // The most severe of the group's firing alerts decides; resolved ones only if all are.
        let firing: Vec<&&Alert> = alerts.iter().filter(|a| a.status == "firing").collect();
        let deciding: Vec<&Alert> = if firing.is_empty() {
            alerts.clone()
        } else {
            firing.into_iter().copied().collect()
        };
        let severity = deciding
            .iter()
            .map(|a| settings.severity_of(a.labels.get(&settings.severity_label).map(String::as_str)))
            .min()
            .unwrap_or(settings.default_severity);
        let target = settings
            .target_label
            .as_ref()
            .and_then(|label| deciding.iter().find_map(|a| a.labels.get(label)).cloned());
        let kept = alerts.len().min(MAX_ALERTS_KEPT);
        let summaries = alerts[..kept]
            .iter()
            .map(|alert| AlertSummary {
                name: alert
                    .labels
                    .get("alertname")
                    .cloned()
                    .unwrap_or_else(|| "(unnamed alert)".into()),
                firing: alert.status == "firing",
                summary: alert
                    .annotations
                    .get("summary")
                    .or_else(|| alert.annotations.get("description"))
                    .cloned(),
                labels: alert.labels.clone(),
                starts_at: time(&alert.starts_at),
                ends_at: time(&alert.ends_at),
                source: Some(alert.generator_url.clone()).filter(|u| !u.is_empty()),
            })
            .collect();
        sorted.groups.push(AlertGroup {
            group_key: notification.group_key.clone(),
            service,
            severity,
            target,
            channel: settings.channel.clone(),
            alerts: summaries,
            common_labels: notification.common_labels.clone(),
            external_url: Some(notification.external_url.clone()).filter(|u| !u.is_empty()),
            truncated: notification.truncated_alerts + (alerts.len() - kept) as u64,
        });
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::domain::Severity;

    const CONFIG: &str = r#"
[slack]
channels = ["C0INCIDENTS"]
anyone_may_request = true
[roles]
on_call = ["U0BOB"]
team_lead = ["U0CAROL"]
[runbooks.k8s]
params.target = { pattern = "[0-9]+" }
[[runbooks.k8s.steps]]
name = "Undo"
run = ["kubectl", "rollout", "undo", "--to-revision={{ params.target }}"]
[services.api]
runbooks = ["k8s"]
[services.web]
runbooks = ["k8s"]
[alertmanager]
service_label = "app"
target_label = "last_good"
[alertmanager.severities]
page = "critical"
"#;

    fn notification(alerts: serde_json::Value) -> Notification {
        let body = serde_json::json!({
            "version": "4", "groupKey": "{}:{alertname=\"X\"}", "truncatedAlerts": 3, "status": "firing",
            "receiver": "rollbot", "groupLabels": {}, "commonLabels": {"team": "shop"}, "commonAnnotations": {},
            "externalURL": "http://am:9093", "alerts": alerts,
        });
        parse(body.to_string().as_bytes()).unwrap()
    }

    fn alert(app: Option<&str>, severity: &str, status: &str, last_good: Option<&str>) -> serde_json::Value {
        let mut labels = serde_json::json!({"alertname": "HighErrorRate", "severity": severity});
        if let Some(app) = app {
            labels["app"] = app.into();
        }
        if let Some(target) = last_good {
            labels["last_good"] = target.into();
        }
        serde_json::json!({
            "status": status, "labels": labels, "annotations": {"description": "5xx above 10%"},
            "startsAt": "2026-11-22T02:50:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "f",
        })
    }

    #[test]
    fn alerts_sort_into_one_group_per_service_by_the_configured_labels() {
        let config = Config::parse("rollbot.toml", CONFIG).unwrap();
        let settings = config.alertmanager.as_ref().unwrap();
        let sorted = sort(
            &notification(serde_json::json!([
                alert(Some("api"), "warning", "firing", None),
                alert(Some("api"), "page", "firing", Some("41")),
                alert(Some("api"), "page", "resolved", Some("40")),
                alert(Some("web"), "warning", "resolved", None),
                alert(Some("billing"), "page", "firing", None),
                alert(None, "page", "firing", None),
            ])),
            settings,
            &config.catalog,
        );
        assert_eq!(sorted.unknown, [Some("billing".to_owned()), None]);
        let api = &sorted.groups[0];
        assert_eq!(api.service, "api");
        assert_eq!(api.severity, Severity::Critical, "the most severe firing alert, mapped");
        assert_eq!(
            api.target.as_deref(),
            Some("41"),
            "from a firing alert, not the resolved one"
        );
        assert_eq!((api.alerts.len(), api.truncated, api.firing()), (3, 3, true));
        assert_eq!(
            api.alerts[0].summary.as_deref(),
            Some("5xx above 10%"),
            "the description when no summary"
        );
        assert_eq!(api.alerts[0].ends_at, None, "Alertmanager's zero time is no time");
        assert_eq!(api.alerts[0].source, None);
        let web = &sorted.groups[1];
        assert_eq!(
            (web.service.as_str(), web.firing(), web.severity),
            ("web", false, Severity::High)
        );
    }

    #[test]
    fn only_alertmanager_and_grafana_notifications_with_a_group_key_are_read() {
        assert!(
            parse(b"[]")
                .unwrap_err()
                .starts_with("not an Alertmanager notification")
        );
        let mut body = serde_json::json!({"version": "4", "groupKey": "", "status": "firing", "alerts": []});
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap_err(),
            "the notification has no groupKey"
        );
        body["version"] = "5".into();
        assert!(
            parse(body.to_string().as_bytes())
                .unwrap_err()
                .contains("rollbot reads Alertmanager's version 4 and Grafana Alerting's version 1")
        );
        body["version"] = "1".into();
        body["groupKey"] = "{}:{alertname=\"X\"}".into();
        assert!(parse(body.to_string().as_bytes()).is_ok(), "Grafana Alerting's webhook");
    }

    #[test]
    fn a_storm_keeps_a_bounded_record_and_counts_the_rest() {
        let config = Config::parse("rollbot.toml", CONFIG).unwrap();
        let alerts: Vec<_> = (0..500)
            .map(|_| alert(Some("api"), "page", "firing", Some("41")))
            .collect();
        let sorted = sort(
            &notification(serde_json::json!(alerts)),
            config.alertmanager.as_ref().unwrap(),
            &config.catalog,
        );
        assert_eq!(sorted.groups[0].alerts.len(), MAX_ALERTS_KEPT);
        assert_eq!(sorted.groups[0].truncated, 3 + 500 - MAX_ALERTS_KEPT as u64);
    }
}
