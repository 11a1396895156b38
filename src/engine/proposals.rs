//! Proposals from alerts: recorded as notifications arrive, started or dismissed by people.
//! Starting files an ordinary request by the person who clicked, so every policy rule applies;
//! a service's `auto_request` files it as rollbot, and only where a person must still approve.
use super::{Engine, MAX_CONFLICT_RETRIES};
use crate::domain::plan::{Ask, PlanRequest};
use crate::domain::proposal::AutoRequestRefused;
use crate::domain::proposal::{
    AlertGroup, Decision, Proposal, ProposalAction, ProposalId, decide_proposal, may_file_automatically,
};
use crate::domain::{Actor, Refusal, Rollback};
use crate::store::Filed;
use anyhow::{Context, Result, bail};

impl Engine {
    /// Records what one notification says about one service's alerts: a new proposal, or the
    /// open one brought up to date. `None` when there is nothing to show (a resolved group with
    /// no open proposal).
    pub async fn observe_alerts(&self, group: &AlertGroup) -> Result<Option<Proposal>> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let open = self
                .store
                .open_proposals(&group.service)
                .await
                .context("loading the service's open proposals")?;
            let now = self.clock.now();
            let Some(mut next) = Proposal::observe_among(&open, group, now) else {
                return Ok(None);
            };
            let auto_request = next.id.0 == 0
                && self
                    .config
                    .catalog
                    .services
                    .get(&group.service)
                    .is_some_and(|s| s.auto_request);
            let auto_request = auto_request
                && {
                    let every = self
                        .config
                        .alertmanager
                        .as_ref()
                        .map_or(crate::config::DEFAULT_AUTO_REQUEST_EVERY, |a| a.auto_request_every);
                    let last = self
                        .store
                        .last_automatic_request(&next.service)
                        .await
                        .context("looking up the service's last automatic request")?;
                    match may_file_automatically(&next.service, last, every, now) {
                        Ok(()) => true,
                        Err(refusal) => {
                            tracing::info!(service = %next.service, ?refusal, "auto_request is resting for this service; the proposal waits for a person");
                            next.auto_request_refused = Some(AutoRequestRefused::Refused(refusal));
                            false
                        }
                    }
                };
            if auto_request {
                match self.start(&next, &Actor::system()).await? {
                    Started::Yes(rollback, saved) => {
                        tracing::info!(proposal = %saved.id, rollback = %rollback.id, service = %saved.service, "filed a rollback request from an alert (auto_request)");
                        return Ok(Some(saved));
                    }
                    Started::Conflict => continue,
                    Started::Refused(refusal) => {
                        tracing::info!(service = %next.service, ?refusal, "auto_request did not file a request; the proposal waits for a person");
                        next.auto_request_refused = Some(AutoRequestRefused::Refused(refusal));
                    }
                }
            }
            if let Some(saved) = self
                .store
                .save_proposal(&next, now)
                .await
                .context("recording the proposal")?
            {
                tracing::info!(proposal = %saved.id, service = %saved.service, group = %saved.group_key, resolved = saved.resolved_at.is_some(), notifications = saved.notifications, "alert group recorded");
                self.outbox_ready.notify_one();
                return Ok(Some(saved));
            }
        }
        bail!(
            "the proposal for alert group {} kept changing; gave up",
            group.group_key
        )
    }

    /// `actor` clicked *Start rollback*: their request, from what the alert says.
    pub async fn start_proposal(&self, id: ProposalId, actor: &Actor) -> Result<Result<Rollback, Refusal>> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some(proposal) = self.store.load_proposal(id).await? else {
                return Ok(Err(Refusal::NoSuchProposal { id }));
            };
            match self.start(&proposal, actor).await? {
                Started::Yes(rollback, _) => return Ok(Ok(rollback)),
                Started::Refused(refusal) => return Ok(Err(refusal)),
                Started::Conflict => continue,
            }
        }
        bail!("{id} kept changing under a start; gave up")
    }

    /// `actor` clicked *Dismiss*: the proposal closes for everyone, and its card says who.
    pub async fn dismiss_proposal(&self, id: ProposalId, actor: &Actor) -> Result<Result<Proposal, Refusal>> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some(proposal) = self.store.load_proposal(id).await? else {
                return Ok(Err(Refusal::NoSuchProposal { id }));
            };
            let now = self.clock.now();
            let decision = match decide_proposal(&proposal, ProposalAction::Dismiss, actor, &self.config.policy, now) {
                Ok(decision) => decision,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let next = Proposal {
                decision: Some(decision),
                ..proposal
            };
            if let Some(saved) = self.store.save_proposal(&next, now).await? {
                tracing::info!(proposal = %id, by = %actor.user, "proposal dismissed");
                self.outbox_ready.notify_one();
                return Ok(Ok(saved));
            }
        }
        bail!("{id} kept changing under a dismissal; gave up")
    }

    /// Files the request a proposal stands for, as `actor`, and marks the proposal started,
    /// in one transaction.
    async fn start(&self, proposal: &Proposal, actor: &Actor) -> Result<Started> {
        let now = self.clock.now();
        let decision = if actor.is_system() {
            Decision::Started {
                by: actor.user.clone(),
                at: now,
            }
        } else {
            match decide_proposal(proposal, ProposalAction::Start, actor, &self.config.policy, now) {
                Ok(decision) => decision,
                Err(refusal) => return Ok(Started::Refused(refusal)),
            }
        };
        let ask = Ask {
            plan: PlanRequest {
                service: proposal.service.clone(),
                target: proposal.target.clone(),
                ..Default::default()
            },
            severity: Some(proposal.severity),
            reason: Some(proposal.reason(self.config.policy.max_reason_chars)),
            drill: false,
            fallback_of: None,
            detected: proposal.detected(),
            status_incident: None,
        };
        let (history, consequences) = match self.prepare_request(actor, &proposal.channel.0, &ask, None)? {
            Ok(prepared) => prepared,
            Err(refusal) => return Ok(Started::Refused(refusal)),
        };
        let next = Proposal {
            decision: Some(decision),
            ..proposal.clone()
        };
        match self
            .store
            .start_from_proposal(&next, &history, &consequences, self.open_limit(actor))
            .await
            .context("recording the request started from a proposal")?
        {
            Filed::Yes((rollback, saved)) => {
                self.requested(&rollback, actor);
                Ok(Started::Yes(rollback, saved))
            }
            Filed::TooManyOpen(open) => Ok(Started::Refused(Refusal::TooManyOpenRequests { open })),
            Filed::Locked(open) => Ok(Started::Refused(self.busy(open).await?)),
            Filed::ProposalChanged => Ok(Started::Conflict),
            Filed::Seen(_) => anyhow::bail!("a request started from a proposal has no delivery to have seen"),
        }
    }
}

enum Started {
    Yes(Rollback, Proposal),
    Refused(Refusal),
    /// The proposal changed since it was loaded; nothing was recorded.
    Conflict,
}
