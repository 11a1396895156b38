use super::*;

#[async_trait]
impl Timers for EmbeddedStore {
    async fn claim_due_timers(
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

    async fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.execute(
            "UPDATE timers SET fired_at = ?2, claimed_until = NULL WHERE id = ?1",
            vec![id.into(), ts(now).into()],
        )
        .await?;
        Ok(())
    }

    async fn pending_timers(&self, id: RollbackId) -> Result<Vec<(crate::store::TimerAction, DateTime<Utc>)>> {
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
}
