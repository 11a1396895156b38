//! The store: a small façade of intention-named operations, over PostgreSQL (several replicas)
//! or an embedded SQLite file (one process, no database server). Both give the same guarantees
//! and pass the same conformance tests. Every operation that writes more than one row runs
//! inside one transaction, passed by type to its helpers.
pub mod embedded;
mod postgres;

pub use embedded::EmbeddedStore;
pub use postgres::PostgresStore;

use crate::domain::proposal::{Proposal, ProposalId};
use crate::domain::{Recorded, Rollback, RollbackId};

// The effect vocabulary is the core's; the store writes it as rows.
pub use crate::domain::effects::{Consequences, Effect, Fence, Guard, Lease, Timer, TimerAction};
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct DueTimer {
    pub id: i64,
    pub rollback_id: RollbackId,
    pub action: TimerAction,
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub rollback_id: Option<RollbackId>,
    pub effect: Effect,
    pub attempts: i32,
    /// A channel slot was reserved for it (when its rollback was filed, or when it was put back
    /// to wait): it posts without taking another.
    pub slot_reserved: bool,
}

/// A new request's commit was sent but no success came back (the connection broke, the server
/// failed): it may or may not be recorded, so the requester must look before asking again.
#[derive(Debug)]
pub struct CommitOutcomeUnknown;

impl std::fmt::Display for CommitOutcomeUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("committing the new request failed; whether it was recorded is unknown")
    }
}

impl std::error::Error for CommitOutcomeUnknown {}

impl CommitOutcomeUnknown {
    /// Whether `error`, with whatever context was added on the way up, came from such a commit.
    pub fn caused(error: &anyhow::Error) -> bool {
        error.downcast_ref::<CommitOutcomeUnknown>().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::CommitOutcomeUnknown;
    use anyhow::Context;

    #[test]
    fn an_unknown_commit_is_recognised_under_added_context() {
        let lost: Result<(), std::io::Error> = Err(std::io::Error::other("connection reset"));
        let error = lost
            .context(CommitOutcomeUnknown)
            .context("recording the rollback request")
            .unwrap_err();
        assert!(CommitOutcomeUnknown::caused(&error));
        assert!(!CommitOutcomeUnknown::caused(&anyhow::anyhow!(
            "no database connection available"
        )));
    }
}

/// The request a rollback's first event records.
pub(crate) fn request_of(history: &[Recorded]) -> Result<&crate::domain::RollbackRequest> {
    match history.first().map(|r| &r.event) {
        Some(crate::domain::Event::Requested { request, .. }) => Ok(request),
        _ => anyhow::bail!("a rollback must start with a request"),
    }
}

/// The outcome of filing a new rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed<T> {
    Yes(T),
    /// The requester already has this many open rollbacks (listed); nothing was recorded.
    TooManyOpen(Vec<RollbackId>),
    /// The proposal it was started from changed first; nothing was recorded.
    ProposalChanged,
    /// The same delivery was filed before, as this rollback; nothing new was recorded.
    Seen(Rollback),
    /// This open rollback holds the request's lock; nothing was recorded.
    Locked(RollbackId),
}

/// Slack accepts about one message per second per channel: posts to a channel are paced this
/// far apart. A new rollback's card takes its channel's next slot when it is filed; every other
/// message takes one when it is about to be posted.
pub const CHANNEL_POST_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// Rollbacks in these states are over; every other state still needs someone's attention.
pub(crate) const FINISHED_STATES: &str = "'succeeded', 'failed', 'rejected', 'cancelled', 'expired', 'aborted'";

/// The outcome of an optimistic write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Ok,
    /// Someone else changed the rollback first; reload and decide again.
    Conflict,
    /// The change's guard does not hold (the writer lost the lease, or the lease it meant to
    /// declare lapsed is held): deciding again would not help.
    Guarded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    pub channel: String,
    pub ts: String,
}

/// The tables whose rows have a card in Slack.
#[derive(Debug, Clone, Copy)]
enum CardTable {
    Rollbacks,
    Proposals,
}

impl CardTable {
    fn name(self) -> &'static str {
        match self {
            CardTable::Rollbacks => "rollbacks",
            CardTable::Proposals => "proposals",
        }
    }
}

/// Where rollbot keeps its state.
#[derive(Clone)]
pub enum Store {
    Postgres(PostgresStore),
    Embedded(EmbeddedStore),
}

impl Store {
    /// PostgreSQL at `url` (the database is created if missing).
    pub async fn connect(url: &str) -> Result<Store> {
        Ok(Store::Postgres(PostgresStore::connect(url).await?))
    }

    /// The embedded store in the file at `path`, owned by this process alone.
    pub fn open_embedded(path: &Path) -> Result<Store> {
        Ok(Store::Embedded(EmbeddedStore::open(path)?))
    }

    /// A rollback with every event it recorded, for the timeline, the API and the post-mortem.
    pub async fn load_with_history(&self, id: RollbackId) -> Result<Option<(Rollback, Vec<Recorded>)>> {
        let Some(rollback) = self.load(id).await? else {
            return Ok(None);
        };
        Ok(Some((rollback, self.history(id).await?)))
    }

    /// The newest rollbacks, optionally only those requested in one channel.
    pub async fn recent(&self, channel: Option<&str>, limit: i64) -> Result<Vec<Rollback>> {
        self.latest(channel, false, limit).await
    }

    /// The latest drills, newest first.
    pub async fn recent_drills(&self, channel: Option<&str>, limit: i64) -> Result<Vec<Rollback>> {
        self.latest(channel, true, limit).await
    }

    /// `postgres` or `embedded`, for logs and tests.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Embedded(_) => "embedded",
        }
    }
}

/// The longest one store operation may take before it fails: a database that accepts
/// connections and never answers costs this, and Slack still gets its answer within three
/// seconds. Schema migrations and imports have none.
pub const OPERATION_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2500);

/// The database did not answer an operation in time.
#[derive(Debug)]
pub struct StoreTimeout {
    pub operation: &'static str,
}

impl std::fmt::Display for StoreTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the store did not answer `{}` within {} ms",
            self.operation,
            OPERATION_DEADLINE.as_millis()
        )
    }
}

impl std::error::Error for StoreTimeout {}

async fn within_deadline<T>(operation: &'static str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(OPERATION_DEADLINE, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!(StoreTimeout { operation })),
    }
}

/// Each operation goes to the backend in use; both must have it, with the same signature.
/// Every one of them answers within `OPERATION_DEADLINE`, done or failed.
macro_rules! operations {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    within_deadline(stringify!($name), async {
                        match self {
                            Store::Postgres(store) => store.$name($($arg),*).await,
                            Store::Embedded(store) => store.$name($($arg),*).await,
                        }
                    })
                    .await
                }
            )*
        }
    };
}

impl Store {
    /// Applies the migrations that have not run yet (with no deadline: an index on a large
    /// table takes the time it takes).
    pub async fn migrate(&self) -> Result<Vec<&'static str>> {
        match self {
            Store::Postgres(store) => store.migrate().await,
            Store::Embedded(store) => store.migrate().await,
        }
    }
}

operations! {
    fn ping(&self) -> Result<()>;
    /// Records a new rollback from its first events, with the effects they cause, and returns
    /// it with its number, unless its requester already has `open_limit` open rollbacks
    /// (checked in the same transaction, so simultaneous requests cannot both slip past).
    /// Its card holds its channel's next posting slot (`CHANNEL_POST_GAP` after the one before)
    /// and is not due before it, nor is what follows the card in its lane.
    fn create_rollback(&self, history: &[Recorded], consequences: &Consequences, open_limit: Option<usize>) -> Result<Filed<Rollback>>;
    /// Stores `rollback` (already folded with `events`) if nobody changed it since
    /// `expected_version`, appending the events and effects in the same transaction.
    fn append(
        &self,
        rollback: &Rollback,
        expected_version: i64,
        events: &[Recorded],
        consequences: &Consequences,
    ) -> Result<Written>;
    fn load(&self, id: RollbackId) -> Result<Option<Rollback>>;
    fn history(&self, id: RollbackId) -> Result<Vec<Recorded>>;
    /// The newest rollbacks (only drills if `drills_only`), optionally of one channel only.
    fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>>;
    /// Rollbacks that are approved and wait for the executor, oldest first.
    fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>>;
    /// Renews the lease `fence` holds on a running rollback, for `length` from `at` (`None`: the
    /// database's clock); `false` when it no longer holds it (then the holder must stop).
    fn hold_lease(&self, id: RollbackId, fence: &Fence, length: std::time::Duration, at: Option<DateTime<Utc>>) -> Result<bool>;
    /// Gives the lease up, if `fence` still holds it.
    fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()>;
    /// Running rollbacks whose process stopped renewing its lease, by the store's clock (`at`,
    /// `None` for the database's). A run that never took a lease counts from its last change,
    /// plus `grace`.
    fn runs_with_lapsed_lease(&self, at: Option<DateTime<Utc>>, grace: std::time::Duration) -> Result<Vec<RollbackId>>;
    fn card(&self, id: RollbackId) -> Result<Option<CardRef>>;
    fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()>;
    /// The status page incident opened for a rollback, if any.
    fn page_incident(&self, id: RollbackId) -> Result<Option<String>>;
    fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()>;
    /// Queues effects about a rollback that come from outside a decision (a delivery problem).
    fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()>;
    /// Queues effects that belong to no rollback (private answers).
    fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()>;
    /// Claims up to `limit` deliverable effects for `lease`. A rollback's effects are handed
    /// out one at a time per lane, in order, so its thread reads in the order things happened.
    /// Claims count by the store's clock (`at`, `None` for the database's; see `Clock::store_time`).
    fn claim_outbox(&self, at: Option<DateTime<Utc>>, lease: std::time::Duration, limit: i64) -> Result<Vec<OutboxItem>>;
    /// Claims timers that are due, for `lease`; a claimed timer that is not marked fired before
    /// its lease ends is handed out again (its process may have died).
    fn claim_due_timers(&self, at: Option<DateTime<Utc>>, lease: std::time::Duration, limit: i64) -> Result<Vec<DueTimer>>;
    fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Timers not yet fired: (action, due).
    fn pending_timers(&self, id: RollbackId) -> Result<Vec<(TimerAction, DateTime<Utc>)>>;
    /// Reserves the channel's next posting slot, `gap` after the one before it and not before
    /// `now`, and says when it is: `now` means post now.
    fn reserve_channel_slot(&self, channel: &str, now: DateTime<Utc>, gap: std::time::Duration) -> Result<DateTime<Utc>>;
    /// Puts a claimed effect back until the slot reserved for it at `at`, without counting an
    /// attempt: it was not tried.
    fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
    /// Puts a claimed effect back untried, due at once (its claim would lapse before its turn).
    fn outbox_hand_back(&self, id: i64) -> Result<()>;
    /// When the next effect that waits only for its channel's slot becomes due.
    fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>>;
    /// The proposal still open (not resolved) for an alert group and service.
    fn open_proposal(&self, group_key: &str, service: &str) -> Result<Option<Proposal>>;
    fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>>;
    /// Stores a new proposal (id 0) or a change to one loaded at `proposal.version`, and queues
    /// its card. `None`: someone else wrote first (or opened the same group); load and retry.
    fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>>;
    /// Records a rollback requested from `proposal` (already marked started, loaded at its
    /// version) and the proposal's change in one transaction, under the same `open_limit` as
    /// `create_rollback`.
    fn start_from_proposal(
        &self,
        proposal: &Proposal,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<(Rollback, Proposal)>>;
    fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>>;
    fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()>;
    /// Figures for `/metrics`.
    fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures>;
    fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Gives up on an effect: kept, with why, so that nothing disappears silently.
    fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()>;
    fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()>;
    /// Puts a claimed effect back until `at` without counting the attempt: Slack asked to wait.
    fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()>;
    /// Deletes up to `limit` messages delivered before `delivered_before` (the rollbacks' events,
    /// the timeline, stay; so do undeliverable messages, with their error); returns how many.
    fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64>;
    /// Forgets the signed deliveries seen before `seen_before` (long past Slack's 5-minute
    /// signature window, a delivery cannot come again); returns how many.
    fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64>;
    /// When an effect was queued (it is given up on by age, not by its number of attempts).
    fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>>;
    /// Slack asked (429, Retry-After) not to call `method` before `until`: every replica waits.
    fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()>;
    /// The methods Slack asked to wait for, and until when, as of `now`.
    fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>>;
}

/// A store's whole content, row for row: what `rollbot migrate` carries from the embedded file
/// to PostgreSQL. Documents are JSON text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Export {
    pub rollbacks: Vec<RollbackRow>,
    pub events: Vec<EventRow>,
    pub outbox: Vec<OutboxRow>,
    pub timers: Vec<TimerRow>,
    pub proposals: Vec<ProposalRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProposalRow {
    pub id: i64,
    pub version: i64,
    pub group_key: String,
    pub service: String,
    pub resolved: bool,
    pub doc: String,
    pub rollback_id: Option<i64>,
    pub card_channel: Option<String>,
    pub card_ts: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RollbackRow {
    pub id: i64,
    pub version: i64,
    pub state: String,
    pub channel_id: String,
    pub service: String,
    pub doc: String,
    pub card_channel: Option<String>,
    pub card_ts: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub page_incident_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub rollback_id: i64,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub rollback_id: Option<i64>,
    pub kind: String,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub available_at: DateTime<Utc>,
    pub attempts: i32,
    pub claimed_until: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub lane: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimerRow {
    pub id: i64,
    pub rollback_id: i64,
    pub action: String,
    pub due_at: DateTime<Utc>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
}
