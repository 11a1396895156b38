use super::*;

#[async_trait]
impl Rollbacks for PostgresStore {
    /// Records a new rollback from its first events, with the effects they cause, and returns
    /// it with its number.
    async fn create_rollback(
        &self,
        history: &[Recorded],
        consequences: &Consequences,
        open_limit: Option<usize>,
    ) -> Result<Filed<Rollback>> {
        filing::file(&self.filer, history, consequences, open_limit).await
    }

    /// Stores `rollback` (already folded with `events`) if nobody changed it since
    /// `expected_version`, appending the events and effects in the same transaction.
    /// One statement, so one round trip and its own transaction: the versioned update, and
    /// only if it matched, the events, effects and timers of the change.
    async fn append(
        &self,
        rollback: &Rollback,
        expected_version: i64,
        events: &[Recorded],
        consequences: &Consequences,
    ) -> Result<Written> {
        let change = ChangeParams::of(rollback, expected_version, events, consequences)?;
        let client = self.client().await?;
        let statement = client.prepare_cached(&append_statement()).await?;
        let row = client
            .query_one(&statement, &change.in_order())
            .await
            .context("recording the rollback's change")?;
        let changed: i64 = row.get(0);
        let holds: Option<bool> = row.get(1);
        Ok(match (changed, holds) {
            (0, Some(false)) => Written::Guarded,
            (0, _) => Written::Conflict,
            _ => Written::Ok,
        })
    }

    async fn open_holding(&self, lock: &str) -> Result<Option<RollbackId>> {
        let row = self
            .prepared_query_opt(
                &format!("SELECT id FROM rollbacks WHERE lock_key = $1 AND state NOT IN ({FINISHED_STATES})"),
                &[&lock],
            )
            .await?;
        Ok(row.map(|r| RollbackId(r.get(0))))
    }

    async fn load(&self, id: RollbackId) -> Result<Option<Rollback>> {
        let row = self
            .prepared_query_opt("SELECT doc FROM rollbacks WHERE id = $1", &[&id.0])
            .await?;
        row.map(|r| from_jsonb(&r, 0, "rollback")).transpose()
    }

    async fn history(&self, id: RollbackId) -> Result<Vec<Recorded>> {
        let rows = self
            .prepared_query(
                "SELECT at, actor, event FROM rollback_events WHERE rollback_id = $1 ORDER BY seq",
                &[&id.0],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Recorded {
                    at: r.get(0),
                    actor: crate::domain::UserId(r.get(1)),
                    event: from_jsonb(r, 2, "event")?,
                })
            })
            .collect()
    }

    async fn latest(&self, channel: Option<&str>, drills_only: bool, limit: i64) -> Result<Vec<Rollback>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT doc FROM rollbacks WHERE ($1::text IS NULL OR channel_id = $1) \
                 AND (NOT $2 OR (doc->'request'->>'drill')::boolean IS TRUE) ORDER BY id DESC LIMIT $3",
                &[&channel, &drills_only, &limit],
            )
            .await?;
        rows.iter().map(|r| from_jsonb(r, 0, "rollback")).collect()
    }

    /// Rollbacks that are approved and wait for the executor, oldest first.
    async fn waiting_to_run(&self, limit: i64) -> Result<Vec<RollbackId>> {
        let rows = self
            .prepared_query(
                "SELECT id FROM rollbacks WHERE state = 'queued' ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows.iter().map(|r| RollbackId(r.get(0))).collect())
    }

    /// Renews the lease `fence` holds, by the database's clock unless `at` is given.
    async fn hold_lease(
        &self,
        id: RollbackId,
        fence: &Fence,
        length: std::time::Duration,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let renewed = self
            .prepared_execute(
                "UPDATE rollbacks SET lease_until = COALESCE($4::timestamptz, now()) + $5::bigint * interval '1 millisecond'
                 WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND lease_epoch = $3",
                &[&id.0, &fence.owner, &fence.epoch, &at, &millis(length)],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn release_lease(&self, id: RollbackId, fence: &Fence) -> Result<()> {
        self.prepared_execute(
            "UPDATE rollbacks SET lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3",
            &[&id.0, &fence.owner, &fence.epoch],
        )
        .await?;
        Ok(())
    }

    /// Running rollbacks whose process stopped renewing its lease, by the database's clock
    /// unless `at` is given. A run that never took a lease counts from its last change, plus
    /// `grace`.
    async fn runs_with_lapsed_lease(
        &self,
        at: Option<DateTime<Utc>>,
        grace: std::time::Duration,
    ) -> Result<Vec<RollbackId>> {
        let rows = self
            .prepared_query(
                "SELECT id FROM rollbacks WHERE state = 'running'
                   AND (lease_until < COALESCE($1::timestamptz, now())
                        OR (lease_until IS NULL
                            AND updated_at < COALESCE($1::timestamptz, now()) - $2::bigint * interval '1 millisecond'))
                 ORDER BY id",
                &[&at, &millis(grace)],
            )
            .await?;
        Ok(rows.iter().map(|r| RollbackId(r.get(0))).collect())
    }

    async fn card(&self, id: RollbackId) -> Result<Option<CardRef>> {
        self.card_in(CardTable::Rollbacks, id.0).await
    }

    async fn remember_card(&self, id: RollbackId, card: &CardRef) -> Result<()> {
        self.remember_card_in(CardTable::Rollbacks, id.0, card).await
    }

    /// The status page incident opened for a rollback, if any.
    async fn page_incident(&self, id: RollbackId) -> Result<Option<String>> {
        let row = self
            .prepared_query_opt("SELECT page_incident_id FROM rollbacks WHERE id = $1", &[&id.0])
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    async fn remember_page_incident(&self, id: RollbackId, incident: &str) -> Result<()> {
        self.prepared_execute(
            "UPDATE rollbacks SET page_incident_id = $2 WHERE id = $1",
            &[&id.0, &incident],
        )
        .await?;
        Ok(())
    }

    async fn forget_deliveries(&self, seen_before: DateTime<Utc>) -> Result<u64> {
        self.prepared_execute("DELETE FROM deliveries WHERE seen_at < $1", &[&seen_before])
            .await
    }
}

/// The requester's open rollbacks, if they already have `open_limit` of them. Requests by the
/// same person are serialised by a transaction lock on their name, so two at once cannot both
/// see room for one more.
pub(super) async fn requester_is_full(
    tx: &Transaction<'_>,
    history: &[Recorded],
    open_limit: Option<usize>,
) -> Result<Option<Vec<RollbackId>>> {
    let Some(limit) = open_limit else {
        return Ok(None);
    };
    let requester = &history.first().context("a rollback must start with a request")?.actor.0;
    tx.execute("SELECT pg_advisory_xact_lock(7403313, hashtext($1))", &[requester])
        .await?;
    let open: Vec<RollbackId> = tx
        .query(
            &format!("SELECT id FROM rollbacks WHERE requester = $1 AND state NOT IN ({FINISHED_STATES}) ORDER BY id"),
            &[requester],
        )
        .await?
        .iter()
        .map(|r| RollbackId(r.get(0)))
        .collect();
    Ok((open.len() >= limit).then_some(open))
}

/// What files nothing new: the same delivery filed before (answered as that rollback), or
/// an open rollback holding the request's lock. Each key is locked for the transaction first,
/// so filings of one key on several replicas take turns.
pub(super) async fn already_admitted(tx: &Transaction<'_>, history: &[Recorded]) -> Result<Option<Filed<Rollback>>> {
    let request = crate::store::request_of(history)?;
    if let Some(delivery) = &request.delivery {
        tx.execute("SELECT pg_advisory_xact_lock(7403314, hashtext($1))", &[delivery])
            .await?;
        let seen = tx
            .query_opt(
                "SELECT r.doc FROM deliveries d JOIN rollbacks r ON r.id = d.rollback_id WHERE d.key = $1",
                &[delivery],
            )
            .await?;
        if let Some(row) = seen {
            return Ok(Some(Filed::Seen(from_jsonb(&row, 0, "rollback")?)));
        }
    }
    if let Some(lock) = &request.lock {
        tx.execute("SELECT pg_advisory_xact_lock(7403315, hashtext($1))", &[lock])
            .await?;
        let holder = tx
            .query_opt(
                &format!("SELECT id FROM rollbacks WHERE lock_key = $1 AND state NOT IN ({FINISHED_STATES})"),
                &[lock],
            )
            .await?;
        if let Some(row) = holder {
            return Ok(Some(Filed::Locked(RollbackId(row.get(0)))));
        }
    }
    Ok(None)
}

pub(super) async fn insert_rollback(
    tx: &deadpool_postgres::Transaction<'_>,
    history: &[Recorded],
    consequences: &Consequences,
) -> Result<Rollback> {
    let number: i64 = tx.query_one("SELECT nextval('rollback_numbers')", &[]).await?.get(0);
    let id = RollbackId(number);
    let rollback =
        Rollback::from_history(id, history).ok_or_else(|| anyhow!("a rollback must start with a request"))?;
    // The same rows as a batch of requests, so one rule files both (its card's slot too).
    let mut rows = filing::Rows::default();
    rows.add(&rollback, history, consequences)?;
    rows.insert(tx).await?;
    Ok(rollback)
}

/// Whether a change's guard holds on the rollback's row as it is: `$22` … `$26` are
/// [`GuardParams`] (the rule is `rows::guard_holds`, here in SQL so that the change stays one
/// statement). Used twice in one statement, to write and to tell why nothing was written.
pub(super) const GUARD_HOLDS: &str = "COALESCE(CASE $22::text
        WHEN 'holder' THEN lease_owner = $23::text AND lease_epoch = $24::bigint
        WHEN 'lapsed' THEN state = 'running' AND (lease_until < COALESCE($25::timestamptz, now())
            OR (lease_until IS NULL
                AND updated_at < COALESCE($25::timestamptz, now()) - $26::bigint * interval '1 millisecond'))
        ELSE true END, false)";

/// A [`Guard`] as statement parameters.
pub(super) struct GuardParams<'a> {
    kind: &'static str,
    owner: Option<&'a str>,
    epoch: Option<i64>,
    at: Option<DateTime<Utc>>,
    grace_ms: Option<i64>,
}

impl<'a> GuardParams<'a> {
    fn of(guard: &'a Guard) -> GuardParams<'a> {
        let none = GuardParams {
            kind: "version",
            owner: None,
            epoch: None,
            at: None,
            grace_ms: None,
        };
        match guard {
            Guard::Version => none,
            Guard::Holder(Fence { owner, epoch }) => GuardParams {
                kind: "holder",
                owner: Some(owner),
                epoch: Some(*epoch),
                ..none
            },
            Guard::Lapsed { grace, at } => GuardParams {
                kind: "lapsed",
                at: *at,
                grace_ms: Some(millis(*grace)),
                ..none
            },
        }
    }
}

/// The versioned update and, only if it matched, the events, timers and effects of the change,
/// in one statement with the parameters of [`ChangeParams::in_order`].
fn append_statement() -> String {
    format!(
        "WITH guarded AS (SELECT {guard_holds} AS holds FROM rollbacks WHERE id = $1),
         changed AS (
           UPDATE rollbacks SET version = $2, state = $3, doc = $4, updated_at = $5,
             lease_owner = CASE $7::text WHEN 'clear' THEN NULL WHEN 'take' THEN $8::text ELSE lease_owner END,
             lease_until = CASE $7::text WHEN 'clear' THEN NULL
                                WHEN 'take' THEN COALESCE($9::timestamptz, now()) + $10::bigint * interval '1 millisecond'
                                ELSE lease_until END,
             lease_epoch = CASE $7::text WHEN 'take' THEN $2 ELSE lease_epoch END
           WHERE id = $1 AND version = $6 AND {guard_holds} RETURNING id),
         new_events AS (
           INSERT INTO rollback_events (rollback_id, seq, at, actor, event)
           SELECT c.id, e.seq, e.at, e.actor, e.event FROM changed c,
             unnest($11::bigint[], $12::timestamptz[], $13::text[], $14::jsonb[]) AS e (seq, at, actor, event)),
         void_timers AS (
           DELETE FROM timers t USING changed c WHERE $15 AND t.rollback_id = c.id AND t.fired_at IS NULL),
         new_timers AS (
           INSERT INTO timers (rollback_id, action, due_at)
           SELECT c.id, t.action, t.due_at FROM changed c,
             unnest($16::jsonb[], $17::timestamptz[]) AS t (action, due_at)),
         new_effects AS (
           INSERT INTO outbox (rollback_id, kind, payload, created_at, available_at, lane)
           SELECT c.id, e.kind, e.payload, $5, {behind}, e.lane FROM changed c
           CROSS JOIN unnest($18::text[], $19::jsonb[], $20::text[], $21::bool[])
               WITH ORDINALITY AS e (kind, payload, lane, collapses, position)
           -- A lateral probe with a LIMIT is run per effect on the rollback's index. As a
           -- NOT EXISTS beside an OR, the planner may instead hash every pending row of
           -- every rollback when its statistics lag a burst (9 ms per change at 2,000).
           LEFT JOIN LATERAL (
             SELECT 1 AS found FROM outbox o WHERE o.rollback_id = c.id AND o.lane = e.lane
               AND o.kind = e.kind AND o.done_at IS NULL AND o.claimed_until IS NULL LIMIT 1
           ) pending ON e.collapses
           WHERE pending.found IS NULL
           ORDER BY e.position)
         SELECT (SELECT count(*) FROM changed), (SELECT holds FROM guarded)",
        behind = behind_its_lane("c.id", "$5", "e.lane"),
        guard_holds = GUARD_HOLDS,
    )
}

/// A change as the parameters of [`append_statement`], by name.
struct ChangeParams<'a> {
    id: i64,
    version: i64,
    state: &'static str,
    doc: Json<Box<RawValue>>,
    at: DateTime<Utc>,
    expected_version: i64,
    lease_mode: &'static str,
    lease_owner: Option<&'a str>,
    lease_at: Option<DateTime<Utc>>,
    lease_ms: Option<i64>,
    event_seqs: Vec<i64>,
    event_ats: Vec<DateTime<Utc>>,
    event_actors: Vec<&'a str>,
    events: Vec<Json<Box<RawValue>>>,
    cancel_timers: bool,
    timer_actions: Vec<Json<Box<RawValue>>>,
    timer_dues: Vec<DateTime<Utc>>,
    effects: EffectRows,
    guard: GuardParams<'a>,
}

impl<'a> ChangeParams<'a> {
    fn of(
        rollback: &Rollback,
        expected_version: i64,
        events: &'a [Recorded],
        consequences: &'a Consequences,
    ) -> Result<ChangeParams<'a>> {
        let lease = LeaseWrite::of(rollback, consequences);
        Ok(ChangeParams {
            id: rollback.id.0,
            version: rollback.version,
            state: rollback.state.name(),
            doc: jsonb(rollback)?,
            at: events.last().map(|e| e.at).unwrap_or_else(Utc::now),
            expected_version,
            lease_mode: lease.mode(),
            lease_owner: lease.owner(),
            lease_at: lease.at(),
            lease_ms: lease.length_ms(),
            event_seqs: (1..=events.len() as i64).map(|n| expected_version + n).collect(),
            event_ats: events.iter().map(|e| e.at).collect(),
            event_actors: events.iter().map(|e| e.actor.0.as_str()).collect(),
            events: events.iter().map(|e| jsonb(&e.event)).collect::<Result<_>>()?,
            cancel_timers: consequences.cancel_timers,
            timer_actions: consequences
                .timers
                .iter()
                .map(|t| jsonb(&t.action))
                .collect::<Result<_>>()?,
            timer_dues: consequences.timers.iter().map(|t| t.due_at).collect(),
            effects: EffectRows::of(&EffectRow::of_change(consequences)?)?,
            guard: GuardParams::of(&consequences.guard),
        })
    }

    fn in_order(&self) -> [&(dyn ToSql + Sync); 26] {
        [
            &self.id,
            &self.version,
            &self.state,
            &self.doc,
            &self.at,
            &self.expected_version,
            &self.lease_mode,
            &self.lease_owner,
            &self.lease_at,
            &self.lease_ms,
            &self.event_seqs,
            &self.event_ats,
            &self.event_actors,
            &self.events,
            &self.cancel_timers,
            &self.timer_actions,
            &self.timer_dues,
            &self.effects.kinds,
            &self.effects.payloads,
            &self.effects.lanes,
            &self.effects.collapses,
            &self.guard.kind,
            &self.guard.owner,
            &self.guard.epoch,
            &self.guard.at,
            &self.guard.grace_ms,
        ]
    }
}
