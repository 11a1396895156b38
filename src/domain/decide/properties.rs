use super::*;
use crate::domain::TeamId;
use crate::domain::fixtures::*;
use proptest::prelude::*;

const PEOPLE: [&str; 8] = [
    REQUESTER,
    ON_CALL,
    ON_CALL_2,
    TEAM_LEAD,
    OUTSIDER,
    DEVOPS_LEAD,
    ENG_MANAGER,
    CTO,
];

fn who() -> impl Strategy<Value = Actor> {
    prop_oneof![
        proptest::sample::select(PEOPLE.to_vec()).prop_map(actor),
        Just(Actor::system()),
        // Someone from another workspace, and a person whose groups could not be read.
        proptest::sample::select(PEOPLE.to_vec()).prop_map(|user| Actor {
            team: Some(TeamId("T0OTHER".into())),
            ..actor(user)
        }),
        proptest::sample::select(PEOPLE.to_vec()).prop_map(|user| Actor {
            roles: Default::default(),
            unresolved_roles: ["on_call".to_owned(), "devops_lead".to_owned()].into(),
            ..actor(user)
        }),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let step = 0usize..4;
    prop_oneof![
        Just(Action::Approve),
        Just(Action::Reject {
            reason: Some("no".into())
        }),
        Just(Action::Cancel),
        Just(Action::EscalateNow),
        (1usize..4).prop_map(|level| Action::Escalate { level }),
        Just(Action::Expire),
        Just(Action::StartRun),
        step.clone().prop_map(|index| Action::StartStep { index }),
        step.clone().prop_map(|index| Action::FinishStep {
            index,
            result: ok_result("")
        }),
        step.clone().prop_map(|index| Action::Continue { index }),
        step.clone().prop_map(|index| Action::Confirm {
            index,
            phrase: "checkout-api".into()
        }),
        step.clone().prop_map(|index| Action::Abort { index }),
        step.clone().prop_map(|index| Action::RetryStep { index }),
        step.prop_map(|index| Action::SkipStep { index }),
        Just(Action::Interrupt),
        Just(Action::MarkResolved),
    ]
}

/// Distinct people (never the requester, unless allowed) whose approval is for this plan.
fn valid_approvals(rollback: &Rollback) -> usize {
    let people: std::collections::BTreeSet<&UserId> = rollback
        .approvals
        .iter()
        .filter(|a| a.plan_digest == rollback.plan_digest)
        .filter(|a| rollback.allow_self_approval || a.by != rollback.request.requester)
        .map(|a| &a.by)
        .collect();
    people.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// No sequence of actions by anyone, rollbot included, starts a run or a step without
    /// the approvals the policy froze into the request.
    #[test]
    fn nothing_runs_without_the_policys_approvals(
        severity in proptest::sample::select(vec![Severity::High, Severity::Medium, Severity::Low]),
        two_needed in any::<bool>(),
        steps in proptest::collection::vec((who(), action()), 0..40),
    ) {
        let mut policy = policy();
        // Low needs no approval by default (the decision matrix); here it is made to need one.
        let rules = policy.severities.get_mut(&severity).unwrap();
        rules.approvals = if two_needed { 2 } else { rules.approvals.max(1) };
        if rules.approvers.is_empty() {
            rules.approvers = vec!["team_lead".into()];
        }
        let mut story = Story::requested_with(policy, severity, Some("bad deploy"));
        let required = story.rollback.approvals_required as usize;
        prop_assert!(required >= 1);
        for (actor, action) in steps {
            let _ = story.try_act(&actor, action);
            let ran = story.history.iter().any(|r| matches!(r.event, Event::RunStarted | Event::StepStarted { .. }));
            let queued = !matches!(
                story.rollback.state,
                State::AwaitingApproval | State::Rejected { .. } | State::Cancelled { .. } | State::Expired
            );
            if ran || queued {
                prop_assert!(
                    valid_approvals(&story.rollback) >= required,
                    "{:?} with {} valid approval(s) of {required}: {:#?}",
                    story.rollback.state,
                    valid_approvals(&story.rollback),
                    story.history
                );
            }
        }
    }
}
