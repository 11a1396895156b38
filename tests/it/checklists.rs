//! Post-incident checklists: posted in the thread when the rollback ends, ticked by people
//! (each tick on the record, who and when, redrawn for everyone), and what is left unticked
//! becomes the post-mortem's action items.
use crate::support::*;

const REQUEST: &str = r#"checkout-api to 41 severity high reason "bad deploy""#;

fn with_checklists(marker: &str) -> String {
    test_config(marker).replace(
        "[severity.high]\n",
        "[severity.high]\nchecklists = [\"post-incident\"]\n",
    ) + r#"
[checklists.post-incident]
title = "Post-incident actions"
sections = [
  { name = "Immediate (next hour)", items = ["Document incident details", "Identify root cause"] },
  { name = "Short-term (next day)", items = ["Review deployment process"] },
]
"#
}

#[tokio::test]
async fn the_checklist_is_ticked_in_the_thread_and_what_is_left_becomes_action_items() {
    let bot = Rollbot::start_with(with_checklists).await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let thread = bot.thread_posts(&card);
    let checklist = thread.last().unwrap().clone();
    assert!(
        checklist.text.starts_with("📋 *Post-incident checklists for RB-1*: 0 of 3 done. Tick each item when it is done; what is left unticked becomes an action item in the post-mortem draft (`/rollback postmortem RB-1`)."),
        "{}",
        checklist.text
    );
    assert!(
        thread[..thread.len() - 1].iter().all(|m| !m.text.starts_with("📋")),
        "posted once, after the end"
    );

    bot.advance(5);
    assert_eq!(bot.tick(BOB, &checklist, 0, &["Document incident details"]).await, 200);
    bot.settle().await;
    let now = bot.card_now(&checklist);
    assert!(now.text.contains("1 of 3 done"), "{}", now.text);
    assert!(
        now.text.contains("✓ Document incident details — <@U0BOB> 03:05"),
        "{}",
        now.text
    );
    let boxes = &now.blocks[3]["elements"][0];
    assert_eq!(
        boxes["initial_options"][0]["text"]["text"], "Document incident details",
        "{boxes:#}"
    );

    // Carol ticks the other box: Slack sends the group's whole selection, Bob's tick stays his.
    bot.advance(5);
    bot.tick(
        CAROL,
        &checklist,
        0,
        &["Document incident details", "Identify root cause"],
    )
    .await;
    bot.settle().await;
    let now = bot.card_now(&checklist);
    assert!(now.text.contains("2 of 3 done"), "{}", now.text);
    assert!(
        now.text
            .contains("✓ Document incident details — <@U0BOB> 03:05 UTC\n✓ Identify root cause — <@U0CAROL> 03:10 UTC"),
        "{}",
        now.text
    );
    // Bob unticks his: the box is open again.
    bot.tick(BOB, &checklist, 0, &["Identify root cause"]).await;
    bot.settle().await;
    assert!(bot.card_now(&checklist).text.contains("1 of 3 done"));

    // Boxes the checklists do not have (an old or forged message) are refused, plainly.
    let forged = ticks_body(MALLORY, INCIDENTS, &checklist.ts, "checklist:RB-1:0:7", vec![]);
    bot.signed_post("/slack/interactions", forged).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(MALLORY),
        [
            "Those boxes are not on *RB-1*'s checklists (the message is out of date, or not rollbot's); nothing was recorded. Tick them in the latest checklist message in the thread."
        ]
    );

    let draft = bot.slash(ALICE, "postmortem RB-1").await;
    for line in [
        "| Document incident details (Post-incident actions, Immediate (next hour)) |  |  |",
        "| Review deployment process (Post-incident actions, Short-term (next day)) |  |  |",
        "- [x] Identify root cause — @U0CAROL at 03:10:03",
        "| 03:05:03 | @U0BOB ticked “Document incident details” |",
        "| 03:10:03 | @U0BOB unticked “Document incident details” |",
    ] {
        assert!(draft.contains(line), "the draft lacks {line:?}:\n{draft}");
    }
    assert!(
        !draft.contains("| Identify root cause ("),
        "a ticked item is done, not an action item"
    );
    bot.thread(&card);
}
