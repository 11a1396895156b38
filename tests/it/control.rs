//! Issue 26: people stay in control after approval. A running step can be aborted from the
//! card, from any replica; whoever ends someone else's request tells them.
use crate::support::*;
use std::time::{Duration, Instant};

/// A runbook whose second step takes long (a restore), and stops cleanly on SIGTERM.
fn slow_config(marker: &str) -> String {
    test_config(marker).replace(
        "[services.checkout-api]\nrunbooks = [\"app\", \"broken\", \"database\"]",
        "[services.checkout-api]\nrunbooks = [\"app\", \"broken\", \"database\", \"slow\"]",
    ) + &format!(
        r#"
[runbooks.slow]
description = "Code, then a long restore, then a restart"
params.target = {{ pattern = "[0-9]+" }}

[[runbooks.slow.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo $2" >> "$1"', "step", "{marker}", "{{{{ params.target }}}}"]

[[runbooks.slow.steps]]
name = "Restore orders"
run = ["sh", "-c", 'trap "echo restore stopped cleanly; exit 143" TERM; echo "restore" >> "$1"; echo "restored 120 of 9000 tables"; while true; do sleep 0.1; done', "step", "{marker}"]
timeout = "1h"

[[runbooks.slow.steps]]
name = "Restart"
run = ["sh", "-c", 'echo "restart" >> "$1"', "step", "{marker}"]
"#
    )
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ALICE's request of the slow runbook, approved by BOB and run on another replica (this one's
/// workers find it leased; clicks arrive here) until the restore step runs. Returns the card
/// and the other replica's run.
async fn slow_restore_running_elsewhere(bot: &Rollbot) -> (Posted, tokio::task::JoinHandle<bool>) {
    bot.slash(ALICE, "checkout-api runbook slow to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.click(BOB, Button::Approve(rb(1))).await;
    let replica = bot.another_process().await;
    let running = tokio::spawn(async move { replica.executor.run_once().await.unwrap() });
    until("the restore runs", || bot.marker().contains(&"restore".to_owned())).await;
    (card, running)
}

#[tokio::test]
async fn a_running_step_is_aborted_from_another_replica_and_nothing_after_it_starts() {
    let bot = Rollbot::start_with(slow_config).await;
    let (card, running) = slow_restore_running_elsewhere(&bot).await;
    bot.settle().await;
    let running_card = bot.card_now(&card);
    assert!(
        running_card.text.contains("🔄 *Running* step 2 of 3: Restore orders. Step started at 03:00 UTC (the run started at 03:00 UTC); it is stopped if it has not finished by 04:00 UTC."),
        "a running card says since when, and until when: {}",
        running_card.text
    );
    let abort = running_card.button("abort");
    assert_eq!(abort["value"], "RB-1@1", "{}", running_card.text);
    assert!(
        abort["confirm"]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("SIGTERM") && t.contains("Restart")),
        "the abort asks first, and says what stops and what will not run: {abort:#}"
    );

    // Someone with no part in it cannot stop it, and is told who can.
    bot.click(MALLORY, Button::Abort(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(MALLORY),
        [
            "Only the requester of *RB-1*, someone who may approve it, or a role the configuration allows to abort (`[safety] abort_roles`, none set) can abort it; nothing changed. Ask one of them in the thread."
        ]
    );

    let clicked = Instant::now();
    assert_eq!(bot.click(BETH, Button::Abort(rb(1), 1)).await, 200);
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap();
    let took = clicked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the replica running the step stopped it {took:?} after the click"
    );
    bot.settle().await;

    assert_eq!(bot.marker(), ["undo 41", "restore"], "the restart never started");
    let rollback = &bot.rollbacks().await.into_iter().find(|r| r.id == rb(1)).unwrap();
    assert_eq!(rollback.state.name(), "aborted");
    let stopped = rollback.steps[1].result.as_ref().unwrap();
    assert_eq!(stopped.outcome, rollbot::domain::StepOutcome::Aborted);
    assert!(
        stopped.output_tail.contains("restored 120 of 9000 tables")
            && stopped.output_tail.contains("restore stopped cleanly"),
        "its output is kept: {stopped:?}"
    );

    let now = bot.card_now(&card);
    assert!(now.text.contains("🛑 *Aborted* by <@U0BETH>"), "{}", now.text);
    assert_eq!(
        now.buttons(),
        ["retry", "escalate", "post_update", "resolve"],
        "no Abort once aborted: run the step again, bring the next level in, post an update, or close the incident"
    );
    let thread = bot.thread(&card);
    let asked = thread
        .iter()
        .find(|m| m.contains("asked to abort"))
        .expect("the abort is announced");
    assert!(
        asked.contains("<@U0BETH> asked to abort *RB-1*: stopping step 2 *Restore orders*"),
        "{asked}"
    );
    let finished = thread
        .iter()
        .find(|m| m.contains("The system may be half-way"))
        .unwrap_or_else(|| panic!("{thread:#?}"));
    assert!(
        finished.starts_with("<@U0ALICE>: RB-1 🛑 *Aborted* by <@U0BETH>"),
        "the requester is told: {finished}"
    );
    assert!(
        finished.contains("Ran: 1. Undo release. Stopped while it ran: 2. Restore orders. Did not run: 3. Restart."),
        "{finished}"
    );
}

#[tokio::test]
async fn a_rejection_by_someone_else_tells_the_requester() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.click(BOB, Button::Reject(rb(1))).await;
    let modal = bot.expect_modal();
    bot.submit(BOB, &modal, &[("reason", "the deploy is not the cause")])
        .await;
    bot.settle().await;
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("<@U0ALICE>: RB-1 🚫 *Rejected* by <@U0BOB>: “the deploy is not the cause”")),
        "{thread:#?}"
    );
    bot.card_now(&card);
}

/// A runbook whose destructive restore fails the first time, and a skippable check.
fn flaky_config(marker: &str) -> String {
    test_config(marker).replace(
        "[services.checkout-api]\nrunbooks = [\"app\", \"broken\", \"database\"]",
        "[services.checkout-api]\nrunbooks = [\"app\", \"broken\", \"database\", \"flaky\", \"checked\"]",
    ) + &format!(
        r#"
[runbooks.flaky]
description = "A restore that fails once"

[[runbooks.flaky.steps]]
name = "Full restore"
run = ["sh", "-c", 'echo "restore" >> "$1"; [ "$(grep -c restore "$1")" -ge 2 ] || {{ echo "ERROR: connection reset" >&2; exit 1; }}', "step", "{marker}"]
destructive = true
no_backup_because = "a test step: it writes a line to a scratch file"
confirm = "CONFIRM_FULL_RESTORE"

[runbooks.checked]
description = "Undo, then a check that only informs"

[[runbooks.checked.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo" >> "$1"', "step", "{marker}"]

[[runbooks.checked.steps]]
name = "Smoke test"
run = ["sh", "-c", 'echo "smoke" >> "$1"; exit 1', "step", "{marker}"]
skippable = true

[[runbooks.checked.steps]]
name = "Announce"
run = ["sh", "-c", 'echo "announce" >> "$1"', "step", "{marker}"]
"#
    )
}

async fn confirm_phrase(bot: &Rollbot, who: &str, step: usize) {
    bot.click(who, Button::Confirm(rb(1), step)).await;
    let modal = bot.expect_modal();
    assert_eq!(
        bot.submit(who, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await,
        None
    );
    bot.settle().await;
}

#[tokio::test]
async fn a_failed_step_is_retried_with_its_phrase_and_the_ladder_is_brought_in() {
    let bot = Rollbot::start_with(flaky_config).await;
    bot.slash(ALICE, "checkout-api runbook flaky severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    confirm_phrase(&bot, BETH, 0).await;

    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 1 of 1"), "{}", failed.text);
    assert_eq!(
        failed.buttons(),
        ["retry", "escalate", "post_update", "resolve"],
        "{}",
        failed.text
    );
    assert!(
        failed
            .text
            .contains("Next: *Retry step* runs step 1 again; *Escalate now* brings in `devops_lead`"),
        "{}",
        failed.text
    );
    assert!(
        failed.button("retry")["confirm"]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("failed, and may have done part of its work")
                && t.contains("asked for its confirmation phrase again")),
        "{:#}",
        failed.button("retry")
    );

    // Not skippable: the runbook does not allow going on without a restore.
    bot.click(BOB, Button::Skip(rb(1), 0)).await;
    bot.settle().await;
    assert!(bot.ephemerals(BOB)[0].contains("cannot be skipped after it failed"));

    // Nobody on call knows the restore: the requester brings in the next level.
    bot.click(ALICE, Button::EscalateNow(rb(1))).await;
    bot.settle().await;
    let thread = bot.thread(&card);
    let escalated = thread
        .iter()
        .find(|m| m.starts_with("⏫"))
        .unwrap_or_else(|| panic!("{thread:#?}"));
    assert!(
        escalated.contains("<@U0DEVOPS>, you are needed on the card above: ❌ *Failed* at step 1 of 1"),
        "{escalated}"
    );

    // The DevOps lead retries: the phrase is asked again, from a second person.
    bot.click(DAVE, Button::Retry(rb(1), 0)).await;
    bot.settle().await;
    bot.click(ALICE, Button::Confirm(rb(1), 0)).await;
    bot.settle().await;
    assert!(
        bot.ephemerals(ALICE)[0].contains("two-person rule"),
        "the requester still cannot type the destructive phrase"
    );
    confirm_phrase(&bot, DAVE, 0).await;
    assert_eq!(bot.marker(), ["restore", "restore"]);
    let now = bot.card_now(&card);
    assert!(now.text.contains("✅ *Succeeded*"), "{}", now.text);
    bot.thread(&card);
}

#[tokio::test]
async fn a_skippable_step_is_skipped_after_it_failed_unless_another_rollback_took_the_service() {
    let bot = Rollbot::start_with(flaky_config).await;
    bot.slash(ALICE, "checkout-api runbook checked severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    let failed = bot.card_now(&card);
    assert_eq!(
        failed.buttons(),
        ["retry", "skip", "escalate", "post_update", "resolve"],
        "{}",
        failed.text
    );

    // Meanwhile someone requests another rollback of the same service (allowed: RB-1 ended).
    bot.slash(CAROL, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let other = bot.expect_card();
    bot.click(BOB, Button::Skip(rb(1), 1)).await;
    bot.settle().await;
    let refused = bot.ephemerals(BOB);
    assert!(
        refused[0].contains("RB-2"),
        "RB-1 cannot take the service back while RB-2 is open: {refused:?}"
    );
    let first = bot.rollbacks().await.into_iter().find(|r| r.id == rb(1)).unwrap();
    assert_eq!(first.state.name(), "failed", "nothing changed");

    bot.click(CAROL, Button::Cancel(rb(2))).await;
    bot.settle().await;
    bot.click(BOB, Button::Skip(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo", "smoke", "announce"]);
    let now = bot.card_now(&card);
    assert!(now.text.contains("✅ *Succeeded*"), "{}", now.text);
    bot.thread(&card);
    bot.thread(&other);
    bot.card_now(&other);
    bot.ephemerals(ALICE);
    bot.ephemerals(CAROL);
}

#[tokio::test]
async fn a_gate_nobody_answers_brings_in_the_next_level_and_the_answer_voids_the_rest() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api runbook database severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.advance(10);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo"]);
    assert!(bot.card_now(&card).text.contains("⏸️ *Paused at step 2 of 3"));
    assert_eq!(
        bot.pending_timers().await,
        2,
        "the ladder's two levels, counted from the pause"
    );

    // Twenty minutes after the request's own first level would have joined: not yet.
    bot.advance(25);
    bot.settle().await;
    assert!(bot.thread(&card).iter().all(|m| !m.starts_with("⏫")));
    bot.advance(6);
    bot.settle().await;
    let thread = bot.thread(&card);
    let escalated = thread
        .iter()
        .find(|m| m.starts_with("⏫"))
        .unwrap_or_else(|| panic!("{thread:#?}"));
    assert!(
        escalated.contains("escalated to `devops_lead` (nobody answered for 31m): <@U0DEVOPS>, you are needed on the card above: ⏸️ *Paused at step 2 of 3"),
        "{escalated}"
    );

    // The DevOps lead answers the gate; the restore's phrase is a new wait, with its own clock.
    bot.click(DAVE, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    assert_eq!(
        bot.pending_timers().await,
        1,
        "the next level, counted from the new pause"
    );
    bot.click(DAVE, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    bot.submit(DAVE, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo", "restore"]);
    assert_eq!(bot.pending_timers().await, 0, "answered: nobody else is called");
    bot.card_now(&card);
    bot.thread(&card);
}

/// The decision matrix: low needs a reason and no approval, and says it is usually a forward fix.
#[tokio::test]
async fn a_low_severity_rollback_runs_with_a_reason_and_the_matrixs_advice() {
    let bot = Rollbot::start().await;
    let ack = bot
        .slash(
            ALICE,
            r#"checkout-api to 41 severity low reason "typo on the receipt page""#,
        )
        .await;
    assert!(
        ack.contains("Low severity: no approval needed, so it runs now, and a post-incident review is flagged. The decision matrix's advice for low severity: usually a forward fix, not a rollback"),
        "{ack}"
    );
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("🟢 *Low severity: no approval needed — it runs at once.* The decision matrix's advice"),
        "{}",
        card.text
    );
    assert_eq!(bot.marker(), ["undo 41", "health"]);
    bot.card_now(&card);
    bot.thread(&card);
}

/// The process running the step dies before it could stop it: when its lease lapses, the
/// rollback is aborted (someone asked), not left waiting as interrupted.
#[tokio::test]
async fn an_abort_asked_of_a_process_that_then_dies_ends_the_run_as_aborted() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.die_during_first_step(1).await;
    bot.settle().await;
    bot.click(BETH, Button::Abort(rb(1), 0)).await;
    bot.settle().await;
    assert!(
        bot.card_now(&card).text.contains("🛑 *Stopping* step 1 of 2"),
        "the abort is asked of the (dead) process running the step"
    );

    // Its lease (30 s) lapses: another replica's check ends the run.
    bot.advance_secs(35);
    bot.settle().await;
    let rollback = bot.rollbacks().await.into_iter().find(|r| r.id == rb(1)).unwrap();
    assert_eq!(rollback.state.name(), "aborted", "{:?}", rollback.state);
    assert!(bot.marker().is_empty(), "nothing ran after the abort");
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|m| m.contains("🛑 *Aborted* by <@U0BETH>")),
        "{thread:#?}"
    );
    bot.card_now(&card);
}

/// The slow restore, writing a line every 0.2 s, and a card that shows progress every second.
fn chatty_config(marker: &str) -> String {
    slow_config(marker).replace(
        r#"echo "restored 120 of 9000 tables"; while true; do sleep 0.1; done"#,
        r#"i=0; while true; do i=$((i+1)); echo "restored $i of 9000 tables"; sleep 0.2; done"#,
    ) + "\n[limits]\nstep_progress_every = \"1s\"\n"
}

#[tokio::test]
async fn a_long_steps_card_shows_how_long_it_has_run_and_its_latest_output() {
    let bot = Rollbot::start_with(chatty_config).await;
    // The story's clock moves only as the harness moves it (minutes would lapse the run's
    // lease); the message's own test covers the minutes.
    let (card, running) = slow_restore_running_elsewhere(&bot).await;

    // The process running the step refreshes the card; this replica delivers it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let live = loop {
        bot.settle().await;
        let now = bot.card_now(&card);
        if now.text.contains("⏱️") && now.text.contains("restored 4 of 9000 tables") {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "no progress on the card: {}\n{:#?}",
            now.text,
            bot.slack
                .calls()
                .iter()
                .filter(|c| c.method == "chat.update")
                .map(|c| c.body["text"].clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        live.text.contains("⏱️ Step 2 has run for ")
            && live.text.contains("s (as of 03:00 UTC). Its latest output:\n```"),
        "{}",
        live.text
    );
    let output = live.text.split("```").nth(1).unwrap();
    assert!(output.lines().count() <= 8, "the latest lines only: {output}");
    assert!(output.lines().last().unwrap().starts_with("restored "), "{output}");
    assert_eq!(live.buttons(), ["abort", "post_update"], "still abortable");
    let refreshes = bot.slack.calls().iter().filter(|c| c.method == "chat.update").count();

    bot.click(BETH, Button::Abort(rb(1), 1)).await;
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap();
    bot.settle().await;
    let ended = bot.card_now(&card);
    assert!(ended.text.contains("🛑 *Aborted*"), "{}", ended.text);
    assert!(
        !ended.text.contains("⏱️"),
        "a stopped step shows no live output: {}",
        ended.text
    );
    assert!(
        refreshes < 40,
        "a refresh a second at most, well inside chat.update's limits: {refreshes}"
    );
    bot.thread(&card);
    bot.ephemerals(ALICE);
}

/// A destructive step's count of what it would undo that fails: the form opens at once, then
/// says the count failed and why (with the step secret it used replaced by its name), so
/// silence never reads as "nothing lost"; the phrase still runs the step.
#[tokio::test]
async fn a_failed_loss_count_says_so_in_the_confirmation_and_keeps_its_secret() {
    let bot = Rollbot::builder()
        .config(|marker| {
            // The flaky restore is the last destructive step of the configuration.
            let config = flaky_config(marker);
            let at = config.rfind("confirm = \"CONFIRM_FULL_RESTORE\"\n").unwrap();
            let count = "loses = { run = [\"sh\", \"-c\", 'echo \"counting\"; echo \"no access to the orders database with $T\" >&2; exit 2'], env = { T = \"${env:COUNT_TOKEN}\" } }\n";
            format!("{}{count}{}", &config[..at], &config[at..])
        })
        .secrets(&[("COUNT_TOKEN", "tok-3f9a7c")])
        .start()
        .await;
    bot.slash(ALICE, "checkout-api runbook flaky severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.card_now(&card);

    bot.click(BETH, Button::Confirm(rb(1), 0)).await;
    let modal = bot.expect_modal();
    assert_eq!(
        modal["blocks"][2]["text"]["text"],
        "⏳ *What it would undo*: counting with `sh -c echo \"counting\"; echo \"no access to the orders databa…`…",
        "{modal:#}"
    );
    let counted = bot.await_form_updates(1).await.remove(0);
    assert_eq!(
        counted["view"]["blocks"][2]["text"]["text"],
        "⚠️ *What it would undo*: the count (`sh -c echo \"counting\"; echo \"no access to the orders databa…`) failed: \
         exited with code 2: no access to the orders database with ${env:COUNT_TOKEN}. \
         Nothing says what is lost: check before typing the phrase."
    );
    assert_eq!(counted["hash"], modal["hash"], "the redraw names the form it opened");
    assert!(!counted.to_string().contains("tok-3f9a7c"));
    assert_eq!(
        bot.submit(BETH, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await,
        None
    );
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("❌ *Failed* at step 1 of 1"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("❌ Step 1/1 *Full restore* failed")),
        "the phrase ran the step: {thread:#?}"
    );
}
