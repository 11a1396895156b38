use super::{
    CardRef, CardTable, Consequences, DueTimer, Effect, Export, FINISHED_STATES, Fence, Filed, Guard, OutboxItem,
    Written,
};
use crate::domain::proposal::{Proposal, ProposalId};
use crate::domain::{Recorded, Rollback, RollbackId};
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::value::RawValue;
use std::str::FromStr;
use tokio_postgres::types::Json;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Transaction};

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_init.sql", include_str!("../../migrations/0001_init.sql")),
    (2, "0002_timers.sql", include_str!("../../migrations/0002_timers.sql")),
    (
        3,
        "0003_execution_leases.sql",
        include_str!("../../migrations/0003_execution_leases.sql"),
    ),
    (
        4,
        "0004_channel_pacing.sql",
        include_str!("../../migrations/0004_channel_pacing.sql"),
    ),
    (
        5,
        "0005_status_page.sql",
        include_str!("../../migrations/0005_status_page.sql"),
    ),
    (
        6,
        "0006_proposals.sql",
        include_str!("../../migrations/0006_proposals.sql"),
    ),
    (
        7,
        "0007_open_by_requester.sql",
        include_str!("../../migrations/0007_open_by_requester.sql"),
    ),
    (
        8,
        "0008_reserved_slots.sql",
        include_str!("../../migrations/0008_reserved_slots.sql"),
    ),
    (
        9,
        "0009_claim_in_due_order.sql",
        include_str!("../../migrations/0009_claim_in_due_order.sql"),
    ),
    (
        10,
        "0010_requester_column.sql",
        include_str!("../../migrations/0010_requester_column.sql"),
    ),
    (
        11,
        "0011_lease_epochs.sql",
        include_str!("../../migrations/0011_lease_epochs.sql"),
    ),
    (
        12,
        "0012_one_open_per_lock.sql",
        include_str!("../../migrations/0012_one_open_per_lock.sql"),
    ),
    (
        13,
        "0013_slack_backoff.sql",
        include_str!("../../migrations/0013_slack_backoff.sql"),
    ),
];

mod filing;

/// The longest a new connection to PostgreSQL may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest anything waits for a pooled connection: a busy pool is an error in time, so a
/// lease renewal or a request is never stuck behind a flood of other work.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    filer: tokio::sync::mpsc::Sender<filing::Filing>,
}

impl PostgresStore {
    /// Connects to the database in `url`, creating the database itself when it does not exist
    /// yet, so that a fresh PostgreSQL needs no manual setup.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
        // A database that accepts connections and never answers (a failover, a partition) must
        // cost seconds, not the request: connecting, waiting for a pooled connection and each
        // operation (`store::OPERATION_DEADLINE`) have deadlines; keepalives find dead peers.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(10));
        if let Err(e) = config.connect(NoTls).await {
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) {
                create_database(&config).await?;
            } else {
                return Err(anyhow!(e).context(format!("cannot connect to PostgreSQL at {}", describe(&config))));
            }
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .context("building the connection pool")?;
        let filer = filing::start(pool.clone());
        Ok(PostgresStore { pool, filer })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.context("no database connection available")
    }

    /// Runs one statement prepared: parsed and planned once per pooled connection, then one
    /// round trip per use. Unprepared, every use is parsed, planned and takes two round trips.
    async fn prepared_query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    async fn prepared_query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let mut rows = self.prepared_query(sql, params).await?;
        anyhow::ensure!(rows.len() <= 1, "expected at most one row, got {}", rows.len());
        Ok(rows.pop())
    }

    async fn prepared_query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.prepared_query_opt(sql, params)
            .await?
            .context("expected one row, got none")
    }

    async fn prepared_execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    /// Where a rollback's or a proposal's card was posted.
    async fn card_in(&self, table: CardTable, id: i64) -> Result<Option<CardRef>> {
        let row = self
            .prepared_query_opt(
                &format!("SELECT card_channel, card_ts FROM {} WHERE id = $1", table.name()),
                &[&id],
            )
            .await?;
        Ok(row.and_then(|r| {
            Some(CardRef {
                channel: r.get::<_, Option<String>>(0)?,
                ts: r.get::<_, Option<String>>(1)?,
            })
        }))
    }

    async fn remember_card_in(&self, table: CardTable, id: i64, card: &CardRef) -> Result<()> {
        self.prepared_execute(
            &format!(
                "UPDATE {} SET card_channel = $2, card_ts = $3 WHERE id = $1",
                table.name()
            ),
            &[&id, &card.channel, &card.ts],
        )
        .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .context("database did not answer")?;
        Ok(())
    }

    /// Applies the embedded migrations that have not run yet. Several replicas may call this
    /// at once: an advisory lock lets one of them do it.
    pub async fn migrate(&self) -> Result<Vec<&'static str>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7403312)", &[]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut ran = vec![];
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {name} failed"))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
            ran.push(*name);
        }
        tx.commit().await?;
        Ok(ran)
    }

    /// Records a new rollback from its first events, with the effects they cause, and returns
    /// it with its number.
    pub async fn create_rollback(
        &self,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<Rollback>> {
        filing::file(&self.filer, history, consequences, open_limit).await
    }

    pub async fn open_proposal(&self, group_key: &str, service: &str) -> Result<Option<Proposal>> {
        let row = self
            .prepared_query_opt(
                &format!(
                    "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE group_key = $1 AND service = $2 AND NOT resolved"
                ),
                &[&group_key, &service],
            )
            .await?;
        row.map(|r| proposal_from(&r)).transpose()
    }

    pub async fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>> {
        let row = self
            .prepared_query_opt(
                &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1"),
                &[&id.0],
            )
            .await?;
        row.map(|r| proposal_from(&r)).transpose()
    }

    pub async fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(saved) = write_proposal(&tx, proposal, proposal.rollback, now).await? else {
            return Ok(None);
        };
        insert_effects(&tx, None, &[Effect::ProposalCard { proposal: saved.id }], now).await?;
        tx.commit().await.context("committing the proposal")?;
        Ok(Some(saved))
    }

    pub async fn start_from_proposal(
        &self,
        proposal: &Proposal,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<(Rollback, Proposal)>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Checked (and the proposal locked) first, so a lost race takes no RB number.
        if !proposal_unchanged(&tx, proposal).await? {
            return Ok(Filed::ProposalChanged);
        }
        if let Some(open) = requester_is_full(&tx, history, open_limit).await? {
            return Ok(Filed::TooManyOpen(open));
        }
        match already_admitted(&tx, history).await? {
            Some(Filed::Locked(open)) => return Ok(Filed::Locked(open)),
            Some(_) => anyhow::bail!("a request started from a proposal has no delivery to have seen"),
            None => {}
        }
        let rollback = insert_rollback(&tx, history, consequences).await?;
        let now = rollback.requested_at;
        // Dropping the transaction undoes the rollback too: a proposal starts one rollback.
        let Some(saved) = write_proposal(&tx, proposal, Some(rollback.id), now).await? else {
            return Ok(Filed::ProposalChanged);
        };
        insert_effects(&tx, None, &[Effect::ProposalCard { proposal: saved.id }], now).await?;
        tx.commit()
            .await
            .context("committing the rollback started from a proposal")?;
        Ok(Filed::Yes((rollback, saved)))
    }

    pub async fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Proposals, id.0).await
    }

    pub async fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Proposals, id.0, card).await
    }

    /// Stores `rollback` (already folded with `events`) if nobody changed it since
    /// `expected_version`, appending the events and effects in the same transaction.
    /// One statement, so one round trip and its own transaction: the versioned update, and
    /// only if it matched, the events, effects and timers of the change.
    pub async fn append(
        &self,
        rollback: &Rollback,
        expected_version: i64,
        events: &[Recorded],
        consequences: &Consequences,
    ) -> Result<Written> {
        let now = events.last().map(|e| e.at).unwrap_or_else(Utc::now);
        let seqs: Vec<i64> = (1..=events.len() as i64).map(|n| expected_version + n).collect();
        let ats: Vec<DateTime<Utc>> = events.iter().map(|e| e.at).collect();
        let actors: Vec<&str> = events.iter().map(|e| e.actor.0.as_str()).collect();
        let recorded = events.iter().map(|e| jsonb(&e.event)).collect::<Result<Vec<_>>>()?;
        let effects = EffectRows::of(consequences)?;
        let timer_actions = consequences
            .timers
            .iter()
            .map(|t| jsonb(&t.action))
            .collect::<Result<Vec<_>>>()?;
        let timer_dues: Vec<DateTime<Utc>> = consequences.timers.iter().map(|t| t.due_at).collect();
        let lease_owner = consequences.lease.as_ref().map(|l| l.owner.as_str());
        let lease_at = consequences.lease.as_ref().and_then(|l| l.at);
        let lease_ms = consequences.lease.as_ref().map(|l| millis(l.length));
        let guard = GuardParams::of(&consequences.guard);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH guarded AS (SELECT {guard_holds} AS holds FROM rollbacks WHERE id = $1),
                 changed AS (
                   UPDATE rollbacks SET version = $2, state = $3, doc = $4, updated_at = $5,
                     lease_owner = CASE WHEN $3 <> 'running' THEN NULL WHEN $7::text IS NOT NULL THEN $7 ELSE lease_owner END,
                     lease_until = CASE WHEN $3 <> 'running' THEN NULL
                                        WHEN $7::text IS NOT NULL THEN COALESCE($8::timestamptz, now()) + $20::bigint * interval '1 millisecond'
                                        ELSE lease_until END,
                     lease_epoch = CASE WHEN $7::text IS NOT NULL THEN $2 ELSE lease_epoch END
                   WHERE id = $1 AND version = $6 AND {guard_holds} RETURNING id),
                 new_events AS (
                   INSERT INTO rollback_events (rollback_id, seq, at, actor, event)
                   SELECT c.id, e.seq, e.at, e.actor, e.event FROM changed c,
                     unnest($9::bigint[], $10::timestamptz[], $11::text[], $12::jsonb[]) AS e (seq, at, actor, event)),
                 void_timers AS (
                   DELETE FROM timers t USING changed c WHERE $13 AND t.rollback_id = c.id AND t.fired_at IS NULL),
                 new_timers AS (
                   INSERT INTO timers (rollback_id, action, due_at)
                   SELECT c.id, t.action, t.due_at FROM changed c,
                     unnest($14::jsonb[], $15::timestamptz[]) AS t (action, due_at)),
                 new_effects AS (
                   INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                   SELECT c.id, e.kind, e.payload, $5, {behind}, e.lane FROM changed c
                   CROSS JOIN unnest($16::text[], $17::jsonb[], $18::text[], $19::bool[])
                       WITH ORDINALITY AS e (kind, payload, lane, collapses, position)
                   -- A lateral probe with a LIMIT is run per effect on the rollback's index. As a
                   -- NOT EXISTS beside an OR, the planner may instead hash every pending row of
                   -- every rollback when its statistics lag a burst (9 ms per change at 2,000).
                   LEFT JOIN LATERAL (
                     SELECT 1 AS found FROM outbox o WHERE o.rollback_id = c.id AND o.lane = e.lane
                       AND o.kind = e.kind AND o.done_at IS NULL AND o.claimed_until IS NULL LIMIT 1
                   ) pending ON e.collapses
                   WHERE pending.found IS NULL
                   ORDER BY e.position)
                 SELECT (SELECT count(*) FROM changed), (SELECT holds FROM guarded)",
                behind = behind_its_lane("c.id", "$5", "e.lane"),
                guard_holds = GUARD_HOLDS,
            ))
            .await?;
        let row = client
            .query_one(
                &statement,
                &[
                    &rollback.id.0,
                    &rollback.version,
                    &rollback.state.name(),
                    &jsonb(rollback)?,
                    &now,
                    &expected_version,
                    &lease_owner,
                    &lease_at,
                    &seqs,
                    &ats,
                    &actors,
                    &recorded,
                    &consequences.cancel_timers,
                    &timer_actions,
                    &timer_dues,
                    &effects.kinds,
                    &effects.payloads,
                    &effects.lanes,
                    &effects.collapses,
                    &lease_ms,
                    &guard.kind,
                    &guard.owner,
                    &guard.epoch,
                    &guard.at,
                    &guard.grace_ms,
                ],
            )
            .await
            .context("recording the rollback's change")?;
        let changed: i64 = row.get(0);
        let holds: Option<bool> = row.get(1);
        Ok(match (changed, holds) {
            (0, Some(false)) => Written::Guarded,
            (0, _) => Written::Conflict,
            _ => Written::Ok,
        })
    }

    pub async fn load(&self, id: RollbackId) -> Result<Option<Rollback>> {
        let row = self
            .prepared_query_opt("SELECT doc FROM rollbacks WHERE id = $1", &[&id.0])
            .await?;
        row.map(|r| from_jsonb(&r, 0, "rollback")).transpose()
    }

    pub async fn history(&self, id: RollbackId) -> Result<Vec<Recorded>> {
        let rows = self
            .prepared_query(
                "SELECT at, actor, event FROM rollback_events WHERE rollback_id = $1 ORDER BY seq",
                &[&id.0],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Recorded {
                    at: r.get(0),
                    actor: crate::domain::UserId(r.get(1)),
                    event: from_jsonb(r, 2, "event")?,
                })
            })
            .collect()
    }

    pub async fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT doc FROM rollbacks WHERE ($1::text IS NULL OR channel_id = $1) \
                 AND (NOT $2 OR (doc->'request'->>'drill')::boolean IS TRUE) ORDER BY id DESC LIMIT $3",
                &[&channel, &drills_only, &limit],
            )
            .await?;
        rows.iter().map(|r| from_jsonb(r, 0, "rollback")).collect()
    }

    /// Rollbacks that are approved and wait for the executor, oldest first.
    pub async fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>> {
        let rows = self
            .prepared_query(
                "SELECT id FROM rollbacks WHERE state = 'queued' ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows.iter().map(|r| RollbackId(r.get(0))).collect())
    }

    /// Renews the lease `fence` holds, by the database's clock unless `at` is given.
    pub async fn hold_lease(
        &self,
        id: RollbackId,
        fence: &Fence,
        length: std::time::Duration,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let renewed = self
            .prepared_execute(
                "UPDATE rollbacks SET lease_until = COALESCE($4::timestamptz, now()) + $5::bigint * interval '1 millisecond'
                 WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND lease_epoch = $3",
                &[&id.0, &fence.owner, &fence.epoch, &at, &millis(length)],
            )
            .await?;
        Ok(renewed == 1)
    }

    pub async fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()> {
        self.prepared_execute(
            "UPDATE rollbacks SET lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3",
            &[&id.0, &fence.owner, &fence.epoch],
        )
        .await?;
        Ok(())
    }

    /// Running rollbacks whose process stopped renewing its lease, by the database's clock
    /// unless `at` is given. A run that never took a lease counts from its last change, plus
    /// `grace`.
    pub async fn runs_with_lapsed_lease(
        &self,
        at: Option<DateTime<Utc>>,
        grace: std::time::Duration,
    ) -> Result<Vec<RollbackId>> {
        let rows = self
            .prepared_query(
                "SELECT id FROM rollbacks WHERE state = 'running'
                   AND (lease_until < COALESCE($1::timestamptz, now())
                        OR (lease_until IS NULL
                            AND updated_at < COALESCE($1::timestamptz, now()) - $2::bigint * interval '1 millisecond'))
                 ORDER BY id",
                &[&at, &millis(grace)],
            )
            .await?;
        Ok(rows.iter().map(|r| RollbackId(r.get(0))).collect())
    }

    pub async fn card(&self, id: RollbackId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Rollbacks, id.0).await
    }

    pub async fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Rollbacks, id.0, card).await
    }

    /// The status page incident opened for a rollback, if any.
    pub async fn page_incident(&self, id: RollbackId) -> Result<Option<String>> {
        let row = self
            .prepared_query_opt("SELECT page_incident_id FROM rollbacks WHERE id = $1", &[&id.0])
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    pub async fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()> {
        self.prepared_execute(
            "UPDATE rollbacks SET page_incident_id = $2 WHERE id = $1",
            &[&id.0, &incident],
        )
        .await?;
        Ok(())
    }

    /// Queues effects about a rollback that come from outside a decision (a delivery problem).
    pub async fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_effects(&tx, Some(id), effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues effects that belong to no rollback (private answers).
    pub async fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_effects(&tx, None, effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` deliverable effects for `lease`. A rollback's effects are handed
    /// out one at a time, in order, so its thread reads in the order things happened.
    pub async fn claim_outbox(
        &self,
        at: Option<DateTime<Utc>>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        let rows = self
            .prepared_query(
                // The function (migration 0009) walks the due-time index in order whatever
                // the table's statistics say. Claims count by the database's clock unless a
                // time is given, so a replica whose clock is ahead takes over no claim early.
                "SELECT id, rollback_id, payload, attempts, slot_reserved
                 FROM claim_outbox(COALESCE($1::timestamptz, now()),
                                   COALESCE($1::timestamptz, now()) + $2::bigint * interval '1 millisecond', $3)",
                &[&at, &millis(lease), &limit],
            )
            .await?;
        let mut items: Vec<OutboxItem> = rows
            .iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.get(0),
                    rollback_id: r.get::<_, Option<i64>>(1).map(RollbackId),
                    effect: from_jsonb(r, 2, "effect")?,
                    attempts: r.get(3),
                    slot_reserved: r.get(4),
                })
            })
            .collect::<Result<_>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Claims timers that are due, for `lease`; a claimed timer that is not marked fired before
    /// its lease ends is handed out again (its process may have died).
    pub async fn claim_due_timers(
        &self,
        at: Option<DateTime<Utc>>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueTimer>> {
        let rows = self
            .prepared_query(
                "UPDATE timers SET claimed_until = COALESCE($1::timestamptz, now()) + $2::bigint * interval '1 millisecond'
                 WHERE id IN (
                     SELECT id FROM timers
                     WHERE fired_at IS NULL AND due_at <= COALESCE($1::timestamptz, now())
                       AND (claimed_until IS NULL OR claimed_until < COALESCE($1::timestamptz, now()))
                     ORDER BY due_at, id LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, rollback_id, action, due_at",
                &[&at, &millis(lease), &limit],
            )
            .await?;
        let mut due: Vec<(DateTime<Utc>, DueTimer)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.get(3),
                    DueTimer {
                        id: r.get(0),
                        rollback_id: RollbackId(r.get(1)),
                        action: from_jsonb(r, 2, "timer")?,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        due.sort_by_key(|(at, t)| (*at, t.id));
        Ok(due.into_iter().map(|(_, t)| t).collect())
    }

    pub async fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "UPDATE timers SET fired_at = $2, claimed_until = NULL WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        Ok(())
    }

    /// Timers not yet fired, for `status` and tests: (rollback, action, due).
    pub async fn pending_timers(&self, id: RollbackId) -> Result<Vec<(super::TimerAction, DateTime<Utc>)>> {
        let rows = self
            .prepared_query(
                "SELECT action, due_at FROM timers WHERE rollback_id = $1 AND fired_at IS NULL ORDER BY due_at, id",
                &[&id.0],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((from_jsonb(r, 0, "timer")?, r.get(1))))
            .collect()
    }

    /// Reserves the channel's next posting slot and says when it is (`now` if the channel is
    /// free). One statement, so replicas cannot reserve the same slot.
    pub async fn reserve_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
    ) -> Result<DateTime<Utc>> {
        let gap_seconds = gap.as_secs_f64();
        let row = self.prepared_query_one(
                "INSERT INTO channel_pace (channel, next_at) VALUES ($1, $2::timestamptz + make_interval(secs => $3::float8))
                 ON CONFLICT (channel) DO UPDATE
                   SET next_at = greatest(channel_pace.next_at, $2::timestamptz) + make_interval(secs => $3::float8)
                 RETURNING next_at - make_interval(secs => $3::float8)",
                &[&channel, &now, &gap_seconds],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "WITH head AS (
                     UPDATE outbox SET available_at = $2, slot_at = $2, claimed_until = NULL, attempts = attempts - 1
                     WHERE id = $1 RETURNING rollback_id, lane)
                 UPDATE outbox SET available_at = $2 FROM head
                 WHERE outbox.rollback_id = head.rollback_id AND outbox.lane = head.lane
                   AND outbox.id > $1 AND outbox.done_at IS NULL AND outbox.available_at < $2",
            &[&id, &at],
        )
        .await?;
        Ok(())
    }

    pub async fn outbox_hand_back(&self, id: i64) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET claimed_until = NULL, attempts = attempts - 1 WHERE id = $1",
            &[&id],
        )
        .await?;
        Ok(())
    }

    /// When the next effect that waits only for its channel's slot becomes due.
    pub async fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .prepared_query_one(
                "SELECT min(slot_at) FROM outbox WHERE done_at IS NULL AND last_error IS NULL AND slot_at > $1",
                &[&now],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Figures for `/metrics`.
    pub async fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures> {
        let client = self.client().await?;
        let outbox = client
            .query_one(
                "SELECT count(*) FILTER (WHERE done_at IS NULL),
                        COALESCE(EXTRACT(EPOCH FROM $1 - min(created_at) FILTER (WHERE done_at IS NULL))::float8, 0),
                        count(*) FILTER (WHERE outcome = 'undeliverable')
                 FROM outbox",
                &[&now],
            )
            .await?;
        let rollbacks = client
            .query(
                "SELECT state, doc->'request'->>'severity', count(*) FROM rollbacks GROUP BY 1, 2 ORDER BY 1, 2",
                &[],
            )
            .await?;
        Ok(crate::metrics::StoreFigures {
            outbox_pending: outbox.get(0),
            outbox_oldest_pending_age_seconds: outbox.get::<_, f64>(1).max(0.0),
            outbox_undeliverable: outbox.get(2),
            rollbacks: rollbacks.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
        })
    }

    pub async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.finish_outbox(id, now, "delivered", None).await
    }

    /// Gives up on an effect: kept, with why, so that nothing disappears silently.
    pub async fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()> {
        self.finish_outbox(id, now, "undeliverable", Some(error)).await
    }

    async fn finish_outbox(&self, id: i64, now: DateTime<Utc>, outcome: &str, error: Option<&str>) -> Result<()> {
        self.prepared_execute(
                "UPDATE outbox SET done_at = $2, outcome = $3, last_error = COALESCE($4, last_error), claimed_until = NULL WHERE id = $1",
                &[&id, &now, &outcome, &error],
            )
            .await?;
        Ok(())
    }

    /// Takes in everything another store held (`rollbot migrate`), in one transaction, keeping
    /// every id: RB-7 stays RB-7. Refused when this database already holds rollbacks.
    pub async fn import(&self, export: &Export) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let existing: i64 = tx.query_one("SELECT count(*) FROM rollbacks", &[]).await?.get(0);
        if existing > 0 {
            anyhow::bail!(
                "the PostgreSQL database already holds {existing} rollback(s); migrate into an empty database so that no RB number is used twice"
            );
        }
        let value = |text: &str| -> Result<serde_json::Value> {
            serde_json::from_str(text).context("a stored document is not JSON")
        };
        for r in &export.rollbacks {
            tx.execute(
                "INSERT INTO rollbacks (id, version, state, channel_id, service, doc, card_channel, card_ts, created_at,
                                        updated_at, lease_owner, lease_until, page_incident_id, requester, lock_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $6::jsonb->'request'->>'requester',
                         $6::jsonb->'request'->>'lock')",
                &[&r.id, &r.version, &r.state, &r.channel_id, &r.service, &value(&r.doc)?, &r.card_channel, &r.card_ts,
                  &r.created_at, &r.updated_at, &r.lease_owner, &r.lease_until, &r.page_incident_id],
            )
            .await
            .with_context(|| format!("copying RB-{}", r.id))?;
        }
        for e in &export.events {
            tx.execute(
                "INSERT INTO rollback_events (rollback_id, seq, at, actor, event) VALUES ($1, $2, $3, $4, $5)",
                &[&e.rollback_id, &e.seq, &e.at, &e.actor, &value(&e.event)?],
            )
            .await
            .with_context(|| format!("copying event {} of RB-{}", e.seq, e.rollback_id))?;
        }
        for o in &export.outbox {
            tx.execute(
                "INSERT INTO outbox (id, rollback_id, kind, payload, created_at, available_at, attempts, claimed_until,
                                     done_at, outcome, last_error, lane)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &o.id,
                    &o.rollback_id,
                    &o.kind,
                    &value(&o.payload)?,
                    &o.created_at,
                    &o.available_at,
                    &o.attempts,
                    &o.claimed_until,
                    &o.done_at,
                    &o.outcome,
                    &o.last_error,
                    &o.lane,
                ],
            )
            .await
            .with_context(|| format!("copying outbox message {}", o.id))?;
        }
        for timer in &export.timers {
            tx.execute(
                "INSERT INTO timers (id, rollback_id, action, due_at, claimed_until, fired_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&timer.id, &timer.rollback_id, &value(&timer.action)?, &timer.due_at, &timer.claimed_until, &timer.fired_at],
            )
            .await
            .with_context(|| format!("copying timer {}", timer.id))?;
        }
        for p in &export.proposals {
            tx.execute(
                "INSERT INTO proposals (id, version, group_key, service, resolved, doc, rollback_id, card_channel, card_ts,
                                        created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[&p.id, &p.version, &p.group_key, &p.service, &p.resolved, &value(&p.doc)?, &p.rollback_id,
                  &p.card_channel, &p.card_ts, &p.created_at, &p.updated_at],
            )
            .await
            .with_context(|| format!("copying proposal P-{}", p.id))?;
        }
        // New rows continue after the copied ones.
        tx.batch_execute(
            "SELECT setval('rollback_numbers', GREATEST((SELECT max(id) FROM rollbacks), 1), (SELECT count(*) > 0 FROM rollbacks));
             SELECT setval('proposal_numbers', GREATEST((SELECT max(id) FROM proposals), 1), (SELECT count(*) > 0 FROM proposals));
             SELECT setval(pg_get_serial_sequence('outbox', 'id'), GREATEST((SELECT max(id) FROM outbox), 1), (SELECT count(*) > 0 FROM outbox));
             SELECT setval(pg_get_serial_sequence('timers', 'id'), GREATEST((SELECT max(id) FROM timers), 1), (SELECT count(*) > 0 FROM timers));",
        )
        .await
        .context("moving the id sequences past the copied rows")?;
        tx.commit().await.context("committing the migration")?;
        Ok(())
    }

    /// Puts a claimed effect back until `at` without counting the attempt: Slack asked to wait.
    pub async fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET available_at = $2, claimed_until = NULL, slot_at = NULL, last_error = $3,
                               attempts = attempts - 1
             WHERE id = $1",
            &[&id, &at, &error],
        )
        .await?;
        Ok(())
    }

    pub async fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64> {
        self.prepared_execute(
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox WHERE done_at < $1 AND outcome = 'delivered' ORDER BY id LIMIT $2)",
            &[&delivered_before, &limit],
        )
        .await
    }

    pub async fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64> {
        self.prepared_execute("DELETE FROM deliveries WHERE seen_at < $1", &[&seen_before])
            .await
    }

    pub async fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .prepared_query_opt("SELECT created_at FROM outbox WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "INSERT INTO slack_backoff (method, until) VALUES ($1, $2)
             ON CONFLICT (method) DO UPDATE SET until = GREATEST(slack_backoff.until, EXCLUDED.until)",
            &[&method, &until],
        )
        .await?;
        Ok(())
    }

    pub async fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = self
            .prepared_query("SELECT method, until FROM slack_backoff WHERE until > $1", &[&now])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET available_at = $2, claimed_until = NULL, slot_at = NULL, last_error = $3 WHERE id = $1",
            &[&id, &at, &error],
        )
        .await?;
        Ok(())
    }
}

/// The requester's open rollbacks, if they already have `open_limit` of them. Requests by the
/// same person are serialised by a transaction lock on their name, so two at once cannot both
/// see room for one more.
async fn requester_is_full(
    tx: &Transaction<'_>,
    history: &[Recorded],
    open_limit: Option<usize>,
) -> Result<Option<Vec<RollbackId>>> {
    let Some(limit) = open_limit else {
        return Ok(None);
    };
    let requester = &history.first().context("a rollback must start with a request")?.actor.0;
    tx.execute("SELECT pg_advisory_xact_lock(7403313, hashtext($1))", &[requester])
        .await?;
    let open: Vec<RollbackId> = tx
        .query(
            &format!("SELECT id FROM rollbacks WHERE requester = $1 AND state NOT IN ({FINISHED_STATES}) ORDER BY id"),
            &[requester],
        )
        .await?
        .iter()
        .map(|r| RollbackId(r.get(0)))
        .collect();
    Ok((open.len() >= limit).then_some(open))
}

/// What files nothing new: the same delivery filed before (answered as that rollback), or
/// an open rollback holding the request's lock. Each key is locked for the transaction first,
/// so filings of one key on several replicas take turns.
async fn already_admitted(tx: &Transaction<'_>, history: &[Recorded]) -> Result<Option<Filed<Rollback>>> {
    let request = super::request_of(history)?;
    if let Some(delivery) = &request.delivery {
        tx.execute("SELECT pg_advisory_xact_lock(7403314, hashtext($1))", &[delivery])
            .await?;
        let seen = tx
            .query_opt(
                "SELECT r.doc FROM deliveries d JOIN rollbacks r ON r.id = d.rollback_id WHERE d.key = $1",
                &[delivery],
            )
            .await?;
        if let Some(row) = seen {
            return Ok(Some(Filed::Seen(from_jsonb(&row, 0, "rollback")?)));
        }
    }
    if let Some(lock) = &request.lock {
        tx.execute("SELECT pg_advisory_xact_lock(7403315, hashtext($1))", &[lock])
            .await?;
        let holder = tx
            .query_opt(
                &format!("SELECT id FROM rollbacks WHERE lock_key = $1 AND state NOT IN ({FINISHED_STATES})"),
                &[lock],
            )
            .await?;
        if let Some(row) = holder {
            return Ok(Some(Filed::Locked(RollbackId(row.get(0)))));
        }
    }
    Ok(None)
}

async fn insert_rollback(
    tx: &deadpool_postgres::Transaction<'_>,
    history: &[Recorded],
    consequences: &Consequences,
) -> Result<Rollback> {
    let number: i64 = tx.query_one("SELECT nextval('rollback_numbers')", &[]).await?.get(0);
    let id = RollbackId(number);
    let rollback =
        Rollback::from_history(id, history).ok_or_else(|| anyhow!("a rollback must start with a request"))?;
    // The same rows as a batch of requests, so one rule files both (its card's slot too).
    let mut rows = filing::Rows::default();
    rows.add(&rollback, history, consequences)?;
    rows.insert(tx).await?;
    Ok(rollback)
}

const PROPOSAL_COLUMNS: &str = "id, version, rollback_id, doc";

fn proposal_from(row: &tokio_postgres::Row) -> Result<Proposal> {
    let mut proposal: Proposal = from_jsonb(row, 3, "proposal")?;
    proposal.id = ProposalId(row.get(0));
    proposal.version = row.get(1);
    proposal.rollback = row.get::<_, Option<i64>>(2).map(RollbackId);
    Ok(proposal)
}

/// Whether `proposal` may be written: a new one opens no second proposal for its group, a
/// changed one is still at the version it was loaded at (and is now locked until commit).
async fn proposal_unchanged(tx: &Transaction<'_>, proposal: &Proposal) -> Result<bool> {
    Ok(if proposal.id.0 == 0 {
        !tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM proposals WHERE group_key = $1 AND service = $2 AND NOT resolved)",
            &[&proposal.group_key, &proposal.service],
        )
        .await?
        .get::<_, bool>(0)
    } else {
        tx.query_opt(
            "SELECT version FROM proposals WHERE id = $1 FOR UPDATE",
            &[&proposal.id.0],
        )
        .await?
        .map(|r| r.get::<_, i64>(0))
            == Some(proposal.version)
    })
}

/// Inserts a new proposal (id 0) or updates one still at `proposal.version`; `None` when
/// another writer got there first. The transaction is unusable after a `None` from an insert.
async fn write_proposal(
    tx: &Transaction<'_>,
    proposal: &Proposal,
    rollback: Option<RollbackId>,
    now: DateTime<Utc>,
) -> Result<Option<Proposal>> {
    let doc = jsonb(proposal)?;
    let rollback_id = rollback.map(|r| r.0);
    let resolved = proposal.resolved_at.is_some();
    if !proposal_unchanged(tx, proposal).await? {
        return Ok(None);
    }
    let id = if proposal.id.0 == 0 {
        // Two notifications of a new group at once both get here; the unique index stops one.
        tx.execute("SAVEPOINT open_proposal", &[]).await?;
        let inserted = tx
            .query_one(
                "INSERT INTO proposals (id, version, group_key, service, resolved, doc, rollback_id, created_at, updated_at)
                 VALUES (nextval('proposal_numbers'), 1, $1, $2, $3, $4, $5, $6, $6) RETURNING id",
                &[&proposal.group_key, &proposal.service, &resolved, &doc, &rollback_id, &now],
            )
            .await;
        match inserted {
            Ok(row) => row.get::<_, i64>(0),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                tx.execute("ROLLBACK TO SAVEPOINT open_proposal", &[]).await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        let updated = tx
            .execute(
                "UPDATE proposals SET version = version + 1, resolved = $3, doc = $4, rollback_id = $5, updated_at = $6
                 WHERE id = $1 AND version = $2",
                &[&proposal.id.0, &proposal.version, &resolved, &doc, &rollback_id, &now],
            )
            .await?;
        if updated == 0 {
            return Ok(None);
        }
        proposal.id.0
    };
    Ok(Some(Proposal {
        id: ProposalId(id),
        version: if proposal.id.0 == 0 { 1 } else { proposal.version + 1 },
        rollback,
        ..proposal.clone()
    }))
}

/// When a new effect becomes due: now, or when the message ahead of it in its lane has its
/// channel slot, since it cannot go before that one anyway. Waiting rows are then not due, so
/// claims skip them instead of scanning a backlog. The arguments are SQL expressions for the
/// rollback, the time of the change and the effect's lane.
fn behind_its_lane(rollback: &str, now: &str, lane: &str) -> String {
    format!(
        "greatest({now}::timestamptz, (SELECT max(w.slot_at) FROM outbox w
           WHERE w.rollback_id = {rollback} AND w.lane = {lane} AND w.done_at IS NULL))"
    )
}

/// A jsonb parameter serialized straight to JSON text, without building a `Value` tree first.
/// Whether a change's guard holds on the rollback's row as it is: `$21` … `$25` are
/// [`GuardParams`]. Used twice in one statement, to write and to tell why nothing was written.
const GUARD_HOLDS: &str = "COALESCE(CASE $21::text
        WHEN 'holder' THEN lease_owner = $22::text AND lease_epoch = $23::bigint
        WHEN 'lapsed' THEN state = 'running' AND (lease_until < COALESCE($24::timestamptz, now())
            OR (lease_until IS NULL
                AND updated_at < COALESCE($24::timestamptz, now()) - $25::bigint * interval '1 millisecond'))
        ELSE true END, false)";

/// A [`Guard`] as statement parameters.
struct GuardParams<'a> {
    kind: &'static str,
    owner: Option<&'a str>,
    epoch: Option<i64>,
    at: Option<DateTime<Utc>>,
    grace_ms: Option<i64>,
}

impl<'a> GuardParams<'a> {
    fn of(guard: &'a Guard) -> GuardParams<'a> {
        let none = GuardParams {
            kind: "version",
            owner: None,
            epoch: None,
            at: None,
            grace_ms: None,
        };
        match guard {
            Guard::Version => none,
            Guard::Holder(Fence { owner, epoch }) => GuardParams {
                kind: "holder",
                owner: Some(owner),
                epoch: Some(*epoch),
                ..none
            },
            Guard::Lapsed { grace, at } => GuardParams {
                kind: "lapsed",
                at: *at,
                grace_ms: Some(millis(*grace)),
                ..none
            },
        }
    }
}

fn millis(length: std::time::Duration) -> i64 {
    i64::try_from(length.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn jsonb<T: serde::Serialize>(value: &T) -> Result<Json<Box<RawValue>>> {
    Ok(Json(serde_json::value::to_raw_value(value)?))
}

/// A jsonb column read straight into its type.
fn from_jsonb<T: serde::de::DeserializeOwned>(row: &tokio_postgres::Row, column: usize, what: &str) -> Result<T> {
    Ok(row
        .try_get::<_, Json<T>>(column)
        .with_context(|| format!("reading a stored {what}"))?
        .0)
}

/// A change's effects as columns for one multi-row insert.
struct EffectRows {
    kinds: Vec<&'static str>,
    payloads: Vec<Json<Box<RawValue>>>,
    lanes: Vec<String>,
    collapses: Vec<bool>,
}

impl EffectRows {
    fn of(consequences: &Consequences) -> Result<EffectRows> {
        let mut rows = EffectRows {
            kinds: vec![],
            payloads: vec![],
            lanes: vec![],
            collapses: vec![],
        };
        for effect in consequences.effects_to_queue() {
            rows.kinds.push(effect.kind());
            rows.payloads.push(jsonb(effect)?);
            rows.lanes.push(effect.lane());
            rows.collapses.push(effect.collapses());
        }
        Ok(rows)
    }
}

async fn insert_effects(
    tx: &Transaction<'_>,
    id: Option<RollbackId>,
    effects: &[Effect],
    now: DateTime<Utc>,
) -> Result<()> {
    let rollback_id = id.map(|i| i.0);
    let behind = behind_its_lane("$1", "$4", "$5");
    for effect in effects {
        let payload = jsonb(effect)?;
        if effect.collapses() {
            // A pending, unclaimed one will render the newest state anyway.
            let same_owner = if rollback_id.is_some() {
                "rollback_id = $1"
            } else {
                "rollback_id IS NULL AND $1::bigint IS NULL"
            };
            tx.execute(
                &format!(
                    "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                     SELECT $1, $2, $3, $4, {behind}, $5
                     WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE {same_owner} AND lane = $5
                                       AND kind = $2 AND done_at IS NULL AND claimed_until IS NULL)"
                ),
                &[&rollback_id, &effect.kind(), &payload, &now, &effect.lane()],
            )
            .await?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                     VALUES ($1, $2, $3, $4, {behind}, $5)"
                ),
                &[&rollback_id, &effect.kind(), &payload, &now, &effect.lane()],
            )
            .await?;
        }
    }
    Ok(())
}

async fn create_database(config: &tokio_postgres::Config) -> Result<()> {
    let name = config
        .get_dbname()
        .ok_or_else(|| anyhow!("DATABASE_URL names no database"))?
        .to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", describe(config)))?;
    tokio::spawn(connection);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
        Ok(()) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(anyhow!(e).context(format!("creating database {name}"))),
    }
}

/// Host, port and database, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}
