//! Group commit for new requests. A burst of `/rollback` commands (an alert storm, a whole team
//! reacting at once) would otherwise cost one transaction, one WAL flush and a dozen round
//! trips each. The filer takes every request waiting at the moment it is free, records them in
//! one transaction of a few multi-row statements, and answers each only after that commit: each
//! acknowledgement is as durable as before, the flush is shared. Nobody waits for a timer; a
//! lone request is filed at once, in a batch of one.
//!
//! If a batch fails, its requests are filed again one transaction each, so one bad request
//! cannot fail the others it happened to share a batch with.
use super::rollbacks::{already_admitted, insert_rollback, requester_is_full};
use super::{jsonb, raw_json};
use crate::domain::{Recorded, Rollback, RollbackId};
use crate::store::rows::EffectRow;
use crate::store::{CHANNEL_POST_GAP, CommitOutcomeUnknown, Consequences, FINISHED_STATES, Filed};
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::types::Json;

/// Requests filed in one transaction at most; more wait for the next.
const MAX_BATCH: usize = 256;
/// Batches written at the same time: one commits while the next is gathered and written.
const BATCHES_IN_FLIGHT: usize = 2;
/// Requests that may wait for the filer before callers wait to queue.
const QUEUE: usize = 4096;

/// One request to record, and where its outcome goes.
pub(super) struct Filing {
    pub history: Vec<Recorded>,
    pub consequences: Consequences,
    pub open_limit: Option<usize>,
    pub answer: oneshot::Sender<Result<Filed<Rollback>>>,
    /// Whether the filer is committing it, or its requester stopped waiting first: exactly one
    /// of the two happens, so a requester told "not recorded" is right.
    pub fate: Arc<AtomicU8>,
}

const WAITING: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

impl Filing {
    /// Whether its requester still waits (nothing is written for one who gave up).
    fn wanted(&self) -> bool {
        self.fate.load(Ordering::SeqCst) != ABANDONED
    }

    /// Just before the commit: from here on the request may be recorded. `false` if its
    /// requester gave up first, and so was told it is not.
    fn commit_begins(&self) -> bool {
        self.fate
            .compare_exchange(WAITING, COMMITTING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// Every filing of a batch is about to be committed, or none is: one whose requester gave up
/// sends the batch back to be filed one by one (the others' marks stand: still theirs to commit).
fn all_commit(batch: &[Filing]) -> Result<()> {
    let mut all = true;
    for filing in batch {
        all &= filing.fate.load(Ordering::SeqCst) == COMMITTING || filing.commit_begins();
    }
    anyhow::ensure!(all, "a requester gave up waiting before its batch could commit");
    Ok(())
}

/// The longest a batch may take, so that a database that never answers cannot hold the filer.
const BATCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a requester waits for its request to be filed: past it the request is answered
/// within Slack's three seconds, with the truth (not recorded, or not known).
pub(super) const FILING_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2000);

/// The database did not take a request in time, and it was withdrawn before any of it was
/// written: it is certainly not recorded.
#[derive(Debug)]
pub(super) struct NotRecorded;

impl std::fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database did not take the request within {} ms; it was withdrawn, nothing was recorded",
            FILING_DEADLINE.as_millis()
        )
    }
}

impl std::error::Error for NotRecorded {}

/// Starts the filer on the current runtime; it stops when every sender is dropped.
pub(super) fn start(pool: Pool) -> mpsc::Sender<Filing> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(file_batches(pool, receiver));
    sender
}

async fn file_batches(pool: Pool, mut waiting: mpsc::Receiver<Filing>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        // Gathering starts once a batch may be written, so what queued meanwhile goes together.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut batch: Vec<Filing> = vec![first].into_iter().filter(Filing::wanted).collect();
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(filing) if filing.wanted() => batch.push(filing),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(BATCH_DEADLINE, file_batch(&pool, batch))
                .await
                .is_err()
            {
                tracing::error!(
                    deadline_secs = BATCH_DEADLINE.as_secs(),
                    "filing a batch of requests did not finish in time; its requesters were answered at their deadline"
                );
            }
            drop(permit);
        });
    }
}

async fn file_batch(pool: &Pool, batch: Vec<Filing>) {
    if batch.len() > 1 {
        match file_together(pool, &batch).await {
            Ok(outcomes) => {
                for (filing, outcome) in batch.into_iter().zip(outcomes) {
                    // The requester may have gone (its connection closed); the record stands.
                    let _ = filing.answer.send(Ok(outcome));
                }
                return;
            }
            Err(error) if CommitOutcomeUnknown::caused(&error) => {
                // The batch may be recorded: filing it again could record each request twice.
                tracing::error!(
                    error = format!("{error:#}"),
                    requests = batch.len(),
                    "a batch's commit did not answer"
                );
                for filing in batch {
                    let _ = filing.answer.send(Err(anyhow!("{CommitOutcomeUnknown}")));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    requests = batch.len(),
                    "a batch of requests could not be filed together; filing each alone"
                );
            }
        }
    }
    for filing in batch.into_iter().filter(Filing::wanted) {
        let outcome = file_alone(pool, &filing).await;
        let _ = filing.answer.send(outcome);
    }
}

/// One request in its own transaction.
async fn file_alone(pool: &Pool, filing: &Filing) -> Result<Filed<Rollback>> {
    let mut client = pool.get().await.context("no database connection available")?;
    let tx = client.transaction().await?;
    if let Some(answer) = already_admitted(&tx, &filing.history).await? {
        return Ok(answer);
    }
    if let Some(open) = requester_is_full(&tx, &filing.history, filing.open_limit).await? {
        return Ok(Filed::TooManyOpen(open));
    }
    let rollback = insert_rollback(&tx, &filing.history, &filing.consequences).await?;
    all_commit(std::slice::from_ref(filing))?;
    tx.commit().await.context(CommitOutcomeUnknown)?;
    Ok(Filed::Yes(rollback))
}

fn requester(filing: &Filing) -> Result<&str> {
    Ok(&filing
        .history
        .first()
        .context("a rollback must start with a request")?
        .actor
        .0)
}

/// Every request of `batch` in one transaction, with the same per-person limit as alone:
/// the requesters are locked (in one order, so batches cannot deadlock each other) and their
/// open rollbacks counted, and the batch's own new ones count as they are accepted.
async fn file_together(pool: &Pool, batch: &[Filing]) -> Result<Vec<Filed<Rollback>>> {
    let mut client = pool.get().await.context("no database connection available")?;
    let tx = client.transaction().await?;

    let limited: Vec<String> = batch
        .iter()
        .filter(|f| f.open_limit.is_some())
        .map(|f| requester(f).map(str::to_owned))
        .collect::<Result<HashSet<_>>>()?
        .into_iter()
        .collect();
    let mut open: HashMap<String, Vec<RollbackId>> = HashMap::new();
    if !limited.is_empty() {
        let lock = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(7403313, key)
                 FROM (SELECT DISTINCT hashtext(r) AS key FROM unnest($1::text[]) AS r ORDER BY 1) AS keys",
            )
            .await?;
        let open_now = tx
            .prepare_cached(&format!(
                "SELECT requester, id FROM rollbacks
                 WHERE requester = ANY($1) AND state NOT IN ({FINISHED_STATES}) ORDER BY id"
            ))
            .await?;
        // Sent together: the count starts (and takes its snapshot) only once the locks are held.
        let requesters: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&limited];
        let (_, open_rows) = futures_util::try_join!(tx.execute(&lock, &requesters), tx.query(&open_now, &requesters))?;
        for row in open_rows {
            open.entry(row.get(0)).or_default().push(RollbackId(row.get(1)));
        }
    }

    // Which are accepted, in the order they came; a refused one is told its open rollbacks.
    let mut accepted_count: HashMap<&str, usize> = HashMap::new();
    let accepted: Vec<bool> = batch
        .iter()
        .map(|filing| {
            let Some(limit) = filing.open_limit else {
                return Ok(true);
            };
            let who = requester(filing)?;
            let already = open.get(who).map_or(0, Vec::len) + accepted_count.get(who).copied().unwrap_or(0);
            let ok = already < limit;
            if ok {
                *accepted_count.entry(who).or_default() += 1;
            }
            Ok(ok)
        })
        .collect::<Result<_>>()?;

    clashes_nothing(&tx, batch).await?;
    let wanted = accepted.iter().filter(|a| **a).count() as i64;
    let numbers = tx
        .prepare_cached("SELECT nextval('rollback_numbers') FROM generate_series(1, $1::bigint)")
        .await?;
    let mut ids: Vec<i64> = tx.query(&numbers, &[&wanted]).await?.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    let mut ids = ids.into_iter();

    let mut rows = Rows::default();
    let mut outcomes: Vec<Option<Rollback>> = Vec::with_capacity(batch.len());
    for (filing, accepted) in batch.iter().zip(&accepted) {
        if !accepted {
            outcomes.push(None);
            continue;
        }
        let id = RollbackId(ids.next().context("PostgreSQL handed out too few rollback numbers")?);
        let rollback = Rollback::from_history(id, &filing.history)
            .ok_or_else(|| anyhow!("a rollback must start with a request"))?;
        rows.add(&rollback, &filing.history, &filing.consequences)?;
        open.entry(requester(filing)?.to_owned()).or_default().push(id);
        outcomes.push(Some(rollback));
    }
    rows.insert(&tx).await?;
    all_commit(batch)?;
    tx.commit().await.context(CommitOutcomeUnknown)?;

    batch
        .iter()
        .zip(outcomes)
        .map(|(filing, outcome)| {
            Ok(match outcome {
                Some(rollback) => Filed::Yes(rollback),
                None => {
                    let mut theirs = open.get(requester(filing)?).cloned().unwrap_or_default();
                    theirs.sort();
                    Filed::TooManyOpen(theirs)
                }
            })
        })
        .collect()
}

/// Fails (so each is filed alone, and told what it clashes with) when a request of `batch` is
/// a delivery seen before or twice in it, or wants a lock an open rollback or another of the
/// batch holds. Checked before any rollback number is drawn: a batch that fails later leaves a
/// gap in the numbers people read (the first rollback of a team filed as RB-3).
async fn clashes_nothing(tx: &deadpool_postgres::Transaction<'_>, batch: &[Filing]) -> Result<()> {
    let mut deliveries = HashSet::new();
    let mut locks = HashSet::new();
    for filing in batch {
        let request = crate::store::request_of(&filing.history)?;
        if let Some(delivery) = &request.delivery
            && !deliveries.insert(delivery.clone())
        {
            anyhow::bail!("two requests of the batch are one delivery");
        }
        if let Some(lock) = &request.lock
            && !locks.insert(lock.clone())
        {
            anyhow::bail!("two requests of the batch want one lock");
        }
    }
    if deliveries.is_empty() && locks.is_empty() {
        return Ok(());
    }
    let deliveries: Vec<String> = deliveries.into_iter().collect();
    let locks: Vec<String> = locks.into_iter().collect();
    let clash = tx
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE key = ANY($1))
                 OR EXISTS (SELECT 1 FROM rollbacks WHERE lock_key = ANY($2) AND state NOT IN ({FINISHED_STATES}))"
        ))
        .await?;
    let clashes: bool = tx.query_one(&clash, &[&deliveries, &locks]).await?.get(0);
    anyhow::ensure!(
        !clashes,
        "a request of the batch was delivered before or wants a held lock"
    );
    Ok(())
}

/// New rollbacks' rows, column by column, for one multi-row insert per table.
#[derive(Default)]
pub(super) struct Rows {
    rollback_ids: Vec<i64>,
    versions: Vec<i64>,
    states: Vec<&'static str>,
    channels: Vec<String>,
    services: Vec<String>,
    docs: Vec<Json<Box<RawValue>>>,
    requested_at: Vec<DateTime<Utc>>,

    event_rollbacks: Vec<i64>,
    event_seqs: Vec<i64>,
    event_ats: Vec<DateTime<Utc>>,
    event_actors: Vec<String>,
    events: Vec<Json<Box<RawValue>>>,

    effect_rollbacks: Vec<i64>,
    effect_kinds: Vec<&'static str>,
    effect_payloads: Vec<Json<Box<RawValue>>>,
    effect_ats: Vec<DateTime<Utc>>,
    effect_lanes: Vec<String>,
    /// The channel whose posting slot the effect takes when filed: a new rollback's card.
    effect_card_channels: Vec<Option<String>>,

    timer_rollbacks: Vec<i64>,
    timer_actions: Vec<Json<Box<RawValue>>>,
    timer_dues: Vec<DateTime<Utc>>,
}

impl Rows {
    pub(super) fn add(&mut self, rollback: &Rollback, history: &[Recorded], consequences: &Consequences) -> Result<()> {
        let id = rollback.id.0;
        self.rollback_ids.push(id);
        self.versions.push(rollback.version);
        self.states.push(rollback.state.name());
        self.channels.push(rollback.request.channel.0.clone());
        self.services.push(rollback.request.service.clone());
        self.docs.push(jsonb(rollback)?);
        self.requested_at.push(rollback.requested_at);

        for (offset, recorded) in history.iter().enumerate() {
            self.event_rollbacks.push(id);
            self.event_seqs.push(1 + offset as i64);
            self.event_ats.push(recorded.at);
            self.event_actors.push(recorded.actor.0.clone());
            self.events.push(jsonb(&recorded.event)?);
        }

        for effect in EffectRow::of_change(consequences)? {
            self.effect_rollbacks.push(id);
            self.effect_kinds.push(effect.kind);
            self.effect_payloads.push(raw_json(&effect.payload)?);
            self.effect_ats.push(rollback.requested_at);
            self.effect_lanes.push(effect.lane);
            self.effect_card_channels
                .push(effect.takes_channel_slot.then(|| rollback.request.channel.0.clone()));
        }

        for timer in &consequences.timers {
            self.timer_rollbacks.push(id);
            self.timer_actions.push(jsonb(&timer.action)?);
            self.timer_dues.push(timer.due_at);
        }
        Ok(())
    }

    pub(super) async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        if self.rollback_ids.is_empty() {
            return Ok(());
        }
        // A signed delivery is remembered beside its rollback, in the same statement.
        let rollbacks = tx
            .prepare_cached(
                "WITH r AS (
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                                          $7::timestamptz[])
                       AS r (id, version, state, channel_id, service, doc, at)),
                 filed AS (
                     INSERT INTO rollbacks (id, version, state, channel_id, service, doc, created_at, updated_at,
                                            requester, lock_key)
                     SELECT id, version, state, channel_id, service, doc, at, at, doc->'request'->>'requester',
                            doc->'request'->>'lock'
                     FROM r)
                 INSERT INTO deliveries (key, rollback_id, seen_at)
                 SELECT doc->'request'->>'delivery', id, at FROM r WHERE doc->'request'->>'delivery' IS NOT NULL",
            )
            .await?;
        let events = tx
            .prepare_cached(
                "INSERT INTO rollback_events (rollback_id, seq, at, actor, event)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::jsonb[])",
            )
            .await?;
        let timers = tx
            .prepare_cached(
                "INSERT INTO timers (rollback_id, action, due_at)
                     SELECT * FROM unnest($1::bigint[], $2::jsonb[], $3::timestamptz[])",
            )
            .await?;
        // Ordered, so each rollback's effects get ascending ids and go out in that order.
        // Each channel's cards take its next slots one gap apart, in one statement per batch
        // (replicas cannot take the same slot); a card and what follows it in its lane are
        // not due before the card's slot. Last before the commit: the channel's pace row
        // stays locked until then.
        let effects = tx
            .prepare_cached(
                "WITH effects AS (
                         SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::text[], $6::text[])
                           WITH ORDINALITY AS e (rollback_id, kind, payload, at, lane, card_channel, position)),
                     cards AS (
                         SELECT rollback_id, lane, position, card_channel,
                                row_number() OVER (PARTITION BY card_channel ORDER BY position) AS place
                         FROM effects WHERE card_channel IS NOT NULL),
                     wanted AS (
                         SELECT card_channel AS channel, count(*) AS cards, max(at) AS at
                         FROM effects WHERE card_channel IS NOT NULL GROUP BY card_channel),
                     reserved AS (
                         INSERT INTO channel_pace AS pace (channel, next_at, last_slot)
                         SELECT channel, at + cards * make_interval(secs => $7::float8),
                                greatest(at, at + (cards - 1) * make_interval(secs => $7::float8) - make_interval(secs => $8::float8))
                         FROM wanted
                         ON CONFLICT (channel) DO UPDATE
                           SET next_at = (SELECT greatest(pace.next_at, w.at) + w.cards * make_interval(secs => $7::float8)
                                          FROM wanted w WHERE w.channel = excluded.channel),
                               last_slot = (SELECT greatest(w.at,
                                                   greatest(pace.next_at, w.at) + (w.cards - 1) * make_interval(secs => $7::float8)
                                                     - make_interval(secs => $8::float8),
                                                   pace.last_slot,
                                                   CASE WHEN w.cards > 1 THEN greatest(pace.next_at, w.at) - make_interval(secs => $7::float8) END)
                                            FROM wanted w WHERE w.channel = excluded.channel)
                         RETURNING channel, next_at, last_slot),
                     slots AS (
                         -- As reserve_channel_slot: the k-th card one gap after the one before,
                         -- earlier by the burst's credit, never before the latest slot given. A
                         -- lone card's slot is the one just recorded; in a batch of several, the
                         -- first is held to one gap before the old credit's end, which no earlier
                         -- slot can be after.
                         SELECT c.rollback_id, c.lane, c.position,
                                CASE WHEN w.cards = 1 THEN r.last_slot
                                     ELSE greatest(w.at,
                                                   r.next_at - (w.cards - c.place + 1) * make_interval(secs => $7::float8)
                                                     - make_interval(secs => $8::float8),
                                                   r.next_at - (w.cards + 1) * make_interval(secs => $7::float8)) END AS slot
                         FROM cards c JOIN wanted w ON w.channel = c.card_channel
                           JOIN reserved r ON r.channel = c.card_channel)
                     INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane, slot_at)
                     SELECT e.rollback_id, e.kind, e.payload, e.at, greatest(e.at, s.slot), e.lane,
                            CASE WHEN s.position = e.position THEN s.slot END
                     FROM effects e
                       LEFT JOIN slots s ON s.rollback_id = e.rollback_id AND s.lane = e.lane AND s.position <= e.position
                     ORDER BY e.position",
            )
            .await?;
        let gap = CHANNEL_POST_GAP.as_secs_f64();
        let credit = crate::store::burst_credit(CHANNEL_POST_GAP, crate::store::CHANNEL_POST_BURST).as_secs_f64();
        // Sent together: PostgreSQL runs them one after the other, in this order, without a
        // round trip between them; the first failure aborts the transaction.
        futures_util::try_join!(
            async {
                tx.execute(
                    &rollbacks,
                    &[
                        &self.rollback_ids,
                        &self.versions,
                        &self.states,
                        &self.channels,
                        &self.services,
                        &self.docs,
                        &self.requested_at,
                    ],
                )
                .await
                .context("inserting a batch of rollbacks")
            },
            async {
                tx.execute(
                    &events,
                    &[
                        &self.event_rollbacks,
                        &self.event_seqs,
                        &self.event_ats,
                        &self.event_actors,
                        &self.events,
                    ],
                )
                .await
                .context("inserting a batch of request events")
            },
            async {
                tx.execute(&timers, &[&self.timer_rollbacks, &self.timer_actions, &self.timer_dues])
                    .await
                    .context("setting a batch of timers")
            },
            async {
                tx.execute(
                    &effects,
                    &[
                        &self.effect_rollbacks,
                        &self.effect_kinds,
                        &self.effect_payloads,
                        &self.effect_ats,
                        &self.effect_lanes,
                        &self.effect_card_channels,
                        &gap,
                        &credit,
                    ],
                )
                .await
                .context("queueing a batch of effects")
            },
        )?;
        Ok(())
    }
}

/// Requests a filer answers.
pub(super) async fn file(
    sender: &mpsc::Sender<Filing>,
    history: &[Recorded],
    consequences: &Consequences,
    open_limit: Option<usize>,
) -> Result<Filed<Rollback>> {
    let (answer, outcome) = oneshot::channel();
    let fate = Arc::new(AtomicU8::new(WAITING));
    let filing = Filing {
        history: history.to_vec(),
        consequences: consequences.clone(),
        open_limit,
        answer,
        fate: fate.clone(),
    };
    let filed = tokio::time::timeout(FILING_DEADLINE, async {
        sender
            .send(filing)
            .await
            .map_err(|_| anyhow!("the request filer has stopped"))?;
        outcome
            .await
            .map_err(|_| anyhow!("the request filer stopped before answering"))?
    })
    .await;
    match filed {
        Ok(outcome) => outcome,
        // Withdrawn before its commit began: nothing of it can be committed any more.
        Err(_)
            if fate
                .compare_exchange(WAITING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok() =>
        {
            Err(anyhow!(NotRecorded))
        }
        Err(_) => Err(anyhow!(CommitOutcomeUnknown).context(format!(
            "the database took the request but did not answer within {} ms",
            FILING_DEADLINE.as_millis()
        ))),
    }
}
