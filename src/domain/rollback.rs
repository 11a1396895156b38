//! A rollback is the fold of its events; the events are the record.
use super::plan::Plan;
use super::updates::{Reminders, UpdateNote};
use super::{ChannelId, RollbackId, Severity, TeamId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub service: String,
    pub runbook: String,
    pub target: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub severity: Severity,
    pub reason: Option<String>,
    pub requester: UserId,
    pub channel: ChannelId,
    pub team: Option<TeamId>,
    /// A rehearsal: the whole path, steps not executed, no status page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
    /// What it holds while open: another request with the same key is refused (`None`: nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// The signed delivery it came from (a digest of Slack's signature): the same delivery
    /// seen again is answered as the first and files nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// The failed or aborted rollback whose runbook named this one's as its fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<RollbackId>,
    /// When monitoring saw the issue, for a request started from an alert's proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<Detection>,
    /// The post-incident checklists its severity and runbook declare, as they were when it was
    /// requested: posted in the thread when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklists: Vec<super::checklist::Checklist>,
    /// The status page incident the request named (`incident <id>`): its updates carry on that
    /// one instead of opening another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_incident: Option<String>,
}

/// What monitoring saw first: the earliest firing alert of the proposal a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    pub at: DateTime<Utc>,
    pub alert: String,
    pub proposal: super::ProposalId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Requested {
        request: RollbackRequest,
        plan: Plan,
        plan_digest: String,
        approvals_required: u32,
        approver_roles: Vec<String>,
        allow_self_approval: bool,
        review_required: bool,
        /// The two-person rule: a gate or a destructive step is passed by someone other than
        /// the requester. (Requests recorded before it was frozen here follow it.)
        #[serde(default = "two_person_rule")]
        second_person: bool,
        /// The request's seal (`domain::seal`), made by the engine.
        #[serde(default)]
        seal: Option<String>,
        /// Who joins the approvers, and when, if nobody answers.
        #[serde(default)]
        ladder: Vec<LadderLevel>,
        #[serde(default)]
        expire_after_secs: Option<u64>,
        /// When the point of contact is reminded to post an update.
        #[serde(default = "Reminders::none")]
        reminders: Reminders,
    },
    Approved {
        by: UserId,
        role: String,
        plan_digest: String,
        /// 0 for the severity's own approvers, n for the n-th escalation level.
        #[serde(default)]
        level: usize,
        /// The approval's seal (`domain::seal`), made by the engine.
        #[serde(default)]
        seal: Option<String>,
        /// The approver was shown that a preflight check failed, and approved anyway.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        despite_failed_preflight: bool,
    },
    /// The preflight checks ran: what the card shows before anyone approves.
    PreflightChecked {
        checks: Vec<super::preflight::PreflightCheck>,
    },
    /// The next level of the ladder joins the approvers: by its timer, or by someone's click.
    Escalated {
        level: usize,
        role: String,
        by: Option<UserId>,
    },
    Expired,
    /// The run stopped before a step that needs a person: a typed confirmation or a gate.
    Paused {
        index: usize,
    },
    /// The confirmation phrase of a destructive step was typed correctly.
    Confirmed {
        index: usize,
        by: UserId,
    },
    /// A gate step was passed.
    Continued {
        index: usize,
        by: UserId,
    },
    Aborted {
        index: usize,
        by: UserId,
    },
    /// Someone asked to stop the run while step `index` runs: the process running it stops the
    /// step (SIGTERM, then SIGKILL) and records it as aborted; nothing after it starts.
    AbortRequested {
        index: usize,
        by: UserId,
    },
    /// The process running the rollback stopped renewing its lease. `step` is the step that was
    /// in flight, whose effect is unknown; `None` when it stopped between steps.
    Interrupted {
        step: Option<usize>,
    },
    /// A step's result that came from an attempt whose process had lost the run (it stalled
    /// past its lease): kept on the record, never taken as the result of a later attempt.
    LateResult {
        index: usize,
        result: StepResult,
    },
    /// Someone chose to run the interrupted step again.
    Retried {
        index: usize,
        by: UserId,
    },
    /// Someone checked the interrupted step and chose to go on without running it again.
    Skipped {
        index: usize,
        by: UserId,
    },
    /// Reminder `n` of the update cadence came due while the incident was open.
    Reminded {
        n: usize,
    },
    /// Someone added a note to the timeline (`/rollback note RB-n …`).
    Noted {
        by: UserId,
        text: String,
    },
    /// Someone ticked (or unticked) an item of a post-incident checklist.
    ChecklistTicked {
        item: super::checklist::ItemRef,
        ticked: bool,
        by: UserId,
    },
    /// Someone posted an update on the incident.
    UpdatePosted {
        by: UserId,
        text: String,
        to_status_page: bool,
    },
    /// Someone requested the runbook's fallback after this rollback stopped: a new, linked
    /// rollback with its own approvals takes the incident on.
    FallbackRequested {
        rollback: RollbackId,
        runbook: String,
        by: UserId,
    },
    /// The status page now shows this status.
    PageUpdated {
        status: String,
    },
    /// The incident on the status page was marked resolved (by a person, or by the watch window).
    Resolved {
        by: Option<UserId>,
    },
    /// A message about this rollback could not be delivered to Slack; kept on the record.
    Undeliverable {
        what: String,
        error: String,
    },
    Rejected {
        by: UserId,
        reason: Option<String>,
    },
    Cancelled {
        by: UserId,
    },
    RunStarted,
    StepStarted {
        index: usize,
    },
    StepFinished {
        index: usize,
        result: StepResult,
    },
    Succeeded,
    Failed {
        step: usize,
        reason: String,
    },
}

/// An event as stored: when it happened and who caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub actor: UserId,
    pub event: Event,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub outcome: StepOutcome,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The last bytes of combined stdout and stderr, or of an HTTP answer.
    pub output_tail: String,
    /// Why it failed, in words, when the exit code does not say it.
    pub detail: Option<String>,
    /// How many times it was tried, when more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Row counts a `sql` snapshot recorded, for a later comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<RowCounts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    pub database: String,
    pub counts: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Succeeded,
    #[default]
    Failed,
    TimedOut,
    CouldNotStart,
    /// The process running it stopped before it finished; whether it took effect is unknown.
    Interrupted,
    /// A drill: the step was shown, not executed.
    Rehearsed,
    /// Stopped while it ran because a person aborted the rollback.
    Aborted,
}

impl StepOutcome {
    pub fn name(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::TimedOut => "timed_out",
            StepOutcome::CouldNotStart => "could_not_start",
            StepOutcome::Interrupted => "interrupted",
            StepOutcome::Rehearsed => "rehearsed",
            StepOutcome::Aborted => "aborted",
        }
    }

    /// Whether the run goes on as if the step worked.
    pub fn passed(self) -> bool {
        matches!(self, StepOutcome::Succeeded | StepOutcome::Rehearsed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadderLevel {
    pub role: String,
    /// Seconds after the request at which this level joins the approvers.
    pub after_secs: u64,
}

/// How long an aborted step gets between SIGTERM and SIGKILL: long enough to let a tool such as
/// `pg_restore` or `kubectl` stop cleanly, short enough that an abort is an abort.
pub const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortRequest {
    pub index: usize,
    pub by: UserId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub by: Option<UserId>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub level: usize,
    pub role: String,
    pub at: DateTime<Utc>,
    /// Who clicked "Escalate now"; `None` when the level's time came.
    pub by: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    AwaitingApproval,
    /// Approved (or exempt from approval), or released from a pause, and waiting for the executor.
    Queued,
    Running,
    /// Waiting for a person before step `step`: a typed confirmation or a gate.
    Paused {
        step: usize,
    },
    Succeeded,
    Failed {
        step: usize,
        reason: String,
    },
    Rejected {
        by: UserId,
        reason: Option<String>,
    },
    Cancelled {
        by: UserId,
    },
    Expired,
    Aborted {
        step: usize,
        by: UserId,
    },
    /// Step `step` was in flight when its process stopped: a person decides what happens next.
    Interrupted {
        step: usize,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::AwaitingApproval => "awaiting_approval",
            State::Queued => "queued",
            State::Running => "running",
            State::Paused { .. } => "paused",
            State::Succeeded => "succeeded",
            State::Failed { .. } => "failed",
            State::Rejected { .. } => "rejected",
            State::Cancelled { .. } => "cancelled",
            State::Expired => "expired",
            State::Aborted { .. } => "aborted",
            State::Interrupted { .. } => "interrupted",
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            State::Succeeded
                | State::Failed { .. }
                | State::Rejected { .. }
                | State::Cancelled { .. }
                | State::Expired
                | State::Aborted { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: UserId,
    pub role: String,
    pub at: DateTime<Utc>,
    pub plan_digest: String,
    #[serde(default)]
    pub level: usize,
    #[serde(default)]
    pub seal: Option<String>,
    /// Given knowing that a preflight check had failed (`Approve despite preflight`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub despite_failed_preflight: bool,
}

/// A fallback rollback requested after this one stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackLink {
    pub rollback: RollbackId,
    pub runbook: String,
    pub by: UserId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: usize,
    pub started_at: DateTime<Utc>,
    pub result: Option<StepResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub id: RollbackId,
    /// How many events have been applied; the optimistic-concurrency token.
    pub version: i64,
    pub request: RollbackRequest,
    pub plan: Plan,
    pub plan_digest: String,
    pub approvals_required: u32,
    pub approver_roles: Vec<String>,
    pub allow_self_approval: bool,
    pub review_required: bool,
    /// Gates and destructive steps need someone other than the requester (the two-person rule).
    #[serde(default = "two_person_rule")]
    pub second_person: bool,
    /// What binds the plan and its approval rules to rollbot's key (`domain::seal`).
    #[serde(default)]
    pub seal: Option<String>,
    #[serde(default)]
    pub ladder: Vec<LadderLevel>,
    /// How many ladder levels have joined the approvers.
    #[serde(default)]
    pub level: usize,
    #[serde(default)]
    pub escalations: Vec<Escalation>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Steps whose confirmation or gate a person has cleared.
    #[serde(default)]
    pub cleared: Vec<usize>,
    /// An interrupted step someone chose to run again.
    #[serde(default)]
    pub retry_step: Option<usize>,
    /// When the status page incident was marked resolved, and by whom (`None`: the watch window).
    #[serde(default)]
    pub resolved: Option<Resolution>,
    /// Since when a person is awaited after the run stopped for one (a gate, a phrase, an
    /// interruption, a failure): the ladder counts from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaited_since: Option<DateTime<Utc>>,
    /// Someone asked to stop the running step; the run ends as aborted once it has stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_requested: Option<AbortRequest>,
    #[serde(default = "Reminders::none")]
    pub reminders: Reminders,
    /// How many reminders of the cadence have come due.
    #[serde(default)]
    pub reminded: usize,
    /// The updates people posted, oldest first.
    #[serde(default)]
    pub updates: Vec<UpdateNote>,
    /// The fallback rollbacks requested after this one stopped (one, but for a race).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<FallbackLink>,
    /// The checklist items ticked now, with who ticked each and when.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "super::checklist::ticks_as_pairs"
    )]
    pub ticks: BTreeMap<super::checklist::ItemRef, super::checklist::Tick>,
    pub state: State,
    pub approvals: Vec<Approval>,
    /// The preflight checks' results, once they ran (`None`: running, or not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Vec<super::preflight::PreflightCheck>>,
    pub steps: Vec<StepRecord>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Rollback {
    /// How step `index` last ended, if it did.
    pub fn last_result(&self, index: usize) -> Option<&StepResult> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.index == index)
            .and_then(|s| s.result.as_ref())
    }

    /// Folds a rollback's history. The first event must be `Requested`.
    pub fn from_history(id: RollbackId, history: &[Recorded]) -> Option<Rollback> {
        let (first, rest) = history.split_first()?;
        let Event::Requested {
            request,
            plan,
            plan_digest,
            approvals_required,
            approver_roles,
            allow_self_approval,
            review_required,
            second_person,
            seal,
            ladder,
            expire_after_secs,
            reminders,
        } = &first.event
        else {
            return None;
        };
        let mut rollback = Rollback {
            id,
            version: 1,
            request: request.clone(),
            plan: plan.clone(),
            plan_digest: plan_digest.clone(),
            approvals_required: *approvals_required,
            approver_roles: approver_roles.clone(),
            allow_self_approval: *allow_self_approval,
            review_required: *review_required,
            second_person: *second_person,
            seal: seal.clone(),
            ladder: ladder.clone(),
            level: 0,
            escalations: vec![],
            expires_at: expire_after_secs
                .filter(|_| *approvals_required > 0)
                .map(|secs| first.at + chrono::Duration::seconds(secs as i64)),
            cleared: vec![],
            retry_step: None,
            resolved: None,
            awaited_since: None,
            abort_requested: None,
            reminders: reminders.clone(),
            reminded: 0,
            updates: vec![],
            fallbacks: vec![],
            ticks: BTreeMap::new(),
            state: if *approvals_required == 0 {
                State::Queued
            } else {
                State::AwaitingApproval
            },
            approvals: vec![],
            preflight: None,
            steps: vec![],
            requested_at: first.at,
            started_at: None,
            finished_at: None,
        };
        for recorded in rest {
            rollback.apply(recorded);
        }
        Some(rollback)
    }

    pub fn apply(&mut self, recorded: &Recorded) {
        self.version += 1;
        let at = recorded.at;
        let awaited = self.awaits_person();
        match &recorded.event {
            Event::Requested { .. } => {}
            Event::Approved {
                by,
                role,
                plan_digest,
                level,
                seal,
                despite_failed_preflight,
            } => {
                self.approvals.push(Approval {
                    by: by.clone(),
                    role: role.clone(),
                    at,
                    plan_digest: plan_digest.clone(),
                    level: *level,
                    seal: seal.clone(),
                    despite_failed_preflight: *despite_failed_preflight,
                });
                if self.valid_approvals() >= self.approvals_required as usize {
                    self.state = State::Queued;
                }
            }
            Event::PreflightChecked { checks } => self.preflight = Some(checks.clone()),
            Event::Escalated { level, role, by } => {
                self.level = self.level.max(*level);
                self.escalations.push(Escalation {
                    level: *level,
                    role: role.clone(),
                    at,
                    by: by.clone(),
                });
            }
            Event::Expired => {
                self.state = State::Expired;
                self.finished_at = Some(at);
            }
            Event::Paused { index } => self.state = State::Paused { step: *index },
            Event::Confirmed { index, .. } | Event::Continued { index, .. } => {
                self.cleared.push(*index);
                self.state = State::Queued;
            }
            Event::Aborted { index, by } => {
                self.state = State::Aborted {
                    step: *index,
                    by: by.clone(),
                };
                self.finished_at = Some(at);
            }
            Event::AbortRequested { index, by } => {
                self.abort_requested = Some(AbortRequest {
                    index: *index,
                    by: by.clone(),
                    at,
                })
            }
            Event::Interrupted { step: Some(index) } => {
                if let Some(record) = self
                    .steps
                    .iter_mut()
                    .rev()
                    .find(|s| s.index == *index && s.result.is_none())
                {
                    record.result = Some(StepResult {
                        outcome: StepOutcome::Interrupted,
                        exit_code: None,
                        duration_ms: (at - record.started_at).num_milliseconds().max(0) as u64,
                        output_tail: String::new(),
                        detail: Some("the rollbot process running it stopped".into()),
                        ..Default::default()
                    });
                }
                self.state = State::Interrupted { step: *index };
            }
            Event::Interrupted { step: None } => self.state = State::Queued,
            Event::Retried { index, .. } => {
                self.reopen();
                self.retry_step = Some(*index);
                // What a person had to confirm before the first attempt, they confirm again.
                self.cleared.retain(|cleared| cleared != index);
                self.state = State::Queued;
            }
            Event::LateResult { .. } => {}
            Event::Skipped { .. } => {
                self.reopen();
                self.state = State::Queued;
            }
            Event::Undeliverable { .. } | Event::PageUpdated { .. } | Event::Noted { .. } => {}
            Event::ChecklistTicked { item, ticked, by } => {
                if *ticked {
                    self.ticks.insert(*item, super::checklist::Tick { by: by.clone(), at });
                } else {
                    self.ticks.remove(item);
                }
            }
            Event::Reminded { n } => self.reminded = self.reminded.max(*n),
            Event::UpdatePosted {
                by,
                text,
                to_status_page,
            } => self.updates.push(UpdateNote {
                by: by.clone(),
                at,
                text: text.clone(),
                to_status_page: *to_status_page,
            }),
            Event::Resolved { by } => self.resolved = Some(Resolution { by: by.clone(), at }),
            Event::FallbackRequested { rollback, runbook, by } => self.fallbacks.push(FallbackLink {
                rollback: *rollback,
                runbook: runbook.clone(),
                by: by.clone(),
                at,
            }),
            Event::Rejected { by, reason } => {
                self.state = State::Rejected {
                    by: by.clone(),
                    reason: reason.clone(),
                };
                self.finished_at = Some(at);
            }
            Event::Cancelled { by } => {
                self.state = State::Cancelled { by: by.clone() };
                self.finished_at = Some(at);
            }
            Event::RunStarted => {
                self.state = State::Running;
                self.started_at = Some(at);
            }
            Event::StepStarted { index } => {
                self.retry_step = None;
                self.steps.push(StepRecord {
                    index: *index,
                    started_at: at,
                    result: None,
                });
            }
            Event::StepFinished { index, result } => {
                if let Some(step) = self.steps.iter_mut().rev().find(|s| s.index == *index) {
                    step.result = Some(result.clone());
                }
            }
            Event::Succeeded => {
                self.state = State::Succeeded;
                self.finished_at = Some(at);
            }
            Event::Failed { step, reason } => {
                self.state = State::Failed {
                    step: *step,
                    reason: reason.clone(),
                };
                self.finished_at = Some(at);
            }
        }
        // The ladder counts from when the run began to wait for a person, not from the request.
        match (awaited, self.awaits_person()) {
            (_, false) => self.awaited_since = None,
            (false, true) if self.state != State::AwaitingApproval => self.awaited_since = Some(at),
            _ => {}
        }
    }

    /// A run that stopped (failed, aborted) goes on again after someone decided.
    fn reopen(&mut self) {
        self.finished_at = None;
        self.abort_requested = None;
    }

    /// Approvals from distinct people that were given for the plan as it is now.
    pub fn valid_approvals(&self) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        self.approvals
            .iter()
            .filter(|a| a.plan_digest == self.plan_digest && seen.insert(&a.by))
            .count()
    }

    /// The step that should run next, if the run is still going.
    /// The step whose start is recorded and whose result is not yet, while the run goes on.
    pub fn step_in_flight(&self) -> Option<usize> {
        if self.state != State::Running {
            return None;
        }
        self.steps.last().filter(|s| s.result.is_none()).map(|s| s.index)
    }

    pub fn next_step(&self) -> Option<usize> {
        if self.state != State::Running {
            return None;
        }
        self.resume_step()
    }

    /// The step the run goes on with, whatever its state: the first, the one after the last
    /// that finished, or a step someone chose to retry. `None` while a step runs, or after the last.
    pub fn resume_step(&self) -> Option<usize> {
        match self.steps.last() {
            None => Some(0),
            Some(StepRecord { result: None, .. }) => None,
            Some(StepRecord {
                index, result: Some(_), ..
            }) if self.retry_step == Some(*index) => Some(*index),
            Some(StepRecord {
                index, result: Some(_), ..
            }) => {
                let next = index + 1;
                (next < self.plan.steps.len()).then_some(next)
            }
        }
    }

    /// The roles that may approve now, each with the level at which it joined.
    pub fn approver_roles_now(&self) -> Vec<(String, usize)> {
        let base = self.approver_roles.iter().map(|r| (r.clone(), 0));
        let joined = self
            .ladder
            .iter()
            .take(self.level)
            .enumerate()
            .map(|(i, l)| (l.role.clone(), i + 1));
        base.chain(joined).collect()
    }

    /// The next ladder level, its role, and when its time comes.
    pub fn next_level(&self) -> Option<(usize, &LadderLevel, DateTime<Utc>)> {
        let next = self.ladder.get(self.level)?;
        Some((
            self.level + 1,
            next,
            self.waiting_since() + chrono::Duration::seconds(next.after_secs as i64),
        ))
    }

    /// Whether the rollback waits for a person: an approval, a gate or a phrase, a decision
    /// after an interruption or a failure. The escalation ladder moves while it does.
    pub fn awaits_person(&self) -> bool {
        match self.state {
            State::AwaitingApproval | State::Paused { .. } | State::Interrupted { .. } => true,
            // Once someone marked the incident resolved, a failure waits for nobody.
            State::Failed { .. } => self.resolved.is_none() && self.fallbacks.is_empty(),
            _ => false,
        }
    }

    /// Since when the current wait for a person began (the request, for an approval).
    pub fn waiting_since(&self) -> DateTime<Utc> {
        self.awaited_since.unwrap_or(self.requested_at)
    }

    pub fn elapsed(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// How long each part of a rollback's path took, from its record: what a drill reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTimings {
    pub to_first_approval: Option<chrono::Duration>,
    /// Each approval level that was reached (0: the severity's own approvers), its role when it
    /// was a ladder level, and how long the request waited there.
    pub levels: Vec<(usize, Option<String>, chrono::Duration)>,
    /// From the run's start to its end, gates included.
    pub running: Option<chrono::Duration>,
    pub total: chrono::Duration,
}

pub fn path_timings(history: &[Recorded]) -> Option<PathTimings> {
    let requested = history.first()?.at;
    let last = history.last()?.at;
    let first_approval = history
        .iter()
        .find(|r| matches!(r.event, Event::Approved { .. }))
        .map(|r| r.at);
    let run_started = history.iter().find(|r| r.event == Event::RunStarted).map(|r| r.at);
    let decided = history
        .iter()
        .find(|r| {
            matches!(
                r.event,
                Event::RunStarted | Event::Rejected { .. } | Event::Cancelled { .. } | Event::Expired
            )
        })
        .map_or(last, |r| r.at);
    let mut boundaries: Vec<(usize, Option<String>, DateTime<Utc>)> = vec![(0, None, requested)];
    for r in history {
        if let Event::Escalated { level, role, .. } = &r.event
            && r.at <= decided
        {
            boundaries.push((*level, Some(role.clone()), r.at));
        }
    }
    let levels = boundaries
        .iter()
        .enumerate()
        .map(|(i, (level, role, from))| {
            let until = boundaries.get(i + 1).map_or(decided, |next| next.2);
            (*level, role.clone(), until - *from)
        })
        .collect();
    let finished = history
        .iter()
        .rev()
        .find(|r| {
            matches!(
                r.event,
                Event::Succeeded | Event::Failed { .. } | Event::Aborted { .. } | Event::Cancelled { .. }
            )
        })
        .map(|r| r.at);
    Some(PathTimings {
        to_first_approval: first_approval.map(|at| at - requested),
        levels,
        running: run_started.zip(finished).map(|(start, end)| end - start),
        total: last - requested,
    })
}

fn two_person_rule() -> bool {
    true
}
