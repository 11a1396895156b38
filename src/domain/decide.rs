//! `decide` is the whole rulebook, with no I/O: given a rollback (or none, for a new request),
//! an action and who takes it, it returns the events to record or a refusal that says why.
use super::plan::Plan;
use super::rollback::{Event, Rollback, RollbackRequest, State, StepOutcome, StepResult};
use super::{Actor, ChannelId, Policy, RollbackId, Severity, UserId};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Request { request: RollbackRequest, plan: Plan },
    Approve,
    Reject { reason: Option<String> },
    Cancel,
    StartRun,
    StartStep { index: usize },
    FinishStep { index: usize, result: StepResult },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Request { .. } => "request",
            Action::Approve => "approve",
            Action::Reject { .. } => "reject",
            Action::Cancel => "cancel",
            Action::StartRun => "start_run",
            Action::StartStep { .. } => "start_step",
            Action::FinishStep { .. } => "finish_step",
        }
    }
}

/// A refusal is an answer, not an error: each variant carries what the message needs to say
/// why, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    WrongWorkspace,
    WrongChannel {
        allowed: Vec<ChannelId>,
    },
    NotARequester {
        roles: Vec<String>,
    },
    ReasonRequired {
        severity: Severity,
    },
    ReasonTooLong {
        max: usize,
    },
    UnknownService {
        service: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    UnknownRunbook {
        service: String,
        runbook: String,
        known: Vec<String>,
    },
    TargetNotTaken {
        runbook: String,
    },
    MissingParam {
        runbook: String,
        name: String,
        help: Option<String>,
    },
    ParamMismatch {
        name: String,
        value: String,
        pattern: String,
        help: Option<String>,
    },
    UnknownParam {
        runbook: String,
        name: String,
    },
    PlanTemplate {
        step: String,
        detail: String,
    },
    NoSuchRollback {
        id: Option<RollbackId>,
    },
    SelfApproval {
        id: RollbackId,
    },
    NotAnApprover {
        id: RollbackId,
        severity: Severity,
        roles: Vec<String>,
    },
    AlreadyApprovedByYou {
        id: RollbackId,
        needed: u32,
        have: usize,
    },
    NotAwaitingApproval {
        id: RollbackId,
        state: State,
        approved_by: Vec<UserId>,
    },
    RequesterCannotReject {
        id: RollbackId,
    },
    NotCancellable {
        id: RollbackId,
        state: State,
    },
    NotAllowedToCancel {
        id: RollbackId,
    },
    ApprovalsDoNotMatchPlan {
        id: RollbackId,
        valid: usize,
        needed: u32,
    },
    /// Only rollbot's own executor drives runs; a person asking for this is a bug or forgery.
    SystemOnly,
    OutOfOrder {
        id: RollbackId,
        detail: String,
    },
}

pub fn decide(
    rollback: Option<&Rollback>,
    action: &Action,
    actor: &Actor,
    policy: &Policy,
    _now: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    if !actor.is_system() && !in_workspace(actor, policy) {
        return Err(Refusal::WrongWorkspace);
    }
    let Some(rollback) = rollback else {
        return match action {
            Action::Request { request, plan } => decide_request(request, plan, actor, policy),
            _ => Err(Refusal::NoSuchRollback { id: None }),
        };
    };
    let id = rollback.id;
    let is_system_action = matches!(
        action,
        Action::StartRun | Action::StartStep { .. } | Action::FinishStep { .. }
    );
    if is_system_action != actor.is_system() {
        return Err(Refusal::SystemOnly);
    }
    match action {
        Action::Request { .. } => Err(Refusal::OutOfOrder {
            id,
            detail: "already requested".into(),
        }),
        Action::Approve => {
            if rollback.state != State::AwaitingApproval {
                return Err(Refusal::NotAwaitingApproval {
                    id,
                    state: rollback.state.clone(),
                    approved_by: rollback.approvals.iter().map(|a| a.by.clone()).collect(),
                });
            }
            if actor.user == rollback.request.requester && !rollback.allow_self_approval {
                return Err(Refusal::SelfApproval { id });
            }
            let Some(role) = approving_role(rollback, actor) else {
                return Err(Refusal::NotAnApprover {
                    id,
                    severity: rollback.request.severity,
                    roles: rollback.approver_roles.clone(),
                });
            };
            if rollback
                .approvals
                .iter()
                .any(|a| a.by == actor.user && a.plan_digest == rollback.plan_digest)
            {
                return Err(Refusal::AlreadyApprovedByYou {
                    id,
                    needed: rollback.approvals_required,
                    have: rollback.valid_approvals(),
                });
            }
            Ok(vec![Event::Approved {
                by: actor.user.clone(),
                role,
                plan_digest: rollback.plan_digest.clone(),
            }])
        }
        Action::Reject { reason } => {
            if rollback.state != State::AwaitingApproval {
                return Err(Refusal::NotAwaitingApproval {
                    id,
                    state: rollback.state.clone(),
                    approved_by: rollback.approvals.iter().map(|a| a.by.clone()).collect(),
                });
            }
            if actor.user == rollback.request.requester {
                return Err(Refusal::RequesterCannotReject { id });
            }
            if approving_role(rollback, actor).is_none() {
                return Err(Refusal::NotAnApprover {
                    id,
                    severity: rollback.request.severity,
                    roles: rollback.approver_roles.clone(),
                });
            }
            let reason = clean_reason(reason.as_deref(), policy)?;
            Ok(vec![Event::Rejected {
                by: actor.user.clone(),
                reason,
            }])
        }
        Action::Cancel => {
            if !matches!(rollback.state, State::AwaitingApproval | State::Queued) {
                return Err(Refusal::NotCancellable {
                    id,
                    state: rollback.state.clone(),
                });
            }
            if actor.user != rollback.request.requester && approving_role(rollback, actor).is_none() {
                return Err(Refusal::NotAllowedToCancel { id });
            }
            Ok(vec![Event::Cancelled { by: actor.user.clone() }])
        }
        Action::StartRun => {
            if rollback.state != State::Queued {
                return Err(Refusal::OutOfOrder {
                    id,
                    detail: format!("cannot start a run in state {}", rollback.state.name()),
                });
            }
            // Execution re-checks that the approvals it holds are for this exact plan.
            let valid = rollback.valid_approvals();
            if valid < rollback.approvals_required as usize || rollback.plan.digest() != rollback.plan_digest {
                return Err(Refusal::ApprovalsDoNotMatchPlan {
                    id,
                    valid,
                    needed: rollback.approvals_required,
                });
            }
            if rollback.plan.steps.is_empty() {
                return Ok(vec![Event::RunStarted, Event::Succeeded]);
            }
            Ok(vec![Event::RunStarted])
        }
        Action::StartStep { index } => {
            if rollback.next_step() != Some(*index) {
                return Err(Refusal::OutOfOrder {
                    id,
                    detail: format!("step {} is not next", index + 1),
                });
            }
            Ok(vec![Event::StepStarted { index: *index }])
        }
        Action::FinishStep { index, result } => {
            let in_flight = rollback.state == State::Running
                && rollback
                    .steps
                    .last()
                    .is_some_and(|s| s.index == *index && s.result.is_none());
            if !in_flight {
                return Err(Refusal::OutOfOrder {
                    id,
                    detail: format!("step {} is not running", index + 1),
                });
            }
            let mut events = vec![Event::StepFinished {
                index: *index,
                result: result.clone(),
            }];
            if result.outcome != StepOutcome::Succeeded {
                events.push(Event::Failed {
                    step: *index,
                    reason: failure_reason(result),
                });
            } else if index + 1 == rollback.plan.steps.len() {
                events.push(Event::Succeeded);
            }
            Ok(events)
        }
    }
}

fn decide_request(
    request: &RollbackRequest,
    plan: &Plan,
    actor: &Actor,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    if !policy.channels.contains(&request.channel) {
        return Err(Refusal::WrongChannel {
            allowed: policy.channels.clone(),
        });
    }
    if !policy.may_request(actor) {
        return Err(Refusal::NotARequester {
            roles: policy.requester_roles.clone().unwrap_or_default(),
        });
    }
    let severity = policy.severity(request.severity);
    let reason = clean_reason(request.reason.as_deref(), policy)?;
    if severity.require_reason && reason.is_none() {
        return Err(Refusal::ReasonRequired {
            severity: request.severity,
        });
    }
    let request = RollbackRequest {
        reason,
        requester: actor.user.clone(),
        ..request.clone()
    };
    Ok(vec![Event::Requested {
        request,
        plan: plan.clone(),
        plan_digest: plan.digest(),
        approvals_required: severity.approvals,
        approver_roles: severity.approvers.clone(),
        allow_self_approval: severity.allow_self_approval,
        review_required: severity.review_required || severity.approvals == 0,
    }])
}

fn clean_reason(reason: Option<&str>, policy: &Policy) -> Result<Option<String>, Refusal> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    match reason {
        Some(r) if r.chars().count() > policy.max_reason_chars => Err(Refusal::ReasonTooLong {
            max: policy.max_reason_chars,
        }),
        other => Ok(other.map(str::to_owned)),
    }
}

/// The first role, in the policy's order, through which the actor may approve this rollback.
fn approving_role(rollback: &Rollback, actor: &Actor) -> Option<String> {
    rollback
        .approver_roles
        .iter()
        .find(|role| actor.roles.contains(*role))
        .cloned()
}

fn failure_reason(result: &StepResult) -> String {
    match (result.outcome, result.exit_code) {
        (StepOutcome::TimedOut, _) => format!("timed out after {}s", result.duration_ms / 1000),
        (StepOutcome::CouldNotStart, _) => {
            format!(
                "could not start: {}",
                result.detail.as_deref().unwrap_or("unknown error")
            )
        }
        (_, Some(code)) => format!("exited with code {code}"),
        (_, None) => result.detail.clone().unwrap_or_else(|| "killed by a signal".into()),
    }
}

fn in_workspace(actor: &Actor, policy: &Policy) -> bool {
    policy
        .workspace
        .as_ref()
        .is_none_or(|workspace| actor.team.as_ref() == Some(workspace))
}
