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
    /// In the thread: how the rollback ended (succeeded, failed, expired, aborted).
    RunFinished,
    /// A private line to one person, already worded by the edge.
    Ephemeral {
        channel: ChannelId,
        user: UserId,
        text: String,
    },
    /// In the thread: the next ladder level joined, with its people mentioned.
    Escalated {
        level: usize,
    },
    /// In the thread: the run waits for a person before step `index`.
    Paused {
        index: usize,
    },
    /// In the thread: someone confirmed or passed step `index`.
    GateCleared {
        index: usize,
        by: UserId,
    },
    /// In the thread: a rollback that needed no approval started; everyone on the ladder is told.
    NotifyLadder,
    /// In the thread: the process running step `index` stopped; people must decide.
    Interrupted {
        index: usize,
    },
    /// A communication template: into the card's thread, also shown in the channel (`None`), or
    /// as a message of its own in another channel.
    Announce {
        which: crate::templates::Announcement,
        channel: Option<ChannelId>,
    },
    /// An update for the status page, in its own delivery lane. `message`: the words of a
    /// runbook's `statuspage` step (lifecycle updates use the templates).
    PageUpdate {
        update: crate::statuspage::PageUpdate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A runbook's `notify` step: text into the thread (`None`) or a channel.
    Notify {
        channel: Option<ChannelId>,
        text: String,
    },
    /// In the thread: a drill ended; how long each part of the path took.
    DrillSummary,
    /// In the thread: the status page could not be updated, so people must do it by hand.
    PageTrouble {
        update: crate::statuspage::PageUpdate,
        error: String,
    },
    /// In the thread: someone chose to retry (or skip) an interrupted step.
    StepDecided {
        index: usize,
        by: UserId,
        retry: bool,
    },
}

impl Effect {
    /// Effects of one rollback are delivered in order within their lane; lanes do not wait
    /// for each other.
    pub fn lane(&self) -> &'static str {
        match self {
            Effect::PageUpdate { .. } => "statuspage",
            _ => "slack",
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Effect::PostCard => "post_card",
            Effect::UpdateCard => "update_card",
            Effect::StepStarted { .. } => "step_started",
            Effect::StepFinished { .. } => "step_finished",
            Effect::RunFinished => "run_finished",
            Effect::Ephemeral { .. } => "ephemeral",
            Effect::Escalated { .. } => "escalated",
            Effect::Paused { .. } => "paused",
            Effect::GateCleared { .. } => "gate_cleared",
            Effect::NotifyLadder => "notify_ladder",
            Effect::Interrupted { .. } => "interrupted",
            Effect::Announce { .. } => "announce",
            Effect::PageUpdate { .. } => "page_update",
            Effect::Notify { .. } => "notify",
            Effect::DrillSummary => "drill_summary",
            Effect::PageTrouble { .. } => "page_trouble",
            Effect::StepDecided { .. } => "step_decided",
        }
    }
}

/// Something rollbot itself must do to a rollback at a given time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimerAction {
    Escalate {
        level: usize,
    },
    Expire,
    /// The watch window after success ended: resolve the status page incident.
    Resolve,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub action: TimerAction,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct DueTimer {
    pub id: i64,
    pub rollback_id: RollbackId,
    pub action: TimerAction,
}

/// Everything a change causes besides its events, written in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consequences {
    pub effects: Vec<Effect>,
    pub timers: Vec<Timer>,
    /// The rollback no longer awaits approval: its pending timers are void.
    pub cancel_timers: bool,
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
