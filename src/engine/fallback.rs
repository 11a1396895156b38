//! A runbook's fallback, requested from a stopped rollback's card: the form is filled in from
//! the stopped rollback, and the new request is linked to it once recorded.
use super::Engine;
use crate::domain::decide::{fallback_ask, may_run_fallback};
use crate::domain::plan::Ask;
use crate::domain::{Action, Actor, Refusal, Rollback, RollbackId};
use anyhow::{Context, Result};

impl Engine {
    /// The stopped rollback and the request form's first answers for its fallback, or why
    /// `actor` may not request it now.
    pub async fn fallback_form(&self, id: RollbackId, actor: &Actor) -> Result<Result<(Rollback, Ask), Refusal>> {
        let Some(stopped) = self.store.load(id).await.with_context(|| format!("loading {id}"))? else {
            return Ok(Err(Refusal::NoSuchRollback { id: Some(id) }));
        };
        let runbook = match may_run_fallback(&stopped, actor, &self.config.policy) {
            Ok(runbook) => runbook,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let runbook = self.config.catalog.runbooks.get(runbook).with_context(|| {
            format!("{id} names the fallback runbook {runbook}, which the configuration no longer has")
        })?;
        let ask = fallback_ask(&stopped, runbook, self.config.policy.max_reason_chars);
        Ok(Ok((stopped, ask)))
    }

    /// Before a fallback request is filed: whether its stopped rollback still hands on to it.
    pub(super) async fn may_file_fallback(
        &self,
        of: RollbackId,
        actor: &Actor,
        delivery: Option<&str>,
    ) -> Result<FallbackFiling> {
        let Some(stopped) = self.store.load(of).await.with_context(|| format!("loading {of}"))? else {
            return Ok(FallbackFiling::Refused(Refusal::NoSuchRollback { id: Some(of) }));
        };
        let refusal = match may_run_fallback(&stopped, actor, &self.config.policy) {
            Ok(_) => return Ok(FallbackFiling::Proceed),
            Err(refusal) => refusal,
        };
        // The same submission again, after it was filed and linked, is answered with what it filed.
        if let Refusal::FallbackAlreadyRequested { fallback, .. } = &refusal
            && let Some(filed) = self
                .store
                .load(*fallback)
                .await
                .with_context(|| format!("loading {fallback}"))?
            && delivery.is_some()
            && filed.request.delivery.as_deref() == delivery
        {
            return Ok(FallbackFiling::FiledAlready(filed));
        }
        Ok(FallbackFiling::Refused(refusal))
    }

    /// Links a recorded fallback request to the rollback it follows. Slack sending the same
    /// submission again finds the link made; the request stands whatever happens here, since
    /// it is recorded and its card says what it follows.
    pub(super) async fn link_fallback(&self, fallback: &Rollback, actor: &Actor) -> Result<()> {
        let Some(of) = fallback.request.fallback_of else {
            return Ok(());
        };
        let link = Action::RecordFallback {
            rollback: fallback.id,
            runbook: fallback.request.runbook.clone(),
        };
        match self.act(of, &link, actor).await? {
            Ok(_) => {}
            Err(Refusal::FallbackAlreadyRequested { fallback: linked, .. }) if linked == fallback.id => {}
            Err(refusal) => {
                tracing::warn!(rollback = %of, fallback = %fallback.id, ?refusal, "the fallback could not be linked to the rollback it follows");
            }
        }
        Ok(())
    }
}

/// What a fallback request may do before it is filed.
pub(super) enum FallbackFiling {
    Proceed,
    /// Slack sent the same submission again: this is what it filed the first time.
    FiledAlready(Rollback),
    Refused(Refusal),
}
