//! The faults real incidents bring, played against the real binary and real PostgreSQL: a
//! replica that stalls past its lease, a database that blips or goes silent, the same signed
//! request delivered again. Each test attacks one guarantee of docs/architecture.md.
use crate::support::fake_slack::FakeSlack;
use crate::support::proxy::Proxy;
use crate::support::serve::*;
use crate::support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// The lines a step script appended to `marker`.
fn lines(marker: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether a process runs (a zombie no longer does).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

async fn state_of(store: &tokio_postgres::Client, id: i64) -> String {
    store
        .query_one("SELECT state FROM rollbacks WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

async fn event_kinds(store: &tokio_postgres::Client, id: i64) -> Vec<String> {
    store
        .query(
            "SELECT event->>'type' FROM rollback_events WHERE rollback_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A two-step runbook whose first step logs its start and end with its pid and takes
/// `sleep` seconds; the second logs that it ran.
fn slow_then_quick(marker: &std::path::Path, sleep: u64, lease: &str) -> String {
    let m = marker.display();
    format!(
        r#"[runbooks.slow]
[[runbooks.slow.steps]]
name = "Slow undo"
run = ["sh", "-c", 'echo "start $$" >> "$1"; sleep {sleep}; echo "end $$" >> "$1"', "step", "{m}"]
timeout = "5m"

[[runbooks.slow.steps]]
name = "Quick check"
run = ["sh", "-c", 'echo "second step" >> "$1"', "step", "{m}"]

[limits]
execution_lease = "{lease}"

[services.slow-api]
runbooks = ["slow"]
"#
    )
}

/// One test's world: its own database, a fake Slack, a scratch folder, and a configuration
/// with the slow-then-quick runbook.
struct Scene {
    db: TestDb,
    slack: FakeSlack,
    scratch: tempfile::TempDir,
    marker: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Scene {
    async fn new(sleep: u64, lease: &str) -> Scene {
        let scratch = tempfile::tempdir().unwrap();
        let marker = scratch.path().join("ran.log");
        let config = scratch.path().join("rollbot.toml");
        std::fs::write(
            &config,
            test_config(marker.to_str().unwrap()) + &slow_then_quick(&marker, sleep, lease),
        )
        .unwrap();
        Scene {
            db: TestDb::new(),
            slack: FakeSlack::start().await,
            scratch,
            marker,
            config,
        }
    }

    fn parts(
        &self,
    ) -> (
        &TestDb,
        &FakeSlack,
        &tempfile::TempDir,
        &std::path::Path,
        &std::path::Path,
    ) {
        (&self.db, &self.slack, &self.scratch, &self.marker, &self.config)
    }

    /// Creates the database and its tables directly, for a test whose rollbot goes through a proxy.
    async fn migrate(&self) {
        rollbot::store::Store::connect(&self.db.url)
            .await
            .unwrap()
            .migrate()
            .await
            .unwrap();
    }

    /// Alice requests the slow runbook at critical severity (it runs at once) through `serve`;
    /// returns once its first step has started.
    async fn request_and_wait_for_the_step(&self, serve: &Serve) {
        serve
            .post_signed(
                "/slack/commands",
                slash_body(ALICE, INCIDENTS, "slow-api severity critical"),
            )
            .await;
        wait_for_or_show(&|| serve.log(), "the first step to start", async || {
            (lines(&self.marker).len() == 1).then_some(())
        })
        .await;
    }

    /// `rollbot serve` whose connections to PostgreSQL go through `proxy`.
    async fn serve_through(&self, name: &str, proxy: &Proxy) -> Serve {
        let through = self
            .db
            .url
            .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
        assert_ne!(through, self.db.url);
        let (slack, dir) = (&self.slack, self.scratch.path());
        Serve::start_on(name, ("DATABASE_URL", through), slack, &self.config, dir).await
    }
}

fn pid_in(line: &str) -> i32 {
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_replica_stalled_past_its_lease_runs_nothing_beside_the_retry_and_its_result_stays_late() {
    let scene = Scene::new(4, "2s").await;
    let (db, slack, scratch, marker, config) = scene.parts();

    let first = Serve::start("first", db, slack, config, scratch.path()).await;
    scene.request_and_wait_for_the_step(&first).await;
    let first_attempt = pid_in(&lines(marker)[0]);
    let second = Serve::start("second", db, slack, config, scratch.path()).await;

    // A stalls: a GC-like pause, a frozen VM. Its step keeps no lease alive.
    let stalled = Pid::from_raw(first.child.id() as i32);
    kill(stalled, Signal::SIGSTOP).unwrap();
    let store = connect(&db.url).await;
    wait_for_or_show(&|| second.log(), "the survivor to mark RB-1 interrupted", async || {
        (state_of(&store, 1).await == "interrupted").then_some(())
    })
    .await;
    assert!(
        !alive(first_attempt),
        "the stalled replica's attempt was stopped before anyone could retry it"
    );

    let retry = second
        .post_signed("/slack/interactions", click_body(ALICE, INCIDENTS, "retry", "RB-1@0"))
        .await;
    assert_eq!(retry.status(), 200);
    wait_for_or_show(&|| second.log(), "the retried attempt", async || {
        (lines(marker).len() == 2).then_some(())
    })
    .await;
    // A wakes up while the retry runs: it must neither take the run back nor record anything
    // as the new attempt's result.
    kill(stalled, Signal::SIGCONT).unwrap();
    wait_for_or_show(&|| first.log() + &second.log(), "the run's end", async || {
        (state_of(&store, 1).await == "succeeded").then_some(())
    })
    .await;
    let ran = lines(marker);
    let retried_attempt = pid_in(&ran[1]);
    assert_eq!(
        ran,
        [
            format!("start {first_attempt}"),
            format!("start {retried_attempt}"),
            format!("end {retried_attempt}"),
            "second step".to_owned(),
        ],
        "one attempt at a time, the first cut short, the next step once"
    );
    let kinds = event_kinds(&store, 1).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "late_result").count(),
        1,
        "the stalled attempt is on the record as late: {kinds:?}"
    );
    let (rollback, _) = rollbot::store::Store::connect(&db.url)
        .await
        .unwrap()
        .load_with_history(rollbot::domain::RollbackId(1))
        .await
        .unwrap()
        .unwrap();
    let first_step: Vec<_> = rollback.steps.iter().filter(|s| s.index == 0).collect();
    assert_eq!(first_step.len(), 2, "two attempts of step 1 were recorded");
    assert_eq!(
        first_step[0].result.as_ref().unwrap().outcome,
        rollbot::domain::StepOutcome::Interrupted
    );
    assert_eq!(
        first_step[1].result.as_ref().unwrap().outcome,
        rollbot::domain::StepOutcome::Succeeded,
        "the retried attempt's own result"
    );
    // Every message of the run is paced at one per second in the channel, behind the others.
    wait_for_or_show_within(
        60,
        &|| first.log() + &second.log(),
        "the late result in the thread",
        async || {
            slack
                .calls()
                .iter()
                .any(|c| {
                    c.body["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("🕰️ An earlier attempt of step 1 *Slow undo* ended late"))
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_database_blip_around_a_steps_end_loses_no_result() {
    let scene = Scene::new(2, "10s").await;
    let (db, _, _, marker, _) = scene.parts();
    // Create the database and its tables first, straight: the proxy is for the run.
    scene.migrate().await;
    let proxy = Proxy::to("127.0.0.1:5432".into()).await;
    let serve = scene.serve_through("serve", &proxy).await;
    scene.request_and_wait_for_the_step(&serve).await;
    // The step ends (2 s) while PostgreSQL cannot be reached, for 2 s around its end.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.cut();
    let cut_at = Instant::now();
    wait_for_or_show(&|| serve.log(), "the step's end", async || {
        (lines(marker).len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(cut_at.elapsed()) + Duration::from_millis(1000)).await;
    proxy.restore();

    let store = connect(&db.url).await;
    wait_for_or_show(&|| serve.log(), "the run's end", async || {
        (state_of(&store, 1).await == "succeeded").then_some(())
    })
    .await;
    let kinds = event_kinds(&store, 1).await;
    assert!(
        !kinds.iter().any(|k| k == "interrupted" || k == "late_result"),
        "the result was recorded as the step's, not lost: {kinds:?}"
    );
    assert_eq!(
        lines(marker).last().map(String::as_str),
        Some("second step"),
        "the run went on after the blip"
    );
    assert!(
        serve
            .log()
            .contains("could not record the step's result; trying again while the lease holds"),
        "the blip happened where this test meant it to: {}",
        serve.log()
    );
}

#[tokio::test]
async fn two_requests_for_one_service_run_one_at_a_time_and_one_delivery_sent_three_times_files_one() {
    let scene = Scene::new(3, "10s").await;
    let (db, slack, scratch, marker, config) = scene.parts();
    let first = Serve::start("first", db, slack, config, scratch.path()).await;
    let second = Serve::start("second", db, slack, config, scratch.path()).await;
    let answer = |response: reqwest::Response| async move {
        let body: serde_json::Value = response.json().await.unwrap();
        body["text"].as_str().unwrap().to_owned()
    };

    // One delivery (a body-logging proxy, a retrying ingress): the same signed bytes three
    // times, to both replicas. One rollback; each answer is the first one's.
    let body = slash_body(ALICE, INCIDENTS, "slow-api severity critical");
    let at = chrono::Utc::now().timestamp();
    let mut answers = vec![];
    for serve in [&first, &second, &first] {
        answers.push(answer(serve.post_signed_at("/slack/commands", body.clone(), at).await).await);
    }
    assert!(answers[0].starts_with("Recorded *RB-1*"), "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let store = connect(&db.url).await;
    let count: i64 = store
        .query_one("SELECT count(*) FROM rollbacks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "one delivery, one rollback");

    // Bob, at the same time, types it himself: a second rollback of the same service.
    wait_for_or_show(&|| first.log() + &second.log(), "the step to start", async || {
        (lines(marker).len() == 1).then_some(())
    })
    .await;
    let refused = answer(
        second
            .post_signed(
                "/slack/commands",
                slash_body(BOB, INCIDENTS, "slow-api severity critical"),
            )
            .await,
    )
    .await;
    assert!(
        refused.starts_with(&format!(
            "*slow-api* already has an open rollback: *RB-1* (already running, requested by <@{ALICE}>"
        )),
        "{refused}"
    );
    assert!(
        refused.contains("Nothing was requested. Wait for it to finish"),
        "{refused}"
    );
    let count: i64 = store
        .query_one("SELECT count(*) FROM rollbacks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "the refused request left nothing behind");

    wait_for_or_show(&|| first.log() + &second.log(), "RB-1's end", async || {
        (state_of(&store, 1).await == "succeeded").then_some(())
    })
    .await;
    assert_eq!(
        lines(marker).iter().filter(|l| l.starts_with("start")).count(),
        1,
        "RB-1's slow step ran once, and nothing ran beside it"
    );
    let after = answer(
        second
            .post_signed(
                "/slack/commands",
                slash_body(BOB, INCIDENTS, "slow-api severity critical"),
            )
            .await,
    )
    .await;
    assert!(
        after.starts_with("Recorded *RB-2*"),
        "once RB-1 is over the service is free: {after}"
    );
}

#[tokio::test]
async fn a_database_that_never_answers_costs_seconds_not_the_request_and_rollbot_recovers_by_itself() {
    let scene = Scene::new(0, "10s").await;
    let (db, slack, scratch, marker, config) = scene.parts();
    scene.migrate().await;
    let proxy = Proxy::to("127.0.0.1:5432".into()).await;
    let through_proxy = db.url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let serve = Serve::start_on("serve", ("DATABASE_URL", through_proxy), slack, config, scratch.path()).await;
    let text = |response: reqwest::Response| async move {
        let body: serde_json::Value = response.json().await.unwrap();
        body["text"].as_str().unwrap().to_owned()
    };
    let first = serve
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "checkout-api to 41 severity high"),
        )
        .await;
    assert!(text(first).await.starts_with("Recorded *RB-1*"));

    // A failover: PostgreSQL accepts connections and answers nothing.
    proxy.blackhole();
    let asked = Instant::now();
    let answer = serve
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "slow-api severity critical"),
        )
        .await;
    let took = asked.elapsed();
    assert_eq!(answer.status(), 200);
    let answer = text(answer).await;
    assert!(took < Duration::from_secs(3), "answered within Slack's 3 s: {took:?}");
    assert!(answer.contains("Your request was NOT recorded; try again"), "{answer}");
    let asked = Instant::now();
    let ready = crate::support::http_client()
        .get(format!("{}/readyz", serve.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(ready, 503);
    assert!(asked.elapsed() < Duration::from_secs(3), "{:?}", asked.elapsed());

    proxy.restore();
    wait_for_or_show(&|| serve.log(), "readiness without a restart", async || {
        let ready = crate::support::http_client()
            .get(format!("{}/readyz", serve.base))
            .send()
            .await
            .ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;
    let again = serve
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "slow-api severity critical"),
        )
        .await;
    assert!(
        text(again).await.starts_with("Recorded *RB-2*"),
        "the refused request left nothing behind"
    );
    wait_for_or_show(&|| serve.log(), "the workers to deliver and run again", async || {
        let posted = slack
            .calls()
            .iter()
            .any(|c| c.method == "chat.postMessage" && c.body["text"].as_str().is_some_and(|t| t.contains("RB-2")));
        (posted && lines(marker).last().map(String::as_str) == Some("second step")).then_some(())
    })
    .await;
    assert!(
        serve.log().contains("did not answer") || serve.log().contains("Timeout"),
        "{}",
        serve.log()
    );
}

#[tokio::test]
async fn a_replica_whose_clock_is_a_minute_ahead_interrupts_nothing_and_posts_nothing_twice() {
    let scene = Scene::new(8, "3s").await;
    let (db, slack, scratch, marker, config) = scene.parts();
    let on_time = Serve::start("on-time", db, slack, config, scratch.path()).await;
    let ahead = Serve::start_skewed("ahead", db, slack, config, scratch.path(), "+60s").await;
    // Posts take a while, so a message is being posted by one replica while the other looks.
    slack.slow("chat.postMessage", Some(Duration::from_millis(1500)));
    on_time
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "slow-api severity critical"),
        )
        .await;
    let store = connect(&db.url).await;
    wait_for_or_show_within(60, &|| on_time.log() + &ahead.log(), "the run's end", async || {
        let state = state_of(&store, 1).await;
        (state != "running" && state != "queued").then_some(state)
    })
    .await;
    assert_eq!(state_of(&store, 1).await, "succeeded", "{}", ahead.log());
    let kinds = event_kinds(&store, 1).await;
    assert!(!kinds.iter().any(|k| k == "interrupted"), "{kinds:?}");
    assert_eq!(lines(marker).iter().filter(|l| l.starts_with("start")).count(), 1);
    wait_for_or_show(
        &|| on_time.log() + &ahead.log(),
        "the thread to be delivered",
        async || {
            let pending: i64 = store
                .query_one("SELECT count(*) FROM outbox WHERE done_at IS NULL", &[])
                .await
                .unwrap()
                .get(0);
            (pending == 0).then_some(())
        },
    )
    .await;
    let mut posted: Vec<String> = slack
        .calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .map(|c| format!("{} {}", c.body["channel"], c.body["text"]))
        .collect();
    let all = posted.len();
    posted.sort();
    posted.dedup();
    assert_eq!(posted.len(), all, "every message was posted once: {posted:#?}");
}

#[tokio::test]
async fn a_flood_of_metrics_scrapes_over_a_large_outbox_cannot_starve_a_runs_lease() {
    let scene = Scene::new(8, "3s").await;
    let (db, slack, scratch, _, config) = scene.parts();
    scene.migrate().await;
    // A year of a busy team's messages, delivered.
    let store = connect(&db.url).await;
    store
        .batch_execute(
            "INSERT INTO outbox (kind, payload, created_at, available_at, done_at, outcome, lane)
             SELECT 'ephemeral', '{\"type\": \"ephemeral\"}', now() - interval '1 day', now() - interval '1 day',
                    now() - interval '1 day', 'delivered', 'slack'
             FROM generate_series(1, 400000); ANALYZE outbox;",
        )
        .await
        .unwrap();
    let serve = Serve::start("serve", db, slack, config, scratch.path()).await;
    // A second replica, not scraped: the one that would declare a starved lease lapsed.
    let watcher = Serve::start("watcher", db, slack, config, scratch.path()).await;
    scene.request_and_wait_for_the_step(&serve).await;
    let http = crate::support::http_client();
    let url = format!("{}/metrics", serve.base);
    let flood_until = Instant::now() + Duration::from_secs(7);
    let mut answered = 0;
    while Instant::now() < flood_until {
        let wave = (0..200).map(|_| http.get(&url).send());
        for response in futures_util::future::join_all(wave).await {
            if response.is_ok_and(|r| r.status() == 200) {
                answered += 1;
            }
        }
    }
    assert!(answered >= 200, "the scrapes were answered: {answered}");
    wait_for_or_show(&|| serve.log(), "the run's end", async || {
        let state = state_of(&store, 1).await;
        (state != "running").then_some(state)
    })
    .await;
    let kinds = event_kinds(&store, 1).await;
    assert_eq!(
        state_of(&store, 1).await,
        "succeeded",
        "{kinds:?}\n{}{}",
        serve.log(),
        watcher.log()
    );
    assert!(!kinds.iter().any(|k| k == "interrupted"), "{kinds:?}");
    let metrics = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rollbot_store_figures_age_seconds"), "{metrics}");
}

/// A `sql` step whose database accepts the connection and then says nothing (a failover, a
/// partition) costs the step's timeout, not the run: the step ends as timed out, the thread says
/// so, and the connection string stays out of it.
#[tokio::test]
async fn a_sql_step_against_a_silent_database_times_out_instead_of_hanging() {
    let scratch = scratch_database().await;
    let proxy = Proxy::to("127.0.0.1:5432".into()).await;
    let silent_url = scratch.url.replace(":5432/", &format!(":{}/", proxy.port));
    proxy.blackhole();
    let config = |marker: &str| {
        test_config(marker).replace(
            r#"runbooks = ["app", "broken", "database"]"#,
            r#"runbooks = ["app", "broken", "database", "silent"]"#,
        ) + r#"
[databases.silent]
url_env = "SILENT_DATABASE_URL"

[runbooks.silent]
description = "A check against a database that never answers"

[[runbooks.silent.steps]]
name = "Count the orders"
sql = { database = "silent", assert = { query = "SELECT count(*) FROM pg_class", expect = ">= 0" } }
timeout = "2s"
"#
    };
    let bot = Rollbot::builder()
        .config(config)
        .secrets(&[("SILENT_DATABASE_URL", &silent_url)])
        .start()
        .await;
    let started = Instant::now();
    bot.slash(ALICE, "checkout-api runbook silent severity critical").await;
    bot.settle().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the step did not hang: {:?}",
        started.elapsed()
    );
    let card = bot.expect_card();
    let thread = bot.thread(&card);
    let result = thread
        .iter()
        .find(|m| m.starts_with("⏱️ Step 1/1 *Count the orders* timed out"))
        .unwrap_or_else(|| panic!("{thread:#?}"));
    assert!(!result.contains(&silent_url), "{result}");
    assert!(bot.card_now(&card).text.contains("❌ *Failed* at step 1 of 1"));
}
