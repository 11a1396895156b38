//! The playground's page and what it sends: each command, click and form goes to rollbot's real
//! handlers as a request Slack would send, signed with the playground's signing secret; the
//! page reads what rollbot posted from the Slack stand-in.
use super::channel::{self, Ephemeral, Session};
use super::people::Person;
use crate::slack::signature::Secret;
use crate::standin::requests::{self, Origin};
use crate::standin::slack::SlackStandIn;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// Where the status page stand-in takes rollbot's updates (a webhook provider).
pub(super) const STATUS_PAGE_PATH: &str = "/stand-in/statuspage";

pub(super) struct Wiring {
    pub slack: SlackStandIn,
    pub rollbot_url: String,
    pub signing_secret: String,
    pub api_token: Secret,
    pub team: String,
    pub channels: Vec<String>,
    pub people: Vec<Person>,
    pub execute: bool,
    pub config_source: String,
}

pub(super) struct PageState {
    wiring: Wiring,
    http: reqwest::Client,
    session: Mutex<Session>,
    status_page: Mutex<Vec<Value>>,
}

impl PageState {
    pub(super) fn new(wiring: Wiring) -> anyhow::Result<PageState> {
        Ok(PageState {
            wiring,
            // Loopback only: never through a proxy the environment names.
            http: reqwest::Client::builder()
                .tls_backend_preconfigured(crate::outbound::system_roots()?)
                .no_proxy()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            session: Mutex::new(Session::default()),
            status_page: Mutex::new(vec![]),
        })
    }

    /// Who acts where, with the trigger Slack gave this invocation.
    fn origin<'a>(&'a self, person: &'a Person, channel: &'a str, trigger: &'a str) -> Origin<'a> {
        Origin {
            team: &self.wiring.team,
            user: &person.id,
            user_name: &person.name,
            channel,
            trigger_id: trigger,
        }
    }

    fn person(&self, id: &str) -> Option<&Person> {
        self.wiring.people.iter().find(|p| p.id == id)
    }

    /// A new trigger for `user`: Slack gives every invocation its own.
    fn trigger_for(&self, user: &str) -> String {
        let trigger = format!(
            "{}.{}",
            chrono::Utc::now().timestamp_millis(),
            uuid::Uuid::new_v4().simple()
        );
        self.session
            .lock()
            .unwrap()
            .triggers
            .insert(trigger.clone(), user.to_owned());
        trigger
    }

    /// Posts `body` to rollbot at `path`, signed as Slack signs; rollbot's answer, if any.
    async fn send(&self, path: &str, body: String) -> Result<Option<Value>, Response> {
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .http
            .post(format!("{}{path}", self.wiring.rollbot_url))
            .body(body.clone());
        for (name, value) in requests::signature_headers(&self.wiring.signing_secret, timestamp, &body) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| unreachable_rollbot(&e))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err((StatusCode::BAD_GATEWAY, format!("rollbot answered {status}: {text}")).into_response());
        }
        Ok(serde_json::from_str(&text).ok())
    }

    fn messages_in(&self, channel: &str) -> usize {
        self.wiring
            .slack
            .calls()
            .iter()
            .filter(|c| c.method == "chat.postMessage" && c.body["channel"] == channel && c.body["thread_ts"].is_null())
            .count()
    }
}

fn unreachable_rollbot(error: &reqwest::Error) -> Response {
    (StatusCode::BAD_GATEWAY, format!("rollbot did not answer: {error}")).into_response()
}

pub(super) fn router(state: Arc<PageState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/playground.js",
            get(|| async { ([("content-type", "text/javascript")], SCRIPT) }),
        )
        .route(
            "/playground.css",
            get(|| async { ([("content-type", "text/css")], STYLE) }),
        )
        .route("/playground/state", get(screen))
        .route("/playground/command", post(command))
        .route("/playground/click", post(click))
        .route("/playground/form", post(form))
        .route("/playground/close", post(close))
        .route("/playground/rollbacks", get(rollbacks))
        .route("/playground/postmortem/{id}", get(postmortem))
        .route(STATUS_PAGE_PATH, post(status_page_update))
        .with_state(state)
}

const PAGE: &str = include_str!("assets/page.html");
const SCRIPT: &str = include_str!("assets/playground.js");
const STYLE: &str = include_str!("assets/playground.css");

#[derive(Deserialize)]
struct As {
    #[serde(rename = "as")]
    user: String,
}

async fn screen(State(state): State<Arc<PageState>>, Query(who): Query<As>) -> Response {
    let calls = state.wiring.slack.calls();
    let screen = {
        let mut session = state.session.lock().unwrap();
        session.learn_views(&calls);
        channel::screen(&calls, &session, &who.user, &state.wiring.channels)
    };
    axum::Json(json!({
        "mode": if state.wiring.execute { "execute" } else { "rehearse" },
        "config": state.wiring.config_source,
        "team": state.wiring.team,
        "incident_channels": state.wiring.channels,
        "people": state.wiring.people,
        "screen": screen,
        "status_page": *state.status_page.lock().unwrap(),
        "rate_limited": state.wiring.slack.rate_limited(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "as")]
    user: String,
    channel: String,
    text: String,
}

async fn command(State(state): State<Arc<PageState>>, axum::Json(typed): axum::Json<Typed>) -> Response {
    let Some(person) = state.person(&typed.user) else {
        return (StatusCode::BAD_REQUEST, "pick who you are first").into_response();
    };
    let trigger = state.trigger_for(&person.id);
    let origin = state.origin(person, &typed.channel, &trigger);
    let sent = super::as_sent(&typed.text, state.wiring.execute);
    // No answer comes by response_url: rollbot answers in the response or posts.
    let body = requests::slash_command(&origin, "/rollback", &sent, "http://127.0.0.1:9/unused");
    let after = state.messages_in(&typed.channel);
    match state.send("/slack/commands", body).await {
        Ok(answer) => {
            if let Some(answer) = answer.filter(|a| a["text"].is_string() || a["blocks"].is_array()) {
                let ephemeral = Ephemeral {
                    channel: typed.channel.clone(),
                    after,
                    text: answer["text"].as_str().unwrap_or_default().to_owned(),
                    blocks: answer.get("blocks").cloned().unwrap_or(json!([])),
                };
                state
                    .session
                    .lock()
                    .unwrap()
                    .answers
                    .push((person.id.clone(), ephemeral));
            }
            axum::Json(json!({"sent": format!("/rollback {sent}")})).into_response()
        }
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct Clicked {
    #[serde(rename = "as")]
    user: String,
    channel: String,
    /// The message the element is on (a thread reply or a top-level message).
    ts: String,
    block_id: Option<String>,
    /// The element as posted.
    element: Value,
}

async fn click(State(state): State<Arc<PageState>>, axum::Json(clicked): axum::Json<Clicked>) -> Response {
    let Some(person) = state.person(&clicked.user) else {
        return (StatusCode::BAD_REQUEST, "pick who you are first").into_response();
    };
    let message = find_message(&state.wiring.slack, &clicked.channel, &clicked.ts)
        .unwrap_or_else(|| json!({"ts": clicked.ts, "type": "message"}));
    let trigger = state.trigger_for(&person.id);
    let origin = state.origin(person, &clicked.channel, &trigger);
    let mut action = clicked.element.clone();
    action["block_id"] = json!(clicked.block_id);
    action["action_ts"] = json!(format!("{:.6}", chrono::Utc::now().timestamp_micros() as f64 / 1e6));
    if let Some(text) = clicked.element["text"].as_object() {
        action["text"] = Value::Object(text.clone());
    }
    let body = requests::message_action(&origin, &message, action);
    match state.send("/slack/interactions", body).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

/// The message with `ts` as Slack has it now, for the payload's `message` field.
fn find_message(slack: &SlackStandIn, channel: &str, ts: &str) -> Option<Value> {
    let calls = slack.calls();
    let screen = channel::screen(&calls, &Session::default(), "", &[channel.to_owned()]);
    screen.channels.get(channel)?.iter().find_map(|m| {
        std::iter::once(m)
            .chain(m.replies.iter())
            .find(|m| m.ts == ts)
            .map(|m| json!({"type": "message", "ts": m.ts, "text": m.text, "blocks": m.blocks, "user": "U0ROLLBOT", "bot_id": "B0ROLLBOT"}))
    })
}

#[derive(Deserialize)]
struct Filled {
    #[serde(rename = "as")]
    user: String,
    view_id: String,
    /// Slack's `view.state.values`: block id → action id → the element's value.
    state: Value,
    /// A select that dispatches its action, when this is not the submit button.
    action: Option<Value>,
}

async fn form(State(state): State<Arc<PageState>>, axum::Json(filled): axum::Json<Filled>) -> Response {
    let Some(person) = state.person(&filled.user) else {
        return (StatusCode::BAD_REQUEST, "pick who you are first").into_response();
    };
    let view = {
        let calls = state.wiring.slack.calls();
        let mut session = state.session.lock().unwrap();
        session.learn_views(&calls);
        channel::screen(&calls, &session, &person.id, &state.wiring.channels)
            .modal
            .filter(|m| m.view["id"] == filled.view_id.as_str())
            .map(|m| m.view)
    };
    let Some(view) = view else {
        return (StatusCode::CONFLICT, "that form is no longer open").into_response();
    };
    let trigger = state.trigger_for(&person.id);
    let origin = state.origin(
        person,
        state.wiring.channels.first().map_or("", String::as_str),
        &trigger,
    );
    let submitting = filled.action.is_none();
    let body = match filled.action {
        Some(mut action) => {
            action["action_ts"] = json!(format!("{:.6}", chrono::Utc::now().timestamp_micros() as f64 / 1e6));
            requests::view_action(&origin, &view, filled.state, action)
        }
        None => requests::view_submission(&origin, &view, filled.state),
    };
    let answer = match state.send("/slack/interactions", body).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    if submitting {
        let mut session = state.session.lock().unwrap();
        match answer.as_ref().and_then(|a| a["response_action"].as_str()) {
            Some("errors") => {
                let errors = answer
                    .as_ref()
                    .and_then(|a| a["errors"].as_object())
                    .cloned()
                    .unwrap_or_default();
                let errors = errors
                    .into_iter()
                    .map(|(block, text)| (block, text.as_str().unwrap_or_default().to_owned()))
                    .collect();
                session.view_errors.insert(filled.view_id, errors);
            }
            // Slack closes the modal when the app answers with nothing (or "clear").
            _ => {
                session.closed_views.insert(filled.view_id);
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Closed {
    view_id: String,
}

async fn close(State(state): State<Arc<PageState>>, axum::Json(closed): axum::Json<Closed>) -> Response {
    state.session.lock().unwrap().closed_views.insert(closed.view_id);
    StatusCode::NO_CONTENT.into_response()
}

/// Reads rollbot's API with the playground's token: the page shows what `/api/v1` shows.
async fn api_get(state: &PageState, path: &str) -> Response {
    let response = state
        .http
        .get(format!("{}/api/v1/{path}", state.wiring.rollbot_url))
        .bearer_auth(state.wiring.api_token.expose())
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let kind = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_owned();
            let body = response.bytes().await.unwrap_or_default();
            (status, [("content-type", kind)], body).into_response()
        }
        Err(error) => unreachable_rollbot(&error),
    }
}

async fn rollbacks(State(state): State<Arc<PageState>>) -> Response {
    api_get(&state, "rollbacks").await
}

async fn postmortem(State(state): State<Arc<PageState>>, Path(id): Path<String>) -> Response {
    if !id.starts_with("RB-") || !id[3..].chars().all(|c| c.is_ascii_digit()) {
        return (StatusCode::NOT_FOUND, "ids look like RB-12").into_response();
    }
    api_get(&state, &format!("rollbacks/{id}/postmortem.md")).await
}

/// The status page stand-in: keeps each update rollbot sends, for the page to show.
async fn status_page_update(State(state): State<Arc<PageState>>, axum::Json(update): axum::Json<Value>) -> Response {
    let mut updates = state.status_page.lock().unwrap();
    updates.push(update);
    // Atlassian answers with the incident; the webhook provider needs only a 2xx.
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "id": format!("inc-{}", updates.len())})),
    )
        .into_response()
}
