//! `rollbot serve` as a process an operator runs, with its log in a file, and waiting helpers
//! that show that log when what they wait for never comes.
use super::fake_slack::FakeSlack;
use super::*;
use rollbot::slack::signature::sign;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rollbot");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Like `wait_for`, with rollbot's log in the failure message.
pub async fn wait_for_or_show<T>(log: &impl Fn() -> String, what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    wait_for_or_show_within(20, log, what, probe).await
}

pub async fn wait_for_or_show_within<T>(
    seconds: u64,
    log: &impl Fn() -> String,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; rollbot's log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `refusals` people have been told privately that they were too late (or may not)
/// and the run has posted its end, and answers who was told.
pub async fn wait_for_refusals_and_the_end_of_the_run(
    slack: &FakeSlack,
    log: &impl Fn() -> String,
    refusals: usize,
) -> std::collections::BTreeSet<String> {
    let what = format!("{refusals} refusals and the end of the run");
    let calls = wait_for_or_show(log, &what, async || {
        let calls = slack.calls();
        let told = calls.iter().filter(|c| c.method == "chat.postEphemeral").count();
        let done = calls.iter().any(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("✅ *ROLLBACK COMPLETE*"))
        });
        (told == refusals && done).then_some(calls)
    })
    .await;
    calls
        .iter()
        .filter(|c| c.method == "chat.postEphemeral")
        .filter_map(|c| c.body["user"].as_str().map(str::to_owned))
        .collect()
}

pub async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `rollbot serve` process with its log in a file.
pub struct Serve {
    pub child: std::process::Child,
    pub base: String,
    pub log_file: std::path::PathBuf,
}

impl Serve {
    pub async fn start(
        name: &str,
        db: &TestDb,
        slack: &FakeSlack,
        config: &std::path::Path,
        dir: &std::path::Path,
    ) -> Serve {
        Serve::start_on(name, ("DATABASE_URL", db.url.clone()), slack, config, dir).await
    }

    /// `rollbot serve` keeping its state where `store` (an environment variable) says.
    pub fn command(store: (&str, String), slack: &FakeSlack, config: &std::path::Path, port: u16) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config", config.to_str().unwrap()])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("ROLLBOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .env("SLACK_API_URL", &slack.api_url)
            .env(store.0, store.1);
        command
    }

    pub async fn start_on(
        name: &str,
        store: (&str, String),
        slack: &FakeSlack,
        config: &std::path::Path,
        dir: &std::path::Path,
    ) -> Serve {
        Serve::start_with_env(name, store, slack, config, dir, &[]).await
    }

    /// A replica whose wall clock is `offset` off (`+60s`), by libfaketime (Debian's
    /// `faketime`); its monotonic clock is left alone, as a skewed machine's is.
    pub async fn start_skewed(
        name: &str,
        db: &TestDb,
        slack: &FakeSlack,
        config: &std::path::Path,
        dir: &std::path::Path,
        offset: &str,
    ) -> Serve {
        let library = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        assert!(
            std::path::Path::new(library).exists(),
            "{library} is missing: .ci/run installs Debian's faketime"
        );
        let env = [
            ("LD_PRELOAD", library),
            ("FAKETIME", offset),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ];
        Serve::start_with_env(name, ("DATABASE_URL", db.url.clone()), slack, config, dir, &env).await
    }

    pub async fn start_with_env(
        name: &str,
        store: (&str, String),
        slack: &FakeSlack,
        config: &std::path::Path,
        dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Serve {
        let port = free_port();
        let log_file = dir.join(format!("{name}.log"));
        let child = Serve::command(store, slack, config, port)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_file).unwrap())
            .spawn()
            .unwrap();
        let serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log_file,
        };
        let http = crate::support::http_client();
        let ready = format!("{}/readyz", serve.base);
        wait_for_or_show(&|| serve.log(), "readiness", async || {
            http.get(&ready)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        })
        .await;
        serve
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub async fn post_signed(&self, path: &str, body: String) -> reqwest::Response {
        self.post_signed_at(path, body, chrono::Utc::now().timestamp()).await
    }

    /// As Slack signs a delivery at `now` (Unix seconds): the same body and time give the same
    /// signature, as when one delivery is sent again.
    pub async fn post_signed_at(&self, path: &str, body: String, now: i64) -> reqwest::Response {
        crate::support::http_client()
            .post(format!("{}{path}", self.base))
            .header("x-slack-request-timestamp", now.to_string())
            .header("x-slack-signature", sign(SIGNING_SECRET, now, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
