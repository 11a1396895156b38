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

#[tokio::test]
async fn a_running_step_is_aborted_from_another_replica_and_nothing_after_it_starts() {
    let bot = Rollbot::start_with(slow_config).await;
    bot.slash(ALICE, "checkout-api runbook slow to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.ephemerals(ALICE);
    bot.click(BOB, Button::Approve(rb(1))).await;

    // The run happens on another replica (this one's workers find it leased); clicks arrive here.
    let replica = bot.another_process().await;
    let running = tokio::spawn(async move { replica.executor.run_once().await.unwrap() });
    until("the restore runs", || bot.marker().contains(&"restore".to_owned())).await;
    bot.settle().await;
    let running_card = bot.card_now(&card);
    let abort = running_card.button("abort");
    assert_eq!(abort["value"], "RB-1@1", "{}", running_card.text);
    assert!(
        abort["confirm"]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("SIGTERM") && t.contains("Restart")),
        "the abort asks first, and says what stops and what will not run: {abort:#}"
    );

    let clicked = Instant::now();
    assert_eq!(bot.click(BETH, Button::Abort(rb(1), 1)).await, 200);
    tokio::time::timeout(Duration::from_secs(15), running).await.unwrap().unwrap();
    let took = clicked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the replica running the step stopped it {took:?} after the click"
    );
    bot.settle().await;

    assert_eq!(bot.marker(), ["undo 41", "restore"], "the restart never started");
    let rollback = &bot.rollbacks().await[0];
    assert_eq!(rollback.state.name(), "aborted");
    let stopped = rollback.steps[1].result.as_ref().unwrap();
    assert_eq!(stopped.outcome, rollbot::domain::StepOutcome::Aborted);
    assert!(
        stopped.output_tail.contains("restored 120 of 9000 tables") && stopped.output_tail.contains("restore stopped cleanly"),
        "its output is kept: {stopped:?}"
    );

    let now = bot.card_now(&card);
    assert!(now.text.contains("🛑 *Aborted* by <@U0BETH>"), "{}", now.text);
    assert!(now.buttons().is_empty() || !now.buttons().contains(&"abort".to_owned()));
    let thread = bot.thread(&card);
    let asked = thread.iter().find(|m| m.contains("asked to abort")).expect("the abort is announced");
    assert!(asked.contains("<@U0BETH> asked to abort *RB-1*: stopping step 2 *Restore orders*"), "{asked}");
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
    bot.submit(BOB, &modal, &[("reason", "the deploy is not the cause")]).await;
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
