//! The test harness: a fresh database per test, a fake Slack, rollbot's real router on
//! loopback, and helpers that read like the story they tell.
pub mod fake_pagerduty;
pub mod fake_service;
pub mod fake_slack;
pub mod fake_socket;
pub mod fake_statuspage;
pub mod http_proxy;
pub mod over_socket;
pub mod proxy;
mod reading;
mod requests;
pub mod serve;
mod storage;

pub use reading::*;
pub use requests::*;
pub use storage::*;

use chrono::{DateTime, TimeZone, Utc};
use fake_slack::{Call, FakeSlack};
use rollbot::app::{App, Parts};
use rollbot::clock::{Clock, ManualClock};
use rollbot::config::Config;
use rollbot::engine::secrets::SecretSource;
use rollbot::slack::client::SlackApi;
use rollbot::slack::signature::{Secret, SignatureVerifier, sign};
pub use rollbot::slack::wire::Button;
use rollbot::store::Store;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const SIGNING_SECRET: &str = "test-signing-secret-5f0c2b7e";
pub const BOT_TOKEN: &str = "xoxb-test-bot-token-9d81";
/// The app-level token that opens Socket Mode connections.
pub const APP_TOKEN: &str = "xapp-1-A0ROLLBOT-test-app-token-4e6a";
pub const API_TOKEN: &str = "api-token-test-31f7";
pub const ALERTMANAGER_TOKEN: &str = "alertmanager-token-test-8c2d";
pub const TEAM: &str = "T0TEST";
pub const INCIDENTS: &str = "C0INCIDENTS";
pub const RANDOM: &str = "C0RANDOM";

/// On call; usually the one who requests.
pub const ALICE: &str = "U0ALICE";
/// On call too: may approve high severity.
pub const BOB: &str = "U0BOB";
/// On call as well, for races between two approvers.
pub const BETH: &str = "U0BETH";
/// Team lead: approves medium and low.
pub const CAROL: &str = "U0CAROL";
/// In the workspace, in no role.
pub const MALLORY: &str = "U0MALLORY";
/// Joins the approvers 30 minutes into an unanswered request.
pub const DAVE: &str = "U0DEVOPS";
/// Engineering manager: joins after 60 minutes.
pub const ERIN: &str = "U0EM";
/// Told about critical rollbacks only.
pub const CHLOE: &str = "U0CTO";

/// Everything rollbot logged in this test process since logs were first captured. The first
/// call installs the capture (at DEBUG), so call it before the part of a test it should see.
pub fn captured_logs() -> String {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one log capture per test process");
        buffer
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap()
}

/// The configuration most stories use. `{marker}` is a file every real step appends to, so a
/// test can count what actually ran.
pub fn test_config(marker: &str) -> String {
    format!(
        r#"
[slack]
workspace = "{TEAM}"
channels = ["{INCIDENTS}"]
# The stories let anyone in the channel request (MALLORY too): they test what happens next.
anyone_may_request = true

[roles]
on_call = ["{ALICE}", "{BOB}", "{BETH}"]
team_lead = ["{CAROL}"]
devops_lead = ["{DAVE}"]
eng_manager = ["{ERIN}"]
cto = ["{CHLOE}"]

# Update reminders have stories of their own (tests/it/updates.rs); the others let hours
# pass and would each see a reminder every quarter of an hour.
[severity.high]
approvers = ["on_call"]
expire_after = "2h"
update_reminders = []

[severity.critical]
update_reminders = []

[severity.medium]
update_reminders = []

[severity.low]
update_reminders = []

[[escalation]]
role = "devops_lead"
after = "30m"

[[escalation]]
role = "eng_manager"
after = "60m"

[[escalation]]
role = "cto"
after = "60m"
severities = ["critical"]

[runbooks.app]
description = "Roll the application back to a release"
params.target = {{ pattern = "[0-9]+", help = "release number" }}

[[runbooks.app.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo $2" >> "$1"; echo "rolled back to release $2"', "step", "{{{{ vars.marker }}}}", "{{{{ params.target }}}}"]
timeout = "10s"

[[runbooks.app.steps]]
name = "Check health"
run = ["sh", "-c", 'echo "health" >> "$1"; echo "200 OK"', "step", "{{{{ vars.marker }}}}"]
timeout = "10s"

[runbooks.broken]
description = "A runbook whose second step fails"
params.target = {{ pattern = "[0-9]+" }}

[[runbooks.broken.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo $2" >> "$1"', "step", "{{{{ vars.marker }}}}", "{{{{ params.target }}}}"]

[[runbooks.broken.steps]]
name = "Migrate schema down"
run = ["sh", "-c", 'echo "migrating"; echo "ERROR: disk full" >&2; exit 3']

[[runbooks.broken.steps]]
name = "Restart"
run = ["sh", "-c", 'echo "restart" >> "$1"', "step", "{{{{ vars.marker }}}}"]

[runbooks.database]
description = "Code first, then decide about the data"

[[runbooks.database.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo" >> "$1"', "step", "{{{{ vars.marker }}}}"]

[[runbooks.database.steps]]
name = "Decide on the data"
gate = "Code is rolled back. Restore the database too?"

[[runbooks.database.steps]]
name = "Full restore"
run = ["sh", "-c", 'echo "restore" >> "$1"', "step", "{{{{ vars.marker }}}}"]
destructive = true
no_backup_because = "a test step: it writes a line to a scratch file"
confirm = "CONFIRM_FULL_RESTORE"

[services.checkout-api]
runbooks = ["app", "broken", "database"]
vars = {{ marker = "{marker}" }}
"#
    )
}

/// How many rounds `settle` drives the workers before it calls the loop endless.
const SETTLE_ROUNDS: usize = 500;

pub struct Rollbot {
    pub url: String,
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub slack: FakeSlack,
    pub scratch: tempfile::TempDir,
    config: Config,
    http: reqwest::Client,
    seen: Mutex<Vec<bool>>,
    server: tokio::task::JoinHandle<()>,
    /// The Socket Mode connection's worker, when the story receives Slack's requests that way.
    socket_mode: Option<tokio::task::JoinHandle<()>>,
    step_secrets: BTreeMap<String, String>,
    storage: TestStorage,
}

/// PagerDuty as the configuration's `[pagerduty] api_url` names it (a fake on loopback), with
/// the fake's key.
fn pagerduty_of(config: &Config) -> Option<rollbot::pagerduty::PagerDuty> {
    let pager = config.pagerduty.as_ref().filter(|p| p.reads_on_call)?;
    assert!(
        pager.api_url.starts_with("http://127.0.0.1:"),
        "tests reach PagerDuty only on loopback: set [pagerduty] api_url to a FakePagerDuty"
    );
    let token = Secret::new(fake_pagerduty::PAGERDUTY_TOKEN);
    Some(rollbot::pagerduty::PagerDuty::new(&pager.api_url, token).unwrap())
}

/// PagerDuty's change events as `[pagerduty] events_url` names them (a fake on loopback),
/// with the fake's integration key.
fn change_events_of(config: &Config) -> Option<rollbot::pagerduty::ChangeEvents> {
    let events = config.pagerduty.as_ref()?.change_events.as_ref()?;
    assert!(
        events.url.starts_with("http://127.0.0.1:"),
        "tests reach PagerDuty only on loopback: set [pagerduty] events_url to a FakePagerDuty"
    );
    let key = Secret::new(fake_pagerduty::ROUTING_KEY);
    Some(rollbot::pagerduty::ChangeEvents::new(&events.url, key).unwrap())
}

/// How a test rollbot is started: `Rollbot::builder().config(f).page(p).secrets(&[…]).start()`.
pub struct Builder<'a> {
    config: Box<dyn FnOnce(&str) -> String + 'a>,
    proxy_port: Option<u16>,
    page: Option<rollbot::statuspage::Provider>,
    step_secrets: BTreeMap<String, String>,
    socket_mode: bool,
}

impl<'a> Builder<'a> {
    /// Also receives Slack's requests over Socket Mode (a connection to the fake's hub, open
    /// when `start` returns).
    pub fn socket_mode(mut self) -> Builder<'a> {
        self.socket_mode = true;
        self
    }

    /// The configuration, as `config(marker_path)`; the test configuration by default.
    pub fn config(mut self, config: impl FnOnce(&str) -> String + 'a) -> Builder<'a> {
        self.config = Box::new(config);
        self
    }

    /// Reaches its database through `proxy`, which the test can cut.
    pub fn behind(mut self, proxy: &proxy::Proxy) -> Builder<'a> {
        self.proxy_port = Some(proxy.port);
        self
    }

    /// Keeps a status page through `provider` (a fake on loopback).
    pub fn page(mut self, provider: rollbot::statuspage::Provider) -> Builder<'a> {
        self.page = Some(provider);
        self
    }

    /// These values for the steps' `${env:NAME}` references.
    pub fn secrets(mut self, secrets: &[(&str, &str)]) -> Builder<'a> {
        self.step_secrets = secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self
    }

    pub async fn start(self) -> Rollbot {
        let socket_mode = self.socket_mode;
        let bot = Rollbot::start_on(self.config, self.proxy_port, self.page, self.step_secrets, socket_mode).await;
        if socket_mode {
            bot.slack.socket.wait_for_connections(1).await;
        }
        bot
    }
}

impl Rollbot {
    pub fn builder<'a>() -> Builder<'a> {
        Builder {
            config: Box::new(test_config),
            proxy_port: None,
            page: None,
            step_secrets: BTreeMap::new(),
            socket_mode: false,
        }
    }

    /// The test configuration, nothing else.
    pub async fn start() -> Rollbot {
        Rollbot::builder().start().await
    }

    /// Starts rollbot with the configuration `config(marker_path)`.
    pub async fn start_with(config: impl FnOnce(&str) -> String) -> Rollbot {
        Rollbot::builder().config(config).start().await
    }

    async fn start_on(
        config: Box<dyn FnOnce(&str) -> String + '_>,
        proxy_port: Option<u16>,
        page: Option<rollbot::statuspage::Provider>,
        step_secrets: BTreeMap<String, String>,
        socket_mode: bool,
    ) -> Rollbot {
        let scratch = tempfile::tempdir().unwrap();
        let marker = scratch.path().join("ran.log");
        let config = Config::parse("test.toml", &config(marker.to_str().unwrap()))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let storage = TestStorage::new(BACKEND.with(|b| b.get()));
        let store = storage.open(proxy_port).await;
        let slack = FakeSlack::start().await;
        let clock = Arc::new(ManualClock::at(t0()));
        slack.enforce_slack_limits(clock.clone());
        let api = SlackApi::new(&slack.api_url, &Secret::new(BOT_TOKEN)).unwrap();
        let app = App::new(Parts {
            config: config.clone(),
            store,
            clock: clock.clone(),
            verifier: SignatureVerifier::new(vec![Secret::new(SIGNING_SECRET)]),
            slack: api,
            tokens: test_tokens(),
            status_page: page.map(|provider| rollbot::statuspage::StatusPage::new(provider).unwrap()),
            pagerduty: pagerduty_of(&config),
            change_events: change_events_of(&config),
            step_secrets: SecretSource::Fixed(Arc::new(step_secrets.clone())),
            seal_key: test_seal_key(),
        })
        .with_step_supervisor(env!("CARGO_BIN_EXE_rollbot-step-supervisor").into());
        let app = if socket_mode {
            app.with_socket_mode(Secret::new(APP_TOKEN))
        } else {
            app
        };
        let socket_mode = app.socket_mode.clone().map(|worker| {
            let (held, never) = rollbot::shutdown::channel();
            tokio::spawn(async move {
                let _never_fired = held;
                worker.run_forever(never).await;
            })
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router.clone();
        // Served as `rollbot serve` serves it, with its deadlines and connection cap; the
        // harness stops it by dropping the task.
        let (held, never) = rollbot::shutdown::channel();
        let limits = app.limits;
        let server = tokio::spawn(async move {
            let _never_fired = held;
            rollbot::http::server::serve(listener, router, never, limits)
                .await
                .unwrap();
        });
        Rollbot {
            url,
            app,
            clock,
            slack,
            scratch,
            config,
            http: crate::support::http_client(),
            seen: Mutex::new(vec![]),
            server,
            socket_mode,
            step_secrets,
            storage,
        }
    }

    /// Another rollbot process on the same database, Slack and clock: a replica, or the same
    /// service after a restart.
    pub async fn another_process(&self) -> App {
        assert!(
            matches!(self.storage, TestStorage::Postgres(_)),
            "several processes share only PostgreSQL"
        );
        let store = self.storage.open(None).await;
        let api = SlackApi::new(&self.slack.api_url, &Secret::new(BOT_TOKEN)).unwrap();
        let verifier = SignatureVerifier::new(vec![Secret::new(SIGNING_SECRET)]);
        App::new(Parts {
            config: self.config.clone(),
            store,
            clock: self.clock.clone(),
            verifier,
            slack: api,
            tokens: test_tokens(),
            status_page: None,
            pagerduty: pagerduty_of(&self.config),
            change_events: change_events_of(&self.config),
            step_secrets: SecretSource::Fixed(Arc::new(self.step_secrets.clone())),
            seal_key: test_seal_key(),
        })
        .with_step_supervisor(env!("CARGO_BIN_EXE_rollbot-step-supervisor").into())
    }

    /// Plays a process that claims the queued rollback `id`, starts the step it runs next and
    /// dies without a word: its lease is taken and never renewed.
    pub async fn die_during_next_step(&self, id: i64) {
        use rollbot::domain::{Action, Actor, RollbackId};
        let engine = &self.app.engine;
        let claim = rollbot::engine::Change::new(Action::StartRun, Actor::system()).holding(rollbot::store::Lease {
            owner: "rollbot-dead".into(),
            length: std::time::Duration::from_secs(30),
            at: self.clock.store_time(),
        });
        let started = engine.change(RollbackId(id), claim).await.unwrap().unwrap();
        let index = started.next_step().expect("a step to start");
        engine
            .act(RollbackId(id), &Action::StartStep { index }, &Actor::system())
            .await
            .unwrap()
            .unwrap();
    }

    /// `die_during_next_step` for a rollback that has not run yet: it dies during step 1.
    pub async fn die_during_first_step(&self, id: i64) {
        self.die_during_next_step(id).await
    }

    /// Lets time pass in steps of `step_secs`, settling after each, until nothing is pending or
    /// `total_secs` have passed; returns the seconds it took.
    pub async fn ride_out(&self, step_secs: u64, total_secs: u64) -> u64 {
        let mut waited = 0;
        while waited < total_secs {
            self.settle().await;
            if self.count("SELECT count(*) FROM outbox WHERE done_at IS NULL").await == 0 {
                return waited;
            }
            self.advance_secs(step_secs);
            waited += step_secs;
        }
        waited
    }

    pub fn advance_secs(&self, seconds: u64) {
        self.clock.advance(std::time::Duration::from_secs(seconds));
    }

    /// What `GET /metrics` says now.
    pub async fn metrics(&self) -> String {
        let answer = crate::support::http_client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap()
    }

    pub fn advance(&self, minutes: u64) {
        self.clock.advance(std::time::Duration::from_secs(minutes * 60));
    }

    pub fn marker(&self) -> Vec<String> {
        std::fs::read_to_string(self.scratch.path().join("ran.log"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Sends a request signed as Slack signs it, at the test clock's time.
    pub async fn signed_post(&self, path: &str, body: String) -> reqwest::Response {
        let timestamp = self.clock.now().timestamp();
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", sign(SIGNING_SECRET, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn raw_post(&self, path: &str, headers: &[(&str, String)], body: String) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.url)).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap()
    }

    /// `/rollback <text>` typed by `user` in the incident channel; returns the private answer.
    pub async fn slash(&self, user: &str, text: &str) -> String {
        self.slash_in(user, INCIDENTS, text).await
    }

    /// As `slash`, from a client that sent no `trigger_id`, so no form can be opened.
    pub async fn slash_without_trigger(&self, user: &str, text: &str) -> String {
        let body: Vec<(String, String)> = serde_urlencoded::from_str(&slash_body(user, INCIDENTS, text)).unwrap();
        let body = serde_urlencoded::to_string(
            body.into_iter()
                .map(|(k, v)| if k == "trigger_id" { (k, String::new()) } else { (k, v) })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        self.answer_of(self.signed_post("/slack/commands", body).await).await
    }

    pub async fn slash_in(&self, user: &str, channel: &str, text: &str) -> String {
        self.answer_of(
            self.signed_post("/slack/commands", slash_body(user, channel, text))
                .await,
        )
        .await
    }

    /// `user` of another workspace `team` types `/rollback <text>` in `channel`.
    pub async fn slash_from_team(&self, user: &str, team: &str, channel: &str, text: &str) -> String {
        let body = slash_body_from_team(user, team, channel, text);
        self.answer_of(self.signed_post("/slack/commands", body).await).await
    }

    async fn answer_of(&self, response: reqwest::Response) -> String {
        assert_eq!(
            response.status(),
            200,
            "slash command answered with {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["response_type"], "ephemeral",
            "answers to /rollback are private: {body}"
        );
        body["text"].as_str().unwrap().to_owned()
    }

    /// `user` clicks `button` (`Button::Approve(rb(1))`, `Button::Continue(rb(1), 2)`) where
    /// rollbot posted it, in the incident channel.
    pub async fn click(&self, user: &str, button: Button) -> reqwest::StatusCode {
        self.click_in(user, INCIDENTS, button).await
    }

    /// `user` clicks `button` on a copy of it seen in another `channel`.
    pub async fn click_in(&self, user: &str, channel: &str, button: Button) -> reqwest::StatusCode {
        let body = click_body(user, channel, button.action_id(), &button.value());
        self.signed_post("/slack/interactions", body).await.status()
    }

    /// `user` leaves exactly the boxes `ticked` (their texts) ticked in checkbox group `group`
    /// (counting from 0) of `message`, as Slack sends it: the group's whole selection.
    pub async fn tick(&self, user: &str, message: &Posted, group: usize, ticked: &[&str]) -> reqwest::StatusCode {
        let groups: Vec<&serde_json::Value> = message
            .blocks
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap())
            .filter(|e| e["type"] == "checkboxes")
            .collect();
        let element = groups
            .get(group)
            .unwrap_or_else(|| panic!("no checkbox group {group} in {:#?}", message.blocks));
        let selected: Vec<serde_json::Value> = element["options"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| ticked.contains(&o["text"]["text"].as_str().unwrap()))
            .cloned()
            .collect();
        assert_eq!(
            selected.len(),
            ticked.len(),
            "every box to tick is in the group: {element:#}"
        );
        let action_id = element["action_id"].as_str().unwrap();
        let body = ticks_body(user, &message.channel, &message.ts, action_id, selected);
        self.signed_post("/slack/interactions", body).await.status()
    }

    /// Runs the outbox and the executor until neither has anything left to do (at most
    /// `SETTLE_ROUNDS` rounds: more means something keeps making work).
    pub async fn settle(&self) {
        /// A channel's slots are at most this far ahead after a burst; a longer wait is not pacing.
        const PACED_WAIT: chrono::Duration = chrono::Duration::seconds(rollbot::store::CHANNEL_POST_BURST as i64 + 1);
        for _ in 0..SETTLE_ROUNDS {
            let fired = self.app.timers.run_once().await.unwrap();
            let delivered = self.app.delivery.run_once().await.unwrap();
            let ran = self.app.executor.run_once().await.unwrap();
            if fired == 0 && delivered == 0 && !ran {
                // Posts waiting for their channel's next slot are due within seconds (a burst
                // spends the channel's credit): let that time pass, as it would for a real
                // rollbot. Retries after errors wait.
                let paced = self.app.engine.next_paced_delivery().await.unwrap();
                match paced {
                    Some(at) if at > self.clock.now() && at - self.clock.now() <= PACED_WAIT => {
                        self.clock.set(at);
                        continue;
                    }
                    _ => return,
                }
            }
        }
        panic!("rollbot did not settle after {SETTLE_ROUNDS} rounds");
    }

    fn take(&self, pick: impl Fn(&Call) -> bool) -> Vec<(usize, Call)> {
        let calls = self.slack.calls();
        let mut seen = self.seen.lock().unwrap();
        seen.resize(calls.len(), false);
        let mut taken = vec![];
        for (i, call) in calls.into_iter().enumerate() {
            if !seen[i] && pick(&call) {
                seen[i] = true;
                taken.push((i, call));
            }
        }
        taken
    }

    /// Overwrites rollback `rollback.id`'s stored document, as someone with write access to
    /// the database (and not to rollbot's key) could.
    pub async fn tamper_with(&self, rollback: &rollbot::domain::Rollback) {
        let TestStorage::Postgres(db) = &self.storage else {
            panic!("tampering is shown on PostgreSQL");
        };
        let doc = serde_json::to_value(rollback).unwrap();
        connect(&db.url)
            .await
            .execute("UPDATE rollbacks SET doc = $1 WHERE id = $2", &[&doc, &rollback.id.0])
            .await
            .unwrap();
    }

    /// Runs a SQL query on the test's store (for assertions about what was recorded).
    /// Counts rows with raw SQL, for what the store façade does not read (kept to a few).
    pub async fn count(&self, sql: &str) -> i64 {
        self.storage.count(sql).await
    }

    /// Every rollback recorded, newest first, read through the engine.
    pub async fn rollbacks(&self) -> Vec<rollbot::domain::Rollback> {
        self.app.engine.recent(None, false, 10_000).await.unwrap()
    }

    /// Every event rollback `RB-n` recorded, in order.
    pub async fn history(&self, n: i64) -> Vec<rollbot::domain::Recorded> {
        self.app
            .engine
            .record(rb(n))
            .await
            .unwrap()
            .map(|(_, history)| history)
            .unwrap_or_default()
    }

    /// How many events of every rollback have these fields (`("type", "approved")`), as stored.
    pub async fn events_with(&self, fields: &[(&str, &str)]) -> usize {
        let mut found = 0;
        for rollback in self.rollbacks().await {
            for recorded in self.history(rollback.id.0).await {
                let event = serde_json::to_value(&recorded.event).unwrap();
                // As SQL's `->>` reads a field: text as it is, anything else as JSON.
                let field = |name: &str| match &event[name] {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                if fields.iter().all(|(name, value)| field(name) == *value) {
                    found += 1;
                }
            }
        }
        found
    }

    /// Timers not yet fired, of every rollback.
    pub async fn pending_timers(&self) -> usize {
        let mut pending = 0;
        for rollback in self.rollbacks().await {
            pending += self.app.engine.pending_timers(rollback.id).await.unwrap().len();
        }
        pending
    }

    /// Messages given up on, as `/metrics` counts them.
    pub async fn undeliverable(&self) -> i64 {
        self.app.engine.figures().await.unwrap().outbox_undeliverable
    }

    /// When the first undelivered message may next be tried, in Unix seconds.
    pub async fn next_attempt_of_pending_message(&self) -> i64 {
        let sql = match self.storage {
            TestStorage::Postgres(_) => {
                "SELECT EXTRACT(EPOCH FROM available_at)::bigint FROM outbox WHERE done_at IS NULL ORDER BY id LIMIT 1"
            }
            TestStorage::Embedded(_) => {
                "SELECT unixepoch(available_at) FROM outbox WHERE done_at IS NULL ORDER BY id LIMIT 1"
            }
        };
        self.count(sql).await
    }
}

impl Drop for Rollbot {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(worker) = &self.socket_mode {
            worker.abort();
        }
        if !std::thread::panicking() {
            let unseen = self.unseen();
            assert!(
                unseen.is_empty(),
                "the test never looked at these Slack calls: {unseen:#?}"
            );
            assert_eq!(
                self.slack.unseen_rate_limits(),
                0,
                "rollbot went past Slack's published limits (429) and the test never looked"
            );
        }
    }
}

/// Writes an executable shell script `name` into `dir`: a stand-in for a tool a runbook calls.
pub fn fake_program(dir: &std::path::Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Rollback `RB-n`, for a button.
pub fn rb(n: i64) -> rollbot::domain::RollbackId {
    rollbot::domain::RollbackId(n)
}

/// Proposal `P-n`, for a button.
pub fn pr(n: i64) -> rollbot::domain::ProposalId {
    rollbot::domain::ProposalId(n)
}

/// The seal key every test rollbot derives, as `rollbot serve` does, from its signing secret.
pub fn test_seal_key() -> rollbot::domain::seal::SealKey {
    rollbot::domain::seal::SealKey::derive([SIGNING_SECRET])
}

/// The bearer tokens every test rollbot accepts.
fn test_tokens() -> rollbot::http::BearerTokens {
    rollbot::http::BearerTokens {
        api: Some(Secret::new(API_TOKEN)),
        alertmanager: Some(Secret::new(ALERTMANAGER_TOKEN)),
    }
}

/// An HTTP client for the tests' own calls, with rollbot's TLS settings (reqwest is built
/// without a crypto provider of its own: rollbot's is ring).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rollbot::outbound::system_roots().unwrap())
        .build()
        .unwrap()
}
