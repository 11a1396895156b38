//! Socket Mode: Slack's requests over the connection rollbot opens (no public endpoint), through
//! the very handlers and with the same guarantees as the signed HTTP requests; and the
//! connection held through Slack's refresh warnings, breaks and silences.
use crate::support::over_socket::{ACK_WINDOW, click_payload, slash_payload};
use crate::support::*;
use std::time::Duration;

const REQUEST: &str = r#"checkout-api to 41 severity high reason "bad deploy""#;

#[tokio::test]
async fn a_rollback_requested_approved_and_run_over_socket_mode_reads_as_over_http() {
    let bot = Rollbot::builder().socket_mode().start().await;
    assert_eq!(
        bot.slack
            .calls()
            .iter()
            .filter(|c| c.method == "apps.connections.open")
            .map(|c| c.authorization.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        [format!("Bearer {APP_TOKEN}")],
        "the socket is opened with the app-level token, once"
    );

    let ack = bot.socket_slash(ALICE, REQUEST).await;
    assert!(
        ack.starts_with("Recorded *RB-1*: Rollback RB-1: checkout-api to 41 (high)."),
        "the acknowledgement carries the private answer: {ack}"
    );
    bot.settle().await;
    let card = bot.expect_card();
    assert!(card.text.contains("Awaiting approval"), "{}", card.text);

    // An outsider's click is refused privately, as over HTTP.
    assert_eq!(bot.socket_click(MALLORY, Button::Approve(rb(1))).await, None);
    bot.settle().await;
    let refusal = bot.ephemerals(MALLORY);
    assert_eq!(refusal.len(), 1, "{refusal:?}");
    assert!(refusal[0].contains("cannot approve"), "{}", refusal[0]);

    assert_eq!(bot.socket_click(BOB, Button::Approve(rb(1))).await, None);
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*: all 2 steps ran"), "{}", card.text);
    assert!(
        card.text.contains("*Approved by*\n<@U0BOB> (`on_call`)"),
        "{}",
        card.text
    );
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 4, "{thread:#?}");
    assert!(thread[0].starts_with("🔴 *ROLLBACK IN PROGRESS*"), "{}", thread[0]);
    assert!(thread[1].starts_with("✅ Steps 1–2 of 2 passed"), "{}", thread[1]);
    assert!(thread[2].starts_with("✅ *ROLLBACK COMPLETE*"), "{}", thread[2]);
    assert!(thread[3].starts_with("📣 *Customer notice"), "{}", thread[3]);
    assert_eq!(bot.marker(), ["undo 41", "health"], "each step ran once");
    assert!(bot.slack.socket.strays().is_empty());
}

#[tokio::test]
async fn a_form_opened_and_submitted_over_socket_mode_answers_its_errors_in_the_acknowledgement() {
    let bot = Rollbot::builder().socket_mode().start().await;
    bot.socket_slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    assert_eq!(bot.socket_click(BOB, Button::Reject(rb(1))).await, None);
    let modal = bot.expect_modal();
    assert_eq!(modal["callback_id"], "reject");
    assert_eq!(
        bot.socket_submit(BOB, &modal, &[("reason", "  ")]).await,
        Some(
            serde_json::json!({"response_action": "errors", "errors": {"reason": "Say why, so the requester knows what to do instead."}})
        ),
        "the modal's errors ride in the acknowledgement's payload, as Slack reads them"
    );
    assert_eq!(
        bot.socket_submit(BOB, &modal, &[("reason", "not the deploy")]).await,
        None
    );
    bot.settle().await;
    assert!(
        bot.card_now(&card)
            .text
            .contains("🚫 *Rejected* by <@U0BOB>: “not the deploy”. Nothing ran."),
        "{}",
        bot.card_now(&card).text
    );
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 1, "{thread:#?}");
    assert!(thread[0].contains("not the deploy"), "{}", thread[0]);
    assert!(bot.marker().is_empty());
}

#[tokio::test]
async fn the_same_command_delivered_twice_over_the_socket_is_one_request() {
    let bot = Rollbot::builder().socket_mode().start().await;
    let payload = slash_payload(ALICE, INCIDENTS, REQUEST);
    let first = bot.slack.socket.send("slash_commands", payload.clone(), true);
    let again = bot.slack.socket.send("slash_commands", payload, true);
    let first = bot.slack.socket.ack(&first, ACK_WINDOW).await.unwrap();
    let again = bot.slack.socket.ack(&again, ACK_WINDOW).await.unwrap();
    assert!(first["text"].as_str().unwrap().contains("RB-1"), "{first}\n{again}");
    assert_eq!(first, again, "a redelivery is answered as the first was");
    assert_eq!(bot.rollbacks().await.len(), 1);
    bot.settle().await;
    bot.expect_card();
}

#[tokio::test]
async fn hostile_frames_and_envelopes_are_acknowledged_or_ignored_and_change_nothing() {
    let bot = Rollbot::builder().socket_mode().start().await;
    for junk in [
        "not json",
        "[]",
        r#"{"type":"slash_commands"}"#,
        r#"{"type":7,"envelope_id":"x"}"#,
        &format!(
            "{{\"type\":\"interactive\",\"envelope_id\":\"big\",\"payload\":\"{}\"}}",
            "a".repeat(300_000)
        ),
    ] {
        bot.slack.socket.send_raw(junk);
    }
    let socket = &bot.slack.socket;
    let unreadable_command = socket.send("slash_commands", serde_json::json!({"text": REQUEST}), true);
    let not_an_object = socket.send("slash_commands", serde_json::json!(["checkout-api"]), true);
    let unreadable_click = socket.send("interactive", serde_json::json!({"type": "block_actions"}), false);
    let forged_button = socket.send(
        "interactive",
        click_payload(BOB, INCIDENTS, &Button::Approve(rb(99))),
        false,
    );
    let event = socket.send(
        "events_api",
        serde_json::json!({"event": {"type": "app_mention"}}),
        false,
    );

    for id in [&unreadable_command, &not_an_object] {
        let answer = socket.ack(id, ACK_WINDOW).await.expect("the person is told why");
        let text = answer["text"].as_str().unwrap();
        assert!(
            text.starts_with("rollbot could not read this command:") && text.ends_with("Nothing was recorded."),
            "{text}"
        );
    }
    for id in [&unreadable_click, &event] {
        assert_eq!(socket.ack(id, ACK_WINDOW).await, None);
    }
    assert_eq!(socket.ack(&forged_button, ACK_WINDOW).await, None);
    assert_eq!(socket.open_connections(), 1, "the connection outlived all of it");
    assert!(bot.rollbacks().await.is_empty(), "nothing was recorded");
    bot.settle().await;
    let private = bot.ephemerals(BOB);
    assert_eq!(
        private.len(),
        1,
        "the click on a rollback that does not exist is answered: {private:?}"
    );

    // And the connection still serves a good request.
    assert!(bot.socket_slash(ALICE, REQUEST).await.contains("RB-1"));
    bot.settle().await;
    bot.expect_card();
}

#[tokio::test]
async fn slacks_refresh_warning_opens_the_next_connection_before_the_old_one_closes() {
    let bot = Rollbot::builder().socket_mode().start().await;
    let socket = &bot.slack.socket;
    socket.warn_and_close("refresh_requested", Duration::from_millis(800));
    // Both are open for a moment: nothing Slack sends in between falls on the floor.
    socket.wait_for_connections(2).await;
    let on_either = [
        socket.send("slash_commands", slash_payload(ALICE, INCIDENTS, REQUEST), true),
        socket.send("slash_commands", slash_payload(CAROL, INCIDENTS, "help"), true),
    ];
    let answers: Vec<String> = futures_util::future::join_all(on_either.iter().map(|id| socket.ack(id, ACK_WINDOW)))
        .await
        .into_iter()
        .map(|answer| answer.unwrap()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(answers[0].starts_with("Recorded *RB-1*"), "{}", answers[0]);
    assert!(answers[1].contains("/rollback"), "{}", answers[1]);
    socket.wait_for_connections(1).await;
    assert_eq!(socket.opened(), 2);
    assert_eq!(
        bot.slack
            .calls()
            .iter()
            .filter(|c| c.method == "apps.connections.open")
            .count(),
        2,
        "one address per connection"
    );
    // The new connection carries the approval; the rollback runs once.
    bot.settle().await;
    let card = bot.expect_card();
    assert_eq!(bot.socket_click(BOB, Button::Approve(rb(1))).await, None);
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*"), "{}", card.text);
    assert_eq!(bot.thread(&card).len(), 4);
    assert_eq!(bot.marker(), ["undo 41", "health"]);
}

#[tokio::test]
async fn a_connection_that_breaks_is_reopened_and_serves_again() {
    let bot = Rollbot::builder().socket_mode().start().await;
    let socket = &bot.slack.socket;
    for round in 1..=3 {
        socket.cut();
        socket.wait_for_connections(1).await;
        assert_eq!(socket.opened(), round + 1);
    }
    assert!(bot.socket_slash(ALICE, REQUEST).await.contains("RB-1"));
    bot.settle().await;
    bot.expect_card();
}

#[tokio::test]
async fn a_connection_gone_silent_is_replaced() {
    let bot = Rollbot::start().await;
    let worker = std::sync::Arc::new(
        rollbot::http::socket_mode::SocketMode::new(bot.app.edge.clone(), rollbot::secret::Secret::new(APP_TOKEN))
            .with_silence_limit(Duration::from_millis(1500)),
    );
    let (_held, never) = rollbot::shutdown::channel();
    let running = tokio::spawn(worker.run_forever(never));
    let socket = &bot.slack.socket;
    socket.wait_for_connections(1).await;
    socket.stall();
    assert_eq!(socket.open_connections(), 0);
    let started = std::time::Instant::now();
    socket.wait_for_connections(1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "replaced for its silence, not at once"
    );
    assert!(bot.socket_slash(ALICE, REQUEST).await.contains("RB-1"));
    bot.settle().await;
    bot.expect_card();
    running.abort();
}

/// Two `rollbot serve` replicas in Socket Mode: each holds a connection, Slack spreads the
/// envelopes over both, forty approvals on a rollback run it once and each is acknowledged;
/// one replica stopped by SIGTERM leaves the other serving.
#[tokio::test]
async fn two_replicas_in_socket_mode_share_slacks_envelopes_and_run_the_rollback_once() {
    use crate::support::fake_slack::FakeSlack;
    use crate::support::serve::*;
    let db = TestDb::new();
    let slack = FakeSlack::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran.log");
    let clickers: Vec<String> = (0..40).map(|n| format!("U0AP{n:03}")).collect();
    let on_call: Vec<String> = clickers.iter().map(|u| format!("\"{u}\"")).collect();
    let config = scratch.path().join("rollbot.toml");
    std::fs::write(
        &config,
        test_config(marker.to_str().unwrap()).replace(
            r#"on_call = ["U0ALICE", "U0BOB", "U0BETH"]"#,
            &format!("on_call = [\"U0ALICE\", {}]", on_call.join(", ")),
        ),
    )
    .unwrap();
    let env = [("SLACK_APP_TOKEN", APP_TOKEN)];
    let store = || ("DATABASE_URL", db.url.clone());
    let mut first = Serve::start_with_env("a", store(), &slack, &config, scratch.path(), &env).await;
    let second = Serve::start_with_env("b", store(), &slack, &config, scratch.path(), &env).await;
    let log_files = [first.log_file.clone(), second.log_file.clone()];
    let logs = || {
        log_files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_for_or_show(&logs, "a connection from each replica", async || {
        (slack.socket.open_connections() == 2).then_some(())
    })
    .await;

    let id = slack
        .socket
        .send("slash_commands", slash_payload(ALICE, INCIDENTS, REQUEST), true);
    let answer = slack.socket.ack(&id, ACK_WINDOW).await.unwrap();
    assert!(
        answer["text"].as_str().unwrap().starts_with("Recorded *RB-1*"),
        "{answer}"
    );
    wait_for_or_show(&logs, "the card", async || {
        slack
            .calls()
            .iter()
            .any(|c| c.method == "chat.postMessage")
            .then_some(())
    })
    .await;

    let clicks: Vec<String> = clickers
        .iter()
        .map(|user| {
            slack.socket.send(
                "interactive",
                click_payload(user, INCIDENTS, &Button::Approve(rb(1))),
                false,
            )
        })
        .collect();
    for id in &clicks {
        assert_eq!(
            slack.socket.ack(id, ACK_WINDOW).await,
            None,
            "every click acknowledged in time"
        );
    }
    let refused = wait_for_refusals_and_the_end_of_the_run(&slack, &logs, 39).await;
    assert_eq!(refused.len(), 39, "each other approver is told, once");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "undo 41\nhealth\n",
        "one run"
    );
    for replica in ["a", "b"] {
        let log = if replica == "a" { first.log() } else { second.log() };
        assert!(log.contains("Socket Mode: connected to Slack"), "{replica}: {log}");
        assert!(!log.contains(APP_TOKEN), "the app token never reaches the log");
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = first.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", first.log());
    wait_for_or_show(&logs, "one connection left", async || {
        (slack.socket.open_connections() == 1).then_some(())
    })
    .await;
    let id = slack
        .socket
        .send("slash_commands", slash_payload(BOB, INCIDENTS, "status RB-1"), true);
    let status = slack.socket.ack(&id, ACK_WINDOW).await.unwrap();
    assert!(status["text"].as_str().unwrap().contains("Succeeded"), "{status}");
}

#[test]
fn serve_refuses_an_app_token_that_is_not_one_and_says_where_to_get_it() {
    let output = std::process::Command::new(crate::support::serve::BIN)
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rollbot.toml"),
        ])
        .env_clear()
        .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_APP_TOKEN", BOT_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("SLACK_APP_TOKEN is not an app-level token (they start with xapp-)")
            && said.contains("connections:write")
            && said.contains("Basic Information → App-Level Tokens"),
        "{said}"
    );
    assert!(!said.contains(BOT_TOKEN), "the token itself is not repeated: {said}");
}

#[tokio::test]
async fn an_app_token_slack_refuses_is_retried_slowly_and_said_in_the_log() {
    captured_logs();
    let bot = Rollbot::start().await;
    let worker = std::sync::Arc::new(rollbot::http::socket_mode::SocketMode::new(
        bot.app.edge.clone(),
        rollbot::secret::Secret::new("xapp-1-revoked"),
    ));
    let (_held, never) = rollbot::shutdown::channel();
    let running = tokio::spawn(worker.run_forever(never));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.abort();
    let attempts = bot
        .slack
        .calls()
        .iter()
        .filter(|c| c.method == "apps.connections.open")
        .count();
    assert!(
        (2..=4).contains(&attempts),
        "retried with a growing pause, not in a tight loop: {attempts} attempts in 1.5 s"
    );
    assert_eq!(bot.slack.socket.opened(), 0);
    let logs = captured_logs();
    assert!(
        logs.contains("apps.connections.open refused the app-level token (invalid_auth)"),
        "{logs}"
    );
    assert!(!logs.contains("xapp-1-revoked"), "the token never reaches the log");
}
