//! A rollback is the fold of its events; the events are the record.
use super::plan::Plan;
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
    },
    Approved {
        by: UserId,
        role: String,
        plan_digest: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub outcome: StepOutcome,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The last bytes of combined stdout and stderr.
    pub output_tail: String,
    /// Why it failed, in words, when the exit code does not say it.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Succeeded,
    Failed,
    TimedOut,
    CouldNotStart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    AwaitingApproval,
    /// Approved (or exempt from approval) and waiting for the executor.
    Queued,
    Running,
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
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::AwaitingApproval => "awaiting_approval",
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed { .. } => "failed",
            State::Rejected { .. } => "rejected",
            State::Cancelled { .. } => "cancelled",
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed { .. } | State::Rejected { .. } | State::Cancelled { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: UserId,
    pub role: String,
    pub at: DateTime<Utc>,
    pub plan_digest: String,
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
    pub state: State,
    pub approvals: Vec<Approval>,
    pub steps: Vec<StepRecord>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Rollback {
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
            state: if *approvals_required == 0 {
                State::Queued
            } else {
                State::AwaitingApproval
            },
            approvals: vec![],
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
        match &recorded.event {
            Event::Requested { .. } => {}
            Event::Approved { by, role, plan_digest } => {
                self.approvals.push(Approval {
                    by: by.clone(),
                    role: role.clone(),
                    at,
                    plan_digest: plan_digest.clone(),
                });
                if self.valid_approvals() >= self.approvals_required as usize {
                    self.state = State::Queued;
                }
            }
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
    pub fn next_step(&self) -> Option<usize> {
        if self.state != State::Running {
            return None;
        }
        match self.steps.last() {
            None => Some(0),
            Some(StepRecord { result: None, .. }) => None,
            Some(StepRecord {
                index, result: Some(_), ..
            }) => {
                let next = index + 1;
                (next < self.plan.steps.len()).then_some(next)
            }
        }
    }

    pub fn elapsed(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }
}
