//! Who is on call, from PagerDuty: a role's member may be a schedule or a level of an
//! escalation policy, read with the REST API's `GET /oncalls` when someone clicks. This module
//! owns the member syntax and PagerDuty's wire format; the directory turns the emails it
//! returns into Slack users.
use crate::outbound::{ExchangeError, HttpClient};
use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

/// PagerDuty's REST API, when `[pagerduty] api_url` does not say otherwise.
pub const DEFAULT_API_URL: &str = "https://api.pagerduty.com";
/// Where the REST API key is read from, when `[pagerduty] token_env` does not say otherwise.
pub const DEFAULT_TOKEN_ENV: &str = "PAGERDUTY_API_TOKEN";
/// PagerDuty's Events API v2 endpoint for change events.
pub const DEFAULT_CHANGE_EVENTS_URL: &str = "https://events.pagerduty.com/v2/change/enqueue";
/// The longest one change event may take to be accepted (it goes through the outbox).
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one `/oncalls` read may take (it runs while Slack waits for our answer).
const CALL_TIMEOUT: Duration = Duration::from_millis(1200);

/// Where a role's on-call members come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OnCallSource {
    /// Whoever a schedule has on call now: `pagerduty:schedule:PABC123`.
    Schedule(String),
    /// Whoever is on call now at one level of an escalation policy:
    /// `pagerduty:escalation_policy:PESC123` (level 1) or `…:PESC123:2`.
    EscalationLevel { policy: String, level: u32 },
}

const PREFIX: &str = "pagerduty:";

/// A PagerDuty object ID as the REST API prints them: `P` and upper-case letters and digits.
fn is_object_id(id: &str) -> bool {
    id.len() >= 2 && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl OnCallSource {
    /// `Some(Ok)` for a well-formed PagerDuty member, `Some(Err(why))` for one that names
    /// PagerDuty but cannot be read, `None` for anything else (a Slack ID).
    pub fn parse(member: &str) -> Option<Result<OnCallSource, String>> {
        let rest = member.strip_prefix(PREFIX)?;
        let parts: Vec<&str> = rest.split(':').collect();
        Some(match parts.as_slice() {
            ["schedule", id] if is_object_id(id) => Ok(OnCallSource::Schedule((*id).to_owned())),
            ["escalation_policy", id] if is_object_id(id) => Ok(OnCallSource::EscalationLevel {
                policy: (*id).to_owned(),
                level: 1,
            }),
            ["escalation_policy", id, level] if is_object_id(id) => match level.parse::<u32>() {
                Ok(level) if level >= 1 => Ok(OnCallSource::EscalationLevel {
                    policy: (*id).to_owned(),
                    level,
                }),
                _ => Err(format!("`{level}` is not an escalation level (1, 2, …)")),
            },
            _ => Err("write `pagerduty:schedule:<ID>` or `pagerduty:escalation_policy:<ID>[:<level>]`, with the ID from the schedule's or policy's URL (P…)".into()),
        })
    }

    /// How people read it on a card: what to look at in PagerDuty.
    pub fn describe(&self) -> String {
        match self {
            OnCallSource::Schedule(id) => format!("on call in PagerDuty schedule {id}"),
            OnCallSource::EscalationLevel { policy, level } => {
                format!("on call at level {level} of PagerDuty escalation policy {policy}")
            }
        }
    }
}

/// The REST API with its key.
pub struct PagerDuty {
    api_url: String,
    token: Secret,
    http: HttpClient,
}

#[derive(Deserialize)]
struct OnCalls {
    oncalls: Vec<OnCall>,
}

#[derive(Deserialize)]
struct OnCall {
    user: Option<OnCallUser>,
    escalation_level: Option<u32>,
}

#[derive(Deserialize)]
struct OnCallUser {
    email: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl PagerDuty {
    pub fn new(api_url: &str, token: Secret) -> anyhow::Result<PagerDuty> {
        Ok(PagerDuty {
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
            http: HttpClient::new()?,
        })
    }

    /// The emails of whoever `source` has on call now, or why they could not be read (never
    /// with the key in it).
    pub async fn on_call_emails(&self, source: &OnCallSource) -> Result<Vec<String>, String> {
        let filter = match source {
            OnCallSource::Schedule(id) => format!("schedule_ids%5B%5D={id}"),
            OnCallSource::EscalationLevel { policy, .. } => format!("escalation_policy_ids%5B%5D={policy}"),
        };
        // Without since/until PagerDuty answers who is on call now; `earliest` keeps one entry
        // per user, policy and level.
        let url = format!(
            "{}/oncalls?{filter}&include%5B%5D=users&earliest=true&limit=100&time_zone=UTC",
            self.api_url
        );
        let authorization = format!("Token token={}", self.token.expose());
        let headers = [
            ("authorization", authorization.as_str()),
            ("accept", "application/vnd.pagerduty+json;version=2"),
        ];
        let answer = match self.http.exchange("GET", &url, headers, None, CALL_TIMEOUT).await {
            Ok(answer) => answer,
            Err(ExchangeError::TimedOut(limit)) => {
                return Err(format!("PagerDuty did not answer within {} ms", limit.as_millis()));
            }
            Err(ExchangeError::Unreachable(why) | ExchangeError::Build(why)) => {
                return Err(format!("PagerDuty could not be reached: {why}"));
            }
        };
        if answer.status == 429 {
            return Err("PagerDuty answered 429: rate limited".into());
        }
        if answer.status != 200 {
            let said = serde_json::from_str::<ErrorAnswer>(&answer.body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| crate::text::truncate(&answer.body, 120));
            return Err(format!("PagerDuty answered {}: {said}", answer.status));
        }
        let read: OnCalls = serde_json::from_str(&answer.body)
            .map_err(|e| format!("PagerDuty's /oncalls answer could not be read: {e}"))?;
        let mut emails: Vec<String> = read
            .oncalls
            .into_iter()
            .filter(|oncall| match source {
                OnCallSource::EscalationLevel { level, .. } => oncall.escalation_level == Some(*level),
                OnCallSource::Schedule(_) => true,
            })
            .filter_map(|oncall| oncall.user?.email)
            .collect();
        emails.sort();
        emails.dedup();
        Ok(emails)
    }
}

/// A change event as the Events API v2 takes it: what changed, when, from where, and links.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChangeEvent {
    pub summary: String,
    pub timestamp: String,
    pub custom_details: serde_json::Value,
    /// (href, text)
    pub links: Vec<(String, String)>,
}

/// The change event for `rollback` starting (`ended: false`) or ending, linking its thread.
/// Pure: the same rollback gives the same event.
pub fn change_event(rollback: &crate::domain::Rollback, ended: bool, thread: Option<String>) -> ChangeEvent {
    let request = &rollback.request;
    let target = request
        .target
        .as_deref()
        .map(|t| format!(" to {t}"))
        .unwrap_or_default();
    let outcome = rollback.state.name().replace('_', " ");
    let summary = if ended {
        format!(
            "Rollback {} of {}{target} {outcome} (rollbot)",
            rollback.id, request.service
        )
    } else {
        format!(
            "Rollback {} of {}{target} started: runbook {}, severity {} (rollbot)",
            rollback.id, request.service, request.runbook, request.severity
        )
    };
    let at = if ended {
        rollback.finished_at
    } else {
        rollback.started_at
    };
    let approvers: Vec<&str> = rollback.approvals.iter().map(|a| a.by.0.as_str()).collect();
    ChangeEvent {
        summary,
        timestamp: at
            .unwrap_or(rollback.requested_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        custom_details: serde_json::json!({
            "rollback": rollback.id.to_string(),
            "service": request.service,
            "target": request.target,
            "runbook": request.runbook,
            "severity": request.severity.as_str(),
            "requested_by": request.requester.0,
            "approved_by": approvers,
            "state": if ended { outcome.as_str() } else { "running" },
            "plan_digest": rollback.plan_digest,
        }),
        links: thread
            .map(|href| (href, format!("{} in Slack", rollback.id)))
            .into_iter()
            .collect(),
    }
}

/// PagerDuty's Events API with a service integration's key: change events appear on that
/// service's timeline and beside its incidents, so responders see the rollback next to the page.
pub struct ChangeEvents {
    url: String,
    routing_key: Secret,
    http: HttpClient,
}

impl ChangeEvents {
    pub fn new(url: &str, routing_key: Secret) -> anyhow::Result<ChangeEvents> {
        Ok(ChangeEvents {
            url: url.to_owned(),
            routing_key,
            http: HttpClient::new()?,
        })
    }

    /// Sends one change event. PagerDuty answers 202 when it took it; 429 and 5xx are worth
    /// another try, anything else is not. An error's text never carries the key.
    pub async fn send(&self, event: &ChangeEvent) -> Result<(), crate::outbound::CallError> {
        use crate::outbound::CallError;
        let body = serde_json::json!({
            "routing_key": self.routing_key.expose(),
            "payload": {
                "summary": crate::text::truncate(&event.summary, 1024),
                "timestamp": event.timestamp,
                "source": "rollbot",
                "custom_details": event.custom_details,
            },
            "links": event.links.iter().map(|(href, text)| serde_json::json!({"href": href, "text": text})).collect::<Vec<_>>(),
        });
        let body = serde_json::to_vec(&body).expect("JSON");
        let answer = self
            .http
            .exchange("POST", &self.url, [], Some(body), EVENT_TIMEOUT)
            .await
            .map_err(|e| match e {
                ExchangeError::Build(e) => CallError::Permanent(format!("bad change event request: {e}")),
                ExchangeError::Unreachable(e) => CallError::Transient(format!("PagerDuty unreachable: {e}")),
                ExchangeError::TimedOut(t) => {
                    CallError::Transient(format!("PagerDuty did not answer within {}s", t.as_secs()))
                }
            })?;
        let said = crate::secret::scrub_values(
            &crate::text::truncate(&answer.body, 200),
            [("PAGERDUTY_ROUTING_KEY", self.routing_key.expose())].into_iter(),
        );
        match answer.status {
            200..=299 => Ok(()),
            429 => Err(CallError::RateLimited {
                retry_after: answer.retry_after,
            }),
            500..=599 => Err(CallError::Transient(format!(
                "PagerDuty answered {}: {said}",
                answer.status
            ))),
            status => Err(CallError::Permanent(format!(
                "PagerDuty refused the change event ({status}): {said}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_name_a_schedule_or_a_level_of_a_policy_and_anything_else_is_explained() {
        assert_eq!(
            OnCallSource::parse("pagerduty:schedule:PABC123"),
            Some(Ok(OnCallSource::Schedule("PABC123".into())))
        );
        assert_eq!(
            OnCallSource::parse("pagerduty:escalation_policy:PESC1"),
            Some(Ok(OnCallSource::EscalationLevel {
                policy: "PESC1".into(),
                level: 1
            }))
        );
        assert_eq!(
            OnCallSource::parse("pagerduty:escalation_policy:PESC1:2"),
            Some(Ok(OnCallSource::EscalationLevel {
                policy: "PESC1".into(),
                level: 2
            }))
        );
        assert_eq!(OnCallSource::parse("U0BOB"), None);
        for bad in [
            "pagerduty:schedule:",
            "pagerduty:schedule:pabc",
            "pagerduty:rota:PABC",
            "pagerduty:escalation_policy:PESC1:0",
            "pagerduty:escalation_policy:PESC1:two",
        ] {
            assert!(matches!(OnCallSource::parse(bad), Some(Err(_))), "{bad}");
        }
    }
}
