use super::*;
use crate::domain::fixtures::*;
use crate::domain::proposal::{AutoRequestRefused, ProposalId};
use crate::domain::{Action, Actor, ChannelId, PlanStep, StepOutcome};

fn card_json(story: &Story) -> Value {
    serde_json::to_value(card(&story.rollback, &directory(), false)).unwrap()
}

/// How each step kind reads on the card, in plans and in the thread, secrets as references.
#[test]
fn every_step_kind_as_people_read_it() {
    use crate::domain::plan::{Drift, PlanStep, SqlCheck};
    let sql = |check| StepAction::Sql {
        database: "orders".into(),
        connection: "${env:ORDERS_DATABASE_URL}".into(),
        check,
        read_only: true,
        timeout_secs: 30,
    };
    let steps = vec![
        StepAction::Http {
            method: "PATCH".into(),
            url: "https://app.launchdarkly.com/api/v2/flags/shop/new-checkout".into(),
            headers: BTreeMap::from([("Authorization".into(), "${env:LD_TOKEN}".into())]),
            body: Some(r#"{"instructions":[{"kind":"turnFlagOff"}]}"#.into()),
            expect_status: vec![200, 204],
            timeout_secs: 30,
        },
        StepAction::Health {
            url: "https://checkout.example.com/healthz".into(),
            expect_status: 200,
            body_contains: Some("ok".into()),
            within_secs: 120,
            every_ms: 5000,
        },
        sql(SqlCheck::Snapshot {
            tables: vec![],
            schema: Some("public".into()),
        }),
        sql(SqlCheck::Compare {
            default_drift: Drift::Rows(0),
            drift: BTreeMap::from([("audit_log".into(), Drift::Percent(10))]),
        }),
        sql(SqlCheck::Assert {
            query: "SELECT count(*) FROM pg_constraint WHERE contype = 'f'".into(),
            expect: ">= 3".into(),
        }),
        StepAction::Notify {
            channel: Some("C0STATUS".into()),
            text: "checkout-api <goes> into maintenance".into(),
        },
        StepAction::StatusPage {
            status: "monitoring".into(),
            message: "We are watching.".into(),
        },
    ];
    let mut story = Story::requested(Severity::High, None);
    story.rollback.plan.steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, a)| PlanStep::new(format!("Step {}", i + 1), a))
        .collect();
    insta::assert_snapshot!(plan_text(&story.rollback.plan));
    insta::assert_snapshot!(notify_step(&story.rollback, "checkout-api <goes> & comes back").text);
}

#[test]
fn a_drill_is_marked_on_its_card_and_its_steps() {
    let mut story = Story::requested(Severity::High, None);
    story.rollback.request.drill = true;
    insta::assert_json_snapshot!(card_json(&story));
    let rehearsed = StepResult {
        outcome: StepOutcome::Rehearsed,
        ..Default::default()
    };
    insta::assert_snapshot!(step_finished(&story.rollback, 0, &rehearsed).text);
}

#[test]
fn card_awaiting_approval() {
    insta::assert_json_snapshot!(card_json(&Story::requested(Severity::High, Some("bad deploy"))));
}

#[test]
fn card_approved_and_queued() {
    insta::assert_json_snapshot!(card_json(
        &Story::requested(Severity::Medium, None).act(&actor(TEAM_LEAD), Action::Approve)
    ));
}

#[test]
fn card_running_and_its_thread() {
    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result("deployment.apps/checkout-api rolled back"))
        .act(&Actor::system(), Action::StartStep { index: 1 });
    insta::assert_json_snapshot!(card_json(&story));
    insta::assert_snapshot!(
        step_finished(
            &story.rollback,
            0,
            &ok_result("deployment.apps/checkout-api rolled back")
        )
        .text
    );
}

/// A long step's card, refreshed by the process running it: how long it has run, its latest
/// lines escaped inside a code block that they cannot close.
#[test]
fn card_while_a_long_step_runs() {
    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .act(&Actor::system(), Action::StartStep { index: 0 });
    let started = story.rollback.steps[0].started_at;
    let live = LiveStep {
        index: 0,
        output: "Waiting for deployment \"checkout-api\" rollout: 1 of 3 <updated>\n```",
        at: started + chrono::Duration::seconds(754),
    };
    let message = card_while_a_step_runs(&story.rollback, &directory(), true, &live);
    assert_within_block_kit_limits(&message);
    let live_block = message.blocks.iter().find(|b| b.to_string().contains("⏱️")).unwrap();
    insta::assert_snapshot!(live_block["text"]["text"].as_str().unwrap());
    let quiet = card_while_a_step_runs(&story.rollback, &directory(), true, &LiveStep { output: "", ..live });
    assert!(
        quiet
            .blocks
            .iter()
            .any(|b| b.to_string().contains("It has written no output yet."))
    );
    assert_eq!(
        serde_json::to_value(&quiet).unwrap()["blocks"]
            .as_array()
            .unwrap()
            .len(),
        serde_json::to_value(card(&story.rollback, &directory(), true)).unwrap()["blocks"]
            .as_array()
            .unwrap()
            .len()
            + 1,
        "the card as it is, and one block more"
    );
}

#[test]
fn card_succeeded() {
    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result(""))
        .step(1, ok_result(""));
    insta::assert_json_snapshot!(card_json(&story));
    insta::assert_snapshot!(run_finished(&story.rollback).text);
}

/// Found in the playground: a drill never touches the status page, so its card must not offer
/// to resolve the page's incident or say the page is "monitoring".
#[test]
fn a_drills_card_never_speaks_of_the_status_page() {
    let mut story = Story::requested(Severity::High, None);
    story.rollback.request.drill = true;
    let story = story
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result(""))
        .step(1, ok_result(""));
    let drill = serde_json::to_value(card(&story.rollback, &directory(), true)).unwrap();
    let lines = block_lines(&drill);
    assert!(!lines.contains("Status page"), "{lines}");
    assert!(!buttons_of(&drill).contains(&"resolve"), "{:?}", buttons_of(&drill));
}

/// Found in the playground: a drill's step that was shown, not executed, read as ❌ on the card's
/// plan, as if it had failed.
#[test]
fn a_rehearsed_step_is_marked_as_rehearsed_on_the_card_not_as_failed() {
    let mut story = Story::requested(Severity::High, None);
    story.rollback.request.drill = true;
    let rehearsed = StepResult {
        outcome: StepOutcome::Rehearsed,
        ..Default::default()
    };
    let story = story
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, rehearsed);
    let lines = block_lines(&card_json(&story));
    assert!(lines.contains("🧪 1. *"), "{lines}");
    assert!(!lines.contains("❌"), "{lines}");
}

#[test]
fn card_interrupted_asks_before_a_retry_and_a_late_result_stays_late() {
    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .act(&Actor::system(), Action::StartStep { index: 0 })
        .act(&Actor::system(), Action::Interrupt);
    insta::assert_json_snapshot!(card_json(&story));
    insta::assert_snapshot!(interrupted(&story.rollback, 0, &directory()).text);
    let late = StepResult {
        outcome: StepOutcome::Interrupted,
        detail: Some(
            "stopped by the rollbot process running it: the execution lease could not be renewed in time".into(),
        ),
        output_tail: "Waiting for deployment \"checkout-api\" rollout to finish".into(),
        ..Default::default()
    };
    insta::assert_snapshot!(late_result(&story.rollback, 0, &late).text);
}

#[test]
fn card_failed_says_which_step_and_why() {
    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, failed_result(1, "error: deployment \"checkout-api\" not found"));
    insta::assert_json_snapshot!(card_json(&story));
    insta::assert_snapshot!(
        step_finished(
            &story.rollback,
            0,
            &failed_result(1, "error: deployment \"checkout-api\" not found")
        )
        .text
    );
    let timed_out = StepResult {
        outcome: StepOutcome::TimedOut,
        exit_code: None,
        duration_ms: 120_000,
        output_tail: "Waiting for deployment rollout to finish".into(),
        detail: None,
        ..Default::default()
    };
    insta::assert_snapshot!(step_finished(&story.rollback, 0, &timed_out).text);
}

#[test]
fn card_rejected_and_cancelled() {
    let rejected = Story::requested(Severity::High, None).act(
        &actor(ON_CALL),
        Action::Reject {
            reason: Some("the deploy is not the cause".into()),
        },
    );
    insta::assert_json_snapshot!(card_json(&rejected));
    let cancelled = Story::requested(Severity::High, None).act(&actor(REQUESTER), Action::Cancel);
    insta::assert_snapshot!(state_line(&cancelled.rollback));
}

/// Every state a card can show, as people read it: the notification text Slack pushes (who is
/// awaited), the state line, and the buttons it offers.
#[test]
fn every_card_state_with_its_buttons_and_notification_text() {
    let gated = Story::paused_at_the_gate;
    let running = || {
        Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .act(&Actor::system(), Action::StartStep { index: 0 })
    };
    let failed = || {
        Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, failed_result(1, "error"))
    };
    let with_fallback = || {
        let mut story = Story::requested(Severity::High, None);
        story.rollback.plan.fallback = Some("full-restore".into());
        story.rollback.plan_digest = story.rollback.plan.digest();
        story
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, failed_result(1, "error"))
    };
    let states: Vec<(&str, Story)> = vec![
        ("awaiting approval", Story::requested(Severity::High, None)),
        ("awaiting, the fallback of another", {
            let mut story = Story::requested(Severity::High, None);
            story.rollback.request.fallback_of = Some(RollbackId(3));
            story
        }),
        ("awaiting, drill", {
            let mut story = Story::requested(Severity::High, None);
            story.rollback.request.drill = true;
            story
        }),
        ("queued", Story::requested(Severity::High, None).approved()),
        ("running", running()),
        (
            "abort asked",
            running().act(&actor(ON_CALL), Action::Abort { index: 0 }),
        ),
        ("paused at a gate", gated()),
        (
            "paused before a destructive step",
            gated()
                .act(&actor(ON_CALL), Action::Continue { index: 2 })
                .act(&Actor::system(), Action::StartRun)
                .step(2, ok_result(""))
                .act(&Actor::system(), Action::StartStep { index: 3 }),
        ),
        ("interrupted", running().act(&Actor::system(), Action::Interrupt)),
        ("failed", failed()),
        ("failed, with a fallback", with_fallback()),
        (
            "failed, its fallback requested",
            with_fallback().act(
                &actor(REQUESTER),
                Action::RecordFallback {
                    rollback: RollbackId(2),
                    runbook: "full-restore".into(),
                },
            ),
        ),
        ("aborted", gated().act(&actor(ON_CALL), Action::Abort { index: 2 })),
        (
            "succeeded",
            Story::requested(Severity::High, None)
                .approved()
                .act(&Actor::system(), Action::StartRun)
                .step(0, ok_result(""))
                .step(1, ok_result("")),
        ),
        (
            "rejected",
            Story::requested(Severity::High, None).act(
                &actor(ON_CALL),
                Action::Reject {
                    reason: Some("no".into()),
                },
            ),
        ),
        (
            "cancelled",
            Story::requested(Severity::High, None).act(&actor(REQUESTER), Action::Cancel),
        ),
        ("critical", Story::requested(Severity::Critical, None)),
        ("low", Story::requested(Severity::Low, Some("typo"))),
    ];
    let mut table = String::new();
    for (name, story) in states {
        let card = serde_json::to_value(card(&story.rollback, &directory(), true)).unwrap();
        let buttons = buttons_of(&card);
        table += &format!(
            "## {name}\nnotification: {}\nbuttons: {buttons:?}\n\n",
            card["text"].as_str().unwrap()
        );
    }
    insta::assert_snapshot!(table);
}

#[test]
fn card_critical() {
    insta::assert_json_snapshot!(card_json(&Story::requested(Severity::Critical, None)));
}

#[test]
fn private_answers() {
    let story = Story::requested(Severity::High, Some("bad deploy"));
    insta::assert_snapshot!(request_acknowledged(&story.rollback, &directory()).text);
    insta::assert_snapshot!(help().text);
    insta::assert_snapshot!(plan_preview(&plan()).text);
    insta::assert_snapshot!(status(&story.rollback).text);
    insta::assert_snapshot!(list(std::slice::from_ref(&story.rollback)).text);
    insta::assert_snapshot!(internal_error("1a2b3c4d").text);
    insta::assert_snapshot!(request_outcome_unknown("1a2b3c4d").text);
}

#[test]
fn every_refusal_says_why_and_what_next() {
    let id = RollbackId(7);
    let refusals = vec![
        Refusal::WrongWorkspace,
        Refusal::WrongChannel {
            allowed: vec![ChannelId("C0INCIDENTS".into())],
        },
        Refusal::LivesInAnotherChannel {
            what: "RB-7".into(),
            channel: ChannelId("C0INCIDENTS".into()),
        },
        Refusal::NotARequester {
            roles: vec!["on_call".into()],
        },
        Refusal::ReasonRequired {
            severity: Severity::Low,
        },
        Refusal::ReasonTooLong { max: 500 },
        Refusal::NoFallback {
            id,
            runbook: "kubernetes".into(),
        },
        Refusal::FallbackNotNow {
            id,
            state: State::Interrupted { step: 1 },
        },
        Refusal::FallbackAlreadyRequested {
            id,
            fallback: RollbackId(8),
            by: UserId("U0BOB".into()),
        },
        Refusal::NotAllowedToRunFallback { id },
        Refusal::NotAllowedToAbort {
            id,
            abort_roles: vec!["incident_commander".into()],
        },
        Refusal::NotAllowedToAbort {
            id,
            abort_roles: vec![],
        },
        Refusal::TooManyOpenRequests {
            open: vec![RollbackId(3), RollbackId(4), RollbackId(9)],
        },
        Refusal::LockHeld {
            open: RollbackId(3),
            service: "checkout-api".into(),
            state: State::Running,
            requester: UserId("U0ALICE".into()),
            card: Some(("C0INCIDENTS".into(), "1700000000.000100".into())),
        },
        Refusal::UnknownService {
            service: "chekout".into(),
            suggestion: Some("checkout-api".into()),
            known: vec![],
        },
        Refusal::UnknownService {
            service: "x".into(),
            suggestion: None,
            known: vec!["checkout-api".into()],
        },
        Refusal::UnknownRunbook {
            service: "checkout-api".into(),
            runbook: "ansible".into(),
            known: vec!["kubernetes".into()],
        },
        Refusal::TargetNotTaken {
            runbook: "flags".into(),
        },
        Refusal::MissingParam {
            runbook: "kubernetes".into(),
            name: "target".into(),
            help: Some("revision".into()),
        },
        Refusal::ParamMismatch {
            name: "target".into(),
            value: "<b>".into(),
            pattern: "[0-9]+".into(),
            help: None,
        },
        Refusal::UnknownParam {
            runbook: "kubernetes".into(),
            name: "x".into(),
            suggestion: None,
            known: vec![],
        },
        Refusal::UnknownParam {
            runbook: "partial-restore".into(),
            name: "table".into(),
            suggestion: Some("tables".into()),
            known: vec!["tables".into(), "target".into()],
        },
        Refusal::MissingParam {
            runbook: "partial-restore".into(),
            name: "tables".into(),
            help: Some("comma-separated table names".into()),
        },
        Refusal::NotAChoice {
            name: "region".into(),
            value: "eu-west1".into(),
            suggestion: Some("eu-west-1".into()),
            choices: vec!["eu-west-1".into(), "us-east-1".into()],
        },
        Refusal::PlanTemplate {
            step: "Undo".into(),
            detail: "`{{ vars.x }}` is undefined".into(),
        },
        Refusal::NoStatusPage {
            incident: "p9x1k2lmn0qr".into(),
        },
        Refusal::NoSuchRollback { id: Some(id) },
        Refusal::SelfApproval { id },
        Refusal::NotAnApprover {
            id,
            severity: Severity::High,
            roles: vec!["on_call".into(), "devops_lead".into()],
        },
        Refusal::AlreadyApprovedByYou { id, needed: 2, have: 1 },
        Refusal::NotAwaitingApproval {
            id,
            state: State::Running,
            approved_by: vec![UserId(ON_CALL.into())],
        },
        Refusal::RequesterCannotReject { id },
        Refusal::NotCancellable {
            id,
            state: State::Succeeded,
        },
        Refusal::NotAllowedToCancel { id },
        Refusal::ApprovalsDoNotMatchPlan {
            id,
            valid: 0,
            needed: 1,
        },
        Refusal::SystemOnly,
        Refusal::MembershipUnknown {
            id: Some(id),
            roles: vec!["on_call".into()],
        },
        Refusal::NoHigherLevel { id },
        Refusal::NotAllowedToEscalate { id },
        Refusal::NotPaused {
            id,
            state: State::Succeeded,
        },
        Refusal::StaleStep {
            id,
            clicked: 1,
            waiting: 2,
        },
        Refusal::NotAllowedAtGate { id },
        Refusal::SecondPersonNeeded {
            id,
            step: 2,
            name: "Full restore".into(),
            destructive: true,
        },
        Refusal::WrongPhrase { id },
        Refusal::AutomaticRequestNeedsApproval {
            severity: Severity::Critical,
        },
        Refusal::AutomaticRequestTooSoon {
            service: "checkout-api".into(),
            last: RollbackId(4),
            at: at(0),
            every: std::time::Duration::from_secs(3600),
        },
        Refusal::NotSkippable {
            id: RollbackId(4),
            step: 1,
            name: "Migrate schema down".into(),
        },
        Refusal::NoSuchProposal { id: ProposalId(3) },
        Refusal::ProposalResolved {
            id: ProposalId(3),
            service: "checkout-api".into(),
        },
        Refusal::ProposalDismissed {
            id: ProposalId(3),
            by: UserId(ON_CALL.into()),
        },
        Refusal::ProposalStarted {
            id: ProposalId(3),
            rollback: id,
            by: UserId(REQUESTER.into()),
        },
    ];
    let text: Vec<String> = refusals.iter().map(|r| refusal(r).text).collect();
    insta::assert_snapshot!(text.join("\n"));
}

/// Finds every text in a message and checks Block Kit's limits on it.
fn assert_within_block_kit_limits(message: &Message) {
    assert!(message.blocks.len() <= 50, "{} blocks", message.blocks.len());
    for block in &message.blocks {
        let kind = block["type"].as_str().unwrap();
        if kind == "header" {
            assert!(block["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER_CHARS);
        }
        if let Some(text) = block["text"]["text"].as_str() {
            assert!(
                text.chars().count() <= MAX_SECTION_CHARS,
                "{kind} text of {} chars",
                text.chars().count()
            );
        }
        for field in block["fields"].as_array().into_iter().flatten() {
            assert!(field["text"].as_str().unwrap().chars().count() <= 2000);
        }
        for element in block["elements"].as_array().into_iter().flatten() {
            if let Some(value) = element["value"].as_str() {
                assert!(value.len() <= 2000);
            }
            if let Some(text) = element["text"].as_str() {
                assert!(text.chars().count() <= MAX_SECTION_CHARS);
            }
        }
    }
}

fn proposal_json(proposal: &Proposal, severity: Severity) -> Value {
    let policy = policy().severity(severity);
    let plan = Ok(plan());
    let message = proposal_card(
        proposal,
        &ProposalContext {
            plan: &plan,
            approvals: policy.approvals,
            approver_roles: &policy.approvers,
        },
    );
    assert_within_block_kit_limits(&message);
    serde_json::to_value(message).unwrap()
}

/// The action ids of a card's buttons, in order.
fn buttons_of(card: &Value) -> Vec<&str> {
    card["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .filter_map(|e| e["action_id"].as_str())
        .collect()
}

/// The text of each block of a card, one per line, as people read it.
fn block_lines(card: &Value) -> String {
    let lines: Vec<&str> = card["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"]["text"].as_str().or(b["elements"][0]["text"].as_str()))
        .collect();
    lines.join("\n")
}

fn firing_proposal() -> Proposal {
    let mut proposal = Proposal::observe(None, &alert_group(true, 2), at(0)).unwrap();
    proposal.id = ProposalId(3);
    proposal
}

#[test]
fn proposal_card_firing_offers_start_and_dismiss() {
    insta::assert_json_snapshot!(proposal_json(&firing_proposal(), Severity::High));
}

#[test]
fn proposal_card_with_the_services_other_alert_groups_folded_in() {
    let mut proposal = firing_proposal();
    for (n, name) in [
        "LatencyHigh",
        "PodCrashLooping",
        "SaturationHigh",
        "DiskFull",
        "QueueBacklog",
        "CertExpiry",
    ]
    .iter()
    .enumerate()
    {
        let group = |firing| {
            let mut group = alert_group(firing, 1 + n % 3);
            group.group_key = format!("{{}}:{{alertname=\"{name}\"}}");
            group.alerts.iter_mut().for_each(|a| a.name = (*name).into());
            group
        };
        proposal = Proposal::observe_among(&[proposal], &group(true), at(n as i64 + 1)).unwrap();
        if n == 2 {
            proposal = Proposal::observe_among(&[proposal], &group(false), at(9)).unwrap();
        }
    }
    insta::assert_snapshot!(block_lines(&proposal_json(&proposal, Severity::High)));
}

#[test]
fn proposal_card_after_people_or_the_alert_decided() {
    let proposal = firing_proposal();
    let started = Proposal {
        decision: Some(Decision::Started {
            by: UserId(REQUESTER.into()),
            at: at(2),
        }),
        rollback: Some(RollbackId(7)),
        ..proposal.clone()
    };
    let dismissed = Proposal {
        decision: Some(Decision::Dismissed {
            by: UserId(ON_CALL.into()),
            at: at(2),
        }),
        ..proposal.clone()
    };
    let resolved = Proposal::observe(Some(&proposal), &alert_group(false, 2), at(20)).unwrap();
    let skipped = Proposal {
        auto_request_refused: Some(AutoRequestRefused::Refused(Refusal::AutomaticRequestNeedsApproval {
            severity: Severity::Critical,
        })),
        severity: Severity::Critical,
        ..proposal.clone()
    };
    let texts: Vec<String> = [
        (&started, Severity::High),
        (&dismissed, Severity::High),
        (&resolved, Severity::High),
        (&skipped, Severity::Critical),
    ]
    .into_iter()
    .map(|(p, severity)| {
        let card = proposal_json(p, severity);
        let buttons = buttons_of(&card);
        format!("{}\nbuttons: {buttons:?}\n{}", card["text"], block_lines(&card))
    })
    .collect();
    insta::assert_snapshot!(texts.join("\n\n---\n\n"));
}

#[test]
fn proposal_card_without_a_plan_offers_only_dismiss() {
    let plan = Err(Refusal::MissingParam {
        runbook: "kubernetes".into(),
        name: "target".into(),
        help: Some("revision".into()),
    });
    let message = proposal_card(
        &firing_proposal(),
        &ProposalContext {
            plan: &plan,
            approvals: 1,
            approver_roles: &["on_call".into()],
        },
    );
    let json = serde_json::to_string(&message).unwrap();
    assert!(json.contains("No plan can be built from this alert:* Runbook `kubernetes` needs `target`"));
    assert!(!json.contains("start_proposal") && json.contains("dismiss_proposal"));
}

#[test]
fn a_proposal_from_a_storm_of_huge_alerts_stays_inside_block_kit_limits() {
    let mut group = alert_group(true, 20);
    for alert in &mut group.alerts {
        alert.summary = Some("<&>".repeat(2000));
        alert.name = "N".repeat(500);
    }
    group.common_labels = (0..200).map(|i| (format!("label{i}"), "&".repeat(100))).collect();
    group.target = Some("4".repeat(5000));
    group.truncated = 480;
    let proposal = Proposal::observe(None, &group, at(0)).unwrap();
    let json = proposal_json(&proposal, Severity::High).to_string();
    assert!(json.contains("…and 495 more alert(s) in this group."));
    assert!(json.contains("… (truncated)"));
}

#[test]
fn huge_content_stays_inside_block_kit_limits_with_a_visible_marker() {
    let mut story = Story::requested(Severity::High, Some(&"why ".repeat(120)));
    story.rollback.request.reason = Some("r".repeat(5000));
    story.rollback.request.target = Some("9".repeat(400));
    for i in 0..40 {
        let mut step = story.rollback.plan.steps[0].clone();
        step.name = format!("step {i} {}", "n".repeat(100));
        story.rollback.plan.steps.push(step);
    }
    let message = card(&story.rollback, &directory(), false);
    assert_within_block_kit_limits(&message);
    assert!(serde_json::to_string(&message).unwrap().contains("… (truncated)"));

    let huge_output = "line of output\n".repeat(1000);
    let finished = step_finished(&story.rollback, 0, &ok_result(&huge_output));
    assert!(finished.text.chars().count() <= MAX_SECTION_CHARS);
    assert!(finished.text.contains("(earlier output truncated)"));
    assert!(
        finished.text.trim_end_matches("```").ends_with("line of output\n"),
        "the end of the output is kept"
    );
}

/// The reminder names the point of contact in its notification text, says what the incident
/// plan asks for by then, and offers the button; an update quotes its author's words, escaped.
#[test]
fn update_reminders_and_updates_as_people_read_them() {
    let mut story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun);
    story.next_act_at(15);
    let story = story.act(&Actor::system(), Action::Remind { n: 1 });
    let first = update_reminder(&story.rollback, 1);
    assert!(first.text.contains("<@U0ALICE>"), "{}", first.text);
    assert_within_block_kit_limits(&first);
    insta::assert_json_snapshot!("first_reminder", first);
    let updated = story.act(
        &crate::domain::fixtures::actor(ON_CALL),
        Action::PostUpdate {
            text: "Rolled back to 41.\n<!channel> errors are *down*".into(),
            to_status_page: true,
        },
    );
    let third = update_reminder(&updated.rollback, 3);
    assert!(
        third.text.contains("within the hour") && third.text.contains("Last update: <@U0BOB>"),
        "{}",
        third.text
    );
    let in_thread = update_posted(&updated.rollback, 0, None);
    assert!(
        !in_thread.text.contains("<!channel>"),
        "user text cannot ping the channel"
    );
    insta::assert_snapshot!("update_in_thread", in_thread.text);
    let elsewhere = update_posted(&updated.rollback, 0, Some("https://slack.com/archives/C0INCIDENTS/p1"));
    assert!(
        elsewhere
            .text
            .contains("<https://slack.com/archives/C0INCIDENTS/p1|Thread>")
    );
    let card = card_json(&updated);
    assert!(
        block_lines(&card).contains("Last update by <@U0BOB>"),
        "{}",
        block_lines(&card)
    );
    assert!(buttons_of(&card).contains(&"post_update"));
}

#[test]
fn escaping_leaves_no_markup_from_user_text() {
    assert_eq!(escape("<!channel> & <@U1|x>"), "&lt;!channel&gt; &amp; &lt;@U1|x&gt;");
    assert_eq!(
        code_block("a```b"),
        "```a`\u{200b}``b```",
        "user text cannot close a code block"
    );
}

/// Every step of what is approved is visible: on the card when it fits, else in full in the
/// card's thread with the card saying which steps are there. Each section holds what Slack
/// takes, and every code block closes in the section it opened in.
#[test]
fn a_long_plan_is_shown_in_full_never_cut() {
    let long = |n: usize, chars: usize| {
        crate::domain::PlanStep::new(
            format!("Restore table_{n:02}"),
            crate::domain::StepAction::Command {
                argv: vec![
                    "pg_restore".into(),
                    format!("--table=table_{n:02}"),
                    format!("/backups/{}&<{n}>.dump", "x".repeat(chars)),
                ],
                env: Default::default(),
                workdir: None,
                timeout_secs: 60,
            },
        )
    };
    let mut story = Story::requested(Severity::High, None);
    story.rollback.plan.steps = (1..=30).map(|n| long(n, 400)).collect();
    story.rollback.plan.steps.push(long(31, 7000));
    story.rollback.plan_digest = story.rollback.plan.digest();
    let rollback = &story.rollback;

    let card = serde_json::to_value(card(rollback, &directory(), false)).unwrap();
    let thread: Vec<Value> = plan_in_thread(rollback)
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    assert!(!thread.is_empty(), "the plan does not fit on the card");
    let mut every_section = vec![];
    for message in std::iter::once(&card).chain(&thread) {
        let blocks = message["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{} blocks", blocks.len());
        for block in blocks.iter().filter(|b| b["type"] == "section") {
            let text = block["text"]["text"].as_str().unwrap_or_default().to_owned();
            assert!(text.chars().count() <= MAX_SECTION_CHARS, "{}", text.chars().count());
            assert!(!text.contains("(truncated)"), "nothing is cut: {text}");
            assert_eq!(text.matches("```").count() % 2, 0, "code blocks close: {text}");
            every_section.push(text);
        }
    }
    let shown = every_section.join("\n");
    for n in 1..=31 {
        assert_eq!(
            shown.matches(&format!(". *Restore table_{n:02}*")).count(),
            1,
            "step {n} is shown once"
        );
    }
    let whole = |text: &str| text.replace("\u{200b}", "");
    let longest = escape(&step_line(&rollback.plan.steps[30].action));
    let pieces: String = every_section
        .iter()
        .flat_map(|s| s.split("```").skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert!(
        whole(&pieces).contains(&longest),
        "the longest command, in order, across its parts"
    );
    let notice = card["blocks"].to_string();
    assert!(notice.contains("of 31 are not shown on this card"), "{notice}");
    insta::assert_snapshot!(
        thread
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A short plan stays on the card, and nothing goes to the thread.
    let short = Story::requested(Severity::High, None);
    assert!(plan_in_thread(&short.rollback).is_empty());
}

/// A thread that fell behind: the steps that passed, in one message that still names each.
#[test]
fn steps_said_together_keep_every_step_and_what_they_printed() {
    let mut plan = crate::domain::fixtures::plan();
    let step = plan.steps[0].clone();
    plan.steps = (0..12)
        .map(|i| PlanStep {
            name: format!("Check <table {i}>"),
            ..step.clone()
        })
        .collect();
    let story = Story::requested_plan(crate::domain::fixtures::policy(), Severity::Critical, None, plan)
        .act(&Actor::system(), Action::StartRun);
    let results = [
        ok_result("orders: 1200 rows\npayments: 830 rows\nusers: 77 rows\nall equal"),
        ok_result(""),
        ok_result("done"),
    ];
    let finished: Vec<(usize, &StepResult)> = results.iter().enumerate().collect();
    insta::assert_snapshot!(steps_finished(&story.rollback, &finished).text);
    assert_eq!(
        steps_finished(&story.rollback, &finished[..1]).text,
        step_finished(&story.rollback, 0, &results[0]).text,
        "one step alone reads as always"
    );
    let loud = ok_result(&"x".repeat(400).repeat(20));
    let many: Vec<(usize, &StepResult)> = (0..12).map(|i| (i, &loud)).collect();
    let message = steps_finished(&story.rollback, &many).text;
    assert!(message.chars().count() <= MAX_SECTION_CHARS, "{}", message.len());
    for i in 1..=12 {
        assert!(
            message.contains(&format!("{i}. *Check &lt;table {}&gt;*", i - 1)),
            "step {i} is named: {message}"
        );
    }
    assert!(message.contains("kept with each step's result"), "{message}");

    // In a drill, a step with an override says the override ran; one without says what it would run.
    let mut drill = story.clone();
    drill.rollback.request.drill = true;
    drill.rollback.plan.steps[0].drill = Some(Box::new(StepAction::Notify {
        channel: None,
        text: "rehearsal".into(),
    }));
    let rehearsed = StepResult {
        outcome: StepOutcome::Rehearsed,
        ..Default::default()
    };
    let pair = [(0, &results[0]), (1, &rehearsed)];
    let message = steps_finished(&drill.rollback, &pair).text;
    assert!(
        message.contains("1. *Check &lt;table 0&gt;* — ✅ 1.2s, exit code 0 (a drill: its drill override ran)"),
        "{message}"
    );
    assert!(
        message.contains("2. *Check &lt;table 1&gt;* — 🧪 not run (drill); it would run `kubectl rollout undo"),
        "{message}"
    );
}
