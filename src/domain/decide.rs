//! `decide` is the whole rulebook, with no I/O: given a rollback (or none, for a new request),
//! an action and who takes it, it returns the events to record or a refusal that says why.
use super::plan::{Plan, StepAction};
use super::rollback::{Event, Rollback, RollbackRequest, State, StepOutcome, StepResult};
use super::{Actor, ChannelId, Policy, ProposalId, Reminders, RollbackId, Severity, UserId};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Request {
        request: RollbackRequest,
        plan: Plan,
    },
    Approve,
    /// Approve knowing that a preflight check failed (the card asked to confirm it).
    ApproveDespitePreflight,
    /// The preflight checks' results, recorded by rollbot.
    RecordPreflight {
        checks: Vec<crate::domain::preflight::PreflightCheck>,
    },
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
    /// Post an update on the incident: the thread, the stakeholders' channels and, when asked,
    /// the status page.
    PostUpdate {
        text: String,
        to_status_page: bool,
    },
    /// Add a note to the timeline, for the post-mortem: what people saw, tried or decided.
    AddNote {
        text: String,
    },
    /// The boxes of section `section` of checklist `checklist` now ticked are `ticked` (Slack
    /// sends a group's whole selection): what changed goes on the record.
    TickChecklist {
        checklist: usize,
        section: usize,
        ticked: Vec<usize>,
    },
    /// Link the fallback rollback `rollback` (of `runbook`), just requested, to this stopped one.
    RecordFallback {
        rollback: RollbackId,
        runbook: String,
    },
    // rollbot's own actions: timers and the executor.
    Escalate {
        level: usize,
    },
    Expire,
    /// Reminder `n` of the update cadence is due.
    Remind {
        n: usize,
    },
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
            Action::ApproveDespitePreflight => "approve_despite_preflight",
            Action::RecordPreflight { .. } => "record_preflight",
            Action::Reject { .. } => "reject",
            Action::Cancel => "cancel",
            Action::EscalateNow => "escalate_now",
            Action::Confirm { .. } => "confirm",
            Action::Continue { .. } => "continue",
            Action::Abort { .. } => "abort",
            Action::RetryStep { .. } => "retry_step",
            Action::SkipStep { .. } => "skip_step",
            Action::PostUpdate { .. } => "post_update",
            Action::AddNote { .. } => "add_note",
            Action::TickChecklist { .. } => "tick_checklist",
            Action::RecordFallback { .. } => "record_fallback",
            Action::Remind { .. } => "remind",
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
                | Action::Remind { .. }
                | Action::Interrupt
                | Action::RecordUndeliverable { .. }
                | Action::RecordPageUpdated { .. }
                | Action::StartRun
                | Action::StartStep { .. }
                | Action::FinishStep { .. }
                | Action::RecordLateResult { .. }
                | Action::RecordPreflight { .. }
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
    /// A rollback's status or post-mortem asked for outside its channel by someone who took no
    /// part in it.
    ReadWhereItLives {
        id: RollbackId,
        channel: ChannelId,
    },
    /// A plan previewed outside the incident channels.
    PreviewInIncidentChannel {
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
        suggestion: Option<String>,
        /// What the runbook takes.
        known: Vec<String>,
    },
    /// A preflight check failed: approving needs the card's *Approve despite preflight…*.
    PreflightFailed {
        id: RollbackId,
        failed: Vec<String>,
    },
    /// A value that is not one of the parameter's `choices`.
    NotAChoice {
        name: String,
        value: String,
        suggestion: Option<String>,
        choices: Vec<String>,
    },
    PlanTemplate {
        step: String,
        detail: String,
    },
    /// `incident <id>` where no status page is configured: there is nothing to carry on.
    NoStatusPage {
        incident: String,
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
    /// An abort by someone who is neither the requester, an approver, nor in `abort_roles`.
    NotAllowedToAbort {
        id: RollbackId,
        abort_roles: Vec<String>,
    },
    /// The requester tried to pass a gate or confirm a destructive step of their own rollback.
    SecondPersonNeeded {
        id: RollbackId,
        step: usize,
        name: String,
        destructive: bool,
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
    /// The step cannot be skipped after it failed or was aborted: the runbook does not allow it.
    NotSkippable {
        id: RollbackId,
        step: usize,
        name: String,
    },
    /// Someone already asked to abort the running step; it is being stopped.
    AbortUnderWay {
        id: RollbackId,
        by: UserId,
    },
    /// An update with no words.
    UpdateEmpty {
        id: RollbackId,
    },
    UpdateTooLong {
        id: RollbackId,
        max: usize,
    },
    /// A note with no words.
    NoteEmpty {
        id: RollbackId,
    },
    NoteTooLong {
        id: RollbackId,
        max: usize,
    },
    /// A tick on boxes the rollback's checklists do not have (an old or forged message).
    NoSuchChecklistItem {
        id: RollbackId,
    },
    /// Updates speak for the incident: its requester, approvers and the roles that may abort.
    NotAllowedToUpdate {
        id: RollbackId,
    },
    /// An update for the status page, where the page has no open incident for this rollback.
    NoPageToUpdate {
        id: RollbackId,
    },
    /// *Run fallback* on a rollback whose runbook names no fallback.
    NoFallback {
        id: RollbackId,
        runbook: String,
    },
    /// A fallback is offered once the run has failed or was aborted, and not after it is resolved.
    FallbackNotNow {
        id: RollbackId,
        state: State,
    },
    FallbackAlreadyRequested {
        id: RollbackId,
        fallback: RollbackId,
        by: UserId,
    },
    /// A fallback is requested by whoever may steer the stopped rollback.
    NotAllowedToRunFallback {
        id: RollbackId,
    },
    /// Only rollbot's own timers and executor take these; a person asking for one is a forgery.
    SystemOnly,
    /// rollbot files requests from alerts only where a person must still approve them.
    AutomaticRequestNeedsApproval {
        severity: Severity,
    },
    /// A service files at most one automatic request per interval, so a flapping alert does
    /// not file request after request.
    AutomaticRequestTooSoon {
        service: String,
        last: RollbackId,
        at: DateTime<Utc>,
        every: std::time::Duration,
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
        Action::RecordPreflight { checks } => {
            if rollback.preflight.is_some() {
                return Err(out_of_order("preflight is recorded once".into()));
            }
            Ok(vec![Event::PreflightChecked { checks: checks.clone() }])
        }
        Action::Approve | Action::ApproveDespitePreflight => {
            if rollback.state != State::AwaitingApproval {
                return Err(not_awaiting());
            }
            let failed = rollback
                .preflight
                .as_deref()
                .map(crate::domain::preflight::failed)
                .unwrap_or_default();
            let despite = matches!(action, Action::ApproveDespitePreflight);
            if !failed.is_empty() && !despite {
                return Err(Refusal::PreflightFailed { id, failed });
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
                seal: None,
                despite_failed_preflight: despite && !failed.is_empty(),
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
            // Whenever a person is awaited: an approval, a gate or phrase, a decision after an
            // interruption, a failure or an abort.
            // An abort is a person's decision; whoever it leaves things to may still call for help.
            if !rollback.awaits_person() && !matches!(rollback.state, State::Aborted { .. }) {
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
            if !rollback.awaits_person() {
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
                let due = rollback.waiting_since() + chrono::Duration::seconds(step.after_secs as i64);
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
            second_person(rollback, actor, *index)?;
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
            second_person(rollback, actor, *index)?;
            Ok(vec![Event::Continued {
                index: *index,
                by: actor.user.clone(),
            }])
        }
        Action::Abort { index } => decide_abort(rollback, *index, actor, policy),
        Action::PostUpdate { text, to_status_page } => {
            decide_post_update(rollback, text, *to_status_page, actor, policy)
        }
        Action::AddNote { text } => decide_add_note(rollback, text, actor, policy),
        Action::TickChecklist {
            checklist,
            section,
            ticked,
        } => decide_tick(rollback, *checklist, *section, ticked, actor, policy),
        Action::Remind { n } => decide_remind(rollback, *n, policy, now),
        Action::RecordFallback {
            rollback: fallback,
            runbook,
        } => decide_record_fallback(rollback, *fallback, runbook, actor, policy),
        Action::RetryStep { index } => {
            stopped_step(rollback, *index)?;
            gate_keeper(rollback, actor)?;
            Ok(vec![Event::Retried {
                index: *index,
                by: actor.user.clone(),
            }])
        }
        Action::SkipStep { index } => {
            stopped_step(rollback, *index)?;
            // An interrupted step may have done its work; a failed or aborted one did not, so
            // going on without it is the runbook's call.
            let step = &rollback.plan.steps[*index];
            if !matches!(rollback.state, State::Interrupted { .. }) && !step.skippable {
                return Err(Refusal::NotSkippable {
                    id,
                    step: *index,
                    name: step.name.clone(),
                });
            }
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
            // The page's incident opens when a run starts; after a failure or an abort it stays
            // open until someone says the service is healthy by other means.
            let ended = match rollback.state {
                State::Succeeded => true,
                State::Failed { .. } | State::Aborted { .. } => {
                    rollback.started_at.is_some() && !rollback.request.drill
                }
                _ => false,
            };
            // Without a status page, resolving a failed or aborted rollback's incident is what
            // ends its update reminders.
            let has_page = policy.status_page || rollback.state != State::Succeeded;
            if !has_page || !ended || rollback.resolved.is_some() {
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
            let mut events = vec![Event::Interrupted {
                step: rollback.step_in_flight(),
            }];
            // The process died while stopping the step someone aborted: it is aborted.
            if let Some(abort) = &rollback.abort_requested {
                events.push(Event::Aborted {
                    index: abort.index,
                    by: abort.by.clone(),
                });
            }
            Ok(events)
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
            // Someone asked to stop: nothing after this step starts, whatever its outcome.
            if let Some(abort) = &rollback.abort_requested {
                events.push(Event::Aborted {
                    index: *index,
                    by: abort.by.clone(),
                });
                return Ok(events);
            }
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

/// Who may read a rollback's status and post-mortem, where: its reasons, approvers, argv,
/// hosts and phrases are for its incident. Anyone in its own channel (from the same
/// workspace), and its requester and approvers anywhere in the workspace.
pub fn may_read(rollback: &Rollback, actor: &Actor, policy: &Policy) -> Result<(), Refusal> {
    if !in_workspace(actor, policy) {
        return Err(Refusal::WrongWorkspace);
    }
    let participant = actor.user == rollback.request.requester || rollback.approvals.iter().any(|a| a.by == actor.user);
    let here = actor.channel.as_ref().is_none_or(|c| *c == rollback.request.channel);
    if here || participant {
        return Ok(());
    }
    Err(Refusal::ReadWhereItLives {
        id: rollback.id,
        channel: rollback.request.channel.clone(),
    })
}

/// Where a plan may be previewed: in the workspace's incident channels, where it would run.
pub fn may_preview(actor: &Actor, policy: &Policy) -> Result<(), Refusal> {
    if !in_workspace(actor, policy) {
        return Err(Refusal::WrongWorkspace);
    }
    match &actor.channel {
        Some(channel) if !policy.channels.contains(channel) => Err(Refusal::PreviewInIncidentChannel {
            allowed: policy.channels.clone(),
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
    // A drill rehearses the path, not the incident's communication.
    let reminders = if request.drill {
        Reminders::none()
    } else {
        severity.reminders.clone()
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
        second_person: policy.two_person_rule,
        seal: None,
        expire_after_secs: severity.expire_after.map(|d| d.as_secs()),
        reminders,
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

mod at_steps;
use at_steps::*;
mod fallback;
use fallback::decide_record_fallback;
pub use fallback::{fallback_ask, may_run_fallback};
mod checklists;
use checklists::decide_tick;
mod updates;
pub use updates::{MAX_UPDATE_CHARS, page_open};
use updates::{decide_add_note, decide_post_update, decide_remind};

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests;
