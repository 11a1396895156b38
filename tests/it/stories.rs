//! Stories of the walking skeleton, told through the real router with signed requests.
use crate::support::*;

const REQUEST: &str = r#"checkout-api to 41 severity high reason "bad deploy""#;

#[tokio::test]
async fn requested_approved_and_run_step_by_step() {
    let bot = Rollbot::start().await;

    let ack = bot.slash(ALICE, REQUEST).await;
    assert!(
        ack.starts_with("Recorded *RB-1*: Rollback RB-1: checkout-api to 41 (high)."),
        "{ack}"
    );
    assert!(ack.contains("It needs 1 approval(s) from `on_call`"), "{ack}");
    assert!(ack.contains("You cannot approve your own rollback"), "{ack}");
    assert!(
        bot.slack.calls().is_empty(),
        "the ack must not wait for Slack: nothing is sent before the outbox runs"
    );

    bot.settle().await;
    let card = bot.expect_card();
    assert_eq!(card.channel, INCIDENTS);
    for expected in [
        "Rollback RB-1: checkout-api to 41",
        "Awaiting approval",
        "*Service*\ncheckout-api",
        "*Target*\n41",
        "🟠 High",
        "*Reason*\nbad deploy",
        "*Requested by*\n<@U0ALICE> at 03:00 UTC",
        "1. *Undo release*",
        "sh -c 'echo \"undo $2\" &gt;&gt; \"$1\"; echo \"rolled back to release $2\"' step",
        "2. *Check health*",
        "Who may approve now: <@U0BETH>, <@U0BOB> (`on_call`). The requester cannot approve their own rollback.",
    ] {
        assert!(card.text.contains(expected), "card lacks {expected:?}:\n{}", card.text);
    }
    // Each reader sees the time in their own zone; UTC is what Slack shows where it cannot.
    assert!(
        card.blocks
            .to_string()
            .contains(r"<@U0ALICE> at <!date^1795316400^{time}|03:00 UTC>"),
        "{:#}",
        card.blocks
    );
    assert!(
        card.text.contains("/ran.log 41```"),
        "the plan shows the exact argv with the target:\n{}",
        card.text
    );
    assert_eq!(card.buttons(), ["approve", "reject", "escalate", "cancel"]);
    insta::assert_snapshot!("awaiting_card", redacted(&card.text));
    assert!(
        card.text
            .starts_with("Rollback RB-1: checkout-api to 41: ⏳ *Awaiting approval*: 0 of 1 so far. Next: an approver below clicks *Approve* to run the plan exactly as shown. Awaited: <@U0BETH>, <@U0BOB>\n"),
        "the notification text names who must approve, and nobody of a later level: {}",
        card.text
    );
    assert!(
        card.text.contains("Next: `devops_lead` joins at 03:30 UTC if nobody approves, and is mentioned then; *Escalate now* brings them in at once. Expires at 05:00 UTC unapproved."),
        "{}",
        card.text
    );
    assert!(
        bot.slack
            .calls()
            .iter()
            .all(|c| c.authorization.as_deref() == Some(&format!("Bearer {BOT_TOKEN}")[..]))
    );

    bot.clock.advance(std::time::Duration::from_secs(120));
    assert_eq!(bot.click(BOB, Button::Approve(rb(1))).await, 200);
    bot.settle().await;

    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*: all 2 steps ran"), "{}", card.text);
    assert!(
        card.text.contains("*Approved by*\n<@U0BOB> (`on_call`) at 03:02 UTC"),
        "{}",
        card.text
    );
    assert!(card.buttons().is_empty(), "a finished rollback offers no buttons");
    insta::assert_snapshot!("succeeded_card", redacted(&card.text));

    let mut thread = bot.thread(&card);
    insta::assert_snapshot!("succeeded_thread", redacted(&transcript(&thread)));
    assert_eq!(
        thread.remove(0),
        "🔴 *ROLLBACK IN PROGRESS* — checkout-api (RB-1)\n*Version:* rolling back to 41\n*Reason:* bad deploy\n*Started:* 03:02 UTC\n*Expected completion:* unknown\n*Point of contact:* <@U0ALICE>\nFollow along: https://slack.com/archives/C0INCIDENTS/p1790000000000001",
        "the team's template announces the start"
    );
    assert_eq!(thread.len(), 3, "{thread:#?}");
    // Both steps ended before the thread's next slot: one message says both, each with its output.
    assert!(thread[0].starts_with("✅ Steps 1–2 of 2 passed"), "{}", thread[0]);
    assert!(
        thread[0].contains("1. *Undo release* — ✅")
            && thread[0].contains("exit code 0")
            && thread[0].contains("rolled back to release 41")
            && thread[0].contains("2. *Check health* — ✅")
            && thread[0].contains("200 OK"),
        "{}",
        thread[0]
    );
    assert!(
        thread[2].starts_with(
            "📣 *Customer notice, ready to send:*\n> Between 03:00 UTC and 03:02 UTC some requests to checkout-api"
        ),
        "{}",
        thread[2]
    );
    assert!(
        thread[1].starts_with("✅ *ROLLBACK COMPLETE* — checkout-api is back on 41 (RB-1, "),
        "{}",
        thread[1]
    );

    assert_eq!(
        bot.marker(),
        ["undo 41", "health"],
        "each step ran exactly once, in order"
    );

    let status = bot.slash(ALICE, "status RB-1").await;
    assert!(
        status.contains("Succeeded") && status.contains("✅ 1. Undo release") && status.contains("✅ 2. Check health"),
        "{status}"
    );
    let list = bot.slash(ALICE, "list").await;
    assert!(
        list.contains("*RB-1* checkout-api to 41 · high · succeeded · by <@U0ALICE>"),
        "{list}"
    );
    assert_eq!(
        bot.history(1).await.len(),
        9,
        "requested, preflight checked, approved, run started, 2×(step started, finished), succeeded"
    );
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_rollback() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    assert_eq!(bot.click(ALICE, Button::Approve(rb(1))).await, 200);
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(ALICE),
        ["You requested *RB-1*, so you cannot approve it: a second person must. The card lists who may approve."]
    );
    assert!(bot.card_now(&card).text.contains("*Awaiting approval*: 0 of 1 so far"));
    assert!(bot.marker().is_empty(), "nothing ran");
}

#[tokio::test]
async fn outsiders_and_approvers_of_another_severity_are_refused() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    bot.click(MALLORY, Button::Approve(rb(1))).await;
    bot.click(CAROL, Button::Approve(rb(1))).await;
    bot.click(MALLORY, Button::Reject(rb(1))).await;
    bot.click(MALLORY, Button::Cancel(rb(1))).await;
    bot.settle().await;
    let refusal = "You cannot approve or reject *RB-1*: a high-severity rollback needs someone in `on_call`. The card lists who may approve.";
    assert_eq!(
        bot.ephemerals(MALLORY),
        [
            refusal,
            refusal,
            "Only the requester or an approver can cancel *RB-1*. Ask them in the thread."
        ]
    );
    assert_eq!(bot.ephemerals(CAROL), [refusal]);
    assert!(bot.card_now(&card).text.contains("Awaiting approval"));
    assert_eq!(
        bot.events_with(&[]).await,
        2,
        "refusals change nothing: the request and its preflight are all there is"
    );
}

#[tokio::test]
async fn a_request_from_another_channel_is_refused_with_where_to_go() {
    let bot = Rollbot::start().await;
    let answer = bot.slash_in(ALICE, RANDOM, REQUEST).await;
    assert_eq!(
        answer,
        "Rollbacks are requested in the incident channel so everyone sees them: <#C0INCIDENTS>. Run the same command there."
    );
    bot.settle().await;
    assert!(bot.slack.calls().is_empty());
    assert_eq!(bot.rollbacks().await.len(), 0);
}

#[tokio::test]
async fn a_click_from_another_workspace_is_refused() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    let body = click_body_from_team(BOB, "T0OTHER", INCIDENTS, "approve", "RB-1");
    assert_eq!(bot.signed_post("/slack/interactions", body).await.status(), 200);
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        ["rollbot only takes requests from its own Slack workspace. Ask in your workspace's incident channel."]
    );
    assert!(bot.card_now(&card).text.contains("Awaiting approval"));
}

#[tokio::test]
async fn a_rejected_rollback_never_runs_and_keeps_its_reason() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    bot.click(BOB, Button::Reject(rb(1))).await;
    let modal = bot.expect_modal();
    assert_eq!(modal["callback_id"], "reject");
    assert_eq!(modal["title"]["text"], "Reject RB-1");
    let answer = bot.submit(BOB, &modal, &[("reason", "   ")]).await;
    assert_eq!(
        answer,
        Some(
            serde_json::json!({"response_action": "errors", "errors": {"reason": "Say why, so the requester knows what to do instead."}})
        ),
        "a blank reason is answered inside the modal"
    );
    assert_eq!(
        bot.submit(
            BOB,
            &modal,
            &[("reason", "the deploy is not the cause: <!here> check the DB")]
        )
        .await,
        None
    );
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(
        card.text.contains(
            "🚫 *Rejected* by <@U0BOB>: “the deploy is not the cause: &lt;!here&gt; check the DB”. Nothing ran."
        ),
        "{}",
        card.text
    );
    assert!(card.buttons().is_empty());
    assert_eq!(
        bot.thread(&card),
        [
            "<@U0ALICE>: RB-1 🚫 *Rejected* by <@U0BOB>: “the deploy is not the cause: &lt;!here&gt; check the DB”. Nothing ran."
        ],
        "the requester is told, by name"
    );

    bot.click(BETH, Button::Approve(rb(1))).await;
    bot.click(BETH, Button::Reject(rb(1))).await;
    bot.settle().await;
    let already =
        "*RB-1* is already rejected by <@U0BOB>; your click changed nothing. The card shows its current state.";
    assert_eq!(
        bot.ephemerals(BETH),
        [already, already],
        "no modal opens for a rollback that cannot be rejected"
    );
    assert!(bot.marker().is_empty());
    assert_eq!(
        bot.rollbacks()
            .await
            .iter()
            .filter(|r| r.state.name() == "rejected")
            .count(),
        1
    );
    assert_eq!(
        bot.events_with(&[("reason", "the deploy is not the cause: <!here> check the DB")])
            .await,
        1,
        "the reason is kept in the timeline as typed"
    );
}

#[tokio::test]
async fn a_failing_step_stops_the_run_and_the_card_says_which() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, r#"checkout-api to 41 runbook broken severity high"#)
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;

    let card = bot.card_now(&card);
    assert!(
        card.text.contains(
            "❌ *Failed* at step 2 of 3, *Migrate schema down*: exited with code 3. The steps after it did not run."
        ),
        "{}",
        card.text
    );
    let mut thread = bot.thread(&card);
    assert!(thread.remove(0).starts_with("🔴 *ROLLBACK IN PROGRESS*"));
    assert_eq!(thread.len(), 3, "{thread:#?}");
    assert!(
        thread[0].starts_with("✅ Step 1/3 *Undo release* succeeded"),
        "{}",
        thread[0]
    );
    assert!(
        thread[1].starts_with("❌ Step 2/3 *Migrate schema down* failed after") && thread[1].contains("exit code 3"),
        "a failure is posted on its own, never merged with the steps before it: {}",
        thread[1]
    );
    assert!(
        thread[1].contains("migrating\nERROR: disk full"),
        "stdout and stderr are both in the tail: {}",
        thread[1]
    );
    assert!(
        thread[2].starts_with("❌ *ROLLBACK FAILED* — checkout-api (RB-1): step 2 (Migrate schema down) did not complete (exited with code 3)."),
        "{}",
        thread[2]
    );
    assert_eq!(bot.marker(), ["undo 41"], "the step after the failure never ran");
}

#[tokio::test]
async fn critical_runs_at_once_and_flags_a_review() {
    let bot = Rollbot::start().await;
    let ack = bot.slash(ALICE, "checkout-api to 40 severity critical").await;
    assert!(
        ack.contains("Critical severity: it runs now without approval, and a post-incident review is flagged."),
        "{ack}"
    );
    bot.settle().await;
    let card = bot.expect_card();
    let card = bot.card_now(&card);
    assert!(
        card.text.contains(
            "🚨 *Critical severity: no approval needed — it runs at once.* A post-incident review is required."
        ),
        "{}",
        card.text
    );
    assert!(card.text.contains("✅ *Succeeded*"), "{}", card.text);
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 5, "{thread:#?}");
    assert!(thread[2].starts_with("✅ Steps 1–2 of 2 passed"), "{}", thread[2]);
    assert_eq!(
        thread[0],
        "🚨 *RB-1* is a critical rollback and runs without approval. For awareness: `devops_lead` (<@U0DEVOPS>), `eng_manager` (<@U0EM>), `cto` (<@U0CTO>). A post-incident review is required.",
        "the whole ladder, CTO included, is told"
    );
    assert_eq!(bot.marker(), ["undo 40", "health"]);
}

#[tokio::test]
async fn a_parameter_that_fails_its_pattern_is_refused_before_any_plan_exists() {
    let bot = Rollbot::start().await;
    let answer = bot
        .slash(ALICE, r#"checkout-api to "41; rm -rf /" severity high"#)
        .await;
    assert_eq!(
        answer,
        "`41; rm -rf /` is not a valid `target` (it must match `[0-9]+`: release number). Nothing was requested; fix the value and run the command again."
    );
    let answer = bot.slash(ALICE, "checkout-api to 41;rm severity high").await;
    assert!(answer.starts_with("`41;rm` is not a valid `target`"), "{answer}");
    let plan = bot.slash(ALICE, r#"plan checkout-api to "$(reboot)""#).await;
    assert!(plan.starts_with("`$(reboot)` is not a valid `target`"), "{plan}");
    bot.settle().await;
    assert_eq!(bot.rollbacks().await.len(), 0);
    assert!(bot.slack.calls().is_empty());
}

#[tokio::test]
async fn user_text_is_escaped_so_it_cannot_ping_or_link() {
    let bot = Rollbot::start().await;
    let ack = bot
        .slash(
            ALICE,
            r#"checkout-api to 41 severity high reason "<!channel> ask <@U0BOB> & <https://evil.example|docs>""#,
        )
        .await;
    assert!(ack.contains("Recorded *RB-1*"), "{ack}");
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("&lt;!channel&gt; ask &lt;@U0BOB&gt; &amp; &lt;https://evil.example|docs&gt;"),
        "{}",
        card.text
    );
    assert!(
        !card.text.contains("<!channel>") && !card.text.contains("<https://evil"),
        "{}",
        card.text
    );
}

#[tokio::test]
async fn two_approvers_clicking_at_once_start_the_runbook_exactly_once() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    let (bob, beth) = tokio::join!(
        bot.click(BOB, Button::Approve(rb(1))),
        bot.click(BETH, Button::Approve(rb(1)))
    );
    assert_eq!((bob, beth), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    bot.settle().await;

    assert_eq!(bot.marker(), ["undo 41", "health"], "the runbook ran once");
    let refused: Vec<String> = [bot.ephemerals(BOB), bot.ephemerals(BETH)].concat();
    assert_eq!(
        refused.len(),
        1,
        "exactly one approver is told it was already approved: {refused:?}"
    );
    assert!(
        refused[0].starts_with("*RB-1* is approved and about to start (approved by")
            || refused[0].starts_with("*RB-1* is already"),
        "{}",
        refused[0]
    );
    let card = bot.card_now(&card);
    assert_eq!(card.text.matches("*Approved by*").count(), 1, "{}", card.text);
    assert_eq!(bot.events_with(&[("type", "run_started")]).await, 1);
    bot.thread(&card);
}

#[tokio::test]
async fn cancel_before_it_starts() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    assert_eq!(
        bot.slash(MALLORY, "cancel RB-1").await,
        "Only the requester or an approver can cancel *RB-1*. Ask them in the thread."
    );
    assert_eq!(
        bot.slash(ALICE, "cancel rb-1").await,
        "Cancelled *RB-1*. Nothing ran; the card in the channel says so."
    );
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(
        card.text.contains("🛑 *Cancelled* by <@U0ALICE>. Nothing ran."),
        "{}",
        card.text
    );
    assert_eq!(
        bot.thread(&card),
        ["⚪ Rollback RB-1 of checkout-api was cancelled by <@U0ALICE>; nothing was rolled back."],
        "the cancellation template, shown in the channel"
    );
    assert_eq!(
        bot.slash(ALICE, "cancel RB-1").await,
        "*RB-1* is already cancelled by <@U0ALICE>, so it can no longer be cancelled. The card shows its current state."
    );
    assert_eq!(
        bot.slash(ALICE, "cancel RB-7").await,
        "There is no rollback *RB-7*. `/rollback list` shows the recent ones."
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(BOB).len(), 1);
    assert!(bot.marker().is_empty());
}

#[tokio::test]
async fn help_plan_status_list_and_grammar_errors_answer_privately() {
    let bot = Rollbot::start().await;
    let help = bot.slash(ALICE, "help").await;
    assert!(
        help.contains("`/rollback checkout-api to 41 severity high reason \"bad deploy\"`"),
        "{help}"
    );
    assert_eq!(
        bot.slash_without_trigger(ALICE, "").await,
        help,
        "without a form, a bare /rollback explains itself"
    );

    let plan = bot.slash(ALICE, "plan checkout-api to 41").await;
    assert!(
        plan.starts_with("Plan for *checkout-api* (runbook `app`, digest `"),
        "{plan}"
    );
    assert!(
        plan.contains("1. Undo release") && plan.contains("2. Check health"),
        "{plan}"
    );

    assert_eq!(
        bot.slash(ALICE, "list").await,
        "No rollbacks yet in this channel. Start one with `/rollback <service> to <target> severity <level>`."
    );
    assert_eq!(
        bot.slash(ALICE, "status RB-3").await,
        "There is no rollback *RB-3*. `/rollback list` shows the recent ones."
    );
    assert_eq!(
        bot.slash(ALICE, "checkout-api to 41 sevrity high").await,
        "I don't understand `sevrity`. Did you mean `severity`? After the service, use `to`, `runbook`, `severity`, `reason`, `incident` or the runbook's parameters as `name=value`. Type `/rollback help` for the grammar and examples."
    );
    assert_eq!(
        bot.slash(ALICE, "chekout-api to 41 severity high").await,
        "There is no service `chekout-api`. Did you mean `checkout-api`? Type `/rollback help` for the grammar and examples."
    );
    assert_eq!(
        bot.slash(ALICE, "stauts RB-1").await,
        "I don't understand `RB-1`. After the service, use `to`, `runbook`, `severity`, `reason`, `incident` or the runbook's parameters as `name=value`. Type `/rollback help` for the grammar and examples."
    );
    assert_eq!(
        bot.slash_without_trigger(ALICE, "checkout-api to 41").await,
        "How severe is the incident? The severity decides who must approve. Run it again with one of critical, high, medium or low, e.g. `/rollback checkout-api to 41 severity high`. Nothing was recorded."
    );
    assert_eq!(
        bot.slash(ALICE, "checkout-api to 41 severity low").await,
        "A low-severity rollback needs a reason. Add `reason \"<why>\"` to the command and run it again."
    );
    assert_eq!(
        bot.slash_without_trigger(ALICE, "checkout-api severity high").await,
        "Runbook `app` needs `target` (release number). Add `to <target>` and run the command again."
    );
    assert_eq!(bot.rollbacks().await.len(), 0);
    bot.settle().await;
}

#[tokio::test]
async fn slack_outages_are_ridden_out_in_order_without_duplicate_cards() {
    use crate::support::fake_slack::Outage;
    let bot = Rollbot::start().await;
    // A minute of trouble: server errors, then rate limiting with Retry-After.
    let mut outages = vec![Outage::ServerError; 6];
    outages.extend([Outage::RateLimited(20); 3]);
    bot.slack.fail_next(&outages);

    bot.slash(ALICE, REQUEST).await;
    let waited = bot.ride_out(5, 600).await;
    assert!(waited >= 60, "the outage lasted a while ({waited}s)");
    let card = bot.expect_card();
    assert_eq!(
        bot.slack.refused().len(),
        9,
        "every outage was met by a retry, not a drop"
    );
    assert!(
        bot.slack
            .refused()
            .iter()
            .all(|(method, _)| method == "chat.postMessage" || method == "conversations.history"),
        "the card's posts, and after a 500 (which may have posted it) the look for it: {:?}",
        bot.slack.refused()
    );
    assert!(
        !bot.history_lookups().is_empty(),
        "after a 500 the retry looks for the card before posting"
    );

    bot.slack
        .fail_next(&[Outage::ServerError, Outage::RateLimited(3), Outage::ServerError]);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.ride_out(5, 600).await;
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 4, "{thread:#?}");
    assert!(
        thread[0].starts_with("🔴 *ROLLBACK IN PROGRESS*") && thread[1].starts_with("✅ Steps 1–2 of 2 passed"),
        "thread order kept: {thread:#?}"
    );
    assert!(thread[2].starts_with("✅ *ROLLBACK COMPLETE*"), "{thread:#?}");
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let cards = bot
        .slack
        .calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none())
        .count();
    assert_eq!(cards, 1, "the card was posted exactly once");
    assert_eq!(bot.undeliverable().await, 0);
}

/// 429s are appointments and outages last: a minute of 429 (Retry-After 2 s), then ten
/// minutes of 500. Nothing is given up on, and afterwards everything arrives, in order, once.
#[tokio::test]
async fn a_minute_of_429_then_ten_minutes_of_500_loses_nothing_and_keeps_the_order() {
    use crate::support::fake_slack::Outage;
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.slack.fail_for(
        bot.clock.clone(),
        &[
            (Outage::RateLimited(2), std::time::Duration::from_secs(60)),
            (Outage::ServerError, std::time::Duration::from_secs(600)),
        ],
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    let waited = bot.ride_out(2, 3600).await;
    assert!(waited >= 660, "the outage was ridden out ({waited} s)");
    assert!(
        waited <= 660 + 330,
        "delivered within one capped backoff of Slack's recovery, not minutes later ({waited} s)"
    );
    let refused = bot.slack.refused();
    assert!(
        refused.iter().filter(|(_, status)| *status == 429).count() >= 10,
        "{refused:?}"
    );
    assert!(refused.iter().any(|(_, status)| *status == 500));
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 4, "{thread:#?}");
    assert!(thread[0].starts_with("🔴 *ROLLBACK IN PROGRESS*"), "{thread:#?}");
    assert!(thread[1].starts_with("✅ Steps 1–2 of 2 passed"), "{thread:#?}");
    assert!(thread[2].starts_with("✅ *ROLLBACK COMPLETE*"), "{thread:#?}");
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    assert_eq!(bot.undeliverable().await, 0, "nothing acknowledged was given up on");
    let updates = bot.slack.calls().iter().filter(|c| c.method == "chat.update").count();
    assert!(
        updates <= 3,
        "card updates stayed collapsed while Slack was down: {updates}"
    );
}

#[tokio::test]
async fn a_rate_limited_message_waits_exactly_as_long_as_slack_asks() {
    use crate::support::fake_slack::Outage;
    let bot = Rollbot::start().await;
    bot.slack.fail_next(&[Outage::RateLimited(42)]);
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    assert_eq!(bot.slack.refused(), [("chat.postMessage".to_owned(), 429)]);
    let retry_at = bot.next_attempt_of_pending_message().await;
    assert_eq!(
        retry_at,
        (t0() + chrono::Duration::seconds(42)).timestamp(),
        "retry scheduled at Retry-After"
    );
    bot.advance_secs(41);
    bot.settle().await;
    assert!(bot.slack.calls().is_empty(), "not a moment before Slack allows it");
    bot.advance_secs(1);
    bot.settle().await;
    bot.expect_card();
}

#[tokio::test]
async fn a_twenty_step_runbook_never_posts_faster_than_slack_allows() {
    let steps: String = (1..=20)
        .map(|n| format!("[[runbooks.long.steps]]\nname = \"Step {n}\"\nrun = [\"echo\", \"{n}\"]\n\n"))
        .collect();
    let bot = Rollbot::start_with(|marker| {
        test_config(marker).replace(
            "[services.checkout-api]",
            &format!("[runbooks.long]\n{steps}[services.long-api]\nrunbooks = [\"long\"]\n\n[services.checkout-api]"),
        )
    })
    .await;
    bot.slash(ALICE, "long-api severity critical").await;
    bot.settle().await;
    let card = bot.expect_card();
    let thread = bot.thread(&card);
    assert_eq!(
        thread.len(),
        1 + 1 + 1 + 1 + 1,
        "ladder notice, start announcement, the twenty steps' results in one message (they ended before the thread's next slot), the end, the customer notice: {thread:#?}"
    );
    assert!(thread[2].starts_with("✅ Steps 1–20 of 20 passed"), "{}", thread[2]);
    for n in 1..=20 {
        assert!(
            thread[2].contains(&format!("{n}. *Step {n}* — ✅")) && thread[2].contains(&format!("```{n}```")),
            "step {n} and its output are in the message: {}",
            thread[2]
        );
    }
    assert!(
        thread[thread.len() - 2].starts_with("✅ *ROLLBACK COMPLETE* — long-api"),
        "{thread:#?}"
    );
    assert_eq!(bot.slack.refused(), [], "zero 429s");
    assert_eq!(bot.slack.rate_limited(), 0, "Slack's limits were never reached");
    bot.card_now(&card);
    let posts = bot
        .slack
        .calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .count();
    assert_eq!(posts, 6, "the card and its thread, each post once");
}

#[tokio::test]
async fn a_message_slack_refuses_for_good_is_kept_on_the_record_and_counted() {
    use crate::support::fake_slack::Outage;
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.slack.fail_next(&[Outage::Refused("not_in_channel")]);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.slack.refused(),
        [("chat.update".to_owned(), 200)],
        "a permanent error is not retried"
    );
    assert_eq!(
        bot.events_with(&[
            ("type", "undeliverable"),
            ("error", "not_in_channel"),
            ("what", "update_card")
        ])
        .await,
        1,
        "the timeline keeps what could not be said"
    );
    let forged = bot
        .raw_post(
            "/slack/commands",
            &[],
            slash_body(MALLORY, INCIDENTS, "checkout-api to 1 severity critical"),
        )
        .await;
    assert_eq!(forged.status(), 401);
    let metrics = bot.metrics().await;
    assert!(metrics.contains("\nrollbot_outbox_undeliverable 1\n"), "{metrics}");
    for line in [
        "rollbot_http_requests_total{route=\"/slack/commands\",outcome=\"ok\"} 1\n",
        "rollbot_http_requests_total{route=\"/slack/commands\",outcome=\"unauthorized\"} 1\n",
        "rollbot_http_requests_total{route=\"/slack/interactions\",outcome=\"ok\"} 1\n",
        "rollbot_signature_failures_total{route=\"/slack/commands\"} 1\n",
        "rollbot_slack_ack_seconds_bucket{le=\"3\"} 3\n",
        "rollbot_slack_ack_seconds_count 3\n",
        "rollbot_slack_api_errors_total{method=\"chat.update\",code=\"not_in_channel\"} 1\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains("rollbot_rollbacks{state=\"succeeded\",severity=\"high\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("\nrollbot_outbox_pending 0\n"), "{metrics}");
    bot.thread(&card);
    assert!(
        bot.card_now(&card).text.contains("✅ *Succeeded*"),
        "the next update renders the current state, so a lost update costs nothing"
    );
}

#[tokio::test]
async fn the_post_mortem_draft_comes_from_the_timeline_in_slack_and_through_the_api() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.advance(3);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.thread(&card);
    bot.card_now(&card);

    let answer = bot.slash(ALICE, "postmortem RB-1").await;
    assert!(
        answer.starts_with("Post-mortem draft for *RB-1*, from its timeline."),
        "{answer}"
    );
    for line in [
        "# Post-mortem: RB-1 — rollback of checkout-api to 41",
        "| 03:00:00 | Requested by @U0ALICE: checkout-api to 41, runbook app, severity high, reason “bad deploy”; 1 approval(s) required |",
        "| 03:03:00 | Approved by @U0BOB (on_call, level 0) |",
        "Step 2/2 “Check health” succeeded after",
        "## Root Cause",
        "## Action Items",
    ] {
        assert!(answer.contains(line), "missing {line:?} in\n{answer}");
    }
    assert_eq!(
        bot.slash(ALICE, "postmortem RB-9").await,
        "There is no rollback *RB-9*. `/rollback list` shows the recent ones."
    );

    let api = |path: &str, token: Option<&str>| {
        let mut request = crate::support::http_client().get(format!("{}{path}", bot.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(api("/api/v1/rollbacks", None).await.unwrap().status(), 401);
    assert_eq!(
        api("/api/v1/rollbacks", Some("wrong-token")).await.unwrap().status(),
        401
    );
    let list: serde_json::Value = api("/api/v1/rollbacks", Some(API_TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["rollbacks"][0]["state"]["state"], "succeeded");
    let one: serde_json::Value = api("/api/v1/rollbacks/RB-1", Some(API_TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        one["events"].as_array().unwrap().len(),
        9,
        "the whole record, events included (the preflight too)"
    );
    assert_eq!(one["events"][1]["event"]["type"], "preflight_checked");
    assert_eq!(one["events"][2]["event"]["type"], "approved");
    let markdown = api("/api/v1/rollbacks/RB-1/postmortem.md", Some(API_TOKEN))
        .await
        .unwrap();
    assert_eq!(markdown.headers()["content-type"], "text/markdown; charset=utf-8");
    let markdown = markdown.text().await.unwrap();
    assert!(
        answer.contains(markdown.lines().nth(10).unwrap()),
        "Slack and the API give the same draft"
    );
    assert_eq!(
        api("/api/v1/rollbacks/RB-7", Some(API_TOKEN)).await.unwrap().status(),
        404
    );
    assert_eq!(
        api("/api/v1/rollbacks/nonsense", Some(API_TOKEN))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn lifecycle_announcements_reach_the_extra_channels_in_the_teams_own_words() {
    let bot = Rollbot::start_with(|marker| {
        test_config(marker)
            .replace(&format!("channels = [\"{INCIDENTS}\"]"), &format!("channels = [\"{INCIDENTS}\"]\nnotify_channels = [\"C0STATUS\"]"))
            + "\n[templates]\nstarted = \"Heads up: {{ service }} is being rolled back ({{ reason or 'no reason' }}), ask {{ requester }}\"\n"
    })
    .await;
    bot.slash(
        ALICE,
        r#"checkout-api to 41 severity high reason "<!channel> broke it""#,
    )
    .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;

    let to_status = bot.posts_in("C0STATUS");
    assert_eq!(to_status.len(), 2, "start and end, nothing else: {to_status:#?}");
    assert_eq!(
        to_status[0],
        "Heads up: checkout-api is being rolled back (&lt;!channel&gt; broke it), ask <@U0ALICE>"
    );
    assert!(
        to_status[1].starts_with("✅ *ROLLBACK COMPLETE* — checkout-api is back on 41 (RB-1,"),
        "{}",
        to_status[1]
    );
    let thread = bot.thread(&card);
    assert_eq!(
        thread[0], to_status[0],
        "the incident channel gets the same words, in the card's thread"
    );
    bot.card_now(&card);
}

// The walking skeleton's stories again, on the embedded store: same behaviour, same words.
crate::also_on_embedded_store!(
    requested_approved_and_run_step_by_step,
    the_requester_cannot_approve_their_own_rollback,
    outsiders_and_approvers_of_another_severity_are_refused,
    a_request_from_another_channel_is_refused_with_where_to_go,
    a_click_from_another_workspace_is_refused,
    a_rejected_rollback_never_runs_and_keeps_its_reason,
    a_failing_step_stops_the_run_and_the_card_says_which,
    critical_runs_at_once_and_flags_a_review,
    a_parameter_that_fails_its_pattern_is_refused_before_any_plan_exists,
    user_text_is_escaped_so_it_cannot_ping_or_link,
    two_approvers_clicking_at_once_start_the_runbook_exactly_once,
    cancel_before_it_starts,
    help_plan_status_list_and_grammar_errors_answer_privately,
    slack_outages_are_ridden_out_in_order_without_duplicate_cards,
    a_minute_of_429_then_ten_minutes_of_500_loses_nothing_and_keeps_the_order,
    a_rate_limited_message_waits_exactly_as_long_as_slack_asks,
    a_twenty_step_runbook_never_posts_faster_than_slack_allows,
    a_message_slack_refuses_for_good_is_kept_on_the_record_and_counted,
    the_post_mortem_draft_comes_from_the_timeline_in_slack_and_through_the_api,
    lifecycle_announcements_reach_the_extra_channels_in_the_teams_own_words,
);

#[tokio::test]
async fn one_person_may_have_only_so_many_open_requests() {
    // Without the service's lock, so that one person can hold several of its requests.
    let bot = Rollbot::start_with(|marker| {
        test_config(marker).replace("[services.checkout-api]", "[services.checkout-api]\nlock = false")
            + "\n[limits]\nmax_open_requests_per_person = 2\n"
    })
    .await;
    assert!(bot.slash(ALICE, REQUEST).await.starts_with("Recorded *RB-1*"));
    let second = bot.slash(ALICE, REQUEST).await;
    assert!(second.starts_with("Recorded *RB-2*"), "{second}");
    assert_eq!(
        bot.slash(ALICE, REQUEST).await,
        "You already have 2 open rollback requests (*RB-1*, *RB-2*), the most one person may have at a time. \
         Cancel one you no longer need (`/rollback cancel RB-1`) or let them finish, then ask again."
    );
    assert!(
        bot.slash(BOB, REQUEST).await.starts_with("Recorded *RB-3*"),
        "the limit is per person"
    );
    bot.slash(ALICE, "cancel RB-1").await;
    assert!(
        bot.slash(ALICE, REQUEST).await.starts_with("Recorded *RB-4*"),
        "a finished request frees its place"
    );
    bot.settle().await;
    let cards: Vec<Posted> = (0..4).map(|_| bot.expect_card()).collect();
    assert!(cards[0].text.contains("RB-1") && cards[3].text.contains("RB-4"));
    let first = bot.card_now(&cards[0]);
    assert!(first.text.contains("*Cancelled*"), "{}", first.text);
    bot.thread(&cards[0]);
}

/// A runbook of 40 steps, each with a long command.
fn long_runbook_config(marker: &str) -> String {
    let mut config = test_config(marker).replace(
        "runbooks = [\"app\", \"broken\", \"database\"]",
        "runbooks = [\"app\", \"broken\", \"database\", \"tables\"]",
    );
    config.push_str("\n[runbooks.tables]\ndescription = \"Restore forty tables one by one\"\n");
    for n in 1..=40 {
        config.push_str(&format!(
            "\n[[runbooks.tables.steps]]\nname = \"Restore table {n}\"\nrun = [\"sh\", \"-c\", 'echo restoring {}', \"step\"]\n",
            "t".repeat(300)
        ));
    }
    config
}

#[tokio::test]
async fn a_plan_too_long_for_the_card_is_in_full_in_its_thread_before_anyone_approves() {
    let bot = Rollbot::start_with(long_runbook_config).await;
    bot.slash(ALICE, "checkout-api runbook tables severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    let notice = card
        .text
        .lines()
        .find(|l| l.starts_with("⚠️ *Steps "))
        .unwrap_or_else(|| panic!("the card says which steps it cannot show: {}", card.text));
    let first_in_thread: usize = notice
        .trim_start_matches("⚠️ *Steps ")
        .split('–')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(notice.contains("of 40 are not shown on this card"), "{notice}");
    let on_card: Vec<usize> = (1..=40)
        .filter(|n| card.text.contains(&format!(". *Restore table {n}*\n")))
        .collect();
    assert_eq!(on_card, (1..first_in_thread).collect::<Vec<_>>());

    let replies = bot.thread_posts(&card);
    assert!(!replies.is_empty(), "the rest of the plan is in the thread");
    let in_thread: String = replies.iter().map(|r| r.text.clone()).collect();
    assert!(
        replies[0].text.contains("📋 *Plan of RB-1, continued*"),
        "{}",
        replies[0].text
    );
    for n in first_in_thread..=40 {
        assert!(
            in_thread.contains(&format!(". *Restore table {n}*\n")),
            "step {n} is in the thread"
        );
    }
    assert!(!in_thread.contains(". *Restore table 1*\n"), "shown once");
}

/// Ten quick critical rollbacks filed at once in one channel: the cards take the channel's
/// slots first, and a thread that trails its finished run by seconds says the whole run in one
/// message (its end first), so the channel catches up at one post per rollback; never a 429,
/// never "in progress" after "complete", every card Succeeded.
#[tokio::test]
async fn ten_quick_rollbacks_in_one_channel_catch_up_at_a_post_per_rollback() {
    let services: String = (0..10)
        .map(|n| format!("[services.shop-{n}]\nrunbooks = [\"quick\"]\n\n"))
        .collect();
    let bot = Rollbot::start_with(|marker| {
        test_config(marker).replace(
            "[services.checkout-api]",
            &format!(
                "[runbooks.quick]\n[[runbooks.quick.steps]]\nname = \"Undo\"\nrun = [\"echo\", \"undone\"]\n\n\
                 [[runbooks.quick.steps]]\nname = \"Check\"\nrun = [\"echo\", \"ok\"]\nverify = true\n\n\
                 {services}[services.checkout-api]"
            ),
        )
    })
    .await;
    let people = [ALICE, BOB, BETH, CAROL, DAVE];
    for n in 0..10 {
        bot.slash(people[n % 5], &format!("shop-{n} severity critical")).await;
    }
    bot.settle().await;
    let mut folded = 0;
    let mut thread_posts = 0;
    for n in 0..10 {
        let card = bot.expect_card();
        assert!(
            card.text.contains(&format!("shop-{n}")),
            "cards in the order they were filed: {}",
            card.text
        );
        assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
        let thread = bot.thread(&card);
        thread_posts += thread.len();
        let complete = thread
            .iter()
            .position(|m| m.starts_with("✅ *ROLLBACK COMPLETE*"))
            .unwrap_or_else(|| panic!("{thread:#?}"));
        assert!(
            !thread[complete..]
                .iter()
                .any(|m| m.starts_with("🔴 *ROLLBACK IN PROGRESS*")),
            "never in progress after complete: {thread:#?}"
        );
        if thread[complete].contains("It started and ended while this thread waited for Slack's pace") {
            folded += 1;
            let together = &thread[complete];
            assert!(
                together.contains(">🔴 *ROLLBACK IN PROGRESS*")
                    && together.contains("1. *Undo* — ✅")
                    && together.contains("2. *Check* — ✅")
                    && together.contains("📣 *Customer notice, ready to send:*"),
                "{together}"
            );
            assert_eq!(
                thread.len(),
                2,
                "the ladder notice, then the run in one message: {thread:#?}"
            );
        } else {
            assert_eq!(thread.len(), 5, "{thread:#?}");
        }
    }
    assert!(folded >= 5, "the later threads were folded: {folded} of 10");
    assert!(
        thread_posts <= 10 * 2 + (10 - folded) * 3,
        "{thread_posts} thread posts for ten rollbacks"
    );
    assert_eq!(bot.slack.refused(), [], "zero 429s");
    assert_eq!(bot.slack.rate_limited(), 0);
}
