//! The HTTP surface: Slack's signed webhooks (`commands`, `interactions`), Alertmanager's hook
//! (`alertmanager`), the read-only API (`api`) and the probes. Handlers verify first, parse
//! second, and answer within Slack's three seconds without calling Slack.
use crate::domain::{Action, Actor, Refusal, RollbackId};
use crate::engine::Engine;
use crate::grammar::{self, Command, RequestArgs, SUBCOMMANDS};
use crate::slack::client::SlackApi;
use crate::slack::directory::Directory;
use crate::slack::inbound::{self, ButtonClick, Interaction, SlashCommand};
use crate::slack::messages::{self, Message};
use crate::slack::signature::SignatureVerifier;
use crate::slack::wire::{Button, Form};
use crate::store::Effect;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tracing::Instrument;

mod alertmanager;
mod api;
mod checklists;
mod commands;
mod interactions;
mod request_form;
pub mod server;
pub mod socket_mode;

use alertmanager::*;
use api::*;
use checklists::*;
use commands::*;
use interactions::*;
use request_form::*;

/// Largest request body accepted. Slack's interaction payloads carry the whole message, so
/// this leaves room for a full card, and nothing more.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The bearer tokens callers other than Slack present.
#[derive(Default)]
pub struct BearerTokens {
    /// For `/api/v1`; without one the API is off.
    pub api: Option<crate::slack::signature::Secret>,
    /// For `/hooks/alertmanager` (Alertmanager's `http_config.authorization`).
    pub alertmanager: Option<crate::slack::signature::Secret>,
}

pub struct HttpState {
    pub engine: Arc<Engine>,
    pub verifier: SignatureVerifier,
    pub directory: Arc<Directory>,
    /// For the calls that cannot wait in the outbox (opening a modal).
    pub slack: Arc<SlackApi>,
    /// Bearer tokens for `/api/v1` and `/hooks/alertmanager`.
    pub tokens: BearerTokens,
    pub live: Arc<crate::metrics::Live>,
    /// The store's figures for `/metrics`, read at most every few seconds.
    pub figures: crate::metrics::FiguresCache,
}

/// Counts every request by its route and outcome, and times Slack's.
async fn measured(
    State(state): State<Arc<HttpState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .live
        .observe(&route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/slack/commands", post(slash_command))
        .route("/slack/interactions", post(interaction))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/hooks/alertmanager", post(alertmanager_hook))
        .route("/api/v1/rollbacks", get(api_list))
        .route("/api/v1/rollbacks/{id}", get(api_rollback))
        .route("/api/v1/rollbacks/{id}/postmortem.md", get(api_postmortem))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), measured))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    match state.engine.ready().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "not ready: the store is unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let engine = &state.engine;
    match state.figures.get(|| engine.figures()).await {
        Ok((figures, age)) => (
            [("content-type", "text/plain; version=0.0.4")],
            crate::metrics::render(&figures, age) + &state.live.render(),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "metrics unavailable: the store is unreachable"
            );
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
        }
    }
}

/// Checks `Authorization: Bearer <token>` in constant time; `Err` is the 401 to send.
fn bearer(headers: &HeaderMap, token: &crate::slack::signature::Secret) -> Result<(), Response> {
    use subtle::ConstantTimeEq;
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => Ok(()),
        _ => Err((StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer")], "").into_response()),
    }
}

/// A request Slack signed: its body, and the delivery it names. Handlers take this extractor
/// instead of the raw body, so nothing reads a byte that Slack did not sign (bors's webhook
/// extractor works the same way). A request that is not signed is answered 401 before any
/// handler runs; Slack's unsigned certificate check (`ssl_check=1`) gets its 200.
pub(super) struct SignedBySlack {
    pub body: Bytes,
    /// The same signature over the same timestamp is the same request delivered again (a
    /// retrying proxy, a resent body): its digest lets the store answer it as the first.
    pub delivery: Delivery,
}

impl axum::extract::FromRequest<Arc<HttpState>> for SignedBySlack {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &Arc<HttpState>) -> Result<Self, Response> {
        let route = request.uri().path().to_owned();
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signature = header("x-slack-signature");
        match state.verifier.verify(
            header("x-slack-request-timestamp"),
            signature,
            &body,
            state.engine.clock.now(),
        ) {
            Ok(()) => Ok(SignedBySlack {
                delivery: Delivery::of(signature.unwrap_or_default()),
                body,
            }),
            Err(_) if route == "/slack/commands" && is_ssl_check(&body) => Err(StatusCode::OK.into_response()),
            Err(reason) => {
                tracing::warn!(route, ?reason, "refused a request that is not signed by Slack");
                Err(StatusCode::UNAUTHORIZED.into_response())
            }
        }
    }
}

/// A signed delivery's name: the digest of its signature (which covers its timestamp).
pub(super) struct Delivery(pub String);

impl Delivery {
    fn of(signature: &str) -> Delivery {
        Delivery::named("slack", signature.as_bytes())
    }

    /// A Socket Mode envelope's payload: Slack gives every invocation a trigger of its own, so
    /// the same payload again is the same invocation delivered again.
    fn of_envelope(payload: &serde_json::Value) -> Delivery {
        Delivery::named("socket", payload.to_string().as_bytes())
    }

    fn named(transport: &str, what: &[u8]) -> Delivery {
        use sha2::Digest;
        Delivery(format!(
            "{transport}:{}",
            hex::encode(&sha2::Sha256::digest(what)[..16])
        ))
    }
}

/// Slack checks the certificate with an unsigned `ssl_check=1` form; it only needs a 200.
fn is_ssl_check(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|pairs| pairs.iter().any(|(k, v)| k == "ssl_check" && v == "1"))
        .unwrap_or(false)
}

fn ephemeral(message: Message) -> Response {
    axum::Json(serde_json::json!({"response_type": "ephemeral", "text": message.text})).into_response()
}

/// A short id that ties what a user is told to the full error in the log.
fn new_reference() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// The person who clicked, acting in the channel of the message they clicked in.
async fn clicker(state: &HttpState, click: &ButtonClick) -> Actor {
    state
        .directory
        .actor(&click.user_id, click.team_id.as_deref())
        .await
        .in_channel(&click.channel_id)
}
