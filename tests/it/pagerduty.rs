//! Roles read from PagerDuty: whoever a schedule (or a level of an escalation policy) has on
//! call when someone clicks, found in Slack by email; a PagerDuty that cannot be read refuses,
//! as an unreadable user group does.
use crate::support::fake_pagerduty::{FakePagerDuty, PAGERDUTY_TOKEN};
use crate::support::*;

const REQUEST: &str = r#"checkout-api to 41 severity high reason "bad deploy""#;

/// The test configuration with `on_call` read from PagerDuty as `member` says.
async fn on_call_from(member: &str, pagerduty: &FakePagerDuty) -> Rollbot {
    let bot = Rollbot::start_with(|marker| {
        test_config(marker).replace(
            r#"on_call = ["U0ALICE", "U0BOB", "U0BETH"]"#,
            &format!(r#"on_call = ["{member}"]"#),
        ) + &format!("\n[pagerduty]\napi_url = \"{}\"\n", pagerduty.url)
    })
    .await;
    bot.slack.set_email(BOB, "bob@example.com");
    bot.slack.set_email(BETH, "beth@example.com");
    bot.slack.set_email(DAVE, "dave@example.com");
    bot
}

const NOT_ON_CALL: &str = "You cannot approve or reject *RB-1*: a high-severity rollback needs someone in `on_call`. The card lists who may approve.";
const UNREADABLE: &str = "rollbot could not check whether you are in `on_call` (its Slack user group or PagerDuty on-call schedule could not be read), so it did not act on *RB-1*. Nothing changed; try again in a minute.";

#[tokio::test]
async fn whoever_the_schedule_has_on_call_approves_and_an_unreadable_pagerduty_refuses() {
    let pagerduty = FakePagerDuty::start().await;
    pagerduty.on_call("PSCHED1", &[("PBOB001", "Bob", "bob@example.com")]);
    let bot = on_call_from("pagerduty:schedule:PSCHED1", &pagerduty).await;

    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("Who may approve now: whoever is on call in PagerDuty schedule PSCHED1 (`on_call`)."),
        "{}",
        card.text
    );

    bot.click(BETH, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(BETH), [NOT_ON_CALL], "Beth is not on call");
    let asked = pagerduty.calls();
    assert!(!asked.is_empty());
    for (query, authorization) in &asked {
        assert!(
            query.contains("schedule_ids%5B%5D=PSCHED1") && query.contains("include%5B%5D=users"),
            "{query}"
        );
        assert_eq!(
            authorization.as_deref(),
            Some(format!("Token token={PAGERDUTY_TOKEN}").as_str())
        );
    }
    assert_eq!(bot.email_lookups(), ["bob@example.com"]);

    // A minute on, the cache is stale and PagerDuty is down, then rate limiting: refused.
    bot.advance_secs(61);
    for outage in [503, 429] {
        pagerduty.outage(Some(outage));
        bot.click(BOB, Button::Approve(rb(1))).await;
        bot.settle().await;
        assert_eq!(bot.ephemerals(BOB), [UNREADABLE], "PagerDuty answered {outage}");
        assert!(bot.card_now(&card).text.contains("Awaiting approval"));
        assert!(
            !pagerduty.calls().is_empty(),
            "asked again rather than trusting a stale answer"
        );
    }

    // The shift hands over to Beth: Bob's right goes with it once the cache is stale.
    pagerduty.outage(None);
    pagerduty.on_call("PSCHED1", &[("PBETH01", "Beth", "beth@example.com")]);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(BOB), [NOT_ON_CALL.to_owned()], "Bob handed over");
    assert_eq!(bot.email_lookups(), ["beth@example.com"]);
    bot.click(BETH, Button::Approve(rb(1))).await;
    bot.settle().await;
    let done = bot.card_now(&card);
    assert!(done.text.contains("✅ *Succeeded*"), "{}", done.text);
    assert!(
        done.text.contains("*Approved by*\n<@U0BETH> (`on_call`)"),
        "{}",
        done.text
    );
    assert_eq!(
        pagerduty.calls().len(),
        1,
        "the next click within a minute uses the cached answer"
    );
    bot.thread(&done);
}

/// A level of an escalation policy: only who is on call at that level holds the role, and
/// someone on call without a Slack account is skipped, not a reason to refuse everyone.
#[tokio::test]
async fn a_level_of_an_escalation_policy_holds_the_role_and_a_responder_missing_from_slack_is_skipped() {
    let pagerduty = FakePagerDuty::start().await;
    pagerduty.escalation(
        "PESC001",
        &[
            (1, ("PBOB001", "Bob", "bob@example.com")),
            (2, ("PDAVE01", "Dave", "dave@example.com")),
            (2, ("PGHOST1", "Contractor", "ghost@contractor.example")),
        ],
    );
    let bot = on_call_from("pagerduty:escalation_policy:PESC001:2", &pagerduty).await;
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text.contains(
            "Who may approve now: whoever is on call at level 2 of PagerDuty escalation policy PESC001 (`on_call`)."
        ),
        "{}",
        card.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(BOB), [NOT_ON_CALL], "Bob is on call at level 1, not 2");
    let mut looked_up = bot.email_lookups();
    looked_up.sort();
    assert_eq!(looked_up, ["dave@example.com", "ghost@contractor.example"]);
    bot.click(DAVE, Button::Approve(rb(1))).await;
    bot.settle().await;
    let done = bot.card_now(&card);
    assert!(done.text.contains("✅ *Succeeded*"), "{}", done.text);
    assert!(
        pagerduty
            .calls()
            .iter()
            .all(|(q, _)| q.contains("escalation_policy_ids%5B%5D=PESC001"))
    );
    bot.thread(&done);
}

/// A key PagerDuty refuses (401) refuses the click, and the key shows nowhere in Slack.
#[tokio::test]
async fn a_refused_pagerduty_key_fails_closed_and_never_reaches_slack() {
    let pagerduty = FakePagerDuty::start().await;
    let bot = on_call_from("pagerduty:schedule:PSCHED1", &pagerduty).await;
    pagerduty.on_call("PSCHED1", &[("PBOB001", "Bob", "bob@example.com")]);
    pagerduty.outage(Some(401));
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(BOB), [UNREADABLE]);
    assert!(bot.card_now(&card).text.contains("Awaiting approval"));
    assert!(
        bot.slack
            .calls()
            .iter()
            .all(|c| !c.body.to_string().contains(PAGERDUTY_TOKEN)),
        "the key is only ever sent to PagerDuty"
    );
}

/// With an integration key, PagerDuty hears of the rollback as two change events: when its run
/// starts and when it ends, each with the rollback's facts and a link to its thread. A 429 is
/// retried after PagerDuty's `Retry-After`; a drill sends nothing.
#[tokio::test]
async fn the_rollbacks_start_and_end_are_pagerduty_change_events() {
    let pagerduty = FakePagerDuty::start().await;
    let bot = Rollbot::start_with(|marker| {
        test_config(marker)
            + &format!(
                "\n[pagerduty]\nrouting_key_env = \"PAGERDUTY_ROUTING_KEY\"\nevents_url = \"{}\"\n",
                pagerduty.events_url()
            )
    })
    .await;
    pagerduty.refuse_changes(&[429]);
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.advance_secs(6);
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let changes = pagerduty.changes();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    let started = &changes[0]["payload"];
    assert_eq!(
        started["summary"],
        "Rollback RB-1 of checkout-api to 41 started: runbook app, severity high (rollbot)"
    );
    assert_eq!(started["source"], "rollbot");
    assert_eq!(started["custom_details"]["approved_by"], serde_json::json!(["U0BOB"]));
    assert_eq!(started["custom_details"]["state"], "running");
    assert_eq!(
        changes[0]["links"][0]["href"],
        format!("https://slack.com/archives/{INCIDENTS}/p{}", card.ts.replace('.', ""))
    );
    let ended = &changes[1]["payload"];
    assert_eq!(
        ended["summary"],
        "Rollback RB-1 of checkout-api to 41 succeeded (rollbot)"
    );
    assert_eq!(ended["custom_details"]["state"], "succeeded");

    bot.slash(ALICE, "drill checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(2))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.thread(&card);
    assert!(pagerduty.changes().is_empty(), "a drill is not a change");

    // PagerDuty refuses both events for good (400): the run is not held up, and the timeline
    // says what did not get through.
    pagerduty.refuse_changes(&[400, 400]);
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(3))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let draft = bot.slash(ALICE, "postmortem RB-3").await;
    assert_eq!(
        draft.matches("A PagerDuty change event could not be delivered").count(),
        2,
        "{draft}"
    );
    assert!(pagerduty.changes().is_empty());
}

/// A role held through a Slack user group and a PagerDuty schedule, both slow: the click is
/// still answered within Slack's 3 s (the sources are read side by side, each bounded), and
/// refused rather than guessed.
#[tokio::test]
async fn slow_sources_are_read_side_by_side_within_slacks_three_seconds() {
    let pagerduty = FakePagerDuty::start().await;
    pagerduty.on_call("PSCHED1", &[("PBOB001", "Bob", "bob@example.com")]);
    let bot = on_call_from("pagerduty:schedule:PSCHED1\", \"S0ONCALL", &pagerduty).await;
    bot.slack.set_group("S0ONCALL", &[BETH]);
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.group_lookups();
    bot.email_lookups();
    pagerduty.calls();

    bot.advance_secs(61);
    pagerduty.slow(Some(std::time::Duration::from_secs(30)));
    bot.slack
        .slow("usergroups.users.list", Some(std::time::Duration::from_secs(30)));
    let asked = std::time::Instant::now();
    bot.click(BOB, Button::Approve(rb(1))).await;
    assert!(
        asked.elapsed() < std::time::Duration::from_millis(2500),
        "answered within Slack's 3 s: {:?}",
        asked.elapsed()
    );
    bot.settle().await;
    assert_eq!(bot.ephemerals(BOB), [UNREADABLE]);
    assert!(bot.card_now(&card).text.contains("Awaiting approval"));
    bot.group_lookups();
}
