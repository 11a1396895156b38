//! The binary as an operator runs it: `rollbot serve` with its environment, its own workers
//! delivering to Slack, and a clean stop on SIGTERM; `rollbot check` and `plan` exit codes.
use crate::support::fake_pagerduty::PAGERDUTY_TOKEN;
use crate::support::fake_slack::FakeSlack;
use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::serve::*;
use rollbot::slack::signature::sign;

#[tokio::test]
async fn serve_takes_a_request_runs_it_and_stops_cleanly_on_sigterm() {
    let db = TestDb::new();
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran.log");
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(&config, test_config(marker.to_str().unwrap())).unwrap();
    let secret_file = scratch.path().join("signing-secret");
    std::fs::write(&secret_file, format!("{SIGNING_SECRET}\n")).unwrap();
    let port = free_port();
    let log_file = scratch.path().join("rollbot.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();

    let child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap(), "--log-format", "json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("RUST_LOG", "debug")
        .env("ROLLBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLACK_SIGNING_SECRET_FILE", &secret_file)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_API_URL", &slack.api_url)
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let base = format!("http://127.0.0.1:{port}");
    let http = crate::support::http_client();

    wait_for("/readyz", async || {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // The container health check: no curl in the image, the binary asks itself.
    let healthy = Command::new(BIN)
        .args(["healthcheck", "--address", &format!("0.0.0.0:{port}")])
        .output()
        .unwrap();
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    let nobody = Command::new(BIN)
        .args(["healthcheck", "--address", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nobody.stderr).starts_with("rollbot is not healthy at 127.0.0.1:"));

    let body = slash_body(ALICE, INCIDENTS, "checkout-api to 39 severity critical");
    let now = chrono::Utc::now().timestamp();
    let answer: serde_json::Value = http
        .post(format!("{base}/slack/commands"))
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", sign(SIGNING_SECRET, now, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["text"].as_str().unwrap().starts_with("Recorded *RB-1*"),
        "{answer}"
    );

    // The workers deliver the card and run the runbook on their own.
    let calls = wait_for_or_show(&log, "the run's last thread post", async || {
        let calls = slack.calls();
        calls
            .iter()
            .any(|c| {
                c.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("✅ *ROLLBACK COMPLETE*"))
            })
            .then_some(calls)
    })
    .await;
    assert_eq!(calls[0].method, "chat.postMessage");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "undo 39\nhealth\n");

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let logs = log();
    assert!(
        status.success(),
        "rollbot should exit 0 on SIGTERM: {:?}\n{logs}",
        status
    );
    assert!(
        logs.contains("rollbot is listening") && logs.contains("shutting down"),
        "{logs}"
    );
    assert!(logs.contains("rollback requested"), "{logs}");
    for secret in [SIGNING_SECRET, BOT_TOKEN] {
        assert!(!logs.contains(secret), "a secret appeared in the logs");
    }
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "rollback requested"
            && l["fields"]["rollback"] == "RB-1"
            && l["span"]["user"] == ALICE),
        "a request's log line carries the rollback id and the request's span"
    );
}

#[test]
fn serve_without_its_secrets_says_what_to_set() {
    let output = Command::new(BIN)
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rollbot.toml"),
        ])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "rollbot: SLACK_SIGNING_SECRET is not set: it is the app's Signing Secret (Basic Information page); several, comma-separated, during a rotation. Set SLACK_SIGNING_SECRET or SLACK_SIGNING_SECRET_FILE."
    );
}

#[test]
fn rollbot_check_passes_every_file_of_the_runbook_library() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/runbooks");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let check = Command::new(BIN)
            .args(["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&check.stderr)
        );
        checked += 1;
    }
    assert_eq!(
        checked, 18,
        "one file per rollback family, the pull-request variant of git revert, Argo CD, Argo Rollouts and the nginx switch"
    );

    let flags = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/runbooks/feature-flags.toml");
    let plan = Command::new(BIN)
        .args(["plan", "--config", flags, "checkout-flags", "to", "new-checkout"])
        .output()
        .unwrap();
    assert!(plan.status.success());
    let printed = String::from_utf8_lossy(&plan.stdout);
    assert!(
        printed.contains("1. Turn the flag off (http, timeout 30s; retried up to 3 times; in a drill: GET https://app.launchdarkly.com/api/v2/flags/shop/new-checkout -H 'Authorization: ${env:LAUNCHDARKLY_API_TOKEN}' → expect HTTP 200)")
            && printed.contains("PATCH https://app.launchdarkly.com/api/v2/flags/shop/new-checkout -H 'Authorization: ${env:LAUNCHDARKLY_API_TOKEN}'"),
        "the plan shows every resolved URL, with secrets as references:\n{printed}"
    );
}

#[test]
fn check_and_plan_exit_codes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rollbot.toml");
    let check = Command::new(BIN).args(["check", "--config", example]).output().unwrap();
    assert!(check.status.success());
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(
        printed.contains("high: 1 approval(s); no self-approval; respond within 15m; expires after 4h\n    level 0, at once: on_call (U0ONCALL1, U0ONCALL2, S0ONCALL)\n    level 1, after 30m: + devops_lead (U0DEVOPS)"),
        "{printed}"
    );

    let scratch = tempfile::tempdir().unwrap();
    let broken = scratch.path().join("broken.toml");
    std::fs::write(&broken, "[slack]\nchannels = [\"C0INCIDENTS\"]\nanyone_may_request = true\n\n[roles]\non_call = [\"U0BOB\"]\nteam_lead = [\"U0C\"]\n\n[severity.high]\napprovers = [\"oncall\"]\n").unwrap();
    let check = Command::new(BIN)
        .args(["check", "--config", broken.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:10:14: role `oncall` is not defined in [roles]",
            broken.display()
        )),
        "{stderr}"
    );

    let plan = Command::new(BIN)
        .args(["plan", "--config", example, "checkout-api", "to", "41"])
        .output()
        .unwrap();
    assert!(plan.status.success());
    assert!(
        String::from_utf8_lossy(&plan.stdout)
            .contains("kubectl rollout undo deployment/checkout-api -n prod --to-revision=41")
    );
    let plan = Command::new(BIN)
        .args(["plan", "--config", example, "checkout-api", "to", "41;reboot"])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&plan.stderr).starts_with("`41;reboot` is not a valid `target`"));

    // Parameters as in Slack, the shell's quotes put back: the value is one word again.
    let partial = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/runbooks/database-partial-restore.toml"
    );
    let plan = Command::new(BIN)
        .args([
            "plan",
            "--config",
            partial,
            "orders-tables",
            "to",
            "x.dump",
            "tables=orders",
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success() && printed.contains("\nParameters: tables=orders\n"),
        "{printed}"
    );
    let plan = Command::new(BIN)
        .args([
            "plan",
            "--config",
            partial,
            "orders-tables",
            "to",
            "x.dump",
            "tables=orders, items",
        ])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&plan.stderr).starts_with("`orders, items` is not a valid `tables`"),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
}

#[test]
fn migrate_creates_the_database_and_is_idempotent() {
    let db = TestDb::new();
    let migrate = || {
        Command::new(BIN)
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    let first = migrate();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let expected: String = files.iter().map(|f| format!("applied {f}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        expected,
        "every migration file, in order"
    );
    let second = migrate();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "PostgreSQL (DATABASE_URL) is up to date\n"
    );
}

#[test]
fn without_database_url_the_store_is_rollbot_db_in_the_data_directory() {
    let here = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let migrate = |args: &[&str]| {
        Command::new(BIN)
            .arg("migrate")
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("ROLLBOT_DATA_DIR")
            .current_dir(here.path())
            .output()
            .unwrap()
    };
    let by_default = migrate(&[]);
    assert!(
        by_default.status.success(),
        "{}",
        String::from_utf8_lossy(&by_default.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&by_default.stdout),
        "applied 0001_init.sql\napplied 0002_proposals.sql\napplied 0003_open_by_requester.sql\napplied 0004_reserved_slots.sql\napplied 0005_lease_epochs.sql\napplied 0006_one_open_per_lock.sql\napplied 0007_slack_backoff.sql\napplied 0008_channel_last_slot.sql\n"
    );
    assert!(here.path().join("rollbot.db").is_file(), "./rollbot.db by default");

    let data_dir = elsewhere.path().join("state");
    let chosen = migrate(&["--data-dir", data_dir.to_str().unwrap()]);
    assert!(chosen.status.success(), "{}", String::from_utf8_lossy(&chosen.stderr));
    assert!(data_dir.join("rollbot.db").is_file(), "--data-dir is created and used");
    let again = migrate(&["--data-dir", data_dir.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!(
            "the embedded store {} is up to date\n",
            data_dir.join("rollbot.db").display()
        )
    );

    let nowhere = Command::new(BIN)
        .args([
            "postmortem",
            "RB-1",
            "--data-dir",
            elsewhere.path().join("empty").to_str().unwrap(),
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&nowhere.stderr)
            .contains("rollbot.db does not exist, so no rollbot has kept its state there"),
        "{}",
        String::from_utf8_lossy(&nowhere.stderr)
    );
    assert!(!elsewhere.path().join("empty").exists(), "reading creates nothing");
}

#[tokio::test]
async fn kill_9_of_the_replica_running_a_step_leaves_it_interrupted_and_retry_runs_it_only_when_clicked() {
    let db = TestDb::new();
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran.log");
    let pid_file = scratch.path().join("step.pid");
    // The first run of the step does its side effect and then takes long; a retry finishes.
    let slow_step = format!(
        r#"[runbooks.slow]
[[runbooks.slow.steps]]
name = "Slow undo"
run = ["sh", "-c", 'if [ -f "$1" ]; then echo again >> "$1"; else echo $$ > "$2"; echo started >> "$1"; sleep 60; fi', "step", "{}", "{}"]
timeout = "5m"

[limits]
execution_lease = "2s"

[services.slow-api]
runbooks = ["slow"]
"#,
        marker.display(),
        pid_file.display()
    );
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(&config, test_config(marker.to_str().unwrap()) + &slow_step).unwrap();
    let lines = || {
        std::fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    let first = Serve::start("first", &db, &slack, &config, scratch.path()).await;
    let answer = first
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "slow-api severity critical"),
        )
        .await;
    assert_eq!(answer.status(), 200);
    wait_for_or_show(&|| first.log(), "the step to start", async || {
        (lines() == ["started"]).then_some(())
    })
    .await;
    // The run may start before its card is posted; the death this story is about is the step's.
    wait_for_or_show(&|| first.log(), "the card", async || {
        slack
            .calls()
            .iter()
            .any(|c| c.method == "chat.postMessage" && c.body["text"].as_str().is_some_and(|t| t.contains("RB-1")))
            .then_some(())
    })
    .await;

    let second = Serve::start("second", &db, &slack, &config, scratch.path()).await;
    let mut first = first;
    let step_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    first.child.kill().unwrap(); // SIGKILL: no goodbye, the lease just stops being renewed
    first.child.wait().unwrap();
    let killed_at = Instant::now();
    while std::fs::read_to_string(format!("/proc/{step_pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(1),
            "the step died with the rollbot process that ran it, within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let store = connect(&db.url).await;
    wait_for_or_show(&|| second.log(), "the survivor to mark RB-1 interrupted", async || {
        let state: String = store
            .query_one("SELECT state FROM rollbacks WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
        (state == "interrupted").then_some(())
    })
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "noticed within the lease plus a poll: {:?}",
        killed_at.elapsed()
    );
    // A message the killed process was posting when it died stays claimed for the delivery
    // lease (30 s); RB-1's thread keeps its order, so the interruption may follow it only then.
    let interrupted = wait_for_or_show_within(45, &|| second.log(), "the interruption in the channel", async || {
        slack.calls().into_iter().find(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("RB-1 ⚠️ *Interrupted* at step 1 of 1"))
        })
    })
    .await;
    assert_eq!(interrupted.body["reply_broadcast"], true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        lines(),
        ["started"],
        "the started step's side effect happened once and nothing re-ran it"
    );

    let retry = second
        .post_signed("/slack/interactions", click_body(ALICE, INCIDENTS, "retry", "RB-1@0"))
        .await;
    assert_eq!(retry.status(), 200);
    wait_for_or_show(&|| second.log(), "the retried step", async || {
        (lines() == ["started", "again"]).then_some(())
    })
    .await;
    wait_for_or_show(&|| second.log(), "the run's end", async || {
        slack
            .calls()
            .iter()
            .any(|c| {
                c.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("✅ *ROLLBACK COMPLETE*"))
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn sigterm_during_a_long_step_stops_it_after_the_grace_and_records_it_as_interrupted() {
    let db = TestDb::new();
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran.log");
    let pid_file = scratch.path().join("step.pid");
    let slow_step = format!(
        r#"[runbooks.slow]
[[runbooks.slow.steps]]
name = "Slow undo"
run = ["sh", "-c", 'echo $$ > "$2"; echo started >> "$1"; sleep 60', "step", "{}", "{}"]

[limits]
shutdown_grace = "1s"

[services.slow-api]
runbooks = ["slow"]
"#,
        marker.display(),
        pid_file.display()
    );
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(&config, test_config(marker.to_str().unwrap()) + &slow_step).unwrap();
    let mut serve = Serve::start("serve", &db, &slack, &config, scratch.path()).await;
    serve
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "slow-api severity critical"),
        )
        .await;
    wait_for_or_show(&|| serve.log(), "the step to start", async || {
        marker.exists().then_some(())
    })
    .await;
    wait_for_or_show(&|| serve.log(), "the step's pid", async || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse::<i32>().ok()
    })
    .await;
    let step_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();

    let asked = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = serve.child.wait().unwrap();
        (status, serve)
    })
    .await
    .unwrap();
    let (status, serve) = status;
    assert!(
        status.success(),
        "exit 0 after a clean stop: {status:?}\n{}",
        serve.log()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopped within the grace, not after the step: {:?}",
        asked.elapsed()
    );
    let log = serve.log();
    assert!(log.contains("waiting for running steps to finish"), "{log}");
    assert!(
        log.contains("the running step was stopped and the rollback marked interrupted"),
        "{log}"
    );
    assert!(
        slack.calls().iter().any(|c| c.body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("RB-1 ⚠️ *Interrupted* at step 1 of 1"))),
        "the channel was told before rollbot left"
    );
    let alive = std::fs::read_to_string(format!("/proc/{step_pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    assert!(!alive, "the step's process group was stopped with rollbot");
}

#[tokio::test]
async fn two_hundred_clicks_on_three_replicas_run_the_rollback_once_and_answer_everyone() {
    let db = TestDb::new();
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran.log");
    let clickers: Vec<String> = (0..200).map(|n| format!("U0AP{n:03}")).collect();
    let on_call = clickers
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let config_text = test_config(marker.to_str().unwrap()).replace(
        r#"on_call = ["U0ALICE", "U0BOB", "U0BETH"]"#,
        &format!("on_call = [\"U0ALICE\", {on_call}]"),
    );
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut replicas = vec![];
    for name in ["a", "b", "c"] {
        replicas.push(Serve::start(name, &db, &slack, &config, scratch.path()).await);
    }
    let logs = || replicas.iter().map(Serve::log).collect::<Vec<_>>().join("\n");

    replicas[0]
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "checkout-api to 41 severity high"),
        )
        .await;
    wait_for_or_show(&logs, "the card", async || {
        slack
            .calls()
            .iter()
            .any(|c| c.method == "chat.postMessage")
            .then_some(())
    })
    .await;

    let clicks = clickers.iter().enumerate().map(|(n, user)| {
        let replica = &replicas[n % 3];
        async move {
            replica
                .post_signed("/slack/interactions", click_body(user, INCIDENTS, "approve", "RB-1"))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(clicks).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every click acknowledged: {statuses:?}"
    );

    let answered_users = wait_for_refusals_and_the_end_of_the_run(&slack, &logs, 199).await;
    assert_eq!(answered_users.len(), 199, "each refused clicker got their own answer");
    let winner: Vec<&String> = clickers
        .iter()
        .filter(|u| !answered_users.contains(u.as_str()))
        .collect();
    assert_eq!(winner.len(), 1);
    let card_text = slack
        .calls()
        .iter()
        .rev()
        .find(|c| c.method == "chat.update")
        .map(|c| c.body.to_string())
        .unwrap();
    assert!(
        card_text.contains(&format!("<@{}> (`on_call`)", winner[0])),
        "the card names the one approver"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "undo 41\nhealth\n",
        "exactly one execution"
    );
}

#[tokio::test]
async fn a_request_acknowledged_just_before_kill_9_is_there_after_restart() {
    let db = TestDb::new();
    kill_9_right_after_an_ack(("DATABASE_URL", db.url.clone())).await;
}

#[tokio::test]
async fn on_the_embedded_store_a_request_acknowledged_just_before_kill_9_is_there_after_restart() {
    let data = tempfile::tempdir().unwrap();
    kill_9_right_after_an_ack(("ROLLBOT_DATA_DIR", data.path().display().to_string())).await;
    assert!(data.path().join("rollbot.db").is_file());
}

async fn kill_9_right_after_an_ack(store: (&str, String)) {
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(&config, test_config(scratch.path().join("ran.log").to_str().unwrap())).unwrap();

    let mut first = Serve::start_on("first", store.clone(), &slack, &config, scratch.path()).await;
    let ack: serde_json::Value = first
        .post_signed(
            "/slack/commands",
            slash_body(
                ALICE,
                INCIDENTS,
                "checkout-api to 41 severity high reason \"kill test\"",
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    first.child.kill().unwrap(); // SIGKILL right after the acknowledgement
    first.child.wait().unwrap();
    assert!(ack["text"].as_str().unwrap().starts_with("Recorded *RB-1*"), "{ack}");

    let second = Serve::start_on("second", store.clone(), &slack, &config, scratch.path()).await;
    let status: serde_json::Value = second
        .post_signed("/slack/commands", slash_body(ALICE, INCIDENTS, "status RB-1"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        status["text"].as_str().unwrap().contains("Awaiting approval"),
        "{status}"
    );
    // If the first process had claimed the card when it died, the claim lapses first (30 s).
    wait_for_or_show_within(
        45,
        &|| second.log(),
        "the card, posted by whichever process was alive",
        async || {
            slack
                .calls()
                .iter()
                .any(|c| c.method == "chat.postMessage" && c.body.to_string().contains("kill test"))
                .then_some(())
        },
    )
    .await;
    if store.0 == "ROLLBOT_DATA_DIR" {
        let refused = Serve::command(store.clone(), &slack, &config, free_port())
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(1));
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains("rollbot.db is in use by another rollbot process. The embedded store serves one process; to run several replicas, use PostgreSQL"),
            "{said}"
        );
    }
    drop(second);

    let postmortem = |id: &str| {
        Command::new(BIN)
            .args(["postmortem", id])
            .env_remove("DATABASE_URL")
            .env(store.0, &store.1)
            .output()
            .unwrap()
    };
    let draft = postmortem("RB-1");
    assert!(draft.status.success(), "{}", String::from_utf8_lossy(&draft.stderr));
    let draft = String::from_utf8_lossy(&draft.stdout);
    assert!(
        draft.starts_with("# Post-mortem: RB-1 — rollback of checkout-api to 41\n"),
        "{draft}"
    );
    assert!(draft.contains("reason “kill test”"), "{draft}");
    let missing = postmortem("RB-9");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "rollbot: there is no rollback RB-9\n"
    );
}

#[tokio::test]
async fn a_team_outgrows_the_file_migrate_carries_every_event_to_postgres_and_the_wait_goes_on() {
    use rollbot::domain::RollbackId;
    use rollbot::store::Store;
    let data = tempfile::tempdir().unwrap();
    let embedded = ("ROLLBOT_DATA_DIR", data.path().display().to_string());
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(&config, test_config(scratch.path().join("ran.log").to_str().unwrap())).unwrap();

    let small = Serve::start_on("small", embedded.clone(), &slack, &config, scratch.path()).await;
    small
        .post_signed(
            "/slack/commands",
            slash_body(
                ALICE,
                INCIDENTS,
                "checkout-api to 40 severity critical reason \"finished\"",
            ),
        )
        .await;
    wait_for_or_show(&|| small.log(), "RB-1 to finish", async || {
        slack
            .calls()
            .iter()
            .any(|c| {
                c.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("✅ *ROLLBACK COMPLETE*"))
            })
            .then_some(())
    })
    .await;
    small
        .post_signed(
            "/slack/commands",
            slash_body(
                ALICE,
                INCIDENTS,
                "checkout-api to 41 severity high reason \"in flight\"",
            ),
        )
        .await;
    wait_for_or_show(&|| small.log(), "RB-2's card", async || {
        slack
            .calls()
            .iter()
            .any(|c| c.method == "chat.postMessage" && c.body.to_string().contains("in flight"))
            .then_some(())
    })
    .await;
    drop(small);

    let file = data.path().join("rollbot.db");
    let before = Store::open_embedded(&file).unwrap();
    let mut histories = vec![];
    for id in [1, 2] {
        histories.push(before.load_with_history(RollbackId(id)).await.unwrap().unwrap());
    }
    let timers = before.pending_timers(RollbackId(2)).await.unwrap();
    let card = before.card(RollbackId(2)).await.unwrap();
    assert!(!timers.is_empty(), "RB-2 waits with its escalation timers");
    drop(before);

    let db = TestDb::new();
    let migrate = || {
        Command::new(BIN)
            .args(["migrate", "--from", file.to_str().unwrap(), "--to", &db.url])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let copied = migrate();
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let said = String::from_utf8_lossy(&copied.stdout);
    assert!(said.starts_with("copied 2 rollback(s), "), "{said}");
    assert!(
        said.contains("Start rollbot with DATABASE_URL set to that database"),
        "{said}"
    );
    let twice = migrate();
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("already holds 2 rollback(s); migrate into an empty database"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );

    let after = Store::connect(&db.url).await.unwrap();
    for (id, expected) in [1, 2].into_iter().zip(&histories) {
        let moved = after.load_with_history(RollbackId(id)).await.unwrap().unwrap();
        assert_eq!(&moved, expected, "RB-{id} and every one of its events, unchanged");
    }
    assert_eq!(after.pending_timers(RollbackId(2)).await.unwrap(), timers);
    assert_eq!(after.card(RollbackId(2)).await.unwrap(), card);
    drop(after);

    let big = Serve::start("big", &db, &slack, &config, scratch.path()).await;
    let approved = big
        .post_signed("/slack/interactions", click_body(BOB, INCIDENTS, "approve", "RB-2"))
        .await;
    assert_eq!(approved.status(), 200);
    // Its messages are paced a second apart per channel behind what the small process left
    // queued, which takes a while on a loaded machine.
    wait_for_or_show_within(60, &|| big.log(), "RB-2 to finish on PostgreSQL", async || {
        (slack
            .calls()
            .iter()
            .filter(|c| {
                c.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("✅ *ROLLBACK COMPLETE*"))
            })
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let next: serde_json::Value = big
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "checkout-api to 42 severity high"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        next["text"].as_str().unwrap().starts_with("Recorded *RB-3*"),
        "numbers go on after the copied ones: {next}"
    );
}

/// Behind a company's egress proxy: with HTTP_PROXY and HTTPS_PROXY set, Slack's Web API calls
/// go through it by a CONNECT tunnel and an `http` step's request through it as an absolute
/// URL; a host in NO_PROXY is reached directly. `rollbot serve` runs as its own process so the
/// environment is its alone.
#[tokio::test]
async fn behind_an_egress_proxy_slack_and_steps_go_through_it_and_no_proxy_hosts_do_not() {
    use crate::support::fake_service::{FakeService, answers};
    use crate::support::http_proxy::HttpProxy;
    let db = TestDb::new();
    let slack = FakeSlack::start().await;
    let proxy = HttpProxy::start().await;
    let service = FakeService::start().await;
    service.script("/flags/off", answers(&[200], "ok"));
    let direct = FakeService::start().await;
    direct.script("/audit", answers(&[200], "ok"));
    let direct_url = direct.url.replace("127.0.0.1", "localhost");
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("rollbot.toml");
    let runbook = format!(
        r#"
[runbooks.egress]
description = "Calls out through the proxy, and past it"

[[runbooks.egress.steps]]
name = "Turn the flag off"
http = {{ method = "POST", url = "{}/flags/off", expect_status = [200] }}

[[runbooks.egress.steps]]
name = "Tell the audit log"
http = {{ method = "POST", url = "{direct_url}/audit", expect_status = [200] }}
"#,
        service.url
    );
    let text = test_config(scratch.path().join("ran.log").to_str().unwrap()).replace(
        r#"runbooks = ["app", "broken", "database"]"#,
        r#"runbooks = ["app", "broken", "database", "egress"]"#,
    ) + &runbook;
    std::fs::write(&config, text).unwrap();
    let env = [
        ("HTTP_PROXY", proxy.url.as_str()),
        ("HTTPS_PROXY", proxy.url.as_str()),
        ("NO_PROXY", "localhost"),
    ];
    let serve = Serve::start_with_env(
        "proxied",
        ("DATABASE_URL", db.url.clone()),
        &slack,
        &config,
        scratch.path(),
        &env,
    )
    .await;
    let ack: serde_json::Value = serve
        .post_signed(
            "/slack/commands",
            slash_body(ALICE, INCIDENTS, "checkout-api runbook egress severity critical"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(ack["text"].as_str().unwrap().starts_with("Recorded *RB-1*"), "{ack}");
    wait_for_or_show(&|| serve.log(), "the run's end in the thread", async || {
        slack
            .calls()
            .iter()
            .any(|c| c.method == "chat.postMessage" && c.body.to_string().contains("ROLLBACK COMPLETE"))
            .then_some(())
    })
    .await;
    assert_eq!(service.received("/flags/off").len(), 1);
    assert_eq!(direct.received("/audit").len(), 1, "the NO_PROXY host was reached");
    let seen = proxy.seen();
    let slack_authority = slack
        .api_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        seen.iter()
            .any(|line| line == &format!("CONNECT {slack_authority} HTTP/1.1")),
        "Slack's Web API through a tunnel: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|line| line.starts_with(&format!("POST {}/flags/off ", service.url))),
        "the http step through the proxy: {seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|line| line.contains("localhost") || line.contains("/audit")),
        "the NO_PROXY host went around it: {seen:#?}"
    );
}

/// `rollbot doctor` asks each service what `check` cannot see offline, and says what to fix.
#[tokio::test]
async fn doctor_says_what_works_and_how_to_fix_what_does_not() {
    let storage = TestStorage::new(Backend::Postgres);
    let TestStorage::Postgres(db) = &storage else {
        unreachable!()
    };
    storage.open(None).await;
    let slack = FakeSlack::start().await;
    slack.set_group("S0SRE", &[ALICE, BOB]);
    slack.set_email(CAROL, "carol@example.com");
    let pagerduty = crate::support::fake_pagerduty::FakePagerDuty::start().await;
    pagerduty.on_call("PLEADS1", &[("PCAROL1", "Carol", "carol@example.com")]);
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("rollbot.toml");
    let text = test_config(scratch.path().join("ran.log").to_str().unwrap())
        .replace(
            &format!("on_call = [\"{ALICE}\", \"{BOB}\", \"{BETH}\"]"),
            "on_call = [\"S0SRE\"]",
        )
        .replace(
            &format!("team_lead = [\"{CAROL}\"]"),
            "team_lead = [\"pagerduty:schedule:PLEADS1\"]",
        )
        .replace(
            &format!("channels = [\"{INCIDENTS}\"]"),
            &format!("channels = [\"{INCIDENTS}\", \"C0WARROOM\"]"),
        )
        + &format!("\n[pagerduty]\napi_url = \"{}\"\n", pagerduty.url);
    std::fs::write(&config, text).unwrap();
    // Run beside the test's runtime, which serves the fake Slack meanwhile.
    let doctor = async |token: &str, database: &str| {
        let pagerduty_key = if token == BOT_TOKEN {
            PAGERDUTY_TOKEN
        } else {
            "pd-revoked"
        };
        tokio::process::Command::new(BIN)
            .args(["doctor", "--config", config.to_str().unwrap()])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("PAGERDUTY_API_TOKEN", pagerduty_key)
            .env("SLACK_BOT_TOKEN", token)
            .env("SLACK_API_URL", &slack.api_url)
            .env("DATABASE_URL", database)
            .output()
            .await
            .unwrap()
    };

    let healthy = doctor(BOT_TOKEN, &db.url).await;
    let out = String::from_utf8_lossy(&healthy.stdout).into_owned();
    assert!(
        healthy.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "✅ the bot token works: <@U0ROLLBOT> in Acme (T0TEST)",
            "✅ the bot is in <#C0INCIDENTS>",
            "✅ the bot is in <#C0WARROOM>",
            "✅ user group <!subteam^S0SRE> is readable (2 members)",
            "✅ 1 on call now (on call in PagerDuty schedule PLEADS1), found in Slack: <@U0CAROL>",
            "✅ the store answers: PostgreSQL (DATABASE_URL, sslmode=prefer)",
        ]
    );

    slack.not_joined("C0WARROOM");
    let closed = format!(
        "postgres://postgres@127.0.0.1:{}/nowhere?connect_timeout=2",
        crate::support::serve::free_port()
    );
    let broken = doctor("xoxb-revoked-token", &closed).await;
    let out = String::from_utf8_lossy(&broken.stdout).into_owned();
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(
        out.contains("❌ Slack refused the bot token (invalid_auth)\n   fix: set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) of the installed app"),
        "{out}"
    );
    assert!(
        out.contains("❌ the bot is not in <#C0WARROOM>\n   fix: type `/invite @rollbot` in <#C0WARROOM>"),
        "{out}"
    );
    assert!(
        out.contains("❌ the store does not answer: PostgreSQL (DATABASE_URL, sslmode=prefer): ")
            && out.contains("fix: check DATABASE_URL (host, port, user, TLS parameters)"),
        "{out}"
    );
    assert!(
        out.contains("❌ who is on call in PagerDuty schedule PLEADS1 cannot be read (PagerDuty answered 401: Authentication failed)\n   fix: check the ID and the REST API key in the variable [pagerduty] token_env names (read-only is enough)"),
        "{out}"
    );
    assert!(
        !out.contains("xoxb-revoked-token") && !out.contains("pd-revoked"),
        "the token stays out of the report: {out}"
    );

    // The shift goes to someone Slack does not know by email: they could not approve.
    pagerduty.on_call("PLEADS1", &[("PGHOST1", "Contractor", "ghost@contractor.example")]);
    let unknown = doctor(BOT_TOKEN, &db.url).await;
    let out = String::from_utf8_lossy(&unknown.stdout).into_owned();
    assert_eq!(unknown.status.code(), Some(1), "{out}");
    assert!(
        out.contains("❌ 1 on call now (on call in PagerDuty schedule PLEADS1), not found in Slack by email: ghost@contractor.example\n   fix: give the app users:read and users:read.email and reinstall it, or use the same email in PagerDuty and Slack"),
        "{out}"
    );
    pagerduty.on_call("PLEADS1", &[("PCAROL1", "Carol", "carol@example.com")]);

    // Doctor asks; it never creates: a database that is not there stays not there.
    let absent = format!("rollbot_doctor_absent_{}", std::process::id());
    let missing = doctor(BOT_TOKEN, &format!("postgres://postgres@127.0.0.1:5432/{absent}")).await;
    let out = String::from_utf8_lossy(&missing.stdout).into_owned();
    assert_eq!(missing.status.code(), Some(1), "{out}");
    assert!(
        out.contains("❌ the store does not answer") && out.contains("does not exist"),
        "{out}"
    );
    let (admin, connection) =
        tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=postgres", tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let created: i64 = admin
        .query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&absent])
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 0, "doctor created the database it was asked about");
    let asked: Vec<String> = slack.calls().iter().map(|c| c.method.clone()).collect();
    assert!(
        asked.iter().all(|m| [
            "auth.test",
            "conversations.history",
            "usergroups.users.list",
            "users.lookupByEmail"
        ]
        .contains(&m.as_str())),
        "doctor only reads: {asked:?}"
    );
}
