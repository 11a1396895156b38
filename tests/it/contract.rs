//! rollbot against what Slack publishes: the signing test vector, the payload samples, the
//! manifest schema; and the HTTP edge's refusals of anything not signed by Slack.
use crate::support::*;
use chrono::{TimeZone, Utc};
use rollbot::clock::Clock;
use rollbot::slack::inbound::{Interaction, parse_interaction, parse_slash_command};
use rollbot::slack::signature::{Secret, SignatureError, SignatureVerifier, sign};

// Slack's worked example from "Verifying requests from Slack" (tests/data/slack/README.md).
const VECTOR_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const VECTOR_TIMESTAMP: &str = "1531420618";
const VECTOR_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const VECTOR_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

fn vector_time() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1531420618, 0).unwrap()
}

#[test]
fn the_official_signing_vector_verifies_at_its_own_time() {
    let readme = std::fs::read_to_string(slack_samples().join("README.md")).unwrap();
    assert!(
        readme.contains(VECTOR_BODY) && readme.contains(VECTOR_SIGNATURE),
        "the vector here is the one Slack publishes"
    );
    assert_eq!(VECTOR_BODY.len(), 362);
    let verifier = SignatureVerifier::new(vec![Secret::new(VECTOR_SECRET)]);
    assert_eq!(
        verifier.verify(
            Some(VECTOR_TIMESTAMP),
            Some(VECTOR_SIGNATURE),
            VECTOR_BODY.as_bytes(),
            vector_time()
        ),
        Ok(())
    );
    assert_eq!(
        sign(VECTOR_SECRET, 1531420618, VECTOR_BODY.as_bytes()),
        VECTOR_SIGNATURE
    );
}

#[test]
fn any_one_byte_change_fails_verification() {
    let verifier = SignatureVerifier::new(vec![Secret::new(VECTOR_SECRET)]);
    let at = vector_time();
    let mut body = VECTOR_BODY.as_bytes().to_vec();
    body[100] ^= 1;
    assert_eq!(
        verifier.verify(Some(VECTOR_TIMESTAMP), Some(VECTOR_SIGNATURE), &body, at),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verifier.verify(Some("1531420619"), Some(VECTOR_SIGNATURE), VECTOR_BODY.as_bytes(), at),
        Err(SignatureError::Mismatch)
    );
    let mut signature = VECTOR_SIGNATURE.to_owned();
    signature.replace_range(10..11, "0");
    assert_eq!(
        verifier.verify(Some(VECTOR_TIMESTAMP), Some(&signature), VECTOR_BODY.as_bytes(), at),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verifier.verify(Some(VECTOR_TIMESTAMP), Some("v1=a2114d57"), VECTOR_BODY.as_bytes(), at),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn stale_future_and_missing_headers_fail() {
    let verifier = SignatureVerifier::new(vec![Secret::new(VECTOR_SECRET)]);
    let body = VECTOR_BODY.as_bytes();
    let sig = Some(VECTOR_SIGNATURE);
    let ts = Some(VECTOR_TIMESTAMP);
    let seconds = chrono::Duration::seconds;
    assert_eq!(
        verifier.verify(ts, sig, body, vector_time() + seconds(300)),
        Ok(()),
        "five minutes late is still fine"
    );
    assert_eq!(
        verifier.verify(ts, sig, body, vector_time() + seconds(301)),
        Err(SignatureError::Stale)
    );
    assert_eq!(
        verifier.verify(ts, sig, body, vector_time() - seconds(301)),
        Err(SignatureError::Stale),
        "from the future"
    );
    assert_eq!(
        verifier.verify(ts, sig, body, Utc::now()),
        Err(SignatureError::Stale),
        "the vector is from 2018"
    );
    assert_eq!(
        verifier.verify(None, sig, body, vector_time()),
        Err(SignatureError::MissingHeader)
    );
    assert_eq!(
        verifier.verify(ts, None, body, vector_time()),
        Err(SignatureError::MissingHeader)
    );
    assert_eq!(
        verifier.verify(Some("soon"), sig, body, vector_time()),
        Err(SignatureError::BadTimestamp)
    );
}

#[test]
fn a_rotated_secret_is_accepted_beside_the_new_one() {
    let verifier = SignatureVerifier::new(vec![Secret::new("new-secret"), Secret::new(VECTOR_SECRET)]);
    assert_eq!(
        verifier.verify(
            Some(VECTOR_TIMESTAMP),
            Some(VECTOR_SIGNATURE),
            VECTOR_BODY.as_bytes(),
            vector_time()
        ),
        Ok(())
    );
    assert!(!format!("{verifier:?}").contains(VECTOR_SECRET), "secrets never print");
}

#[test]
fn slacks_payload_samples_parse_or_are_refused_clearly() {
    let dir = slack_samples().join("payloads");
    let slash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("SlashCommandPayload.json")).unwrap()).unwrap();
    let form: Vec<(String, String)> = slash
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let error = parse_slash_command(serde_urlencoded::to_string(&form).unwrap().as_bytes()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the request has no channel_id",
        "the sample's blanked fields are refused by name"
    );

    let interaction = |file: &str| {
        let json = std::fs::read_to_string(dir.join(file)).unwrap();
        parse_interaction(serde_urlencoded::to_string([("payload", json)]).unwrap().as_bytes())
    };
    assert_eq!(
        interaction("BlockActionPayload.json").unwrap_err().to_string(),
        "the request has no user.id"
    );
    assert_eq!(
        interaction("ViewSubmissionPayload.json").unwrap_err().to_string(),
        "the request has no user.id"
    );
    assert_eq!(
        interaction("ViewClosedPayload.json").unwrap(),
        Interaction::Ignored {
            kind: "view_closed".into()
        }
    );

    // Filled in as Slack would, the same samples are accepted with every extra field.
    let filled = slash_body(ALICE, INCIDENTS, "help");
    assert_eq!(parse_slash_command(filled.as_bytes()).unwrap().user_id, ALICE);
    let click = click_body(BOB, INCIDENTS, "approve", "RB-9");
    match parse_interaction(click.as_bytes()).unwrap() {
        Interaction::Button(b) => assert_eq!(
            (b.user_id.as_str(), b.action_id.as_str(), b.value.as_str()),
            (BOB, "approve", "RB-9")
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        parse_interaction(b"payload=%7Bnot json")
            .unwrap_err()
            .to_string()
            .starts_with("the interaction payload is not valid JSON")
    );
    assert_eq!(
        parse_interaction(b"nothing=here").unwrap_err().to_string(),
        "the request has no payload"
    );
}

#[test]
fn the_app_manifest_validates_against_slacks_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slack_samples().join("manifest.schema.1.0.0.json")).unwrap())
            .unwrap();
    let manifest: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifest/slack-app.yaml")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&manifest)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        manifest["oauth_config"]["scopes"]["bot"],
        serde_json::json!([
            "commands",
            "chat:write",
            "usergroups:read",
            "users:read",
            "users:read.email",
            "channels:history",
            "groups:history"
        ]),
        "only the scopes rollbot uses"
    );
    assert_eq!(manifest["features"]["slash_commands"][0]["command"], "/rollback");

    let mut broken = manifest.clone();
    broken["features"]["slash_commands"][0]["command"] = "rollback".into();
    assert!(!validator.is_valid(&broken), "the schema check can fail");
}

#[tokio::test]
async fn unsigned_forged_and_stale_requests_get_401_and_change_nothing() {
    let bot = Rollbot::start().await;
    let body = slash_body(ALICE, INCIDENTS, "checkout-api to 41 severity critical");
    let now = bot.clock.now().timestamp();
    let form = ("content-type", "application/x-www-form-urlencoded".to_owned());

    let unsigned = bot
        .raw_post("/slack/commands", std::slice::from_ref(&form), body.clone())
        .await;
    assert_eq!(unsigned.status(), 401);
    assert_eq!(unsigned.text().await.unwrap(), "", "refusals carry no detail");

    let forged = sign("not-the-secret", now, body.as_bytes());
    let headers = [
        form.clone(),
        ("x-slack-request-timestamp", now.to_string()),
        ("x-slack-signature", forged),
    ];
    assert_eq!(
        bot.raw_post("/slack/commands", &headers, body.clone()).await.status(),
        401
    );

    let stale = now - 301;
    let headers = [
        form.clone(),
        ("x-slack-request-timestamp", stale.to_string()),
        ("x-slack-signature", sign(SIGNING_SECRET, stale, body.as_bytes())),
    ];
    assert_eq!(
        bot.raw_post("/slack/commands", &headers, body.clone()).await.status(),
        401,
        "a replay older than five minutes"
    );

    let click = click_body(BOB, INCIDENTS, "approve", "RB-1");
    assert_eq!(
        bot.raw_post("/slack/interactions", std::slice::from_ref(&form), click)
            .await
            .status(),
        401
    );

    let tampered = body.replace("critical", "critical&user_id=U0BOB");
    let headers = [
        form.clone(),
        ("x-slack-request-timestamp", now.to_string()),
        ("x-slack-signature", sign(SIGNING_SECRET, now, body.as_bytes())),
    ];
    assert_eq!(bot.raw_post("/slack/commands", &headers, tampered).await.status(), 401);

    bot.settle().await;
    assert_eq!(bot.rollbacks().await.len(), 0);
    assert!(bot.slack.calls().is_empty());
    assert!(bot.marker().is_empty());
}

#[tokio::test]
async fn ssl_check_oversized_bodies_and_probes() {
    let bot = Rollbot::start().await;
    let ssl = bot
        .raw_post(
            "/slack/commands",
            &[("content-type", "application/x-www-form-urlencoded".into())],
            "ssl_check=1&token=x".into(),
        )
        .await;
    assert_eq!(ssl.status(), 200, "Slack's unsigned certificate probe");

    let huge = format!("text={}", "a".repeat(300 * 1024));
    assert_eq!(bot.signed_post("/slack/commands", huge).await.status(), 413);

    let health = crate::support::http_client()
        .get(format!("{}/healthz", bot.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (health.status().as_u16(), health.text().await.unwrap()),
        (200, "ok".to_owned())
    );
    let ready = crate::support::http_client()
        .get(format!("{}/readyz", bot.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "PostgreSQL is reachable");
    assert_eq!(bot.rollbacks().await.len(), 0);
}

#[tokio::test]
async fn with_the_database_down_a_request_is_refused_as_not_recorded_and_service_resumes_when_it_is_back() {
    let proxy = crate::support::proxy::Proxy::to("127.0.0.1:5432".into()).await;
    let bot = Rollbot::builder().behind(&proxy).start().await;
    let ready = || async {
        crate::support::http_client()
            .get(format!("{}/readyz", bot.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert!(
        bot.slash(ALICE, "checkout-api to 41 severity high")
            .await
            .starts_with("Recorded *RB-1*")
    );
    assert_eq!(ready().await, 200);

    proxy.cut();
    let answer = bot.slash(ALICE, "checkout-api to 42 severity high").await;
    assert!(
        answer.starts_with("⚠️ Something went wrong inside rollbot (reference `"),
        "{answer}"
    );
    assert!(answer.contains("Your request was NOT recorded; try again"), "{answer}");
    assert_eq!(ready().await, 503, "unready while the store is unreachable");
    assert_eq!(
        bot.click(BOB, Button::Approve(rb(1))).await,
        500,
        "a click that cannot be recorded is not acknowledged"
    );

    proxy.restore();
    assert_eq!(ready().await, 200, "ready again without a restart");
    assert_eq!(bot.click(BOB, Button::Approve(rb(1))).await, 200);
    bot.settle().await;
    let first = bot.expect_card();
    assert!(bot.card_now(&first).text.contains("✅ *Succeeded*"));
    bot.thread(&first);
    // RB-1 held checkout-api's lock until it was over.
    assert!(
        bot.slash(ALICE, "checkout-api to 43 severity high")
            .await
            .starts_with("Recorded *RB-2*")
    );
    assert_eq!(
        bot.rollbacks().await.len(),
        2,
        "the refused request left nothing behind"
    );
    bot.settle().await;
    bot.expect_card();
}

#[test]
fn rollbot_manifest_for_socket_mode_is_valid_and_names_no_request_url() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["manifest", "--socket-mode"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let manifest: serde_json::Value = serde_yaml::from_slice(&output.stdout).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slack_samples().join("manifest.schema.1.0.0.json")).unwrap())
            .unwrap();
    let errors: Vec<String> = jsonschema::draft7::new(&schema)
        .unwrap()
        .iter_errors(&manifest)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(manifest["settings"]["socket_mode_enabled"], true);
    assert_eq!(manifest["settings"]["interactivity"]["is_enabled"], true);
    assert!(manifest["settings"]["interactivity"].get("request_url").is_none());
    assert_eq!(manifest["features"]["slash_commands"][0]["command"], "/rollback");
    assert!(manifest["features"]["slash_commands"][0].get("url").is_none());

    let both = std::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["manifest", "--socket-mode", "--base-url", "https://rollbot.acme.io"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "the two variants are exclusive");
    let neither = std::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["manifest"])
        .output()
        .unwrap();
    assert_eq!(neither.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&neither.stderr).contains("--base-url"));
}

#[test]
fn rollbot_manifest_prints_a_valid_manifest_for_the_base_url() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["manifest", "--base-url", "https://rollbot.acme.io"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let manifest: serde_json::Value = serde_yaml::from_slice(&output.stdout).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slack_samples().join("manifest.schema.1.0.0.json")).unwrap())
            .unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&manifest)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        manifest["features"]["slash_commands"][0]["url"],
        "https://rollbot.acme.io/slack/commands"
    );
    assert_eq!(
        manifest["settings"]["interactivity"]["request_url"],
        "https://rollbot.acme.io/slack/interactions"
    );

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["manifest", "--base-url", "rollbot"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a base URL"));
}

/// Found by reading what the signature fuzz target could reach: the most extreme timestamps
/// used to overflow the age check.
#[test]
fn extreme_timestamps_are_stale_not_a_crash() {
    let verifier = SignatureVerifier::new(vec![Secret::new(VECTOR_SECRET)]);
    for timestamp in ["-9223372036854775808", "9223372036854775807", "-1", "0"] {
        assert_eq!(
            verifier.verify(
                Some(timestamp),
                Some(VECTOR_SIGNATURE),
                VECTOR_BODY.as_bytes(),
                vector_time()
            ),
            Err(SignatureError::Stale),
            "{timestamp}"
        );
    }
}

#[tokio::test]
async fn a_card_posted_while_the_database_blinked_is_recorded_not_posted_again() {
    let proxy = crate::support::proxy::Proxy::to("127.0.0.1:5432".into()).await;
    let bot = Rollbot::builder().behind(&proxy).start().await;
    assert!(
        bot.slash(ALICE, "checkout-api to 41 severity high")
            .await
            .starts_with("Recorded *RB-1*")
    );
    // Slack takes its time with the card; the database goes away before rollbot can record
    // where the card is, and comes back afterwards.
    bot.slack
        .slow("chat.postMessage", Some(std::time::Duration::from_millis(600)));
    let delivery = bot.app.delivery.clone();
    let first = tokio::spawn(async move { delivery.run_once().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    proxy.cut();
    let _ = first.await.unwrap();
    proxy.restore();
    bot.slack.slow("chat.postMessage", None);
    bot.advance(5);
    bot.settle().await;
    let cards = bot
        .slack
        .calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none_or(|t| t.is_null()))
        .count();
    assert_eq!(cards, 1, "one request, one card");
    let card = bot.expect_card();
    assert_eq!(bot.click(BOB, Button::Approve(rb(1))).await, 200);
    bot.settle().await;
    assert!(
        bot.card_now(&card).text.contains("✅ *Succeeded*"),
        "the card recorded is the one updated"
    );
    bot.thread(&card);
}

/// Slack took the card but its answer never reached rollbot, and the process that posted it is
/// gone: the replica that retries finds the card by the stamp rollbot put on it (message
/// metadata) in the channel's history, records it and brings it up to date; it posts no second.
#[tokio::test]
async fn a_card_whose_answer_was_lost_is_found_in_the_channel_not_posted_again() {
    use crate::support::fake_slack::Outage;
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.slack.fail_next(&[Outage::AnswerLost]);
    bot.app.delivery.run_once().await.unwrap();
    assert_eq!(bot.slack.refused(), [("chat.postMessage".to_owned(), 503)]);

    // The process that posted it dies; another one takes the retry.
    let replica = bot.another_process().await;
    bot.advance(1);
    while replica.delivery.run_once().await.unwrap() > 0 {}
    let card = bot.expect_card();
    assert_eq!(bot.history_lookups(), [INCIDENTS], "the retry looked before posting");
    let cards: Vec<_> = bot
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none_or(|t| t.is_null()))
        .collect();
    assert_eq!(cards.len(), 1, "one request, one card");
    assert_eq!(
        (
            &cards[0].body["metadata"]["event_type"],
            &cards[0].body["metadata"]["event_payload"]["card"]
        ),
        (&serde_json::json!("rollbot_card"), &serde_json::json!("RB-1")),
        "the card carries rollbot's stamp: {:#?}",
        cards[0].body
    );

    assert_eq!(bot.click(BOB, Button::Approve(rb(1))).await, 200);
    bot.settle().await;
    assert!(
        bot.card_now(&card).text.contains("✅ *Succeeded*"),
        "the card found is the one updated"
    );
    bot.thread(&card);
    bot.ephemerals(ALICE);
}

/// The same for a proposal's card, and a stamp of another rollbot in the channel is not ours.
#[tokio::test]
async fn a_proposal_card_whose_answer_was_lost_is_found_and_a_foreign_stamp_is_ignored() {
    use crate::support::fake_slack::Outage;
    let bot = Rollbot::start_with(|m| crate::alerts::alert_config(m, "")).await;
    bot.alertmanager(&crate::alerts::notification(
        crate::alerts::GROUP,
        vec![crate::alerts::alert(
            "HighErrorRate",
            "checkout-api",
            "page",
            true,
            "pod-1",
        )],
    ))
    .await;
    bot.slack.fail_next(&[Outage::AnswerLost]);
    bot.app.delivery.run_once().await.unwrap();
    // Another rollbot (staging, say) posts its own P-1 in the same channel meanwhile.
    bot.slack.post_as_another_app(
        INCIDENTS,
        "rollbot_card",
        &[("card", "P-1"), ("instance", "0000deadbeef")],
    );
    let replica = bot.another_process().await;
    bot.advance(1);
    while replica.delivery.run_once().await.unwrap() > 0 {}
    let card = bot.expect_card();
    assert!(card.text.contains("Proposed rollback"), "{}", card.text);
    assert_eq!(bot.history_lookups(), [INCIDENTS]);
    assert_eq!(
        bot.slack
            .calls()
            .iter()
            .filter(|c| c.method == "chat.postMessage" && c.body["metadata"]["event_type"] == "rollbot_card")
            .count(),
        1,
        "one proposal, one card"
    );
    assert_eq!(bot.click(ALICE, Button::DismissProposal(pr(1))).await, 200);
    bot.settle().await;
    assert!(
        bot.card_now(&card).text.contains("Dismissed by"),
        "the card found is the one updated"
    );
}
