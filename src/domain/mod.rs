//! The core: rollbacks, actors, plans, steps and the pure decisions over them.
//! Nothing here knows about Slack, HTTP or the database.
pub mod checklist;
pub mod decide;
pub mod discovery;
pub mod effects;
/// Test data shared by the unit tests and the store's conformance suite (an integration test).
#[doc(hidden)]
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod proposal;
pub mod rollback;
pub mod seal;
pub mod updates;

pub use decide::{Action, Refusal, decide, may_preview, may_read};
pub use plan::{Catalog, Plan, PlanStep, StepAction};
pub use policy::EscalationLevel;
pub use policy::{Policy, SeverityPolicy};
pub use rollback::{
    ABORT_GRACE, AbortRequest, Event, LadderLevel, PathTimings, Recorded, Rollback, RollbackRequest, State,
    StepOutcome, StepResult, path_timings,
};
pub use updates::{Reminders, UpdateNote};

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A rollback's number; shown to people as `RB-<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RollbackId(pub i64);

impl fmt::Display for RollbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RB-{}", self.0)
    }
}

impl FromStr for RollbackId {
    type Err = ();
    /// Accepts `RB-12`, `rb-12` and `12`, because people type all three.
    fn from_str(s: &str) -> Result<Self, ()> {
        let digits = s
            .strip_prefix("RB-")
            .or_else(|| s.strip_prefix("rb-"))
            .or_else(|| s.strip_prefix("Rb-"))
            .unwrap_or(s);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        digits.parse::<i64>().map(RollbackId).map_err(|_| ())
    }
}

/// A proposal's number; shown to people as `P-<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProposalId(pub i64);

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P-{}", self.0)
    }
}

impl FromStr for ProposalId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let digits = s.strip_prefix("P-").ok_or(())?;
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        digits.parse::<i64>().map(ProposalId).map_err(|_| ())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "critical" | "sev1" => Ok(Severity::Critical),
            "high" | "sev2" => Ok(Severity::High),
            "medium" | "sev3" => Ok(Severity::Medium),
            "low" | "sev4" => Ok(Severity::Low),
            _ => Err(()),
        }
    }
}

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(UserId);
id_type!(ChannelId);
id_type!(TeamId);

/// Who is acting, with the roles the edge resolved for them before the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: UserId,
    pub team: Option<TeamId>,
    pub roles: BTreeSet<String>,
    /// Roles granted through a user group whose membership could not be read; decisions that
    /// depend on them refuse rather than guess.
    pub unresolved_roles: BTreeSet<String>,
    /// The channel the action was taken in, when Slack says. Actions on a rollback or a
    /// proposal are taken where it lives, so the incident channel keeps the whole record.
    pub channel: Option<ChannelId>,
}

impl Actor {
    /// rollbot itself: the executor starting runs and recording step results.
    pub fn system() -> Self {
        Actor {
            user: UserId(SYSTEM_USER.to_owned()),
            team: None,
            roles: BTreeSet::new(),
            unresolved_roles: BTreeSet::new(),
            channel: None,
        }
    }

    /// The same person, acting from `channel`.
    pub fn in_channel(self, channel: &str) -> Self {
        Actor {
            channel: Some(ChannelId(channel.to_owned())),
            ..self
        }
    }

    pub fn is_system(&self) -> bool {
        self.user.0 == SYSTEM_USER
    }
}

pub const SYSTEM_USER: &str = "rollbot";
