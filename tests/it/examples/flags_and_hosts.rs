//! The feature-flag, configuration and maintenance examples, executed: their HTTP calls reach a
//! stand-in service, their programs are real or stand-ins that record what they were asked.
use super::*;
use serde_json::{Value, json};

/// The feature-flag example with both providers and the health check pointed at `service`.
async fn flags(service: &FakeService) -> Rollbot {
    let config = shipped("feature-flags.toml")
        .replace("https://app.launchdarkly.com", &service.url)
        .replace("https://api.flagsmith.com", &service.url)
        .replace("https://shop.example.com/healthz", &format!("{}/healthz", service.url));
    Rollbot::builder()
        .config(|_| config)
        .secrets(&[
            ("LAUNCHDARKLY_API_TOKEN", "api-ld-5e1f"),
            ("FLAGSMITH_API_KEY", "fs-key-77aa"),
        ])
        .start()
        .await
}

/// LaunchDarkly gets a semantic patch turning the flag off in production; Flagsmith gets the
/// feature by its name on the endpoint that works with Feature Versioning v2 too; each with
/// its token from the environment, and the health check after.
#[tokio::test]
async fn the_feature_flag_example_turns_the_flag_off_by_its_name_with_either_provider() {
    let service = healthy_service().await;
    let launchdarkly = "/api/v2/flags/shop/new-checkout-flow";
    let flagsmith = "/api/experiments/environments/prodEnvKey123/update-flag-v1/";
    service.script(launchdarkly, answers(&[200], r#"{"key": "new-checkout-flow"}"#));
    service.script(flagsmith, answers(&[204], ""));
    let bot = flags(&service).await;

    let card = approved_by_bob(&bot, "checkout-flags to new-checkout-flow severity high", 1).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let patch = &service.received(launchdarkly)[0];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.authorization.as_deref(), Some("api-ld-5e1f"));
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/json; domain-model=launchdarkly.semanticpatch")
    );
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(body["environmentKey"], "production");
    assert_eq!(body["instructions"], json!([{"kind": "turnFlagOff"}]));

    let card = approved_by_bob(
        &bot,
        "checkout-flags to new_checkout_flow runbook flagsmith-off severity high",
        2,
    )
    .await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let call = &service.received(flagsmith)[0];
    assert_eq!(
        (call.method.as_str(), call.authorization.as_deref()),
        ("POST", Some("Api-Key fs-key-77aa"))
    );
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        body["feature"],
        json!({"name": "new_checkout_flow"}),
        "by name, not an internal id"
    );
    assert_eq!(body["enabled"], false);
    assert_eq!(service.received("/healthz").len(), 2);
}

/// Flagsmith refuses the change (change requests are on): the run fails at that step and says
/// what Flagsmith answered; in a drill, only the feature's state is read.
#[tokio::test]
async fn the_flagsmith_example_fails_plainly_when_refused_and_only_reads_in_a_drill() {
    let service = healthy_service().await;
    let flagsmith = "/api/experiments/environments/prodEnvKey123/update-flag-v1/";
    service.script(
        flagsmith,
        answers(
            &[403],
            r#"{"detail": "Cannot update flags while change requests are enabled"}"#,
        ),
    );
    service.script(
        "/api/v1/environments/prodEnvKey123/featurestates/",
        answers(&[200], r#"{"results": [{"enabled": true}]}"#),
    );
    let bot = flags(&service).await;

    let card = approved_by_bob(
        &bot,
        "drill checkout-flags to new_checkout_flow runbook flagsmith-off severity high",
        1,
    )
    .await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    assert!(service.received(flagsmith).is_empty(), "a drill changes nothing");
    let read = &service.received("/api/v1/environments/prodEnvKey123/featurestates/")[0];
    assert_eq!(
        (read.method.as_str(), read.authorization.as_deref()),
        ("GET", Some("Api-Key fs-key-77aa"))
    );

    let card = approved_by_bob(
        &bot,
        "checkout-flags to new_checkout_flow runbook flagsmith-off severity high",
        2,
    )
    .await;
    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 1 of 2"), "{}", failed.text);
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("403") && m.contains("change requests are enabled")),
        "{thread:#?}"
    );
    assert!(!thread.concat().contains("fs-key-77aa"), "the key never shows");
    assert_eq!(
        service.received("/healthz").len(),
        0,
        "nothing after the failed step ran"
    );
}

/// A stand-in `sudo` that runs nothing: it records what it was asked to run as root.
const FAKE_SUDO: &str = r#"echo "$@" >> "$(dirname "$0")/asked"
"#;

/// The configuration example in a scratch directory: the live env file, the one the last deploy
/// replaced, a stand-in `sudo`, and the health check at `service`.
async fn configuration(dir: &std::path::Path, service: &FakeService) -> Rollbot {
    fake_program(dir, "sudo", FAKE_SUDO);
    std::fs::write(dir.join("app.env"), "SMTP_HOST=smtp.broken.example\n").unwrap();
    let host = service.url.trim_start_matches("http://");
    let config = shipped("configuration.toml")
        .replace("/etc/notifications/app.env", &dir.join("app.env").display().to_string())
        .replace("\"sudo\"", &format!("\"{}\"", dir.join("sudo").display()))
        .replace("127.0.0.1:8025", host);
    Rollbot::builder().config(|_| config).start().await
}

/// The previous env file goes back in place (the bad one is kept, named after the rollback),
/// the unit is restarted, and health must say `"status":"ok"`; without a previous file the run
/// stops before the restart and the live file is untouched.
#[tokio::test]
async fn the_configuration_example_puts_the_previous_file_back_and_restarts_only_then() {
    let service = FakeService::start().await;
    service.script("/healthz", answers(&[200], r#"{"status":"ok"}"#));
    let request = "notifications severity medium reason \"bad SMTP settings\"";

    let missing = tempfile::tempdir().unwrap();
    let bot = configuration(missing.path(), &service).await;
    let card = bot.slash(BOB, request).await;
    assert!(card.contains("RB-1"), "{card}");
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(ALICE, Button::Approve(rb(1))).await;
    bot.settle().await;
    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 2 of 4"), "{}", failed.text);
    bot.thread(&card);
    assert_eq!(
        std::fs::read_to_string(missing.path().join("app.env")).unwrap(),
        "SMTP_HOST=smtp.broken.example\n"
    );
    assert!(
        !missing.path().join("asked").exists(),
        "no restart without the previous file"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.env.previous"), "SMTP_HOST=smtp.example\n").unwrap();
    let bot = configuration(dir.path(), &service).await;
    bot.slash(BOB, request).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(ALICE, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.env")).unwrap(),
        "SMTP_HOST=smtp.example\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.env.rolled-back-RB-1")).unwrap(),
        "SMTP_HOST=smtp.broken.example\n",
        "the bad file is kept for the post-mortem"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("asked")).unwrap(),
        "--non-interactive systemctl restart notifications.service\n"
    );
    assert_eq!(service.received("/healthz").len(), 1);
}

/// A stand-in `kubectl` for the maintenance example: `scale` and `rollout` answer as kubectl
/// does; `rollout undo` fails as kubectl does for a revision it does not have when `no-revision`
/// exists. What it was asked is in `asked`.
const FAKE_KUBECTL_SCALE: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
case "$1 $2" in
  "scale deployment/ledger-workers") echo "deployment.apps/ledger-workers scaled"; exit 0;;
  "rollout undo")
    if [ -f "$here/no-revision" ]; then echo 'error: unable to find specified revision 17 in history' >&2; exit 1; fi
    echo "deployment.apps/ledger rolled back"; exit 0;;
  "rollout status") echo 'deployment "ledger" successfully rolled out'; exit 0;;
esac
echo "error: unknown command \"$1\" for \"kubectl\"" >&2
exit 1
"#;

async fn maintenance(bin: &std::path::Path, service: &FakeService) -> Rollbot {
    fake_program(bin, "kubectl", FAKE_KUBECTL_SCALE);
    let config = shipped("maintenance.toml")
        .replace("\"kubectl\"", &format!("\"{}\"", bin.join("kubectl").display()))
        .replace("https://{{ vars.admin_host }}", &service.url)
        .replace("https://{{ vars.public_host }}", &service.url);
    Rollbot::builder()
        .config(|_| config)
        .secrets(&[("LEDGER_ADMIN_TOKEN", "ledger-admin-31c9")])
        .start()
        .await
}

/// Maintenance goes on before anything moves and off only after the rollback is healthy; the
/// stakeholders hear first; a person watches before the rollback closes. When the undo fails,
/// the run stops with maintenance left on and the workers still stopped, as the file promises.
#[tokio::test]
async fn the_maintenance_example_keeps_maintenance_on_until_the_rollback_is_healthy() {
    let service = healthy_service().await;
    service.script("/admin/maintenance", answers(&[204], ""));

    let failing = tempfile::tempdir().unwrap();
    std::fs::write(failing.path().join("no-revision"), "").unwrap();
    let bot = maintenance(failing.path(), &service).await;
    let card = approved_by_bob(&bot, "ledger to 17 severity high", 1).await;
    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 4 of 10"), "{}", failed.text);
    bot.thread(&card);
    let told = bot.posts_in("C0STATUS");
    assert!(
        told.iter()
            .any(|p| p.contains("goes into maintenance mode for a rollback to revision 17")),
        "{told:#?}"
    );
    let switched = service.received("/admin/maintenance");
    assert_eq!(switched.len(), 1, "maintenance stays on after a failed undo");
    assert!(switched[0].body.contains("\"enabled\":true"), "{}", switched[0].body);
    assert_eq!(switched[0].authorization.as_deref(), Some("Bearer ledger-admin-31c9"));
    let asked = std::fs::read_to_string(failing.path().join("asked")).unwrap();
    assert!(!asked.contains("--replicas=4"), "the workers stay stopped: {asked}");

    let service = healthy_service().await;
    service.script("/admin/maintenance", answers(&[204], ""));
    let bin = tempfile::tempdir().unwrap();
    let bot = maintenance(bin.path(), &service).await;
    let card = approved_by_bob(&bot, "ledger to 17 severity high", 1).await;
    let watching = bot.card_now(&card);
    assert!(watching.text.contains("Paused at step 10 of 10"), "{}", watching.text);
    let switched = service.received("/admin/maintenance");
    assert_eq!(switched.len(), 2);
    assert!(switched[1].body.contains("\"enabled\":false"), "{}", switched[1].body);
    assert_eq!(service.received("/healthz").len(), 2, "behind the page, then in public");
    bot.click(BOB, Button::Continue(rb(1), 9)).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    bot.posts_in("C0STATUS");
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    let order: Vec<&str> = asked.lines().collect();
    assert_eq!(
        order,
        [
            "scale deployment/ledger-workers -n prod --replicas=0",
            "rollout undo deployment/ledger -n prod --to-revision=17",
            "rollout status deployment/ledger -n prod --timeout=180s",
            "scale deployment/ledger-workers -n prod --replicas=4",
        ]
    );
}
