//! A fake Atlassian Statuspage (and webhook receiver) on loopback that records every call.
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub const PAGE_ID: &str = "page42";
pub const API_KEY: &str = "statuspage-key-7e1c";
pub const WEBHOOK_SECRET: &str = "webhook-secret-55aa";

#[derive(Debug, Clone)]
pub struct PageCall {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub signature: Option<String>,
    pub signature_v1: Option<String>,
    pub timestamp: Option<String>,
    pub body: Value,
    pub raw: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
pub enum PageOutage {
    RateLimited(u64),
    ServerError,
    /// 422: the page refuses the request for good.
    Refused,
    /// 401 whose body echoes the credential it was sent, as some proxies and upstreams do.
    EchoesCredential,
    /// The incident is created, but the answer is lost on the way back (a 502 from a proxy).
    CreatedAnswerLost,
}

#[derive(Default)]
struct Recorder {
    calls: Vec<PageCall>,
    refused: Vec<u16>,
    outages: VecDeque<PageOutage>,
    incidents: u32,
    /// Incidents as the page holds them: (id, body as created, resolved).
    open: Vec<(String, Value, bool)>,
    /// `GET` lookups, apart from the changes in `calls`.
    lookups: u32,
}

#[derive(Clone)]
pub struct FakeStatusPage {
    pub base: String,
    recorder: Arc<Mutex<Recorder>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeStatusPage {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl FakeStatusPage {
    pub async fn start() -> FakeStatusPage {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let app = Router::new()
            .route("/v1/pages/{page}/incidents", post(record))
            .route("/v1/pages/{page}/incidents/unresolved", get(unresolved))
            .route("/v1/pages/{page}/incidents/{incident}", get(one).patch(record))
            .route("/hook", post(record))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeStatusPage {
            base,
            recorder,
            server: Arc::new(server),
        }
    }

    pub fn atlassian(&self) -> rollbot::statuspage::Provider {
        rollbot::statuspage::Provider::Atlassian {
            api_url: format!("{}/v1", self.base),
            page_id: PAGE_ID.into(),
            api_key: rollbot::slack::signature::Secret::new(API_KEY),
        }
    }

    pub fn webhook(&self) -> rollbot::statuspage::Provider {
        rollbot::statuspage::Provider::Webhook {
            url: format!("{}/hook", self.base),
            secret: rollbot::slack::signature::Secret::new(WEBHOOK_SECRET),
        }
    }

    pub fn calls(&self) -> Vec<PageCall> {
        self.recorder.lock().unwrap().calls.clone()
    }

    pub fn refused(&self) -> Vec<u16> {
        self.recorder.lock().unwrap().refused.clone()
    }

    /// Incidents the page holds, resolved or not.
    pub fn incidents(&self) -> usize {
        self.recorder.lock().unwrap().open.len()
    }

    pub fn lookups(&self) -> u32 {
        self.recorder.lock().unwrap().lookups
    }

    /// An incident someone opened on the page by hand (the incident commander): its id.
    pub fn opened_by_hand(&self, name: &str, components: &[&str], metadata: Value) -> String {
        let mut recorder = self.recorder.lock().unwrap();
        recorder.incidents += 1;
        let id = format!("inc{}", recorder.incidents);
        let created = json!({"incident": {"name": name, "status": "investigating", "component_ids": components, "metadata": metadata}});
        recorder.open.push((id.clone(), created, false));
        id
    }

    /// The incident commander resolved `id` on the page by hand.
    pub fn resolved_by_hand(&self, id: &str) {
        let mut recorder = self.recorder.lock().unwrap();
        if let Some(incident) = recorder.open.iter_mut().find(|(held, _, _)| held == id) {
            incident.1["incident"]["status"] = json!("resolved");
            incident.2 = true;
        }
    }

    pub fn fail_next(&self, outages: &[PageOutage]) {
        self.recorder.lock().unwrap().outages.extend(outages.iter().copied());
    }
}

async fn record(
    State(recorder): State<Arc<Mutex<Recorder>>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut recorder = recorder.lock().unwrap();
    let sent_credential = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let creating = method == Method::POST && uri.path().ends_with("/incidents");
    if let Some(outage) = recorder.outages.pop_front() {
        return match outage {
            PageOutage::CreatedAnswerLost if creating => {
                recorder.incidents += 1;
                let id = format!("inc{}", recorder.incidents);
                let created = serde_json::from_slice(&body).unwrap_or(Value::Null);
                recorder.open.push((id, created, false));
                recorder.refused.push(502);
                StatusCode::BAD_GATEWAY.into_response()
            }
            PageOutage::CreatedAnswerLost => StatusCode::BAD_GATEWAY.into_response(),
            PageOutage::RateLimited(seconds) => {
                recorder.refused.push(429);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", seconds.to_string())],
                    "slow down",
                )
                    .into_response()
            }
            PageOutage::ServerError => {
                recorder.refused.push(500);
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            PageOutage::EchoesCredential => {
                recorder.refused.push(401);
                (
                    StatusCode::UNAUTHORIZED,
                    format!("invalid credential: {sent_credential}"),
                )
                    .into_response()
            }
            PageOutage::Refused => {
                recorder.refused.push(422);
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({"error": "component not found"})),
                )
                    .into_response()
            }
        };
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    recorder.calls.push(PageCall {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        signature: header("x-rollbot-signature"),
        signature_v1: header("x-rollbot-signature-v1"),
        timestamp: header("x-rollbot-timestamp"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = match uri.path().rsplit('/').next() {
        Some("incidents") => {
            recorder.incidents += 1;
            let id = format!("inc{}", recorder.incidents);
            recorder.open.push((id.clone(), sent, false));
            id
        }
        Some(existing) => {
            let resolved = sent["incident"]["status"] == "resolved";
            if let Some(incident) = recorder.open.iter_mut().find(|(id, _, _)| id == existing) {
                incident.2 |= resolved;
                if !sent["incident"]["metadata"].is_null() {
                    incident.1["incident"]["metadata"] = sent["incident"]["metadata"].clone();
                }
            }
            existing.to_owned()
        }
        None => String::new(),
    };
    axum::Json(json!({"id": id, "status": "ok"})).into_response()
}

/// `GET /v1/pages/{page}/incidents/{incident}`, as Statuspage answers it: the incident, or 404.
async fn one(
    State(recorder): State<Arc<Mutex<Recorder>>>,
    axum::extract::Path((_, wanted)): axum::extract::Path<(String, String)>,
) -> Response {
    let mut recorder = recorder.lock().unwrap();
    recorder.lookups += 1;
    match recorder.open.iter().find(|(id, _, _)| *id == wanted) {
        Some((id, created, resolved)) => axum::Json(json!({
            "id": id,
            "name": created["incident"]["name"],
            "status": if *resolved { json!("resolved") } else { created["incident"]["status"].clone() },
            "metadata": created["incident"]["metadata"],
            "shortlink": format!("https://stspg.io/{id}"),
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"error": "Not found"}))).into_response(),
    }
}

/// `GET /v1/pages/{page}/incidents/unresolved`, as Statuspage answers it: an array of incidents.
async fn unresolved(State(recorder): State<Arc<Mutex<Recorder>>>) -> Response {
    let mut recorder = recorder.lock().unwrap();
    recorder.lookups += 1;
    // Newest first, each with its components as objects, as Statuspage lists them.
    let open: Vec<Value> = recorder
        .open
        .iter()
        .rev()
        .filter(|(_, _, resolved)| !resolved)
        .map(|(id, created, _)| {
            let components: Vec<Value> = created["incident"]["component_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!({"id": c, "name": c, "status": "partial_outage"}))
                .collect();
            json!({
                "id": id,
                "name": created["incident"]["name"],
                "status": created["incident"]["status"],
                "metadata": created["incident"]["metadata"],
                "components": components,
                "shortlink": format!("https://stspg.io/{id}"),
            })
        })
        .collect();
    axum::Json(Value::Array(open)).into_response()
}
