//! The executor runs approved plans, one step at a time, recording each step's start before it
//! runs and its result after, so the record always says what was in flight.
use super::command::{self, CommandSpec};
use super::secrets::Resolved;
use super::steps::{self, HealthSpec, HttpSpec, SqlSpec};
use super::{Change, Engine};
use crate::domain::{Action, Actor, ChannelId, Rollback, RollbackId, State, StepAction, StepOutcome, StepResult};
use crate::outbound::HttpClient;
use crate::statuspage::{PageStatus, PageUpdate};
use crate::store::{Effect, Lease};
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub struct Executor {
    engine: Arc<Engine>,
    /// This process's name on the leases it holds.
    owner: String,
    /// The client of `http` and `health` steps, or why there is none (no TLS roots).
    outbound: Result<HttpClient, String>,
}

impl Executor {
    pub fn new(engine: Arc<Engine>) -> Self {
        Executor {
            engine,
            owner: format!("rollbot-{}", uuid::Uuid::new_v4().simple()),
            outbound: HttpClient::new().map_err(|e| format!("{e:#}")),
        }
    }

    /// Claims a rollback this process queued, else the oldest approved one, if any, by
    /// recording that its run started. Only one claimant can win: the start is a versioned write.
    pub async fn claim_next(&self) -> Result<Option<Rollback>> {
        while let Some(known) = self.engine.ready_here.take_one() {
            if let Some(rollback) = self.claim(known.id, Some(known)).await? {
                return Ok(Some(rollback));
            }
        }
        for id in self.engine.store.waiting_to_run(8).await? {
            if let Some(rollback) = self.claim(id, None).await? {
                return Ok(Some(rollback));
            }
        }
        Ok(None)
    }

    /// Claims one approved rollback; `None` if it is not (or no longer) waiting to run. The
    /// run's start, this process's lease and the first step's start are one write, so a click
    /// reaches the step's process after a single commit. `known` is the copy this process
    /// wrote when it queued the rollback, if it did.
    async fn claim(&self, id: RollbackId, known: Option<Rollback>) -> Result<Option<Rollback>> {
        let mut start = Change::new(Action::StartRun, Actor::system())
            .then(start_next_step)
            .holding(self.lease()?);
        if let Some(known) = known {
            start = start.on(known);
        }
        match self.engine.change(id, start).await? {
            Ok(rollback) => Ok(Some(rollback)),
            Err(refusal) => {
                tracing::warn!(rollback = %id, ?refusal, "not starting this run");
                Ok(None)
            }
        }
    }

    /// Runs a claimed rollback's steps until it succeeds, fails or stops being runnable.
    pub async fn execute(&self, rollback: Rollback) -> Result<()> {
        let id = rollback.id;
        let outcome = self.run_steps(rollback).await;
        // A run that ended or paused gave its lease up with its last write. One cut short (an
        // error, a refused write) no longer runs here either: release it, or let it lapse.
        let gave_up = matches!(&outcome, Ok(Some(last)) if last.state != State::Running);
        if !gave_up {
            let _ = self.engine.store.release_lease(id, &self.owner).await;
        }
        outcome.map(|_| ())
    }

    fn lease(&self) -> Result<Lease> {
        Ok(Lease {
            owner: self.owner.clone(),
            until: self.engine.clock.now() + chrono::Duration::from_std(self.engine.config.execution_lease)?,
        })
    }

    async fn renew(&self, id: RollbackId) -> Result<()> {
        let Lease { owner, until } = self.lease()?;
        self.engine.store.hold_lease(id, &owner, until).await
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

    /// Runs the step the last write started, records its result and starts the next in one
    /// write, until the run ends or pauses (a person must confirm a step; their click queues
    /// the run again). Returns the rollback as last written, `None` if a write was refused.
    async fn run_steps(&self, mut rollback: Rollback) -> Result<Option<Rollback>> {
        let id = rollback.id;
        while let Some(index) = rollback.step_in_flight() {
            let step = &rollback.plan.steps[index];
            let action = match (rollback.request.drill, &step.drill) {
                (false, _) => Some(&step.action),
                (true, Some(instead)) => Some(instead.as_ref()),
                (true, None) => None,
            };
            let result = match action {
                Some(StepAction::Gate { .. }) => gate_passed(index),
                // A drill passes gates like a rollback, and shows every other step without running it.
                None if matches!(step.action, StepAction::Gate { .. }) => gate_passed(index),
                None => StepResult {
                    outcome: StepOutcome::Rehearsed,
                    ..Default::default()
                },
                Some(action) => self.while_leased(id, self.with_retries(&rollback, index, action)).await,
            };
            tracing::info!(rollback = %id, step = index + 1, outcome = ?result.outcome, exit_code = ?result.exit_code, duration_ms = result.duration_ms, "step finished");
            let finish = Change::new(Action::FinishStep { index, result }, Actor::system())
                .on(rollback)
                .then(start_next_step);
            rollback = match self.step_action(id, finish).await? {
                Some(r) => r,
                None => return Ok(None),
            };
        }
        Ok(Some(rollback))
    }

    /// Runs an action, and again after a growing delay while it fails and retries are left.
    async fn with_retries(&self, rollback: &Rollback, index: usize, action: &StepAction) -> StepResult {
        let step = &rollback.plan.steps[index];
        let mut attempt = 1;
        loop {
            let mut result = self.run_action(rollback, action).await;
            if attempt > 1 {
                result.attempts = Some(attempt);
            }
            if result.outcome.passed() || attempt > step.retries {
                return result;
            }
            let delay = Duration::from_millis(step.retry_delay_ms.saturating_mul(1 << (attempt - 1).min(10)))
                .min(MAX_RETRY_DELAY);
            tracing::warn!(rollback = %rollback.id, step = index + 1, attempt, outcome = ?result.outcome, retry_in_ms = delay.as_millis() as u64, "step failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn run_action(&self, rollback: &Rollback, action: &StepAction) -> StepResult {
        let id = rollback.id;
        let engine = &self.engine;
        let tail_bytes = engine.config.output_tail_bytes;
        let outbound = || self.outbound.as_ref().map_err(|e| format!("no HTTP client: {e}"));
        match action {
            StepAction::Gate { .. } => unreachable!("gates are passed, not run"),
            StepAction::Command {
                argv,
                env,
                workdir,
                timeout_secs,
            } => {
                let mut resolved = Resolved::default();
                let prepared = (|| -> Result<_, String> {
                    let argv: Vec<String> = argv
                        .iter()
                        .map(|a| resolved.resolve(&engine.secrets, a))
                        .collect::<Result<_, _>>()?;
                    let env: BTreeMap<String, String> = env
                        .iter()
                        .map(|(k, v)| resolved.resolve(&engine.secrets, v).map(|v| (k.clone(), v)))
                        .collect::<Result<_, _>>()?;
                    Ok((argv, env))
                })();
                let (argv, mut env) = match prepared {
                    Ok(p) => p,
                    Err(detail) => return could_not_start(detail),
                };
                env.insert("ROLLBOT_ROLLBACK_ID".into(), id.to_string());
                env.insert("ROLLBOT_SERVICE".into(), rollback.request.service.clone());
                let spec = CommandSpec {
                    argv: &argv,
                    env: &env,
                    workdir: workdir.as_deref(),
                    timeout: Duration::from_secs(*timeout_secs),
                    tail_bytes,
                };
                let mut result = command::run(spec).await;
                result.output_tail = resolved.scrub(&result.output_tail);
                result.detail = result.detail.map(|d| resolved.scrub(&d));
                result
            }
            StepAction::Http {
                method,
                url,
                headers,
                body,
                expect_status,
                timeout_secs,
            } => {
                let client = match outbound() {
                    Ok(c) => c,
                    Err(detail) => return could_not_start(detail),
                };
                let spec = HttpSpec {
                    method,
                    url,
                    headers,
                    body: body.as_deref(),
                    expect_status,
                    timeout: Duration::from_secs(*timeout_secs),
                    tail_bytes,
                };
                steps::http(client, &engine.secrets, spec).await
            }
            StepAction::Health {
                url,
                expect_status,
                body_contains,
                within_secs,
                every_ms,
            } => {
                let client = match outbound() {
                    Ok(c) => c,
                    Err(detail) => return could_not_start(detail),
                };
                let spec = HealthSpec {
                    url,
                    expect_status: *expect_status,
                    body_contains: body_contains.as_deref(),
                    within: Duration::from_secs(*within_secs),
                    every: Duration::from_millis(*every_ms),
                    tail_bytes,
                };
                steps::health(client, &engine.secrets, spec).await
            }
            StepAction::Sql {
                database,
                connection,
                check,
                read_only,
                timeout_secs,
            } => {
                let snapshot = rollback
                    .steps
                    .iter()
                    .rev()
                    .filter_map(|s| s.result.as_ref()?.snapshot.as_ref())
                    .find(|s| &s.database == database);
                let spec = SqlSpec {
                    database,
                    connection,
                    check,
                    read_only: *read_only,
                    timeout: Duration::from_secs(*timeout_secs),
                    snapshot,
                };
                steps::sql(&engine.secrets, spec).await
            }
            StepAction::Notify { channel, text } => {
                let effect = Effect::Notify {
                    channel: channel.clone().map(ChannelId),
                    text: text.clone(),
                };
                let place = channel.as_deref().unwrap_or("the thread");
                self.queue(id, effect, format!("posted to {place}")).await
            }
            StepAction::StatusPage { status, message } => {
                if engine.config.status_page.is_none() {
                    return could_not_start("no status page is configured ([statuspage])".into());
                }
                let Some(status) = PageStatus::parse(status) else {
                    return could_not_start(format!("`{status}` is not a status a step can set"));
                };
                let effect = Effect::PageUpdate {
                    update: PageUpdate::Set(status),
                    message: Some(message.clone()),
                };
                self.queue(
                    id,
                    effect,
                    format!("status page set to {}", PageUpdate::Set(status).status()),
                )
                .await
            }
        }
    }

    /// A step whose work is a message: done once the message is queued durably.
    async fn queue(&self, id: RollbackId, effect: Effect, done: String) -> StepResult {
        let engine = &self.engine;
        match engine.store.enqueue_for(id, &[effect], engine.clock.now()).await {
            Ok(()) => {
                engine.outbox_ready.notify_one();
                StepResult {
                    outcome: StepOutcome::Succeeded,
                    detail: Some(done),
                    ..Default::default()
                }
            }
            Err(e) => StepResult {
                outcome: StepOutcome::Failed,
                detail: Some(format!("could not queue the message: {e:#}")),
                ..Default::default()
            },
        }
    }

    async fn step_action(&self, id: RollbackId, change: Change) -> Result<Option<Rollback>> {
        match self.engine.change(id, change).await? {
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

    /// Claims and runs one rollback in its own task, unless this process already has it in
    /// hand; `false` if it did.
    fn start_claim(
        self: Arc<Self>,
        running: &mut tokio::task::JoinSet<()>,
        in_flight: &Arc<std::sync::Mutex<std::collections::BTreeSet<RollbackId>>>,
        id: RollbackId,
        known: Option<Rollback>,
    ) -> bool {
        if !in_flight.lock().expect("in-flight lock").insert(id) {
            return false;
        }
        let in_flight = in_flight.clone();
        let looked_up = known.is_none();
        running.spawn(async move {
            let claimed = self.claim(id, known).await;
            if looked_up {
                // Its place in the waiting list is free: look at who waits behind it.
                self.engine.run_ready.notify_one();
            }
            let outcome = match claimed {
                Ok(Some(rollback)) => self.execute(rollback).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                tracing::error!(rollback = %id, error = format!("{e:#}"), "executing the rollback failed");
            }
            in_flight.lock().expect("in-flight lock").remove(&id);
        });
        true
    }

    /// The serving loop: each claimed rollback runs in its own task, so a long runbook does
    /// not hold up the next one. On shutdown it stops claiming, lets running steps finish for
    /// `shutdown_grace`, then kills what is left and records it as interrupted.
    pub async fn run_forever(self: Arc<Self>, shutdown: crate::shutdown::Shutdown) {
        let mut running = tokio::task::JoinSet::new();
        let in_flight = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let mut last_look: Option<tokio::time::Instant> = None;
        loop {
            while let Some(done) = running.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a run's task ended abnormally");
                }
            }
            // Every waiting rollback is claimed in its own task, so a burst of approvals starts
            // its runs side by side instead of one claim (a write) after another. Those this
            // process queued come as written; the store is asked for the rest (queued by another
            // process, or before a restart) when nothing was handed over, and at least every
            // `LOOK_EVERY` while clicks keep coming.
            let handed = self.engine.ready_here.take_all();
            let look = handed.is_empty() || last_look.is_none_or(|at| at.elapsed() >= LOOK_EVERY);
            for known in handed {
                self.clone()
                    .start_claim(&mut running, &in_flight, known.id, Some(known));
            }
            let mut more_may_wait = false;
            if look {
                last_look = Some(tokio::time::Instant::now());
                match self.engine.store.waiting_to_run(CLAIMS_AT_ONCE).await {
                    Ok(ids) => {
                        let full = ids.len() as i64 == CLAIMS_AT_ONCE;
                        for id in ids {
                            if self.clone().start_claim(&mut running, &in_flight, id, None) {
                                more_may_wait = full;
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = format!("{e:#}"), "looking for approved rollbacks failed"),
                }
            }
            if more_may_wait {
                continue;
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

/// How many approved rollbacks the serving loop looks up (and starts claiming) at a time.
const CLAIMS_AT_ONCE: i64 = 64;

/// The longest the serving loop goes without asking the store what waits to run.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts of a step, however many retries are left.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// What follows a run's start or a step's end: the next step's start, while the run goes on.
fn start_next_step(rollback: &Rollback) -> Option<Action> {
    rollback.next_step().map(|index| Action::StartStep { index })
}

fn could_not_start(detail: String) -> StepResult {
    StepResult {
        outcome: StepOutcome::CouldNotStart,
        detail: Some(detail),
        ..Default::default()
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
        ..Default::default()
    }
}
