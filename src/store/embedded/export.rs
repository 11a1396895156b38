use super::*;

impl EmbeddedStore {
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
