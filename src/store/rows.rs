//! What a write stores, decided once here before either backend writes it: the backends put
//! these values in columns and keep no rule of their own about them.
use super::{Consequences, Effect, Guard};
use crate::domain::{Rollback, State};
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One queued effect as outbox columns.
pub(crate) struct EffectRow {
    pub kind: &'static str,
    /// The effect as JSON.
    pub payload: String,
    pub lane: String,
    /// A pending, unclaimed effect of the same kind in the lane already renders the newest
    /// state: this one is not queued beside it.
    pub collapses: bool,
    /// A new rollback's card: filed, it takes its channel's next posting slot, and nothing in
    /// its lane goes before it.
    pub takes_channel_slot: bool,
}

impl EffectRow {
    pub(crate) fn of(effect: &Effect) -> Result<EffectRow> {
        Ok(EffectRow {
            kind: effect.kind(),
            payload: serde_json::to_string(effect)?,
            lane: effect.lane(),
            collapses: effect.collapses(),
            takes_channel_slot: *effect == Effect::PostCard,
        })
    }

    /// The rows of a change's effects, collapsed within the change (`effects_to_queue`).
    pub(crate) fn of_change(consequences: &Consequences) -> Result<Vec<EffectRow>> {
        consequences.effects_to_queue().map(EffectRow::of).collect()
    }

    pub(crate) fn of_all(effects: &[Effect]) -> Result<Vec<EffectRow>> {
        effects.iter().map(EffectRow::of).collect()
    }
}

/// What a change does to its rollback's lease columns (owner, until, epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseWrite<'a> {
    /// The run is over or paused: nobody holds it.
    Clear,
    /// Left as it is.
    Keep,
    /// A claim: `owner` holds it for `length` from `at` (`None`: the database's clock), with the
    /// change's version as its epoch.
    Take {
        owner: &'a str,
        length: Duration,
        at: Option<DateTime<Utc>>,
    },
}

impl<'a> LeaseWrite<'a> {
    pub(crate) fn of(rollback: &Rollback, consequences: &'a Consequences) -> LeaseWrite<'a> {
        if rollback.state != State::Running {
            return LeaseWrite::Clear;
        }
        match &consequences.lease {
            Some(lease) => LeaseWrite::Take {
                owner: &lease.owner,
                length: lease.length,
                at: lease.at,
            },
            None => LeaseWrite::Keep,
        }
    }

    /// The column statements switch on.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            LeaseWrite::Clear => "clear",
            LeaseWrite::Keep => "keep",
            LeaseWrite::Take { .. } => "take",
        }
    }

    pub(crate) fn owner(&self) -> Option<&'a str> {
        match self {
            LeaseWrite::Take { owner, .. } => Some(owner),
            _ => None,
        }
    }

    pub(crate) fn length_ms(&self) -> Option<i64> {
        match self {
            LeaseWrite::Take { length, .. } => Some(millis(*length)),
            _ => None,
        }
    }

    pub(crate) fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            LeaseWrite::Take { at, .. } => *at,
            _ => None,
        }
    }
}

/// A rollback row's lease columns, as a guard reads them.
pub(crate) struct LeaseColumns {
    pub state: String,
    pub owner: Option<String>,
    pub epoch: Option<i64>,
    pub until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Whether a change's guard holds on the row as it is, at `now` (the store's clock). PostgreSQL
/// writes a change in one statement, so it evaluates this same rule in SQL (`GUARD_HOLDS`); the
/// conformance suite holds the two to the same answers.
pub(crate) fn guard_holds(guard: &Guard, row: &LeaseColumns, now: DateTime<Utc>) -> Result<bool> {
    Ok(match guard {
        Guard::Version => true,
        Guard::Holder(fence) => row.owner.as_deref() == Some(fence.owner.as_str()) && row.epoch == Some(fence.epoch),
        Guard::Lapsed { grace, .. } => {
            row.state == State::Running.name()
                && match row.until {
                    Some(until) => until < now,
                    None => row.updated_at < now - chrono::Duration::from_std(*grace)?,
                }
        }
    })
}

/// A duration as whole milliseconds, for a statement parameter.
pub(crate) fn millis(length: Duration) -> i64 {
    i64::try_from(length.as_millis()).unwrap_or(i64::MAX)
}
