//! What watches a step while it runs, beside it: whether someone asked to abort it (on any
//! replica), and its progress for the card.
use super::Engine;
use super::command::{AbortSeen, LiveOutput};
use super::secrets::Resolved;
use crate::domain::RollbackId;
use crate::store::Effect;
use std::sync::Arc;
use std::time::Duration;

/// How often the process running a step looks whether someone asked to abort it.
const ABORT_POLL: Duration = Duration::from_secs(1);

/// How many of a running step's latest output lines its card shows.
const PROGRESS_LINES: usize = 8;

/// Stops a background task when dropped.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// While a command step runs: every `step_progress_every`, when its output moved (and every
/// second period regardless, so the time it has run stays current), queues a refresh of the
/// card with its latest lines, secrets scrubbed. Stops when the guard is dropped.
pub(super) fn report_progress(
    engine: &Arc<Engine>,
    id: RollbackId,
    index: usize,
    live: LiveOutput,
    secrets: Resolved,
) -> AbortOnDrop {
    let engine = engine.clone();
    let every = engine.config.step_progress_every;
    AbortOnDrop(tokio::spawn(async move {
        let mut shown = String::new();
        let mut quiet_periods = 0;
        loop {
            tokio::time::sleep(every).await;
            let output = secrets.scrub(&live.latest(PROGRESS_LINES));
            quiet_periods += 1;
            if output == shown && quiet_periods < 2 {
                continue;
            }
            quiet_periods = 0;
            shown = output.clone();
            let now = engine.clock.now();
            let effect = Effect::StepProgress { index, output, at: now };
            match engine.store.enqueue_for(id, &[effect], now).await {
                Ok(()) => engine.outbox_ready.notify_one(),
                // A missed refresh is made good by the next one.
                Err(e) => {
                    tracing::warn!(rollback = %id, error = format!("{e:#}"), "could not queue a progress refresh")
                }
            }
        }
    }))
}

/// Looks every `ABORT_POLL` whether someone (on any replica) asked to abort the rollback;
/// the watch turns `true` when they did. Looking stops when the guard is dropped.
pub(super) fn watch_for_abort(engine: &Arc<Engine>, id: RollbackId) -> (AbortOnDrop, AbortSeen) {
    let (seen, abort) = tokio::sync::watch::channel(false);
    let engine = engine.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(ABORT_POLL).await;
            match engine.store.load(id).await {
                Ok(Some(rollback)) if rollback.abort_requested.is_some() => {
                    tracing::info!(rollback = %id, "abort requested; stopping the running step");
                    seen.send_replace(true);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(rollback = %id, error = format!("{e:#}"), "could not look whether the run was aborted; looking again")
                }
            }
        }
    });
    (AbortOnDrop(task), abort)
}
