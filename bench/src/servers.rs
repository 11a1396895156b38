//! What runs beside rollbot in a benchmark: the reference server (the machine's lower bound),
//! a fake Slack Web API, and the helper a runbook step runs to say it started.
use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use rollbot::slack::signature::{Secret, SignatureVerifier};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The reference: the same crates rollbot answers with (axum, rollbot's HMAC check), a fixed
/// JSON answer and no state. It prints its address and serves until killed.
pub async fn reference_server(secret: String) -> Result<()> {
    let verifier = Arc::new(SignatureVerifier::new(vec![Secret::new(secret)]));
    let app = Router::new().route(
        "/slack/commands",
        post(move |headers: HeaderMap, body: Bytes| {
            let verifier = verifier.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                match verifier.verify(
                    header("x-slack-request-timestamp"),
                    header("x-slack-signature"),
                    &body,
                    chrono::Utc::now(),
                ) {
                    Ok(()) => axum::Json(json!({"response_type": "ephemeral", "text": "ok"})).into_response(),
                    Err(_) => StatusCode::UNAUTHORIZED.into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await.context("serving the reference")
}

/// One call Slack took.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: std::time::Instant,
    pub method: String,
    pub text: String,
    /// The card the call is about: the thread it posts in, the message it updates, or the
    /// message it posted at the top of the channel.
    pub card: String,
}

/// What the fake Slack saw: every call with when it came, and how many it refused with 429.
#[derive(Default)]
pub struct SlackLog {
    calls: std::sync::Mutex<Vec<Call>>,
    /// Slack's published limits, applied while `true` (the channel scenarios); other scenarios
    /// measure rollbot's own path and would only measure the model.
    pub limits_on: std::sync::atomic::AtomicBool,
    /// The same model of Slack's limits as the test suite's fake Slack.
    limits: std::sync::Mutex<rollbot::slack::limits::SlackLimits>,
    pub rate_limited: AtomicU64,
    /// Which calls were answered 429, and when.
    refused: std::sync::Mutex<Vec<(std::time::Instant, String)>>,
    /// Until then, every call is answered 503 (an outage); `None`: Slack is up.
    outage_until: std::sync::Mutex<Option<std::time::Instant>>,
    /// The outage starts at the post after this many posts (armed), for `outage_for`.
    outage_after_posts: std::sync::Mutex<Option<(usize, std::time::Duration)>>,
    pub unavailable: AtomicU64,
}

impl SlackLog {
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
        *self.limits.lock().unwrap() = Default::default();
        self.rate_limited.store(0, Ordering::Relaxed);
        self.refused.lock().unwrap().clear();
        self.unavailable.store(0, Ordering::Relaxed);
        *self.outage_until.lock().unwrap() = None;
        *self.outage_after_posts.lock().unwrap() = None;
    }

    /// The calls since the last `clear`.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls answered 429 since the last `clear`: when, which method.
    pub fn refused(&self) -> Vec<(std::time::Instant, String)> {
        self.refused.lock().unwrap().clone()
    }

    /// Once `posts` messages were posted, Slack is down for `length`: every call gets a 503.
    pub fn outage_after(&self, posts: usize, length: std::time::Duration) {
        *self.outage_after_posts.lock().unwrap() = Some((posts, length));
    }

    /// When the outage ends (`None` before it started).
    pub fn outage_ends(&self) -> Option<std::time::Instant> {
        *self.outage_until.lock().unwrap()
    }

    /// Whether Slack is down now, starting the armed outage when its time has come.
    fn down(&self) -> bool {
        let now = std::time::Instant::now();
        let mut until = self.outage_until.lock().unwrap();
        if until.is_none()
            && let Some((posts, length)) = *self.outage_after_posts.lock().unwrap()
            && self
                .calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.method == "chat.postMessage")
                .count()
                >= posts
        {
            *until = Some(now + length);
        }
        until.is_some_and(|until| now < until)
    }

    /// `Err(seconds)`: Slack would answer 429 with this `Retry-After`.
    fn admit(&self, method: &str, channel: &str) -> Result<(), u64> {
        if !self.limits_on.load(Ordering::Relaxed) {
            return Ok(());
        }
        let channel = Some(channel).filter(|c| !c.is_empty());
        self.limits.lock().unwrap().admit(method, channel, chrono::Utc::now())
    }
}

/// Answers every Web API call as Slack would, within Slack's limits when they are on (429 with
/// `Retry-After` past them), so rollbot's deliveries run their whole path.
pub async fn fake_slack() -> Result<(String, Arc<SlackLog>)> {
    let next_ts = Arc::new(AtomicU64::new(1));
    let log: Arc<SlackLog> = Arc::default();
    let seen = log.clone();
    let app = Router::new().route(
        "/api/{method}",
        post(move |Path(method): Path<String>, body: Bytes| {
            let next_ts = next_ts.clone();
            let log = seen.clone();
            async move {
                let body: Value = serde_json::from_slice(&body)
                    .or_else(|_| serde_urlencoded_like(&body))
                    .unwrap_or(Value::Null);
                let channel = body.get("channel").cloned().unwrap_or(Value::Null);
                if log.down() {
                    log.unavailable.fetch_add(1, Ordering::Relaxed);
                    return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response();
                }
                if let Err(retry_after) = log.admit(&method, channel.as_str().unwrap_or_default()) {
                    log.rate_limited.fetch_add(1, Ordering::Relaxed);
                    log.refused.lock().unwrap().push((std::time::Instant::now(), method.clone()));
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", retry_after.to_string())],
                        axum::Json(json!({"ok": false, "error": "ratelimited"})),
                    )
                        .into_response();
                }
                let text = body["text"].as_str().unwrap_or_default().to_owned();
                let ts = format!("1790000000.{:06}", next_ts.fetch_add(1, Ordering::Relaxed));
                let card = body["thread_ts"]
                    .as_str()
                    .or(body["ts"].as_str())
                    .unwrap_or(&ts)
                    .to_owned();
                log.calls.lock().unwrap().push(Call {
                    at: std::time::Instant::now(),
                    method: method.clone(),
                    text,
                    card,
                });
                axum::Json(match method.as_str() {
                    "chat.postEphemeral" => json!({"ok": true, "message_ts": ts}),
                    "chat.update" => json!({"ok": true, "channel": channel, "ts": body["ts"], "message": {"text": ""}}),
                    "views.open" => json!({"ok": true, "view": {"id": "V0BENCH"}}),
                    _ => json!({"ok": true, "channel": channel, "ts": ts, "message": {"type": "message", "ts": ts, "text": ""}}),
                })
                .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, log))
}

/// Slack's client sometimes posts forms; the fake only needs `channel` and `ts` from them.
fn serde_urlencoded_like(body: &[u8]) -> Result<Value, ()> {
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    let mut fields = serde_json::Map::new();
    for pair in text.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            fields.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    }
    Ok(Value::Object(fields))
}

/// Run by the benchmark's runbook step: tells the benchmark (UDP on loopback) that the step's
/// process for `target` has started.
pub fn report_step_started(port: &str, target: &str) -> Result<()> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.send_to(target.as_bytes(), format!("127.0.0.1:{port}"))?;
    Ok(())
}
