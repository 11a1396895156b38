//! Issue 3 stories: the escalation ladder on a controllable clock, durable timers across
//! restarts and replicas, expiry, quorum, user groups, and gates inside a runbook.
use crate::support::*;

const REQUEST: &str = r#"checkout-api to 41 severity high reason "bad deploy""#;

#[tokio::test]
async fn actions_on_a_rollback_are_taken_in_its_incident_channel() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    let elsewhere = "*RB-1* lives in <#C0INCIDENTS>. Act on it there, so everyone in the incident sees it.";
    assert_eq!(bot.click_in(BOB, RANDOM, Button::Approve(rb(1))).await, 200);
    assert_eq!(bot.slash_in(ALICE, RANDOM, "cancel RB-1").await, elsewhere);
    bot.settle().await;
    assert_eq!(bot.ephemerals(BOB), [elsewhere]);
    assert_eq!(bot.card_now(&card).text, card.text, "nothing changed");
    assert_eq!(
        (bot.events_with(&[("type", "approved")]).await + bot.events_with(&[("type", "cancelled")]).await),
        0
    );
    // Looking is fine from anywhere.
    assert!(bot.slash_in(ALICE, RANDOM, "status RB-1").await.contains("RB-1"));

    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("*Approved by*"));
    bot.thread(&card);
}

#[tokio::test]
async fn an_unanswered_request_escalates_to_the_devops_lead_who_can_then_approve() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    bot.click(DAVE, Button::Approve(rb(1))).await;
    bot.advance(29);
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(DAVE),
        [
            "You cannot approve or reject *RB-1*: a high-severity rollback needs someone in `on_call`. The card lists who may approve."
        ],
        "before 30 minutes the DevOps lead is not an approver"
    );
    assert!(bot.thread(&card).is_empty(), "no escalation before its time");

    bot.advance(1);
    bot.settle().await;
    assert_eq!(
        bot.thread(&card),
        [
            "⏫ *RB-1* escalated to `devops_lead` (nobody approved for 30m): <@U0DEVOPS>, you may now approve or reject it on the card above."
        ]
    );
    let escalated = bot.card_now(&card);
    assert!(
        escalated
            .text
            .contains("Who may approve now: <@U0BETH>, <@U0BOB>, <@U0DEVOPS> (`on_call` or `devops_lead`)."),
        "{}",
        escalated.text
    );
    assert!(
        escalated
            .text
            .contains("Escalated to level 1 of 2 (`devops_lead` joined). Next: `eng_manager` joins at 04:00 UTC"),
        "{}",
        escalated.text
    );

    bot.click(DAVE, Button::Approve(rb(1))).await;
    bot.settle().await;
    let done = bot.card_now(&card);
    assert!(
        done.text
            .contains("*Approved by*\n<@U0DEVOPS> (`devops_lead`) at 03:30 UTC"),
        "{}",
        done.text
    );
    assert!(done.text.contains("✅ *Succeeded*"), "{}", done.text);
    bot.thread(&card);
    assert_eq!(
        bot.events_with(&[("type", "approved"), ("level", "1")]).await,
        1,
        "the approval records its level"
    );
    assert_eq!(bot.pending_timers().await, 0, "a decided rollback has no timers left");
    let metrics = bot.metrics().await;
    for line in [
        "rollbot_escalations_total{level=\"1\"} 1\n",
        "rollbot_time_to_approval_seconds_bucket{severity=\"high\",le=\"900\"} 0\n",
        "rollbot_time_to_approval_seconds_bucket{severity=\"high\",le=\"1800\"} 1\n",
        "rollbot_time_to_approval_seconds_sum{severity=\"high\"} 1800\n",
        "rollbot_step_duration_seconds_count{kind=\"command\",result=\"succeeded\"} 2\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        !metrics.contains("rollbot_escalations_total{level=\"2\"}"),
        "the second level never opened\n{metrics}"
    );

    bot.advance(120);
    bot.settle().await;
    assert!(
        bot.thread(&card).is_empty(),
        "no late escalation or expiry after the decision"
    );
}

#[tokio::test]
async fn the_on_call_engineer_can_still_approve_after_escalation() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.advance(61);
    bot.settle().await;
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 2, "both levels open, in order: {thread:#?}");
    assert!(thread[0].contains("`devops_lead`") && thread[1].contains("`eng_manager`"));
    assert!(
        bot.card_now(&card)
            .text
            .contains("Escalated to level 2 of 2 (`eng_manager` joined).")
    );

    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(
        card.text.contains("*Approved by*\n<@U0BOB> (`on_call`) at 04:01 UTC"),
        "{}",
        card.text
    );
    bot.thread(&card);
}

#[tokio::test]
async fn nobody_answering_expires_the_request_and_says_so_in_the_channel() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.advance(120);
    bot.settle().await;
    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 3, "{thread:#?}");
    assert_eq!(
        thread[2],
        "RB-1 ⌛ *Expired*: nobody approved it within 2h. Nothing ran. Request it again if it is still needed."
    );
    let broadcast = bot
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.body["reply_broadcast"] == true)
        .count();
    assert_eq!(broadcast, 1, "the expiry is also shown in the channel");
    assert!(bot.card_now(&card).buttons().is_empty());

    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        ["*RB-1* is already expired; your click changed nothing. The card shows its current state."]
    );
    assert!(bot.marker().is_empty());
}

#[tokio::test]
async fn escalate_now_opens_the_next_level_at_once() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    bot.click(MALLORY, Button::EscalateNow(rb(1))).await;
    bot.advance(5);
    bot.click(ALICE, Button::EscalateNow(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(MALLORY),
        ["Only the requester or someone who may approve *RB-1* can escalate it. Ask them in the thread."]
    );
    assert_eq!(
        bot.thread(&card),
        [
            "⏫ *RB-1* escalated to `devops_lead` (<@U0ALICE> asked to escalate): <@U0DEVOPS>, you may now approve or reject it on the card above."
        ]
    );

    // The level's own timer finds it already open and does nothing.
    bot.advance(25);
    bot.settle().await;
    assert!(bot.thread(&card).is_empty());
    bot.click(ALICE, Button::EscalateNow(rb(1))).await;
    bot.click(ALICE, Button::EscalateNow(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.thread(&card).len(), 1, "eng_manager joined");
    assert_eq!(
        bot.ephemerals(ALICE),
        ["*RB-1* is already at the top of its escalation path; ask the people on the card directly."]
    );
    assert!(
        !bot.card_now(&card).buttons().contains(&"escalate".to_owned()),
        "no Escalate button at the top"
    );
}

#[tokio::test]
async fn a_timer_due_while_rollbot_was_down_fires_once_when_it_comes_back() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();

    // rollbot is down from here: nothing runs the timers while 45 minutes pass.
    bot.advance(45);
    let first = bot.another_process().await;
    let second = bot.another_process().await;
    let (a, b) = tokio::join!(first.timers.run_once(), second.timers.run_once());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "the due escalation timer is claimed by exactly one process"
    );
    assert_eq!(
        first.timers.run_once().await.unwrap() + second.timers.run_once().await.unwrap(),
        0
    );
    bot.settle().await;
    assert_eq!(bot.thread(&card).len(), 1, "escalated once");
    assert!(
        bot.card_now(&card)
            .text
            .contains("Escalated to level 1 of 2 (`devops_lead` joined).")
    );
    assert_eq!(bot.events_with(&[("type", "escalated")]).await, 1);
}

#[tokio::test]
async fn a_run_queued_by_one_process_and_claimed_by_another_runs_once() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;

    // The process that took the click hands the queued rollback to its own executor; before
    // that executor gets to it, another process finds the rollback in the store and runs it.
    let other = bot.another_process().await;
    assert!(
        other.executor.run_once().await.unwrap(),
        "the store shows the run as waiting"
    );
    assert_eq!(bot.marker(), ["undo 41", "health"]);

    // The copy handed over here is stale now: claiming it is refused, nothing runs twice.
    assert!(!bot.app.executor.run_once().await.unwrap());
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo 41", "health"]);
    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*"), "{}", card.text);
    assert_eq!(bot.events_with(&[("type", "run_started")]).await, 1);
    bot.thread(&card);
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_different_approvers() {
    let bot = Rollbot::start_with(|marker| {
        test_config(marker).replace("[severity.high]\n", "[severity.high]\napprovals = 2\n")
    })
    .await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(card.text.contains("*Awaiting approval*: 0 of 2 so far"));

    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        ["You already approved *RB-1* (1 of 2). It needs another approver; the card lists who may approve."]
    );
    assert!(bot.card_now(&card).text.contains("*Awaiting approval*: 1 of 2 so far"));
    assert!(bot.marker().is_empty(), "one approval of two runs nothing");

    bot.click(BETH, Button::Approve(rb(1))).await;
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*"), "{}", card.text);
    assert_eq!(card.text.matches("*Approved by*").count(), 2);
    bot.thread(&card);
}

#[tokio::test]
async fn roles_held_through_a_user_group_are_read_from_slack_and_fail_closed() {
    let bot = Rollbot::start_with(|marker| {
        test_config(marker).replace(
            r#"on_call = ["U0ALICE", "U0BOB", "U0BETH"]"#,
            r#"on_call = ["U0ALICE", "S0ONCALL"]"#,
        )
    })
    .await;
    bot.slack.set_group("S0ONCALL", &[BOB, BETH]);
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("Who may approve now: <!subteam^S0ONCALL> (`on_call`)."),
        "{}",
        card.text
    );
    bot.group_lookups();

    bot.slack.fail_group_lookups(Some("ratelimited"));
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        [
            "rollbot could not check whether you are in `on_call` (its Slack user group or PagerDuty on-call schedule could not be read), so it did not act on *RB-1*. Nothing changed; try again in a minute."
        ]
    );
    assert!(!bot.group_lookups().is_empty());
    assert!(bot.card_now(&card).text.contains("Awaiting approval"));

    bot.slack.fail_group_lookups(None);
    bot.slack
        .slow("usergroups.users.list", Some(std::time::Duration::from_secs(30)));
    let asked = std::time::Instant::now();
    bot.click(BETH, Button::Approve(rb(1))).await;
    assert!(
        asked.elapsed() < std::time::Duration::from_millis(2500),
        "answered within Slack's 3 s: {:?}",
        asked.elapsed()
    );
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BETH).len(),
        1,
        "a slow group lookup refuses, like a failed one"
    );
    assert!(bot.card_now(&card).text.contains("Awaiting approval"));
    bot.slack.slow("usergroups.users.list", None);
    bot.group_lookups();

    bot.click(MALLORY, Button::Approve(rb(1))).await;
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.group_lookups(), ["S0ONCALL"], "read once, then cached");
    assert_eq!(bot.ephemerals(MALLORY).len(), 1, "not in the group: refused");
    let card = bot.card_now(&card);
    assert!(
        card.text.contains("*Approved by*\n<@U0BOB> (`on_call`)"),
        "{}",
        card.text
    );
    bot.thread(&card);
}

#[tokio::test]
async fn a_gate_waits_for_continue_and_a_destructive_step_for_its_phrase() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;

    let paused = bot.card_now(&card);
    assert!(paused.text.contains("⏸️ *Paused at step 2 of 3, Decide on the data*: Code is rolled back. Restore the database too?. Next: *Continue* runs the rest; *Abort* stops here."), "{}", paused.text);
    assert_eq!(paused.buttons(), ["continue", "abort", "post_update"]);
    insta::assert_snapshot!("paused_at_gate_card", redacted(&paused.text));
    assert_eq!(bot.marker(), ["undo"]);
    bot.thread(&card);

    bot.click(MALLORY, Button::Continue(rb(1), 1)).await;
    bot.click(ALICE, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(MALLORY),
        ["Only the requester or someone who may approve *RB-1* can answer at this step. Ask them in the thread."]
    );
    assert_eq!(
        bot.ephemerals(ALICE),
        [
            "You requested *RB-1*, so someone else must answer step 2 (*Decide on the data*): the two-person rule says a gate is passed by a second person. Ask the people who may approve it in the thread."
        ],
        "the requester does not pass their own gate"
    );
    assert_eq!(bot.marker(), ["undo"]);
    bot.click(BOB, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    let thread = bot.thread(&card);
    assert_eq!(
        thread[0],
        "▶️ <@U0BOB> passed step 2 *Decide on the data*; the run continues."
    );
    assert!(thread.last().unwrap().contains("⏸️ *Paused before step 3 of 3, Full restore*: it is destructive. Next: click *Confirm…* and type `CONFIRM_FULL_RESTORE` exactly"), "{thread:#?}");
    assert_eq!(bot.card_now(&card).buttons(), ["confirm", "abort", "post_update"]);
    assert_eq!(bot.marker(), ["undo"], "the destructive step has not run");

    bot.click(BETH, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BETH),
        [
            "That button was for step 2 of *RB-1*, but it now waits at step 3; nothing changed. Use the buttons on the card as it is now."
        ],
        "a click on an out-of-date card cannot pass the next step"
    );
    assert_eq!(bot.marker(), ["undo"]);

    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    assert_eq!(modal["private_metadata"], "RB-1:2");
    let wrong = bot.submit(BOB, &modal, &[("phrase", "confirm_full_restore")]).await;
    assert_eq!(
        wrong,
        Some(
            serde_json::json!({"response_action": "errors", "errors": {"phrase": "That is not the phrase. Type it exactly as shown above (it is case-sensitive)."}})
        )
    );
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo"], "a wrong phrase runs nothing");
    assert_eq!(
        bot.submit(BOB, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await,
        None
    );
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo", "restore"]);
    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*: all 3 steps ran"), "{}", card.text);
    let thread = bot.thread(&card);
    assert_eq!(
        thread[0],
        "▶️ <@U0BOB> confirmed step 3 *Full restore*; the run continues."
    );
}

#[tokio::test]
async fn abort_at_a_gate_stops_the_run() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.click(BOB, Button::Abort(rb(1), 1)).await;
    bot.settle().await;
    let card = bot.card_now(&card);
    assert!(
        card.text.contains(
            "🛑 *Aborted* by <@U0BOB> at step 2 of 3, *Decide on the data*. The steps from there on did not run."
        ),
        "{}",
        card.text
    );
    assert_eq!(
        card.buttons(),
        ["retry", "escalate", "post_update", "resolve"],
        "after an abort: run the step again, bring the next level in, post an update, or close the incident"
    );
    let thread = bot.thread(&card);
    assert!(
        thread
            .last()
            .unwrap()
            .starts_with("❌ *ROLLBACK FAILED* — checkout-api (RB-1): step 2 did not complete (aborted by <@U0BOB>)."),
        "{thread:#?}"
    );
    bot.click(BOB, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        [
            "*RB-1* is already aborted by <@U0BOB>, not waiting at a step; your click changed nothing. The card shows its current state."
        ]
    );
    assert_eq!(bot.marker(), ["undo"]);
}

#[tokio::test]
async fn an_incomplete_request_opens_a_form_prefilled_with_what_was_typed() {
    let bot = Rollbot::start().await;
    let answer = bot.slash(ALICE, "checkout-api to 41 reason \"bad deploy\"").await;
    assert_eq!(
        answer,
        "Opening a form to finish the request (severity missing). Nothing is recorded until you submit it."
    );
    let form = bot.expect_modal();
    assert_eq!(form["callback_id"], "request");
    assert_eq!(
        form["private_metadata"], INCIDENTS,
        "the form remembers the channel it came from"
    );
    let block = |id: &str| {
        form["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["block_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(block("service")["element"]["initial_option"]["value"], "checkout-api");
    assert_eq!(block("service")["element"]["options"].as_array().unwrap().len(), 1);
    assert_eq!(block("target")["element"]["initial_value"], "41");
    assert_eq!(block("reason")["element"]["initial_value"], "bad deploy");
    assert!(block("severity")["element"].get("initial_option").is_none());

    let typed = [
        ("service", "checkout-api"),
        ("target", "41; reboot"),
        ("reason", "bad deploy"),
    ];
    let answer = bot.submit(ALICE, &form, &typed).await.unwrap();
    assert_eq!(
        answer["errors"]["severity"],
        "Choose a severity: it decides who must approve."
    );
    let typed = [
        ("service", "checkout-api"),
        ("severity", "high"),
        ("target", "41; reboot"),
        ("reason", "bad deploy"),
    ];
    let answer = bot.submit(ALICE, &form, &typed).await.unwrap();
    assert_eq!(
        answer["errors"]["target"],
        "`41; reboot` is not a valid `target` (it must match `[0-9]+`: release number). Nothing was requested; fix the value and run the command again."
    );
    let typed = [("service", "checkout-api"), ("severity", "low"), ("target", "41")];
    let answer = bot.submit(ALICE, &form, &typed).await.unwrap();
    assert_eq!(
        answer["errors"]["reason"],
        "A low-severity rollback needs a reason. Add `reason \"<why>\"` to the command and run it again."
    );
    assert_eq!(
        bot.rollbacks().await.len(),
        0,
        "nothing is recorded while the form has errors"
    );

    let typed = [
        ("service", "checkout-api"),
        ("severity", "high"),
        ("target", "41"),
        ("reason", "bad deploy"),
    ];
    assert_eq!(bot.submit(ALICE, &form, &typed).await, None, "a valid form closes");
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text.contains("Rollback RB-1: checkout-api to 41") && card.text.contains("*Reason*\nbad deploy"),
        "{}",
        card.text
    );
    let acks = bot.ephemerals(ALICE);
    assert_eq!(acks.len(), 1);
    assert!(acks[0].starts_with("Recorded *RB-1*"), "{}", acks[0]);

    assert!(
        bot.slash(ALICE, "")
            .await
            .starts_with("Opening a form to finish the request (service and severity).")
    );
    assert!(
        bot.expect_modal()["blocks"][0]["element"]
            .get("initial_option")
            .is_none()
    );
    assert!(
        bot.slash(ALICE, "checkout-api severity high")
            .await
            .starts_with("Opening a form to finish the request (target missing).")
    );
    assert_eq!(
        bot.expect_modal()["blocks"][1]["element"]["initial_option"]["value"],
        "high"
    );
}

/// Approves RB-1 and lets a doomed process take it: it starts the first step and dies.
async fn interrupted_rollback(bot: &Rollbot) -> Posted {
    bot.slash(ALICE, REQUEST).await;
    bot.app.delivery.run_once().await.unwrap();
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.die_during_first_step(1).await;
    bot.settle().await;
    assert!(bot.marker().is_empty(), "the dead process never finished the step");
    bot.thread(&card);
    bot.card_now(&card);

    bot.advance_secs(20);
    bot.settle().await;
    assert!(bot.thread(&card).is_empty(), "the lease (30 s) has not lapsed yet");
    bot.advance_secs(15);
    bot.settle().await;
    card
}

#[tokio::test]
async fn a_step_whose_process_died_is_interrupted_and_only_retried_when_clicked() {
    let bot = Rollbot::start().await;
    let card = interrupted_rollback(&bot).await;
    let expected = "RB-1 ⚠️ *Interrupted* at step 1 of 2, *Undo release*: the rollbot process running it stopped. That attempt is not running any more (a step is stopped when its process can no longer renew its lease), but whether it took effect is unknown. Check it, then choose: *Retry step* runs it again, *Skip step* goes on with the next step, *Abort* stops here.\nAwaited: <@U0ALICE>, <@U0BETH>, <@U0BOB>.";
    assert_eq!(
        bot.thread(&card),
        [expected],
        "the requester and who may approve are woken"
    );
    let broadcast = bot
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.body["reply_broadcast"] == true && c.body["text"] == expected)
        .count();
    assert_eq!(broadcast, 1, "the channel is told, not only the thread");
    let interrupted = bot.card_now(&card);
    assert_eq!(
        interrupted.buttons(),
        ["retry", "skip", "abort", "escalate", "post_update"]
    );
    assert!(
        interrupted.text.contains("⚠️ 1. *Undo release*"),
        "{}",
        interrupted.text
    );

    bot.advance(60);
    bot.settle().await;
    assert!(
        bot.marker().is_empty(),
        "nothing re-runs the started step by itself, however long it waits"
    );

    bot.click(MALLORY, Button::Retry(rb(1), 0)).await;
    bot.click(BETH, Button::Retry(rb(1), 0)).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(MALLORY).len(), 1);
    assert_eq!(bot.marker(), ["undo 41", "health"], "retried once, then the rest ran");
    let thread = bot.thread(&card);
    assert_eq!(
        thread.iter().filter(|m| m.starts_with("⏫")).count(),
        2,
        "an hour of nobody deciding brought in both levels of the ladder: {thread:#?}"
    );
    assert_eq!(
        thread[2],
        "↪️ Step 1 *Undo release* was interrupted; <@U0BETH> chose to run it again."
    );
    let card = bot.card_now(&card);
    assert!(card.text.contains("✅ *Succeeded*"), "{}", card.text);
}

#[tokio::test]
async fn a_retry_of_an_interrupted_destructive_step_asks_for_its_phrase_again() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.click(BOB, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    // The phrase is typed; the process that takes the run dies during the restore.
    let confirmed = bot.submit(BOB, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]);
    assert_eq!(confirmed.await, None);
    bot.die_during_next_step(1).await;
    bot.settle().await;
    bot.advance_secs(35);
    bot.settle().await;
    bot.thread(&card);
    let interrupted = bot.card_now(&card);
    assert!(
        interrupted
            .text
            .contains("*Retry step* asks for its confirmation phrase again, then runs it"),
        "{}",
        interrupted.text
    );
    let retry = interrupted.button("retry");
    assert_eq!(
        retry["confirm"]["text"]["text"],
        "Step 3 “Full restore” may already have taken effect before it was interrupted. Check it first: running it again repeats it. You will be asked for its confirmation phrase again before it runs."
    );
    assert_eq!(retry["confirm"]["style"], "danger");

    bot.click(BOB, Button::Retry(rb(1), 2)).await;
    bot.settle().await;
    assert_eq!(
        bot.marker(),
        ["undo"],
        "the retry waits for the phrase: nothing restored"
    );
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|m| m.contains("⏸️ *Paused before step 3 of 3, Full restore*: it is destructive. Next: click *Confirm…* and type `CONFIRM_FULL_RESTORE` exactly")),
        "{thread:#?}"
    );
    assert_eq!(bot.card_now(&card).buttons(), ["confirm", "abort", "post_update"]);

    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    assert_eq!(
        bot.submit(BOB, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await,
        None
    );
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo", "restore"], "restored once, after the phrase");
    bot.thread(&card);
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
}

#[tokio::test]
async fn an_interrupted_step_can_be_skipped_after_checking_it() {
    let bot = Rollbot::start().await;
    let card = interrupted_rollback(&bot).await;
    bot.thread(&card);
    bot.click(ALICE, Button::Skip(rb(1), 0)).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["health"], "the skipped step is not run; the next one is");
    let thread = bot.thread(&card);
    assert_eq!(
        thread[0],
        "↪️ Step 1 *Undo release* was interrupted; <@U0ALICE> checked it and chose to go on without it."
    );
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
}

#[tokio::test]
async fn a_confirm_click_for_a_step_that_does_not_exist_is_refused_not_a_crash() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.click(BOB, Button::Confirm(rb(1), 99)).await, 200);
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        [
            "That button was for step 100 of *RB-1*, but it now waits at step 2; nothing changed. Use the buttons on the card as it is now."
        ]
    );
    bot.thread(&card);
    bot.card_now(&card);
}

#[tokio::test]
async fn when_slack_is_slow_to_open_the_form_the_answer_comes_in_text_within_slacks_3_seconds() {
    let bot = Rollbot::start().await;
    bot.slack.slow("views.open", Some(std::time::Duration::from_secs(30)));
    let asked = std::time::Instant::now();
    let answer = bot.slash(ALICE, "checkout-api to 41").await;
    assert!(
        asked.elapsed() < std::time::Duration::from_millis(2900),
        "answered in {:?}",
        asked.elapsed()
    );
    assert!(answer.starts_with("How severe is the incident?"), "{answer}");
}

#[tokio::test]
async fn one_person_cannot_pass_their_own_gate_or_confirm_their_own_destructive_step_even_at_critical() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity critical")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    assert_eq!(bot.marker(), ["undo"], "critical runs at once, up to its gate");

    bot.click(ALICE, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(ALICE),
        [
            "You requested *RB-1*, so someone else must answer step 2 (*Decide on the data*): the two-person rule says a gate is passed by a second person. Ask the people who may approve it in the thread."
        ]
    );
    bot.click(DAVE, Button::Continue(rb(1), 1)).await;
    bot.settle().await;

    bot.click(ALICE, Button::Confirm(rb(1), 2)).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(ALICE),
        [
            "You requested *RB-1*, so someone else must confirm step 3 (*Full restore*): it is destructive, and the two-person rule says no one runs a destructive step alone. Ask the people who may approve it in the thread."
        ],
        "no form opens for the requester's own destructive step"
    );
    assert_eq!(bot.marker(), ["undo"], "the destructive step has not run");
    bot.thread(&card);
    assert_eq!(bot.card_now(&card).buttons(), ["confirm", "abort", "post_update"]);
}
