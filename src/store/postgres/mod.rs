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
use tokio_postgres::types::Json;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

mod export;
mod filing;
mod outbox;
mod proposals;
mod rollbacks;
mod timers;
use super::ops::{Outbox, Proposals, Rollbacks, Schema, Timers};
use super::rows::{EffectRow, LeaseWrite, millis};
use async_trait::async_trait;
use outbox::*;
use rollbacks::*;

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_init.sql", include_str!("../../../migrations/0001_init.sql")),
    (
        2,
        "0002_timers.sql",
        include_str!("../../../migrations/0002_timers.sql"),
    ),
    (
        3,
        "0003_execution_leases.sql",
        include_str!("../../../migrations/0003_execution_leases.sql"),
    ),
    (
        4,
        "0004_channel_pacing.sql",
        include_str!("../../../migrations/0004_channel_pacing.sql"),
    ),
    (
        5,
        "0005_status_page.sql",
        include_str!("../../../migrations/0005_status_page.sql"),
    ),
    (
        6,
        "0006_proposals.sql",
        include_str!("../../../migrations/0006_proposals.sql"),
    ),
    (
        7,
        "0007_open_by_requester.sql",
        include_str!("../../../migrations/0007_open_by_requester.sql"),
    ),
    (
        8,
        "0008_reserved_slots.sql",
        include_str!("../../../migrations/0008_reserved_slots.sql"),
    ),
    (
        9,
        "0009_claim_in_due_order.sql",
        include_str!("../../../migrations/0009_claim_in_due_order.sql"),
    ),
    (
        10,
        "0010_requester_column.sql",
        include_str!("../../../migrations/0010_requester_column.sql"),
    ),
    (
        11,
        "0011_lease_epochs.sql",
        include_str!("../../../migrations/0011_lease_epochs.sql"),
    ),
    (
        12,
        "0012_one_open_per_lock.sql",
        include_str!("../../../migrations/0012_one_open_per_lock.sql"),
    ),
    (
        13,
        "0013_slack_backoff.sql",
        include_str!("../../../migrations/0013_slack_backoff.sql"),
    ),
    (
        14,
        "0014_channel_last_slot.sql",
        include_str!("../../../migrations/0014_channel_last_slot.sql"),
    ),
];

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
        let (config, tls) = connection_settings(url)?;
        if let Err(e) = config.connect(tls.clone()).await {
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) {
                create_database(&config, tls.clone()).await?;
            } else {
                return Err(anyhow!(e).context(format!("cannot connect to PostgreSQL at {}", describe(&config))));
            }
        }
        let manager = Manager::from_config(
            config,
            tls,
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

    /// Connects once, as the store would, and asks `SELECT 1`; creates nothing (`rollbot doctor`).
    pub async fn probe(url: &str) -> Result<()> {
        let (config, tls) = connection_settings(url)?;
        let (client, connection) = config
            .connect(tls)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", describe(&config)))?;
        let driver = tokio::spawn(connection);
        let answer = client.simple_query("SELECT 1").await.context("database did not answer");
        driver.abort();
        answer.map(|_| ())
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
}

#[async_trait]
impl Schema for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .context("database did not answer")?;
        Ok(())
    }

    /// Applies the embedded migrations that have not run yet. Several replicas may call this
    /// at once: an advisory lock lets one of them do it.
    async fn migrate(&self) -> Result<Vec<&'static str>> {
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

    /// Figures for `/metrics`.
    async fn figures(&self, now: DateTime<Utc>) -> Result<crate::metrics::StoreFigures> {
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
}

/// A jsonb parameter serialized straight to JSON text, without building a `Value` tree first.
pub(super) fn jsonb<T: serde::Serialize>(value: &T) -> Result<Json<Box<RawValue>>> {
    Ok(Json(serde_json::value::to_raw_value(value)?))
}

/// JSON text already serialized (by `rows`), as a jsonb parameter.
pub(super) fn raw_json(text: &str) -> Result<Json<Box<RawValue>>> {
    Ok(Json(RawValue::from_string(text.to_owned())?))
}

/// A jsonb column read straight into its type.
pub(super) fn from_jsonb<T: serde::de::DeserializeOwned>(
    row: &tokio_postgres::Row,
    column: usize,
    what: &str,
) -> Result<T> {
    Ok(row
        .try_get::<_, Json<T>>(column)
        .with_context(|| format!("reading a stored {what}"))?
        .0)
}

/// The URL's settings with TLS as libpq reads it (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
/// A database that accepts connections and never answers (a failover, a partition) must cost
/// seconds, not the request: connecting, waiting for a pooled connection and each operation
/// (`store::OPERATION_DEADLINE`) have deadlines; keepalives find dead peers.
fn connection_settings(url: &str) -> Result<(tokio_postgres::Config, crate::postgres_tls::MakeRustlsConnect)> {
    let crate::postgres_tls::Connector { mut config, tls, .. } =
        crate::postgres_tls::connector(url).context("DATABASE_URL cannot be used")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(10));
    Ok((config, tls))
}

pub(super) async fn create_database(
    config: &tokio_postgres::Config,
    tls: crate::postgres_tls::MakeRustlsConnect,
) -> Result<()> {
    let name = config
        .get_dbname()
        .ok_or_else(|| anyhow!("DATABASE_URL names no database"))?
        .to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(tls)
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
pub(super) fn describe(config: &tokio_postgres::Config) -> String {
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
