use super::*;
use crate::domain::SYSTEM_USER;

#[async_trait]
impl Proposals for PostgresStore {
    async fn open_proposals(&self, service: &str) -> Result<Vec<Proposal>> {
        let rows = self
            .prepared_query(
                &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE service = $1 AND NOT resolved ORDER BY id"),
                &[&service],
            )
            .await?;
        rows.iter().map(proposal_from).collect()
    }

    async fn last_automatic_request(&self, service: &str) -> Result<Option<(RollbackId, DateTime<Utc>)>> {
        let row = self
            .prepared_query_opt(
                "SELECT id, created_at FROM rollbacks WHERE service = $1 AND requester = $2
                 ORDER BY id DESC LIMIT 1",
                &[&service, &SYSTEM_USER],
            )
            .await?;
        Ok(row.map(|r| (RollbackId(r.get(0)), r.get(1))))
    }

    async fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>> {
        let row = self
            .prepared_query_opt(
                &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1"),
                &[&id.0],
            )
            .await?;
        row.map(|r| proposal_from(&r)).transpose()
    }

    async fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(saved) = write_proposal(&tx, proposal, proposal.rollback, now).await? else {
            return Ok(None);
        };
        insert_effects(&tx, None, &[Effect::ProposalCard { proposal: saved.id }], now).await?;
        tx.commit().await.context("committing the proposal")?;
        Ok(Some(saved))
    }

    async fn start_from_proposal(
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

    async fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Proposals, id.0).await
    }

    async fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Proposals, id.0, card).await
    }
}

pub(super) const PROPOSAL_COLUMNS: &str = "id, version, rollback_id, doc";

pub(super) fn proposal_from(row: &tokio_postgres::Row) -> Result<Proposal> {
    let mut proposal: Proposal = from_jsonb(row, 3, "proposal")?;
    proposal.id = ProposalId(row.get(0));
    proposal.version = row.get(1);
    proposal.rollback = row.get::<_, Option<i64>>(2).map(RollbackId);
    Ok(proposal)
}

/// Whether `proposal` may be written: a new one opens no second proposal for its group, a
/// changed one is still at the version it was loaded at (and is now locked until commit).
pub(super) async fn proposal_unchanged(tx: &Transaction<'_>, proposal: &Proposal) -> Result<bool> {
    Ok(if proposal.id.0 == 0 {
        // Two new groups of one service at once: the second waits here, then sees the first.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('rollbot proposals of ' || $1, 0))",
            &[&proposal.service],
        )
        .await?;
        let open = tx
            .query(
                &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE service = $1 AND NOT resolved"),
                &[&proposal.service],
            )
            .await?
            .iter()
            .map(proposal_from)
            .collect::<Result<Vec<_>>>()?;
        proposal.may_open_beside(&open)
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
pub(super) async fn write_proposal(
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
