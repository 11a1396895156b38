//! The embedded store: the same operations as PostgreSQL's, in one SQLite file, for a single
//! rollbot process. Every write is a transaction committed to the write-ahead log with a sync
//! (`synchronous = FULL`) before the caller hears "done", so an acknowledged request survives a
//! crash. One process owns the file: a second one is refused (an exclusive lock on a file beside
//! it, released by the kernel when the owner dies, even by kill -9).
use super::{
    CHANNEL_POST_GAP, CardRef, CardTable, Consequences, DueTimer, Effect, FINISHED_STATES, Fence, Filed, Guard,
    OutboxItem, Written,
};
use super::{EventRow, Export, OutboxRow, ProposalRow, RollbackRow, TimerRow};
use crate::domain::proposal::{Proposal, ProposalId};
use crate::domain::{Recorded, Rollback, RollbackId, UserId};
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init.sql",
        include_str!("../../migrations/embedded/0001_init.sql"),
    ),
    (
        2,
        "0002_proposals.sql",
        include_str!("../../migrations/embedded/0002_proposals.sql"),
    ),
    (
        3,
        "0003_open_by_requester.sql",
        include_str!("../../migrations/embedded/0003_open_by_requester.sql"),
    ),
    (
        4,
        "0004_reserved_slots.sql",
        include_str!("../../migrations/embedded/0004_reserved_slots.sql"),
    ),
    (
        5,
        "0005_lease_epochs.sql",
        include_str!("../../migrations/embedded/0005_lease_epochs.sql"),
    ),
    (
        6,
        "0006_one_open_per_lock.sql",
        include_str!("../../migrations/embedded/0006_one_open_per_lock.sql"),
    ),
    (
        7,
        "0007_slack_backoff.sql",
        include_str!("../../migrations/embedded/0007_slack_backoff.sql"),
    ),
];

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "rollbot.db";

#[derive(Clone)]
pub struct EmbeddedStore {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Held for as long as any clone of the store lives; dropping the last one frees the file.
    _owner: Arc<nix::fcntl::Flock<File>>,
}

/// Times as fixed-width UTC text, so that comparing the text compares the times.
fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn optional_ts(row: &rusqlite::Row, column: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(column)?.map(|t| parse_ts(&t)).transpose()
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).with_context(|| format!("reading a stored {what}"))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store's file at `path`, taking sole ownership of it.
    pub fn open(path: &Path) -> Result<EmbeddedStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
        let path = path.to_owned();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        let owner =
            nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                match errno {
                    nix::errno::Errno::EWOULDBLOCK => anyhow!(
                        "{} is in use by another rollbot process. The embedded store serves one process; \
                     to run several replicas, use PostgreSQL (set DATABASE_URL=postgres://…, and move \
                     this file's history there with `rollbot migrate --from {} --to postgres://…`).",
                        path.display(),
                        path.display()
                    ),
                    other => anyhow!(other).context(format!("locking {}", lock_path.display())),
                }
            })?;
        let connection = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .with_context(|| format!("preparing {}", path.display()))?;
        Ok(EmbeddedStore {
            connection: Arc::new(Mutex::new(connection)),
            path,
            _owner: Arc::new(owner),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection off the async threads (SQLite blocks on disk syncs).
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection)
        })
        .await
        .context("the embedded store's worker stopped")?
    }

    /// Runs `work` in one transaction, committed (and synced) before returning.
    async fn transaction<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with(move |connection| {
            let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let answer = work(&tx)?;
            tx.commit().context("committing to the embedded store")?;
            Ok(answer)
        })
        .await
    }

    /// Where a rollback's or a proposal's card was posted.
    async fn card_in(&self, table: CardTable, id: i64) -> Result<Option<CardRef>> {
        let row: Option<(Option<String>, Option<String>)> = self
            .with(move |c| {
                Ok(c.query_row(
                    &format!("SELECT card_channel, card_ts FROM {} WHERE id = ?1", table.name()),
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
            })
            .await?;
        Ok(row.and_then(|(channel, ts)| {
            Some(CardRef {
                channel: channel?,
                ts: ts?,
            })
        }))
    }

    async fn remember_card_in(&self, table: CardTable, id: i64, card: &CardRef) -> Result<()> {
        let card = card.clone();
        self.with(move |c| {
            c.execute(
                &format!(
                    "UPDATE {} SET card_channel = ?2, card_ts = ?3 WHERE id = ?1",
                    table.name()
                ),
                params![id, card.channel, card.ts],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn ping(&self) -> Result<()> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    pub async fn migrate(&self) -> Result<Vec<&'static str>> {
        self.transaction(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )?;
            let mut ran = vec![];
            for (version, name, sql) in MIGRATIONS {
                let applied: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                    [version],
                    |r| r.get(0),
                )?;
                if applied {
                    continue;
                }
                tx.execute_batch(sql).with_context(|| format!("migration {name} failed"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    params![version, name, ts(Utc::now())],
                )?;
                ran.push(*name);
            }
            Ok(ran)
        })
        .await
    }

    pub async fn create_rollback(
        &self,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<Rollback>> {
        let history = history.to_vec();
        let consequences = consequences.clone();
        self.transaction(move |tx| {
            if let Some(answer) = already_admitted(tx, &history)? {
                return Ok(answer);
            }
            if let Some(open) = requester_is_full(tx, &history, open_limit)? {
                return Ok(Filed::TooManyOpen(open));
            }
            Ok(Filed::Yes(insert_rollback(tx, &history, &consequences)?))
        })
        .await
    }

    pub async fn open_proposal(&self, group_key: &str, service: &str) -> Result<Option<Proposal>> {
        let (group_key, service) = (group_key.to_owned(), service.to_owned());
        let row = self
            .with(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE group_key = ?1 AND service = ?2 AND resolved = 0"),
                    params![group_key, service],
                    proposal_row,
                )
                .optional()?)
            })
            .await?;
        row.map(proposal_from).transpose()
    }

    pub async fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>> {
        let row = self
            .with(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = ?1"),
                    [id.0],
                    proposal_row,
                )
                .optional()?)
            })
            .await?;
        row.map(proposal_from).transpose()
    }

    pub async fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>> {
        let proposal = proposal.clone();
        self.transaction(move |tx| {
            if !proposal_unchanged(tx, &proposal)? {
                return Ok(None);
            }
            let saved = write_proposal(tx, &proposal, proposal.rollback, now)?;
            insert_effects(tx, None, &[Effect::ProposalCard { proposal: saved.id }], now)?;
            Ok(Some(saved))
        })
        .await
    }

    pub async fn start_from_proposal(
        &self,
        proposal: &Proposal,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<(Rollback, Proposal)>> {
        let proposal = proposal.clone();
        let history = history.to_vec();
        let consequences = consequences.clone();
        self.transaction(move |tx| {
            // Checked before anything is written: this transaction holds the write lock.
            if !proposal_unchanged(tx, &proposal)? {
                return Ok(Filed::ProposalChanged);
            }
            if let Some(open) = requester_is_full(tx, &history, open_limit)? {
                return Ok(Filed::TooManyOpen(open));
            }
            match already_admitted(tx, &history)? {
                Some(Filed::Locked(open)) => return Ok(Filed::Locked(open)),
                Some(_) => bail!("a request started from a proposal has no delivery to have seen"),
                None => {}
            }
            let rollback = insert_rollback(tx, &history, &consequences)?;
            let now = rollback.requested_at;
            let saved = write_proposal(tx, &proposal, Some(rollback.id), now)?;
            insert_effects(tx, None, &[Effect::ProposalCard { proposal: saved.id }], now)?;
            Ok(Filed::Yes((rollback, saved)))
        })
        .await
    }

    pub async fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Proposals, id.0).await
    }

    pub async fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Proposals, id.0, card).await
    }

    pub async fn append(
        &self,
        rollback: &Rollback,
        expected_version: i64,
        events: &[Recorded],
        consequences: &Consequences,
    ) -> Result<Written> {
        let rollback = rollback.clone();
        let events = events.to_vec();
        let consequences = consequences.clone();
        self.transaction(move |tx| {
            let now = events.last().map(|e| e.at).unwrap_or_else(Utc::now);
            if !guard_holds(tx, rollback.id, &consequences.guard)? {
                return Ok(Written::Guarded);
            }
            let lease_until = consequences
                .lease
                .as_ref()
                .map(|l| {
                    Ok::<_, anyhow::Error>(ts(l.at.unwrap_or_else(Utc::now) + chrono::Duration::from_std(l.length)?))
                })
                .transpose()?;
            let updated = tx.execute(
                "UPDATE rollbacks SET version = ?2, state = ?3, doc = ?4, updated_at = ?5,
                   lease_owner = CASE WHEN ?3 <> 'running' THEN NULL WHEN ?7 IS NOT NULL THEN ?7 ELSE lease_owner END,
                   lease_until = CASE WHEN ?3 <> 'running' THEN NULL WHEN ?7 IS NOT NULL THEN ?8 ELSE lease_until END,
                   lease_epoch = CASE WHEN ?7 IS NOT NULL THEN ?2 ELSE lease_epoch END
                 WHERE id = ?1 AND version = ?6",
                params![
                    rollback.id.0,
                    rollback.version,
                    rollback.state.name(),
                    serde_json::to_string(&rollback)?,
                    ts(now),
                    expected_version,
                    consequences.lease.as_ref().map(|l| l.owner.clone()),
                    lease_until,
                ],
            )?;
            if updated == 0 {
                return Ok(Written::Conflict);
            }
            insert_events(tx, rollback.id, expected_version, &events)?;
            apply_consequences(tx, rollback.id, &consequences, now)?;
            Ok(Written::Ok)
        })
        .await
    }

    pub async fn load(&self, id: RollbackId) -> Result<Option<Rollback>> {
        let doc: Option<String> = self
            .with(move |c| {
                Ok(
                    c.query_row("SELECT doc FROM rollbacks WHERE id = ?1", [id.0], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?;
        doc.map(|d| json(&d, "rollback")).transpose()
    }

    pub async fn history(&self, id: RollbackId) -> Result<Vec<Recorded>> {
        let rows: Vec<(DateTime<Utc>, String, String)> = self
            .with(move |c| {
                let mut query = c.prepare_cached(
                    "SELECT at, actor, event FROM rollback_events WHERE rollback_id = ?1 ORDER BY seq",
                )?;
                let rows = query
                    .query_map([id.0], |r| {
                        Ok((parse_ts(&r.get::<_, String>(0)?)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(at, actor, event)| {
                Ok(Recorded {
                    at,
                    actor: UserId(actor),
                    event: json(&event, "event")?,
                })
            })
            .collect()
    }

    pub async fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>> {
        let channel = channel.map(str::to_owned);
        let docs: Vec<String> = self
            .with(move |c| {
                let mut query = c.prepare_cached(
                    "SELECT doc FROM rollbacks WHERE (?1 IS NULL OR channel_id = ?1)
                     AND (NOT ?2 OR json_extract(doc, '$.request.drill') = 1) ORDER BY id DESC LIMIT ?3",
                )?;
                let docs = query
                    .query_map(params![channel, drills_only, limit], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(docs)
            })
            .await?;
        docs.iter().map(|d| json(d, "rollback")).collect()
    }

    pub async fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>> {
        self.ids(
            "SELECT id FROM rollbacks WHERE state = 'queued' ORDER BY id LIMIT ?1",
            vec![limit.into()],
        )
        .await
    }

    async fn ids(&self, sql: &'static str, values: Vec<rusqlite::types::Value>) -> Result<Vec<RollbackId>> {
        self.with(move |c| {
            let mut query = c.prepare_cached(sql)?;
            let ids = query
                .query_map(rusqlite::params_from_iter(values), |r| r.get(0).map(RollbackId))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(ids)
        })
        .await
    }

    /// One statement that changes rows; returns how many.
    async fn execute(&self, sql: &'static str, values: Vec<rusqlite::types::Value>) -> Result<usize> {
        self.with(move |c| Ok(c.prepare_cached(sql)?.execute(rusqlite::params_from_iter(values))?))
            .await
    }

    /// Renews the lease `fence` holds; one process owns the file, so its clock is the store's.
    pub async fn hold_lease(
        &self,
        id: RollbackId,
        fence: &Fence,
        length: std::time::Duration,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let until = at.unwrap_or_else(Utc::now) + chrono::Duration::from_std(length)?;
        let renewed = self
            .execute(
                "UPDATE rollbacks SET lease_until = ?4
                 WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 AND lease_epoch = ?3",
                vec![
                    id.0.into(),
                    fence.owner.clone().into(),
                    fence.epoch.into(),
                    ts(until).into(),
                ],
            )
            .await?;
        Ok(renewed == 1)
    }

    pub async fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()> {
        self.execute(
            "UPDATE rollbacks SET lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
            vec![id.0.into(), fence.owner.clone().into(), fence.epoch.into()],
        )
        .await?;
        Ok(())
    }

    pub async fn runs_with_lapsed_lease(
        &self,
        at: Option<DateTime<Utc>>,
        grace: std::time::Duration,
    ) -> Result<Vec<RollbackId>> {
        let now = at.unwrap_or_else(Utc::now);
        let since = now - chrono::Duration::from_std(grace)?;
        self.ids(
            "SELECT id FROM rollbacks WHERE state = 'running'
               AND (lease_until < ?1 OR (lease_until IS NULL AND updated_at < ?2)) ORDER BY id",
            vec![ts(now).into(), ts(since).into()],
        )
        .await
    }

    pub async fn card(&self, id: RollbackId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Rollbacks, id.0).await
    }

    pub async fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Rollbacks, id.0, card).await
    }

    pub async fn page_incident(&self, id: RollbackId) -> Result<Option<String>> {
        self.with(move |c| {
            Ok(
                c.query_row("SELECT page_incident_id FROM rollbacks WHERE id = ?1", [id.0], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .optional()?
                .flatten(),
            )
        })
        .await
    }

    pub async fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()> {
        self.execute(
            "UPDATE rollbacks SET page_incident_id = ?2 WHERE id = ?1",
            vec![id.0.into(), incident.to_owned().into()],
        )
        .await?;
        Ok(())
    }

    pub async fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let effects = effects.to_vec();
        self.transaction(move |tx| insert_effects(tx, Some(id), &effects, now))
            .await
    }

    pub async fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let effects = effects.to_vec();
        self.transaction(move |tx| insert_effects(tx, None, &effects, now))
            .await
    }

    pub async fn claim_outbox(
        &self,
        at: Option<DateTime<Utc>>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        let now = at.unwrap_or_else(Utc::now);
        let until = now + chrono::Duration::from_std(lease)?;
        let rows: Vec<(i64, Option<i64>, String, i32, bool)> = self
            .transaction(move |tx| {
                let mut query = tx.prepare_cached(
                    "UPDATE outbox SET claimed_until = ?2, attempts = attempts + 1
                     WHERE id IN (
                         SELECT o.id FROM outbox o
                         WHERE o.done_at IS NULL AND o.available_at <= ?1
                           AND (o.claimed_until IS NULL OR o.claimed_until < ?1)
                           AND NOT EXISTS (SELECT 1 FROM outbox p
                                           WHERE p.rollback_id = o.rollback_id AND p.lane = o.lane
                                             AND p.id < o.id AND p.done_at IS NULL)
                           -- Apart, not OR-ed: each probe then walks its own index.
                           AND NOT (o.rollback_id IS NULL AND o.lane <> 'slack'
                                    AND EXISTS (SELECT 1 FROM outbox p
                                                WHERE p.rollback_id IS NULL AND p.lane = o.lane
                                                  AND p.id < o.id AND p.done_at IS NULL))
                         ORDER BY o.available_at, o.id LIMIT ?3)
                     RETURNING id, rollback_id, payload, attempts, slot_at IS NOT NULL",
                )?;
                let rows = query
                    .query_map(params![ts(now), ts(until), limit], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?;
        let mut items: Vec<OutboxItem> = rows
            .into_iter()
            .map(|(id, rollback_id, payload, attempts, slot_reserved)| {
                Ok(OutboxItem {
                    id,
                    rollback_id: rollback_id.map(RollbackId),
                    effect: json(&payload, "effect")?,
                    attempts,
                    slot_reserved,
                })
            })
            .collect::<Result<_>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    pub async fn claim_due_timers(
        &self,
        at: Option<DateTime<Utc>>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueTimer>> {
        let now = at.unwrap_or_else(Utc::now);
        let until = now + chrono::Duration::from_std(lease)?;
        let rows: Vec<(i64, i64, String, String)> = self
            .transaction(move |tx| {
                let mut query = tx.prepare_cached(
                    "UPDATE timers SET claimed_until = ?2
                     WHERE id IN (
                         SELECT id FROM timers
                         WHERE fired_at IS NULL AND due_at <= ?1 AND (claimed_until IS NULL OR claimed_until < ?1)
                         ORDER BY due_at, id LIMIT ?3)
                     RETURNING id, rollback_id, action, due_at",
                )?;
                let rows = query
                    .query_map(params![ts(now), ts(until), limit], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?;
        let mut due: Vec<(String, DueTimer)> = rows
            .into_iter()
            .map(|(id, rollback_id, action, due_at)| {
                Ok((
                    due_at,
                    DueTimer {
                        id,
                        rollback_id: RollbackId(rollback_id),
                        action: json(&action, "timer")?,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        due.sort_by(|(a, x), (b, y)| (a, x.id).cmp(&(b, y.id)));
        Ok(due.into_iter().map(|(_, t)| t).collect())
    }

    pub async fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.execute(
            "UPDATE timers SET fired_at = ?2, claimed_until = NULL WHERE id = ?1",
            vec![id.into(), ts(now).into()],
        )
        .await?;
        Ok(())
    }

    pub async fn pending_timers(&self, id: RollbackId) -> Result<Vec<(super::TimerAction, DateTime<Utc>)>> {
        let rows: Vec<(String, DateTime<Utc>)> = self
            .with(move |c| {
                let mut query = c.prepare_cached(
                    "SELECT action, due_at FROM timers WHERE rollback_id = ?1 AND fired_at IS NULL ORDER BY due_at, id",
                )?;
                let rows = query
                    .query_map([id.0], |r| Ok((r.get(0)?, parse_ts(&r.get::<_, String>(1)?)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(action, due)| Ok((json(&action, "timer")?, due)))
            .collect()
    }

    pub async fn reserve_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
    ) -> Result<DateTime<Utc>> {
        let channel = channel.to_owned();
        self.transaction(move |tx| take_channel_slot(tx, &channel, now, gap))
            .await
    }

    pub async fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.transaction(move |tx| {
            tx.execute(
                "UPDATE outbox SET available_at = ?2, slot_at = ?2, claimed_until = NULL, attempts = attempts - 1 WHERE id = ?1",
                params![id, ts(at)],
            )?;
            // What follows it in its lane cannot go before it: not due before its slot either.
            tx.execute(
                "UPDATE outbox SET available_at = ?2
                 WHERE done_at IS NULL AND available_at < ?2 AND id > ?1
                   AND (rollback_id, lane) = (SELECT rollback_id, lane FROM outbox WHERE id = ?1)",
                params![id, ts(at)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn outbox_hand_back(&self, id: i64) -> Result<()> {
        self.execute(
            "UPDATE outbox SET claimed_until = NULL, attempts = attempts - 1 WHERE id = ?1",
            vec![id.into()],
        )
        .await?;
        Ok(())
    }

    pub async fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self
            .with(move |c| {
                Ok(c.query_row(
                    "SELECT min(slot_at) FROM outbox WHERE done_at IS NULL AND last_error IS NULL AND slot_at > ?1",
                    [ts(now)],
                    |r| r.get(0),
                )?)
            })
            .await?;
        Ok(next.map(|n| parse_ts(&n)).transpose()?)
    }

    pub async fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures> {
        self.with(move |c| {
            let (pending, oldest, undeliverable): (i64, Option<String>, i64) = c.query_row(
                "SELECT count(*) FILTER (WHERE done_at IS NULL), min(created_at) FILTER (WHERE done_at IS NULL),
                        count(*) FILTER (WHERE outcome = 'undeliverable')
                 FROM outbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let oldest_age = match oldest {
                Some(at) => (now - parse_ts(&at)?).num_milliseconds().max(0) as f64 / 1000.0,
                None => 0.0,
            };
            let mut query = c.prepare_cached(
                "SELECT state, json_extract(doc, '$.request.severity'), count(*) FROM rollbacks GROUP BY 1, 2 ORDER BY 1, 2",
            )?;
            let rollbacks = query
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(crate::metrics::StoreFigures {
                outbox_pending: pending,
                outbox_oldest_pending_age_seconds: oldest_age,
                outbox_undeliverable: undeliverable,
                rollbacks,
            })
        })
        .await
    }

    pub async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.finish_outbox(id, now, "delivered", None).await
    }

    pub async fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()> {
        self.finish_outbox(id, now, "undeliverable", Some(error)).await
    }

    async fn finish_outbox(&self, id: i64, now: DateTime<Utc>, outcome: &str, error: Option<&str>) -> Result<()> {
        self.execute(
            "UPDATE outbox SET done_at = ?2, outcome = ?3, last_error = COALESCE(?4, last_error), claimed_until = NULL WHERE id = ?1",
            vec![
                id.into(),
                ts(now).into(),
                outcome.to_owned().into(),
                error.map(str::to_owned).into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Puts a claimed effect back until `at` without counting the attempt: Slack asked to wait.
    pub async fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET available_at = ?2, claimed_until = NULL, slot_at = NULL, last_error = ?3,
                               attempts = attempts - 1
             WHERE id = ?1",
            vec![id.into(), ts(at).into(), error.to_owned().into()],
        )
        .await?;
        Ok(())
    }

    pub async fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64> {
        let pruned = self
            .execute(
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox WHERE done_at < ?1 AND outcome = 'delivered' ORDER BY id LIMIT ?2)",
                vec![ts(delivered_before).into(), limit.into()],
            )
            .await?;
        Ok(pruned as u64)
    }

    pub async fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64> {
        let forgotten = self
            .execute(
                "DELETE FROM deliveries WHERE seen_at < ?1",
                vec![ts(seen_before).into()],
            )
            .await?;
        Ok(forgotten as u64)
    }

    pub async fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .with(move |c| {
                Ok(
                    c.query_row("SELECT created_at FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?;
        at.map(|t| Ok(parse_ts(&t)?)).transpose()
    }

    pub async fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()> {
        self.execute(
            "INSERT INTO slack_backoff (method, until) VALUES (?1, ?2)
             ON CONFLICT (method) DO UPDATE SET until = MAX(slack_backoff.until, excluded.until)",
            vec![method.to_owned().into(), ts(until).into()],
        )
        .await?;
        Ok(())
    }

    pub async fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>> {
        let now = ts(now);
        let rows: Vec<(String, String)> = self
            .with(move |c| {
                let mut query = c.prepare_cached("SELECT method, until FROM slack_backoff WHERE until > ?1")?;
                let rows = query
                    .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(method, until)| Ok((method, parse_ts(&until)?)))
            .collect()
    }

    pub async fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET available_at = ?2, claimed_until = NULL, slot_at = NULL, last_error = ?3 WHERE id = ?1",
            vec![id.into(), ts(at).into(), error.to_owned().into()],
        )
        .await?;
        Ok(())
    }

    /// Everything in the file, row for row, for `rollbot migrate`.
    pub async fn export(&self) -> Result<Export> {
        self.with(|c| {
            let tx = c.transaction()?;
            let rollbacks = tx
                .prepare(
                    "SELECT id, version, state, channel_id, service, doc, card_channel, card_ts, created_at,
                            updated_at, lease_owner, lease_until, page_incident_id FROM rollbacks ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(RollbackRow {
                        id: r.get(0)?,
                        version: r.get(1)?,
                        state: r.get(2)?,
                        channel_id: r.get(3)?,
                        service: r.get(4)?,
                        doc: r.get::<_, String>(5)?,
                        card_channel: r.get(6)?,
                        card_ts: r.get(7)?,
                        created_at: parse_ts(&r.get::<_, String>(8)?)?,
                        updated_at: parse_ts(&r.get::<_, String>(9)?)?,
                        lease_owner: r.get(10)?,
                        lease_until: optional_ts(r, 11)?,
                        page_incident_id: r.get(12)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let events = tx
                .prepare("SELECT rollback_id, seq, at, actor, event FROM rollback_events ORDER BY rollback_id, seq")?
                .query_map([], |r| {
                    Ok(EventRow {
                        rollback_id: r.get(0)?,
                        seq: r.get(1)?,
                        at: parse_ts(&r.get::<_, String>(2)?)?,
                        actor: r.get(3)?,
                        event: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let outbox = tx
                .prepare(
                    "SELECT id, rollback_id, kind, payload, created_at, available_at, attempts, claimed_until,
                            done_at, outcome, last_error, lane FROM outbox ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        rollback_id: r.get(1)?,
                        kind: r.get(2)?,
                        payload: r.get(3)?,
                        created_at: parse_ts(&r.get::<_, String>(4)?)?,
                        available_at: parse_ts(&r.get::<_, String>(5)?)?,
                        attempts: r.get(6)?,
                        claimed_until: optional_ts(r, 7)?,
                        done_at: optional_ts(r, 8)?,
                        outcome: r.get(9)?,
                        last_error: r.get(10)?,
                        lane: r.get(11)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let timers = tx
                .prepare("SELECT id, rollback_id, action, due_at, claimed_until, fired_at FROM timers ORDER BY id")?
                .query_map([], |r| {
                    Ok(TimerRow {
                        id: r.get(0)?,
                        rollback_id: r.get(1)?,
                        action: r.get(2)?,
                        due_at: parse_ts(&r.get::<_, String>(3)?)?,
                        claimed_until: optional_ts(r, 4)?,
                        fired_at: optional_ts(r, 5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let proposals = tx
                .prepare(
                    "SELECT id, version, group_key, service, resolved, doc, rollback_id, card_channel, card_ts,
                            created_at, updated_at FROM proposals ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(ProposalRow {
                        id: r.get(0)?,
                        version: r.get(1)?,
                        group_key: r.get(2)?,
                        service: r.get(3)?,
                        resolved: r.get(4)?,
                        doc: r.get(5)?,
                        rollback_id: r.get(6)?,
                        card_channel: r.get(7)?,
                        card_ts: r.get(8)?,
                        created_at: parse_ts(&r.get::<_, String>(9)?)?,
                        updated_at: parse_ts(&r.get::<_, String>(10)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Export {
                rollbacks,
                events,
                outbox,
                timers,
                proposals,
            })
        })
        .await
    }
}

/// The requester's open rollbacks, if they already have `open_limit` of them (the transaction
/// holds SQLite's write lock, so nobody files in between).
fn requester_is_full(
    tx: &Transaction,
    history: &[Recorded],
    open_limit: Option<usize>,
) -> Result<Option<Vec<RollbackId>>> {
    let Some(limit) = open_limit else {
        return Ok(None);
    };
    let requester = &history.first().context("a rollback must start with a request")?.actor.0;
    let mut query = tx.prepare_cached(&format!(
        "SELECT id FROM rollbacks WHERE json_extract(doc, '$.request.requester') = ?1 AND state NOT IN ({FINISHED_STATES}) ORDER BY id"
    ))?;
    let open = query
        .query_map([requester], |r| r.get(0).map(RollbackId))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((open.len() >= limit).then_some(open))
}

/// What files nothing new: the same delivery filed before (answered as that rollback), or an
/// open rollback holding the request's lock. This transaction holds the file's write lock.
fn already_admitted(tx: &Transaction, history: &[Recorded]) -> Result<Option<Filed<Rollback>>> {
    let request = super::request_of(history)?;
    if let Some(delivery) = &request.delivery {
        let seen: Option<String> = tx
            .query_row(
                "SELECT r.doc FROM deliveries d JOIN rollbacks r ON r.id = d.rollback_id WHERE d.key = ?1",
                [delivery],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(doc) = seen {
            return Ok(Some(Filed::Seen(json(&doc, "rollback")?)));
        }
    }
    if let Some(lock) = &request.lock {
        let holder: Option<i64> = tx
            .query_row(
                &format!("SELECT id FROM rollbacks WHERE lock_key = ?1 AND state NOT IN ({FINISHED_STATES})"),
                [lock],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = holder {
            return Ok(Some(Filed::Locked(RollbackId(id))));
        }
    }
    Ok(None)
}

fn insert_rollback(tx: &Transaction, history: &[Recorded], consequences: &Consequences) -> Result<Rollback> {
    let number: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM rollbacks", [], |r| r.get(0))?;
    let id = RollbackId(number);
    let rollback =
        Rollback::from_history(id, history).ok_or_else(|| anyhow!("a rollback must start with a request"))?;
    tx.execute(
        "INSERT INTO rollbacks (id, version, state, channel_id, service, doc, created_at, updated_at, lock_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            number,
            rollback.version,
            rollback.state.name(),
            rollback.request.channel.0,
            rollback.request.service,
            serde_json::to_string(&rollback)?,
            ts(rollback.requested_at),
            rollback.request.lock,
        ],
    )?;
    if let Some(delivery) = &rollback.request.delivery {
        tx.execute(
            "INSERT INTO deliveries (key, rollback_id, seen_at) VALUES (?1, ?2, ?3)",
            params![delivery, number, ts(rollback.requested_at)],
        )?;
    }
    insert_events(tx, id, 0, history)?;
    let now = rollback.requested_at;
    apply_consequences(tx, id, consequences, now)?;
    if consequences.effects.contains(&Effect::PostCard) {
        // The card holds its channel's next slot from now on; nothing in its lane goes before it.
        let slot = take_channel_slot(tx, &rollback.request.channel.0, now, CHANNEL_POST_GAP)?;
        tx.execute(
            "UPDATE outbox SET available_at = max(available_at, ?2),
                               slot_at = CASE WHEN kind = 'post_card' THEN ?2 END
             WHERE rollback_id = ?1 AND lane = ?3",
            params![id.0, ts(slot), Effect::PostCard.lane()],
        )?;
    }
    Ok(rollback)
}

/// Reserves `channel`'s next posting slot, `gap` after the one before it and not before `now`.
fn take_channel_slot(
    tx: &Transaction,
    channel: &str,
    now: DateTime<Utc>,
    gap: std::time::Duration,
) -> Result<DateTime<Utc>> {
    let next: Option<String> = tx
        .query_row("SELECT next_at FROM channel_pace WHERE channel = ?1", [channel], |r| {
            r.get(0)
        })
        .optional()?;
    let slot = match next {
        Some(next) => parse_ts(&next)?.max(now),
        None => now,
    };
    tx.execute(
        "INSERT INTO channel_pace (channel, next_at) VALUES (?1, ?2)
         ON CONFLICT (channel) DO UPDATE SET next_at = ?2",
        params![channel, ts(slot + chrono::Duration::from_std(gap)?)],
    )?;
    Ok(slot)
}

const PROPOSAL_COLUMNS: &str = "id, version, rollback_id, doc";

fn proposal_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, i64, Option<i64>, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn proposal_from((id, version, rollback, doc): (i64, i64, Option<i64>, String)) -> Result<Proposal> {
    let mut proposal: Proposal = json(&doc, "proposal")?;
    proposal.id = ProposalId(id);
    proposal.version = version;
    proposal.rollback = rollback.map(RollbackId);
    Ok(proposal)
}

/// Whether `proposal` may be written: a new one opens no second proposal for its group, a
/// changed one is still at the version it was loaded at.
fn proposal_unchanged(tx: &Transaction, proposal: &Proposal) -> Result<bool> {
    Ok(if proposal.id.0 == 0 {
        !tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM proposals WHERE group_key = ?1 AND service = ?2 AND resolved = 0)",
            params![proposal.group_key, proposal.service],
            |r| r.get::<_, bool>(0),
        )?
    } else {
        tx.query_row("SELECT version FROM proposals WHERE id = ?1", [proposal.id.0], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
            == Some(proposal.version)
    })
}

/// Writes a proposal `proposal_unchanged` allowed, and returns it as stored.
fn write_proposal(
    tx: &Transaction,
    proposal: &Proposal,
    rollback: Option<RollbackId>,
    now: DateTime<Utc>,
) -> Result<Proposal> {
    let doc = serde_json::to_string(proposal)?;
    let rollback_id = rollback.map(|r| r.0);
    let resolved = proposal.resolved_at.is_some();
    let (id, version) = if proposal.id.0 == 0 {
        let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM proposals", [], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO proposals (id, version, group_key, service, resolved, doc, rollback_id, created_at, updated_at)
             VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![id, proposal.group_key, proposal.service, resolved, doc, rollback_id, ts(now)],
        )?;
        (id, 1)
    } else {
        tx.execute(
            "UPDATE proposals SET version = version + 1, resolved = ?2, doc = ?3, rollback_id = ?4, updated_at = ?5
             WHERE id = ?1",
            params![proposal.id.0, resolved, doc, rollback_id, ts(now)],
        )?;
        (proposal.id.0, proposal.version + 1)
    };
    Ok(Proposal {
        id: ProposalId(id),
        version,
        rollback,
        ..proposal.clone()
    })
}

fn apply_consequences(tx: &Transaction, id: RollbackId, consequences: &Consequences, now: DateTime<Utc>) -> Result<()> {
    insert_effects(tx, Some(id), &consequences.effects, now)?;
    if consequences.cancel_timers {
        tx.execute("DELETE FROM timers WHERE rollback_id = ?1 AND fired_at IS NULL", [id.0])?;
    }
    for timer in &consequences.timers {
        tx.execute(
            "INSERT INTO timers (rollback_id, action, due_at) VALUES (?1, ?2, ?3)",
            params![id.0, serde_json::to_string(&timer.action)?, ts(timer.due_at)],
        )?;
    }
    Ok(())
}

/// Whether a change's guard holds on the rollback's row as it is, inside the change's
/// transaction (the same rule as PostgreSQL's `GUARD_HOLDS`).
fn guard_holds(tx: &Transaction, id: RollbackId, guard: &Guard) -> Result<bool> {
    let row = tx
        .query_row(
            "SELECT state, lease_owner, lease_epoch, lease_until, updated_at FROM rollbacks WHERE id = ?1",
            [id.0],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    optional_ts(r, 3)?,
                    parse_ts(&r.get::<_, String>(4)?)?,
                ))
            },
        )
        .optional()?;
    // A missing rollback is the version check's to report.
    let Some((state, owner, epoch, until, updated_at)) = row else {
        return Ok(true);
    };
    Ok(match guard {
        Guard::Version => true,
        Guard::Holder(fence) => owner.as_deref() == Some(fence.owner.as_str()) && epoch == Some(fence.epoch),
        Guard::Lapsed { grace, at } => {
            let now = at.unwrap_or_else(Utc::now);
            state == "running"
                && match until {
                    Some(until) => until < now,
                    None => updated_at < now - chrono::Duration::from_std(*grace)?,
                }
        }
    })
}

fn insert_events(tx: &Transaction, id: RollbackId, first_seq_after: i64, events: &[Recorded]) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO rollback_events (rollback_id, seq, at, actor, event) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (offset, recorded) in events.iter().enumerate() {
        insert.execute(params![
            id.0,
            first_seq_after + 1 + offset as i64,
            ts(recorded.at),
            recorded.actor.0,
            serde_json::to_string(&recorded.event)?,
        ])?;
    }
    Ok(())
}

/// When a new effect becomes due: now, or when the message ahead of it in its lane has its
/// channel slot (PostgreSQL's store explains why). ?1 rollback, ?4 now, ?5 lane.
const BEHIND_ITS_LANE: &str = "max(?4, coalesce((SELECT max(w.slot_at) FROM outbox w
     WHERE w.rollback_id IS ?1 AND w.lane = ?5 AND w.done_at IS NULL), ?4))";

fn insert_effects(tx: &Transaction, id: Option<RollbackId>, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
    let rollback_id = id.map(|i| i.0);
    for effect in effects {
        let payload = serde_json::to_string(effect)?;
        if effect.collapses() {
            // A pending, unclaimed one will render the newest state anyway.
            tx.execute(
                &format!(
                    "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                 SELECT ?1, ?2, ?3, ?4, {BEHIND_ITS_LANE}, ?5
                 WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE rollback_id IS ?1 AND lane = ?5 AND kind = ?2
                                   AND done_at IS NULL AND claimed_until IS NULL)"
                ),
                params![rollback_id, effect.kind(), payload, ts(now), effect.lane()],
            )?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                     VALUES (?1, ?2, ?3, ?4, {BEHIND_ITS_LANE}, ?5)"
                ),
                params![rollback_id, effect.kind(), payload, ts(now), effect.lane()],
            )?;
        }
    }
    Ok(())
}

/// Refuses an embedded file that does not exist, rather than creating an empty one to read.
pub fn existing_file(path: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{} does not exist, so no rollbot has kept its state there. Give the file rollbot keeps its \
             state in ({FILE_NAME} in its --data-dir / ROLLBOT_DATA_DIR, by default the current directory), \
             or set DATABASE_URL if it keeps its state in PostgreSQL.",
            path.display()
        );
    }
    Ok(path.to_owned())
}
