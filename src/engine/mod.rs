//! The engine turns actions into recorded decisions: load, decide, store with the effects the
//! events cause, and retry the decision when another writer got there first.
mod beside_a_step;
pub mod command;
pub mod delivery;
mod discovery;
pub mod executor;
mod fallback;
mod losses;
mod preflight;
pub mod proposals;
mod reads;
pub mod secrets;
pub mod steps;
pub mod supervisor;
pub mod timers;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::State;
pub use crate::domain::effects::{Reach, consequences_of};
use crate::domain::plan::{Ask, PlanRequest};
use crate::domain::{Action, Actor, Event, Plan, Recorded, Refusal, Rollback, RollbackId, RollbackRequest, decide};
use crate::store::{Consequences, Effect, Filed, Guard, Store, Written};
use anyhow::{Context, Result};
pub use reads::FormFor;
use std::sync::Arc;
use tokio::sync::Notify;

/// How often a decision is retried after losing an optimistic-concurrency race.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 8;

pub struct Engine {
    pub(crate) store: Store,
    pub(crate) config: Arc<Config>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Woken whenever effects are queued, so delivery starts at once.
    pub(crate) outbox_ready: Arc<Notify>,
    /// Woken whenever a rollback becomes ready to run.
    pub(crate) run_ready: Arc<Notify>,
    /// The rollbacks this process made ready to run, as written, for its executor.
    pub(crate) ready_here: ReadyHere,
    /// Where steps' `${env:NAME}` references are resolved.
    pub(crate) secrets: secrets::SecretSource,
    /// This process's figures for `/metrics`: decisions are counted here as they are recorded.
    pub(crate) metrics: Arc<crate::metrics::Live>,
    /// Seals requests and approvals, and checks them before each step (`domain::seal`).
    pub(crate) seal: crate::domain::seal::SealKey,
    /// The public status page: updated by delivery, asked by preflight about a named incident.
    pub(crate) status_page: Option<crate::statuspage::StatusPage>,
}

/// Rollbacks this process queued to run, handed to its executor as they were written, so a
/// click reaches the step without the executor looking the rollback up and loading it again.
/// The store stays the truth: a copy not kept here (the hand-over is full, or another process
/// queued it) is found by the executor's own look, and a stale copy costs a versioned conflict.
#[derive(Default)]
pub struct ReadyHere {
    queued: std::sync::Mutex<std::collections::VecDeque<Rollback>>,
}

impl ReadyHere {
    /// Enough for any burst of clicks between two turns of the executor's loop.
    const MOST: usize = 1024;

    fn hand_over(&self, rollback: &Rollback) {
        let mut queued = self.queued.lock().expect("ready-here lock");
        if queued.len() < Self::MOST {
            queued.push_back(rollback.clone());
        }
    }

    pub fn take_one(&self) -> Option<Rollback> {
        self.queued.lock().expect("ready-here lock").pop_front()
    }

    pub fn take_all(&self) -> Vec<Rollback> {
        self.queued.lock().expect("ready-here lock").drain(..).collect()
    }
}

fn events_of(history: &[Recorded]) -> Vec<Event> {
    history.iter().map(|r| r.event.clone()).collect()
}

/// One write's worth of intent on an existing rollback: an action by someone, optionally
/// followed by the action its result calls for (the executor starts a run and its first step,
/// or finishes a step and starts the next, in one write), optionally taking the run's lease.
pub struct Change {
    action: Action,
    actor: Actor,
    known: Option<Rollback>,
    then: Option<fn(&Rollback) -> Option<Action>>,
    lease: Option<crate::store::Lease>,
    guard: Guard,
}

/// What became of a [`Change`].
#[derive(Debug)]
pub enum Changed {
    Written(Rollback),
    Refused(Refusal),
    /// Its guard did not hold: the writer lost the run's lease, or the lease it meant to
    /// declare lapsed is held. Nothing was written.
    Guarded,
}

impl Change {
    pub fn new(action: Action, actor: Actor) -> Change {
        Change {
            action,
            actor,
            known: None,
            then: None,
            lease: None,
            guard: Guard::Version,
        }
    }

    /// Write only if `guard` holds as well as the version.
    pub fn guarded(mut self, guard: Guard) -> Change {
        self.guard = guard;
        self
    }

    /// Decide on this copy instead of loading the rollback: the one this process last wrote.
    pub fn on(mut self, known: Rollback) -> Change {
        self.known = Some(known);
        self
    }

    pub fn then(mut self, next: fn(&Rollback) -> Option<Action>) -> Change {
        self.then = Some(next);
        self
    }

    pub fn holding(mut self, lease: crate::store::Lease) -> Change {
        self.lease = Some(lease);
        self
    }
}

impl Engine {
    /// What `/rollback plan` and `rollbot plan` show, and what a request freezes.
    pub fn plan(&self, wanted: &PlanRequest) -> Result<Plan, Refusal> {
        self.config.catalog.freeze(wanted)
    }

    /// Records a new rollback request, or says why not. Nothing is stored on refusal.
    /// `delivery` names the signed delivery it came in (see `RollbackRequest::delivery`): the
    /// same delivery again is answered with the rollback it filed the first time.
    pub async fn request(
        &self,
        actor: &Actor,
        channel: &str,
        ask: &Ask,
        delivery: Option<&str>,
    ) -> Result<Result<Rollback, Refusal>> {
        if let Some(of) = ask.fallback_of {
            match self.may_file_fallback(of, actor, delivery).await? {
                fallback::FallbackFiling::Proceed => {}
                fallback::FallbackFiling::FiledAlready(filed) => return Ok(Ok(filed)),
                fallback::FallbackFiling::Refused(refusal) => return Ok(Err(refusal)),
            }
        }
        let (history, consequences) = match self.prepare_request(actor, channel, ask, delivery)? {
            Ok(prepared) => prepared,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let filed = self
            .store
            .create_rollback(&history, &consequences, self.open_limit(actor))
            .await
            .context("recording the rollback request")?;
        match filed {
            Filed::Yes(rollback) => {
                self.requested(&rollback, actor);
                self.link_fallback(&rollback, actor).await?;
                Ok(Ok(rollback))
            }
            Filed::Seen(rollback) => {
                tracing::info!(rollback = %rollback.id, "the same signed request came again; answered as the first");
                self.link_fallback(&rollback, actor).await?;
                Ok(Ok(rollback))
            }
            Filed::TooManyOpen(open) => Ok(Err(Refusal::TooManyOpenRequests { open })),
            Filed::Locked(open) => Ok(Err(self.busy(open).await?)),
            Filed::ProposalChanged => anyhow::bail!("a plain request reported a changed proposal"),
        }
    }

    /// Why a request waits for `open`, the rollback holding its lock.
    pub(crate) async fn busy(&self, open: RollbackId) -> Result<Refusal> {
        let holder = self
            .store
            .load(open)
            .await
            .with_context(|| format!("loading {open}, which holds the lock"))?
            .with_context(|| format!("{open} holds the lock but cannot be loaded"))?;
        let card = self.store.card(open).await.ok().flatten();
        Ok(Refusal::LockHeld {
            open,
            service: holder.request.service.clone(),
            state: holder.state.clone(),
            requester: holder.request.requester.clone(),
            card: card.map(|c| (c.channel, c.ts)),
        })
    }

    /// How many open requests `actor` may have. rollbot's own requests (`auto_request`) are
    /// bounded by one per alert group instead, so an alert storm is not cut short.
    fn open_limit(&self, actor: &Actor) -> Option<usize> {
        (!actor.is_system()).then_some(self.config.policy.max_open_requests_per_person)
    }

    /// After a request is recorded: log it and wake the workers.
    fn requested(&self, rollback: &Rollback, actor: &Actor) {
        tracing::info!(rollback = %rollback.id, service = %rollback.request.service, severity = %rollback.request.severity, requester = %actor.user, "rollback requested");
        self.outbox_ready.notify_one();
        self.wake_executor_for(rollback);
    }

    fn wake_executor_for(&self, rollback: &Rollback) {
        if rollback.state == State::Queued {
            self.ready_here.hand_over(rollback);
            self.run_ready.notify_one();
        }
    }

    /// A request decided and ready to record: its first events and what they cause.
    fn prepare_request(
        &self,
        actor: &Actor,
        channel: &str,
        ask: &Ask,
        delivery: Option<&str>,
    ) -> Result<Result<(Vec<Recorded>, Consequences), Refusal>> {
        let plan = match self.plan(&ask.plan) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let (Some(incident), None) = (&ask.status_incident, &self.config.status_page) {
            return Ok(Err(Refusal::NoStatusPage {
                incident: incident.clone(),
            }));
        }
        // The edges ask for a severity (text or form) before they get here.
        let severity = ask
            .severity
            .context("a rollback request reached the engine without a severity")?;
        let request = RollbackRequest {
            service: plan.service.clone(),
            runbook: plan.runbook.clone(),
            target: ask.plan.target.clone(),
            params: ask.plan.params.clone(),
            severity,
            reason: ask.reason.clone(),
            requester: actor.user.clone(),
            channel: crate::domain::ChannelId(channel.to_owned()),
            team: actor.team.clone(),
            drill: ask.drill,
            lock: self.config.catalog.lock_key(&plan, ask.drill),
            delivery: delivery.map(str::to_owned),
            fallback_of: ask.fallback_of,
            detected: ask.detected.clone(),
            status_incident: ask.status_incident.clone(),
            // A drill rehearses the response, not its aftermath: no post-incident checklists.
            checklists: if ask.drill {
                vec![]
            } else {
                self.config.checklists.for_request(&plan.runbook, severity)
            },
        };
        let now = self.clock.now();
        let action = Action::Request { request, plan };
        let events = match decide(None, &action, actor, &self.config.policy, now) {
            Ok(events) => events,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut history: Vec<Recorded> = events
            .into_iter()
            .map(|event| Recorded {
                at: now,
                actor: actor.user.clone(),
                event,
            })
            .collect();
        let unsealed =
            Rollback::from_history(RollbackId(0), &history).expect("decide starts a rollback with its request");
        if let Some(Recorded {
            event: Event::Requested { seal, .. },
            ..
        }) = history.first_mut()
        {
            *seal = Some(self.seal.request(&unsealed));
        }
        let draft = Rollback::from_history(RollbackId(0), &history).expect("decide starts a rollback with its request");
        let consequences = consequences_of(false, &draft, &events_of(&history), &self.reach());
        Ok(Ok((history, consequences)))
    }

    /// Takes an action on an existing rollback. Concurrent writers are serialised by the
    /// rollback's version: the loser decides again on the newer state, so a second click on
    /// an already-approved rollback gets a refusal instead of a second approval.
    pub async fn act(&self, id: RollbackId, action: &Action, actor: &Actor) -> Result<Result<Rollback, Refusal>> {
        self.change(id, Change::new(action.clone(), actor.clone())).await
    }

    /// Records a [`Change`]: decides its action (and its follow-up) on the rollback and writes
    /// the events in one versioned write. A stale `known` copy or a concurrent writer costs
    /// a reload and a fresh decision, never a wrong one.
    pub async fn change(&self, id: RollbackId, change: Change) -> Result<Result<Rollback, Refusal>> {
        Ok(match self.change_guarded(id, change).await? {
            Changed::Written(rollback) => Ok(rollback),
            Changed::Refused(refusal) => Err(refusal),
            Changed::Guarded => Err(Refusal::OutOfOrder {
                id,
                detail: "the run's lease did not allow it".into(),
            }),
        })
    }

    /// [`Engine::change`], telling a guard that did not hold apart from a refusal.
    pub async fn change_guarded(&self, id: RollbackId, change: Change) -> Result<Changed> {
        let Change {
            action,
            actor,
            mut known,
            then,
            lease,
            guard,
        } = change;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut rollback = match known.take() {
                Some(rollback) => rollback,
                None => match self.store.load(id).await.with_context(|| format!("loading {id}"))? {
                    Some(rollback) => rollback,
                    None => return Ok(Changed::Refused(Refusal::NoSuchRollback { id: Some(id) })),
                },
            };
            let now = self.clock.now();
            let mut events = match decide(Some(&rollback), &action, &actor, &self.config.policy, now) {
                Ok(events) => events,
                Err(refusal) => return Ok(Changed::Refused(refusal)),
            };
            for event in &mut events {
                if let Event::Approved {
                    by,
                    role,
                    plan_digest,
                    seal,
                    ..
                } = event
                {
                    *seal = Some(self.seal.approval(plan_digest, by, role));
                }
            }
            let expected_version = rollback.version;
            let awaited_approval = rollback.state == State::AwaitingApproval;
            let was_finished = rollback.state.is_finished();
            let record = |events: &[Event]| -> Vec<Recorded> {
                events
                    .iter()
                    .cloned()
                    .map(|event| Recorded {
                        at: now,
                        actor: actor.user.clone(),
                        event,
                    })
                    .collect()
            };
            let mut recorded = record(&events);
            for r in &recorded {
                rollback.apply(r);
            }
            let mut consequences = consequences_of(awaited_approval, &rollback, &events, &self.reach());
            // The follow-up is decided on the state the action left, and its consequences
            // follow the action's; if it is refused, the action is recorded alone.
            if let Some(next) = then.and_then(|then| then(&rollback))
                && let Ok(more) = decide(Some(&rollback), &next, &actor, &self.config.policy, now)
            {
                let was_awaiting = rollback.state == State::AwaitingApproval;
                let more_recorded = record(&more);
                for r in &more_recorded {
                    rollback.apply(r);
                }
                consequences.then(consequences_of(was_awaiting, &rollback, &more, &self.reach()));
                events.extend(more);
                recorded.extend(more_recorded);
            }
            // A stopped run that goes on again (a retry or a skip after a failure) takes its lock
            // back: not while another rollback of the same service has started meanwhile.
            if was_finished
                && !rollback.state.is_finished()
                && let Some(lock) = &rollback.request.lock
                && let Some(open) = self.store.open_holding(lock).await?
                && open != id
            {
                return Ok(Changed::Refused(self.busy(open).await?));
            }
            consequences.lease = lease.clone();
            consequences.guard = guard.clone();
            match self
                .store
                .append(&rollback, expected_version, &recorded, &consequences)
                .await
                .with_context(|| format!("recording {} on {id}", action.name()))?
            {
                Written::Ok => {
                    tracing::info!(rollback = %id, action = action.name(), actor = %actor.user, state = rollback.state.name(), "rollback changed");
                    self.count(awaited_approval, &rollback, &events, now);
                    self.outbox_ready.notify_one();
                    self.wake_executor_for(&rollback);
                    return Ok(Changed::Written(rollback));
                }
                Written::Conflict => continue,
                Written::Guarded => return Ok(Changed::Guarded),
            }
        }
        anyhow::bail!(
            "{id} kept changing under {}; gave up after {MAX_CONFLICT_RETRIES} attempts",
            action.name()
        )
    }

    /// Feeds the metrics that come from decisions once they are recorded (never for a lost race).
    fn count(&self, awaited_approval: bool, after: &Rollback, events: &[Event], now: chrono::DateTime<chrono::Utc>) {
        for event in events {
            match event {
                Event::Approved { .. }
                    if awaited_approval && after.state != State::AwaitingApproval && !after.request.drill =>
                {
                    let waited = (now - after.requested_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.approved_after(after.request.severity.as_str(), waited);
                }
                Event::Escalated { level, .. } => self.metrics.escalated(*level),
                Event::StepFinished { index, result } => {
                    let kind = after.plan.steps.get(*index).map_or("unknown", |s| s.action.kind());
                    self.metrics
                        .step_finished(kind, result.outcome.name(), result.duration_ms as f64 / 1000.0);
                }
                _ => {}
            }
        }
    }

    fn reach(&self) -> Reach<'_> {
        let page = self.config.status_page.as_ref();
        Reach {
            notify: &self.config.notify_channels,
            status_page: page.is_some(),
            resolve_after: page.and_then(|p| p.resolve_after),
            change_events: self
                .config
                .pagerduty
                .as_ref()
                .is_some_and(|p| p.change_events.is_some()),
        }
    }

    /// Records what changed on a section of a rollback's checklists, then redraws them in
    /// `message` (where they were ticked) so everyone sees the same boxes.
    pub async fn tick_checklist(
        &self,
        id: RollbackId,
        checklist: usize,
        section: usize,
        ticked: Vec<usize>,
        actor: &Actor,
        message: &str,
    ) -> Result<Result<Rollback, Refusal>> {
        let action = Action::TickChecklist {
            checklist,
            section,
            ticked,
        };
        let changed = self.act(id, &action, actor).await?;
        if changed.is_ok() {
            let redraw = Effect::ChecklistChanged {
                message: message.to_owned(),
            };
            self.store.enqueue_for(id, &[redraw], self.clock.now()).await?;
            self.outbox_ready.notify_one();
        }
        Ok(changed)
    }

    /// Queues private answers that belong to no rollback change.
    pub async fn tell(&self, effects: &[Effect]) -> Result<()> {
        self.store.enqueue(effects, self.clock.now()).await?;
        self.outbox_ready.notify_one();
        Ok(())
    }
}
