use super::*;

impl PostgresStore {
    /// Takes in everything another store held (`rollbot migrate`), in one transaction, keeping
    /// every id: RB-7 stays RB-7. Refused when this database already holds rollbacks.
    pub async fn import(&self, export: &Export) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let existing: i64 = tx.query_one("SELECT count(*) FROM rollbacks", &[]).await?.get(0);
        if existing > 0 {
            anyhow::bail!(
                "the PostgreSQL database already holds {existing} rollback(s); migrate into an empty database so that no RB number is used twice"
            );
        }
        let value = |text: &str| -> Result<serde_json::Value> {
            serde_json::from_str(text).context("a stored document is not JSON")
        };
        for r in &export.rollbacks {
            tx.execute(
                "INSERT INTO rollbacks (id, version, state, channel_id, service, doc, card_channel, card_ts, created_at,
                                        updated_at, lease_owner, lease_until, page_incident_id, requester, lock_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $6::jsonb->'request'->>'requester',
                         $6::jsonb->'request'->>'lock')",
                &[&r.id, &r.version, &r.state, &r.channel_id, &r.service, &value(&r.doc)?, &r.card_channel, &r.card_ts,
                  &r.created_at, &r.updated_at, &r.lease_owner, &r.lease_until, &r.page_incident_id],
            )
            .await
            .with_context(|| format!("copying RB-{}", r.id))?;
        }
        for e in &export.events {
            tx.execute(
                "INSERT INTO rollback_events (rollback_id, seq, at, actor, event) VALUES ($1, $2, $3, $4, $5)",
                &[&e.rollback_id, &e.seq, &e.at, &e.actor, &value(&e.event)?],
            )
            .await
            .with_context(|| format!("copying event {} of RB-{}", e.seq, e.rollback_id))?;
        }
        for o in &export.outbox {
            tx.execute(
                "INSERT INTO outbox (id, rollback_id, kind, payload, created_at, available_at, attempts, claimed_until,
                                     done_at, outcome, last_error, lane)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &o.id,
                    &o.rollback_id,
                    &o.kind,
                    &value(&o.payload)?,
                    &o.created_at,
                    &o.available_at,
                    &o.attempts,
                    &o.claimed_until,
                    &o.done_at,
                    &o.outcome,
                    &o.last_error,
                    &o.lane,
                ],
            )
            .await
            .with_context(|| format!("copying outbox message {}", o.id))?;
        }
        for timer in &export.timers {
            tx.execute(
                "INSERT INTO timers (id, rollback_id, action, due_at, claimed_until, fired_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&timer.id, &timer.rollback_id, &value(&timer.action)?, &timer.due_at, &timer.claimed_until, &timer.fired_at],
            )
            .await
            .with_context(|| format!("copying timer {}", timer.id))?;
        }
        for p in &export.proposals {
            tx.execute(
                "INSERT INTO proposals (id, version, group_key, service, resolved, doc, rollback_id, card_channel, card_ts,
                                        created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[&p.id, &p.version, &p.group_key, &p.service, &p.resolved, &value(&p.doc)?, &p.rollback_id,
                  &p.card_channel, &p.card_ts, &p.created_at, &p.updated_at],
            )
            .await
            .with_context(|| format!("copying proposal P-{}", p.id))?;
        }
        // New rows continue after the copied ones.
        tx.batch_execute(
            "SELECT setval('rollback_numbers', GREATEST((SELECT max(id) FROM rollbacks), 1), (SELECT count(*) > 0 FROM rollbacks));
             SELECT setval('proposal_numbers', GREATEST((SELECT max(id) FROM proposals), 1), (SELECT count(*) > 0 FROM proposals));
             SELECT setval(pg_get_serial_sequence('outbox', 'id'), GREATEST((SELECT max(id) FROM outbox), 1), (SELECT count(*) > 0 FROM outbox));
             SELECT setval(pg_get_serial_sequence('timers', 'id'), GREATEST((SELECT max(id) FROM timers), 1), (SELECT count(*) > 0 FROM timers));",
        )
        .await
        .context("moving the id sequences past the copied rows")?;
        tx.commit().await.context("committing the migration")?;
        Ok(())
    }
}
