use super::*;
use crate::domain::fixtures::*;
use crate::domain::{SeverityPolicy, StepOutcome, TeamId};
use std::fmt::Write;

const PEOPLE: [(&str, &str); 8] = [
    ("requester (on_call)", REQUESTER),
    ("on_call", ON_CALL),
    ("on_call #2", ON_CALL_2),
    ("team_lead", TEAM_LEAD),
    ("devops_lead", DEVOPS_LEAD),
    ("eng_manager", ENG_MANAGER),
    ("cto", CTO),
    ("outsider", OUTSIDER),
];

fn outcome(result: Result<(), Refusal>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(refusal) => format!("refused: {}", crate::slack::messages::refusal(&refusal).text),
    }
}

/// Every severity × escalation level × who clicks × self-approval × quorum the defaults
/// produce, with the outcome each person sees. Reviewed once, pinned as a snapshot.
#[test]
fn approval_matrix() {
    let mut table = String::new();
    for severity in Severity::ALL {
        // Critical and low need no approval (the decision matrix): nothing waits, nobody joins.
        let unapproved = SeverityPolicy::default_for(severity).approvals == 0;
        let levels = if unapproved { 0 } else { policy().ladder(severity).len() };
        for allow_self in [false, true] {
            for quorum in [1, 2] {
                if unapproved && (allow_self || quorum == 2) {
                    continue;
                }
                let mut policy = policy();
                let defaults = SeverityPolicy::default_for(severity);
                let approvals = if defaults.approvals == 0 { 0 } else { quorum };
                policy.severities.insert(
                    severity,
                    SeverityPolicy {
                        allow_self_approval: allow_self,
                        approvals,
                        ..defaults
                    },
                );
                for level in 0..=levels {
                    if severity == Severity::Critical && level > 0 {
                        continue;
                    }
                    let _ = writeln!(
                        table,
                        "## {severity}, level {level}, self-approval {allow_self}, quorum {quorum}"
                    );
                    for (label, user) in PEOPLE {
                        let mut story = Story::requested_with(policy.clone(), severity, Some("bad deploy"));
                        story.reach_level(level);
                        let first = outcome(story.try_act(&actor(user), Action::Approve));
                        let state = story.rollback.state.name();
                        let _ = writeln!(table, "{label:>20} approves: {first} → {state}");
                    }
                }
            }
        }
    }
    insta::assert_snapshot!(table);
}

#[test]
fn levels_open_when_their_time_comes_and_a_late_timer_catches_up() {
    let mut story = Story::requested(Severity::High, None);
    let escalate = |level| Action::Escalate { level };
    let at = |minutes| super::super::fixtures::at(minutes);
    let system = Actor::system();
    let policy = story.policy.clone();
    assert!(matches!(
        decide(Some(&story.rollback), &escalate(1), &system, &policy, at(29)),
        Err(Refusal::OutOfOrder { .. })
    ));
    let events = decide(Some(&story.rollback), &escalate(2), &system, &policy, at(75)).unwrap();
    assert_eq!(
        events,
        vec![
            Event::Escalated {
                level: 1,
                role: "devops_lead".into(),
                by: None
            },
            Event::Escalated {
                level: 2,
                role: "eng_manager".into(),
                by: None
            },
        ],
        "after a restart, one late timer opens every level that is due"
    );
    story.try_act(&actor(REQUESTER), Action::EscalateNow).unwrap();
    assert!(
        matches!(
            decide(Some(&story.rollback), &escalate(1), &system, &policy, at(30)),
            Err(Refusal::OutOfOrder { .. })
        ),
        "already open"
    );
    assert!(matches!(
        decide(Some(&story.rollback), &Action::Expire, &system, &policy, at(239)),
        Err(Refusal::OutOfOrder { .. })
    ));
    assert_eq!(
        decide(Some(&story.rollback), &Action::Expire, &system, &policy, at(240)),
        Ok(vec![Event::Expired])
    );
    assert_eq!(
        decide(
            Some(&story.rollback),
            &Action::EscalateNow,
            &actor(OUTSIDER),
            &policy,
            at(1)
        ),
        Err(Refusal::NotAllowedToEscalate { id: RollbackId(1) })
    );
}

#[test]
fn gates_and_destructive_steps_wait_for_an_eligible_person() {
    let mut story = Story::requested(Severity::High, None);
    story.rollback.plan = crate::domain::fixtures::plan_with_gates();
    story.rollback.plan_digest = story.rollback.plan.digest();
    let story = story
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result(""))
        .step(1, ok_result(""));
    let mut story = story.act(&Actor::system(), Action::StartStep { index: 2 });
    assert_eq!(
        story.rollback.state,
        State::Paused { step: 2 },
        "a gate pauses instead of starting"
    );
    assert_eq!(
        story.try_act(&actor(OUTSIDER), Action::Continue { index: 2 }),
        Err(Refusal::NotAllowedAtGate { id: RollbackId(1) })
    );
    assert!(matches!(
        story.try_act(
            &actor(REQUESTER),
            Action::Confirm {
                index: 2,
                phrase: "x".into()
            }
        ),
        Err(Refusal::OutOfOrder { .. })
    ));
    assert_eq!(
        story.try_act(&actor(REQUESTER), Action::Continue { index: 2 }),
        Err(Refusal::SecondPersonNeeded {
            id: RollbackId(1),
            step: 2,
            name: story.rollback.plan.steps[2].name.clone(),
            destructive: false,
        }),
        "the two-person rule: the requester does not pass their own gate"
    );
    let mut alone = story.clone();
    alone.rollback.second_person = false;
    alone
        .try_act(&actor(REQUESTER), Action::Continue { index: 2 })
        .expect("with the rule turned off, the requester may");
    story.try_act(&actor(ON_CALL), Action::Continue { index: 2 }).unwrap();
    assert_eq!(story.rollback.state, State::Queued);
    let story = story.act(&Actor::system(), Action::StartRun).step(2, ok_result(""));
    let mut story = story.act(&Actor::system(), Action::StartStep { index: 3 });
    assert_eq!(story.rollback.state, State::Paused { step: 3 });
    assert_eq!(
        story.try_act(
            &actor(ON_CALL),
            Action::Confirm {
                index: 3,
                phrase: "confirm_full_restore".into()
            }
        ),
        Err(Refusal::WrongPhrase { id: RollbackId(1) })
    );
    assert_eq!(
        story.try_act(&actor(TEAM_LEAD), Action::Abort { index: 3 }),
        Err(Refusal::NotAllowedToAbort {
            id: RollbackId(1),
            abort_roles: vec![]
        })
    );
    story
        .try_act(
            &actor(ON_CALL),
            Action::Confirm {
                index: 3,
                phrase: " CONFIRM_FULL_RESTORE ".into(),
            },
        )
        .unwrap();
    let story = story.act(&Actor::system(), Action::StartRun).step(3, ok_result(""));
    assert_eq!(story.rollback.state, State::Succeeded);
}

#[test]
fn an_interrupted_step_is_never_rerun_by_itself() {
    let running = || {
        Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
    };
    // Between steps nothing is in doubt: the run is simply queued again.
    let story = running()
        .step(0, ok_result(""))
        .act(&Actor::system(), Action::Interrupt);
    assert_eq!(story.rollback.state, State::Queued);
    assert_eq!(story.rollback.next_step(), None, "queued, not running");

    let mut story = running()
        .act(&Actor::system(), Action::StartStep { index: 0 })
        .act(&Actor::system(), Action::Interrupt);
    assert_eq!(story.rollback.state, State::Interrupted { step: 0 });
    assert_eq!(
        story.rollback.steps[0].result.as_ref().map(|r| r.outcome),
        Some(StepOutcome::Interrupted)
    );
    assert!(
        matches!(
            story.try_act(&Actor::system(), Action::StartRun),
            Err(Refusal::OutOfOrder { .. })
        ),
        "the executor cannot pick it up"
    );
    assert_eq!(
        story.try_act(&actor(OUTSIDER), Action::RetryStep { index: 0 }),
        Err(Refusal::NotAllowedAtGate { id: RollbackId(1) })
    );
    assert_eq!(
        story.try_act(&actor(ON_CALL), Action::RetryStep { index: 1 }),
        Err(Refusal::StaleStep {
            id: RollbackId(1),
            clicked: 1,
            waiting: 0
        })
    );
    story.try_act(&actor(ON_CALL), Action::RetryStep { index: 0 }).unwrap();
    let story = story.act(&Actor::system(), Action::StartRun);
    assert_eq!(story.rollback.next_step(), Some(0), "retry runs the same step again");
    let story = story.step(0, ok_result("")).step(1, ok_result(""));
    assert_eq!(story.rollback.state, State::Succeeded);

    let mut skipped = running()
        .step(0, ok_result(""))
        .act(&Actor::system(), Action::StartStep { index: 1 });
    skipped.try_act(&Actor::system(), Action::Interrupt).unwrap();
    skipped
        .try_act(&actor(REQUESTER), Action::SkipStep { index: 1 })
        .unwrap();
    assert_eq!(
        skipped.rollback.state,
        State::Succeeded,
        "skipping the last step ends the run"
    );

    let mut aborted = running()
        .act(&Actor::system(), Action::StartStep { index: 0 })
        .act(&Actor::system(), Action::Interrupt);
    aborted.try_act(&actor(ON_CALL), Action::Abort { index: 0 }).unwrap();
    assert_eq!(
        aborted.rollback.state,
        State::Aborted {
            step: 0,
            by: UserId(ON_CALL.into())
        }
    );
}

#[test]
fn an_unreadable_group_refuses_instead_of_guessing() {
    let mut story = Story::requested(Severity::High, None);
    let mut unsure = actor(OUTSIDER);
    unsure.unresolved_roles.insert("on_call".into());
    assert_eq!(
        story.try_act(&unsure, Action::Approve),
        Err(Refusal::MembershipUnknown {
            id: Some(RollbackId(1)),
            roles: vec!["on_call".into()]
        })
    );
    assert_eq!(story.rollback.state, State::AwaitingApproval);
}

#[test]
fn quorum_needs_distinct_people_and_the_same_approver_twice_counts_once() {
    let mut policy = policy();
    policy.severities.get_mut(&Severity::High).unwrap().approvals = 2;
    let mut story = Story::requested_with(policy, Severity::High, None);
    story.try_act(&actor(ON_CALL), Action::Approve).unwrap();
    assert_eq!(story.rollback.state, State::AwaitingApproval);
    assert_eq!(
        story.try_act(&actor(ON_CALL), Action::Approve),
        Err(Refusal::AlreadyApprovedByYou {
            id: RollbackId(1),
            needed: 2,
            have: 1
        })
    );
    story.try_act(&actor(ON_CALL_2), Action::Approve).unwrap();
    assert_eq!(story.rollback.state, State::Queued);
    assert_eq!(story.rollback.valid_approvals(), 2);
}

#[test]
fn critical_is_queued_at_once_and_flags_a_review() {
    let story = Story::requested(Severity::Critical, None);
    assert_eq!(story.rollback.state, State::Queued);
    assert!(story.rollback.review_required);
    assert_eq!(story.rollback.approvals_required, 0);
}

#[test]
fn requests_are_refused_outside_the_policy() {
    let request = |severity, reason: Option<&str>, channel: &str, who: Actor| {
        let mut request = request(severity, reason);
        request.channel = ChannelId(channel.into());
        decide(None, &Action::Request { request, plan: plan() }, &who, &policy(), at(0)).map(|_| ())
    };
    assert_eq!(request(Severity::High, None, CHANNEL, actor(REQUESTER)), Ok(()));
    assert_eq!(
        request(Severity::High, None, "C0RANDOM", actor(REQUESTER)),
        Err(Refusal::WrongChannel {
            allowed: vec![ChannelId(CHANNEL.into())]
        })
    );
    assert_eq!(
        request(Severity::Low, None, CHANNEL, actor(REQUESTER)),
        Err(Refusal::ReasonRequired {
            severity: Severity::Low
        })
    );
    assert_eq!(
        request(Severity::Low, Some("   "), CHANNEL, actor(REQUESTER)),
        Err(Refusal::ReasonRequired {
            severity: Severity::Low
        }),
        "a blank reason is no reason"
    );
    assert_eq!(
        request(Severity::Low, Some("flag misfired"), CHANNEL, actor(REQUESTER)),
        Ok(())
    );
    assert_eq!(
        request(Severity::High, Some(&"x".repeat(501)), CHANNEL, actor(REQUESTER)),
        Err(Refusal::ReasonTooLong { max: 500 })
    );
    let mut foreign = actor(REQUESTER);
    foreign.team = Some(TeamId("T0OTHER".into()));
    assert_eq!(
        request(Severity::High, None, CHANNEL, foreign),
        Err(Refusal::WrongWorkspace)
    );

    let mut restricted = policy();
    restricted.requester_roles = Some(vec!["on_call".into()]);
    let action = Action::Request {
        request: request_fixture(),
        plan: plan(),
    };
    assert!(decide(None, &action, &actor(REQUESTER), &restricted, at(0)).is_ok());
    assert_eq!(
        decide(None, &action, &actor(OUTSIDER), &restricted, at(0)),
        Err(Refusal::NotARequester {
            roles: vec!["on_call".into()]
        })
    );
}

fn request_fixture() -> RollbackRequest {
    request(Severity::High, None)
}

#[test]
fn reject_and_cancel_rules() {
    let mut story = Story::requested(Severity::High, None);
    assert_eq!(
        story.try_act(&actor(REQUESTER), Action::Reject { reason: None }),
        Err(Refusal::RequesterCannotReject { id: RollbackId(1) })
    );
    assert!(matches!(
        story.try_act(&actor(OUTSIDER), Action::Reject { reason: None }),
        Err(Refusal::NotAnApprover { .. })
    ));
    assert_eq!(
        story.try_act(&actor(OUTSIDER), Action::Cancel),
        Err(Refusal::NotAllowedToCancel { id: RollbackId(1) })
    );
    story
        .try_act(
            &actor(ON_CALL),
            Action::Reject {
                reason: Some("not the cause".into()),
            },
        )
        .unwrap();
    assert_eq!(
        story.rollback.state,
        State::Rejected {
            by: UserId(ON_CALL.into()),
            reason: Some("not the cause".into())
        }
    );
    assert!(matches!(
        story.try_act(&actor(ON_CALL_2), Action::Approve),
        Err(Refusal::NotAwaitingApproval { .. })
    ));
    assert!(matches!(
        story.try_act(&actor(REQUESTER), Action::Cancel),
        Err(Refusal::NotCancellable { .. })
    ));

    // Approved but not started: still cancellable by the requester.
    let mut story = Story::requested(Severity::High, None).approved();
    story.try_act(&actor(REQUESTER), Action::Cancel).unwrap();
    assert_eq!(
        story.rollback.state,
        State::Cancelled {
            by: UserId(REQUESTER.into())
        }
    );
    assert!(matches!(
        story.try_act(&Actor::system(), Action::StartRun),
        Err(Refusal::OutOfOrder { .. })
    ));
}

#[test]
fn people_cannot_drive_the_executor_and_the_executor_cannot_approve() {
    let mut story = Story::requested(Severity::High, None).approved();
    assert_eq!(
        story.try_act(&actor(ON_CALL), Action::StartRun),
        Err(Refusal::SystemOnly)
    );
    assert_eq!(
        story.try_act(&Actor::system(), Action::Approve),
        Err(Refusal::SystemOnly)
    );
}

#[test]
fn a_run_starts_only_with_approvals_for_this_exact_plan() {
    let mut story = Story::requested(Severity::High, None).approved();
    story.rollback.plan.steps[0].name = "tampered".into();
    assert_eq!(
        story.try_act(&Actor::system(), Action::StartRun),
        Err(Refusal::ApprovalsDoNotMatchPlan {
            id: RollbackId(1),
            valid: 1,
            needed: 1
        })
    );
    let mut story = Story::requested(Severity::High, None);
    story.rollback.state = State::Queued; // as if approval had been forged into the state
    assert!(matches!(
        story.try_act(&Actor::system(), Action::StartRun),
        Err(Refusal::ApprovalsDoNotMatchPlan { .. })
    ));
}

#[test]
fn steps_run_in_order_once_and_a_failure_stops_the_run() {
    let mut story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun);
    assert!(matches!(
        story.try_act(&Actor::system(), Action::StartStep { index: 1 }),
        Err(Refusal::OutOfOrder { .. })
    ));
    let mut story = story.act(&Actor::system(), Action::StartStep { index: 0 });
    assert!(
        matches!(
            story.try_act(&Actor::system(), Action::StartStep { index: 0 }),
            Err(Refusal::OutOfOrder { .. })
        ),
        "a started step is never started again"
    );
    let mut story = story.act(
        &Actor::system(),
        Action::FinishStep {
            index: 0,
            result: ok_result("done"),
        },
    );
    assert!(
        matches!(
            story.try_act(
                &Actor::system(),
                Action::FinishStep {
                    index: 0,
                    result: ok_result("")
                }
            ),
            Err(Refusal::OutOfOrder { .. })
        ),
        "a result is recorded once"
    );
    let story = story.step(1, failed_result(2, "error"));
    assert_eq!(
        story.rollback.state,
        State::Failed {
            step: 1,
            reason: "exited with code 2".into()
        }
    );
    assert_eq!(story.rollback.next_step(), None);

    let timed_out = StepResult {
        outcome: StepOutcome::TimedOut,
        exit_code: None,
        duration_ms: 120_000,
        output_tail: String::new(),
        detail: None,
        ..Default::default()
    };
    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, timed_out);
    assert_eq!(
        story.rollback.state,
        State::Failed {
            step: 0,
            reason: "timed out after 120s".into()
        }
    );

    let story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result(""))
        .step(1, ok_result(""));
    assert_eq!(story.rollback.state, State::Succeeded);
}

/// Every action a person can take × every kind of person, with what rollbot answers. Each
/// action is tried on a rollback (or proposal) in the state where it makes sense, so a
/// refusal here is about who asks, not about when.
#[test]
fn an_abort_while_a_step_runs_stops_it_and_nothing_after_it_starts() {
    let running = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun)
        .act(&Actor::system(), Action::StartStep { index: 0 });
    let asked = running.clone().act(&actor(ON_CALL), Action::Abort { index: 0 });
    assert_eq!(
        asked.rollback.state,
        State::Running,
        "the step is stopped by the process running it"
    );
    assert_eq!(asked.rollback.abort_requested.as_ref().map(|a| a.index), Some(0));
    assert!(matches!(
        asked.clone().try_act(&actor(REQUESTER), Action::Abort { index: 0 }),
        Err(Refusal::AbortUnderWay { .. })
    ));
    assert!(matches!(
        running.clone().try_act(&actor(OUTSIDER), Action::Abort { index: 0 }),
        Err(Refusal::NotAllowedToAbort { .. })
    ));
    assert!(matches!(
        running.clone().try_act(&actor(ON_CALL), Action::Abort { index: 1 }),
        Err(Refusal::StaleStep { .. })
    ));

    // The step ends (stopped, or it happened to succeed at that moment): the run is aborted.
    let stopped = asked.clone().act(
        &Actor::system(),
        Action::FinishStep {
            index: 0,
            result: ok_result("done anyway"),
        },
    );
    assert_eq!(
        stopped.rollback.state,
        State::Aborted {
            step: 0,
            by: UserId(ON_CALL.into())
        }
    );
    assert!(stopped.rollback.next_step().is_none(), "nothing after it starts");

    // The process running it died instead: aborted too, not left waiting as interrupted.
    let died = asked.act(&Actor::system(), Action::Interrupt);
    assert_eq!(died.rollback.state.name(), "aborted");

    // A role named in `[safety] abort_roles` may abort though it may not approve.
    let mut policy = policy();
    policy.abort_roles = vec!["incident_commander".into()];
    let mut commander = actor(OUTSIDER);
    commander.roles.insert("incident_commander".into());
    let outcome = decide(
        Some(&running.rollback),
        &Action::Abort { index: 0 },
        &commander.in_channel(CHANNEL),
        &policy,
        at(5),
    );
    assert!(
        matches!(outcome.as_deref(), Ok([Event::AbortRequested { .. }])),
        "{outcome:?}"
    );
}

#[test]
fn authorization_matrix() {
    use crate::domain::TeamId;
    use crate::domain::proposal::{Proposal, ProposalAction, ProposalId, decide_proposal};
    fn awaiting() -> Story {
        Story::requested(Severity::High, None)
    }
    fn running() -> Story {
        awaiting().approved().act(&Actor::system(), Action::StartRun)
    }
    fn gates() -> Story {
        Story::paused_at_the_gate()
    }
    fn destructive() -> Story {
        gates()
            .act(&actor(ON_CALL), Action::Continue { index: 2 })
            .act(&Actor::system(), Action::StartRun)
            .step(2, ok_result(""))
            .act(&Actor::system(), Action::StartStep { index: 3 })
    }
    fn interrupted() -> Story {
        running()
            .act(&Actor::system(), Action::StartStep { index: 0 })
            .act(&Actor::system(), Action::Interrupt)
    }
    fn step_running() -> Story {
        running().act(&Actor::system(), Action::StartStep { index: 0 })
    }
    /// Failed at its first step, which may be skipped; its runbook names a fallback.
    fn failed() -> Story {
        let mut story = awaiting();
        story.rollback.plan.steps[0].skippable = true;
        story.rollback.plan.fallback = Some("full-restore".into());
        story.rollback.plan_digest = story.rollback.plan.digest();
        story
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, crate::domain::fixtures::failed_result(1, "error"))
    }
    fn succeeded() -> Story {
        let mut policy = policy();
        policy.status_page = true;
        Story::requested_with(policy, Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result(""))
            .step(1, ok_result(""))
    }
    fn proposal() -> Proposal {
        let mut proposal = Proposal::observe(None, &alert_group(true, 1), at(0)).unwrap();
        proposal.id = ProposalId(1);
        proposal
    }
    let other_workspace = |user: &str| Actor {
        team: Some(TeamId("T0OTHER".into())),
        ..actor(user)
    };
    // Everyone acts from the incident channel except the eligible approver in the last column.
    let kinds: [(&str, Actor); 7] = [
        ("requester", actor(REQUESTER).in_channel(CHANNEL)),
        ("eligible approver", actor(ON_CALL).in_channel(CHANNEL)),
        ("approver of a later level", actor(DEVOPS_LEAD).in_channel(CHANNEL)),
        ("outsider", actor(OUTSIDER).in_channel(CHANNEL)),
        ("abort role", actor(ENG_MANAGER).in_channel(CHANNEL)),
        ("other workspace", other_workspace(ON_CALL).in_channel(CHANNEL)),
        (
            "eligible approver in another channel",
            actor(ON_CALL).in_channel("C0RANDOM"),
        ),
    ];
    type Attempt = Box<dyn Fn(&Actor) -> Result<(), Refusal>>;
    // `eng_manager` may abort any rollback (`[safety] abort_roles`) and has no other part in it.
    let on = |story: fn() -> Story, action: Action| -> Attempt {
        Box::new(move |who: &Actor| {
            let mut story = story();
            story.policy.abort_roles = vec!["eng_manager".into()];
            story.try_act(who, action.clone())
        })
    };
    // Starting is then a request like any other, decided as the engine does.
    let on_proposal = |action: ProposalAction| -> Attempt {
        Box::new(move |who: &Actor| {
            decide_proposal(&proposal(), action, who, &policy(), at(1))?;
            if action == ProposalAction::Start {
                let request = Action::Request {
                    request: request(Severity::High, None),
                    plan: plan(),
                };
                decide(None, &request, who, &policy(), at(1))?;
            }
            Ok(())
        })
    };
    // A request is filed in the channel it was typed in.
    let request_where_typed = || -> Attempt {
        Box::new(move |who: &Actor| {
            let mut request = request(Severity::High, None);
            request.channel = who.channel.clone().expect("every kind acts from a channel");
            decide(None, &Action::Request { request, plan: plan() }, who, &policy(), at(0)).map(|_| ())
        })
    };
    let actions: Vec<(&str, Attempt)> = vec![
        ("request", request_where_typed()),
        ("approve", on(awaiting, Action::Approve)),
        (
            "reject",
            on(
                awaiting,
                Action::Reject {
                    reason: Some("no".into()),
                },
            ),
        ),
        ("cancel", on(awaiting, Action::Cancel)),
        ("escalate now", on(awaiting, Action::EscalateNow)),
        (
            "confirm",
            on(
                destructive,
                Action::Confirm {
                    index: 3,
                    phrase: "CONFIRM_FULL_RESTORE".into(),
                },
            ),
        ),
        ("continue", on(gates, Action::Continue { index: 2 })),
        ("retry step", on(interrupted, Action::RetryStep { index: 0 })),
        ("skip step", on(interrupted, Action::SkipStep { index: 0 })),
        ("abort", on(interrupted, Action::Abort { index: 0 })),
        ("abort while a step runs", on(step_running, Action::Abort { index: 0 })),
        ("retry a failed step", on(failed, Action::RetryStep { index: 0 })),
        (
            "skip a failed skippable step",
            on(failed, Action::SkipStep { index: 0 }),
        ),
        ("abort at a gate", on(gates, Action::Abort { index: 2 })),
        (
            "run fallback",
            on(
                failed,
                Action::RecordFallback {
                    rollback: RollbackId(2),
                    runbook: "full-restore".into(),
                },
            ),
        ),
        (
            "post update",
            on(
                step_running,
                Action::PostUpdate {
                    text: "rolling back".into(),
                    to_status_page: false,
                },
            ),
        ),
        ("mark resolved", on(succeeded, Action::MarkResolved)),
        ("start from alert", on_proposal(ProposalAction::Start)),
        ("dismiss alert", on_proposal(ProposalAction::Dismiss)),
    ];
    let mut table = format!(
        "| action | {} |\n|---|{}\n",
        kinds.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" | "),
        "---|".repeat(kinds.len())
    );
    for (name, attempt) in &actions {
        let cells: Vec<String> = kinds
            .iter()
            .map(|(_, who)| match attempt(who) {
                Ok(()) => "ok".to_owned(),
                Err(refusal) => format!("{refusal:?}").split([' ', '(']).next().unwrap().to_owned(),
            })
            .collect();
        table += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    // rollbot's own actions are refused to every person, whoever they are.
    for (_, who) in &kinds {
        for own in [
            Action::StartRun,
            Action::Expire,
            Action::Escalate { level: 1 },
            Action::Interrupt,
        ] {
            assert_eq!(
                awaiting()
                    .try_act(who, own)
                    .err()
                    .map(|r| format!("{r:?}"))
                    .as_deref()
                    .map(|r| r.starts_with("SystemOnly") || r.starts_with("WrongWorkspace")),
                Some(true)
            );
        }
    }
    insta::assert_snapshot!(table);
}
