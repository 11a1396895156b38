//! Keeping the public status page honest: Atlassian Statuspage (incidents and component
//! statuses, `Authorization: OAuth <key>`), or a generic webhook whose JSON body is signed with
//! HMAC-SHA256. Updates go through the outbox in their own lane, so a slow page never holds up
//! Slack, and a failing one never blocks the rollback.
use crate::outbound::CallError;
use crate::secret::Secret;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

pub use crate::domain::effects::{PageStatus, PageUpdate};

#[derive(Debug, Clone)]
pub enum Provider {
    Atlassian {
        api_url: String,
        page_id: String,
        api_key: Secret,
    },
    Webhook {
        url: String,
        secret: Secret,
    },
}

/// One update as sent: the incident's name and body, and the components it touches.
#[derive(Debug, Clone, PartialEq)]
pub struct PageMessage {
    pub update: PageUpdate,
    pub rollback: String,
    pub service: String,
    pub name: String,
    pub body: String,
    pub components: Vec<String>,
    /// Component status while the rollback is under way, e.g. `partial_outage`.
    pub impacted_status: String,
    /// Opening, carry on an unresolved incident that already names one of `components`.
    pub attach_to_open: bool,
    /// The incident the request named (`incident <id>`): opening carries on this one.
    pub named_incident: Option<String>,
}

/// An incident as the page holds it, for the card's preflight before approval.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldIncident {
    pub name: String,
    /// Statuspage's word: `investigating`, `identified`, `monitoring`, `resolved`, `postmortem`…
    pub status: String,
    metadata: serde_json::Value,
}

impl HeldIncident {
    /// Resolved incidents reopen, in public, when an update carries them on.
    pub fn resolved(&self) -> bool {
        matches!(self.status.as_str(), "resolved" | "postmortem" | "completed")
    }
}

/// An incident the page already holds that an opening update goes to.
enum Existing {
    /// The one rollbot opened for this rollback (a create whose answer was lost).
    Ours(String),
    /// One somebody else opened (named in the request, or unresolved for the same components):
    /// updated, and tagged with the rollback (its other metadata kept).
    Attached { id: String, metadata: serde_json::Value },
}

pub struct StatusPage {
    http: crate::outbound::HttpClient,
    provider: Provider,
}

/// How long one call to the page may take before it counts as a transient failure.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn classify_status(status: http::StatusCode, retry_after: Option<std::time::Duration>, body: &str) -> CallError {
    let excerpt: String = body.chars().take(200).collect();
    if status.as_u16() == 429 {
        CallError::RateLimited { retry_after }
    } else if status.is_server_error() {
        CallError::Transient(format!("HTTP {status}: {excerpt}"))
    } else {
        CallError::Permanent(format!("HTTP {status}: {excerpt}"))
    }
}

/// The timestamped signature of a webhook body sent at `timestamp` (Unix seconds):
/// `v1=` and the hex HMAC-SHA256 of `v1:<timestamp>:<body>`, as Slack signs its own requests.
/// Receivers recompute it and refuse a timestamp more than five minutes old, so a captured
/// delivery cannot be replayed later.
pub fn signature_v1(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("v1:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body's signature without a timestamp (`sha256=`), kept for receivers written before
/// `signature_v1`; it cannot tell a replay from the original.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl StatusPage {
    pub fn new(provider: Provider) -> anyhow::Result<Self> {
        Ok(StatusPage {
            http: crate::outbound::HttpClient::new()?,
            provider,
        })
    }

    /// Whether the page takes the key, by reading its unresolved incidents (`rollbot doctor`);
    /// `None` for a webhook, which cannot be asked without posting.
    pub async fn key_works(&self) -> Result<Option<String>, CallError> {
        let Some((page_id, incidents)) = self.unresolved_incidents().await? else {
            return Ok(None);
        };
        Ok(Some(format!(
            "page {page_id}, {} unresolved incident(s)",
            incidents.len()
        )))
    }

    /// Whether the page can be asked about its incidents (Atlassian; a webhook cannot).
    pub fn can_look_up(&self) -> bool {
        matches!(self.provider, Provider::Atlassian { .. })
    }

    /// The incident `id` as the page holds it, resolved or not; `None` when the page has no such
    /// incident, and for a webhook, which cannot be asked.
    pub async fn incident(&self, id: &str) -> Result<Option<HeldIncident>, CallError> {
        self.incident_unscrubbed(id).await.map_err(|e| self.scrubbed(e))
    }

    async fn incident_unscrubbed(&self, id: &str) -> Result<Option<HeldIncident>, CallError> {
        let Provider::Atlassian {
            api_url,
            page_id,
            api_key,
        } = &self.provider
        else {
            return Ok(None);
        };
        // The id came from a person: only what `grammar::incident_id` lets through reaches the URL.
        let url = format!("{}/pages/{page_id}/incidents/{id}", api_url.trim_end_matches('/'));
        let headers = vec![("authorization", format!("OAuth {}", api_key.expose()))];
        let (status, retry_after, text) = self.call(http::Method::GET, &url, headers, vec![]).await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(classify_status(status, retry_after, &text));
        }
        let incident: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| CallError::Transient(format!("the page's incident {id} is unreadable: {e}")))?;
        Ok(Some(HeldIncident {
            name: incident["name"].as_str().unwrap_or_default().to_owned(),
            status: incident["status"].as_str().unwrap_or_default().to_owned(),
            metadata: incident["metadata"].clone(),
        }))
    }

    /// The page's unresolved incidents, with the page's id (Atlassian only; `None` otherwise).
    async fn unresolved_incidents(&self) -> Result<Option<(&str, Vec<serde_json::Value>)>, CallError> {
        let Provider::Atlassian {
            api_url,
            page_id,
            api_key,
        } = &self.provider
        else {
            return Ok(None);
        };
        let url = format!("{}/pages/{page_id}/incidents/unresolved", api_url.trim_end_matches('/'));
        let headers = vec![("authorization", format!("OAuth {}", api_key.expose()))];
        let (status, retry_after, text) = self.call(http::Method::GET, &url, headers, vec![]).await?;
        if !status.is_success() {
            // A page (or a proxy) may echo the key back: it never reaches a message or the log.
            return Err(classify_status(
                status,
                retry_after,
                &text.replace(api_key.expose(), "[key]"),
            ));
        }
        let incidents = serde_json::from_str(&text)
            .map_err(|e| CallError::Transient(format!("the page's unresolved incidents are unreadable: {e}")))?;
        Ok(Some((page_id.as_str(), incidents)))
    }

    /// The incident an opening `message` goes to, if the page holds one (Atlassian only): the
    /// one the request named; else its own for this rollback, then, when attaching, the
    /// newest unresolved one that names one of the service's components.
    async fn existing_incident(&self, message: &PageMessage) -> Result<Option<Existing>, CallError> {
        if let Some(named) = &message.named_incident {
            if !matches!(self.provider, Provider::Atlassian { .. }) {
                return Ok(None);
            }
            return match self.incident_unscrubbed(named).await? {
                Some(held) => Ok(Some(Existing::Attached {
                    id: named.clone(),
                    metadata: held.metadata,
                })),
                None => Err(CallError::Permanent(format!(
                    "the page has no incident `{named}` (named in the request), so nothing was posted to it: update the page by hand"
                ))),
            };
        }
        let Some((_, incidents)) = self.unresolved_incidents().await? else {
            return Ok(None);
        };
        let id = |incident: &serde_json::Value| incident["id"].as_str().map(str::to_owned);
        if let Some(ours) = incidents
            .iter()
            .find(|i| i["metadata"]["rollbot"]["rollback"] == message.rollback.as_str())
            .and_then(id)
        {
            return Ok(Some(Existing::Ours(ours)));
        }
        if !message.attach_to_open {
            return Ok(None);
        }
        let names_ours = |incident: &&serde_json::Value| {
            incident["components"].as_array().is_some_and(|components| {
                components
                    .iter()
                    .filter_map(|c| c["id"].as_str())
                    .any(|c| message.components.iter().any(|ours| ours == c))
            })
        };
        // Statuspage lists the newest first; the newest is the one people are reading.
        Ok(incidents.iter().find(names_ours).and_then(|incident| {
            Some(Existing::Attached {
                id: id(incident)?,
                metadata: incident["metadata"].clone(),
            })
        }))
    }

    async fn call(
        &self,
        method: http::Method,
        url: &str,
        headers: Vec<(&str, String)>,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, Option<std::time::Duration>, String), CallError> {
        use crate::outbound::ExchangeError;
        let headers = headers.iter().map(|(k, v)| (*k, v.as_str()));
        let answer = self
            .http
            .exchange(method.as_str(), url, headers, Some(body), CALL_TIMEOUT)
            .await
            .map_err(|e| match e {
                ExchangeError::Build(e) => CallError::Permanent(format!("bad status page request: {e}")),
                ExchangeError::Unreachable(e) => CallError::Transient(format!("status page unreachable: {e}")),
                ExchangeError::TimedOut(t) => {
                    CallError::Transient(format!("status page did not answer within {}s", t.as_secs()))
                }
            })?;
        let status = http::StatusCode::from_u16(answer.status)
            .map_err(|e| CallError::Transient(format!("status page answered nonsense: {e}")))?;
        Ok((status, answer.retry_after, answer.body))
    }

    /// Sends one update. Returns the incident's id when a provider created one. An error's text
    /// (which reaches the thread, the timeline and the log) never carries the page's secret,
    /// even when the page or a proxy echoes it back.
    pub async fn send(&self, message: &PageMessage, incident: Option<&str>) -> Result<Option<String>, CallError> {
        self.send_unscrubbed(message, incident)
            .await
            .map_err(|e| self.scrubbed(e))
    }

    fn scrubbed(&self, error: CallError) -> CallError {
        let secret = match &self.provider {
            Provider::Atlassian { api_key, .. } => api_key,
            Provider::Webhook { secret, .. } => secret,
        };
        let scrub =
            |text: String| crate::secret::scrub_values(&text, [("STATUSPAGE_SECRET", secret.expose())].into_iter());
        match error {
            CallError::Transient(text) => CallError::Transient(scrub(text)),
            CallError::Permanent(text) => CallError::Permanent(scrub(text)),
            other => other,
        }
    }

    async fn send_unscrubbed(
        &self,
        message: &PageMessage,
        incident: Option<&str>,
    ) -> Result<Option<String>, CallError> {
        // A create whose answer was lost may have opened the incident: look before opening a
        // second public one, and carry on one somebody opened for the same components. An
        // incident already known (a fallback carries on the one of the run it follows) is
        // updated instead of opened.
        let mut attached = None;
        if message.update == PageUpdate::Opened && incident.is_none() {
            match self.existing_incident(message).await? {
                Some(Existing::Ours(opened)) => return Ok(Some(opened)),
                Some(Existing::Attached { id, metadata }) => {
                    tracing::info!(rollback = %message.rollback, incident = %id, "carrying on an incident the page already holds instead of opening another");
                    attached = Some((id, metadata));
                }
                None => {}
            }
        }
        let incident = incident.or(attached.as_ref().map(|(id, _)| id.as_str()));
        let component_status = if message.update == PageUpdate::Resolved {
            "operational"
        } else {
            message.impacted_status.as_str()
        };
        let components: serde_json::Map<String, serde_json::Value> = message
            .components
            .iter()
            .map(|c| (c.clone(), json!(component_status)))
            .collect();
        let (method, url, headers, body) = match (&self.provider, message.update, incident) {
            (
                Provider::Atlassian {
                    api_url,
                    page_id,
                    api_key,
                },
                PageUpdate::Opened,
                None,
            ) => (
                http::Method::POST,
                format!("{}/pages/{page_id}/incidents", api_url.trim_end_matches('/')),
                vec![("authorization", format!("OAuth {}", api_key.expose()))],
                json!({"incident": {
                    "name": message.name,
                    "status": message.update.status(),
                    "body": message.body,
                    "component_ids": message.components,
                    "components": components,
                    // What the lookup before a create finds it by.
                    "metadata": {"rollbot": {"rollback": message.rollback}},
                }}),
            ),
            (
                Provider::Atlassian {
                    api_url,
                    page_id,
                    api_key,
                },
                _,
                Some(incident),
            ) => (
                http::Method::PATCH,
                format!("{}/pages/{page_id}/incidents/{incident}", api_url.trim_end_matches('/')),
                vec![("authorization", format!("OAuth {}", api_key.expose()))],
                {
                    let mut incident = json!({
                        "status": message.update.status(),
                        "body": message.body,
                        "components": components,
                    });
                    if let Some((_, metadata)) = &attached {
                        // Tagged, so a retry of this opening finds it as this rollback's own.
                        let mut metadata = metadata.as_object().cloned().unwrap_or_default();
                        metadata.insert("rollbot".into(), json!({"rollback": message.rollback}));
                        incident["metadata"] = serde_json::Value::Object(metadata);
                    }
                    json!({ "incident": incident })
                },
            ),
            (Provider::Atlassian { .. }, _, None) => {
                return Err(CallError::Permanent(
                    "the page has no incident for this rollback to update".into(),
                ));
            }
            (Provider::Webhook { url, .. }, _, _) => (http::Method::POST, url.clone(), vec![], {
                let mut body = json!({
                    "rollback": message.rollback,
                    "service": message.service,
                    "status": message.update.status(),
                    "name": message.name,
                    "body": message.body,
                    "components": components,
                });
                // The receiver's own incident, when the request named one.
                if let Some(named) = &message.named_incident {
                    body["incident"] = json!(named);
                }
                body
            }),
        };
        let body = serde_json::to_vec(&body).expect("JSON");
        let mut headers = headers;
        if let Provider::Webhook { secret, .. } = &self.provider {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            headers.push(("x-rollbot-timestamp", timestamp.to_string()));
            headers.push((
                "x-rollbot-signature-v1",
                signature_v1(secret.expose(), timestamp, &body),
            ));
            headers.push(("x-rollbot-signature", signature(secret.expose(), &body)));
        }
        let (status, retry_after, text) = self.call(method, &url, headers, body).await?;
        if !status.is_success() {
            return Err(classify_status(status, retry_after, &text));
        }
        if let Some((id, _)) = attached {
            return Ok(Some(id));
        }
        if matches!(self.provider, Provider::Atlassian { .. }) && message.update == PageUpdate::Opened {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            return id
                .map(Some)
                .ok_or_else(|| CallError::Permanent("Statuspage created an incident but sent no id".into()));
        }
        Ok(None)
    }
}
