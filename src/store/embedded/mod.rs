//! The embedded store: the same operations as PostgreSQL's, in one SQLite file, for a single
//! rollbot process. Every write is a transaction committed to the write-ahead log with a sync
//! (`synchronous = FULL`) before the caller hears "done", so an acknowledged request survives a
//! crash. One process owns the file: a second one is refused (an exclusive lock on the database
//! file itself, whatever path or symlink names it, released by the kernel when the owner dies,
//! even by kill -9).
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

mod export;
mod outbox;
mod proposals;
mod rollbacks;
mod timers;
use super::ops::{Outbox, Proposals, Rollbacks, Schema, Timers};
use super::rows::{self, EffectRow, LeaseColumns, LeaseWrite};
use async_trait::async_trait;
use outbox::*;
use rollbacks::*;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init.sql",
        include_str!("../../../migrations/embedded/0001_init.sql"),
    ),
    (
        2,
        "0002_proposals.sql",
        include_str!("../../../migrations/embedded/0002_proposals.sql"),
    ),
    (
        3,
        "0003_open_by_requester.sql",
        include_str!("../../../migrations/embedded/0003_open_by_requester.sql"),
    ),
    (
        4,
        "0004_reserved_slots.sql",
        include_str!("../../../migrations/embedded/0004_reserved_slots.sql"),
    ),
    (
        5,
        "0005_lease_epochs.sql",
        include_str!("../../../migrations/embedded/0005_lease_epochs.sql"),
    ),
    (
        6,
        "0006_one_open_per_lock.sql",
        include_str!("../../../migrations/embedded/0006_one_open_per_lock.sql"),
    ),
    (
        7,
        "0007_slack_backoff.sql",
        include_str!("../../../migrations/embedded/0007_slack_backoff.sql"),
    ),
    (
        8,
        "0008_channel_last_slot.sql",
        include_str!("../../../migrations/embedded/0008_channel_last_slot.sql"),
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
        // The lock is taken on the database file itself (the kernel locks the file, whatever
        // path or symlink names it), never on a file beside it that could be removed.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let path = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        let owner = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
            |(_, errno)| match errno {
                nix::errno::Errno::EWOULDBLOCK => anyhow!(
                    "{} is in use by another rollbot process. The embedded store serves one process; \
                     to run several replicas, use PostgreSQL (set DATABASE_URL=postgres://…, and move \
                     this file's history there with `rollbot migrate --from {} --to postgres://…`).",
                    path.display(),
                    path.display()
                ),
                other => anyhow!(other).context(format!("locking {}", path.display())),
            },
        )?;
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
}

#[async_trait]
impl Schema for EmbeddedStore {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<()> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn migrate(&self) -> Result<Vec<&'static str>> {
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

    async fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures> {
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
