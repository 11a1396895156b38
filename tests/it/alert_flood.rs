//! Issue 25, item 7: an alert flood never buries a rollback. Rollback cards and their thread
//! go before proposal cards, one service's alert groups share one card, and a service files at
//! most one automatic request per interval.
use crate::alerts::{GROUP, alert, alert_config, auto_request_config, notification};
use crate::support::*;
use serde_json::Value;

const LATENCY_GROUP: &str = "{}/{service=~\"^(?:.*)$\"}:{alertname=\"LatencyHigh\", service=\"checkout-api\"}";

/// The alert configuration with `services` more services in the incident channel.
fn flood_config(marker: &str, services: usize) -> String {
    let mut config = alert_config(marker, "");
    for n in 1..=services {
        config.push_str(&format!(
            "\n[services.svc-{n:02}]\nrunbooks = [\"app\"]\nvars = {{ marker = \"{marker}\" }}\n"
        ));
    }
    config
}

fn firing_for(service: &str, name: &str) -> Value {
    let group = format!("{{}}:{{alertname=\"{name}\", service=\"{service}\"}}");
    notification(
        &group,
        vec![alert(name, service, "page", true, &format!("{service}-1"))],
    )
}

fn group_of(group: &str, name: &str, firing: bool) -> Value {
    notification(group, vec![alert(name, "checkout-api", "page", firing, "pod-1")])
}

#[tokio::test]
async fn a_rollback_card_goes_before_a_backlog_of_proposal_cards() {
    let bot = Rollbot::start_with(|m| flood_config(m, 12)).await;
    for n in 1..=12 {
        let (status, answer) = bot
            .alertmanager(&firing_for(&format!("svc-{n:02}"), "HighErrorRate"))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    // The outbox takes the burst: the first card goes out, the rest wait for the channel.
    bot.app.delivery.run_once().await.unwrap();

    let answer = bot
        .slash(ALICE, "checkout-api to 41 severity high reason checkout is down")
        .await;
    assert!(answer.contains("RB-1"), "{answer}");
    bot.settle().await;

    let posts = bot.posts_in(INCIDENTS);
    assert_eq!(posts.len(), 13, "every card is posted in the end: {posts:#?}");
    let rollback_at = posts
        .iter()
        .position(|p| p.contains("RB-1"))
        .expect("the rollback's card");
    assert!(
        rollback_at <= 1,
        "the rollback's card waited behind {rollback_at} proposal cards: {posts:#?}"
    );
    assert_eq!(
        posts.iter().filter(|p| p.starts_with("Proposed rollback")).count(),
        12,
        "{posts:#?}"
    );
    bot.ephemerals(ALICE);
}

#[tokio::test]
async fn a_services_alert_groups_share_one_proposal_card() {
    let bot = Rollbot::start_with(|m| flood_config(m, 1)).await;
    let (_, first) = bot.alertmanager(&group_of(GROUP, "HighErrorRate", true)).await;
    bot.settle().await;
    let card = bot.expect_card();
    let (status, second) = bot.alertmanager(&group_of(LATENCY_GROUP, "LatencyHigh", true)).await;
    assert_eq!(status, 200, "{second}");
    assert!(first.contains("P-1") && second.contains("P-1"), "{first} {second}");
    // Another service's alerts are another card.
    bot.alertmanager(&firing_for("svc-01", "HighErrorRate")).await;
    bot.settle().await;
    assert_eq!(bot.proposals().await, 2);
    let other = bot.expect_card();
    assert!(other.text.contains("svc-01"), "{}", other.text);

    let now = bot.card_now(&card);
    for shown in [
        "🔥 *HighErrorRate* firing since 2026-11-22 02:50 UTC",
        "*Also firing for checkout-api* (1 more alert group):",
        "🔥 *LatencyHigh* firing since 2026-11-22 02:50 UTC",
    ] {
        assert!(now.text.contains(shown), "missing {shown:?} in {}", now.text);
    }
    assert_eq!(now.buttons(), ["start_proposal", "dismiss_proposal"]);

    // The first group resolving leaves the other firing: Start is still offered.
    bot.advance(5);
    bot.alertmanager(&group_of(GROUP, "HighErrorRate", false)).await;
    bot.settle().await;
    let now = bot.card_now(&card);
    assert!(now.text.contains("✅ *HighErrorRate* resolved"), "{}", now.text);
    assert_eq!(now.buttons(), ["start_proposal", "dismiss_proposal"], "{}", now.text);

    // Both resolved: the proposal is.
    bot.advance(5);
    bot.alertmanager(&group_of(LATENCY_GROUP, "LatencyHigh", false)).await;
    bot.settle().await;
    let now = bot.card_now(&card);
    assert!(
        now.text.contains("✅ *The alert resolved* at 03:10 UTC"),
        "{}",
        now.text
    );
    assert!(now.buttons().is_empty());
    bot.card_now(&other);
}

#[tokio::test]
async fn a_service_files_at_most_one_automatic_request_per_interval() {
    let bot = Rollbot::start_with(|m| {
        auto_request_config(m).replace("[alertmanager]\n", "[alertmanager]\nauto_request_every = \"1h\"\n")
    })
    .await;
    bot.alertmanager(&group_of(GROUP, "HighErrorRate", true)).await;
    bot.settle().await;
    // The request's card goes first: a proposal's card gives way to a rollback's.
    let request = bot.expect_card();
    let first_proposal = bot.expect_card();
    assert!(request.text.contains("RB-1"), "{}", request.text);
    assert!(
        first_proposal.text.contains("Proposed rollback"),
        "{}",
        first_proposal.text
    );
    assert_eq!(bot.rollbacks().await.len(), 1);
    bot.click(BOB, Button::Reject(rb(1))).await;
    let modal = bot.expect_modal();
    bot.submit(BOB, &modal, &[("reason", "the deploy is not the cause")])
        .await;
    bot.settle().await;
    bot.card_now(&request);
    bot.thread(&request);

    // The alert flaps: resolved, then firing again ten minutes later.
    bot.advance(5);
    bot.alertmanager(&group_of(GROUP, "HighErrorRate", false)).await;
    bot.advance(5);
    bot.alertmanager(&group_of(GROUP, "HighErrorRate", true)).await;
    bot.settle().await;
    bot.card_now(&first_proposal);
    assert_eq!(
        bot.rollbacks().await.len(),
        1,
        "no second automatic request within the hour"
    );
    let again = bot.expect_card();
    assert!(
        again.text.contains(
            "Not filed automatically: rollbot filed *RB-1* for checkout-api at 03:00 UTC and files at most one request per service every 1h."
        ),
        "{}",
        again.text
    );
    assert_eq!(
        again.buttons(),
        ["start_proposal", "dismiss_proposal"],
        "a person can still start it"
    );

    // An hour after the first, a new flap files automatically again.
    bot.advance(5);
    bot.alertmanager(&group_of(GROUP, "HighErrorRate", false)).await;
    bot.advance(50);
    bot.alertmanager(&group_of(GROUP, "HighErrorRate", true)).await;
    bot.settle().await;
    bot.card_now(&again);
    assert_eq!(bot.rollbacks().await.len(), 2);
    let second_request = bot.expect_card();
    let third = bot.expect_card();
    for card in [&third, &second_request] {
        assert!(card.text.contains("RB-2"), "{}", card.text);
    }
    bot.card_now(&third);
}

crate::also_on_embedded_store!(
    a_rollback_card_goes_before_a_backlog_of_proposal_cards,
    a_services_alert_groups_share_one_proposal_card,
    a_service_files_at_most_one_automatic_request_per_interval,
);
