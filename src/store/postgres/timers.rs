use super::*;

#[async_trait]
impl Timers for PostgresStore {
    /// Claims timers that are due, for `lease`; a claimed timer that is not marked fired before
    /// its lease ends is handed out again (its process may have died).
    async fn claim_due_timers(
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

    async fn timer_fired(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "UPDATE timers SET fired_at = $2, claimed_until = NULL WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        Ok(())
    }

    /// Timers not yet fired, for `status` and tests: (rollback, action, due).
    async fn pending_timers(&self, id: RollbackId) -> Result<Vec<(crate::store::TimerAction, DateTime<Utc>)>> {
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
}
