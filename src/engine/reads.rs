//! What the edges may ask the engine without changing anything: a rollback, the recent ones, a
//! whole record, readiness and figures, and a dry run of an action. The HTTP edge asks these
//! instead of reaching into the store or calling `decide` itself.
use super::Engine;
use crate::domain::{Action, Actor, Recorded, Refusal, Rollback, RollbackId, decide};
use anyhow::Result;

impl Engine {
    /// One rollback as it is now.
    pub async fn rollback(&self, id: RollbackId) -> Result<Option<Rollback>> {
        self.store.load(id).await
    }

    /// The newest rollbacks (only drills with `drills`), optionally of one channel.
    pub async fn recent(&self, channel: Option<&str>, drills: bool, limit: i64) -> Result<Vec<Rollback>> {
        if drills {
            self.store.recent_drills(channel, limit).await
        } else {
            self.store.recent(channel, limit).await
        }
    }

    /// A rollback with every event it recorded: the timeline, the API, the post-mortem.
    pub async fn record(&self, id: RollbackId) -> Result<Option<(Rollback, Vec<Recorded>)>> {
        self.store.load_with_history(id).await
    }

    /// Whether the store answers, for `/readyz`.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await
    }

    /// The store's figures, for `/metrics`.
    pub async fn figures(&self) -> Result<crate::metrics::StoreFigures> {
        self.store.figures(self.clock.now()).await
    }

    /// Rollback `id` for `actor`'s status command, if they may read it where they are.
    pub async fn status_for(&self, id: RollbackId, actor: &Actor) -> Result<Result<Rollback, Refusal>> {
        let Some(rollback) = self.store.load(id).await? else {
            return Ok(Err(Refusal::NoSuchRollback { id: Some(id) }));
        };
        Ok(crate::domain::may_read(&rollback, actor, &self.config.policy).map(|()| rollback))
    }

    /// Rollback `id` with its history, for `actor`'s post-mortem command, if they may read it
    /// where they are.
    pub async fn postmortem_for(
        &self,
        id: RollbackId,
        actor: &Actor,
    ) -> Result<Result<(Rollback, Vec<Recorded>), Refusal>> {
        let Some((rollback, history)) = self.store.load_with_history(id).await? else {
            return Ok(Err(Refusal::NoSuchRollback { id: Some(id) }));
        };
        Ok(crate::domain::may_read(&rollback, actor, &self.config.policy).map(|()| (rollback, history)))
    }

    /// The newest rollbacks of `channel`, for `actor`'s list and status commands (only from
    /// rollbot's own workspace).
    pub async fn recent_for(
        &self,
        actor: &Actor,
        channel: &str,
        drills: bool,
        limit: i64,
    ) -> Result<Result<Vec<Rollback>, Refusal>> {
        if !crate::domain::decide::in_workspace(actor, &self.config.policy) {
            return Ok(Err(Refusal::WrongWorkspace));
        }
        Ok(Ok(self.recent(Some(channel), drills, limit).await?))
    }

    /// What `/rollback plan` shows `actor`, where they are.
    pub fn preview(
        &self,
        wanted: &crate::domain::plan::PlanRequest,
        actor: &Actor,
    ) -> Result<crate::domain::Plan, Refusal> {
        crate::domain::may_preview(actor, &self.config.policy)?;
        self.plan(wanted)
    }

    /// The timers of rollback `id` that have not fired yet: what it waits for, and until when.
    pub async fn pending_timers(
        &self,
        id: RollbackId,
    ) -> Result<Vec<(crate::store::TimerAction, chrono::DateTime<chrono::Utc>)>> {
        self.store.pending_timers(id).await
    }

    /// Whether `actor` may answer the form a button opens, checked before it opens, so that
    /// nobody types into a form that will be refused: only a step that really waits for its
    /// phrase gets a confirmation form. The rollback as it is, or why not.
    pub async fn may_answer(&self, id: RollbackId, form: FormFor, actor: &Actor) -> Result<Result<Rollback, Refusal>> {
        let Some(rollback) = self.store.load(id).await? else {
            return Ok(Err(Refusal::NoSuchRollback { id: Some(id) }));
        };
        let answer = match form {
            FormFor::Confirm { step } => Action::Confirm {
                index: step,
                phrase: (rollback.plan.steps.get(step).and_then(|s| s.confirm.clone())).unwrap_or_default(),
            },
            FormFor::Reject => Action::Reject { reason: None },
            FormFor::PostUpdate => Action::PostUpdate {
                text: "(asking whether the form may open)".into(),
                to_status_page: false,
            },
        };
        Ok(decide(Some(&rollback), &answer, actor, &self.config.policy, self.clock.now()).map(|_| rollback))
    }

    /// When the next message that waits only for its channel's posting slot becomes due.
    pub async fn next_paced_delivery(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.store.next_paced_delivery(self.clock.now()).await
    }
}

/// The forms a button opens before an action can be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormFor {
    /// The destructive step's typed phrase.
    Confirm { step: usize },
    /// Why the request is rejected.
    Reject,
    /// An update on the incident.
    PostUpdate,
}
