//! The store: a small façade of intention-named operations, over PostgreSQL (several replicas)
//! or an embedded SQLite file (one process, no database server). Both give the same guarantees
//! and pass the same conformance tests. Every operation that writes more than one row runs
//! inside one transaction, passed by type to its helpers.
pub mod embedded;
pub mod ops;
mod postgres;
mod rows;

pub use embedded::EmbeddedStore;
pub use postgres::PostgresStore;

use crate::domain::proposal::{Proposal, ProposalId};
use crate::domain::{Recorded, Rollback, RollbackId};

// The effect vocabulary is the core's; the store writes it as rows.
pub use crate::domain::effects::{Consequences, Effect, Fence, Guard, Lease, Timer, TimerAction};
use anyhow::Result;
use chrono::{DateTime, Utc};
use ops::Backend;
use std::path::Path;
use std::time::Duration;

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
    /// to wait): it posts without taking another. A message that gives way (a proposal's card)
    /// holds none and looks again whether the channel is free.
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
/// Slack allows short bursts above that pace: a quiet channel takes this many posts at once
/// (the thread of a fast runbook goes out at once instead of one a second).
pub const CHANNEL_POST_BURST: u32 = 3;

/// How far ahead of its one-a-gap place a post may go on a quiet channel's credit: the burst's
/// gaps, less a margin, because Slack starts counting when the first post arrives, after
/// rollbot reserved its slot (a card's slot is reserved when it is filed, and the worker
/// gathers for 100 ms before it claims; the benchmark measured arrivals 110 ms after the
/// reservation), so a post at the exact edge of the credit could be early by Slack's clock.
pub(crate) fn burst_credit(gap: std::time::Duration, burst: u32) -> std::time::Duration {
    const MARGIN: std::time::Duration = std::time::Duration::from_millis(250);
    (gap * burst.max(1).saturating_sub(1)).saturating_sub(MARGIN)
}

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

    /// Whether PostgreSQL at `url` answers, without creating or changing anything; a database
    /// that accepts and never answers costs the operation deadline.
    pub async fn probe(url: &str) -> Result<()> {
        within_deadline("probe", PostgresStore::probe(url)).await
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
    pub fn backend_name(&self) -> &'static str {
        self.backend().name()
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

impl Store {
    /// The backend in use; every operation below goes to it.
    fn backend(&self) -> &dyn Backend {
        match self {
            Store::Postgres(store) => store,
            Store::Embedded(store) => store,
        }
    }

    /// Applies the migrations that have not run yet (with no deadline: an index on a large
    /// table takes the time it takes).
    pub async fn migrate(&self) -> Result<Vec<&'static str>> {
        self.backend().migrate().await
    }
}

/// The operations, each bounded by `OPERATION_DEADLINE`; what each must do is written on its
/// trait in `ops.rs`.
impl Store {
    pub async fn ping(&self) -> Result<()> {
        within_deadline("ping", self.backend().ping()).await
    }

    pub async fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures> {
        within_deadline("figures", self.backend().figures(now)).await
    }

    pub async fn load(&self, id: RollbackId) -> Result<Option<Rollback>> {
        within_deadline("load", self.backend().load(id)).await
    }

    pub async fn history(&self, id: RollbackId) -> Result<Vec<Recorded>> {
        within_deadline("history", self.backend().history(id)).await
    }

    pub async fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>> {
        within_deadline("latest", self.backend().latest(channel, drills_only, limit)).await
    }

    pub async fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>> {
        within_deadline("waiting_to_run", self.backend().waiting_to_run(limit)).await
    }

    pub async fn hold_lease(
        &self,
        id: RollbackId,
        fence: &Fence,
        length: Duration,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        within_deadline("hold_lease", self.backend().hold_lease(id, fence, length, at)).await
    }

    pub async fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()> {
        within_deadline("release_lease", self.backend().release_lease(id, fence)).await
    }

    pub async fn runs_with_lapsed_lease(&self, at: Option<DateTime<Utc>>, grace: Duration) -> Result<Vec<RollbackId>> {
        within_deadline(
            "runs_with_lapsed_lease",
            self.backend().runs_with_lapsed_lease(at, grace),
        )
        .await
    }

    pub async fn card(&self, id: RollbackId) -> Result<Option<CardRef>> {
        within_deadline("card", self.backend().card(id)).await
    }

    pub async fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()> {
        within_deadline("remember_card", self.backend().remember_card(id, card)).await
    }

    pub async fn page_incident(&self, id: RollbackId) -> Result<Option<String>> {
        within_deadline("page_incident", self.backend().page_incident(id)).await
    }

    pub async fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()> {
        within_deadline(
            "remember_page_incident",
            self.backend().remember_page_incident(id, incident),
        )
        .await
    }

    pub async fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64> {
        within_deadline("forget_deliveries", self.backend().forget_deliveries(seen_before)).await
    }

    pub async fn open_holding(&self, lock: &str) -> Result<Option<RollbackId>> {
        within_deadline("open_holding", self.backend().open_holding(lock)).await
    }

    pub async fn open_proposals(&self, service: &str) -> Result<Vec<Proposal>> {
        within_deadline("open_proposals", self.backend().open_proposals(service)).await
    }

    pub async fn last_automatic_request(&self, service: &str) -> Result<Option<(RollbackId, DateTime<Utc>)>> {
        within_deadline("last_automatic_request", self.backend().last_automatic_request(service)).await
    }

    pub async fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>> {
        within_deadline("load_proposal", self.backend().load_proposal(id)).await
    }

    pub async fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>> {
        within_deadline("save_proposal", self.backend().save_proposal(proposal, now)).await
    }

    pub async fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>> {
        within_deadline("proposal_card", self.backend().proposal_card(id)).await
    }

    pub async fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()> {
        within_deadline(
            "remember_proposal_card",
            self.backend().remember_proposal_card(id, card),
        )
        .await
    }

    pub async fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        within_deadline("enqueue_for", self.backend().enqueue_for(id, effects, now)).await
    }

    pub async fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        within_deadline("enqueue", self.backend().enqueue(effects, now)).await
    }

    pub async fn claim_outbox(
        &self,
        at: Option<DateTime<Utc>>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        within_deadline("claim_outbox", self.backend().claim_outbox(at, lease, limit)).await
    }

    pub async fn reserve_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: Duration,
        burst: u32,
    ) -> Result<DateTime<Utc>> {
        within_deadline(
            "reserve_channel_slot",
            self.backend().reserve_channel_slot(channel, now, gap, burst),
        )
        .await
    }

    pub async fn take_idle_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        within_deadline(
            "take_idle_channel_slot",
            self.backend().take_idle_channel_slot(channel, now, gap),
        )
        .await
    }

    pub async fn outbox_wait_for_channel(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        within_deadline(
            "outbox_wait_for_channel",
            self.backend().outbox_wait_for_channel(id, at),
        )
        .await
    }

    pub async fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        within_deadline("outbox_wait_for_slot", self.backend().outbox_wait_for_slot(id, at)).await
    }

    pub async fn outbox_hand_back(&self, id: i64) -> Result<()> {
        within_deadline("outbox_hand_back", self.backend().outbox_hand_back(id)).await
    }

    pub async fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        within_deadline("next_paced_delivery", self.backend().next_paced_delivery(now)).await
    }

    pub async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        within_deadline("outbox_delivered", self.backend().outbox_delivered(id, now)).await
    }

    pub async fn outbox_queued_behind(&self, id: i64, limit: i64) -> Result<Vec<(i64, Effect)>> {
        within_deadline("outbox_queued_behind", self.backend().outbox_queued_behind(id, limit)).await
    }

    pub async fn outbox_delivered_merging(&self, id: i64, merged: &[i64], now: DateTime<Utc>) -> Result<()> {
        within_deadline(
            "outbox_delivered_merging",
            self.backend().outbox_delivered_merging(id, merged, now),
        )
        .await
    }

    pub async fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()> {
        within_deadline(
            "outbox_undeliverable",
            self.backend().outbox_undeliverable(id, now, error),
        )
        .await
    }

    pub async fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        within_deadline("outbox_retry_at", self.backend().outbox_retry_at(id, at, error)).await
    }

    pub async fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        within_deadline("outbox_rate_limited", self.backend().outbox_rate_limited(id, at, error)).await
    }

    pub async fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64> {
        within_deadline("prune_outbox", self.backend().prune_outbox(delivered_before, limit)).await
    }

    pub async fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
        within_deadline("outbox_queued_at", self.backend().outbox_queued_at(id)).await
    }

    pub async fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()> {
        within_deadline("slack_back_off", self.backend().slack_back_off(method, until)).await
    }

    pub async fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>> {
        within_deadline("slack_backoffs", self.backend().slack_backoffs(now)).await
    }

    pub async fn claim_due_timers(
        &self,
        at: Option<DateTime<Utc>>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<DueTimer>> {
        within_deadline("claim_due_timers", self.backend().claim_due_timers(at, lease, limit)).await
    }

    pub async fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        within_deadline("timer_fired", self.backend().timer_fired(id, now)).await
    }

    pub async fn pending_timers(&self, id: RollbackId) -> Result<Vec<(TimerAction, DateTime<Utc>)>> {
        within_deadline("pending_timers", self.backend().pending_timers(id)).await
    }

    pub async fn create_rollback(
        &self,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<Rollback>> {
        within_deadline(
            "create_rollback",
            self.backend().create_rollback(history, consequences, open_limit),
        )
        .await
    }

    pub async fn append(
        &self,
        rollback: &Rollback,
        expected_version: i64,
        events: &[Recorded],
        consequences: &Consequences,
    ) -> Result<Written> {
        within_deadline(
            "append",
            self.backend().append(rollback, expected_version, events, consequences),
        )
        .await
    }

    pub async fn start_from_proposal(
        &self,
        proposal: &Proposal,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<(Rollback, Proposal)>> {
        within_deadline(
            "start_from_proposal",
            self.backend()
                .start_from_proposal(proposal, history, consequences, open_limit),
        )
        .await
    }
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
