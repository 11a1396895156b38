//! A stand-in for Slack's Web API on loopback: it records every call and answers as Slack
//! documents, including its rate limits, errors and the views' hash guard. The test suite drives
//! rollbot against it, and `rollbot playground` shows people what it recorded; one Slack model to
//! keep faithful. Never part of `serve`.
use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
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
    /// Members of user groups, for `usergroups.users.list`.
    groups: std::collections::HashMap<String, Vec<String>>,
    /// Active users by email, for `users.lookupByEmail`.
    emails: std::collections::HashMap<String, String>,
    /// While set, `usergroups.users.list` answers with this Slack error.
    groups_error: Option<String>,
    /// Methods that take this long to answer.
    delays: std::collections::HashMap<String, std::time::Duration>,
    /// Outages to play, in order: each answers one call with an HTTP status and no effect.
    outages: std::collections::VecDeque<Outage>,
    /// Calls that were answered with an outage (they had no effect).
    refused: Vec<(String, u16)>,
    /// Outages by time: each answers every call until its end, by the clock given.
    outage_schedule: Vec<(chrono::DateTime<chrono::Utc>, Outage)>,
    schedule_clock: Option<Arc<dyn crate::clock::Clock>>,
    /// When set, Slack's published limits by this clock: a call past them gets a 429 with
    /// `Retry-After`, as Slack answers.
    limits: Option<(Arc<dyn crate::clock::Clock>, crate::slack::limits::SlackLimits)>,
    /// How many of those 429s the test has looked at.
    rate_limits_seen: u64,
    /// Channels the bot was never invited to: reading them answers `not_in_channel`.
    not_joined: Vec<String>,
    /// Top-level messages as `conversations.history` lists them: (channel, message), oldest first.
    history: Vec<(String, Value)>,
    /// Where `apps.connections.open` sends rollbot: a Socket Mode hub's next address.
    socket: Option<SocketIssuer>,
    identity: Identity,
    /// Open views: id → the hash `views.update` must name (Slack's guard against lost updates).
    views: std::collections::HashMap<String, String>,
}

/// Hands out a Socket Mode connection's address (one per `apps.connections.open`).
pub type SocketIssuer = Arc<dyn Fn() -> String + Send + Sync>;

/// Whose workspace the stand-in plays, and the tokens it knows.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub team_id: String,
    pub bot_token: String,
    /// The app-level token (`xapp-…`) that opens Socket Mode connections.
    pub app_token: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub enum Outage {
    /// 429 with `Retry-After: <seconds>`.
    RateLimited(u64),
    /// 500 with no body.
    ServerError,
    /// 200 with `{"ok": false, "error": <code>}`: Slack's way of saying no for good.
    Refused(&'static str),
    /// Slack takes the call (a post is in the channel) but the answer never arrives: 503, as a
    /// proxy in between says when the upstream's answer is lost.
    AnswerLost,
}

#[derive(Clone)]
pub struct SlackStandIn {
    /// The Web API's base, ending in `/api/`: rollbot's `SLACK_API_URL`.
    pub api_url: String,
    recorder: Arc<Mutex<Recorder>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for SlackStandIn {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl SlackStandIn {
    /// Listens on a free loopback port; `socket` answers `apps.connections.open`.
    pub async fn start(identity: Identity, socket: Option<SocketIssuer>) -> std::io::Result<SlackStandIn> {
        let recorder = Arc::new(Mutex::new(Recorder {
            socket,
            identity,
            ..Recorder::default()
        }));
        let app = Router::new()
            .route("/api/{method}", get(handle).post(handle))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the Slack stand-in stopped");
            }
        });
        Ok(SlackStandIn {
            api_url: format!("http://{addr}/api/"),
            recorder,
            server: Arc::new(server),
        })
    }

    /// The calls from the `from`th on (for a reader that has seen the ones before).
    pub fn calls_since(&self, from: usize) -> Vec<Call> {
        self.recorder.lock().unwrap().calls.iter().skip(from).cloned().collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.recorder.lock().unwrap().calls.clone()
    }

    /// The next calls (any method) fail as listed, one outage per call, then Slack is fine.
    pub fn fail_next(&self, outages: &[Outage]) {
        self.recorder.lock().unwrap().outages.extend(outages.iter().copied());
    }

    /// Slack is down by the clock: each outage answers every call for its time, one after
    /// the other from now, then Slack is fine.
    pub fn fail_for(&self, clock: Arc<dyn crate::clock::Clock>, schedule: &[(Outage, std::time::Duration)]) {
        let mut recorder = self.recorder.lock().unwrap();
        let mut until = clock.now();
        recorder.outage_schedule = schedule
            .iter()
            .map(|(outage, lasting)| {
                until += chrono::Duration::from_std(*lasting).unwrap();
                (until, *outage)
            })
            .collect();
        recorder.schedule_clock = Some(clock);
    }

    /// From now on, hold rollbot to Slack's published limits by `clock` (posts about one a
    /// second per channel with a burst of 3, Tier 3 updates and Tier 4 ephemerals and views per
    /// workspace): past them, 429 with `Retry-After`. The test harness and the playground turn
    /// this on.
    pub fn enforce_slack_limits(&self, clock: Arc<dyn crate::clock::Clock>) {
        self.recorder.lock().unwrap().limits = Some((clock, Default::default()));
    }

    /// How many calls Slack's limits refused (not counting outages a test scripted); the test
    /// has then seen them.
    pub fn rate_limited(&self) -> u64 {
        let mut recorder = self.recorder.lock().unwrap();
        let refused = recorder.limits.as_ref().map_or(0, |(_, limits)| limits.refused());
        recorder.rate_limits_seen = refused;
        refused
    }

    /// 429s Slack's limits gave that the test never looked at.
    pub fn unseen_rate_limits(&self) -> u64 {
        let recorder = self.recorder.lock().unwrap();
        recorder.limits.as_ref().map_or(0, |(_, limits)| limits.refused()) - recorder.rate_limits_seen
    }

    /// The calls answered with an outage: (method, HTTP status).
    pub fn refused(&self) -> Vec<(String, u16)> {
        self.recorder.lock().unwrap().refused.clone()
    }

    /// Makes `method` take `delay` to answer (or answer at once again with `None`).
    pub fn slow(&self, method: &str, delay: Option<std::time::Duration>) {
        let mut recorder = self.recorder.lock().unwrap();
        match delay {
            Some(delay) => recorder.delays.insert(method.to_owned(), delay),
            None => recorder.delays.remove(method),
        };
    }

    /// A message another app posted earlier in `channel`, stamped with `event_type` metadata.
    pub fn post_as_another_app(&self, channel: &str, event_type: &str, payload: &[(&str, &str)]) {
        let mut recorder = self.recorder.lock().unwrap();
        recorder.next_ts += 1;
        let payload: serde_json::Map<String, Value> = payload.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let message = json!({
            "type": "message",
            "ts": format!("1790000000.{:06}", recorder.next_ts),
            "text": "another app's message",
            "bot_id": "B0OTHER",
            "metadata": {"event_type": event_type, "event_payload": payload},
        });
        recorder.history.push((channel.to_owned(), message));
    }

    /// The bot was never invited to `channel`.
    pub fn not_joined(&self, channel: &str) {
        self.recorder.lock().unwrap().not_joined.push(channel.to_owned());
    }

    pub fn set_group(&self, group: &str, members: &[&str]) {
        let members = members.iter().map(|m| m.to_string()).collect();
        self.recorder.lock().unwrap().groups.insert(group.to_owned(), members);
    }

    /// Gives `user` the email `email` in the workspace's profiles (`users.lookupByEmail`).
    pub fn set_email(&self, user: &str, email: &str) {
        self.recorder
            .lock()
            .unwrap()
            .emails
            .insert(email.to_owned(), user.to_owned());
    }

    /// Makes `usergroups.users.list` fail with `error` (or succeed again with `None`).
    pub fn fail_group_lookups(&self, error: Option<&str>) {
        self.recorder.lock().unwrap().groups_error = error.map(str::to_owned);
    }
}

async fn handle(
    State(recorder): State<Arc<Mutex<Recorder>>>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    // GET methods carry their arguments in the query string.
    let body = if body.is_empty() {
        Bytes::from(query.unwrap_or_default())
    } else {
        body
    };
    let mut body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        serde_json::to_value(
            serde_urlencoded::from_bytes::<std::collections::BTreeMap<String, String>>(&body).unwrap_or_default(),
        )
        .unwrap()
    });
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let delay = recorder.lock().unwrap().delays.get(&method).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut recorder = recorder.lock().unwrap();
    if let Some((clock, limits)) = recorder.limits.as_mut()
        && let Err(retry_after) = limits.admit(&method, body["channel"].as_str(), clock.now())
    {
        recorder.outages.push_front(Outage::RateLimited(retry_after));
    }
    let scheduled = recorder.schedule_clock.as_ref().and_then(|clock| {
        let now = clock.now();
        recorder
            .outage_schedule
            .iter()
            .find(|(until, _)| now < *until)
            .map(|(_, o)| *o)
    });
    let outage = scheduled.or_else(|| recorder.outages.pop_front());
    if let Some(outage) = outage.filter(|o| !matches!(o, Outage::AnswerLost)) {
        use axum::response::IntoResponse;
        return match outage {
            Outage::RateLimited(seconds) => {
                recorder.refused.push((method, 429));
                let headers = [("retry-after", seconds.to_string())];
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    headers,
                    axum::Json(json!({"ok": false, "error": "ratelimited"})),
                )
                    .into_response()
            }
            Outage::Refused(code) => {
                recorder.refused.push((method, 200));
                axum::Json(json!({"ok": false, "error": code})).into_response()
            }
            Outage::ServerError => {
                recorder.refused.push((method, 500));
                axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            Outage::AnswerLost => unreachable!("played below"),
        };
    }
    let answer_lost = matches!(outage, Some(Outage::AnswerLost));
    recorder.next_ts += 1;
    let ts = format!("1790000000.{:06}", recorder.next_ts);
    let channel = body["channel"].clone();
    let mut message = json!({"type": "message", "ts": ts, "text": body["text"], "blocks": body.get("blocks").cloned().unwrap_or(json!([]))});
    if let Some(metadata) = metadata_of(&body) {
        message["metadata"] = metadata;
    }
    let (answer, posted_ts) = match method.as_str() {
        "chat.postMessage" => {
            if body.get("thread_ts").is_none_or(Value::is_null) {
                let channel = channel.as_str().unwrap_or_default().to_owned();
                recorder.history.push((channel, message.clone()));
            }
            (
                json!({"ok": true, "channel": channel, "ts": ts, "message": message}),
                Some(ts.clone()),
            )
        }
        "conversations.history" if recorder.not_joined.iter().any(|c| body["channel"] == c.as_str()) => {
            (json!({"ok": false, "error": "not_in_channel"}), None)
        }
        "conversations.history" => (history(&recorder.history, &body), None),
        // As Slack answers a bot token: whose it is, in which workspace; a token Slack does not
        // know gets `invalid_auth`.
        "auth.test" if authorization.as_deref() == Some(&format!("Bearer {}", recorder.identity.bot_token)[..]) => (
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "rollbot",
                   "team_id": recorder.identity.team_id, "user_id": "U0ROLLBOT", "bot_id": "B0ROLLBOT", "is_enterprise_install": false}),
            None,
        ),
        "auth.test" => (json!({"ok": false, "error": "invalid_auth"}), None),
        "apps.connections.open"
            if recorder
                .identity
                .app_token
                .as_ref()
                .is_some_and(|token| authorization.as_deref() == Some(&format!("Bearer {token}")[..])) =>
        {
            (
                json!({"ok": true, "url": recorder.socket.as_ref().map(|issue| issue())}),
                None,
            )
        }
        // Slack's answer to a bot token where an app-level token is needed.
        "apps.connections.open" if authorization.as_deref().is_some_and(|a| a.starts_with("Bearer xoxb-")) => {
            (json!({"ok": false, "error": "not_allowed_token_type"}), None)
        }
        "apps.connections.open" => (json!({"ok": false, "error": "invalid_auth"}), None),
        "chat.update" => (
            json!({"ok": true, "channel": channel, "ts": body["ts"], "message": {"text": body["text"]}}),
            None,
        ),
        "chat.postEphemeral" => (json!({"ok": true, "message_ts": ts}), None),
        "views.open" | "views.update" => {
            let id = if method == "views.open" {
                Some(format!("V{}", recorder.next_ts))
            } else {
                body["view_id"].as_str().map(str::to_owned)
            };
            let current = id.as_ref().and_then(|id| recorder.views.get(id)).cloned();
            let conflict = method == "views.update"
                && body["hash"]
                    .as_str()
                    .is_some_and(|hash| Some(hash) != current.as_deref());
            match id {
                Some(_) if conflict => (json!({"ok": false, "error": "hash_conflict"}), None),
                Some(id) if method == "views.open" || current.is_some() => {
                    let hash = format!("{}.abc", recorder.next_ts);
                    recorder.views.insert(id.clone(), hash.clone());
                    // The test reads the view with its id and hash, as rollbot's next action will.
                    body["view"]["id"] = json!(id);
                    body["view"]["hash"] = json!(hash);
                    let mut view = body["view"].clone();
                    view["team_id"] = json!(recorder.identity.team_id);
                    view["state"] = json!({"values": {}});
                    (json!({"ok": true, "view": view}), None)
                }
                _ => (json!({"ok": false, "error": "not_found"}), None),
            }
        }
        "usergroups.users.list" => {
            let group = body["usergroup"].as_str().unwrap_or_default().to_owned();
            match &recorder.groups_error {
                Some(error) => (json!({"ok": false, "error": error}), None),
                None => match recorder.groups.get(&group) {
                    Some(users) => (json!({"ok": true, "users": users}), None),
                    None => (json!({"ok": false, "error": "no_such_subteam"}), None),
                },
            }
        }
        "users.lookupByEmail" => {
            let email = body["email"].as_str().unwrap_or_default();
            match recorder.emails.get(email) {
                Some(user) => (
                    json!({"ok": true, "user": {"id": user, "team_id": recorder.identity.team_id, "deleted": false, "profile": {"email": email}}}),
                    None,
                ),
                None => (json!({"ok": false, "error": "users_not_found"}), None),
            }
        }
        _ => (json!({"ok": false, "error": "unknown_method"}), None),
    };
    recorder.calls.push(Call {
        method: method.clone(),
        body,
        authorization,
        ts: posted_ts,
    });
    if answer_lost {
        recorder.refused.push((method, 503));
        return axum::response::IntoResponse::into_response(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }
    axum::response::IntoResponse::into_response(axum::Json(answer))
}

/// A post's `metadata` argument: JSON in a JSON body, a JSON string in a form body.
fn metadata_of(body: &Value) -> Option<Value> {
    match body.get("metadata")? {
        Value::String(text) => serde_json::from_str(text).ok(),
        Value::Null => None,
        metadata => Some(metadata.clone()),
    }
}

/// `conversations.history` as Slack answers it: a channel's top-level messages newest first,
/// from `oldest` on, `limit` a page (cursor-paginated), metadata only with `include_all_metadata`.
fn history(messages: &[(String, Value)], query: &Value) -> Value {
    let arg = |name: &str| {
        query[name]
            .as_str()
            .map(str::to_owned)
            .or_else(|| query[name].as_u64().map(|n| n.to_string()))
    };
    let Some(channel) = arg("channel") else {
        return json!({"ok": false, "error": "channel_not_found"});
    };
    let oldest: f64 = arg("oldest").and_then(|o| o.parse().ok()).unwrap_or(0.0);
    let limit: usize = arg("limit").and_then(|l| l.parse().ok()).unwrap_or(100).clamp(1, 999);
    let start: usize = arg("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let with_metadata = arg("include_all_metadata").is_some_and(|v| v == "true");
    let matching: Vec<Value> = messages
        .iter()
        .rev()
        .filter(|(c, m)| *c == channel && m["ts"].as_str().and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0) >= oldest)
        .map(|(_, m)| {
            let mut m = m.clone();
            if !with_metadata {
                m.as_object_mut().unwrap().remove("metadata");
            }
            m
        })
        .collect();
    let page: Vec<Value> = matching.iter().skip(start).take(limit).cloned().collect();
    let more = start + page.len() < matching.len();
    json!({
        "ok": true,
        "messages": page,
        "has_more": more,
        "response_metadata": {"next_cursor": if more { (start + limit).to_string() } else { String::new() }},
    })
}
