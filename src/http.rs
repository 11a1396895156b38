//! The HTTP surface: Slack's signed webhooks and the health probes. Handlers verify first,
//! parse second, and answer within Slack's three seconds without calling Slack.
use crate::domain::{Action, RollbackId};
use crate::engine::Engine;
use crate::grammar::{self, Command, SUBCOMMANDS};
use crate::slack::inbound::{self, Interaction, SlashCommand};
use crate::slack::messages::{self, Message};
use crate::slack::signature::SignatureVerifier;
use crate::store::Effect;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tracing::Instrument;

/// Largest request body accepted. Slack's interaction payloads carry the whole message, so
/// this leaves room for a full card, and nothing more.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub struct HttpState {
    pub engine: Arc<Engine>,
    pub verifier: SignatureVerifier,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/slack/commands", post(slash_command))
        .route("/slack/interactions", post(interaction))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(state))
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    match state.engine.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "not ready: the store is unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
        }
    }
}

fn verified(state: &HttpState, headers: &HeaderMap, body: &[u8], route: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = state.engine.clock.now();
    match state.verifier.verify(
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        now,
    ) {
        Ok(()) => true,
        Err(reason) => {
            tracing::warn!(route, ?reason, "refused a request that is not signed by Slack");
            false
        }
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

async fn slash_command(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !verified(&state, &headers, &body, "commands") {
        if is_ssl_check(&body) {
            return StatusCode::OK.into_response();
        }
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let command = match inbound::parse_slash_command(&body) {
        Ok(command) => command,
        Err(e) => {
            return ephemeral(Message::plain(format!(
                "rollbot could not read this command: {e}. Nothing was recorded."
            )));
        }
    };
    let span = tracing::info_span!("slash_command", user = %command.user_id, channel = %command.channel_id);
    match handle_command(&state.engine, &command).instrument(span).await {
        Ok(message) => ephemeral(message),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "handling a /rollback command failed"
            );
            ephemeral(messages::internal_error(&reference))
        }
    }
}

async fn handle_command(engine: &Engine, command: &SlashCommand) -> anyhow::Result<Message> {
    let actor = engine.actor(&command.user_id, command.team_id.as_deref());
    let parsed = match grammar::parse(&command.text) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(messages::parse_error(&e)),
    };
    let with_subcommand_hint = |refusal: crate::domain::Refusal| match refusal {
        crate::domain::Refusal::UnknownService {
            service,
            suggestion: None,
            known,
        } => crate::domain::Refusal::UnknownService {
            suggestion: crate::domain::plan::nearest(&service, SUBCOMMANDS),
            service,
            known,
        },
        other => other,
    };
    Ok(match parsed {
        Command::Help => messages::help(),
        Command::NotYetAvailable(name) => messages::not_yet_available(name),
        Command::Plan(args) => match engine.plan(&args) {
            Ok(plan) => messages::plan_preview(&plan),
            Err(refusal) => messages::refusal(&with_subcommand_hint(refusal)),
        },
        Command::Request(args) if args.severity.is_none() => messages::severity_missing(&args),
        Command::Request(args) => match engine.request(&actor, &command.channel_id, &args).await? {
            Ok(rollback) => messages::request_acknowledged(&rollback, &engine.config.roles),
            Err(refusal) => messages::refusal(&with_subcommand_hint(refusal)),
        },
        Command::Status(Some(id)) => match engine.store.load(id).await? {
            Some(rollback) => messages::status(&rollback),
            None => messages::not_found(id),
        },
        Command::Status(None) => match engine.store.recent(Some(&command.channel_id), 1).await?.first() {
            Some(rollback) => messages::status(rollback),
            None => messages::list(&[]),
        },
        Command::List => messages::list(&engine.store.recent(Some(&command.channel_id), 10).await?),
        Command::Cancel(id) => match engine.act(id, &Action::Cancel, &actor).await? {
            Ok(_) => messages::cancelled(id),
            Err(refusal) => messages::refusal(&refusal),
        },
    })
}

async fn interaction(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !verified(&state, &headers, &body, "interactions") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let click = match inbound::parse_interaction(&body) {
        Ok(Interaction::Button(click)) => click,
        Ok(Interaction::Ignored { kind }) => {
            tracing::debug!(kind, "ignored an interaction rollbot does not handle");
            return StatusCode::OK.into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused an interaction payload");
            return (
                StatusCode::BAD_REQUEST,
                format!("rollbot could not read this interaction: {e}"),
            )
                .into_response();
        }
    };
    let span = tracing::info_span!("click", user = %click.user_id, action = %click.action_id, value = %click.value);
    handle_click(&state.engine, click).instrument(span).await
}

async fn handle_click(engine: &Engine, click: inbound::ButtonClick) -> Response {
    let answer = |text: String| Effect::Ephemeral {
        channel: crate::domain::ChannelId(click.channel_id.clone()),
        user: crate::domain::UserId(click.user_id.clone()),
        text,
    };
    let action = match click.action_id.as_str() {
        "approve" => Some(Action::Approve),
        "reject" => Some(Action::Reject { reason: None }),
        "cancel" => Some(Action::Cancel),
        _ => None,
    };
    let outcome = match (action, click.value.parse::<RollbackId>()) {
        (Some(action), Ok(id)) => {
            let actor = engine.actor(&click.user_id, click.team_id.as_deref());
            match engine.act(id, &action, &actor).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(refusal)) => engine.tell(&[answer(messages::refusal(&refusal).text)]).await,
                Err(e) => Err(e),
            }
        }
        _ => engine.tell(&[answer(messages::unknown_button().text)]).await,
    };
    match outcome {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(reference, error = format!("{e:#}"), "handling a click failed");
            // The click may not be recorded; try to say so, and let Slack show the failure too.
            let _ = engine.tell(&[answer(messages::click_failed(&reference).text)]).await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
