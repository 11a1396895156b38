use super::*;

#[async_trait]
impl Outbox for EmbeddedStore {
    async fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let effects = effects.to_vec();
        self.transaction(move |tx| insert_effects(tx, Some(id), &effects, now))
            .await
    }

    async fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let effects = effects.to_vec();
        self.transaction(move |tx| insert_effects(tx, None, &effects, now))
            .await
    }

    async fn claim_outbox(
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

    async fn reserve_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
        burst: u32,
    ) -> Result<DateTime<Utc>> {
        let channel = channel.to_owned();
        self.transaction(move |tx| take_channel_slot(tx, &channel, now, gap, burst))
            .await
    }

    async fn take_idle_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let channel = channel.to_owned();
        self.transaction(move |tx| {
            let next: Option<String> = tx
                .query_row("SELECT next_at FROM channel_pace WHERE channel = ?1", [&channel], |r| {
                    r.get(0)
                })
                .optional()?;
            match next.map(|n| parse_ts(&n)).transpose()? {
                Some(busy_until) if busy_until > now => Ok(Some(busy_until)),
                _ => take_channel_slot(tx, &channel, now, gap, 1).map(|_| None),
            }
        })
        .await
    }

    async fn outbox_wait_for_channel(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.execute(
            "UPDATE outbox SET available_at = ?2, slot_at = ?2, claimed_until = NULL, attempts = attempts - 1 WHERE id = ?1",
            vec![id.into(), ts(at).into()],
        )
        .await?;
        Ok(())
    }

    async fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
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

    async fn outbox_hand_back(&self, id: i64) -> Result<()> {
        self.execute(
            "UPDATE outbox SET claimed_until = NULL, attempts = attempts - 1 WHERE id = ?1",
            vec![id.into()],
        )
        .await?;
        Ok(())
    }

    async fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
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

    async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.finish_outbox(id, now, "delivered", None).await
    }

    async fn outbox_queued_behind(&self, id: i64, limit: i64) -> Result<Vec<(i64, Effect)>> {
        let rows: Vec<(i64, String)> = self
            .with(move |c| {
                let mut query = c.prepare_cached(
                    "SELECT b.id, b.payload FROM outbox h JOIN outbox b
                       ON b.rollback_id = h.rollback_id AND b.lane = h.lane AND b.id > h.id
                     WHERE h.id = ?1 AND b.done_at IS NULL
                     ORDER BY b.id LIMIT ?2",
                )?;
                let rows = query
                    .query_map(params![id, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(id, payload)| Ok((id, json(&payload, "effect")?)))
            .collect()
    }

    async fn outbox_delivered_merging(&self, id: i64, merged: &[i64], now: DateTime<Utc>) -> Result<()> {
        let merged = merged.to_vec();
        self.transaction(move |tx| {
            let now = ts(now);
            let mut merge = tx.prepare_cached(
                "UPDATE outbox SET done_at = ?2, outcome = 'merged', claimed_until = NULL
                 WHERE id = ?1 AND done_at IS NULL",
            )?;
            for other in merged {
                merge.execute(params![other, now])?;
            }
            tx.execute(
                "UPDATE outbox SET done_at = ?2, outcome = 'delivered', claimed_until = NULL WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()> {
        self.finish_outbox(id, now, "undeliverable", Some(error)).await
    }

    /// Puts a claimed effect back until `at` without counting the attempt: Slack asked to wait.
    async fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET available_at = ?2, claimed_until = NULL, slot_at = NULL, last_error = ?3,
                               attempts = attempts - 1
             WHERE id = ?1",
            vec![id.into(), ts(at).into(), error.to_owned().into()],
        )
        .await?;
        Ok(())
    }

    async fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64> {
        let pruned = self
            .execute(
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox WHERE done_at < ?1 AND outcome IN ('delivered', 'merged') ORDER BY id LIMIT ?2)",
                vec![ts(delivered_before).into(), limit.into()],
            )
            .await?;
        Ok(pruned as u64)
    }

    async fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
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

    async fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()> {
        self.execute(
            "INSERT INTO slack_backoff (method, until) VALUES (?1, ?2)
             ON CONFLICT (method) DO UPDATE SET until = MAX(slack_backoff.until, excluded.until)",
            vec![method.to_owned().into(), ts(until).into()],
        )
        .await?;
        Ok(())
    }

    async fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>> {
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

    async fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET available_at = ?2, claimed_until = NULL, slot_at = NULL, last_error = ?3 WHERE id = ?1",
            vec![id.into(), ts(at).into(), error.to_owned().into()],
        )
        .await?;
        Ok(())
    }
}

impl EmbeddedStore {
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
}

/// Reserves `channel`'s next posting slot, `gap` after the one before it and not before `now`.
pub(super) fn take_channel_slot(
    tx: &Transaction,
    channel: &str,
    now: DateTime<Utc>,
    gap: std::time::Duration,
    burst: u32,
) -> Result<DateTime<Utc>> {
    let pace: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT next_at, last_slot FROM channel_pace WHERE channel = ?1",
            [channel],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    // `next_at` is when the channel's credit runs out; `last_slot` the latest slot given, which
    // no later reservation goes ahead of (PostgreSQL's store says the same in SQL).
    let (credit_ends, last_slot) = match pace {
        Some((next, last)) => (parse_ts(&next)?.max(now), last.map(|l| parse_ts(&l)).transpose()?),
        None => (now, None),
    };
    let credit = chrono::Duration::from_std(crate::store::burst_credit(gap, burst))?;
    let gap = chrono::Duration::from_std(gap)?;
    let slot = (credit_ends - credit).max(now).max(last_slot.unwrap_or(now));
    tx.execute(
        "INSERT INTO channel_pace (channel, next_at, last_slot) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel) DO UPDATE SET next_at = ?2, last_slot = ?3",
        params![channel, ts(credit_ends + gap), ts(slot)],
    )?;
    Ok(slot)
}

/// When a new effect becomes due: now, or when the message ahead of it in its lane has its
/// channel slot (PostgreSQL's store explains why). ?1 rollback, ?4 now, ?5 lane.
pub(super) const BEHIND_ITS_LANE: &str = "max(?4, coalesce((SELECT max(w.slot_at) FROM outbox w
     WHERE w.rollback_id IS ?1 AND w.lane = ?5 AND w.done_at IS NULL), ?4))";

pub(super) fn insert_effects(
    tx: &Transaction,
    id: Option<RollbackId>,
    effects: &[Effect],
    now: DateTime<Utc>,
) -> Result<()> {
    insert_effect_rows(tx, id, &EffectRow::of_all(effects)?, now)
}

pub(super) fn insert_effect_rows(
    tx: &Transaction,
    id: Option<RollbackId>,
    effects: &[EffectRow],
    now: DateTime<Utc>,
) -> Result<()> {
    let rollback_id = id.map(|i| i.0);
    for effect in effects {
        let insert = if effect.collapses {
            // A pending, unclaimed one will render the newest state anyway.
            format!(
                "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                 SELECT ?1, ?2, ?3, ?4, {BEHIND_ITS_LANE}, ?5
                 WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE rollback_id IS ?1 AND lane = ?5 AND kind = ?2
                                   AND done_at IS NULL AND claimed_until IS NULL)"
            )
        } else {
            format!(
                "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                 VALUES (?1, ?2, ?3, ?4, {BEHIND_ITS_LANE}, ?5)"
            )
        };
        tx.prepare_cached(&insert)?
            .execute(params![rollback_id, effect.kind, effect.payload, ts(now), effect.lane])?;
    }
    Ok(())
}
