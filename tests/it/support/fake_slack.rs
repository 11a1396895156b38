//! A fake Slack Web API on loopback that records every call.
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub authorization: Option<String>,
    /// The `ts` the fake answered with, for posts.
    pub ts: Option<String>,
}

#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub api_url: String,
    recorder: Arc<Mutex<Recorder>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let app = Router::new()
            .route("/api/{method}", post(handle))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeSlack {
            api_url: format!("http://{addr}/api/"),
            recorder,
            server: Arc::new(server),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.recorder.lock().unwrap().calls.clone()
    }
}

async fn handle(
    State(recorder): State<Arc<Mutex<Recorder>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        serde_json::to_value(serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default()).unwrap()
    });
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut recorder = recorder.lock().unwrap();
    recorder.next_ts += 1;
    let ts = format!("1790000000.{:06}", recorder.next_ts);
    let channel = body["channel"].clone();
    let message = json!({"type": "message", "ts": ts, "text": body["text"], "blocks": body.get("blocks").cloned().unwrap_or(json!([]))});
    let (answer, posted_ts) = match method.as_str() {
        "chat.postMessage" => (
            json!({"ok": true, "channel": channel, "ts": ts, "message": message}),
            Some(ts.clone()),
        ),
        "chat.update" => (
            json!({"ok": true, "channel": channel, "ts": body["ts"], "message": {"text": body["text"]}}),
            None,
        ),
        "chat.postEphemeral" => (json!({"ok": true, "message_ts": ts}), None),
        _ => (json!({"ok": false, "error": "unknown_method"}), None),
    };
    recorder.calls.push(Call {
        method,
        body,
        authorization,
        ts: posted_ts,
    });
    axum::Json(answer)
}
