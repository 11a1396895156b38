//! Issue 10: what rollbot is given in confidence stays there.
use crate::support::fake_pagerduty::{FakePagerDuty, PAGERDUTY_TOKEN, ROUTING_KEY};
use crate::support::fake_statuspage::*;
use crate::support::*;
use serde_json::json;

const DEPLOY_TOKEN: &str = "deploy-token-never-shown-4b1e";

fn config(marker: &str) -> String {
    test_config(marker).replace(
        "runbooks = [\"app\", \"broken\", \"database\"]",
        "runbooks = [\"leaky\", \"app\"]\nstatuspage_components = [\"cmp-checkout\"]",
    ) + &format!(
        r#"
[runbooks.leaky]
description = "A step that prints its credential, as careless scripts do"
params.target = {{ pattern = "[0-9]+" }}

[[runbooks.leaky.steps]]
name = "Deploy with a token"
run = ["sh", "-c", 'echo "using token $1 for release $2"; echo "token=$1" >&2', "step", "${{env:DEPLOY_TOKEN}}", "{{{{ params.target }}}}"]

[statuspage]
provider = "atlassian"
page_id = "{PAGE_ID}"

[alertmanager]
target_label = "previous_release"
"#
    )
}

/// Every secret the process holds: Slack's signing secret and bot token, the status page's key,
/// the API's and Alertmanager's bearer tokens, PagerDuty's REST and integration keys, and a
/// step's `${env:…}` value.
const SECRETS: [&str; 8] = [
    SIGNING_SECRET,
    BOT_TOKEN,
    API_KEY,
    API_TOKEN,
    ALERTMANAGER_TOKEN,
    PAGERDUTY_TOKEN,
    ROUTING_KEY,
    DEPLOY_TOKEN,
];

#[tokio::test]
async fn no_secret_reaches_logs_slack_the_database_or_the_api() {
    captured_logs();
    let page = FakeStatusPage::start().await;
    // Who leads DevOps comes from PagerDuty (read at every click), and each run's start and end
    // go to it as change events: both of its keys are in play.
    let pagerduty = FakePagerDuty::start().await;
    pagerduty.on_call("PLEADS1", &[("PDAVE01", "Dave", "dave@example.com")]);
    let with_pagerduty = |marker: &str| {
        config(marker).replace(
            &format!("devops_lead = [\"{DAVE}\"]"),
            "devops_lead = [\"pagerduty:schedule:PLEADS1\"]",
        ) + &format!(
            "\n[pagerduty]\napi_url = \"{}\"\nrouting_key_env = \"PAGERDUTY_ROUTING_KEY\"\nevents_url = \"{}\"\n",
            pagerduty.url,
            pagerduty.events_url()
        )
    };
    let bot = Rollbot::builder()
        .config(with_pagerduty)
        .page(page.atlassian())
        .secrets(&[("DEPLOY_TOKEN", DEPLOY_TOKEN)])
        .start()
        .await;

    // An alert proposes, a person starts, another approves; the step prints its token.
    let alert = json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "rollbot", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
        "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout-api",
                    "previous_release": "41"}, "annotations": {}, "startsAt": "2026-11-22T02:50:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "f"}],
    });
    let answer = bot
        .raw_post(
            "/hooks/alertmanager",
            &[("authorization", format!("Bearer {ALERTMANAGER_TOKEN}"))],
            alert.to_string(),
        )
        .await;
    assert_eq!(answer.status(), 200);
    bot.settle().await;
    let proposal = bot.expect_card();
    bot.click(ALICE, Button::StartProposal(pr(1))).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.click(BOB, Button::Resolve(rb(1))).await;
    bot.settle().await;

    let thread = bot.thread(&card).join("\n");
    assert!(
        thread.contains("using token ${env:DEPLOY_TOKEN} for release 41"),
        "the step ran and its output names the secret, not its value: {thread}"
    );
    bot.ephemerals(ALICE);
    bot.card_now(&card);
    bot.card_now(&proposal);
    assert_eq!(page.calls().len(), 3, "opened, monitoring, resolved");
    assert!(!pagerduty.calls().is_empty(), "PagerDuty was asked who leads DevOps");
    let changes: String = pagerduty.changes().iter().map(|c| c["payload"].to_string()).collect();
    assert!(
        changes.contains("started") && changes.contains("succeeded"),
        "{changes}"
    );

    // A refused forgery on every door, so that refusals are logged too.
    bot.raw_post(
        "/slack/commands",
        &[("x-slack-signature", "v0=00".into())],
        "text=x".into(),
    )
    .await;
    bot.raw_post(
        "/hooks/alertmanager",
        &[("authorization", "Bearer wrong".into())],
        "{}".into(),
    )
    .await;

    let mut api = String::new();
    for path in [
        "/api/v1/rollbacks",
        "/api/v1/rollbacks/RB-1",
        "/api/v1/rollbacks/RB-1/postmortem.md",
        "/metrics",
    ] {
        let response = crate::support::http_client()
            .get(format!("{}{path}", bot.url))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        api += &response.text().await.unwrap();
    }
    assert!(api.contains("${env:DEPLOY_TOKEN}"), "the API shows the reference");

    let slack: String = bot.slack.calls().iter().map(|c| c.body.to_string()).collect();
    let pages: String = page.calls().iter().map(|c| c.body.to_string()).collect();
    bot.email_lookups();
    let logs = captured_logs();
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} is in the logs");
        assert!(!slack.contains(secret), "{secret} was sent to Slack");
        assert!(!pages.contains(secret), "{secret} is in a status page update");
        assert!(!api.contains(secret), "{secret} is in an API answer");
        for table in [
            "rollbacks",
            "rollback_events",
            "outbox",
            "timers",
            "proposals",
            "channel_pace",
        ] {
            let found = bot
                .count(&format!(
                    "SELECT count(*) FROM {table} t WHERE t::text LIKE '%{secret}%'"
                ))
                .await;
            assert_eq!(found, 0, "{secret} is stored in {table}");
        }
    }
}

/// Oversized requests are refused by size before anything reads them.
#[tokio::test]
async fn oversized_headers_and_bodies_are_refused_and_change_nothing() {
    let bot = Rollbot::start().await;
    let huge_header = "x".repeat(512 * 1024);
    let refused = bot
        .raw_post(
            "/slack/commands",
            &[("x-padding", huge_header)],
            slash_body(ALICE, INCIDENTS, "checkout-api to 41 severity high"),
        )
        .await;
    assert_eq!(refused.status(), 431, "request header fields too large");
    let many: Vec<(&str, String)> = (0..200).map(|_| ("x-many", "1".to_owned())).collect();
    let refused = bot
        .raw_post(
            "/slack/commands",
            &many,
            slash_body(ALICE, INCIDENTS, "checkout-api to 41 severity high"),
        )
        .await;
    assert_eq!(refused.status(), 431, "too many headers");
    let body = slash_body(ALICE, INCIDENTS, "checkout-api to 41 severity high") + &"&pad=".repeat(60_000);
    let refused = bot.signed_post("/slack/commands", body).await;
    assert_eq!(refused.status(), 413, "payload too large");
    assert_eq!(bot.rollbacks().await.len(), 0);
    bot.settle().await;
    assert!(bot.slack.calls().is_empty());
}

#[tokio::test]
async fn a_rollbacks_status_and_post_mortem_are_read_where_it_lives_or_by_those_in_it() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, r#"checkout-api to 41 severity high reason "bad deploy""#)
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.thread(&card);

    let elsewhere = "*RB-1* lives in <#C0INCIDENTS>: its status and post-mortem are shown there, and to its requester and approvers. Run the same command in <#C0INCIDENTS>.";
    const DM: &str = "D0MALLORY";
    for (channel, command) in [(RANDOM, "status RB-1"), (DM, "status RB-1"), (DM, "postmortem RB-1")] {
        let answer = bot.slash_in(MALLORY, channel, command).await;
        assert_eq!(answer, elsewhere, "{command} in {channel}");
    }
    let other_workspace = bot.slash_from_team(MALLORY, "T0OTHER", INCIDENTS, "status RB-1").await;
    assert!(
        other_workspace.starts_with("rollbot only takes requests from its own Slack workspace"),
        "{other_workspace}"
    );
    let other_workspace = bot
        .slash_from_team(MALLORY, "T0OTHER", INCIDENTS, "postmortem RB-1")
        .await;
    assert!(!other_workspace.contains("bad deploy"), "{other_workspace}");
    let plan = bot.slash_in(MALLORY, DM, "plan checkout-api to 41").await;
    assert_eq!(
        plan,
        "Plans are previewed in the incident channels, where they would run: <#C0INCIDENTS>. Run the same command there."
    );
    let plan = bot
        .slash_from_team(MALLORY, "T0OTHER", INCIDENTS, "plan checkout-api to 41")
        .await;
    assert!(!plan.contains("ran.log"), "no argv for another workspace: {plan}");

    let in_channel = bot.slash_in(MALLORY, INCIDENTS, "status RB-1").await;
    assert!(in_channel.contains("Succeeded"), "{in_channel}");
    for who in [ALICE, BOB] {
        let answer = bot.slash_in(who, DM, "postmortem RB-1").await;
        assert!(
            answer.contains("bad deploy"),
            "the requester and the approvers may read it anywhere: {answer}"
        );
    }
}

#[tokio::test]
async fn a_nul_character_is_refused_with_why_and_records_nothing() {
    let bot = Rollbot::start().await;
    let answer = bot
        .slash(ALICE, "checkout-api to 41 severity high reason \"bad\u{0}deploy\"")
        .await;
    assert_eq!(
        answer,
        "That command contains a control character (a NUL byte or a terminal escape, often pasted from a terminal), which rollbot cannot record. Nothing was recorded; type the command again without it. Type `/rollback help` for the grammar and examples."
    );
    bot.settle().await;
    assert_eq!(bot.rollbacks().await.len(), 0);
    let answer = bot
        .slash(ALICE, "checkout-api to 41 severity high reason \"bad deploy\"")
        .await;
    assert!(
        answer.starts_with("Recorded *RB-1*"),
        "the same command without it is recorded: {answer}"
    );
    bot.settle().await;
    bot.expect_card();
}

crate::also_on_embedded_store!(a_nul_character_is_refused_with_why_and_records_nothing);

#[tokio::test]
async fn a_status_page_that_echoes_its_key_in_an_error_does_not_leak_it() {
    captured_logs();
    let page = FakeStatusPage::start().await;
    page.fail_next(&[PageOutage::EchoesCredential]);
    let bot = Rollbot::builder()
        .config(config)
        .page(page.atlassian())
        .secrets(&[("DEPLOY_TOKEN", DEPLOY_TOKEN)])
        .start()
        .await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(page.refused(), [401], "the page refused with the key in its answer");
    bot.card_now(&card);
    let thread = bot.thread(&card).join("\n");
    assert!(
        thread.contains("invalid credential: OAuth ${env:STATUSPAGE_SECRET}"),
        "{thread}"
    );
    let record = crate::support::http_client()
        .get(format!("{}/api/v1/rollbacks/RB-1", bot.url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let slack: String = bot.slack.calls().iter().map(|c| c.body.to_string()).collect();
    let logs = captured_logs();
    for (place, text) in [
        ("the thread", &thread),
        ("the timeline", &record),
        ("Slack", &slack),
        ("the log", &logs),
    ] {
        assert!(!text.contains(API_KEY), "the status page's key reached {place}");
    }
    let stored = bot
        .count(&format!(
            "SELECT count(*) FROM rollback_events t WHERE t::text LIKE '%{API_KEY}%'"
        ))
        .await;
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn a_plan_rewritten_in_the_database_after_approval_never_runs() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo"], "paused at its gate");

    // Someone who can write rows (not rollbot's key) swaps the destructive step's command and
    // recomputes the digest stored beside the plan and in its approvals.
    let mut tampered = bot.app.engine.rollback(rb(1)).await.unwrap().unwrap();
    let rollbot::domain::StepAction::Command { argv, .. } = &mut tampered.plan.steps[2].action else {
        panic!("the full restore is a command");
    };
    argv[2] = "echo \"pwned\" >> \"$1\"".into();
    tampered.plan_digest = tampered.plan.digest();
    for approval in &mut tampered.approvals {
        approval.plan_digest = tampered.plan_digest.clone();
    }
    bot.tamper_with(&tampered).await;

    bot.click(BOB, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    assert_eq!(
        bot.submit(BOB, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await,
        None
    );
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo"], "the rewritten step did not run");
    let thread = bot.thread(&card).join("\n");
    assert!(
        thread.contains("its plan or its approval rules are not the ones rollbot recorded"),
        "the run says why it stopped: {thread}"
    );
    assert!(bot.card_now(&card).text.contains("Failed"));
}
