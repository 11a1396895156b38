//! Fires due timers: escalation levels and expiry. Timers live in the store, so they fire after
//! a restart; a claim with a lease and the rollback's version make each fire at most once.
use super::{Change, Changed, Engine};
use crate::domain::{Action, Actor};
use crate::store::{Guard, TimerAction};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

/// How often delivered messages past their retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per statement, so that pruning never holds the outbox long.
const PRUNE_BATCH: i64 = 5_000;

pub struct Timers {
    engine: Arc<Engine>,
    last_prune: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Timers {
    pub fn new(engine: Arc<Engine>) -> Self {
        Timers {
            engine,
            last_prune: Default::default(),
        }
    }

    /// Deletes delivered messages older than `outbox_retention`, at most every `PRUNE_EVERY`;
    /// returns how many. The rollbacks' events (the timeline) are never pruned.
    pub async fn prune(&self) -> Result<u64> {
        {
            let mut last = self.last_prune.lock().expect("prune lock");
            if last.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return Ok(0);
            }
            *last = Some(std::time::Instant::now());
        }
        let before = self.engine.clock.now() - chrono::Duration::from_std(self.engine.config.outbox_retention)?;
        let mut pruned = 0;
        loop {
            let deleted = self.engine.store.prune_outbox(before, PRUNE_BATCH).await?;
            pruned += deleted;
            if deleted < PRUNE_BATCH as u64 {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, "deleted delivered messages past the outbox retention");
        }
        // Slack refuses a signature older than five minutes, so no delivery seen an hour ago
        // can come again.
        let window = self.engine.clock.now() - chrono::Duration::hours(1);
        self.engine.store.forget_deliveries(window).await?;
        Ok(pruned)
    }

    /// Fires what is due now, and marks runs whose process is gone as interrupted; returns how
    /// many things it handled.
    pub async fn run_once(&self) -> Result<usize> {
        let store = &self.engine.store;
        let grace = self.engine.config.execution_lease;
        let lapsed = store
            .runs_with_lapsed_lease(self.engine.clock.store_time(), grace)
            .await?;
        for id in &lapsed {
            // Written only if the lease really lapsed when the write lands, by the store's clock:
            // a holder that renewed meanwhile keeps its run.
            let interrupt = Change::new(Action::Interrupt, Actor::system()).guarded(Guard::Lapsed {
                grace,
                at: self.engine.clock.store_time(),
            });
            match self.engine.change_guarded(*id, interrupt).await? {
                Changed::Written(rollback) => {
                    tracing::warn!(rollback = %id, state = rollback.state.name(), "its process stopped renewing the execution lease")
                }
                Changed::Refused(refusal) => {
                    tracing::debug!(rollback = %id, ?refusal, "lease lapsed but the run had already moved on")
                }
                Changed::Guarded => {
                    tracing::info!(rollback = %id, "its lease was renewed before it could be declared lapsed")
                }
            }
        }
        let due = store
            .claim_due_timers(self.engine.clock.store_time(), LEASE, 32)
            .await?;
        for timer in &due {
            let action = match timer.action {
                TimerAction::Preflight => {
                    self.preflight(timer.rollback_id).await?;
                    store.timer_fired(timer.id, self.engine.clock.now()).await?;
                    continue;
                }
                TimerAction::Escalate { level } => Action::Escalate { level },
                TimerAction::Expire => Action::Expire,
                TimerAction::Resolve => Action::MarkResolved,
                TimerAction::Remind { n } => Action::Remind { n },
            };
            match self.engine.act(timer.rollback_id, &action, &Actor::system()).await? {
                Ok(rollback) => {
                    tracing::info!(rollback = %rollback.id, action = action.name(), "timer fired")
                }
                // Someone got there first (an approval, "Escalate now", a cancel): nothing to do.
                Err(refusal) => {
                    tracing::debug!(rollback = %timer.rollback_id, ?refusal, "timer had nothing left to do")
                }
            }
            store.timer_fired(timer.id, self.engine.clock.now()).await?;
        }
        Ok(due.len() + lapsed.len())
    }

    /// Runs the preflight checks of a rollback that still awaits approval, and records them.
    async fn preflight(&self, id: crate::domain::RollbackId) -> Result<()> {
        let Some(rollback) = self.engine.store.load(id).await? else {
            return Ok(());
        };
        if rollback.preflight.is_some() || rollback.state != crate::domain::State::AwaitingApproval {
            return Ok(());
        }
        let checks = super::preflight::check(&self.engine, &rollback).await;
        let failed = crate::domain::preflight::failed(&checks);
        match self
            .engine
            .act(id, &Action::RecordPreflight { checks }, &Actor::system())
            .await?
        {
            Ok(_) if failed.is_empty() => tracing::info!(rollback = %id, "preflight passed"),
            Ok(_) => tracing::warn!(rollback = %id, ?failed, "preflight found problems"),
            Err(refusal) => tracing::debug!(rollback = %id, ?refusal, "preflight had nothing left to record"),
        }
        Ok(())
    }

    pub async fn run_forever(self: Arc<Self>, shutdown: crate::shutdown::Shutdown) {
        loop {
            if let Err(e) = self.prune().await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "pruning the outbox failed; trying again later"
                );
            }
            match self.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "firing timers failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait() => return,
            }
        }
    }
}
