//! The forms people fill in (Slack modals): the request form with its runbook fields and the
//! values discovery found, the fallback form, a destructive step's phrase.
use super::*;
use crate::domain::fixtures::*;
use crate::domain::preflight::Losses;
use crate::domain::{Action, Actor, RollbackId, StepResult};

/// Two services; one with a runbook of several parameters (a choice, a default, an optional).
fn form_catalog() -> crate::domain::plan::Catalog {
    let source = r#"
[slack]
channels = ["C0INCIDENTS"]
anyone_may_request = true
[roles]
on_call = ["U0BOB"]
team_lead = ["U0CAROL"]
[runbooks.kubernetes]
description = "Undo the deployment's rollout"
expected_duration = "5m"
params.target = { pattern = "[0-9]+", help = "revision from `kubectl rollout history`" }
[[runbooks.kubernetes.steps]]
name = "Undo"
run = ["kubectl", "rollout", "undo", "--to-revision={{ params.target }}"]
[runbooks.full-restore]
description = "Restore the database from a dump"
expected_duration = "45m"
params.target = { pattern = "[a-z0-9.-]+", help = "the dump's <file> name" }
params.region = { choices = ["eu-west-1", "us-east-1"], default = "eu-west-1" }
params.note = { pattern = "[a-z ]*", required = false }
[[runbooks.full-restore.steps]]
name = "Restore"
run = ["restore", "{{ params.target }}", "{{ params.region }}", "{{ params.note }}"]
[services.checkout-api]
runbooks = ["kubernetes", "full-restore"]
[services.payments]
runbooks = ["kubernetes"]
"#;
    crate::config::Config::parse("rollbot.toml", source).unwrap().catalog
}

/// The target's field and the line under it, as the form draws them with `offer`.
fn target_field(offer: crate::domain::discovery::Offer, typed: Option<&str>) -> Vec<Value> {
    let ask = crate::domain::plan::Ask {
        plan: crate::domain::plan::PlanRequest {
            service: "checkout-api".into(),
            target: typed.map(str::to_owned),
            ..Default::default()
        },
        ..Default::default()
    };
    let offers = [("target".to_owned(), offer)].into();
    let view = request_modal(&form_catalog(), &ask, "C0INCIDENTS", &offers, false);
    let parsed: Result<slack_morphism::prelude::SlackView, _> = serde_json::from_value(view.clone());
    assert!(parsed.is_ok(), "{:?}\n{view:#}", parsed.err());
    let blocks = view["blocks"].as_array().unwrap();
    let at = blocks.iter().position(|b| b["block_id"] == "target").unwrap();
    blocks[at..at + 2].to_vec()
}

#[test]
fn the_form_offers_discovered_targets_while_and_after_looking() {
    use crate::domain::discovery::{Choice, Found, Offer};
    let source = "kubectl rollout history deployment/checkout-api -n shop".to_owned();
    let looking = target_field(Offer::Looking { source: source.clone() }, None);
    insta::assert_json_snapshot!("target_while_looking", looking);
    let choices = vec![
        Choice {
            value: "41".into(),
            label: "41 · image checkout:1.4.2".into(),
        },
        Choice {
            value: "40".into(),
            label: "40 · image <checkout:1.4.1>".into(),
        },
    ];
    let found = || Offer::Found {
        source: source.clone(),
        found: Found {
            choices: choices.clone(),
            not_accepted: 0,
        },
    };
    insta::assert_json_snapshot!("target_found", target_field(found(), None));
    // What was typed stays as typed when it is listed (picked) and when it is not (a text field).
    let typed_listed = target_field(found(), Some("40"));
    assert_eq!(typed_listed[0]["element"]["initial_option"]["value"], "40");
    let typed_unlisted = target_field(found(), Some("12"));
    assert_eq!(typed_unlisted[0]["element"]["type"], "plain_text_input");
    assert_eq!(typed_unlisted[0]["element"]["initial_value"], "12");
    assert!(
        typed_unlisted[1]
            .to_string()
            .contains("`12`, as typed, is not among them")
    );
    let failed = Offer::Failed {
        source,
        why: "timed out after 10 s <kubectl>".into(),
    };
    insta::assert_json_snapshot!("target_discovery_failed", target_field(failed, None));
}

#[test]
fn modals_are_valid_slack_views() {
    let story = Story::requested_with(policy(), Severity::High, None);
    let mut paused = story.rollback.clone();
    paused.plan = plan_with_gates();
    let typed = crate::domain::plan::Ask {
        plan: crate::domain::plan::PlanRequest {
            service: "checkout-api".into(),
            target: Some("41".into()),
            ..Default::default()
        },
        reason: Some("bad <deploy>".into()),
        status_incident: Some("p9x1k2lmn0qr".into()),
        ..Default::default()
    };
    let catalog = form_catalog();
    let request = request_modal(&catalog, &typed, "C0INCIDENTS", &Default::default(), true);
    insta::assert_json_snapshot!(request);
    let mut stopped = Story::requested(Severity::High, Some("bad deploy"))
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, failed_result(1, "error"))
        .rollback;
    stopped.plan.fallback = Some("full-restore".into());
    let fallback = crate::domain::plan::Ask {
        plan: crate::domain::plan::PlanRequest {
            service: "checkout-api".into(),
            runbook: Some("full-restore".into()),
            ..Default::default()
        },
        severity: Some(Severity::High),
        reason: Some("Fallback for RB-1: kubernetes failed at step 1. bad deploy".into()),
        drill: false,
        fallback_of: Some(RollbackId(1)),
        detected: None,
        status_incident: None,
    };
    let fallback = fallback_modal(&stopped, &catalog, &fallback, &Default::default());
    let nothing_chosen = request_modal(
        &catalog,
        &crate::domain::plan::Ask::default(),
        "C0INCIDENTS",
        &Default::default(),
        false,
    );
    insta::assert_json_snapshot!(nothing_chosen);
    insta::assert_json_snapshot!(fallback);
    for view in [
        reject_modal(RollbackId(1)),
        confirm_modal(&paused, 3, at(0), &Losses::Undeclared),
        request,
        fallback,
        nothing_chosen,
    ] {
        let parsed: Result<slack_morphism::prelude::SlackView, _> = serde_json::from_value(view.clone());
        assert!(parsed.is_ok(), "{:?}\n{view:#}", parsed.err());
        // What goes to Slack is what its model kept: a select that redraws the form must stay one.
        let sent = serde_json::to_string(&parsed.unwrap()).unwrap();
        assert_eq!(
            sent.matches("\"dispatch_action\":true").count(),
            view.to_string().matches("\"dispatch_action\":true").count(),
            "{sent}"
        );
    }
    insta::assert_json_snapshot!(confirm_modal(&paused, 3, at(0), &Losses::Undeclared));
    for page_open in [true, false] {
        let view = update_modal(&story.rollback, page_open);
        let parsed: Result<slack_morphism::prelude::SlackView, _> = serde_json::from_value(view.clone());
        assert!(parsed.is_ok(), "{:?}\n{view:#}", parsed.err());
        assert_eq!(
            view.to_string().contains("status_page"),
            page_open,
            "the status page box only while the page has an incident"
        );
    }
    insta::assert_json_snapshot!(update_modal(&story.rollback, true));
}

/// Before typing a full restore's phrase: when the safety copy was made, what the run counted,
/// what preflight saw.
#[test]
fn a_destructive_confirmation_says_how_old_the_backup_is_and_what_it_replaces() {
    let mut plan = crate::domain::fixtures::plan_with_gates();
    plan.steps[0].name = "Safety copy of the current data".into();
    plan.steps[0].backup = true;
    let mut story = Story::requested_plan(policy(), Severity::Critical, None, plan);
    story.rollback.preflight = Some(vec![crate::domain::preflight::PreflightCheck {
        name: "The dump file is there".into(),
        outcome: crate::domain::preflight::CheckOutcome::Passed,
        detail: "1.2M, written 2026-12-01T02:07Z".into(),
        duration_ms: 12,
    }]);
    let counted = StepResult {
        snapshot: Some(crate::domain::rollback::RowCounts {
            database: "orders".into(),
            counts: [("orders".to_owned(), 1204), ("payments".to_owned(), 530)].into(),
        }),
        ..ok_result("")
    };
    let story = story
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result(""))
        .step(1, counted);
    let started = story.rollback.steps[0].started_at;
    let modal = confirm_modal(
        &story.rollback,
        3,
        started + chrono::Duration::minutes(7),
        &Losses::Undeclared,
    );
    let facts = modal["blocks"][1]["text"]["text"].as_str().unwrap().to_owned();
    insta::assert_snapshot!(facts);
    assert!(facts.contains("(6 min ago)"), "{facts}");

    let unprotected = confirm_modal(&Story::paused_at_the_gate().rollback, 3, at(0), &Losses::Undeclared);
    assert!(
        unprotected["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("⚠️ *Backup*: no step before it keeps a copy in this plan."),
        "{unprotected}"
    );
}

/// A step's `loses` count is shown between what was checked and the phrase: while it runs,
/// what it printed (as quoted lines, escaped), or that it failed, so silence never reads as
/// "nothing lost".
#[test]
fn a_destructive_confirmation_shows_what_the_step_would_undo() {
    let paused = Story::paused_at_the_gate().rollback;
    let source = || "sh -ec dumped=$(pg_restore --list \"$1\"…".to_owned();
    let shown = |losses: Losses| {
        let modal = confirm_modal(&paused, 3, at(0), &losses);
        let parsed: Result<slack_morphism::prelude::SlackView, _> = serde_json::from_value(modal.clone());
        assert!(parsed.is_ok(), "{:?}\n{modal:#}", parsed.err());
        let blocks = modal["blocks"].as_array().unwrap();
        assert_eq!(
            blocks.last().unwrap()["block_id"],
            "phrase",
            "the phrase stays last: {modal:#}"
        );
        blocks
            .iter()
            .find(|b| b["block_id"] == "losses")
            .map(|b| b["text"]["text"].as_str().unwrap().to_owned())
    };
    assert_eq!(shown(Losses::Undeclared), None);
    let counting = shown(Losses::Counting { source: source() }).unwrap();
    let counted = shown(Losses::counted(
        source(),
        "The dump was written at 2026-12-01 02:07:00 UTC.\n\norders: +1204 rows since the dump\n<!channel> *payments*: +3\n",
    ))
    .unwrap();
    let failed = shown(Losses::Failed {
        source: source(),
        why: "exited with code 2: psql: error: connection refused".into(),
    })
    .unwrap();
    assert!(
        counted.contains("&lt;!channel&gt;") && !counted.contains("<!channel>"),
        "{counted}"
    );
    insta::assert_snapshot!(format!("{counting}\n---\n{counted}\n---\n{failed}"));
}
