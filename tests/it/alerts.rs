//! Issue 9: alerts become proposals that people start or dismiss, never silent rollbacks.
use crate::support::*;
use serde_json::{Value, json};

pub(crate) const GROUP: &str = "{}/{service=~\"^(?:.*)$\"}:{alertname=\"HighErrorRate\", service=\"checkout-api\"}";

pub(crate) fn alert_config(marker: &str, extra: &str) -> String {
    test_config(marker)
        + &format!(
            "\n[alertmanager]\ntarget_label = \"previous_release\"\n{extra}\n[alertmanager.severities]\npage = \"high\"\nwarning = \"medium\"\ncritical = \"critical\"\n"
        )
}

pub(crate) fn auto_request_config(marker: &str) -> String {
    alert_config(marker, "").replace(
        "[services.checkout-api]\n",
        "[services.checkout-api]\nauto_request = true\n",
    )
}

/// One alert as Alertmanager sends it.
pub(crate) fn alert(name: &str, service: &str, severity: &str, firing: bool, instance: &str) -> Value {
    json!({
        "status": if firing { "firing" } else { "resolved" },
        "labels": {
            "alertname": name,
            "service": service,
            "severity": severity,
            "instance": instance,
            "previous_release": "41",
        },
        "annotations": {
            "summary": format!("error rate above 10% for 10 minutes on {instance}"),
            "description": "5xx / all requests",
        },
        "startsAt": "2026-11-22T02:50:00.000Z",
        "endsAt": if firing { "0001-01-01T00:00:00Z" } else { "2026-11-22T03:20:00.000Z" },
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29&g0.tab=1",
        "fingerprint": format!("fp-{instance}"),
    })
}

/// A version 4 notification of `group` carrying `alerts`, shaped as Alertmanager sends it.
pub(crate) fn notification(group: &str, alerts: Vec<Value>) -> Value {
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    json!({
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": "rollbot",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "checkout-api", "severity": "page"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": alerts,
    })
}

fn firing(instance: &str) -> Value {
    notification(
        GROUP,
        vec![alert("HighErrorRate", "checkout-api", "page", true, instance)],
    )
}

fn resolved(instance: &str) -> Value {
    notification(
        GROUP,
        vec![alert("HighErrorRate", "checkout-api", "page", false, instance)],
    )
}

impl Rollbot {
    /// Alertmanager delivers `body` with the configured bearer token.
    pub(crate) async fn alertmanager(&self, body: &Value) -> (reqwest::StatusCode, String) {
        self.alertmanager_with(Some(ALERTMANAGER_TOKEN), body.to_string()).await
    }

    async fn alertmanager_with(&self, token: Option<&str>, body: String) -> (reqwest::StatusCode, String) {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let response = self.raw_post("/hooks/alertmanager", &headers, body).await;
        (response.status(), response.text().await.unwrap())
    }

    pub(crate) async fn proposals(&self) -> i64 {
        self.count("SELECT count(*) FROM proposals").await
    }
}

/// The same alert as Grafana Alerting's webhook contact point sends it (Grafana's documented
/// payload): version 1, Alertmanager's fields and Grafana's own beside them, an offset start
/// time, and Go's zero time as the end of a firing alert.
fn from_grafana() -> Value {
    let mut alert = alert("HighErrorRate", "checkout-api", "page", true, "pod-1");
    alert["startsAt"] = json!("2026-11-22T03:50:00+01:00");
    alert["endsAt"] = json!("0001-01-01T00:00:00Z");
    alert["silenceURL"] = json!("https://grafana.example.com/alerting/silence/new?matchers=alertname%3DHighErrorRate");
    alert["dashboardURL"] = json!("");
    alert["panelURL"] = json!("");
    alert["values"] = json!({"B": 12.5, "C": 1});
    alert["valueString"] = json!("[ var='B' labels={} value=12.5 ]");
    let mut body = firing("pod-1");
    body["alerts"] = json!([alert]);
    body["version"] = json!("1");
    body["orgId"] = json!(1);
    body["title"] = json!("[FIRING:1] HighErrorRate (checkout-api page)");
    body["state"] = json!("alerting");
    body["message"] = json!("**Firing**\n\nValue: B=12.5");
    body["externalURL"] = json!("https://grafana.example.com/");
    body
}

#[tokio::test]
async fn grafana_alertings_webhook_proposes_a_rollback_as_alertmanagers_does() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let (status, answer) = bot.alertmanager(&from_grafana()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["proposals"],
        json!(["P-1"])
    );
    bot.settle().await;
    let proposal = bot.expect_card();
    assert!(
        proposal
            .text
            .contains("🔥 *HighErrorRate* firing since 2026-11-22 02:50 UTC"),
        "{}",
        proposal.text
    );
    assert_eq!(proposal.buttons(), ["start_proposal", "dismiss_proposal"]);
}

#[tokio::test]
async fn a_firing_alert_proposes_a_rollback_that_starts_as_the_clickers_own_request() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let (status, answer) = bot.alertmanager(&firing("pod-1")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["proposals"],
        json!(["P-1"])
    );
    bot.settle().await;

    let proposal = bot.expect_card();
    assert_eq!(proposal.channel, INCIDENTS);
    for shown in [
        "Proposed rollback: checkout-api",
        "🔥 *HighErrorRate* firing since 2026-11-22 02:50 UTC: error rate above 10% for 10 minutes on pod-1",
        "<http://prometheus.example.com:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29&amp;g0.tab=1|source>",
        "alertname=HighErrorRate service=checkout-api severity=page",
        "🟠 High",
        "*Target*\n41",
        "Undo release",
        "nothing runs until 1 approval(s) from `on_call`",
        "<http://alertmanager.example.com:9093|Alertmanager>",
    ] {
        assert!(proposal.text.contains(shown), "missing {shown:?} in {}", proposal.text);
    }
    assert_eq!(proposal.buttons(), ["start_proposal", "dismiss_proposal"]);
    insta::assert_snapshot!("proposal_card", redacted(&proposal.text));
    assert_eq!(bot.rollbacks().await.len(), 0, "a proposal is not a request");

    assert_eq!(bot.click(ALICE, Button::StartProposal(pr(1))).await, 200);
    bot.settle().await;
    let ack = bot.ephemerals(ALICE);
    assert!(ack[0].contains("RB-1"), "{ack:?}");
    let card = bot.expect_card();
    assert!(
        card.text.contains("Rollback RB-1") || card.text.contains("RB-1"),
        "{}",
        card.text
    );
    assert!(
        card.text.contains(&format!("<@{ALICE}>")),
        "requested by the person who clicked: {}",
        card.text
    );
    assert!(
        card.text.contains("Alert HighErrorRate (P-1): error rate above 10%"),
        "{}",
        card.text
    );
    assert_eq!(card.buttons(), ["approve", "reject", "escalate", "cancel"]);
    let proposal_now = bot.card_now(&proposal);
    assert!(
        proposal_now
            .text
            .contains(&format!("<@{ALICE}> started *RB-1* from this alert")),
        "{}",
        proposal_now.text
    );
    assert!(
        proposal_now.buttons().is_empty(),
        "a started proposal offers nothing more"
    );
    assert!(bot.marker().is_empty(), "nothing runs before the policy's approval");

    // It is an ordinary request: the requester cannot approve it, an on-call engineer can.
    bot.click(ALICE, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.ephemerals(ALICE)[0].contains("cannot approve it"));
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo 41", "health"]);
    bot.thread(&card);
    bot.card_now(&card);
    // The test clock stands at 03:00; the alert started at 02:50.
    let postmortem = bot.slash(ALICE, "postmortem RB-1").await;
    assert!(
        postmortem.contains(
            "- **Issue detected:** 02:50:00 UTC, by the alert HighErrorRate (P-1), 10m 00s before the request"
        ),
        "when monitoring saw it, from the alert: {postmortem}"
    );
}

#[tokio::test]
async fn repeated_notifications_update_one_card_and_resolution_takes_start_away() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;
    let card = bot.expect_card();

    bot.advance(5);
    let (status, answer) = bot.alertmanager(&firing("pod-1")).await;
    assert_eq!((status.as_u16(), answer.contains("P-1")), (200, true), "{answer}");
    bot.advance(5);
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;
    assert_eq!(bot.proposals().await, 1, "the group key dedupes repeated deliveries");
    let now = bot.card_now(&card);
    assert!(
        now.text
            .contains("Notified 3 time(s); first at 03:00 UTC, last at 03:10 UTC."),
        "{}",
        now.text
    );
    assert_eq!(now.buttons(), ["start_proposal", "dismiss_proposal"]);

    bot.advance(10);
    bot.alertmanager(&resolved("pod-1")).await;
    bot.settle().await;
    let now = bot.card_now(&card);
    assert!(
        now.text
            .contains("✅ *The alert resolved* at 03:20 UTC. Start is no longer offered."),
        "{}",
        now.text
    );
    assert!(
        now.text.contains("✅ *HighErrorRate* resolved at 2026-11-22 03:20 UTC"),
        "{}",
        now.text
    );
    assert!(now.buttons().is_empty());

    // Someone clicks Start on a stale copy of the card.
    bot.click(CAROL, Button::StartProposal(pr(1))).await;
    bot.settle().await;
    let refused = bot.ephemerals(CAROL);
    assert!(
        refused[0].contains("The alert behind *P-1* has resolved"),
        "{refused:?}"
    );
    assert!(refused[0].contains("/rollback checkout-api to <target>"), "{refused:?}");
    assert_eq!(bot.rollbacks().await.len(), 0);

    // The same group firing again later is a new incident: a new proposal, a new card.
    bot.advance(60);
    let (_, answer) = bot.alertmanager(&firing("pod-1")).await;
    assert!(answer.contains("P-2"), "{answer}");
    bot.settle().await;
    let again = bot.expect_card();
    assert_ne!(again.ts, card.ts);
    assert_eq!(again.buttons(), ["start_proposal", "dismiss_proposal"]);
}

#[tokio::test]
async fn a_group_of_several_alerts_is_one_card_and_unknown_services_are_counted_not_proposed() {
    captured_logs();
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let mut alerts: Vec<Value> = (1..=7)
        .map(|n| alert("HighErrorRate", "checkout-api", "warning", true, &format!("pod-{n}")))
        .collect();
    alerts[3] = alert("HighErrorRate", "checkout-api", "critical", true, "pod-4");
    alerts.push(alert("HighErrorRate", "search", "page", true, "search-1"));
    let mut no_label = alert("DiskFull", "x", "page", true, "db-1");
    no_label["labels"].as_object_mut().unwrap().remove("service");
    alerts.push(no_label);
    let (status, answer) = bot.alertmanager(&notification(GROUP, alerts)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({"proposals": ["P-1"], "unknown_services": ["search"]})
    );
    bot.settle().await;

    let card = bot.expect_card();
    assert_eq!(
        card.text.matches("🔥 *HighErrorRate* firing").count(),
        5,
        "{}",
        card.text
    );
    assert!(
        card.text.contains("…and 2 more alert(s) in this group."),
        "{}",
        card.text
    );
    assert!(
        card.text.contains("🔴 Critical"),
        "the most severe alert decides: {}",
        card.text
    );
    assert!(card.text.contains("runs *at once, without approval*"), "{}", card.text);
    assert_eq!(bot.proposals().await, 1);

    let metrics = bot.metrics().await;
    for line in [
        "rollbot_alerts_total{outcome=\"matched\"} 7",
        "rollbot_alerts_total{outcome=\"unknown_service\"} 1",
        "rollbot_alerts_total{outcome=\"no_service_label\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    let logs = captured_logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("alerts for services rollbot does not know")
                && l.contains("unknown_services=[\"search\"]")
                && l.contains("without_service_label=1")),
        "{logs}"
    );
}

#[tokio::test]
async fn only_unknown_services_are_answered_200_so_alertmanager_stops_retrying() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let body = notification(GROUP, vec![alert("HighErrorRate", "payments", "page", true, "p-1")]);
    let (status, answer) = bot.alertmanager(&body).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({"proposals": [], "unknown_services": ["payments"]})
    );
    bot.settle().await;
    assert_eq!(bot.proposals().await, 0);
    assert!(
        bot.slack.calls().is_empty(),
        "nothing is posted for a service rollbot does not know"
    );
}

#[tokio::test]
async fn forged_malformed_and_foreign_notifications_are_refused_and_change_nothing() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let body = firing("pod-1").to_string();
    let (status, _) = bot.alertmanager_with(None, body.clone()).await;
    assert_eq!(status, 401, "no token");
    let (status, _) = bot.alertmanager_with(Some("guess"), body.clone()).await;
    assert_eq!(status, 401, "wrong token");
    let (status, _) = bot.alertmanager_with(Some(API_TOKEN), body).await;
    assert_eq!(status, 401, "the API's token is not Alertmanager's");

    let (status, answer) = bot
        .alertmanager_with(Some(ALERTMANAGER_TOKEN), "{\"version\": \"4\", ".into())
        .await;
    assert_eq!(status, 400);
    assert!(answer.starts_with("not an Alertmanager notification"), "{answer}");
    assert!(answer.contains("nothing was recorded"), "{answer}");

    let mut old = firing("pod-1");
    old["version"] = json!("3");
    let (status, answer) = bot.alertmanager(&old).await;
    assert_eq!(status, 400);
    assert!(
        answer.contains("rollbot reads Alertmanager's version 4 and Grafana Alerting's version 1"),
        "{answer}"
    );

    let mut odd = firing("pod-1");
    odd["alerts"][0]["status"] = json!("exploded");
    let (status, answer) = bot.alertmanager(&odd).await;
    assert_eq!(status, 400);
    assert!(answer.contains("neither firing nor resolved"), "{answer}");

    let huge = "x".repeat(rollbot::http::MAX_BODY_BYTES + 1);
    let (status, _) = bot.alertmanager_with(Some(ALERTMANAGER_TOKEN), huge).await;
    assert_eq!(status, 413);

    bot.settle().await;
    assert_eq!(bot.proposals().await, 0);
    assert!(bot.slack.calls().is_empty());
}

#[tokio::test]
async fn without_an_alertmanager_section_the_hook_is_off() {
    let bot = Rollbot::start().await;
    let (status, answer) = bot.alertmanager(&firing("pod-1")).await;
    assert_eq!(status, 404);
    assert!(answer.contains("configure [alertmanager]"), "{answer}");
}

#[tokio::test]
async fn dismissing_closes_the_proposal_for_everyone_and_later_notifications_keep_it_closed() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;
    let card = bot.expect_card();

    bot.advance(2);
    assert_eq!(bot.click(BOB, Button::DismissProposal(pr(1))).await, 200);
    bot.settle().await;
    let now = bot.card_now(&card);
    assert!(
        now.text.contains(&format!("🔕 Dismissed by <@{BOB}> at 03:02 UTC")),
        "{}",
        now.text
    );
    assert!(now.buttons().is_empty());

    bot.click(CAROL, Button::StartProposal(pr(1))).await;
    bot.click(CAROL, Button::DismissProposal(pr(1))).await;
    bot.settle().await;
    let refused = bot.ephemerals(CAROL);
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|r| r.contains(&format!("*P-1* was dismissed by <@{BOB}>"))),
        "{refused:?}"
    );

    bot.advance(5);
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;
    let now = bot.card_now(&card);
    assert!(
        now.text.contains("Notified 2 time(s)") && now.text.contains("Dismissed by"),
        "{}",
        now.text
    );
    assert!(now.buttons().is_empty());
    assert_eq!(bot.rollbacks().await.len(), 0);
}

#[tokio::test]
async fn two_people_starting_at_once_file_one_request() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;
    let proposal = bot.expect_card();

    let (a, b) = tokio::join!(
        bot.click(ALICE, Button::StartProposal(pr(1))),
        bot.click(CAROL, Button::StartProposal(pr(1)))
    );
    assert_eq!((a, b), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    bot.settle().await;
    assert_eq!(bot.rollbacks().await.len(), 1);
    let mut answers = bot.ephemerals(ALICE);
    answers.extend(bot.ephemerals(CAROL));
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.contains("already started *RB-1* from *P-1*"))
            .count(),
        1,
        "{answers:?}"
    );
    bot.expect_card();
    bot.card_now(&proposal);
}

#[tokio::test]
async fn auto_request_files_the_request_but_nothing_runs_without_approval() {
    let bot = Rollbot::start_with(auto_request_config).await;
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;

    let proposal = bot.expect_card();
    let request = bot.expect_card();
    let (proposal, request) = if proposal.text.contains("Proposed rollback") {
        (proposal, request)
    } else {
        (request, proposal)
    };
    assert!(
        bot.card_now(&proposal)
            .text
            .contains("rollbot filed *RB-1* from this alert at 03:00 UTC (this service files requests automatically)"),
        "{}",
        bot.card_now(&proposal).text
    );
    assert!(request.text.contains("Requested by*\nrollbot"), "{}", request.text);
    assert!(
        request
            .text
            .contains("Alert HighErrorRate: error rate above 10% for 10 minutes on pod-1"),
        "{}",
        request.text
    );
    assert_eq!(request.buttons(), ["approve", "reject", "escalate", "cancel"]);
    assert!(bot.marker().is_empty(), "an automatic request still waits for approval");

    bot.advance(1);
    bot.alertmanager(&firing("pod-1")).await;
    bot.settle().await;
    assert_eq!(bot.rollbacks().await.len(), 1, "a repeat files nothing new");
    bot.card_now(&proposal);

    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo 41", "health"]);
    bot.thread(&request);
    bot.card_now(&request);
}

#[tokio::test]
async fn auto_request_never_files_a_request_that_would_run_without_approval() {
    let bot = Rollbot::start_with(auto_request_config).await;
    let body = notification(
        GROUP,
        vec![alert("HighErrorRate", "checkout-api", "critical", true, "pod-1")],
    );
    bot.alertmanager(&body).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text.contains("Not filed automatically: rollbot did not file this request by itself: a critical-severity rollback runs without approval, so a person must start it."),
        "{}",
        card.text
    );
    assert_eq!(card.buttons(), ["start_proposal", "dismiss_proposal"]);
    assert_eq!(bot.rollbacks().await.len(), 0);
    assert!(bot.marker().is_empty());
}

#[tokio::test]
async fn an_alert_without_a_target_offers_no_start_and_says_how_to_request() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let mut body = firing("pod-1");
    body["alerts"][0]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("previous_release");
    bot.alertmanager(&body).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(card.text.contains("*Target*\n(not in the alert)"), "{}", card.text);
    assert!(
        card.text
            .contains("No plan can be built from this alert:* Runbook `app` needs `target`"),
        "{}",
        card.text
    );
    assert_eq!(card.buttons(), ["dismiss_proposal"]);
}

#[tokio::test]
async fn alert_text_is_escaped_so_it_cannot_ping_or_link() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let mut body = firing("pod-1");
    body["alerts"][0]["annotations"]["summary"] = json!("<!channel> see <https://evil.example|here> & panic");
    body["alerts"][0]["generatorURL"] = json!("javascript:alert(1)");
    body["alerts"][0]["labels"]["alertname"] = json!("<@U0BOSS>");
    bot.alertmanager(&body).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; panic"),
        "{}",
        card.text
    );
    assert!(card.text.contains("*&lt;@U0BOSS&gt;*"), "{}", card.text);
    assert!(
        !card.text.contains("<!channel>") && !card.text.contains("javascript:"),
        "{}",
        card.text
    );
}

crate::also_on_embedded_store!(
    a_firing_alert_proposes_a_rollback_that_starts_as_the_clickers_own_request,
    repeated_notifications_update_one_card_and_resolution_takes_start_away,
    two_people_starting_at_once_file_one_request,
    auto_request_files_the_request_but_nothing_runs_without_approval,
    an_alert_with_a_nul_character_still_becomes_a_proposal,
);

#[tokio::test]
async fn an_alert_labelled_critical_proposes_a_high_severity_rollback_unless_the_config_maps_it() {
    let bot = Rollbot::start_with(|m| alert_config(m, "").replace("critical = \"critical\"\n", "")).await;
    let critical = notification(
        GROUP,
        vec![alert("HighErrorRate", "checkout-api", "critical", true, "pod-1")],
    );
    bot.alertmanager(&critical).await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text.contains("🟠 High") && card.text.contains("nothing runs until 1 approval(s) from `on_call`"),
        "the Prometheus convention severity=\"critical\" alone does not skip approval:\n{}",
        card.text
    );
}

#[tokio::test]
async fn an_alert_with_a_nul_character_still_becomes_a_proposal() {
    let bot = Rollbot::start_with(|m| alert_config(m, "")).await;
    let mut body = firing("pod-1");
    body["alerts"][0]["annotations"]["summary"] = json!("error rate\u{0} above 10%");
    let (status, _) = bot.alertmanager(&body).await;
    assert_eq!(status, 200, "refused, Alertmanager would send it again forever");
    bot.settle().await;
    let card = bot.expect_card();
    assert!(card.text.contains("error rate\u{FFFD} above 10%"), "{}", card.text);
}
