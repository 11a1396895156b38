//! A fake Atlassian Statuspage (and webhook receiver) on loopback that records every call.
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
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
}

#[derive(Default)]
struct Recorder {
    calls: Vec<PageCall>,
    refused: Vec<u16>,
    outages: VecDeque<PageOutage>,
    incidents: u32,
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
            .route("/v1/pages/{page}/incidents/{incident}", patch(record))
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
    if let Some(outage) = recorder.outages.pop_front() {
        return match outage {
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
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    let id = match uri.path().rsplit('/').next() {
        Some("incidents") => {
            recorder.incidents += 1;
            format!("inc{}", recorder.incidents)
        }
        Some(existing) => existing.to_owned(),
        None => String::new(),
    };
    axum::Json(json!({"id": id, "status": "ok"})).into_response()
}
