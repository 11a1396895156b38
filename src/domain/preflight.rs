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
