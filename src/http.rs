//! The HTTP surface: Slack's signed webhooks and the health probes. Handlers verify first,
//! parse second, and answer within Slack's three seconds without calling Slack.
use crate::domain::proposal::ProposalId;
use crate::domain::{Action, Actor, Refusal, RollbackId, decide};
use crate::engine::Engine;
use crate::grammar::{self, Command, RequestArgs, SUBCOMMANDS};
use crate::slack::client::SlackApi;
use crate::slack::directory::Directory;
use crate::slack::inbound::{self, ButtonClick, Interaction, SlashCommand};
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

pub fn router(state: HttpState) -> Router {
    let state = Arc::new(state);
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
    match state.engine.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "not ready: the store is unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let engine = &state.engine;
    match state.figures.get(|| engine.store.figures(engine.clock.now())).await {
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

fn api_authorized(state: &HttpState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = &state.tokens.api else {
        return Err((
            StatusCode::NOT_FOUND,
            "the API is off: set ROLLBOT_API_TOKEN to turn it on\n",
        )
            .into_response());
    };
    bearer(headers, token)
}

/// Alertmanager's webhook: each firing group becomes a proposal card (or updates its card).
/// Answered only once everything is recorded, so a 2xx means nothing is lost; alerts for
/// services rollbot does not know are logged, counted and answered 200 so Alertmanager does
/// not retry them forever.
async fn alertmanager_hook(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let engine = &state.engine;
    let (Some(settings), Some(token)) = (&engine.config.alertmanager, &state.tokens.alertmanager) else {
        return (
            StatusCode::NOT_FOUND,
            "the Alertmanager hook is off: configure [alertmanager] (docs/alerts.md)\n",
        )
            .into_response();
    };
    if let Err(refused) = bearer(&headers, token) {
        tracing::warn!("refused an Alertmanager notification without the right bearer token");
        return refused;
    }
    let notification = match crate::alertmanager::parse(&body) {
        Ok(notification) => notification,
        Err(problem) => {
            tracing::warn!(%problem, "refused an Alertmanager notification");
            return (StatusCode::BAD_REQUEST, format!("{problem}; nothing was recorded\n")).into_response();
        }
    };
    let sorted = crate::alertmanager::sort(&notification, settings, &engine.config.catalog);
    let span = tracing::info_span!("alertmanager", group = %notification.group_key, status = %notification.status, receiver = %notification.receiver);
    async {
        let unlabelled = sorted.unknown.iter().filter(|s| s.is_none()).count() as u64;
        let unknown: Vec<&str> = sorted.unknown.iter().flatten().map(String::as_str).collect();
        if !unknown.is_empty() || unlabelled > 0 {
            tracing::warn!(
                unknown_services = ?unknown,
                without_service_label = unlabelled,
                label = %settings.service_label,
                "alerts for services rollbot does not know; no proposal"
            );
        }
        state.live.alerts("unknown_service", unknown.len() as u64);
        state.live.alerts("no_service_label", unlabelled);
        let matched: usize = sorted.groups.iter().map(|g| g.alerts.len()).sum();
        state.live.alerts("matched", matched as u64);
        let mut proposals = vec![];
        for group in &sorted.groups {
            match engine.observe_alerts(group).await {
                Ok(Some(proposal)) => proposals.push(proposal.id.to_string()),
                Ok(None) => {}
                Err(e) => {
                    let reference = new_reference();
                    tracing::error!(reference, error = format!("{e:#}"), service = %group.service, "recording an alert group failed");
                    // Alertmanager retries a 5xx; what was recorded is updated, not doubled.
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal error, reference {reference}\n"),
                    )
                        .into_response();
                }
            }
        }
        axum::Json(serde_json::json!({ "proposals": proposals, "unknown_services": unknown })).into_response()
    }
    .instrument(span)
    .await
}

fn internal(e: anyhow::Error) -> Response {
    let reference = new_reference();
    tracing::error!(reference, error = format!("{e:#}"), "an API request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error, reference {reference}\n"),
    )
        .into_response()
}

async fn api_list(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Err(refused) = api_authorized(&state, &headers) {
        return refused;
    }
    match state.engine.store.recent(None, 100).await {
        Ok(rollbacks) => axum::Json(serde_json::json!({ "rollbacks": rollbacks })).into_response(),
        Err(e) => internal(e),
    }
}

/// The rollback an API path names, with its events; `Err` is the response to send instead.
async fn api_record(
    state: &HttpState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(crate::domain::Rollback, Vec<crate::domain::Recorded>), Response> {
    api_authorized(state, headers)?;
    let Ok(id) = id.parse::<RollbackId>() else {
        return Err((StatusCode::NOT_FOUND, "not a rollback id; ids look like RB-12\n").into_response());
    };
    match state.engine.store.load_with_history(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err((StatusCode::NOT_FOUND, format!("there is no rollback {id}\n")).into_response()),
        Err(e) => Err(internal(e)),
    }
}

async fn api_rollback(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match api_record(&state, &headers, &id).await {
        Ok((rollback, events)) => {
            axum::Json(serde_json::json!({ "rollback": rollback, "events": events })).into_response()
        }
        Err(response) => response,
    }
}

async fn api_postmortem(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match api_record(&state, &headers, &id).await {
        Ok((rollback, events)) => (
            [("content-type", "text/markdown; charset=utf-8")],
            crate::postmortem::draft(&rollback, &events),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// Checks Slack's signature. A signed request names its delivery: the same signature over the
/// same timestamp is the same request delivered again (a retrying proxy, a resent body), so
/// its digest lets the store answer it as the first. `None`: not signed by Slack.
fn verified(state: &HttpState, headers: &HeaderMap, body: &[u8], route: &str) -> Option<Delivery> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = state.engine.clock.now();
    let signature = header("x-slack-signature");
    match state
        .verifier
        .verify(header("x-slack-request-timestamp"), signature, body, now)
    {
        Ok(()) => Some(Delivery::of(signature.unwrap_or_default())),
        Err(reason) => {
            tracing::warn!(route, ?reason, "refused a request that is not signed by Slack");
            None
        }
    }
}

/// A signed delivery's name: the digest of its signature (which covers its timestamp).
struct Delivery(String);

impl Delivery {
    fn of(signature: &str) -> Delivery {
        use sha2::Digest;
        Delivery(format!(
            "slack:{}",
            hex::encode(&sha2::Sha256::digest(signature.as_bytes())[..16])
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

async fn slash_command(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(delivery) = verified(&state, &headers, &body, "commands") else {
        if is_ssl_check(&body) {
            return StatusCode::OK.into_response();
        }
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let command = match inbound::parse_slash_command(&body) {
        Ok(command) => command,
        Err(e) => {
            return ephemeral(Message::plain(format!(
                "rollbot could not read this command: {e}. Nothing was recorded."
            )));
        }
    };
    let span = tracing::info_span!("slash_command", user = %command.user_id, channel = %command.channel_id);
    match handle_command(&state, &command, &delivery).instrument(span).await {
        Ok(message) => ephemeral(message),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "handling a /rollback command failed"
            );
            if crate::store::CommitOutcomeUnknown::caused(&e) {
                ephemeral(messages::request_outcome_unknown(&reference))
            } else {
                ephemeral(messages::internal_error(&reference))
            }
        }
    }
}

/// The person who clicked, acting in the channel of the message they clicked in.
async fn clicker(state: &HttpState, click: &ButtonClick) -> Actor {
    state
        .directory
        .actor(&click.user_id, click.team_id.as_deref())
        .await
        .in_channel(&click.channel_id)
}

async fn handle_command(state: &HttpState, command: &SlashCommand, delivery: &Delivery) -> anyhow::Result<Message> {
    let engine = &state.engine;
    let actor = state
        .directory
        .actor(&command.user_id, command.team_id.as_deref())
        .await
        .in_channel(&command.channel_id);
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
        Command::Help if command.text.trim().is_empty() => {
            let args = RequestArgs::default();
            complete_in_form(state, command, &args, "service and severity")
                .await
                .unwrap_or_else(messages::help)
        }
        Command::Help => messages::help(),

        Command::Plan(args) => match engine.plan(&args) {
            Ok(plan) => messages::plan_preview(&plan),
            Err(refusal) => messages::refusal(&with_subcommand_hint(refusal)),
        },

        Command::Request(args) if args.severity.is_none() => {
            complete_in_form(state, command, &args, "severity missing")
                .await
                .unwrap_or_else(|| messages::severity_missing(&args))
        }
        Command::Request(args) => match engine
            .request(&actor, &command.channel_id, &args, Some(&delivery.0))
            .await?
        {
            Ok(rollback) => messages::request_acknowledged(&rollback, &engine.config.roles),
            Err(refusal @ Refusal::MissingParam { .. }) => complete_in_form(state, command, &args, "target missing")
                .await
                .unwrap_or_else(|| messages::refusal(&refusal)),
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
        Command::List { drills: false } => messages::list(&engine.store.recent(Some(&command.channel_id), 10).await?),
        Command::List { drills: true } => {
            messages::list(&engine.store.recent_drills(Some(&command.channel_id), 10).await?)
        }

        Command::Postmortem(id) => match engine.store.load_with_history(id).await? {
            Some((rollback, history)) => messages::postmortem(id, &crate::postmortem::draft(&rollback, &history)),
            None => messages::not_found(id),
        },
        Command::Cancel(id) => match engine.act(id, &Action::Cancel, &actor).await? {
            Ok(_) => messages::cancelled(id),
            Err(refusal) => messages::refusal(&refusal),
        },
    })
}

/// Opens the request form pre-filled with what was typed; `None` when no form could be opened
/// (the caller answers in text instead).
async fn complete_in_form(
    state: &HttpState,
    command: &SlashCommand,
    args: &RequestArgs,
    missing: &str,
) -> Option<Message> {
    let trigger = command.trigger_id.as_deref()?;
    let services: Vec<&str> = state
        .engine
        .config
        .catalog
        .services
        .keys()
        .map(String::as_str)
        .collect();
    let view = messages::request_modal(&services, args, &command.channel_id);
    match state.slack.open_view(trigger, &view).await {
        Ok(()) => Some(messages::form_opened(missing)),
        Err(error) => {
            tracing::warn!(%error, "could not open the request form; answering in text");
            None
        }
    }
}

async fn interaction(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(delivery) = verified(&state, &headers, &body, "interactions") else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match inbound::parse_interaction(&body) {
        Ok(Interaction::Button(click)) => {
            let span =
                tracing::info_span!("click", user = %click.user_id, action = %click.action_id, value = %click.value);
            handle_click(&state, click).instrument(span).await
        }
        Ok(Interaction::Submission(submission)) => {
            let span = tracing::info_span!("submission", user = %submission.user_id, view = %submission.callback_id);
            handle_submission(&state, submission, &delivery).instrument(span).await
        }
        Ok(Interaction::Ignored { kind }) => {
            tracing::debug!(kind, "ignored an interaction rollbot does not handle");
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused an interaction payload");
            (
                StatusCode::BAD_REQUEST,
                format!("rollbot could not read this interaction: {e}"),
            )
                .into_response()
        }
    }
}

/// What a button on the card asks for. Buttons at a paused step carry that step's index, so a
/// click on an out-of-date card cannot pass a later gate.
enum ButtonIntent {
    Act(Action),
    Continue {
        step: usize,
    },
    Abort {
        step: usize,
    },
    Retry {
        step: usize,
    },
    Skip {
        step: usize,
    },
    /// Open a modal first: the action needs typed input.
    AskRejectReason,
    AskConfirmation {
        step: usize,
    },
}

/// Reads a button: its action id, and its value `RB-<n>` or `RB-<n>@<step>`.
fn button_intent(action_id: &str, value: &str) -> Option<(RollbackId, ButtonIntent)> {
    let (id, step) = match value.split_once('@') {
        Some((id, step)) => (id.parse().ok()?, Some(step.parse::<usize>().ok()?)),
        None => (value.parse().ok()?, None),
    };
    let intent = match (action_id, step) {
        ("approve", None) => ButtonIntent::Act(Action::Approve),
        ("reject", None) => ButtonIntent::AskRejectReason,
        ("cancel", None) => ButtonIntent::Act(Action::Cancel),
        ("escalate", None) => ButtonIntent::Act(Action::EscalateNow),
        ("resolve", None) => ButtonIntent::Act(Action::MarkResolved),
        ("confirm", Some(step)) => ButtonIntent::AskConfirmation { step },
        ("continue", Some(step)) => ButtonIntent::Continue { step },
        ("abort", Some(step)) => ButtonIntent::Abort { step },
        ("retry", Some(step)) => ButtonIntent::Retry { step },
        ("skip", Some(step)) => ButtonIntent::Skip { step },
        _ => return None,
    };
    Some((id, intent))
}

async fn handle_click(state: &HttpState, click: inbound::ButtonClick) -> Response {
    let engine = &state.engine;
    let answer = |text: String| answer_to(&click, text);
    let outcome: anyhow::Result<()> = async {
        if let Some(answered) = proposal_click(state, &click).await {
            return answered;
        }
        let Some((id, intent)) = button_intent(&click.action_id, &click.value) else {
            return engine.tell(&[answer(messages::unknown_button().text)]).await;
        };
        let actor = clicker(state, &click).await;
        let action = match intent {
            ButtonIntent::Act(action) => action,
            ButtonIntent::Continue { step } => Action::Continue { index: step },
            ButtonIntent::Abort { step } => Action::Abort { index: step },
            ButtonIntent::Retry { step } => Action::RetryStep { index: step },
            ButtonIntent::Skip { step } => Action::SkipStep { index: step },
            // Before opening a modal, check what can be checked, so nobody types into a form
            // that will be refused anyway.
            modal => {
                let Some(rollback) = engine.store.load(id).await? else {
                    return engine.tell(&[answer(messages::not_found(id).text)]).await;
                };
                // Checked first: only a step that is really waiting for confirmation gets a form.
                let check = match modal {
                    ButtonIntent::AskConfirmation { step } => {
                        let phrase = rollback
                            .plan
                            .steps
                            .get(step)
                            .and_then(|s| s.confirm.clone())
                            .unwrap_or_default();
                        Action::Confirm { index: step, phrase }
                    }
                    _ => Action::Reject { reason: None },
                };
                if let Err(refusal) = decide(
                    Some(&rollback),
                    &check,
                    &actor,
                    &engine.config.policy,
                    engine.clock.now(),
                ) {
                    return engine.tell(&[answer(messages::refusal(&refusal).text)]).await;
                }
                let view = match check {
                    Action::Confirm { index, .. } => messages::confirm_modal(&rollback, index),
                    _ => messages::reject_modal(id),
                };
                return open_modal(state, &click, view).await;
            }
        };
        match engine.act(id, &action, &actor).await? {
            Ok(_) => Ok(()),
            Err(refusal) => engine.tell(&[answer(messages::refusal(&refusal).text)]).await,
        }
    }
    .await;
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

/// A private line to the person who clicked, where they clicked.
fn answer_to(click: &inbound::ButtonClick, text: String) -> Effect {
    Effect::Ephemeral {
        channel: crate::domain::ChannelId(click.channel_id.clone()),
        user: crate::domain::UserId(click.user_id.clone()),
        text,
    }
}

/// A click on a proposal's card (`None`: not one). Start files the clicking person's request;
/// a refusal is told to them privately.
async fn proposal_click(state: &HttpState, click: &inbound::ButtonClick) -> Option<anyhow::Result<()>> {
    let start = match click.action_id.as_str() {
        "start_proposal" => true,
        "dismiss_proposal" => false,
        _ => return None,
    };
    let engine = &state.engine;
    let answer = |text: String| answer_to(click, text);
    Some(
        async {
            let Ok(id) = click.value.parse::<ProposalId>() else {
                return engine.tell(&[answer(messages::unknown_button().text)]).await;
            };
            let actor = clicker(state, click).await;
            let refused = if start {
                match engine.start_proposal(id, &actor).await? {
                    Ok(rollback) => {
                        let text = messages::request_acknowledged(&rollback, &engine.config.roles).text;
                        return engine.tell(&[answer(text)]).await;
                    }
                    Err(refusal) => refusal,
                }
            } else {
                match engine.dismiss_proposal(id, &actor).await? {
                    Ok(_) => return Ok(()),
                    Err(refusal) => refusal,
                }
            };
            engine.tell(&[answer(messages::refusal(&refused).text)]).await
        }
        .await,
    )
}

/// Opens a modal at once: Slack's trigger is valid for three seconds only, so this call cannot
/// wait in the outbox. If it fails, the person is told to click again.
async fn open_modal(state: &HttpState, click: &inbound::ButtonClick, view: serde_json::Value) -> anyhow::Result<()> {
    let Some(trigger) = click.trigger_id.as_deref() else {
        anyhow::bail!("the click carried no trigger_id to open a modal with");
    };
    if let Err(error) = state.slack.open_view(trigger, &view).await {
        tracing::warn!(%error, "could not open a modal");
        let text = messages::modal_failed().text;
        state.engine.tell(&[answer_to(click, text)]).await?;
    }
    Ok(())
}

/// Answers a modal submission: close it, or show the error next to the field.
async fn handle_submission(state: &HttpState, submission: inbound::ViewSubmission, delivery: &Delivery) -> Response {
    let engine = &state.engine;
    let field_error = |block: &str, text: String| {
        axum::Json(serde_json::json!({"response_action": "errors", "errors": {block: text}})).into_response()
    };
    let actor = state
        .directory
        .actor(&submission.user_id, submission.team_id.as_deref())
        .await;
    let (action, id, block) = match submission.callback_id.as_str() {
        "reject" => {
            let Ok(id) = submission.private_metadata.parse::<RollbackId>() else {
                return field_error("reason", messages::unknown_button().text);
            };
            let reason = submission
                .values
                .get("reason")
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty());
            if reason.is_none() {
                return field_error("reason", messages::REASON_NEEDED.into());
            }
            (Action::Reject { reason }, id, "reason")
        }
        "confirm" => {
            let parsed = submission
                .private_metadata
                .split_once(':')
                .and_then(|(id, index)| Some((id.parse::<RollbackId>().ok()?, index.parse::<usize>().ok()?)));
            let Some((id, index)) = parsed else {
                return field_error("phrase", messages::unknown_button().text);
            };
            let phrase = submission.values.get("phrase").cloned().unwrap_or_default();
            (Action::Confirm { index, phrase }, id, "phrase")
        }
        "request" => return submit_request(state, &actor, &submission, delivery).await,
        other => {
            tracing::warn!(callback_id = other, "a submission of a view rollbot does not know");
            return StatusCode::OK.into_response();
        }
    };
    match engine.act(id, &action, &actor).await {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(Refusal::WrongPhrase { .. })) => field_error(block, messages::WRONG_PHRASE.into()),
        Ok(Err(refusal)) => field_error(block, messages::refusal(&refusal).text),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "handling a modal submission failed"
            );
            field_error(block, messages::click_failed(&reference).text)
        }
    }
}

/// The request form's fields, checked on the server; each problem is shown beside its field.
async fn submit_request(
    state: &HttpState,
    actor: &crate::domain::Actor,
    submission: &inbound::ViewSubmission,
    delivery: &Delivery,
) -> Response {
    let engine = &state.engine;
    let value = |block: &str| {
        submission
            .values
            .get(block)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let errors = |pairs: Vec<(&str, String)>| {
        let errors: serde_json::Map<String, serde_json::Value> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
        axum::Json(serde_json::json!({"response_action": "errors", "errors": errors})).into_response()
    };
    let severity = match value("severity").map(|s| s.parse::<crate::domain::Severity>()) {
        Some(Ok(severity)) => severity,
        _ => {
            return errors(vec![(
                "severity",
                "Choose a severity: it decides who must approve.".into(),
            )]);
        }
    };
    let (drill, channel) = match submission.private_metadata.strip_prefix("drill:") {
        Some(channel) => (true, channel.to_owned()),
        None => (false, submission.private_metadata.clone()),
    };
    let args = RequestArgs {
        drill,
        service: value("service").unwrap_or_default(),
        target: value("target"),
        runbook: value("runbook"),
        severity: Some(severity),
        reason: value("reason"),
    };
    match engine.request(actor, &channel, &args, Some(&delivery.0)).await {
        Ok(Ok(rollback)) => {
            let ack = Effect::Ephemeral {
                channel: crate::domain::ChannelId(channel),
                user: actor.user.clone(),
                text: messages::request_acknowledged(&rollback, &engine.config.roles).text,
            };
            match engine.tell(&[ack]).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => {
                    // The rollback is recorded; only the private note failed. Close the form.
                    tracing::error!(
                        error = format!("{e:#}"),
                        "queueing the request's acknowledgement failed"
                    );
                    StatusCode::OK.into_response()
                }
            }
        }
        Ok(Err(refusal)) => {
            let field = match &refusal {
                Refusal::UnknownRunbook { .. } | Refusal::PlanTemplate { .. } => "runbook",
                Refusal::MissingParam { .. }
                | Refusal::ParamMismatch { .. }
                | Refusal::TargetNotTaken { .. }
                | Refusal::UnknownParam { .. } => "target",
                Refusal::ReasonRequired { .. } | Refusal::ReasonTooLong { .. } => "reason",
                _ => "service",
            };
            errors(vec![(field, messages::refusal(&refusal).text)])
        }
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "recording a request from the form failed"
            );
            errors(vec![("service", messages::internal_error(&reference).text)])
        }
    }
}
