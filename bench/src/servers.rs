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

/// Answers every Web API call as Slack would when all goes well, so rollbot's deliveries run
/// their whole path.
pub async fn fake_slack() -> Result<String> {
    let next_ts = Arc::new(AtomicU64::new(1));
    let app = Router::new().route(
        "/api/{method}",
        post(move |Path(method): Path<String>, body: Bytes| {
            let next_ts = next_ts.clone();
            async move {
                let body: Value = serde_json::from_slice(&body)
                    .or_else(|_| serde_urlencoded_like(&body))
                    .unwrap_or(Value::Null);
                let ts = format!("1790000000.{:06}", next_ts.fetch_add(1, Ordering::Relaxed));
                let channel = body.get("channel").cloned().unwrap_or(Value::Null);
                axum::Json(match method.as_str() {
                    "chat.postEphemeral" => json!({"ok": true, "message_ts": ts}),
                    "chat.update" => json!({"ok": true, "channel": channel, "ts": body["ts"], "message": {"text": ""}}),
                    "views.open" => json!({"ok": true, "view": {"id": "V0BENCH"}}),
                    _ => json!({"ok": true, "channel": channel, "ts": ts, "message": {"type": "message", "ts": ts, "text": ""}}),
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
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
