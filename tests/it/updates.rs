//! Issue 26: people hear of an incident on a cadence, and anyone steering it can post an update
//! to the thread, the stakeholders' channels and the status page.
use crate::statuspage::page_config;
use crate::support::fake_statuspage::*;
use crate::support::*;

/// The story's cadence: reminders 5 and 10 minutes after the request, then every 20 minutes.
fn with_cadence(config: String) -> String {
    config.replacen(
        "update_reminders = []\n",
        "update_reminders = [\"5m\", \"10m\"]\nupdate_reminders_then_every = \"20m\"\n",
        1,
    )
}

async fn post_update(
    bot: &Rollbot,
    who: &str,
    text: &str,
    to_status_page: bool,
) -> (serde_json::Value, Option<serde_json::Value>) {
    bot.click(who, Button::PostUpdate(rb(1))).await;
    let modal = bot.expect_modal();
    let ticked: &[(&str, &str)] = if to_status_page { &[("status_page", "yes")] } else { &[] };
    let answer = bot.submit_ticking(who, &modal, &[("update", text)], ticked).await;
    bot.settle().await;
    (modal, answer)
}

#[tokio::test]
async fn reminders_ask_the_requester_until_someone_marks_the_failure_resolved() {
    let bot = Rollbot::start_with(|m| with_cadence(test_config(m))).await;
    bot.slash(ALICE, "checkout-api to 41 runbook broken severity high")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("❌ *Failed* at step 2 of 3"));
    assert_eq!(bot.thread(&card).len(), 4, "start, each step's result, the failure");
    bot.ephemerals(ALICE);

    bot.advance(4);
    bot.settle().await;
    assert!(bot.thread(&card).is_empty(), "no reminder before its mark");
    bot.advance(1);
    bot.settle().await;
    let reminder = bot.thread_posts(&card);
    assert_eq!(reminder.len(), 1);
    assert!(
        reminder[0].text.starts_with("⏰ <@U0ALICE> *RB-1* (checkout-api) has been open for 5 min: time for an update (the incident plan asks to update the development team by now). Now: ❌ *Failed* at step 2 of 3, *Migrate schema down*: exited with code 3. The steps after it did not run. Output is in the thread. No update has been posted yet."),
        "the point of contact is mentioned in the notification text: {}",
        reminder[0].text
    );
    assert_eq!(reminder[0].buttons(), ["post_update"]);

    // Someone who has no part in the incident cannot speak for it.
    bot.click(MALLORY, Button::PostUpdate(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(MALLORY),
        [
            "Updates on *RB-1* speak for the incident, so they come from its requester, someone who may approve it, or a role allowed to abort it. Ask one of them in the thread, or reply there yourself."
        ]
    );
    // An approver answers the reminder. Without a status page the form has no page box.
    let (modal, answer) = post_update(
        &bot,
        BOB,
        "Schema migration failed: disk full. DBA paged; next update 03:30.",
        false,
    )
    .await;
    assert_eq!(answer, None, "the form closes");
    assert!(!modal.to_string().contains("status_page"), "{modal:#}");
    assert_eq!(
        bot.thread(&card),
        [
            "📣 *Update on RB-1* (checkout-api) from <@U0BOB>:\n> Schema migration failed: disk full. DBA paged; next update 03:30."
        ]
    );
    let now = bot.card_now(&card);
    assert!(
        now.text.contains("📣 Last update by <@U0BOB> at 03:05 UTC"),
        "{}",
        now.text
    );

    // The 10-minute mark: an update came since the last one, so nobody is nagged.
    bot.advance(5);
    bot.settle().await;
    assert!(bot.thread(&card).is_empty(), "{:?}", bot.thread(&card));
    // 30 minutes: the repeat, with the last update named; the failure nobody acted on has
    // brought in the ladder's next level meanwhile.
    bot.advance(20);
    bot.settle().await;
    let third = bot.thread(&card);
    assert_eq!(third.len(), 2, "{third:#?}");
    assert!(
        third[0].starts_with("⏫ *RB-1* escalated to `devops_lead`"),
        "{}",
        third[0]
    );
    assert!(
        third[1].starts_with("⏰ <@U0ALICE> *RB-1* (checkout-api) has been open for 30 min: time for an update (the incident plan asks to inform stakeholders by now).")
            && third[1].contains("Last update: <@U0BOB> at 03:05 UTC."),
        "{}",
        third[1]
    );

    // The service is healthy again by other means: marking it resolved ends the reminders.
    bot.click(ALICE, Button::Resolve(rb(1))).await;
    bot.settle().await;
    let resolved = bot.card_now(&card);
    assert!(
        resolved
            .text
            .contains("Incident: *resolved* by <@U0ALICE> at 03:30 UTC."),
        "{}",
        resolved.text
    );
    assert!(!resolved.buttons().contains(&"resolve".to_owned()));
    bot.advance(120);
    bot.settle().await;
    assert!(
        bot.thread(&card).is_empty(),
        "no reminder after the incident is resolved"
    );
    assert_eq!(bot.pending_timers().await, 0);

    let draft = bot.slash(ALICE, "postmortem RB-1").await;
    assert!(
        draft.contains("@U0BOB posted an update: “Schema migration failed: disk full. DBA paged; next update 03:30.”")
            && draft.contains("@U0ALICE marked the incident resolved"),
        "{draft}"
    );
    assert!(bot.unseen().is_empty(), "{:#?}", bot.unseen());
}

#[tokio::test]
async fn an_update_reaches_the_stakeholders_and_the_status_page_when_ticked() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| {
            page_config(m, "").replace(
                &format!("channels = [\"{INCIDENTS}\"]"),
                &format!("channels = [\"{INCIDENTS}\"]\nnotify_channels = [\"C0STATUS\"]"),
            )
        })
        .page(page.atlassian())
        .start()
        .await;
    bot.slash(ALICE, r#"checkout-api to 41 severity high reason "bad deploy""#)
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.thread(&card);
    bot.posts_in("C0STATUS");
    bot.ephemerals(ALICE);
    let done = bot.card_now(&card);
    assert_eq!(done.buttons(), ["resolve", "post_update"]);
    assert_eq!(page.calls().len(), 2, "opened, then monitoring");

    let (modal, answer) = post_update(
        &bot,
        ALICE,
        "Checkout is back to normal; we keep watching for 30 minutes.",
        true,
    )
    .await;
    assert_eq!(answer, None);
    assert!(
        modal.to_string().contains("Also post it on the public status page"),
        "{modal:#}"
    );
    assert_eq!(
        bot.thread(&card),
        [
            "📣 *Update on RB-1* (checkout-api) from <@U0ALICE> _(also posted on the status page)_:\n> Checkout is back to normal; we keep watching for 30 minutes."
        ]
    );
    let elsewhere = bot.posts_in("C0STATUS");
    assert_eq!(elsewhere.len(), 1, "{elsewhere:#?}");
    assert!(
        elsewhere[0].starts_with("📣 *Update on RB-1* (checkout-api) from <@U0ALICE> _(also posted on the status page)_: <https://slack.com/archives/C0INCIDENTS/p"),
        "the stakeholders get a link to the thread: {}",
        elsewhere[0]
    );
    let calls = page.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[2].method, "PATCH");
    assert_eq!(
        calls[2].body["incident"]["status"], "monitoring",
        "the page keeps its status"
    );
    assert_eq!(
        calls[2].body["incident"]["body"],
        "Checkout is back to normal; we keep watching for 30 minutes."
    );
    bot.card_now(&card);

    // Resolved: the page has no incident left for this rollback, so the form offers no box, and
    // a forged submission that ticks it anyway is refused beside the field.
    bot.click(ALICE, Button::Resolve(rb(1))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.thread(&card);
    bot.click(ALICE, Button::PostUpdate(rb(1))).await;
    let modal = bot.expect_modal();
    assert!(!modal.to_string().contains("status_page"), "{modal:#}");
    let answer = bot
        .submit_ticking(
            ALICE,
            &modal,
            &[("update", "Post-mortem on Monday.")],
            &[("status_page", "yes")],
        )
        .await;
    assert_eq!(
        answer.unwrap()["errors"]["update"],
        "The status page has no open incident for *RB-1* (the run has not started, it is a drill, or it is resolved), so nothing was posted. Post the update without the status page."
    );
    // An empty update is answered beside the field too.
    let answer = bot.submit(ALICE, &modal, &[("update", "   ")]).await;
    assert_eq!(
        answer.unwrap()["errors"]["update"],
        "Write the update: what changed, and what happens next."
    );
    bot.settle().await;
    assert_eq!(page.calls().len(), 4, "the resolve only");
    assert!(bot.thread(&card).is_empty());
    assert!(bot.unseen().is_empty(), "{:#?}", bot.unseen());
}

crate::also_on_embedded_store!(reminders_ask_the_requester_until_someone_marks_the_failure_resolved);

/// A note is for the timeline: anyone in the rollback's channel adds one, also after the end;
/// it is in the post-mortem draft with who and when, escaped; nothing is posted for it; an
/// empty note or one from another channel is refused and changes nothing.
#[tokio::test]
async fn a_note_goes_on_the_timeline_and_into_the_post_mortem() {
    let bot = Rollbot::start().await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);

    let noted = bot
        .slash(
            CAROL,
            "note RB-1 the errors stopped at 03:02 <!channel>, before the health check",
        )
        .await;
    assert_eq!(
        noted,
        "📝 Noted on *RB-1*'s timeline, with your name and the time; it is in the post-mortem draft (`/rollback postmortem RB-1`). Nobody else was notified."
    );
    bot.settle().await;
    assert_eq!(
        bot.slash(CAROL, "note RB-1   ").await,
        "The note on *RB-1* has no words; nothing was added. Write it after the number: `/rollback note RB-1 what you saw or decided`."
    );
    let elsewhere = bot.slash_in(MALLORY, "C0ELSEWHERE", "note RB-1 pwned").await;
    assert!(elsewhere.contains("RB-1"), "{elsewhere}");
    assert!(!elsewhere.starts_with("📝"), "{elsewhere}");
    assert!(
        bot.slash(CAROL, "note RB-99 lost")
            .await
            .contains("There is no rollback *RB-99*")
    );
    bot.settle().await;

    let postmortem = bot.slash(ALICE, "postmortem RB-1").await;
    assert!(
        // The draft is Markdown (its `<` written `&lt;`), shown in a Slack code block (escaped again).
        postmortem.contains(
            "| @U0CAROL noted: “the errors stopped at 03:02 &amp;lt;!channel&amp;gt;, before the health check” |"
        ),
        "{postmortem}"
    );
    assert!(!postmortem.contains("<!channel>"), "{postmortem}");
    assert!(!postmortem.contains("pwned"), "{postmortem}");
}
