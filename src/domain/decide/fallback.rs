//! A runbook's fallback: after a rollback fails or is aborted, the runbook it names is requested
//! as a new rollback linked to the stopped one. The new one is decided like any request (its
//! own approvals); this rule says when the stopped one may hand the incident on, and to whom.
use super::*;
use crate::domain::plan::Ask;

/// Whether `actor` may request the fallback of `rollback` now; the fallback's runbook if so.
/// Only a run that has ended (failed or aborted) hands on: an interrupted one still holds its
/// lock and its step may have run, so it is aborted (or retried) first.
pub fn may_run_fallback<'a>(rollback: &'a Rollback, actor: &Actor, policy: &Policy) -> Result<&'a str, Refusal> {
    let id = rollback.id;
    let Some(runbook) = rollback.plan.fallback.as_deref() else {
        return Err(Refusal::NoFallback {
            id,
            runbook: rollback.plan.runbook.clone(),
        });
    };
    if !matches!(rollback.state, State::Failed { .. } | State::Aborted { .. }) {
        return Err(Refusal::FallbackNotNow {
            id,
            state: rollback.state.clone(),
        });
    }
    if let Some(link) = rollback.fallbacks.first() {
        return Err(Refusal::FallbackAlreadyRequested {
            id,
            fallback: link.rollback,
            by: link.by.clone(),
        });
    }
    if rollback.resolved.is_some() {
        return Err(Refusal::FallbackNotNow {
            id,
            state: rollback.state.clone(),
        });
    }
    may_abort(rollback, actor, policy).map_err(|refusal| match refusal {
        unknown @ Refusal::MembershipUnknown { .. } => unknown,
        _ => Refusal::NotAllowedToRunFallback { id },
    })?;
    Ok(runbook)
}

/// The request form's first answers for the fallback of `stopped`: the same service, severity,
/// channel and drill mark; the target where the fallback runbook takes one that fits its
/// pattern; a reason that says where it comes from.
pub fn fallback_ask(stopped: &Rollback, fallback: &super::super::plan::Runbook, max_reason_chars: usize) -> Ask {
    let target = stopped.request.target.clone().filter(|t| {
        fallback
            .params
            .get("target")
            .is_some_and(|spec| spec.pattern.is_match(t))
    });
    let how = match &stopped.state {
        State::Aborted { step, .. } => format!("aborted at step {}", step + 1),
        State::Failed { step, .. } => format!("failed at step {}", step + 1),
        other => other.name().to_owned(),
    };
    let mut reason = format!("Fallback for {}: {} {how}", stopped.id, stopped.plan.runbook);
    if let Some(original) = &stopped.request.reason {
        reason.push_str(". ");
        reason.push_str(original);
    }
    Ask {
        plan: super::super::plan::PlanRequest {
            service: stopped.request.service.clone(),
            runbook: Some(fallback.name.clone()),
            target,
            params: Default::default(),
        },
        severity: Some(stopped.request.severity),
        reason: Some(reason.chars().take(max_reason_chars).collect()),
        drill: stopped.request.drill,
        fallback_of: Some(stopped.id),
        detected: stopped.request.detected.clone(),
        status_incident: stopped.request.status_incident.clone(),
    }
}

/// Links the fallback rollback once it is recorded. The same link twice (a submission Slack
/// sent again) records nothing new; a second fallback filed in a race is linked too, so that
/// no rollback goes unmentioned on the card it came from.
pub(super) fn decide_record_fallback(
    rollback: &Rollback,
    fallback: RollbackId,
    runbook: &str,
    actor: &Actor,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    if let Some(link) = rollback.fallbacks.iter().find(|l| l.rollback == fallback) {
        return Err(Refusal::FallbackAlreadyRequested {
            id: rollback.id,
            fallback: link.rollback,
            by: link.by.clone(),
        });
    }
    match may_run_fallback(rollback, actor, policy) {
        Ok(_) | Err(Refusal::FallbackAlreadyRequested { .. }) => {}
        Err(refusal) => return Err(refusal),
    }
    Ok(vec![Event::FallbackRequested {
        rollback: fallback,
        runbook: runbook.to_owned(),
        by: actor.user.clone(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::*;

    fn failed_with_fallback() -> Story {
        let mut story = Story::requested(Severity::High, None);
        story.rollback.plan.fallback = Some("full-restore".into());
        story.rollback.plan_digest = story.rollback.plan.digest();
        let story = story
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, failed_result(1, "error: deployment not found"));
        assert!(matches!(story.rollback.state, State::Failed { .. }));
        story
    }

    #[test]
    fn a_failed_run_hands_on_to_its_fallback_once() {
        let story = failed_with_fallback();
        let policy = story.policy.clone();
        assert_eq!(
            may_run_fallback(&story.rollback, &actor(REQUESTER), &policy),
            Ok("full-restore")
        );
        let mut story = story.act(
            &actor(REQUESTER),
            Action::RecordFallback {
                rollback: RollbackId(2),
                runbook: "full-restore".into(),
            },
        );
        assert!(!story.rollback.awaits_person(), "the fallback takes the incident on");
        assert!(!story.rollback.incident_open(true), "its reminders stop");
        assert_eq!(
            may_run_fallback(&story.rollback, &actor(ON_CALL), &policy),
            Err(Refusal::FallbackAlreadyRequested {
                id: RollbackId(1),
                fallback: RollbackId(2),
                by: UserId(REQUESTER.into()),
            })
        );
        // The same submission again links nothing twice.
        assert!(matches!(
            story.try_act(
                &actor(REQUESTER),
                Action::RecordFallback {
                    rollback: RollbackId(2),
                    runbook: "full-restore".into(),
                },
            ),
            Err(Refusal::FallbackAlreadyRequested { .. })
        ));
    }

    #[test]
    fn only_a_stopped_run_with_a_fallback_and_only_its_people() {
        let story = failed_with_fallback();
        let policy = story.policy.clone();
        assert_eq!(
            may_run_fallback(&story.rollback, &actor(OUTSIDER), &policy),
            Err(Refusal::NotAllowedToRunFallback { id: RollbackId(1) })
        );
        let mut without = story.rollback.clone();
        without.plan.fallback = None;
        assert!(matches!(
            may_run_fallback(&without, &actor(REQUESTER), &policy),
            Err(Refusal::NoFallback { .. })
        ));
        let mut awaiting = Story::requested(Severity::High, None);
        awaiting.rollback.plan.fallback = Some("full-restore".into());
        assert!(matches!(
            may_run_fallback(&awaiting.rollback, &actor(REQUESTER), &policy),
            Err(Refusal::FallbackNotNow { .. })
        ));
    }
}
