//! The executor runs approved plans, one step at a time, recording each step's start before it
//! runs and its result after, so the record always says what was in flight.
use super::beside_a_step;
use super::command::{self, CommandSpec, Supervision};
use super::secrets::Resolved;
use super::steps;
use super::{Change, Changed, Engine};
use crate::domain::{Action, Actor, ChannelId, Rollback, RollbackId, State, StepAction, StepOutcome, StepResult};
use crate::outbound::HttpClient;
use crate::statuspage::{PageStatus, PageUpdate};
use crate::store::{Effect, Fence, Guard, Lease};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The lease renewals of one piece of work, and what they last told. Renewing stops when this
/// is dropped, however the work ended (finished, cut short, its task aborted): a lease nobody
/// works under must lapse.
struct RenewalTask {
    task: tokio::task::JoinHandle<()>,
    watch: tokio::sync::watch::Receiver<Option<Instant>>,
}

impl Drop for RenewalTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Executor {
    engine: Arc<Engine>,
    /// This process's name on the leases it holds.
    owner: String,
    /// The client of `http` and `health` steps, or why there is none (no TLS roots).
    outbound: Result<HttpClient, String>,
    /// The program that supervises `command` steps: rollbot's own binary.
    supervisor: std::path::PathBuf,
}

/// The moments until which a step may run; `None` once it must stop.
type StopBy = tokio::sync::watch::Receiver<Option<Instant>>;

/// A run this process claimed: the rollback as last written, and the fence its writes carry.
pub struct Run {
    rollback: Rollback,
    fence: Fence,
    /// When this process last knows the lease to hold until (by its own monotonic clock,
    /// counted from when the write that took or renewed it was sent, so never later than the
    /// database's view of it).
    held_until: Instant,
}

/// How a piece of work under the lease ended.
enum Leased<T> {
    Done(T),
    /// The lease could not be renewed in time, or another process holds the run now: the work
    /// was stopped (a step's process group killed) and this process no longer acts for it.
    Lost(&'static str),
}

impl Executor {
    pub fn new(engine: Arc<Engine>) -> Self {
        Executor {
            engine,
            owner: format!("rollbot-{}", uuid::Uuid::new_v4().simple()),
            outbound: HttpClient::new().map_err(|e| format!("{e:#}")),
            supervisor: supervisor_beside_this_binary(),
        }
    }

    /// Supervises `command` steps with `program` (a rollbot binary) instead of this process's
    /// own executable: for hosts whose executable is not rollbot's (the test harness).
    pub fn supervised_by(mut self, program: std::path::PathBuf) -> Self {
        self.supervisor = program;
        self
    }

    /// Claims a rollback this process queued, else the oldest approved one, if any, by
    /// recording that its run started. Only one claimant can win: the start is a versioned write.
    pub async fn claim_next(&self) -> Result<Option<Run>> {
        while let Some(known) = self.engine.ready_here.take_one() {
            if let Some(run) = self.claim(known.id, Some(known)).await? {
                return Ok(Some(run));
            }
        }
        for id in self.engine.store.waiting_to_run(8).await? {
            if let Some(run) = self.claim(id, None).await? {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    /// Claims one approved rollback; `None` if it is not (or no longer) waiting to run. The
    /// run's start, this process's lease and the first step's start are one write, so a click
    /// reaches the step's process after a single commit. `known` is the copy this process
    /// wrote when it queued the rollback, if it did.
    async fn claim(&self, id: RollbackId, known: Option<Rollback>) -> Result<Option<Run>> {
        let sent = Instant::now();
        let mut start = Change::new(Action::StartRun, Actor::system())
            .then(start_next_step)
            .holding(self.lease());
        if let Some(known) = known {
            start = start.on(known);
        }
        match self.engine.change(id, start).await? {
            Ok(rollback) => Ok(Some(Run {
                fence: Fence {
                    owner: self.owner.clone(),
                    // The claim's write is the epoch: the store stamps its version on the lease.
                    epoch: rollback.version,
                },
                rollback,
                held_until: sent + self.engine.config.execution_lease,
            })),
            Err(refusal) => {
                tracing::warn!(rollback = %id, ?refusal, "not starting this run");
                Ok(None)
            }
        }
    }

    /// Runs a claimed rollback's steps until it succeeds, fails or stops being runnable.
    pub async fn execute(&self, run: Run) -> Result<()> {
        let id = run.rollback.id;
        let fence = run.fence.clone();
        let outcome = self.run_steps(run).await;
        // A run that ended or paused gave its lease up with its last write. One cut short (an
        // error, a refused write) no longer runs here either: release it, or let it lapse.
        let gave_up = matches!(&outcome, Ok(Some(last)) if last.state != State::Running);
        if !gave_up {
            let _ = self.engine.store.release_lease(id, &fence).await;
        }
        outcome.map(|_| ())
    }

    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            length: self.engine.config.execution_lease,
            at: self.engine.clock.store_time(),
        }
    }

    /// Renews the lease every third of its length, each renewal in its own task with a
    /// deadline, so neither a slow step nor a busy pool can hold it up. Says how long the lease
    /// is known to hold after each renewal, and `None` once another process holds the run.
    fn renew_in_background(&self, id: RollbackId, fence: &Fence, held_until: Instant) -> RenewalTask {
        let (known, watch) = tokio::sync::watch::channel(Some(held_until));
        let engine = self.engine.clone();
        let fence = fence.clone();
        let task = tokio::spawn(async move {
            let length = engine.config.execution_lease;
            let every = length / 3;
            loop {
                tokio::time::sleep(every).await;
                let sent = Instant::now();
                let renewal = engine.store.hold_lease(id, &fence, length, engine.clock.store_time());
                match tokio::time::timeout(every, renewal).await {
                    Ok(Ok(true)) => {
                        let _ = known.send(Some(sent + length));
                    }
                    Ok(Ok(false)) => {
                        tracing::error!(rollback = %id, epoch = fence.epoch, "another process holds this run now; stopping it here");
                        let _ = known.send(None);
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(rollback = %id, error = format!("{e:#}"), "could not renew the execution lease; trying again")
                    }
                    Err(_) => {
                        tracing::warn!(rollback = %id, timeout_ms = every.as_millis() as u64, "renewing the execution lease did not complete in time; trying again")
                    }
                }
            }
        });
        RenewalTask { task, watch }
    }

    /// Runs `work` while the lease holds. When it cannot be renewed in time (short of a
    /// margin for stopping what runs), or another process holds the run, `work` is dropped:
    /// a step's process group is killed with it, and nothing new starts.
    /// `work` is given the moments until which it may run, for a step's supervisor.
    async fn while_leased<T, F: std::future::Future<Output = T>>(
        &self,
        run: &mut Run,
        work: impl FnOnce(StopBy) -> F,
    ) -> Leased<T> {
        let renewals = self.renew_in_background(run.rollback.id, &run.fence, run.held_until);
        let mut held = renewals.watch.clone();
        let margin = self.engine.config.execution_lease / 5;
        let (stop_by, stop_by_watch) = tokio::sync::watch::channel(Some(run.held_until - margin));
        let work = work(stop_by_watch);
        tokio::pin!(work);
        let outcome = loop {
            let Some(held_until) = *held.borrow_and_update() else {
                break Leased::Lost("another process holds the run now");
            };
            run.held_until = held_until;
            stop_by.send_replace(Some(held_until - margin));
            // Biased: after a stall (SIGSTOP, a frozen machine), the lapsed lease is seen before
            // the work gets a chance to start anything new.
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(held_until - margin) => {
                    break Leased::Lost("the execution lease could not be renewed in time");
                }
                _ = held.changed() => continue,
                done = &mut work => break Leased::Done(done),
            }
        };
        drop(renewals);
        stop_by.send_replace(None);
        outcome
    }

    /// Runs the step the last write started, records its result and starts the next in one
    /// write, until the run ends or pauses (a person must confirm a step; their click queues
    /// the run again). Returns the rollback as last written, `None` if the run stopped here.
    async fn run_steps(&self, mut run: Run) -> Result<Option<Rollback>> {
        while let Some(index) = run.rollback.step_in_flight() {
            let rollback = run.rollback.clone();
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
                // Whoever can write the database's rows cannot make rollbot run what nobody approved.
                Some(_) if let Err(why) = self.engine.seal.verify(&rollback) => {
                    tracing::error!(rollback = %rollback.id, step = index + 1, why, "the run stopped: its seal does not hold");
                    could_not_start(format!(
                        "the run was stopped before this step: {why}. Nothing of this step ran; request the rollback again."
                    ))
                }
                Some(action) => match self
                    .while_leased(&mut run, |stop_by| self.with_retries(&rollback, index, action, stop_by))
                    .await
                {
                    Leased::Done(result) => result,
                    Leased::Lost(why) => {
                        tracing::error!(rollback = %rollback.id, step = index + 1, why, "the step was stopped: this process lost the run");
                        let stopped = StepResult {
                            outcome: StepOutcome::Interrupted,
                            detail: Some(format!("stopped by the rollbot process running it: {why}")),
                            ..Default::default()
                        };
                        self.record_late(rollback.id, index, stopped).await;
                        return Ok(None);
                    }
                },
            };
            tracing::info!(rollback = %rollback.id, step = index + 1, outcome = ?result.outcome, exit_code = ?result.exit_code, duration_ms = result.duration_ms, "step finished");
            match self.record_result(&mut run, index, result).await? {
                Some(next) => run.rollback = next,
                None => return Ok(None),
            }
        }
        Ok(Some(run.rollback))
    }

    /// Records a step's result and starts the next step, as the lease holder. A failed write
    /// (a database blip) is tried again, with backoff, for as long as the lease holds; past
    /// that, or if another process holds the run now, the result goes on the record as late.
    async fn record_result(&self, run: &mut Run, index: usize, result: StepResult) -> Result<Option<Rollback>> {
        let id = run.rollback.id;
        let known = run.rollback.clone();
        let fence = run.fence.clone();
        let attempts = async {
            let mut backoff = Duration::from_millis(100);
            loop {
                let finish = Change::new(
                    Action::FinishStep {
                        index,
                        result: result.clone(),
                    },
                    Actor::system(),
                )
                .on(known.clone())
                .then(start_next_step)
                .guarded(Guard::Holder(fence.clone()));
                match self.engine.change_guarded(id, finish).await {
                    Ok(Changed::Written(rollback)) => return Some(Ok(rollback)),
                    Ok(Changed::Guarded) => return None,
                    Ok(Changed::Refused(refusal)) => {
                        return Some(self.recorded_already(id, index, &result).await.ok_or(refusal));
                    }
                    Err(e) => {
                        tracing::warn!(rollback = %id, step = index + 1, error = format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "could not record the step's result; trying again while the lease holds");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        };
        match self.while_leased(run, |_| attempts).await {
            Leased::Done(Some(Ok(rollback))) => Ok(Some(rollback)),
            Leased::Done(Some(Err(refusal))) => {
                tracing::error!(rollback = %id, ?refusal, "the run stopped: the rollback changed under the executor");
                Ok(None)
            }
            Leased::Done(None) | Leased::Lost(_) => {
                // The write that ends or pauses the run also ends its lease, and a renewal in
                // between reports the lease gone: then the record already holds this result.
                if let Some(rollback) = self.recorded_already(id, index, &result).await {
                    return Ok(Some(rollback));
                }
                tracing::error!(rollback = %id, step = index + 1, "the run was taken over before its result was recorded; recording it as late");
                self.record_late(id, index, result).await;
                Ok(None)
            }
        }
    }

    /// The rollback as recorded, if it already holds `result` as step `index`'s latest result:
    /// a write whose answer was lost may have committed, and the run goes on from there.
    async fn recorded_already(&self, id: RollbackId, index: usize, result: &StepResult) -> Option<Rollback> {
        let rollback = self.engine.store.load(id).await.ok()??;
        let ours = rollback.steps.iter().rev().find(|s| s.index == index)?;
        (ours.result.as_ref() == Some(result)).then_some(rollback)
    }

    /// Puts a result from an attempt that lost the run on the record, where people and the
    /// post-mortem see it; it never becomes the step's result. Kept and retried while the
    /// store cannot take it, for as long as this process lives (up to an hour).
    async fn record_late(&self, id: RollbackId, index: usize, result: StepResult) {
        let action = Action::RecordLateResult { index, result };
        let mut backoff = Duration::from_millis(200);
        let give_up = Instant::now() + Duration::from_secs(3600);
        loop {
            match self.engine.act(id, &action, &Actor::system()).await {
                Ok(Ok(_)) => return,
                Ok(Err(refusal)) => {
                    tracing::error!(rollback = %id, ?refusal, "a late result could not be recorded");
                    return;
                }
                Err(e) if Instant::now() < give_up => {
                    tracing::warn!(rollback = %id, error = format!("{e:#}"), "could not record a late result; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(rollback = %id, error = format!("{e:#}"), "giving up on recording a late result");
                    return;
                }
            }
        }
    }

    /// Runs an action, and again after a growing delay while it fails and retries are left.
    /// An abort stops the attempt under way (a command gets SIGTERM, then SIGKILL, and keeps
    /// its output; any other step is dropped) and every retry after it.
    async fn with_retries(
        &self,
        rollback: &Rollback,
        index: usize,
        action: &StepAction,
        stop_by: StopBy,
    ) -> StepResult {
        let (_watching, abort) = beside_a_step::watch_for_abort(&self.engine, rollback.id);
        let step = &rollback.plan.steps[index];
        let started = Instant::now();
        let aborted = || StepResult {
            outcome: StepOutcome::Aborted,
            duration_ms: started.elapsed().as_millis() as u64,
            detail: Some("aborted while it ran".into()),
            ..Default::default()
        };
        let mut attempt = 1;
        loop {
            let run = self.run_action(rollback, index, action, stop_by.clone(), abort.clone());
            let mut result = if matches!(action, StepAction::Command { .. }) {
                run.await
            } else {
                tokio::select! {
                    result = run => result,
                    _ = command::until_aborted(Some(abort.clone())) => aborted(),
                }
            };
            if attempt > 1 {
                result.attempts = Some(attempt);
            }
            if result.outcome.passed() || result.outcome == StepOutcome::Aborted || attempt > step.retries {
                return result;
            }
            let delay = Duration::from_millis(step.retry_delay_ms.saturating_mul(1 << (attempt - 1).min(10)))
                .min(MAX_RETRY_DELAY);
            tracing::warn!(rollback = %rollback.id, step = index + 1, attempt, outcome = ?result.outcome, retry_in_ms = delay.as_millis() as u64, "step failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = command::until_aborted(Some(abort.clone())) => return aborted(),
            }
            attempt += 1;
        }
    }

    async fn run_action(
        &self,
        rollback: &Rollback,
        index: usize,
        action: &StepAction,
        stop_by: StopBy,
        abort: command::AbortSeen,
    ) -> StepResult {
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
                let prepared = command::resolve(&mut resolved, &engine.secrets, argv, env);
                let (argv, mut env) = match prepared {
                    Ok(p) => p,
                    Err(detail) => return could_not_start(detail),
                };
                env.insert("ROLLBOT_ROLLBACK_ID".into(), id.to_string());
                env.insert("ROLLBOT_SERVICE".into(), rollback.request.service.clone());
                let live = command::LiveOutput::default();
                let _reporting =
                    beside_a_step::report_progress(&self.engine, id, index, live.clone(), resolved.clone());
                let spec = CommandSpec {
                    argv: &argv,
                    env: &env,
                    workdir: workdir.as_deref(),
                    timeout: Duration::from_secs(*timeout_secs),
                    tail_bytes,
                    supervision: Some(Supervision {
                        program: &self.supervisor,
                        stop_by,
                    }),
                    abort: Some(abort),
                    live: Some(live),
                };
                let mut result = command::run(spec).await;
                result.output_tail = resolved.scrub(&result.output_tail);
                result.detail = result.detail.map(|d| resolved.scrub(&d));
                result
            }
            StepAction::Http { .. } | StepAction::Health { .. } | StepAction::Sql { .. } => {
                let snapshot = match action {
                    StepAction::Sql { database, .. } => rollback
                        .steps
                        .iter()
                        .rev()
                        .filter_map(|s| s.result.as_ref()?.snapshot.as_ref())
                        .find(|s| &s.database == database),
                    _ => None,
                };
                let client = outbound();
                steps::call_service(client, &engine.secrets, action, tail_bytes, snapshot)
                    .await
                    .unwrap_or_else(|| could_not_start("not a service call".into()))
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

    /// Claims and runs one rollback to its end; `false` when nothing was waiting.
    pub async fn run_once(&self) -> Result<bool> {
        match self.claim_next().await? {
            Some(run) => {
                self.execute(run).await?;
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
        in_flight: &InFlight,
        id: RollbackId,
        known: Option<Rollback>,
    ) -> bool {
        {
            let mut held = in_flight.lock().expect("in-flight lock");
            if held.contains_key(&id) {
                return false;
            }
            held.insert(id, None);
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
                Ok(Some(run)) => {
                    in_flight
                        .lock()
                        .expect("in-flight lock")
                        .insert(id, Some(run.fence.clone()));
                    self.execute(run).await
                }
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
        let in_flight: InFlight = Default::default();
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
        let abandoned: Vec<(RollbackId, Fence)> = in_flight
            .lock()
            .expect("in-flight lock")
            .iter()
            .filter_map(|(id, fence)| Some((*id, fence.clone()?)))
            .collect();
        for (id, fence) in abandoned {
            // Only while this process still holds the run: another may have taken it over.
            let interrupt = Change::new(Action::Interrupt, Actor::system()).guarded(Guard::Holder(fence.clone()));
            match self.engine.change_guarded(id, interrupt).await {
                Ok(Changed::Written(_)) => {
                    tracing::warn!(rollback = %id, "shutting down: the running step was stopped and the rollback marked interrupted")
                }
                Ok(Changed::Refused(refusal)) => tracing::debug!(rollback = %id, ?refusal, "nothing to interrupt"),
                Ok(Changed::Guarded) => {
                    tracing::warn!(rollback = %id, "shutting down: another process holds this run now")
                }
                // The lease will lapse and another replica will record it.
                Err(e) => {
                    tracing::error!(rollback = %id, error = format!("{e:#}"), "could not record the interruption")
                }
            }
            let _ = self.engine.store.release_lease(id, &fence).await;
        }
    }
}

/// The runs this process has in hand, with the fence of each once it is claimed.
type InFlight = Arc<std::sync::Mutex<std::collections::BTreeMap<RollbackId, Option<Fence>>>>;

/// How many approved rollbacks the serving loop looks up (and starts claiming) at a time.
const CLAIMS_AT_ONCE: i64 = 64;

/// The longest the serving loop goes without asking the store what waits to run.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts of a step, however many retries are left.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The small `rollbot-step-supervisor` installed beside this binary, else this binary itself
/// (its `__supervise-step` mode does the same, at the cost of a heavier process per step).
fn supervisor_beside_this_binary() -> std::path::PathBuf {
    let this = std::env::current_exe().unwrap_or_else(|_| "rollbot".into());
    match this.parent().map(|dir| dir.join("rollbot-step-supervisor")) {
        Some(beside) if beside.is_file() => beside,
        _ => this,
    }
}

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
