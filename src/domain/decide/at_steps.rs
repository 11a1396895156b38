//! Who may act on a rollback stopped at a step (a gate, a phrase, an interruption, a failure,
//! an abort), and what an abort does at each point of a run.
use super::*;

/// Abort: at a pause or an interruption it ends the run at once; while a step runs, it asks the
/// process running it to stop the step (the run ends as aborted once it has); between steps
/// (queued to go on) it ends the run before the next starts.
pub(super) fn decide_abort(
    rollback: &Rollback,
    index: usize,
    actor: &Actor,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    let aborted = || Event::Aborted {
        index,
        by: actor.user.clone(),
    };
    match &rollback.state {
        State::Interrupted { step } | State::Paused { step } if *step == index => {}
        State::Running if let Some(abort) = &rollback.abort_requested => {
            return Err(Refusal::AbortUnderWay {
                id: rollback.id,
                by: abort.by.clone(),
            });
        }
        State::Running if rollback.step_in_flight() == Some(index) => {
            may_abort(rollback, actor, policy)?;
            return Ok(vec![Event::AbortRequested {
                index,
                by: actor.user.clone(),
            }]);
        }
        State::Running | State::Queued if !rollback.steps.is_empty() && rollback.resume_step() == Some(index) => {}
        State::Running | State::Queued if !rollback.steps.is_empty() => {
            return Err(Refusal::StaleStep {
                id: rollback.id,
                clicked: index,
                waiting: rollback.step_in_flight().or(rollback.resume_step()).unwrap_or(index),
            });
        }
        State::Paused { .. } => {
            paused_step(rollback, index)?;
        }
        State::Interrupted { .. } => {
            interrupted_step(rollback, index)?;
        }
        _ => {
            return Err(Refusal::NotPaused {
                id: rollback.id,
                state: rollback.state.clone(),
            });
        }
    }
    may_abort(rollback, actor, policy)?;
    Ok(vec![aborted()])
}

/// Who may abort: whoever may pass its gates (requester, approvers), and the roles
/// `[safety] abort_roles` names.
pub(super) fn may_abort(rollback: &Rollback, actor: &Actor, policy: &Policy) -> Result<(), Refusal> {
    if policy.abort_roles.iter().any(|role| actor.roles.contains(role)) {
        return Ok(());
    }
    gate_keeper(rollback, actor).map_err(|refusal| match refusal {
        unknown @ Refusal::MembershipUnknown { .. } => unknown,
        _ => Refusal::NotAllowedToAbort {
            id: rollback.id,
            abort_roles: policy.abort_roles.clone(),
        },
    })
}

/// Who may pass a gate, confirm a destructive step or abort: the requester, anyone who may
/// approve now, and for a rollback that needed no approval, everyone on its ladder.
pub(super) fn gate_keeper(rollback: &Rollback, actor: &Actor) -> Result<(), Refusal> {
    let on_ladder = rollback.approvals_required == 0 && rollback.ladder.iter().any(|l| actor.roles.contains(&l.role));
    if actor.user == rollback.request.requester || on_ladder || approving_role(rollback, actor).is_ok() {
        return Ok(());
    }
    match approving_role(rollback, actor) {
        Err(unknown @ Refusal::MembershipUnknown { .. }) => Err(unknown),
        _ => Err(Refusal::NotAllowedAtGate { id: rollback.id }),
    }
}

/// The two-person rule: whatever the severity, a gate or a destructive step is passed by
/// someone other than the requester, unless the configuration turned the rule off.
pub(super) fn second_person(rollback: &Rollback, actor: &Actor, index: usize) -> Result<(), Refusal> {
    if rollback.second_person && actor.user == rollback.request.requester {
        return Err(Refusal::SecondPersonNeeded {
            id: rollback.id,
            step: index,
            name: rollback
                .plan
                .steps
                .get(index)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            destructive: rollback.plan.steps.get(index).is_some_and(|s| s.confirm.is_some()),
        });
    }
    Ok(())
}

/// The step a person decides about after the run stopped there: interrupted, failed or aborted.
pub(super) fn stopped_step(rollback: &Rollback, index: usize) -> Result<(), Refusal> {
    match rollback.state {
        State::Failed { step, .. } | State::Aborted { step, .. } if step == index => Ok(()),
        State::Failed { step, .. } | State::Aborted { step, .. } => Err(Refusal::StaleStep {
            id: rollback.id,
            clicked: index,
            waiting: step,
        }),
        _ => interrupted_step(rollback, index),
    }
}

pub(super) fn interrupted_step(rollback: &Rollback, index: usize) -> Result<(), Refusal> {
    match rollback.state {
        State::Interrupted { step } if step == index => Ok(()),
        State::Interrupted { step } => Err(Refusal::StaleStep {
            id: rollback.id,
            clicked: index,
            waiting: step,
        }),
        _ => Err(Refusal::NotPaused {
            id: rollback.id,
            state: rollback.state.clone(),
        }),
    }
}

pub(super) fn paused_step(rollback: &Rollback, index: usize) -> Result<&crate::domain::PlanStep, Refusal> {
    match rollback.state {
        State::Paused { step } if step == index => Ok(&rollback.plan.steps[index]),
        State::Paused { step } => Err(Refusal::StaleStep {
            id: rollback.id,
            clicked: index,
            waiting: step,
        }),
        _ => Err(Refusal::NotPaused {
            id: rollback.id,
            state: rollback.state.clone(),
        }),
    }
}
