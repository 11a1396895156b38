use super::*;

#[async_trait]
impl Proposals for EmbeddedStore {
    async fn open_proposals(&self, service: &str) -> Result<Vec<Proposal>> {
        let service = service.to_owned();
        let rows = self.with(move |c| open_proposal_rows(c, &service)).await?;
        rows.into_iter().map(proposal_from).collect()
    }

    async fn last_automatic_request(&self, service: &str) -> Result<Option<(RollbackId, DateTime<Utc>)>> {
        let service = service.to_owned();
        let row: Option<(i64, String)> = self
            .with(move |c| {
                Ok(c.query_row(
                    "SELECT id, created_at FROM rollbacks
                     WHERE service = ?1 AND json_extract(doc, '$.request.requester') = ?2
                     ORDER BY id DESC LIMIT 1",
                    params![service, crate::domain::SYSTEM_USER],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
            })
            .await?;
        row.map(|(id, at)| Ok((RollbackId(id), parse_ts(&at)?))).transpose()
    }

    async fn load_proposal(&self, id: ProposalId) -> Result<Option<Proposal>> {
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

    async fn save_proposal(&self, proposal: &Proposal, now: DateTime<Utc>) -> Result<Option<Proposal>> {
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

    async fn start_from_proposal(
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

    async fn proposal_card(&self, id: ProposalId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Proposals, id.0).await
    }

    async fn remember_proposal_card(&self, id: ProposalId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Proposals, id.0, card).await
    }
}

/// An open proposal's row: id, version, its rollback, and its state as JSON.
type ProposalRow = (i64, i64, Option<i64>, String);

fn open_proposal_rows(c: &rusqlite::Connection, service: &str) -> Result<Vec<ProposalRow>> {
    let mut statement = c.prepare_cached(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE service = ?1 AND resolved = 0 ORDER BY id"
    ))?;
    let rows = statement.query_map([service], proposal_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) const PROPOSAL_COLUMNS: &str = "id, version, rollback_id, doc";

pub(super) fn proposal_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, i64, Option<i64>, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) fn proposal_from((id, version, rollback, doc): (i64, i64, Option<i64>, String)) -> Result<Proposal> {
    let mut proposal: Proposal = json(&doc, "proposal")?;
    proposal.id = ProposalId(id);
    proposal.version = version;
    proposal.rollback = rollback.map(RollbackId);
    Ok(proposal)
}

/// Whether `proposal` may be written: a new one opens no second proposal for its group, a
/// changed one is still at the version it was loaded at.
pub(super) fn proposal_unchanged(tx: &Transaction, proposal: &Proposal) -> Result<bool> {
    Ok(if proposal.id.0 == 0 {
        let open = open_proposal_rows(tx, &proposal.service)?
            .into_iter()
            .map(proposal_from)
            .collect::<Result<Vec<_>>>()?;
        proposal.may_open_beside(&open)
    } else {
        tx.query_row("SELECT version FROM proposals WHERE id = ?1", [proposal.id.0], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
            == Some(proposal.version)
    })
}

/// Writes a proposal `proposal_unchanged` allowed, and returns it as stored.
pub(super) fn write_proposal(
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
