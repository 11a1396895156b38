use super::*;

#[async_trait]
impl Rollbacks for EmbeddedStore {
    async fn create_rollback(
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

    async fn append(
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
            let lease = LeaseWrite::of(&rollback, &consequences);
            let lease_until = match lease {
                LeaseWrite::Take { length, at, .. } => {
                    Some(ts(at.unwrap_or_else(Utc::now) + chrono::Duration::from_std(length)?))
                }
                _ => None,
            };
            let updated = tx.execute(
                "UPDATE rollbacks SET version = ?2, state = ?3, doc = ?4, updated_at = ?5,
                   lease_owner = CASE ?7 WHEN 'clear' THEN NULL WHEN 'take' THEN ?8 ELSE lease_owner END,
                   lease_until = CASE ?7 WHEN 'clear' THEN NULL WHEN 'take' THEN ?9 ELSE lease_until END,
                   lease_epoch = CASE ?7 WHEN 'take' THEN ?2 ELSE lease_epoch END
                 WHERE id = ?1 AND version = ?6",
                params![
                    rollback.id.0,
                    rollback.version,
                    rollback.state.name(),
                    serde_json::to_string(&rollback)?,
                    ts(now),
                    expected_version,
                    lease.mode(),
                    lease.owner(),
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

    async fn open_holding(&self, lock: &str) -> Result<Option<RollbackId>> {
        let lock = lock.to_owned();
        let holder: Option<i64> = self
            .with(move |c| {
                Ok(c.query_row(
                    &format!("SELECT id FROM rollbacks WHERE lock_key = ?1 AND state NOT IN ({FINISHED_STATES})"),
                    [lock],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await?;
        Ok(holder.map(RollbackId))
    }

    async fn load(&self, id: RollbackId) -> Result<Option<Rollback>> {
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

    async fn history(&self, id: RollbackId) -> Result<Vec<Recorded>> {
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

    async fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>> {
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

    async fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>> {
        self.ids(
            "SELECT id FROM rollbacks WHERE state = 'queued' ORDER BY id LIMIT ?1",
            vec![limit.into()],
        )
        .await
    }

    /// Renews the lease `fence` holds; one process owns the file, so its clock is the store's.
    async fn hold_lease(
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

    async fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()> {
        self.execute(
            "UPDATE rollbacks SET lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
            vec![id.0.into(), fence.owner.clone().into(), fence.epoch.into()],
        )
        .await?;
        Ok(())
    }

    async fn runs_with_lapsed_lease(
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

    async fn card(&self, id: RollbackId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Rollbacks, id.0).await
    }

    async fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Rollbacks, id.0, card).await
    }

    async fn page_incident(&self, id: RollbackId) -> Result<Option<String>> {
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

    async fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()> {
        self.execute(
            "UPDATE rollbacks SET page_incident_id = ?2 WHERE id = ?1",
            vec![id.0.into(), incident.to_owned().into()],
        )
        .await?;
        Ok(())
    }

    async fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64> {
        let forgotten = self
            .execute(
                "DELETE FROM deliveries WHERE seen_at < ?1",
                vec![ts(seen_before).into()],
            )
            .await?;
        Ok(forgotten as u64)
    }
}

/// The requester's open rollbacks, if they already have `open_limit` of them (the transaction
/// holds SQLite's write lock, so nobody files in between).
pub(super) fn requester_is_full(
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
pub(super) fn already_admitted(tx: &Transaction, history: &[Recorded]) -> Result<Option<Filed<Rollback>>> {
    let request = crate::store::request_of(history)?;
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

pub(super) fn insert_rollback(tx: &Transaction, history: &[Recorded], consequences: &Consequences) -> Result<Rollback> {
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
    if EffectRow::of_change(consequences)?.iter().any(|e| e.takes_channel_slot) {
        // The card holds its channel's next slot from now on (a quiet channel's burst credit
        // counts for cards too); nothing in its lane goes before it.
        let slot = take_channel_slot(
            tx,
            &rollback.request.channel.0,
            now,
            CHANNEL_POST_GAP,
            crate::store::CHANNEL_POST_BURST,
        )?;
        tx.execute(
            "UPDATE outbox SET available_at = max(available_at, ?2),
                               slot_at = CASE WHEN kind = 'post_card' THEN ?2 END
             WHERE rollback_id = ?1 AND lane = ?3",
            params![id.0, ts(slot), Effect::PostCard.lane()],
        )?;
    }
    Ok(rollback)
}

pub(super) fn apply_consequences(
    tx: &Transaction,
    id: RollbackId,
    consequences: &Consequences,
    now: DateTime<Utc>,
) -> Result<()> {
    insert_effect_rows(tx, Some(id), &EffectRow::of_change(consequences)?, now)?;
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
/// transaction (`rows::guard_holds`).
pub(super) fn guard_holds(tx: &Transaction, id: RollbackId, guard: &Guard) -> Result<bool> {
    let row = tx
        .query_row(
            "SELECT state, lease_owner, lease_epoch, lease_until, updated_at FROM rollbacks WHERE id = ?1",
            [id.0],
            |r| {
                Ok(LeaseColumns {
                    state: r.get(0)?,
                    owner: r.get(1)?,
                    epoch: r.get(2)?,
                    until: optional_ts(r, 3)?,
                    updated_at: parse_ts(&r.get::<_, String>(4)?)?,
                })
            },
        )
        .optional()?;
    // A missing rollback is the version check's to report.
    let Some(row) = row else {
        return Ok(true);
    };
    let now = match guard {
        Guard::Lapsed { at: Some(at), .. } => *at,
        _ => Utc::now(),
    };
    rows::guard_holds(guard, &row, now)
}

pub(super) fn insert_events(tx: &Transaction, id: RollbackId, first_seq_after: i64, events: &[Recorded]) -> Result<()> {
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
