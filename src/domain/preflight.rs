//! Preflight: read-only checks run when a rollback is requested, shown on the card before anyone
//! approves — every program the steps need, every `${env:…}` they reference, and the checks the
//! runbook declares ("the dump file exists", "the database answers").
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Passed,
    Failed,
}

/// One check and what it found, in words people read on the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightCheck {
    pub name: String,
    pub outcome: CheckOutcome,
    /// What was seen: the program's path, the variable missing, a check's output or error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(default)]
    pub duration_ms: u64,
}

impl PreflightCheck {
    pub fn passed(&self) -> bool {
        self.outcome == CheckOutcome::Passed
    }
}

/// The names of the checks that failed, in order.
pub fn failed(checks: &[PreflightCheck]) -> Vec<String> {
    checks.iter().filter(|c| !c.passed()).map(|c| c.name.clone()).collect()
}

/// Whether the card shows preflight at all: when the runbook declares checks of its own, or
/// when a check failed. A plan whose programs and variables are all there needs no line.
pub fn shown(declared: usize, checks: Option<&[PreflightCheck]>) -> bool {
    declared > 0 || checks.is_some_and(|checks| checks.iter().any(|c| !c.passed()))
}

/// What a destructive step's `loses` check says, for the form where its phrase is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Losses {
    /// The step declares no count.
    Undeclared,
    /// The count runs; the form is redrawn when it ends.
    Counting { source: String },
    /// What it printed, its last lines.
    Counted { source: String, lines: Vec<String> },
    /// It failed or timed out: why, so that nobody reads silence as "nothing lost".
    Failed { source: String, why: String },
}

/// How many lines of a count the form shows, and how long each may be.
const LOSS_LINES: usize = 12;
const LOSS_LINE_CHARS: usize = 200;

impl Losses {
    /// The lines of a count's output worth showing: its last non-empty ones, shortened.
    pub fn counted(source: String, output: &str) -> Losses {
        let lines: Vec<&str> = output
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let shown = lines[lines.len().saturating_sub(LOSS_LINES)..]
            .iter()
            .map(|l| crate::text::truncate(l, LOSS_LINE_CHARS))
            .collect();
        Losses::Counted { source, lines: shown }
    }
}
