//! What a backend must do, by concern. Each trait has one file per backend
//! (`postgres/outbox.rs` beside `embedded/outbox.rs`, and so on), so the two can be reviewed side
//! by side; both pass the conformance suite in `tests/it/store.rs`. Callers use [`super::Store`],
//! which bounds every operation by `OPERATION_DEADLINE`.
use super::{CardRef, Consequences, DueTimer, Effect, Fence, Filed, OutboxItem, TimerAction, Written};
use crate::domain::proposal::{Proposal, ProposalId};
use crate::domain::{Recorded, Rollback, RollbackId};
use anyhow::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The schema and the store's health.
#[async_trait]
pub trait Schema {
    /// `postgres` or `embedded`, for logs and tests.
    fn name(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
    /// Applies the migrations that have not run yet; several replicas may call it at once.
    async fn migrate(&self) -> Result<Vec<&'static str>>;
    /// Figures for `/metrics`.
    async fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures>;
}

/// Rollbacks, their events, their leases and their cards.
#[async_trait]
pub trait Rollbacks {
    /// The unfinished rollback holding `lock`, if any.
    async fn open_holding(&self, lock: &str) -> Result<Option<RollbackId>>;
    /// Records a new rollback from its first events, with the effects they cause, and returns
    /// it with its number, unless its requester already has `open_limit` open rollbacks
    /// (checked in the same transaction, so simultaneous requests cannot both slip past), the
    /// same delivery was filed before, or an open rollback holds its lock.
    /// Its card holds its channel's next posting slot (`CHANNEL_POST_GAP` after the one before)
    /// and is not due before it, nor is what follows the card in its lane.
    async fn create_rollback(
        &self,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<Rollback>>;
    /// Stores `rollback` (already folded with `events`) if nobody changed it since
    /// `expected_version` and the change's guard holds, appending the events and effects in the
    /// same transaction.
    async fn append(
        &self,
        rollback: &Rollback,
        expected_version: i64,
        events: &[Recorded],
        consequences: &Consequences,
    ) -> Result<Written>;
    async fn load(&self, id: RollbackId) -> Result<Option<Rollback>>;
    async fn history(&self, id: RollbackId) -> Result<Vec<Recorded>>;
    /// The newest rollbacks (only drills if `drills_only`), optionally of one channel only.
    async fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>>;
    /// Rollbacks that are approved and wait for the executor, oldest first.
    async fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>>;
    /// Renews the lease `fence` holds on a running rollback, for `length` from `at` (`None`: the
    /// database's clock); `false` when it no longer holds it (then the holder must stop).
    async fn hold_lease(
        &self,
        id: RollbackId,
        fence: &Fence,
        length: Duration,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool>;
    /// Gives the lease up, if `fence` still holds it.
    async fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()>;
    /// Running rollbacks whose process stopped renewing its lease, by the store's clock (`at`,
    /// `None` for the database's). A run that never took a lease counts from its last change,
    /// plus `grace`.
    async fn runs_with_lapsed_lease(&self, at: Option<DateTime<Utc>>, grace: Duration) -> Result<Vec<RollbackId>>;
    async fn card(&self, id: RollbackId) -> Result<Option<CardRef>>;
    async fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()>;
    /// The status page incident opened for a rollback, if any.
    async fn page_incident(&self, id: RollbackId) -> Result<Option<String>>;
    async fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()>;
    /// Forgets the signed deliveries seen before `seen_before` (long past Slack's 5-minute
    /// signature window, a delivery cannot come again); returns how many.
    async fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64>;
}

/// Proposals made from alerts, and their cards.
#[async_trait]
pub trait Proposals {
    /// The service's proposals still open (not resolved), oldest first.
    async fn open_proposals(&self, service: &str) -> Result<Vec<Proposal>>;
    /// The newest request rollbot filed by itself (`auto_request`) for the service, and when.
    async fn last_automatic_request(&self, service: &str) -> Result<Option<(RollbackId, DateTime<Utc>)>>;
    async fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>>;
    /// Stores a new proposal (id 0) or a change to one loaded at `proposal.version`, and queues
    /// its card. `None`: someone else wrote first (or opened a proposal that should hold this
    /// one's group: `Proposal::may_open_beside`); load and retry.
    async fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>>;
    /// Records a rollback requested from `proposal` (already marked started, loaded at its
    /// version) and the proposal's change in one transaction, under the same `open_limit` as
    /// `create_rollback`.
    async fn start_from_proposal(
        &self,
        proposal: &Proposal,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<(Rollback, Proposal)>>;
    async fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>>;
    async fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()>;
}

/// The outbox: effects waiting to reach Slack and the status page, paced per channel.
#[async_trait]
pub trait Outbox {
    /// Queues effects about a rollback that come from outside a decision (a delivery problem).
    async fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()>;
    /// Queues effects that belong to no rollback (private answers).
    async fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()>;
    /// Claims up to `limit` deliverable effects for `lease`. A rollback's effects are handed
    /// out one at a time per lane, in order, so its thread reads in the order things happened.
    /// Claims count by the store's clock (`at`, `None` for the database's; see `Clock::store_time`).
    async fn claim_outbox(&self, at: Option<DateTime<Utc>>, lease: Duration, limit: i64) -> Result<Vec<OutboxItem>>;
    /// Reserves the channel's next posting slot and says when it is (`now` means post now): one
    /// `gap` apart, except that a channel that was quiet takes up to `burst` posts at once, as
    /// Slack allows (a token bucket, kept as the time the channel's credit runs out).
    async fn reserve_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: Duration,
        burst: u32,
    ) -> Result<DateTime<Utc>>;
    /// Takes the channel's posting slot only if nothing is reserved ahead of `now`: for messages
    /// that give way to rollbacks' (proposal cards). `None`: taken, post now; otherwise when the
    /// channel is next free.
    async fn take_idle_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: Duration,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Puts a claimed effect back untried until `at`, when its channel should be free again (a
    /// paced wait, like a slot's, but it reserves nothing: it looks again then).
    async fn outbox_wait_for_channel(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
    /// Puts a claimed effect back until the slot reserved for it at `at`, without counting an
    /// attempt: it was not tried.
    async fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
    /// Puts a claimed effect back untried, due at once (its claim would lapse before its turn).
    async fn outbox_hand_back(&self, id: i64) -> Result<()>;
    /// When the next effect that waits only for its channel (its slot, or the channel to be
    /// free) becomes due; one with an error on record, or behind one, is not counted.
    async fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>>;
    async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Up to `limit` effects queued behind `id` in its rollback's lane, in order, not yet done:
    /// what one message may say for them when the lane fell behind.
    async fn outbox_queued_behind(&self, id: i64, limit: i64) -> Result<Vec<(i64, Effect)>>;
    /// `id` was delivered, and `merged` (queued behind it) with it, by the same message; at once.
    async fn outbox_delivered_merging(&self, id: i64, merged: &[i64], now: DateTime<Utc>) -> Result<()>;
    /// Gives up on an effect: kept, with why, so that nothing disappears silently.
    async fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()>;
    async fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()>;
    /// Puts a claimed effect back until `at` without counting the attempt: Slack asked to wait.
    async fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()>;
    /// Deletes up to `limit` messages delivered before `delivered_before` (the rollbacks' events,
    /// the timeline, stay; so do undeliverable messages, with their error); returns how many.
    async fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64>;
    /// When an effect was queued (it is given up on by age, not by its number of attempts).
    async fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>>;
    /// Slack asked (429, Retry-After) not to call `method` before `until`: every replica waits.
    async fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()>;
    /// The methods Slack asked to wait for, and until when, as of `now`.
    async fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>>;
}

/// Timers: escalations, expiries and pauses that fire later.
#[async_trait]
pub trait Timers {
    /// Claims timers that are due, for `lease`; a claimed timer that is not marked fired before
    /// its lease ends is handed out again (its process may have died).
    async fn claim_due_timers(&self, at: Option<DateTime<Utc>>, lease: Duration, limit: i64) -> Result<Vec<DueTimer>>;
    async fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Timers not yet fired: (action, due).
    async fn pending_timers(&self, id: RollbackId) -> Result<Vec<(TimerAction, DateTime<Utc>)>>;
}

/// A whole backend: every concern.
pub trait Backend: Schema + Rollbacks + Proposals + Outbox + Timers + Send + Sync {}

impl<T: Schema + Rollbacks + Proposals + Outbox + Timers + Send + Sync> Backend for T {}
