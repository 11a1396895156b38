//! `decide` is the whole rulebook, with no I/O: given a rollback (or none, for a new request),
//! an action and who takes it, it returns the events to record or a refusal that says why.
use super::plan::{Plan, StepAction};
use super::rollback::{Event, Rollback, RollbackRequest, State, StepOutcome, StepResult};
use super::{Actor, ChannelId, Policy, ProposalId, RollbackId, Severity, UserId};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Request {
        request: RollbackRequest,
        plan: Plan,
    },
    Approve,
    Reject {
        reason: Option<String>,
    },
    Cancel,
    /// "Escalate now": the next ladder level joins at once.
    EscalateNow,
    /// Type the confirmation phrase of the destructive step `index`.
    Confirm {
        index: usize,
        phrase: String,
    },
    /// Pass the gate step `index`.
    Continue {
        index: usize,
    },
    /// Stop the run paused or interrupted at step `index`.
    Abort {
        index: usize,
    },
    /// Run the interrupted step `index` again.
    RetryStep {
        index: usize,
    },
    /// Go on after the interrupted step `index` without running it again.
    SkipStep {
        index: usize,
    },
    // rollbot's own actions: timers and the executor.
    Escalate {
        level: usize,
    },
    Expire,
    /// The run's lease lapsed: its process is gone.
    Interrupt,
    /// The status page took an update.
    RecordPageUpdated {
        status: String,
    },
    /// Mark the status page incident resolved (a person, or rollbot when the watch window ends).
    MarkResolved,
    /// Slack would not take a message about this rollback.
    RecordUndeliverable {
        what: String,
        error: String,
    },
    StartRun,
    StartStep {
        index: usize,
    },
    FinishStep {
        index: usize,
        result: StepResult,
    },
    /// Put a result from an attempt that lost the run on the record, as late.
    RecordLateResult {
        index: usize,
        result: StepResult,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Request { .. } => "request",
            Action::Approve => "approve",
            Action::Reject { .. } => "reject",
            Action::Cancel => "cancel",
            Action::EscalateNow => "escalate_now",
            Action::Confirm { .. } => "confirm",
            Action::Continue { .. } => "continue",
            Action::Abort { .. } => "abort",
            Action::RetryStep { .. } => "retry_step",
            Action::SkipStep { .. } => "skip_step",
            Action::Interrupt => "interrupt",
            Action::RecordUndeliverable { .. } => "record_undeliverable",
            Action::MarkResolved => "mark_resolved",
            Action::RecordPageUpdated { .. } => "record_page_updated",
            Action::Escalate { .. } => "escalate",
            Action::Expire => "expire",
            Action::StartRun => "start_run",
            Action::StartStep { .. } => "start_step",
            Action::FinishStep { .. } => "finish_step",
            Action::RecordLateResult { .. } => "record_late_result",
        }
    }

    fn is_rollbots_own(&self) -> bool {
        matches!(
            self,
            Action::Escalate { .. }
                | Action::Expire
                | Action::Interrupt
                | Action::RecordUndeliverable { .. }
                | Action::RecordPageUpdated { .. }
                | Action::StartRun
                | Action::StartStep { .. }
                | Action::FinishStep { .. }
                | Action::RecordLateResult { .. }
        )
    }
}

/// A refusal is an answer, not an error: each variant carries what the message needs to say
/// why, and what to do instead. Serializable: a proposal keeps why rollbot could not file its
/// request (`auto_request`) as a value, worded only when its card is rendered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    WrongWorkspace,
    WrongChannel {
        allowed: Vec<ChannelId>,
    },
    /// An action on a rollback or proposal taken outside the channel it lives in.
    LivesInAnotherChannel {
        what: String,
        channel: ChannelId,
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
    /// The requester already has `open` unfinished rollbacks, the most one person may have.
    TooManyOpenRequests {
        open: Vec<RollbackId>,
    },
    /// An open rollback holds the lock this request needs (its service's, by default).
    LockHeld {
        open: RollbackId,
        service: String,
        state: State,
        requester: UserId,
        /// Where its card is (channel, message ts), when it was posted.
        card: Option<(String, String)>,
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
    /// The actor may hold a role through a user group whose membership could not be read.
    MembershipUnknown {
        id: Option<RollbackId>,
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
    NoHigherLevel {
        id: RollbackId,
    },
    NotAllowedToEscalate {
        id: RollbackId,
    },
    NotPaused {
        id: RollbackId,
        state: State,
    },
    /// A button for one step was clicked while the run waits at another (an out-of-date card).
    StaleStep {
        id: RollbackId,
        clicked: usize,
        waiting: usize,
    },
    NotAllowedAtGate {
        id: RollbackId,
    },
    WrongPhrase {
        id: RollbackId,
    },
    ApprovalsDoNotMatchPlan {
        id: RollbackId,
        valid: usize,
        needed: u32,
    },
    NothingToResolve {
        id: RollbackId,
    },
    /// Only rollbot's own timers and executor take these; a person asking for one is a forgery.
    SystemOnly,
    /// rollbot files requests from alerts only where a person must still approve them.
    AutomaticRequestNeedsApproval {
        severity: Severity,
    },
    NoSuchProposal {
        id: ProposalId,
    },
    ProposalResolved {
        id: ProposalId,
        service: String,
    },
    ProposalDismissed {
        id: ProposalId,
        by: UserId,
    },
    ProposalStarted {
        id: ProposalId,
        rollback: RollbackId,
        by: UserId,
    },
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
    now: DateTime<Utc>,
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
    // Marking resolved is for people and for the watch window alike.
    if action.is_rollbots_own() != actor.is_system() && *action != Action::MarkResolved {
        return Err(Refusal::SystemOnly);
    }
    let id = rollback.id;
    acting_where_it_lives(actor, &rollback.request.channel, id.to_string())?;
    let not_awaiting = || Refusal::NotAwaitingApproval {
        id,
        state: rollback.state.clone(),
        approved_by: rollback.approvals.iter().map(|a| a.by.clone()).collect(),
    };
    let out_of_order = |detail: String| Refusal::OutOfOrder { id, detail };
    match action {
        Action::Request { .. } => Err(out_of_order("already requested".into())),
        Action::Approve => {
            if rollback.state != State::AwaitingApproval {
                return Err(not_awaiting());
            }
            if actor.user == rollback.request.requester && !rollback.allow_self_approval {
                return Err(Refusal::SelfApproval { id });
            }
            let (role, level) = approving_role(rollback, actor)?;
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
                level,
            }])
        }
        Action::Reject { reason } => {
            if rollback.state != State::AwaitingApproval {
                return Err(not_awaiting());
            }
            if actor.user == rollback.request.requester {
                return Err(Refusal::RequesterCannotReject { id });
            }
            approving_role(rollback, actor)?;
            let reason = clean_reason(reason.as_deref(), policy)?;
            Ok(vec![Event::Rejected {
                by: actor.user.clone(),
                reason,
            }])
        }
        Action::Cancel => {
            if !matches!(rollback.state, State::AwaitingApproval | State::Queued) || !rollback.steps.is_empty() {
                return Err(Refusal::NotCancellable {
                    id,
                    state: rollback.state.clone(),
                });
            }
            if actor.user != rollback.request.requester && approving_role(rollback, actor).is_err() {
                return Err(Refusal::NotAllowedToCancel { id });
            }
            Ok(vec![Event::Cancelled { by: actor.user.clone() }])
        }
        Action::EscalateNow => {
            if rollback.state != State::AwaitingApproval {
                return Err(not_awaiting());
            }
            if actor.user != rollback.request.requester && approving_role(rollback, actor).is_err() {
                return Err(Refusal::NotAllowedToEscalate { id });
            }
            let Some((level, next, _)) = rollback.next_level() else {
                return Err(Refusal::NoHigherLevel { id });
            };
            Ok(vec![Event::Escalated {
                level,
                role: next.role.clone(),
                by: Some(actor.user.clone()),
            }])
        }
        Action::Escalate { level } => {
            if rollback.state != State::AwaitingApproval {
                return Err(out_of_order(format!(
                    "no escalation in state {}",
                    rollback.state.name()
                )));
            }
            if *level <= rollback.level || *level > rollback.ladder.len() {
                return Err(out_of_order(format!("level {level} is already open or does not exist")));
            }
            // A timer that fires late (after a restart) opens every level whose time has come.
            let mut events = vec![];
            for (index, step) in rollback.ladder.iter().enumerate().take(*level).skip(rollback.level) {
                let due = rollback.requested_at + chrono::Duration::seconds(step.after_secs as i64);
                if due > now {
                    break;
                }
                events.push(Event::Escalated {
                    level: index + 1,
                    role: step.role.clone(),
                    by: None,
                });
            }
            if events.is_empty() {
                return Err(out_of_order(format!("level {level} is not due yet")));
            }
            Ok(events)
        }
        Action::Expire => match (rollback.state == State::AwaitingApproval, rollback.expires_at) {
            (true, Some(at)) if at <= now => Ok(vec![Event::Expired]),
            _ => Err(out_of_order("not due to expire".into())),
        },
        Action::Confirm { index, phrase } => {
            let step = paused_step(rollback, *index)?;
            gate_keeper(rollback, actor)?;
            let Some(expected) = &step.confirm else {
                return Err(out_of_order(format!("step {} needs no confirmation", index + 1)));
            };
            if phrase.trim() != expected {
                return Err(Refusal::WrongPhrase { id });
            }
            Ok(vec![Event::Confirmed {
                index: *index,
                by: actor.user.clone(),
            }])
        }
        Action::Continue { index } => {
            let step = paused_step(rollback, *index)?;
            gate_keeper(rollback, actor)?;
            if !matches!(step.action, StepAction::Gate { .. }) {
                return Err(out_of_order(format!("step {} is not a gate", index + 1)));
            }
            Ok(vec![Event::Continued {
                index: *index,
                by: actor.user.clone(),
            }])
        }
        Action::Abort { index } => {
            if rollback.state != (State::Interrupted { step: *index }) {
                paused_step(rollback, *index)?;
            }
            gate_keeper(rollback, actor)?;
            Ok(vec![Event::Aborted {
                index: *index,
                by: actor.user.clone(),
            }])
        }
        Action::RetryStep { index } => {
            interrupted_step(rollback, *index)?;
            gate_keeper(rollback, actor)?;
            Ok(vec![Event::Retried {
                index: *index,
                by: actor.user.clone(),
            }])
        }
        Action::SkipStep { index } => {
            interrupted_step(rollback, *index)?;
            gate_keeper(rollback, actor)?;
            let mut events = vec![Event::Skipped {
                index: *index,
                by: actor.user.clone(),
            }];
            if index + 1 == rollback.plan.steps.len() {
                events.push(Event::Succeeded);
            }
            Ok(events)
        }
        Action::RecordUndeliverable { what, error } => Ok(vec![Event::Undeliverable {
            what: what.clone(),
            error: error.clone(),
        }]),
        Action::RecordPageUpdated { status } => Ok(vec![Event::PageUpdated { status: status.clone() }]),
        Action::RecordLateResult { index, result } => {
            if *index >= rollback.plan.steps.len() {
                return Err(out_of_order(format!("there is no step {}", index + 1)));
            }
            Ok(vec![Event::LateResult {
                index: *index,
                result: result.clone(),
            }])
        }
        Action::MarkResolved => {
            if !policy.status_page || rollback.state != State::Succeeded || rollback.resolved.is_some() {
                return Err(Refusal::NothingToResolve { id });
            }
            if !actor.is_system() {
                gate_keeper(rollback, actor)?;
            }
            Ok(vec![Event::Resolved {
                by: (!actor.is_system()).then(|| actor.user.clone()),
            }])
        }
        Action::Interrupt => {
            if rollback.state != State::Running {
                return Err(out_of_order(format!("nothing runs in state {}", rollback.state.name())));
            }
            // A step that was started is never run again by itself: a person decides.
            Ok(vec![Event::Interrupted {
                step: rollback.step_in_flight(),
            }])
        }
        Action::StartRun => {
            if rollback.state != State::Queued {
                return Err(out_of_order(format!(
                    "cannot start a run in state {}",
                    rollback.state.name()
                )));
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
                return Err(out_of_order(format!("step {} is not next", index + 1)));
            }
            if rollback.plan.steps[*index].needs_person() && !rollback.cleared.contains(index) {
                return Ok(vec![Event::Paused { index: *index }]);
            }
            Ok(vec![Event::StepStarted { index: *index }])
        }
        Action::FinishStep { index, result } => {
            if rollback.step_in_flight() != Some(*index) {
                return Err(out_of_order(format!("step {} is not running", index + 1)));
            }
            let mut events = vec![Event::StepFinished {
                index: *index,
                result: result.clone(),
            }];
            let may_fail = rollback.plan.steps[*index].on_failure == super::plan::OnFailure::Continue;
            if !result.outcome.passed() && !may_fail {
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

/// Whether `actor` holds a role that may request rollbacks; fails closed when a role they might
/// hold could not be checked.
pub(crate) fn may_request(actor: &Actor, policy: &Policy) -> Result<(), Refusal> {
    if policy.may_request(actor) {
        return Ok(());
    }
    let roles = policy.requester_roles.clone().unwrap_or_default();
    if roles.iter().any(|r| actor.unresolved_roles.contains(r)) {
        return Err(Refusal::MembershipUnknown { id: None, roles });
    }
    Err(Refusal::NotARequester { roles })
}

/// Actions are taken in the channel where the rollback or proposal lives, so everyone in the
/// incident sees them; Slack says where a click or a command came from.
pub(crate) fn acting_where_it_lives(actor: &Actor, lives_in: &ChannelId, what: String) -> Result<(), Refusal> {
    match &actor.channel {
        Some(from) if from != lives_in => Err(Refusal::LivesInAnotherChannel {
            what,
            channel: lives_in.clone(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn in_workspace(actor: &Actor, policy: &Policy) -> bool {
    policy
        .workspace
        .as_ref()
        .is_none_or(|workspace| actor.team.as_ref() == Some(workspace))
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
    let severity = policy.severity(request.severity);
    if actor.is_system() {
        // Only a service's `auto_request` files as rollbot, and never a request that would run
        // without a person's approval.
        if severity.approvals == 0 {
            return Err(Refusal::AutomaticRequestNeedsApproval {
                severity: request.severity,
            });
        }
    } else {
        may_request(actor, policy)?;
    }
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
        ladder: policy.ladder(request.severity),
        request,
        plan: plan.clone(),
        plan_digest: plan.digest(),
        approvals_required: severity.approvals,
        approver_roles: severity.approvers.clone(),
        allow_self_approval: severity.allow_self_approval,
        review_required: severity.review_required || severity.approvals == 0,
        expire_after_secs: severity.expire_after.map(|d| d.as_secs()),
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

/// The first role, in the order levels opened, through which the actor may approve now, with
/// its level. Fails closed when a role the actor might hold could not be checked.
fn approving_role(rollback: &Rollback, actor: &Actor) -> Result<(String, usize), Refusal> {
    let roles = rollback.approver_roles_now();
    if let Some((role, level)) = roles.iter().find(|(role, _)| actor.roles.contains(role)) {
        return Ok((role.clone(), *level));
    }
    let names: Vec<String> = roles.into_iter().map(|(r, _)| r).collect();
    if names.iter().any(|r| actor.unresolved_roles.contains(r)) {
        return Err(Refusal::MembershipUnknown {
            id: Some(rollback.id),
            roles: names,
        });
    }
    Err(Refusal::NotAnApprover {
        id: rollback.id,
        severity: rollback.request.severity,
        roles: names,
    })
}

/// Who may pass a gate, confirm a destructive step or abort: the requester, anyone who may
/// approve now, and for a rollback that needed no approval, everyone on its ladder.
fn gate_keeper(rollback: &Rollback, actor: &Actor) -> Result<(), Refusal> {
    let on_ladder = rollback.approvals_required == 0 && rollback.ladder.iter().any(|l| actor.roles.contains(&l.role));
    if actor.user == rollback.request.requester || on_ladder || approving_role(rollback, actor).is_ok() {
        return Ok(());
    }
    match approving_role(rollback, actor) {
        Err(unknown @ Refusal::MembershipUnknown { .. }) => Err(unknown),
        _ => Err(Refusal::NotAllowedAtGate { id: rollback.id }),
    }
}

fn interrupted_step(rollback: &Rollback, index: usize) -> Result<(), Refusal> {
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

fn paused_step(rollback: &Rollback, index: usize) -> Result<&super::PlanStep, Refusal> {
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

#[cfg(test)]
mod properties {
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
            if two_needed {
                policy.severities.get_mut(&severity).unwrap().approvals = 2;
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
}

#[cfg(test)]
mod tests {
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
            let levels = policy().ladder(severity).len();
            for allow_self in [false, true] {
                for quorum in [1, 2] {
                    if severity == Severity::Critical && (allow_self || quorum == 2) {
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
        story.try_act(&actor(REQUESTER), Action::Continue { index: 2 }).unwrap();
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
            Err(Refusal::NotAllowedAtGate { id: RollbackId(1) })
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
            let mut story = awaiting();
            story.rollback.plan = crate::domain::fixtures::plan_with_gates();
            story.rollback.plan_digest = story.rollback.plan.digest();
            story
                .approved()
                .act(&Actor::system(), Action::StartRun)
                .step(0, ok_result(""))
                .step(1, ok_result(""))
                .act(&Actor::system(), Action::StartStep { index: 2 })
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
        let kinds: [(&str, Actor); 6] = [
            ("requester", actor(REQUESTER).in_channel(CHANNEL)),
            ("eligible approver", actor(ON_CALL).in_channel(CHANNEL)),
            ("approver of a later level", actor(DEVOPS_LEAD).in_channel(CHANNEL)),
            ("outsider", actor(OUTSIDER).in_channel(CHANNEL)),
            ("other workspace", other_workspace(ON_CALL).in_channel(CHANNEL)),
            (
                "eligible approver in another channel",
                actor(ON_CALL).in_channel("C0RANDOM"),
            ),
        ];
        type Attempt = Box<dyn Fn(&Actor) -> Result<(), Refusal>>;
        let on = |story: fn() -> Story, action: Action| -> Attempt {
            Box::new(move |who: &Actor| story().try_act(who, action.clone()))
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
}
