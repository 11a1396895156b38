//! The PM2 and systemd runbooks with real git (a bare repository as the remote, a clone as the
//! host's checkout) and stand-ins for the process managers and build tools.
use super::{git, healthy_service, shipped};
use crate::support::*;
use std::path::{Path, PathBuf};

/// Stand-ins that record what they were asked and, run in the checkout, which release they
/// built there (`sudo` records the command it was given, as it would run it).
const FAKE_TOOL: &str = r#"tool=$(basename "$0")
at=""; case "$tool" in npm|make) at=" @ $(git describe --tags)";; esac
echo "$tool $*$at" >> "$(dirname "$0")/asked"
"#;

/// A remote with releases v3.8.1 and v3.9.0 and the host's clone of it, then v3.8.2 (the hotfix
/// the incident rolls back to) pushed after the clone last fetched: the checkout's path.
fn release_checkout(scratch: &Path) -> PathBuf {
    let remote = scratch.join("remote.git");
    let checkout = scratch.join("billing");
    let work = scratch.join("work");
    git(scratch, &["init", "-q", "--bare", remote.to_str().unwrap()]);
    git(
        scratch,
        &["clone", "-q", remote.to_str().unwrap(), work.to_str().unwrap()],
    );
    for tag in ["v3.8.1", "v3.9.0"] {
        git(
            &work,
            &["commit", "-q", "--allow-empty", "-m", &format!("release {tag}")],
        );
        git(&work, &["tag", tag]);
    }
    git(&work, &["push", "-q", "origin", "HEAD:main", "--tags"]);
    git(
        scratch,
        &["clone", "-q", remote.to_str().unwrap(), checkout.to_str().unwrap()],
    );
    git(&work, &["checkout", "-q", "-b", "hotfix", "v3.8.1"]);
    git(
        &work,
        &["commit", "-q", "--allow-empty", "-m", "release v3.8.2: the hotfix"],
    );
    git(&work, &["tag", "v3.8.2"]);
    git(&work, &["push", "-q", "origin", "v3.8.2"]);
    checkout
}

/// The example with the checkout, the stand-ins in `bin` for `tools` and the health check at
/// `service`.
fn configured(
    checkout: &Path,
    bin: &Path,
    tools: &[&str],
    service: &crate::support::fake_service::FakeService,
) -> String {
    let mut config = shipped("pm2-systemd.toml")
        .replace("/srv/billing", checkout.to_str().unwrap())
        .replace(
            "host = \"127.0.0.1:3000\"",
            &format!("host = \"{}\"", service.url.trim_start_matches("http://")),
        );
    for tool in tools {
        fake_program(bin, tool, FAKE_TOOL);
        config = config.replace(
            &format!("run = [\"{tool}\","),
            &format!("run = [\"{}/{tool}\",", bin.display()),
        );
    }
    config
}

/// Alice's request, its preflight passed (the tag is on the remote), approved by Bob and run
/// to success; its thread looked at.
async fn released(bot: &Rollbot, request: &str, n: i64) {
    bot.slash(ALICE, request).await;
    bot.settle().await;
    let card = bot.expect_card();
    let checked = bot.card_now(&card);
    assert!(
        checked.text.contains("✅ The release tag is on the remote"),
        "{}",
        checked.text
    );
    bot.click(BOB, Button::Approve(rb(n))).await;
    bot.settle().await;
    let done = bot.card_now(&card);
    assert!(done.text.contains("✅ *Succeeded*"), "{}", done.text);
    bot.thread(&card);
}

/// The PM2 runbook: tags fetched, the release tag checked out, then installed, built and
/// started under PM2.
#[tokio::test]
async fn the_pm2_example_checks_out_the_release_tag_and_restarts_it() {
    let service = healthy_service().await;
    let scratch = tempfile::tempdir().unwrap();
    let checkout = release_checkout(scratch.path());
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let config = configured(&checkout, &bin, &["pm2", "npm"], &service);
    let bot = Rollbot::builder().config(|_| config).start().await;
    released(&bot, "billing to v3.8.2 severity high runbook pm2", 1).await;
    assert_eq!(
        git(&checkout, &["describe", "--tags"]).trim(),
        "v3.8.2",
        "the release is checked out"
    );
    let asked = std::fs::read_to_string(bin.join("asked")).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [
            "pm2 stop billing",
            "npm ci --omit=dev @ v3.8.2",
            "npm run build @ v3.8.2",
            "pm2 start billing --update-env",
        ]
    );
    assert_eq!(service.received("/healthz").len(), 1);
}

/// The systemd runbook refuses, before anyone approves and while the unit still runs, a release
/// tag the remote does not have; with one it has, the unit is stopped, the tag checked out and
/// built, and the unit started again.
#[tokio::test]
async fn the_systemd_example_checks_the_tag_before_stopping_the_unit() {
    let service = healthy_service().await;
    let scratch = tempfile::tempdir().unwrap();
    let checkout = release_checkout(scratch.path());
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let config = configured(&checkout, &bin, &["sudo", "make"], &service);
    let bot = Rollbot::builder().config(|_| config).start().await;

    bot.slash(ALICE, "billing to v3.8.9 severity high runbook systemd")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    let checked = bot.card_now(&card);
    assert!(
        checked.text.contains("❌ The release tag is on the remote"),
        "{}",
        checked.text
    );
    bot.click(ALICE, Button::Cancel(rb(1))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.thread(&card);
    assert!(!bin.join("asked").exists(), "nothing was stopped");

    released(&bot, "billing to v3.8.2 severity high runbook systemd", 2).await;
    assert_eq!(git(&checkout, &["describe", "--tags"]).trim(), "v3.8.2");
    let asked = std::fs::read_to_string(bin.join("asked")).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [
            "sudo --non-interactive systemctl stop billing.service",
            "make release @ v3.8.2",
            "sudo --non-interactive systemctl start billing.service",
        ]
    );
    assert_eq!(service.received("/healthz").len(), 1);
}
