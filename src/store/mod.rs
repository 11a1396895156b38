//! The store: a small façade of intention-named operations over PostgreSQL. Every operation
//! that writes more than one row runs inside one transaction, passed by type to its helpers.
mod postgres;

pub use postgres::Store;

use crate::domain::{ChannelId, RollbackId, UserId};
use serde::{Deserialize, Serialize};

/// Something that must reach the outside world because of a change, delivered by a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    PostCard,
    /// Re-render the card from current state; several pending updates collapse into one.
    UpdateCard,
    StepStarted {
        index: usize,
    },
    StepFinished {
        index: usize,
    },
    RunFinished,
    /// A private line to one person, already worded by the edge.
    Ephemeral {
        channel: ChannelId,
        user: UserId,
        text: String,
    },
}

impl Effect {
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::PostCard => "post_card",
            Effect::UpdateCard => "update_card",
            Effect::StepStarted { .. } => "step_started",
            Effect::StepFinished { .. } => "step_finished",
            Effect::RunFinished => "run_finished",
            Effect::Ephemeral { .. } => "ephemeral",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub rollback_id: Option<RollbackId>,
    pub effect: Effect,
    pub attempts: i32,
}

/// The outcome of an optimistic write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Ok,
    /// Someone else changed the rollback first; reload and decide again.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    pub channel: String,
    pub ts: String,
}
