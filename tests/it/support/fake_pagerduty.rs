//! A fake PagerDuty REST API on loopback: `GET /oncalls` answers who is on call now for a
//! schedule or an escalation policy, as PagerDuty documents it (`include[]=users` adds the
//! user's email; a wrong key gets 401 with PagerDuty's error body; past its rate limit, 429).
//! Every call is recorded.
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const PAGERDUTY_TOKEN: &str = "pd-key-u+2Fv9";
/// The integration key change events must carry.
pub const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000042";

/// Someone on call: (PagerDuty user ID, name, email).
type Person = (&'static str, &'static str, &'static str);

#[derive(Default)]
struct Recorder {
    /// Each call's query string and `Authorization` header.
    calls: Vec<(String, Option<String>)>,
    schedules: HashMap<String, Vec<Person>>,
    /// Policy → (level, who) on call now.
    policies: HashMap<String, Vec<(u32, Person)>>,
    /// While set, every call is answered with this HTTP status.
    outage: Option<u16>,
    /// How long `/oncalls` takes to answer.
    delay: Option<std::time::Duration>,
    /// Change events PagerDuty accepted, as sent.
    changes: Vec<Value>,
    /// Change-event answers to play first, in order (an HTTP status each).
    change_outages: std::collections::VecDeque<u16>,
}

pub struct FakePagerDuty {
    pub url: String,
    recorder: Arc<Mutex<Recorder>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakePagerDuty {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakePagerDuty {
    pub async fn start() -> FakePagerDuty {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let app = Router::new()
            .route("/oncalls", get(oncalls))
            .route("/v2/change/enqueue", axum::routing::post(change))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakePagerDuty { url, recorder, server }
    }

    /// Hands the schedule over: `people` are on call now.
    pub fn on_call(&self, schedule: &str, people: &[Person]) {
        self.recorder
            .lock()
            .unwrap()
            .schedules
            .insert(schedule.to_owned(), people.to_vec());
    }

    /// Who is on call at each level of an escalation policy now.
    pub fn escalation(&self, policy: &str, levels: &[(u32, Person)]) {
        self.recorder
            .lock()
            .unwrap()
            .policies
            .insert(policy.to_owned(), levels.to_vec());
    }

    /// `/oncalls` answers only after `delay` (or, with `None`, at once again).
    pub fn slow(&self, delay: Option<std::time::Duration>) {
        self.recorder.lock().unwrap().delay = delay;
    }

    /// Every call answers `status` (or, with `None`, as usual again).
    pub fn outage(&self, status: Option<u16>) {
        self.recorder.lock().unwrap().outage = status;
    }

    /// Where change events go.
    pub fn events_url(&self) -> String {
        format!("{}/v2/change/enqueue", self.url)
    }

    /// The change events accepted since the last look.
    pub fn changes(&self) -> Vec<Value> {
        std::mem::take(&mut self.recorder.lock().unwrap().changes)
    }

    /// The next change events are answered with these statuses, in order, and not accepted.
    pub fn refuse_changes(&self, statuses: &[u16]) {
        self.recorder.lock().unwrap().change_outages.extend(statuses);
    }

    /// The calls since the last look: (query, Authorization).
    pub fn calls(&self) -> Vec<(String, Option<String>)> {
        std::mem::take(&mut self.recorder.lock().unwrap().calls)
    }
}

fn decoded(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.replace("%5B%5D", "[]"), v.to_owned()))
        .collect()
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "code": code}}))).into_response()
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"id": id, "type": format!("{kind}_reference"), "summary": id, "self": format!("https://api.pagerduty.com/{kind}s/{id}")})
}

fn entry(person: &Person, policy: &str, level: u32, schedule: Option<&str>, with_users: bool) -> Value {
    let (id, name, email) = person;
    let user = if with_users {
        json!({"id": id, "type": "user", "summary": name, "name": name, "email": email, "time_zone": "Etc/UTC"})
    } else {
        reference("user", id)
    };
    json!({
        "escalation_policy": reference("escalation_policy", policy),
        "escalation_level": level,
        "schedule": schedule.map(|s| reference("schedule", s)),
        "user": user,
        "start": "2026-12-01T00:00:00Z",
        "end": "2026-12-08T00:00:00Z",
    })
}

async fn oncalls(
    State(recorder): State<Arc<Mutex<Recorder>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let delay = recorder.lock().unwrap().delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut recorder = recorder.lock().unwrap();
    recorder.calls.push((query.clone(), authorization.clone()));
    match recorder.outage {
        Some(429) => {
            let mut answer = error(StatusCode::TOO_MANY_REQUESTS, 2020, "Rate Limit Exceeded");
            answer.headers_mut().insert("retry-after", "30".parse().unwrap());
            return answer;
        }
        Some(status) => {
            return error(StatusCode::from_u16(status).unwrap(), 2000, "Internal Server Error");
        }
        None => {}
    }
    if authorization.as_deref() != Some(&format!("Token token={PAGERDUTY_TOKEN}")) {
        return error(StatusCode::UNAUTHORIZED, 2006, "Authentication failed");
    }
    let params = decoded(&query);
    let with_users = params.iter().any(|(k, v)| k == "include[]" && v == "users");
    let mut oncalls = vec![];
    for (key, id) in &params {
        match key.as_str() {
            "schedule_ids[]" => {
                for person in recorder.schedules.get(id).into_iter().flatten() {
                    oncalls.push(entry(person, "PESCALL", 1, Some(id), with_users));
                }
            }
            "escalation_policy_ids[]" => {
                for (level, person) in recorder.policies.get(id).into_iter().flatten() {
                    oncalls.push(entry(person, id, *level, None, with_users));
                }
            }
            _ => {}
        }
    }
    axum::Json(json!({"oncalls": oncalls, "limit": 100, "offset": 0, "more": false, "total": null})).into_response()
}

/// `POST /v2/change/enqueue`, as the Events API v2 answers: 202 with a status for a well-formed
/// event with a known integration key, 400 with the errors otherwise.
async fn change(State(recorder): State<Arc<Mutex<Recorder>>>, body: axum::body::Bytes) -> Response {
    let mut recorder = recorder.lock().unwrap();
    if let Some(status) = recorder.change_outages.pop_front() {
        let mut answer = (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(
                json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly."}),
            ),
        )
            .into_response();
        if status == 429 {
            answer.headers_mut().insert("retry-after", "5".parse().unwrap());
        }
        return answer;
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut errors = vec![];
    if event["routing_key"] != ROUTING_KEY {
        errors.push("Invalid routing key");
    }
    for field in ["summary", "source"] {
        if !event["payload"][field].is_string() {
            errors.push("'payload' is invalid or missing");
        }
    }
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})),
        )
            .into_response();
    }
    recorder.changes.push(event);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "success", "message": "Change event processed"})),
    )
        .into_response()
}
