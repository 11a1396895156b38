//! Issue 4: the status page follows the rollback, and never holds it up.
use crate::support::fake_statuspage::*;
use crate::support::*;
use serde_json::json;

const REQUEST: &str = r#"checkout-api to 41 severity high reason "bad deploy""#;

pub(crate) fn page_config(marker: &str, extra: &str) -> String {
    test_config(marker).replace(
        "[services.checkout-api]\n",
        "[services.checkout-api]\nstatuspage_components = [\"cmp-checkout\"]\n",
    ) + &format!("\n[statuspage]\nprovider = \"atlassian\"\npage_id = \"{PAGE_ID}\"\n{extra}\n")
}

async fn approved_and_run(bot: &Rollbot) -> Posted {
    bot.slash(ALICE, REQUEST).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    card
}

#[tokio::test]
async fn from_request_to_resolved_every_post_and_page_call_in_order() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    let card = approved_and_run(&bot).await;

    let thread = bot.thread(&card);
    assert_eq!(thread.len(), 4, "{thread:#?}");
    assert!(thread[0].starts_with("🔴 *ROLLBACK IN PROGRESS* — checkout-api (RB-1)"));
    assert!(thread[1].starts_with("✅ Steps 1–2 of 2 passed"), "{thread:#?}");
    assert!(thread[2].starts_with("✅ *ROLLBACK COMPLETE*"));
    assert!(thread[3].starts_with("📣 *Customer notice, ready to send:*"));

    let calls = page.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/v1/pages/page42/incidents")
    );
    assert_eq!(calls[0].authorization.as_deref(), Some("OAuth statuspage-key-7e1c"));
    assert_eq!(
        calls[0].body,
        json!({"incident": {
            "name": "Issues with checkout-api",
            "status": "identified",
            "body": "We are currently experiencing issues with checkout-api. We have identified the issue and are rolling back to the previous version. Impact: some requests to checkout-api may fail or be slow. Started: 03:00 UTC.",
            "component_ids": ["cmp-checkout"],
            "components": {"cmp-checkout": "partial_outage"},
            "metadata": {"rollbot": {"rollback": "RB-1"}},
        }}),
        "the metadata is what a retry looks the incident up by"
    );
    assert_eq!(page.lookups(), 1, "it looked before it opened one");
    assert_eq!(
        (calls[1].method.as_str(), calls[1].path.as_str()),
        ("PATCH", "/v1/pages/page42/incidents/inc1")
    );
    assert_eq!(calls[1].body["incident"]["status"], "monitoring");

    let done = bot.card_now(&card);
    assert_eq!(done.buttons(), ["resolve", "post_update"]);
    assert!(
        done.text
            .contains("Status page: *monitoring*. *Mark resolved* once the service is healthy"),
        "{}",
        done.text
    );

    bot.click(MALLORY, Button::Resolve(rb(1))).await;
    bot.advance(12);
    bot.click(ALICE, Button::Resolve(rb(1))).await;
    bot.click(BOB, Button::Resolve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.ephemerals(MALLORY).len(), 1);
    assert_eq!(
        bot.ephemerals(BOB),
        [
            "*RB-1* has no open incident to resolve (it is resolved already, or the rollback has not finished); nothing changed."
        ]
    );
    let calls = page.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[2].body,
        json!({"incident": {
            "status": "resolved",
            "body": "This incident has been resolved; checkout-api is operating normally.",
            "components": {"cmp-checkout": "operational"},
        }})
    );
    let draft = bot.slash(ALICE, "postmortem RB-1").await;
    for line in [
        "Status page set to identified",
        "Status page set to monitoring",
        "@U0ALICE marked the incident resolved",
        "Status page set to resolved",
    ] {
        assert!(draft.contains(line), "the post-mortem lacks {line:?}:\n{draft}");
    }
    let resolved = bot.card_now(&card);
    assert!(
        resolved
            .text
            .contains("Status page: *resolved* by <@U0ALICE> at 03:12 UTC."),
        "{}",
        resolved.text
    );
    assert!(resolved.buttons().is_empty());
    assert!(bot.thread(&card).is_empty());
}

#[tokio::test]
async fn a_failing_page_is_retried_and_never_holds_up_slack() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    page.fail_next(&[PageOutage::ServerError, PageOutage::RateLimited(7)]);
    let card = approved_and_run(&bot).await;
    assert_eq!(
        bot.thread(&card).len(),
        4,
        "the whole run reached Slack while the page was failing"
    );
    assert!(page.calls().is_empty(), "nothing reached the page yet");
    assert_eq!(page.refused()[0], 500);

    bot.ride_out(5, 300).await;
    assert_eq!(page.refused(), [500, 429]);
    let statuses: Vec<String> = page
        .calls()
        .iter()
        .map(|c| c.body["incident"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["identified", "monitoring"], "retried, in order");
    bot.card_now(&card);
}

#[tokio::test]
async fn a_page_that_refuses_for_good_is_reported_in_the_thread_and_the_rollback_completes() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    page.fail_next(&[PageOutage::Refused]);
    let card = approved_and_run(&bot).await;
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|t| t.starts_with("✅ *ROLLBACK COMPLETE*")),
        "{thread:#?}"
    );
    assert!(
        thread.contains(&"⚠️ The status page could not be set to *identified* for RB-1 (HTTP 422 Unprocessable Entity: {\"error\":\"component not found\"}). The rollback is not affected; please update the page by hand.".to_owned()),
        "{thread:#?}"
    );
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    assert_eq!(
        bot.events_with(&[("what", "page_update")]).await,
        2,
        "both page updates are on the record as undeliverable"
    );
}

#[tokio::test]
async fn the_watch_window_resolves_the_incident_by_itself() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| page_config(m, "resolve_after = \"30m\""))
        .page(page.atlassian())
        .start()
        .await;
    let card = approved_and_run(&bot).await;
    bot.thread(&card);
    bot.advance(29);
    bot.settle().await;
    assert_eq!(page.calls().len(), 2);
    bot.advance(2);
    bot.settle().await;
    assert_eq!(page.calls().last().unwrap().body["incident"]["status"], "resolved");
    let card = bot.card_now(&card);
    assert!(
        card.text
            .contains("Status page: *resolved* at the end of the watch window"),
        "{}",
        card.text
    );
}

fn webhook_config(marker: &str) -> String {
    test_config(marker) + "\n[statuspage]\nprovider = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n"
}

#[tokio::test]
async fn the_webhook_provider_signs_every_update() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(webhook_config)
        .page(page.webhook())
        .start()
        .await;
    let card = approved_and_run(&bot).await;
    bot.thread(&card);
    bot.card_now(&card);
    let calls = page.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(
            call.signature.as_deref(),
            Some(rollbot::statuspage::signature(WEBHOOK_SECRET, &call.raw).as_str())
        );
        let sent_at: u64 = call.timestamp.as_deref().expect("a timestamp").parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            now.abs_diff(sent_at) < 300,
            "a receiver refuses older ones: {sent_at} vs {now}"
        );
        assert_eq!(
            call.signature_v1.as_deref(),
            Some(rollbot::statuspage::signature_v1(WEBHOOK_SECRET, sent_at, &call.raw).as_str()),
            "the timestamp is signed with the body, so a replay cannot move it"
        );
        assert_ne!(
            call.signature_v1.as_deref(),
            Some(rollbot::statuspage::signature_v1(WEBHOOK_SECRET, sent_at + 600, &call.raw).as_str())
        );
        assert_eq!(call.body["rollback"], "RB-1");
        assert!(call.body.get("incident").is_none(), "no incident was named");
    }
    assert_eq!(
        (calls[0].body["status"].as_str(), calls[1].body["status"].as_str()),
        (Some("identified"), Some("monitoring"))
    );
    assert_ne!(
        calls[0].signature.as_deref(),
        Some(rollbot::statuspage::signature("another-secret", &calls[0].raw).as_str())
    );
}

fn page_step_config(marker: &str) -> String {
    page_config(marker, "").replace(
        r#"runbooks = ["app", "broken", "database"]"#,
        r#"runbooks = ["app", "broken", "database", "with-page"]"#,
    ) + r#"
[runbooks.with-page]
description = "Undo, then tell the public we are watching"

[[runbooks.with-page.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo" >> "$1"', "step", "{{ vars.marker }}"]

[[runbooks.with-page.steps]]
name = "Tell the public"
statuspage = { status = "monitoring", message = "The previous version of {{ service }} is back; we are watching." }
"#
}

#[tokio::test]
async fn a_statuspage_step_sets_the_status_with_its_own_words() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(page_step_config)
        .page(page.atlassian())
        .start()
        .await;
    bot.slash(ALICE, "checkout-api runbook with-page severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;

    let calls = page.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[0].method, "POST");
    assert_eq!(
        calls[1].body["incident"],
        json!({
            "status": "monitoring",
            "body": "The previous version of checkout-api is back; we are watching.",
            "components": {"cmp-checkout": "partial_outage"},
        })
    );
    assert_eq!(
        calls[2].body["incident"]["status"], "monitoring",
        "the lifecycle update after success"
    );
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("2. *Tell the public* — ✅") && m.contains("status page set to monitoring")),
        "{thread:#?}"
    );
    bot.card_now(&card);
}

#[tokio::test]
async fn a_drill_never_calls_the_status_page_nor_the_stakeholder_channels() {
    let page = FakeStatusPage::start().await;
    let config = |m: &str| {
        page_step_config(m).replace(
            "channels = [\"C0INCIDENTS\"]",
            "channels = [\"C0INCIDENTS\"]\nnotify_channels = [\"C0STATUS\"]",
        )
    };
    let bot = Rollbot::builder().config(config).page(page.atlassian()).start().await;
    bot.slash(ALICE, "drill checkout-api runbook with-page severity critical")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("2. *Tell the public* — 🧪 not run (drill); it would run `status page → monitoring")),
        "{thread:#?}"
    );
    assert!(
        thread.last().unwrap().starts_with("🧪 *Drill RB-1 ended: succeeded.*"),
        "{thread:#?}"
    );
    assert!(page.calls().is_empty(), "{:#?}", page.calls());
    assert!(bot.posts_in("C0STATUS").is_empty());
    assert!(bot.marker().is_empty(), "nothing executed");
    let calls = bot.slack.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.body.get("reply_broadcast").is_none_or(|b| b != true)),
        "a drill stays in its thread"
    );
    bot.card_now(&card);
}

#[tokio::test]
async fn an_incident_created_whose_answer_was_lost_is_not_opened_twice() {
    let page = FakeStatusPage::start().await;
    page.fail_next(&[PageOutage::CreatedAnswerLost]);
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    let card = approved_and_run(&bot).await;
    bot.advance(1);
    bot.settle().await;
    bot.thread(&card);
    bot.card_now(&card);
    assert_eq!(page.refused(), [502], "the first answer was lost");
    assert_eq!(
        page.incidents(),
        1,
        "the retry found the incident it had opened instead of opening a second public one"
    );
    let methods: Vec<String> = page.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(methods, ["PATCH"], "the retry went on to the next update: {methods:?}");
    assert!(page.lookups() >= 1);
}

/// Issue 26: a rollback that failed leaves the public incident open; once the service is healthy
/// by other means, the card resolves it.
#[tokio::test]
async fn the_status_page_is_resolved_from_the_card_after_a_failure() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    bot.slash(ALICE, "checkout-api runbook broken to 41 severity high")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 2 of 3"), "{}", failed.text);
    assert_eq!(
        failed.buttons(),
        ["retry", "escalate", "post_update", "resolve"],
        "{}",
        failed.text
    );
    assert!(
        failed
            .text
            .contains("Status page: *investigating*. The rollback did not finish"),
        "{}",
        failed.text
    );
    let before = page.calls().len();
    assert_ne!(
        page.calls().last().map(|c| c.body["incident"]["status"].clone()),
        Some(json!("resolved")),
        "the failure leaves the incident open"
    );

    bot.click(BOB, Button::Resolve(rb(1))).await;
    bot.settle().await;
    assert_eq!(page.calls().len(), before + 1);
    assert_eq!(
        page.calls().last().map(|c| c.body["incident"]["status"].clone()),
        Some(json!("resolved"))
    );
    let resolved = bot.card_now(&card);
    assert!(
        resolved.text.contains("Status page: *resolved* by <@U0BOB>"),
        "{}",
        resolved.text
    );
    assert_eq!(
        resolved.buttons(),
        ["retry", "escalate", "post_update"],
        "resolved: no more Mark resolved; an update can still be posted"
    );
    bot.thread(&card);
    bot.ephemerals(ALICE);
}

/// The incident commander opened an incident for checkout before anyone asked for a rollback:
/// rollbot carries on that one (tagged with the rollback, its other metadata kept) instead of
/// opening a second public incident, and leaves an incident about another component alone. With
/// `attach = "never"` it opens its own.
#[tokio::test]
async fn an_open_incident_for_the_same_components_is_carried_on_not_duplicated() {
    let page = FakeStatusPage::start().await;
    let checkout = page.opened_by_hand(
        "Checkout errors",
        &["cmp-cart", "cmp-checkout"],
        json!({"jira": {"key": "INC-7"}}),
    );
    page.opened_by_hand("Search is slow", &["cmp-search"], json!({}));
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    let card = approved_and_run(&bot).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let calls = page.calls();
    let sent: Vec<(&str, &str)> = calls.iter().map(|c| (c.method.as_str(), c.path.as_str())).collect();
    let on_checkout = format!("/v1/pages/page42/incidents/{checkout}");
    assert_eq!(sent, [("PATCH", on_checkout.as_str()), ("PATCH", on_checkout.as_str())]);
    assert_eq!(calls[0].body["incident"]["status"], "identified");
    assert_eq!(
        calls[0].body["incident"]["metadata"],
        json!({"jira": {"key": "INC-7"}, "rollbot": {"rollback": "RB-1"}}),
        "tagged with the rollback, the commander's own metadata kept"
    );
    assert_eq!(calls[1].body["incident"]["status"], "monitoring");
    assert_eq!(page.incidents(), 2, "no incident of its own");
    bot.click(ALICE, Button::Resolve(rb(1))).await;
    bot.settle().await;
    let calls = page.calls();
    assert_eq!(
        (calls[2].method.as_str(), calls[2].path.as_str()),
        ("PATCH", on_checkout.as_str())
    );
    assert_eq!(calls[2].body["incident"]["status"], "resolved");
    bot.card_now(&card);

    let page = FakeStatusPage::start().await;
    page.opened_by_hand("Checkout errors", &["cmp-checkout"], json!({}));
    let bot = Rollbot::builder()
        .config(|m| page_config(m, "attach = \"never\""))
        .page(page.atlassian())
        .start()
        .await;
    let card = approved_and_run(&bot).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let calls = page.calls();
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/v1/pages/page42/incidents")
    );
    assert_eq!(page.incidents(), 2, "its own, beside the commander's");
}

/// The incident commander names the incident they opened, pasting its link from the page:
/// rollbot checks before approval that the page holds it open, shows it on the card, and
/// carries that one on (tagged, its metadata kept), not the newer one for the same component.
#[tokio::test]
async fn a_request_that_names_an_incident_carries_on_that_one() {
    let page = FakeStatusPage::start().await;
    let named = page.opened_by_hand(
        "Payments degraded",
        &["cmp-payments"],
        json!({"jira": {"key": "INC-9"}}),
    );
    page.opened_by_hand("Checkout errors", &["cmp-checkout"], json!({}));
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    bot.slash(
        ALICE,
        &format!("{REQUEST} incident https://manage.statuspage.io/pages/{PAGE_ID}/incidents/{named}"),
    )
    .await;
    bot.settle().await;
    let card = bot.card_now(&bot.expect_card());
    assert!(
        card.text
            .contains(&format!("*Status page incident*\n`{named}` (carried on)")),
        "{}",
        card.text
    );
    assert!(
        !card.text.contains("*Preflight*"),
        "the page holds it open: {}",
        card.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let calls = page.calls();
    let sent: Vec<(&str, &str)> = calls.iter().map(|c| (c.method.as_str(), c.path.as_str())).collect();
    let on_named = format!("/v1/pages/page42/incidents/{named}");
    assert_eq!(sent, [("PATCH", on_named.as_str()), ("PATCH", on_named.as_str())]);
    assert_eq!(calls[0].body["incident"]["status"], "identified");
    assert_eq!(
        calls[0].body["incident"]["metadata"],
        json!({"jira": {"key": "INC-9"}, "rollbot": {"rollback": "RB-1"}}),
    );
    assert_eq!(
        calls[0].body["incident"]["components"],
        json!({"cmp-checkout": "partial_outage"}),
        "the service's components join the named incident"
    );
    assert_eq!(calls[1].body["incident"]["status"], "monitoring");
    assert_eq!(page.incidents(), 2, "no incident of its own");
    let postmortem = bot.slash(ALICE, "postmortem RB-1").await;
    assert!(postmortem.contains(&format!("`{named}`")), "{postmortem}");
}

/// A mistyped id, or an incident already resolved, is caught on the card before anyone
/// approves; approving over it says in the thread that the page was not touched.
#[tokio::test]
async fn a_named_incident_the_page_does_not_hold_open_is_caught_before_approval() {
    let page = FakeStatusPage::start().await;
    let resolved = page.opened_by_hand("Checkout errors", &["cmp-checkout"], json!({}));
    page.resolved_by_hand(&resolved);
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    bot.slash(ALICE, &format!("{REQUEST} incident {resolved}")).await;
    bot.settle().await;
    let first = bot.card_now(&bot.expect_card());
    assert!(
        first.text.contains(&format!(
            "❌ Status page incident `{resolved}` is open: “Checkout errors” is resolved: carrying it on reopens it on the public page; request again without `incident` to open a new one"
        )),
        "{}",
        first.text
    );
    assert_eq!(first.buttons()[0], "approve_despite_preflight");
    bot.slash(ALICE, "cancel RB-1").await;
    bot.settle().await;
    bot.card_now(&first);
    bot.thread(&first);

    bot.slash(ALICE, &format!("{REQUEST} incident zz9typo")).await;
    bot.settle().await;
    let card = bot.card_now(&bot.expect_card());
    assert!(
        card.text.contains("❌ Status page incident `zz9typo` is open: the page has no such incident: check the link or id, or request again without `incident` to open a new one"),
        "{}",
        card.text
    );
    bot.click(BOB, Button::ApproveDespitePreflight(rb(2))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|t| t.contains("could not be set to *identified* for RB-2 (the page has no incident `zz9typo` (named in the request), so nothing was posted to it: update the page by hand)")),
        "{thread:#?}"
    );
    assert!(
        page.calls().is_empty(),
        "nothing was opened or changed on the page: {:#?}",
        page.calls()
    );
}

/// `incident` where rollbot keeps no status page is refused, saying why; a form's incident
/// field that is not an id nor a link is refused beside it.
#[tokio::test]
async fn naming_an_incident_without_a_status_page_is_refused_and_says_why() {
    let bot = Rollbot::start().await;
    let said = bot.slash(ALICE, &format!("{REQUEST} incident p9x1k2lmn0qr")).await;
    assert_eq!(
        said,
        "rollbot keeps no status page here, so it cannot carry on incident `p9x1k2lmn0qr`. Leave `incident` out and run the command again; update the page by hand."
    );
    bot.settle().await;
    assert!(bot.rollbacks().await.is_empty(), "nothing was recorded");
}

/// `incident` typed in a command that lacks its severity is carried into the form that
/// finishes it; the form's field takes a link, and refuses beside it what is neither.
#[tokio::test]
async fn the_request_form_carries_the_named_incident_and_checks_it() {
    let page = FakeStatusPage::start().await;
    let named = page.opened_by_hand("Checkout errors", &["cmp-checkout"], json!({}));
    let bot = Rollbot::builder()
        .config(|m| page_config(m, ""))
        .page(page.atlassian())
        .start()
        .await;
    bot.slash(ALICE, &format!("checkout-api to 41 incident {named}")).await;
    let form = bot.expect_modal();
    let field = form["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "status_incident")
        .expect("the form asks for the incident")
        .clone();
    assert_eq!(field["element"]["initial_value"], named.as_str());
    assert_eq!(field["optional"], true);

    fn typed(incident: &str) -> [(&str, &str); 5] {
        [
            ("service", "checkout-api"),
            ("severity", "high"),
            ("target", "41"),
            ("reason", "bad deploy"),
            ("status_incident", incident),
        ]
    }
    let answer = bot.submit(ALICE, &form, &typed("the checkout one")).await.unwrap();
    assert_eq!(
        answer["errors"]["status_incident"],
        "`the checkout one` is not a status page incident: give its id (`incident p9x1k2lmn0qr`) or paste its link, or leave `incident` out to open a new one."
    );
    assert!(
        bot.rollbacks().await.is_empty(),
        "nothing recorded while the form has errors"
    );
    let link = format!("https://status.example.com/incidents/{named}");
    assert_eq!(bot.submit(ALICE, &form, &typed(&link)).await, None);
    bot.settle().await;
    let rollbacks = bot.rollbacks().await;
    assert_eq!(rollbacks[0].request.status_incident.as_deref(), Some(named.as_str()));
    bot.ephemerals(ALICE);
    bot.card_now(&bot.expect_card());
}

/// A webhook receiver keeps its own incidents: the one a request names reaches it with every
/// update, for it to carry on; rollbot cannot ask it, so the card checks nothing.
#[tokio::test]
async fn a_named_incident_reaches_the_webhook_receiver_with_every_update() {
    let page = FakeStatusPage::start().await;
    let bot = Rollbot::builder()
        .config(webhook_config)
        .page(page.webhook())
        .start()
        .await;
    bot.slash(ALICE, &format!("{REQUEST} incident INC-4411")).await;
    bot.settle().await;
    let card = bot.card_now(&bot.expect_card());
    assert!(!card.text.contains("*Preflight*"), "{}", card.text);
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let sent: Vec<(String, String)> = page
        .calls()
        .iter()
        .map(|c| (c.body["status"].to_string(), c.body["incident"].to_string()))
        .collect();
    let expected = [("\"identified\"", "\"INC-4411\""), ("\"monitoring\"", "\"INC-4411\"")];
    assert_eq!(sent, expected.map(|(s, i)| (s.to_owned(), i.to_owned())));
}
