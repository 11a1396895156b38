//! The test harness: a fresh database per test, a fake Slack, rollbot's real router on
//! loopback, and helpers that read like the story they tell.
pub mod fake_service;
pub mod fake_slack;
pub mod fake_statuspage;
pub mod proxy;
pub mod serve;

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

pub fn shared_dir() -> PathBuf {
    std::env::var_os("ROLLBOT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

pub fn postgres_base_url() -> String {
    std::env::var("ROLLBOT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of its own for one test, dropped when the test ends, pass or fail.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = format!("rollbot_test_{}", uuid::Uuid::new_v4().simple());
        TestDb {
            url: format!("{}/{name}", postgres_base_url()),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", postgres_base_url());
        let name = self.name.clone();
        // Drop runs outside any runtime we may block, so use a thread with its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok((client, connection)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                        tokio::spawn(connection);
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .await;
                    }
                })
        })
        .join();
    }
}

/// A database of its own for a test's steps to work on; dropped with the returned TestDb.
pub async fn scratch_database() -> TestDb {
    let db = TestDb::new();
    connect(&format!("{}/postgres", postgres_base_url()))
        .await
        .batch_execute(&format!("CREATE DATABASE \"{}\"", db.name))
        .await
        .unwrap();
    db
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running at 127.0.0.1:5432 (.ci/run starts it)");
    tokio::spawn(connection);
    client
}

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

[roles]
on_call = ["{ALICE}", "{BOB}", "{BETH}"]
team_lead = ["{CAROL}"]
devops_lead = ["{DAVE}"]
eng_manager = ["{ERIN}"]
cto = ["{CHLOE}"]

[severity.high]
approvers = ["on_call"]
expire_after = "2h"

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
confirm = "CONFIRM_FULL_RESTORE"

[services.checkout-api]
runbooks = ["app", "broken", "database"]
vars = {{ marker = "{marker}" }}
"#
    )
}

/// How many rounds `settle` drives the workers before it calls the loop endless.
const SETTLE_ROUNDS: usize = 500;

/// A message as the fake Slack received it, with its text flattened for assertions.
#[derive(Debug, Clone)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
}

impl Posted {
    fn from_call(call: &Call, ts: String) -> Posted {
        let mut text = call.body["text"].as_str().unwrap_or_default().to_owned();
        collect_text(&call.body["blocks"], &mut text);
        Posted {
            channel: call.body["channel"].as_str().unwrap_or_default().to_owned(),
            ts,
            text,
            blocks: call.body["blocks"].clone(),
        }
    }

    /// The action_ids of the buttons on the message.
    pub fn buttons(&self) -> Vec<String> {
        let mut ids = vec![];
        for block in self.blocks.as_array().into_iter().flatten() {
            for element in block["elements"].as_array().into_iter().flatten() {
                if let Some(id) = element["action_id"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
        ids
    }

    /// The button with `action_id`, as posted.
    pub fn button(&self, action_id: &str) -> Value {
        self.blocks
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|block| block["elements"].as_array().into_iter().flatten())
            .find(|element| element["action_id"] == action_id)
            .unwrap_or_else(|| panic!("no `{action_id}` button in {}", self.text))
            .clone()
    }
}

fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get("text") {
                out.push('\n');
                out.push_str(t);
            }
            for (k, v) in map {
                if k != "text" || !v.is_string() {
                    collect_text(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

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
    step_secrets: BTreeMap<String, String>,
    storage: TestStorage,
}

/// Which store a story runs on. Stories run on PostgreSQL unless `on_embedded_store` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Embedded,
}

thread_local! {
    static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Postgres) };
}

/// Runs a `#[tokio::test]` story with every `Rollbot` it starts on the embedded store. The
/// story's runtime runs on this thread, so it sees the choice.
pub fn on_embedded_store(story: fn()) {
    BACKEND.with(|b| b.set(Backend::Embedded));
    let outcome = std::panic::catch_unwind(story);
    BACKEND.with(|b| b.set(Backend::Postgres));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Generates, for each story named, a test that runs it again on the embedded store.
#[macro_export]
macro_rules! also_on_embedded_store {
    ($($story:ident),* $(,)?) => {
        mod on_embedded_store {
            $(
                #[test]
                fn $story() {
                    $crate::support::on_embedded_store(super::$story);
                }
            )*
        }
    };
}

/// The store behind a test's rollbot, removed when the test ends.
pub enum TestStorage {
    Postgres(TestDb),
    Embedded(tempfile::TempDir),
}

impl TestStorage {
    pub fn new(backend: Backend) -> TestStorage {
        match backend {
            Backend::Postgres => TestStorage::Postgres(TestDb::new()),
            Backend::Embedded => TestStorage::Embedded(tempfile::tempdir().unwrap()),
        }
    }

    pub fn embedded_file(&self) -> Option<PathBuf> {
        match self {
            TestStorage::Embedded(dir) => Some(dir.path().join(rollbot::store::embedded::FILE_NAME)),
            TestStorage::Postgres(_) => None,
        }
    }

    /// Opens the store (migrated), reaching PostgreSQL through `proxy_port` if given.
    pub async fn open(&self, proxy_port: Option<u16>) -> Store {
        let store = match self {
            TestStorage::Postgres(db) => {
                let url = match proxy_port {
                    Some(port) => db.url.replace(":5432/", &format!(":{port}/")),
                    None => db.url.clone(),
                };
                Store::connect(&url)
                    .await
                    .expect("PostgreSQL must be running at 127.0.0.1:5432 (.ci/run starts it)")
            }
            TestStorage::Embedded(_) => {
                assert!(proxy_port.is_none(), "only PostgreSQL is reached through a proxy");
                Store::open_embedded(&self.embedded_file().unwrap()).unwrap()
            }
        };
        store.migrate().await.unwrap();
        store
    }

    /// The single number `sql` selects, read beside rollbot (SQLite understands `->>` too).
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            TestStorage::Postgres(db) => connect(&db.url).await.query_one(sql, &[]).await.unwrap().get(0),
            TestStorage::Embedded(_) => {
                let reader = rusqlite::Connection::open_with_flags(
                    self.embedded_file().unwrap(),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                reader
                    .query_row(sql, [], |r| r.get(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }
}

/// How a test rollbot is started: `Rollbot::builder().config(f).page(p).secrets(&[…]).start()`.
pub struct Builder<'a> {
    config: Box<dyn FnOnce(&str) -> String + 'a>,
    proxy_port: Option<u16>,
    page: Option<rollbot::statuspage::Provider>,
    step_secrets: BTreeMap<String, String>,
}

impl<'a> Builder<'a> {
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
        Rollbot::start_on(self.config, self.proxy_port, self.page, self.step_secrets).await
    }
}

impl Rollbot {
    pub fn builder<'a>() -> Builder<'a> {
        Builder {
            config: Box::new(test_config),
            proxy_port: None,
            page: None,
            step_secrets: BTreeMap::new(),
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
    ) -> Rollbot {
        let scratch = tempfile::tempdir().unwrap();
        let marker = scratch.path().join("ran.log");
        let config = Config::parse("test.toml", &config(marker.to_str().unwrap()))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let storage = TestStorage::new(BACKEND.with(|b| b.get()));
        let store = storage.open(proxy_port).await;
        let slack = FakeSlack::start().await;
        let clock = Arc::new(ManualClock::at(t0()));
        let api = SlackApi::new(&slack.api_url, &Secret::new(BOT_TOKEN)).unwrap();
        let app = App::new(Parts {
            config: config.clone(),
            store,
            clock: clock.clone(),
            verifier: SignatureVerifier::new(vec![Secret::new(SIGNING_SECRET)]),
            slack: api,
            tokens: test_tokens(),
            status_page: page.map(|provider| rollbot::statuspage::StatusPage::new(provider).unwrap()),
            step_secrets: SecretSource::Fixed(Arc::new(step_secrets.clone())),
        })
        .with_step_supervisor(env!("CARGO_BIN_EXE_rollbot-step-supervisor").into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Rollbot {
            url,
            app,
            clock,
            slack,
            scratch,
            config,
            http: reqwest::Client::new(),
            seen: Mutex::new(vec![]),
            server,
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
            step_secrets: SecretSource::Fixed(Arc::new(self.step_secrets.clone())),
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
        let answer = reqwest::get(format!("{}/metrics", self.url)).await.unwrap();
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

    /// Runs the outbox and the executor until neither has anything left to do (at most
    /// `SETTLE_ROUNDS` rounds: more means something keeps making work).
    pub async fn settle(&self) {
        for _ in 0..SETTLE_ROUNDS {
            let fired = self.app.timers.run_once().await.unwrap();
            let delivered = self.app.delivery.run_once().await.unwrap();
            let ran = self.app.executor.run_once().await.unwrap();
            if fired == 0 && delivered == 0 && !ran {
                // Posts waiting for their channel's next slot are due within a second: let
                // that second pass, as it would for a real rollbot. Retries after errors wait.
                let paced = self.app.engine.next_paced_delivery().await.unwrap();
                match paced {
                    Some(at) if at > self.clock.now() && at - self.clock.now() <= chrono::Duration::seconds(1) => {
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

    /// The next new card posted to a channel (not a thread reply).
    pub fn expect_card(&self) -> Posted {
        let mut cards =
            self.take(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none_or(Value::is_null));
        assert!(
            !cards.is_empty(),
            "expected a new card; Slack saw: {:#?}",
            self.slack.calls()
        );
        let (_, call) = cards.remove(0);
        // Put back any further cards for later expectations.
        let mut seen = self.seen.lock().unwrap();
        for (i, _) in cards {
            seen[i] = false;
        }
        Posted::from_call(&call, call.ts.clone().unwrap())
    }

    /// The card as people see it now: its last update, or the original if never updated.
    pub fn card_now(&self, card: &Posted) -> Posted {
        let updates = self.take(|c| c.method == "chat.update" && c.body["ts"] == card.ts.as_str());
        match updates.last() {
            Some((_, call)) => Posted::from_call(call, card.ts.clone()),
            None => card.clone(),
        }
    }

    /// Top-level posts to `channel` (not the card's) since the last look, in order.
    pub fn posts_in(&self, channel: &str) -> Vec<String> {
        self.take(|c| {
            c.method == "chat.postMessage"
                && c.body["channel"] == channel
                && c.body.get("thread_ts").is_none_or(Value::is_null)
        })
        .into_iter()
        .map(|(_, c)| c.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
    }

    /// Replies in the card's thread since the last look, in order.
    pub fn thread(&self, card: &Posted) -> Vec<String> {
        self.take(|c| c.method == "chat.postMessage" && c.body["thread_ts"] == card.ts.as_str())
            .into_iter()
            .map(|(_, c)| c.body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The next modal rollbot opened (`views.open`), for the person who clicked.
    pub fn expect_modal(&self) -> Value {
        let mut opened = self.take(|c| c.method == "views.open");
        assert_eq!(
            opened.len(),
            1,
            "expected one modal; Slack saw: {:#?}",
            self.slack.calls()
        );
        opened.remove(0).1.body["view"].clone()
    }

    /// Group lookups since the last look (they are Slack calls too).
    pub fn group_lookups(&self) -> Vec<String> {
        self.take(|c| c.method == "usergroups.users.list")
            .into_iter()
            .map(|(_, c)| c.body["usergroup"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// `user` submits `view` with these typed values (input block id → text); returns
    /// rollbot's answer: `None` when the modal may close, or the JSON it answered with.
    pub async fn submit(&self, user: &str, view: &Value, values: &[(&str, &str)]) -> Option<Value> {
        let mut payload: Value = serde_json::from_str(
            &std::fs::read_to_string(shared_dir().join("slack/payloads/ViewSubmissionPayload.json")).unwrap(),
        )
        .unwrap();
        payload["team"]["id"] = json!(TEAM);
        payload["user"]["id"] = json!(user);
        payload["user"]["team_id"] = json!(TEAM);
        payload["view"]["callback_id"] = view["callback_id"].clone();
        payload["view"]["private_metadata"] = view["private_metadata"].clone();
        let mut state = serde_json::Map::new();
        for (block, text) in values {
            state.insert(
                block.to_string(),
                json!({ *block: {"type": "plain_text_input", "value": text} }),
            );
        }
        payload["view"]["state"] = json!({ "values": state });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let response = self.signed_post("/slack/interactions", body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        (!text.is_empty()).then(|| serde_json::from_str(&text).unwrap())
    }

    /// Private messages to `user` since the last look.
    pub fn ephemerals(&self, user: &str) -> Vec<String> {
        self.take(|c| c.method == "chat.postEphemeral" && c.body["user"] == user)
            .into_iter()
            .map(|(_, c)| c.body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn unseen(&self) -> Vec<Call> {
        let calls = self.slack.calls();
        let seen = self.seen.lock().unwrap();
        calls
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !seen.get(*i).copied().unwrap_or(false))
            .map(|(_, c)| c)
            .collect()
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
                "SELECT EXTRACT(EPOCH FROM available_at)::bigint FROM outbox WHERE done_at IS NULL"
            }
            TestStorage::Embedded(_) => "SELECT unixepoch(available_at) FROM outbox WHERE done_at IS NULL",
        };
        self.count(sql).await
    }
}

impl Drop for Rollbot {
    fn drop(&mut self) {
        self.server.abort();
        if !std::thread::panicking() {
            let unseen = self.unseen();
            assert!(
                unseen.is_empty(),
                "the test never looked at these Slack calls: {unseen:#?}"
            );
        }
    }
}

/// A slash-command form, field for field as Slack sends it (from the shared sample).
/// Slack gives every invocation (a command typed, a button clicked) a trigger of its own, so
/// two invocations never have the same body: the same body twice is one delivery repeated.
fn new_trigger_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("13345224609.738474920.{n:019x}")
}

pub fn slash_body(user: &str, channel: &str, text: &str) -> String {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(shared_dir().join("slack/payloads/SlashCommandPayload.json")).unwrap(),
    )
    .unwrap();
    let mut fields: Vec<(String, String)> = vec![];
    for (key, value) in sample.as_object().unwrap() {
        let filled = match key.as_str() {
            "team_id" => TEAM.to_owned(),
            "team_domain" => "acme".to_owned(),
            "channel_id" => channel.to_owned(),
            "channel_name" => "incident-response".to_owned(),
            "user_id" => user.to_owned(),
            "user_name" => user.to_lowercase(),
            "command" => "/rollback".to_owned(),
            // Slack escapes these three in command text.
            "text" => text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
            "response_url" => "http://127.0.0.1:9/commands/T0TEST/1/x".to_owned(),
            "trigger_id" => new_trigger_id(),
            "api_app_id" => "A0ROLLBOT".to_owned(),
            _ => match value {
                Value::String(_) => String::new(),
                other => other.to_string(),
            },
        };
        fields.push((key.clone(), filled));
    }
    serde_urlencoded::to_string(&fields).unwrap()
}

/// A block_actions payload for a button on a card, shaped like Slack's sample.
pub fn click_body(user: &str, channel: &str, action: &str, id: &str) -> String {
    click_body_from_team(user, TEAM, channel, action, id)
}

pub fn click_body_from_team(user: &str, team: &str, channel: &str, action: &str, id: &str) -> String {
    let mut payload: Value = serde_json::from_str(
        &std::fs::read_to_string(shared_dir().join("slack/payloads/BlockActionPayload.json")).unwrap(),
    )
    .unwrap();
    payload["team"]["id"] = json!(team);
    payload["user"]["id"] = json!(user);
    payload["user"]["team_id"] = json!(team);
    payload["channel"]["id"] = json!(channel);
    payload["container"]["channel_id"] = json!(channel);
    payload["container"]["message_ts"] = json!("1790000000.000001");
    payload["trigger_id"] = json!(new_trigger_id());
    let action_value = json!({"type": "button", "action_id": action, "block_id": format!("rollback:{id}"), "value": id, "action_ts": "1790000001.000000"});
    payload["actions"] = json!([action_value]);
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// `text` with what changes from run to run (step durations, loopback ports, scratch paths and
/// the plan digests that include them) replaced by a placeholder, for a snapshot of what people
/// read.
pub fn redacted(text: &str) -> String {
    let durations = regex::Regex::new(r"\b\d+(\.\d+)? ?(ms|s)\b").unwrap();
    let ports = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let scratch = regex::Regex::new(r"/tmp/\.tmp\w+").unwrap();
    let digest = regex::Regex::new(r"digest `[0-9a-f]{12}`").unwrap();
    let text = digest.replace_all(text, "digest `[digest]`");
    let text = durations.replace_all(&text, "[duration]");
    let text = ports.replace_all(&text, "127.0.0.1:[port]");
    scratch.replace_all(&text, "[scratch]").into_owned()
}

/// A thread as one text to pin: its messages in order, each after a rule.
pub fn transcript(thread: &[String]) -> String {
    thread.iter().map(|m| format!("---\n{m}\n")).collect()
}

/// Rollback `RB-n`, for a button.
pub fn rb(n: i64) -> rollbot::domain::RollbackId {
    rollbot::domain::RollbackId(n)
}

/// Proposal `P-n`, for a button.
pub fn pr(n: i64) -> rollbot::domain::ProposalId {
    rollbot::domain::ProposalId(n)
}

/// The bearer tokens every test rollbot accepts.
fn test_tokens() -> rollbot::http::BearerTokens {
    rollbot::http::BearerTokens {
        api: Some(Secret::new(API_TOKEN)),
        alertmanager: Some(Secret::new(ALERTMANAGER_TOKEN)),
    }
}
