use super::*;

#[async_trait]
impl Outbox for PostgresStore {
    /// Queues effects about a rollback that come from outside a decision (a delivery problem).
    async fn enqueue_for(&self, id: RollbackId, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_effects(&tx, Some(id), effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues effects that belong to no rollback (private answers).
    async fn enqueue(&self, effects: &[Effect], now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_effects(&tx, None, effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` deliverable effects for `lease`. A rollback's effects are handed
    /// out one at a time, in order, so its thread reads in the order things happened.
    async fn claim_outbox(
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

    /// Reserves the channel's next posting slot and says when it is (`now` if the channel is
    /// free). One statement, so replicas cannot reserve the same slot.
    async fn reserve_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
        burst: u32,
    ) -> Result<DateTime<Utc>> {
        let gap_seconds = gap.as_secs_f64();
        let credit = crate::store::burst_credit(gap, burst).as_secs_f64();
        // `next_at` is when the channel's credit runs out: a post goes one gap before it, or
        // earlier by the burst's credit, never before now nor before the latest slot given
        // (`last_slot`: credit never takes a post ahead of one already reserved).
        let row = self.prepared_query_one(
                "INSERT INTO channel_pace (channel, next_at, last_slot) VALUES ($1, $2::timestamptz + make_interval(secs => $3::float8), $2::timestamptz)
                 ON CONFLICT (channel) DO UPDATE
                   SET next_at = greatest(channel_pace.next_at, $2::timestamptz) + make_interval(secs => $3::float8),
                       last_slot = greatest($2::timestamptz,
                                            channel_pace.next_at - make_interval(secs => $4::float8),
                                            channel_pace.last_slot)
                 RETURNING last_slot",
                &[&channel, &now, &gap_seconds, &credit],
            )
            .await?;
        Ok(row.get(0))
    }

    /// One statement: the outer select reads the row as it was before the claim, so a busy
    /// channel answers with the end of what is reserved.
    async fn take_idle_channel_slot(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let gap_seconds = gap.as_secs_f64();
        let row = self
            .prepared_query_one(
                "WITH taken AS (
                     INSERT INTO channel_pace (channel, next_at) VALUES ($1, $2::timestamptz + make_interval(secs => $3::float8))
                     ON CONFLICT (channel) DO UPDATE SET next_at = excluded.next_at, last_slot = $2::timestamptz
                       WHERE channel_pace.next_at <= $2::timestamptz
                     RETURNING next_at)
                 SELECT CASE WHEN EXISTS (SELECT 1 FROM taken) THEN NULL
                             ELSE (SELECT next_at FROM channel_pace WHERE channel = $1) END",
                &[&channel, &now, &gap_seconds],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn outbox_wait_for_channel(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET available_at = $2, slot_at = $2, claimed_until = NULL, attempts = attempts - 1
             WHERE id = $1",
            &[&id, &at],
        )
        .await?;
        Ok(())
    }

    async fn outbox_wait_for_slot(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
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

    async fn outbox_hand_back(&self, id: i64) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET claimed_until = NULL, attempts = attempts - 1 WHERE id = $1",
            &[&id],
        )
        .await?;
        Ok(())
    }

    /// When the next effect that waits only for its channel becomes due.
    async fn next_paced_delivery(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .prepared_query_one(
                "SELECT min(slot_at) FROM outbox WHERE done_at IS NULL AND last_error IS NULL AND slot_at > $1",
                &[&now],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.finish_outbox(id, now, "delivered", None).await
    }

    async fn outbox_queued_behind(&self, id: i64, limit: i64) -> Result<Vec<(i64, Effect)>> {
        let rows = self
            .prepared_query(
                "SELECT b.id, b.payload FROM outbox h JOIN outbox b
                   ON b.rollback_id = h.rollback_id AND b.lane = h.lane AND b.id > h.id
                 WHERE h.id = $1 AND b.done_at IS NULL
                 ORDER BY b.id LIMIT $2",
                &[&id, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get(0), from_jsonb(r, 1, "effect")?)))
            .collect()
    }

    /// One statement, so the merged messages cannot be done without the one that said them.
    async fn outbox_delivered_merging(&self, id: i64, merged: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET done_at = $2, claimed_until = NULL,
                               outcome = CASE WHEN id = $1 THEN 'delivered' ELSE 'merged' END
             WHERE id = $1 OR (id = ANY($3) AND done_at IS NULL)",
            &[&id, &now, &merged],
        )
        .await?;
        Ok(())
    }

    /// Gives up on an effect: kept, with why, so that nothing disappears silently.
    async fn outbox_undeliverable(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<()> {
        self.finish_outbox(id, now, "undeliverable", Some(error)).await
    }

    /// Puts a claimed effect back until `at` without counting the attempt: Slack asked to wait.
    async fn outbox_rate_limited(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET available_at = $2, claimed_until = NULL, slot_at = NULL, last_error = $3,
                               attempts = attempts - 1
             WHERE id = $1",
            &[&id, &at, &error],
        )
        .await?;
        Ok(())
    }

    async fn prune_outbox(&self, delivered_before: DateTime<Utc>, limit: i64) -> Result<u64> {
        self.prepared_execute(
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox WHERE done_at < $1 AND outcome IN ('delivered', 'merged') ORDER BY id LIMIT $2)",
            &[&delivered_before, &limit],
        )
        .await
    }

    async fn outbox_queued_at(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .prepared_query_opt("SELECT created_at FROM outbox WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn slack_back_off(&self, method: &str, until: DateTime<Utc>) -> Result<()> {
        self.prepared_execute(
            "INSERT INTO slack_backoff (method, until) VALUES ($1, $2)
             ON CONFLICT (method) DO UPDATE SET until = GREATEST(slack_backoff.until, EXCLUDED.until)",
            &[&method, &until],
        )
        .await?;
        Ok(())
    }

    async fn slack_backoffs(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = self
            .prepared_query("SELECT method, until FROM slack_backoff WHERE until > $1", &[&now])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn outbox_retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.prepared_execute(
            "UPDATE outbox SET available_at = $2, claimed_until = NULL, slot_at = NULL, last_error = $3 WHERE id = $1",
            &[&id, &at, &error],
        )
        .await?;
        Ok(())
    }
}

impl PostgresStore {
    async fn finish_outbox(&self, id: i64, now: DateTime<Utc>, outcome: &str, error: Option<&str>) -> Result<()> {
        self.prepared_execute(
                "UPDATE outbox SET done_at = $2, outcome = $3, last_error = COALESCE($4, last_error), claimed_until = NULL WHERE id = $1",
                &[&id, &now, &outcome, &error],
            )
            .await?;
        Ok(())
    }
}

/// When a new effect becomes due: now, or when the message ahead of it in its lane has its
/// channel slot, since it cannot go before that one anyway. Waiting rows are then not due, so
/// claims skip them instead of scanning a backlog. The arguments are SQL expressions for the
/// rollback, the time of the change and the effect's lane.
pub(super) fn behind_its_lane(rollback: &str, now: &str, lane: &str) -> String {
    format!(
        "greatest({now}::timestamptz, (SELECT max(w.slot_at) FROM outbox w
           WHERE w.rollback_id = {rollback} AND w.lane = {lane} AND w.done_at IS NULL))"
    )
}

/// A change's effects as columns for one multi-row insert.
pub(super) struct EffectRows {
    pub(super) kinds: Vec<&'static str>,
    pub(super) payloads: Vec<Json<Box<RawValue>>>,
    pub(super) lanes: Vec<String>,
    pub(super) collapses: Vec<bool>,
}

impl EffectRows {
    pub(super) fn of(rows: &[EffectRow]) -> Result<EffectRows> {
        Ok(EffectRows {
            kinds: rows.iter().map(|r| r.kind).collect(),
            payloads: rows.iter().map(|r| raw_json(&r.payload)).collect::<Result<_>>()?,
            lanes: rows.iter().map(|r| r.lane.clone()).collect(),
            collapses: rows.iter().map(|r| r.collapses).collect(),
        })
    }
}

pub(super) async fn insert_effects(
    tx: &Transaction<'_>,
    id: Option<RollbackId>,
    effects: &[Effect],
    now: DateTime<Utc>,
) -> Result<()> {
    let rollback_id = id.map(|i| i.0);
    let behind = behind_its_lane("$1", "$4", "$5");
    for effect in EffectRow::of_all(effects)? {
        let payload = raw_json(&effect.payload)?;
        if effect.collapses {
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
                &[&rollback_id, &effect.kind, &payload, &now, &effect.lane],
            )
            .await?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
                     VALUES ($1, $2, $3, $4, {behind}, $5)"
                ),
                &[&rollback_id, &effect.kind, &payload, &now, &effect.lane],
            )
            .await?;
        }
    }
    Ok(())
}
