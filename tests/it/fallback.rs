//! Issue 26: after a run fails, its runbook's fallback is requested from the card as a new
//! rollback that needs its own approvals, linked to the one it follows.
use crate::statuspage::page_config;
use crate::support::fake_statuspage::*;
use crate::support::*;

/// The broken runbook names the application rollback as its fallback.
fn with_fallback(config: String) -> String {
    config.replacen("[runbooks.broken]\n", "[runbooks.broken]\nfallback = \"app\"\n", 1)
}

/// ALICE's high-severity request of the broken runbook, approved by BOB, failed at step 2.
async fn failed_run(bot: &Rollbot) -> Posted {
    bot.slash(
        ALICE,
        r#"checkout-api to 41 runbook broken severity high reason "bad deploy""#,
    )
    .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.ephemerals(ALICE);
    card
}

#[tokio::test]
async fn a_failed_run_hands_on_to_its_fallback_which_needs_its_own_approval() {
    let bot = Rollbot::start_with(|m| with_fallback(test_config(m))).await;
    let card = failed_run(&bot).await;
    bot.thread(&card);
    let failed = bot.card_now(&card);
    assert_eq!(
        failed.buttons(),
        ["retry", "run_fallback", "escalate", "post_update", "resolve"],
        "{}",
        failed.text
    );
    assert!(
        failed.text.contains(
            "*Run fallback…* opens a request for the runbook *app*, a new rollback that needs its own approvals"
        ),
        "{}",
        failed.text
    );

    // Someone with no part in the incident cannot hand it on.
    bot.click(MALLORY, Button::RunFallback(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(MALLORY),
        [
            "The fallback of *RB-1* is requested by whoever may steer it: its requester, someone who may approve it, or a role allowed to abort it. Ask one of them in the thread; nothing changed."
        ]
    );

    // The requester opens the form: filled in from the failed rollback, saying what it files.
    bot.click(ALICE, Button::RunFallback(rb(1))).await;
    let modal = bot.expect_modal();
    assert_eq!(modal["title"]["text"], "Request the fallback");
    assert!(
        modal["private_metadata"]
            .as_str()
            .unwrap()
            .starts_with("fallback:RB-1:"),
        "{modal:#}"
    );
    let intro = modal["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(
        intro,
        "↪️ *RB-1* (broken) failed at step 2. Its runbook names *app* as the fallback. Submitting files a new rollback linked to *RB-1*: it needs its own approvals, like any request of its severity, and nothing runs before then. The target is carried over; check it."
    );
    let initial = |block: &str| {
        modal["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["block_id"] == block)
            .map(|b| {
                let element = &b["element"];
                // Text as typed; a select (the runbook) by the option it starts on.
                if element["initial_value"].is_null() {
                    element["initial_option"]["value"].clone()
                } else {
                    element["initial_value"].clone()
                }
            })
            .unwrap()
    };
    assert_eq!(initial("runbook"), "app");
    assert_eq!(initial("target"), "41");
    assert_eq!(
        initial("reason"),
        "Fallback for RB-1: broken failed at step 2. bad deploy"
    );
    let answers = [
        ("service", "checkout-api"),
        ("severity", "high"),
        ("target", "41"),
        ("runbook", "app"),
        ("reason", "Fallback for RB-1: broken failed at step 2. bad deploy"),
    ];
    assert_eq!(bot.submit(ALICE, &modal, &answers).await, None, "the form closes");
    // Slack sending the same submission again (same body, same signature) is answered as the
    // first: nothing new is filed.
    assert_eq!(bot.submit(ALICE, &modal, &answers).await, None, "the form closes again");
    bot.settle().await;
    assert_eq!(
        bot.rollbacks().await.len(),
        2,
        "the failed rollback and its one fallback"
    );

    // A new card, awaiting its own approval, says what it follows; nothing ran yet.
    let fallback = bot.expect_card();
    assert!(fallback.text.contains("RB-2"), "{}", fallback.text);
    assert!(fallback.text.contains("Awaiting approval"), "{}", fallback.text);
    assert!(
        fallback
            .blocks
            .to_string()
            .contains("↪️ The fallback of *RB-1*, which stopped"),
        "{}",
        fallback.blocks.to_string()
    );
    assert_eq!(fallback.buttons(), ["approve", "reject", "escalate", "cancel"]);
    assert_eq!(bot.marker(), ["undo 41"], "only the failed run's first step ran");
    let acknowledged = bot.ephemerals(ALICE);
    assert_eq!(acknowledged.len(), 2, "each delivery is answered: {acknowledged:#?}");
    assert!(acknowledged[0].contains("RB-2"), "{}", acknowledged[0]);
    assert_eq!(acknowledged[0], acknowledged[1], "the second as the first");

    // The failed card hands on: no more buttons, a line that points to the fallback.
    let handed_on = bot.card_now(&card);
    assert!(handed_on.buttons().is_empty(), "{:?}", handed_on.buttons());
    assert!(
        handed_on
            .blocks
            .to_string()
            .contains("↪️ <@U0ALICE> requested the fallback runbook *app* as *RB-2* at"),
        "{}",
        handed_on.blocks.to_string()
    );
    assert_eq!(
        bot.thread(&card),
        [
            "↪️ <@U0ALICE> requested the fallback runbook *app* as *RB-2*, a new rollback with its own card and approvals. Follow the incident there: updates and reminders continue on *RB-2*."
        ]
    );

    // A second form for the same failure files nothing.
    bot.click(BOB, Button::RunFallback(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        [
            "<@U0ALICE> already requested the fallback of *RB-1* as *RB-2*; nothing new was filed. Follow *RB-2* on its card."
        ]
    );
    let again = bot
        .submit(BOB, &modal, &answers)
        .await
        .expect("refused beside its field");
    assert!(
        again["errors"]["service"]
            .as_str()
            .unwrap()
            .contains("already requested the fallback of *RB-1* as *RB-2*"),
        "{again:#}"
    );

    // Its own approval runs it.
    bot.click(BETH, Button::Approve(rb(2))).await;
    bot.settle().await;
    assert!(bot.card_now(&fallback).text.contains("Succeeded"));
    assert_eq!(bot.marker(), ["undo 41", "undo 41", "health"]);
    bot.thread(&fallback);
    bot.ephemerals(ALICE);
}

#[tokio::test]
async fn the_fallback_carries_on_the_public_incident_of_the_run_it_follows() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| with_fallback(page_config(m, "")))
        .page(page.atlassian())
        .start()
        .await;
    let card = failed_run(&bot).await;
    bot.thread(&card);
    bot.card_now(&card);
    assert_eq!(page.incidents(), 1);

    bot.click(ALICE, Button::RunFallback(rb(1))).await;
    let modal = bot.expect_modal();
    let answers = [
        ("service", "checkout-api"),
        ("severity", "high"),
        ("target", "41"),
        ("runbook", "app"),
    ];
    assert_eq!(bot.submit(ALICE, &modal, &answers).await, None);
    bot.settle().await;
    let fallback = bot.expect_card();
    bot.thread(&card);
    bot.card_now(&card);
    bot.click(BOB, Button::Approve(rb(2))).await;
    bot.settle().await;
    assert!(bot.card_now(&fallback).text.contains("Succeeded"));
    bot.thread(&fallback);
    bot.ephemerals(ALICE);

    assert_eq!(
        page.incidents(),
        1,
        "one public incident for one outage: {:#?}",
        page.calls()
    );
    let calls = page.calls();
    let last = calls.last().unwrap();
    assert_eq!(last.method, "PATCH", "{calls:#?}");
    assert_eq!(last.body["incident"]["status"], "monitoring");
    assert!(
        calls.iter().skip(1).all(|c| c.path == calls[1].path),
        "every later call updates the same incident: {calls:#?}"
    );
}
