//! Runs a destructive step's `loses` count when its confirmation form opens: read-only,
//! bounded by its timeout, so the person typing the phrase sees what the step would undo.
use super::Engine;
use super::preflight::run_reading;
use crate::domain::preflight::Losses;
use crate::domain::{Rollback, StepAction, StepOutcome};
use crate::outbound::HttpClient;

impl Engine {
    /// What the form says about step `index`'s losses before its count has run.
    pub fn losses_pending(&self, rollback: &Rollback, index: usize) -> Losses {
        match loss_count(rollback, index) {
            Some(action) => Losses::Counting { source: source(action) },
            None => Losses::Undeclared,
        }
    }

    /// Runs step `index`'s `loses` count; nothing it runs changes anything.
    pub async fn count_losses(&self, rollback: &Rollback, index: usize) -> Losses {
        let Some(action) = loss_count(rollback, index) else {
            return Losses::Undeclared;
        };
        let source = source(action);
        let client = HttpClient::new().map_err(|e| format!("no HTTP client: {e:#}"));
        let about = [
            ("ROLLBOT_ROLLBACK_ID", rollback.id.to_string()),
            ("ROLLBOT_SERVICE", rollback.request.service.clone()),
        ];
        let result = {
            let _turn = super::discovery::RUNNING.acquire().await.ok();
            run_reading(self, client.as_ref(), &about, action, self.config.output_tail_bytes).await
        };
        if result.outcome == StepOutcome::Succeeded {
            let losses = Losses::counted(source, &result.output_tail);
            tracing::info!(rollback = %rollback.id, step = index + 1, ?losses, "counted what a destructive step would undo");
            return losses;
        }
        let said = result.output_tail.lines().last().unwrap_or_default().trim();
        let why = match (&result.detail, result.exit_code) {
            (Some(detail), _) => detail.clone(),
            (None, Some(code)) if said.is_empty() => format!("exited with code {code}"),
            (None, Some(code)) => format!("exited with code {code}: {said}"),
            (None, None) => result.outcome.name().replace('_', " "),
        };
        tracing::warn!(rollback = %rollback.id, step = index + 1, why, "could not count what a destructive step would undo");
        Losses::Failed {
            source,
            why: crate::text::truncate(&why, 300),
        }
    }
}

fn loss_count(rollback: &Rollback, index: usize) -> Option<&StepAction> {
    rollback.plan.steps.get(index)?.loses.as_deref()
}

/// The count in a few words: its program and first arguments, on one line.
fn source(action: &StepAction) -> String {
    const SHOWN: usize = 60;
    let words = crate::domain::discovery::source_words(action);
    let line = words.lines().next().unwrap_or_default();
    if line.chars().count() <= SHOWN && line.len() == words.len() {
        return line.to_owned();
    }
    line.chars().take(SHOWN - 1).chain(['…']).collect()
}
