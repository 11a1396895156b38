//! The executor runs approved plans, one step at a time, recording each step's start before it
//! runs and its result after, so the record always says what was in flight.
use super::Engine;
use super::command::{self, CommandSpec};
use crate::domain::{Action, Actor, Rollback, RollbackId, State, StepAction, StepOutcome, StepResult};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

pub struct Executor {
    engine: Arc<Engine>,
    /// This process's name on the leases it holds.
    owner: String,
}

impl Executor {
    pub fn new(engine: Arc<Engine>) -> Self {
        Executor {
            engine,
            owner: format!("rollbot-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Claims the oldest approved rollback, if any, by recording that its run started. Only
    /// one claimant can win: the start is a versioned write.
    pub async fn claim_next(&self) -> Result<Option<Rollback>> {
        for id in self.engine.store.waiting_to_run(8).await? {
            match self.engine.act(id, &Action::StartRun, &Actor::system()).await? {
                Ok(rollback) => return Ok(Some(rollback)),
                Err(refusal) => {
                    tracing::warn!(rollback = %id, ?refusal, "not starting this run");
                }
            }
        }
        Ok(None)
    }

    /// Runs a claimed rollback's steps until it succeeds, fails or stops being runnable.
    pub async fn execute(&self, rollback: Rollback) -> Result<()> {
        let id = rollback.id;
        self.renew(id).await?;
        let outcome = self.run_steps(rollback).await;
        // Whatever happened, this process no longer runs it; a paused or finished rollback
        // needs no lease, and a failure here leaves the lease to lapse.
        let _ = self.engine.store.release_lease(id, &self.owner).await;
        outcome
    }

    async fn renew(&self, id: RollbackId) -> Result<()> {
        let until = self.engine.clock.now() + chrono::Duration::from_std(self.engine.config.execution_lease)?;
        self.engine.store.hold_lease(id, &self.owner, until).await
    }

    /// Runs a step's process while renewing the lease, so other processes know it is alive.
    async fn while_leased<T>(&self, id: RollbackId, work: impl std::future::Future<Output = T>) -> T {
        let mut renewals = tokio::time::interval(self.engine.config.execution_lease / 3);
        renewals.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = renewals.tick() => {
                    if let Err(e) = self.renew(id).await {
                        tracing::warn!(rollback = %id, error = format!("{e:#}"), "could not renew the execution lease");
                    }
                }
            }
        }
    }

    async fn run_steps(&self, mut rollback: Rollback) -> Result<()> {
        let id = rollback.id;
        while let Some(index) = rollback.next_step() {
            rollback = match self.step_action(id, Action::StartStep { index }).await? {
                Some(r) => r,
                None => return Ok(()),
            };
            if let State::Paused { .. } = rollback.state {
                // A person must confirm or pass this step; their click queues the run again.
                return Ok(());
            }
            let result = match &rollback.plan.steps[index].action {
                StepAction::Gate { .. } => gate_passed(index),
                StepAction::Command {
                    argv,
                    env,
                    workdir,
                    timeout_secs,
                } => {
                    let mut env = env.clone();
                    env.insert("ROLLBOT_ROLLBACK_ID".into(), id.to_string());
                    env.insert("ROLLBOT_SERVICE".into(), rollback.request.service.clone());
                    let spec = CommandSpec {
                        argv,
                        env: &env,
                        workdir: workdir.as_deref(),
                        timeout: Duration::from_secs(*timeout_secs),
                        tail_bytes: self.engine.config.output_tail_bytes,
                    };
                    self.while_leased(id, command::run(spec)).await
                }
            };
            tracing::info!(rollback = %id, step = index + 1, outcome = ?result.outcome, exit_code = ?result.exit_code, duration_ms = result.duration_ms, "step finished");
            rollback = match self.step_action(id, Action::FinishStep { index, result }).await? {
                Some(r) => r,
                None => return Ok(()),
            };
        }
        Ok(())
    }

    async fn step_action(&self, id: RollbackId, action: Action) -> Result<Option<Rollback>> {
        match self.engine.act(id, &action, &Actor::system()).await? {
            Ok(r) => Ok(Some(r)),
            Err(refusal) => {
                tracing::error!(rollback = %id, ?refusal, "the run stopped: the rollback changed under the executor");
                Ok(None)
            }
        }
    }

    /// Claims and runs one rollback to its end; `false` when nothing was waiting.
    pub async fn run_once(&self) -> Result<bool> {
        match self.claim_next().await? {
            Some(rollback) => {
                self.execute(rollback).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The serving loop: each claimed rollback runs in its own task, so a long runbook does
    /// not hold up the next one. On shutdown it stops claiming, lets running steps finish for
    /// `shutdown_grace`, then kills what is left and records it as interrupted.
    pub async fn run_forever(self: Arc<Self>, shutdown: crate::shutdown::Shutdown) {
        let mut running = tokio::task::JoinSet::new();
        let in_flight = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        loop {
            while let Some(done) = running.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a run's task ended abnormally");
                }
            }
            match self.claim_next().await {
                Ok(Some(rollback)) => {
                    let (this, in_flight) = (self.clone(), in_flight.clone());
                    in_flight.lock().expect("in-flight lock").insert(rollback.id);
                    running.spawn(async move {
                        let id = rollback.id;
                        if let Err(e) = this.execute(rollback).await {
                            tracing::error!(rollback = %id, error = format!("{e:#}"), "executing the rollback failed");
                        }
                        in_flight.lock().expect("in-flight lock").remove(&id);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "looking for approved rollbacks failed"),
            }
            tokio::select! {
                _ = self.engine.run_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait() => break,
            }
        }
        let grace = self.engine.config.shutdown_grace;
        if running.is_empty() {
            return;
        }
        tracing::info!(
            runs = running.len(),
            grace_secs = grace.as_secs(),
            "waiting for running steps to finish"
        );
        let drained = tokio::time::timeout(grace, async { while running.join_next().await.is_some() {} }).await;
        if drained.is_ok() {
            return;
        }
        running.abort_all();
        while running.join_next().await.is_some() {}
        let abandoned: Vec<RollbackId> = in_flight.lock().expect("in-flight lock").iter().copied().collect();
        for id in abandoned {
            match self.engine.act(id, &Action::Interrupt, &Actor::system()).await {
                Ok(Ok(_)) => {
                    tracing::warn!(rollback = %id, "shutting down: the running step was stopped and the rollback marked interrupted")
                }
                Ok(Err(refusal)) => tracing::debug!(rollback = %id, ?refusal, "nothing to interrupt"),
                // The lease will lapse and another replica will record it.
                Err(e) => {
                    tracing::error!(rollback = %id, error = format!("{e:#}"), "could not record the interruption")
                }
            }
            let _ = self.engine.store.release_lease(id, &self.owner).await;
        }
    }
}

/// A gate step has nothing to run: it succeeds once someone passed it.
fn gate_passed(index: usize) -> StepResult {
    StepResult {
        outcome: StepOutcome::Succeeded,
        exit_code: None,
        duration_ms: 0,
        output_tail: String::new(),
        detail: Some(format!("gate {} passed", index + 1)),
    }
}
