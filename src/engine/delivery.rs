//! Drains the outbox to Slack: renders each effect from the rollback's current state, calls
//! the Web API, and retries with backoff (honouring `Retry-After`) until it is delivered or
//! recorded as undeliverable.
use crate::domain::plan::PlanRequest;
use crate::domain::proposal::ProposalId;
use crate::domain::{Action, Actor, Rollback};
use crate::engine::Engine;
use crate::slack::client::{self, CallError, SlackApi, Thread};
use crate::slack::messages;
use crate::slack::wire::{CardOf, CardStamp};
use crate::statuspage::{PageMessage, PageUpdate};
use crate::store::{CardRef, Effect, OutboxItem};
use crate::templates::Announcement;
use anyhow::{Context, Result, anyhow};
use std::sync::Arc;
use std::time::Duration;

/// How long a claimed message is held: comfortably longer than a Slack call may take, short
/// enough that a message claimed by a process that died goes out soon after.
const LEASE: Duration = Duration::from_secs(30);
const BATCH: i64 = 16;
/// How long the worker waits after being woken before it claims, to take a burst at once.
const GATHER: Duration = Duration::from_millis(100);
/// How often an idle worker looks for work nobody announced (another replica's, a retry's).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How many queued effects one step message looks at to say with it.
const MERGE_AT_MOST: i64 = 200;

/// How far a thread must trail its finished run before its start announcement says the whole
/// run: a moment's wait for the channel keeps the announcements as they happened.
const FOLD_WHEN_BEHIND_BY: chrono::TimeDelta = chrono::TimeDelta::seconds(3);

pub struct Delivery {
    engine: Arc<Engine>,
    slack: Arc<SlackApi>,
    change_events: Option<crate::pagerduty::ChangeEvents>,
    /// Cards posted whose place could not be recorded yet (the database blinked after Slack
    /// answered): the retry records them instead of posting a second card.
    unrecorded: std::sync::Mutex<std::collections::HashMap<CardOf, CardRef>>,
    /// This installation's tag on the cards it stamps.
    instance: String,
}

enum Outcome {
    /// With the effects queued behind it that the same message said.
    Delivered(Vec<i64>),
    Retry(CallError),
    GiveUp(String),
    /// Not tried: the channel's next posting slot is at this time.
    Wait(chrono::DateTime<chrono::Utc>),
    /// Not tried: the channel is busy with rollbacks' messages until this time.
    WaitForChannel(chrono::DateTime<chrono::Utc>),
}

impl Delivery {
    pub fn new(engine: Arc<Engine>, slack: Arc<SlackApi>) -> Self {
        Delivery {
            slack,
            change_events: None,
            unrecorded: Default::default(),
            instance: engine.seal.instance_tag(),
            engine,
        }
    }

    /// Also sends each rollback's start and end to PagerDuty as change events.
    pub fn with_change_events(mut self, change_events: Option<crate::pagerduty::ChangeEvents>) -> Self {
        self.change_events = change_events;
        self
    }

    fn posted_unrecorded(&self, of: CardOf) -> Option<CardRef> {
        self.unrecorded.lock().expect("unpoisoned").get(&of).cloned()
    }

    /// Remembers a card Slack took, until its place is recorded.
    fn posted(&self, of: CardOf, card: CardRef) -> CardRef {
        self.unrecorded.lock().expect("unpoisoned").insert(of, card.clone());
        card
    }

    fn recorded(&self, of: CardOf) {
        self.unrecorded.lock().expect("unpoisoned").remove(&of);
    }

    /// Posts the card `of` into `channel`, unless an earlier attempt already did: one whose
    /// place is known to this process, or (after an attempt whose outcome is unknown: an answer
    /// lost, a process that died) one found in the channel by its stamp. A card found is brought
    /// up to date. Returns where the card is; it still has to be recorded.
    async fn post_card_once(
        &self,
        item: &OutboxItem,
        of: CardOf,
        channel: &str,
        message: &messages::Message,
        pace: Pace,
    ) -> Result<CardRef, DeliverError> {
        if let Some(card) = self.posted_unrecorded(of) {
            self.slack.update(&card.channel, &card.ts, message).await?;
            return Ok(card);
        }
        let stamp = CardStamp {
            card: of,
            instance: self.instance.clone(),
        };
        // `attempts` counts this claim: above one, an earlier attempt may have reached Slack.
        if item.attempts > 1 {
            match self.slack.find_card(channel, &stamp).await {
                Ok(Some(ts)) => {
                    tracing::info!(outbox = item.id, card = ?of, "found the card an earlier attempt posted; recording it instead of posting again");
                    self.slack.update(channel, &ts, message).await?;
                    let card = CardRef {
                        channel: channel.to_owned(),
                        ts,
                    };
                    return Ok(self.posted(of, card));
                }
                Ok(None) => {}
                // Without the history scope (or access), posting risks a second card; not
                // posting would lose the first. A card people can act on comes first.
                Err(CallError::Permanent(error)) => {
                    tracing::warn!(outbox = item.id, card = ?of, %error, "could not look for a card an earlier attempt may have posted; posting it (there may be two)");
                }
                Err(error) => return Err(error.into()),
            }
        }
        match pace {
            Pace::Slot => self.take_slot(item, channel).await?,
            Pace::GiveWay => self.take_idle_slot(channel).await?,
        }
        let ts = self.slack.post_card(channel, message, &stamp).await?;
        Ok(self.posted(
            of,
            CardRef {
                channel: channel.to_owned(),
                ts,
            },
        ))
    }

    /// Delivers what is due now; returns how many effects it handled (delivered, given up, set
    /// to retry, or given a channel slot to wait for). A message put back for its slot is not
    /// due again before that slot, so a paced backlog does not keep the worker spinning.
    pub async fn run_once(&self) -> Result<usize> {
        let now = self.engine.clock.now();
        let items = self
            .engine
            .store
            .claim_outbox(self.engine.clock.store_time(), LEASE, BATCH)
            .await
            .context("claiming outbox rows")?;
        if items.is_empty() {
            return Ok(0);
        }
        // What Slack asked every replica to wait for: kept in the store, looked up once a claim.
        let mut waits: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
            self.engine.store.slack_backoffs(now).await?.into_iter().collect();
        let started = std::time::Instant::now();
        for (position, item) in items.iter().enumerate() {
            if started.elapsed() + client::CALL_TIMEOUT >= LEASE {
                // Slack is slow: hand the rest back before their claim could lapse mid-call.
                for unsent in &items[position..] {
                    self.engine.store.outbox_hand_back(unsent.id).await?;
                }
                break;
            }
            let method = slack_method(&item.effect);
            if let Some(until) = method.and_then(|m| waits.get(m)).filter(|until| **until > now) {
                // Not tried: Slack asked to wait, so this is an appointment, not an attempt.
                self.engine
                    .store
                    .outbox_rate_limited(item.id, *until, "waiting for Slack's Retry-After")
                    .await?;
                continue;
            }
            let outcome = match self.deliver(item).await {
                Ok(merged) => Outcome::Delivered(merged),
                Err(DeliverError::Call(CallError::Permanent(e))) => Outcome::GiveUp(e),
                Err(DeliverError::Call(e)) => Outcome::Retry(e),
                Err(DeliverError::Internal(e)) => Outcome::Retry(CallError::Transient(format!("{e:#}"))),
                Err(DeliverError::Wait(at)) => Outcome::Wait(at),
                Err(DeliverError::WaitForChannel(at)) => Outcome::WaitForChannel(at),
            };
            let now = self.engine.clock.now();
            let store = &self.engine.store;
            match outcome {
                Outcome::Delivered(merged) if merged.is_empty() => store.outbox_delivered(item.id, now).await?,
                Outcome::Delivered(merged) => store.outbox_delivered_merging(item.id, &merged, now).await?,
                Outcome::Wait(at) => store.outbox_wait_for_slot(item.id, at).await?,
                Outcome::WaitForChannel(at) => store.outbox_wait_for_channel(item.id, at).await?,
                Outcome::GiveUp(error) => {
                    tracing::error!(outbox = item.id, rollback = ?item.rollback_id, kind = item.effect.kind(), %error, "Slack refused the message; recorded as undeliverable");
                    self.undeliverable(item, &error).await?;
                }
                Outcome::Retry(CallError::RateLimited { retry_after }) => {
                    // Slack's own appointment: kept for every replica and every message of the
                    // method, and not an attempt, so it neither grows the backoff nor gives up.
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    let until = now + chrono::Duration::from_std(wait)?;
                    if let Some(method) = method {
                        store.slack_back_off(method, until).await?;
                        waits.insert(method.to_owned(), until);
                    }
                    tracing::info!(
                        outbox = item.id,
                        kind = item.effect.kind(),
                        retry_in_ms = wait.as_millis() as u64,
                        "Slack asked to wait (429); waiting exactly that long"
                    );
                    store
                        .outbox_rate_limited(
                            item.id,
                            until,
                            &format!("rate limited for {}", humantime::format_duration(wait)),
                        )
                        .await?;
                }
                Outcome::Retry(error) if self.too_old(item, now).await? => {
                    tracing::error!(outbox = item.id, rollback = ?item.rollback_id, kind = item.effect.kind(), %error, attempts = item.attempts, "giving up on a Slack message that could not be delivered for too long; recorded as undeliverable");
                    let age = humantime::format_duration(self.engine.config.delivery_gives_up_after);
                    self.undeliverable(item, &format!("{error} (not delivered for {age})"))
                        .await?;
                }
                Outcome::Retry(error) => {
                    let wait = jittered(backoff(item.attempts), item.id);
                    tracing::warn!(outbox = item.id, kind = item.effect.kind(), %error, retry_in_ms = wait.as_millis() as u64, "Slack call failed; will retry");
                    store
                        .outbox_retry_at(item.id, now + chrono::Duration::from_std(wait)?, &error.to_string())
                        .await?;
                }
            }
        }
        Ok(items.len())
    }

    /// Delivers `item`; returns the effects queued behind it that the same message said.
    async fn deliver(&self, item: &OutboxItem) -> Result<Vec<i64>, DeliverError> {
        let directory = &self.engine.config.roles;
        if let Effect::Ephemeral { channel, user, text } = &item.effect {
            self.slack
                .ephemeral(&channel.0, &user.0, &messages::Message::plain(text.clone()))
                .await?;
            return Ok(vec![]);
        }
        if let Effect::ProposalCard { proposal } = &item.effect {
            return self.proposal_card(item, *proposal).await.map(|()| vec![]);
        }
        let store = &self.engine.store;
        let id = item
            .rollback_id
            .ok_or_else(|| anyhow!("a rollback effect without a rollback"))?;
        let rollback = store.load(id).await?.ok_or_else(|| anyhow!("{id} is gone"))?;
        if let Effect::PageUpdate { update, message } = &item.effect {
            return self
                .update_page(&rollback, *update, message.as_deref())
                .await
                .map(|()| vec![]);
        }
        if let Effect::ChangeEvent { ended } = &item.effect {
            let Some(events) = &self.change_events else {
                return Err(DeliverError::Call(CallError::Permanent(
                    "no PagerDuty integration key is configured".into(),
                )));
            };
            let link = store
                .card(id)
                .await?
                .map(|card| messages::thread_link(&card.channel, &card.ts));
            events
                .send(&crate::pagerduty::change_event(&rollback, *ended, link))
                .await?;
            return Ok(vec![]);
        }
        if item.effect == Effect::PostCard {
            // Recorded already: an earlier attempt posted it and failed after that.
            if store.card(id).await?.is_some() {
                return Ok(vec![]);
            }
            let message = messages::card(&rollback, directory, self.engine.config.status_page.is_some());
            let channel = &rollback.request.channel.0;
            let card = self
                .post_card_once(item, CardOf::Rollback(id), channel, &message, Pace::Slot)
                .await?;
            store.remember_card(id, &card).await?;
            self.recorded(CardOf::Rollback(id));
            return Ok(vec![]);
        }
        let card = store
            .card(id)
            .await?
            .ok_or_else(|| anyhow!("{id}'s card has not been posted"))?;
        let card = &card;
        let drill = rollback.request.drill;
        let reply = |message: messages::Message, broadcast: bool| async move {
            let thread = Thread {
                ts: &card.ts,
                // A drill stays in its thread.
                broadcast: broadcast && !drill,
            };
            self.take_slot(item, &card.channel).await?;
            self.slack
                .post(&card.channel, &message, Some(thread))
                .await
                .map(|_| ())
                .map_err(DeliverError::from)
        };
        match &item.effect {
            Effect::UpdateCard => {
                self.slack
                    .update(
                        &card.channel,
                        &card.ts,
                        &messages::card(&rollback, directory, self.engine.config.status_page.is_some()),
                    )
                    .await?
            }
            // Only while that step still runs: after it, the card says how it ended.
            Effect::StepProgress { index, output, at } => {
                if rollback.step_in_flight() == Some(*index) {
                    let status_page = self.engine.config.status_page.is_some();
                    let live = messages::LiveStep {
                        index: *index,
                        output,
                        at: *at,
                    };
                    let message = messages::card_while_a_step_runs(&rollback, directory, status_page, &live);
                    self.slack.update(&card.channel, &card.ts, &message).await?
                }
            }
            Effect::PlanInThread => {
                for message in messages::plan_in_thread(&rollback) {
                    reply(message, false).await?;
                }
            }
            // Queued before a step's start went to the card only: nothing to say.
            Effect::StepStarted { .. } => {}
            Effect::StepFinished { index } => {
                let behind = store.outbox_queued_behind(item.id, MERGE_AT_MOST).await?;
                let (steps, merged) = crate::domain::effects::steps_said_together(&rollback, *index, &behind);
                let finished = steps
                    .iter()
                    .map(|i| {
                        let result = rollback.last_result(*i);
                        result
                            .map(|r| (*i, r))
                            .ok_or_else(|| anyhow!("{id} has no result for step {i}"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                reply(messages::steps_finished(&rollback, &finished), false).await?;
                if !merged.is_empty() {
                    tracing::info!(outbox = item.id, rollback = %id, steps = steps.len(), "the thread was behind; one message said several steps");
                }
                return Ok(merged);
            }
            // How a rollback ended is news for the whole channel, not only the thread.
            Effect::RunFinished => reply(messages::run_finished(&rollback), true).await?,
            Effect::Escalated { level } => reply(messages::escalated(&rollback, *level, directory), false).await?,
            Effect::NotifyLadder => reply(messages::ladder_notified(&rollback, directory), false).await?,
            Effect::Paused { index } => reply(messages::paused(&rollback, *index, directory), false).await?,
            Effect::GateCleared { index, by } => {
                reply(messages::gate_cleared(&rollback, *index, Some(by)), false).await?
            }
            Effect::Interrupted { index } => reply(messages::interrupted(&rollback, *index, directory), true).await?,
            Effect::AbortRequested { index, by } => {
                reply(messages::abort_requested(&rollback, *index, by), false).await?
            }
            Effect::Announce { which, channel } => {
                let config = &self.engine.config;
                let expected = config
                    .catalog
                    .runbooks
                    .get(&rollback.request.runbook)
                    .and_then(|r| r.expected_duration);
                let link = messages::thread_link(&card.channel, &card.ts);
                let announced = |which: Announcement| {
                    messages::announcement(&rollback, which, &config.templates[&which], &link, expected)
                };
                let message = announced(*which);
                if (*which, channel) == (Announcement::Started, &None)
                    && let Some((together, merged)) = self.run_said_together(item, &rollback, &announced).await?
                {
                    reply(together, true).await?;
                    return Ok(merged);
                }
                match channel {
                    // Announcements are news for the channel; the customer notice is for copying.
                    None => reply(message, *which != Announcement::CustomerNotice).await?,
                    Some(channel) => {
                        self.take_slot(item, &channel.0).await?;
                        self.slack.post(&channel.0, &message, None).await?;
                    }
                }
            }
            Effect::LateResult { index, result } => {
                reply(messages::late_result(&rollback, *index, result), false).await?
            }
            Effect::StepDecided { index, by, retry } => {
                reply(messages::step_decided(&rollback, *index, by, *retry), false).await?
            }
            Effect::PageTrouble { update, error } => {
                reply(messages::page_trouble(&rollback, *update, error), false).await?
            }
            Effect::Notify { channel, text } => {
                let message = messages::notify_step(&rollback, text);
                match channel {
                    None => reply(message, false).await?,
                    Some(channel) => {
                        self.take_slot(item, &channel.0).await?;
                        self.slack.post(&channel.0, &message, None).await?;
                    }
                }
            }
            Effect::FallbackRequested { index } => reply(messages::fallback_requested(&rollback, *index), true).await?,
            Effect::Remind { n } => reply(messages::update_reminder(&rollback, *n), false).await?,
            // An update is news for the channel, like an announcement.
            Effect::Update { index, channel } => match channel {
                None => reply(messages::update_posted(&rollback, *index, None), true).await?,
                Some(channel) => {
                    let link = messages::thread_link(&card.channel, &card.ts);
                    let message = messages::update_posted(&rollback, *index, Some(&link));
                    self.take_slot(item, &channel.0).await?;
                    self.slack.post(&channel.0, &message, None).await?;
                }
            },
            Effect::DrillSummary => {
                let history = store.history(id).await?;
                reply(messages::drill_summary(&rollback, &history), true).await?
            }
            Effect::Checklists => reply(messages::checklists(&rollback), false).await?,
            Effect::ChecklistChanged { message } => {
                self.slack
                    .update(&card.channel, message, &messages::checklists(&rollback))
                    .await?
            }
            Effect::PostCard
            | Effect::Ephemeral { .. }
            | Effect::PageUpdate { .. }
            | Effect::ProposalCard { .. }
            | Effect::ChangeEvent { .. } => {
                unreachable!("handled above")
            }
        }
        Ok(vec![])
    }

    /// Posts a proposal's card, or brings the posted one up to date.
    async fn proposal_card(&self, item: &OutboxItem, id: ProposalId) -> Result<(), DeliverError> {
        let store = &self.engine.store;
        let config = &self.engine.config;
        let proposal = store.load_proposal(id).await?.ok_or_else(|| anyhow!("{id} is gone"))?;
        let plan = config.catalog.freeze(&PlanRequest {
            service: proposal.service.clone(),
            runbook: None,
            target: proposal.target.clone(),
            params: Default::default(),
        });
        let severity = config.policy.severity(proposal.severity);
        let message = messages::proposal_card(
            &proposal,
            &messages::ProposalContext {
                plan: &plan,
                approvals: severity.approvals,
                approver_roles: &severity.approvers,
            },
        );
        match store.proposal_card(id).await? {
            Some(card) => self.slack.update(&card.channel, &card.ts, &message).await?,
            None => {
                let card = self
                    .post_card_once(item, CardOf::Proposal(id), &proposal.channel.0, &message, Pace::GiveWay)
                    .await?;
                store.remember_proposal_card(id, &card).await?;
                self.recorded(CardOf::Proposal(id));
            }
        }
        Ok(())
    }

    async fn update_page(
        &self,
        rollback: &crate::domain::Rollback,
        update: PageUpdate,
        words: Option<&str>,
    ) -> Result<(), DeliverError> {
        let Some(page) = &self.engine.status_page else {
            return Err(DeliverError::Call(CallError::Permanent(
                "no status page is configured".into(),
            )));
        };
        let config = &self.engine.config;
        let which = match update {
            PageUpdate::Opened => Some(Announcement::PageOpened),
            PageUpdate::Monitoring => Some(Announcement::PageMonitoring),
            PageUpdate::StillInvestigating => Some(Announcement::PageStillInvestigating),
            PageUpdate::Resolved => Some(Announcement::PageResolved),
            PageUpdate::Set(_) => None,
        };
        let body = match (which, words) {
            (_, Some(words)) => words.to_owned(),
            (Some(which), None) => messages::page_text(rollback, &config.templates[&which]),
            (None, None) => String::new(),
        };
        let service = &rollback.request.service;
        let message = PageMessage {
            update,
            rollback: rollback.id.to_string(),
            service: service.clone(),
            name: format!("Issues with {service}"),
            body,
            components: config
                .catalog
                .services
                .get(service)
                .map(|s| s.statuspage_components.clone())
                .unwrap_or_default(),
            impacted_status: config
                .status_page
                .as_ref()
                .map(|p| p.impacted_status.clone())
                .unwrap_or_default(),
            attach_to_open: config.status_page.as_ref().is_some_and(|p| p.attach_to_open),
            named_incident: rollback.request.status_incident.clone(),
        };
        let store = &self.engine.store;
        let mut incident = store.page_incident(rollback.id).await?;
        // A fallback carries on the public incident of the rollback it follows: one incident
        // on the page, not a second one for the same outage.
        if incident.is_none()
            && let Some(of) = rollback.request.fallback_of
            && let Some(followed) = store.page_incident(of).await?
        {
            store.remember_page_incident(rollback.id, &followed).await?;
            incident = Some(followed);
        }
        if let Some(created) = page.send(&message, incident.as_deref()).await? {
            self.engine.store.remember_page_incident(rollback.id, &created).await?;
        }
        // On the record, for the timeline and the post-mortem.
        let recorded = Action::RecordPageUpdated {
            status: update.status().to_owned(),
        };
        if let Err(refusal) = self.engine.act(rollback.id, &recorded, &Actor::system()).await? {
            tracing::warn!(rollback = %rollback.id, ?refusal, "could not record the page update");
        }
        Ok(())
    }

    /// Whether an effect has waited longer than `delivery_gives_up_after` since it was queued.
    async fn too_old(&self, item: &OutboxItem, now: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        let queued = self.engine.store.outbox_queued_at(item.id).await?.unwrap_or(now);
        let limit = chrono::Duration::from_std(self.engine.config.delivery_gives_up_after)?;
        Ok(now - queued >= limit)
    }

    /// Keeps an effect that will never be delivered: on the outbox row, and as an event on its
    /// rollback's record, so it shows in the timeline; never dropped silently.
    async fn undeliverable(&self, item: &OutboxItem, error: &str) -> Result<()> {
        let engine = &self.engine;
        engine
            .store
            .outbox_undeliverable(item.id, engine.clock.now(), error)
            .await?;
        if let (Some(id), Effect::PageUpdate { update, .. }) = (item.rollback_id, &item.effect) {
            let trouble = Effect::PageTrouble {
                update: *update,
                error: error.to_owned(),
            };
            engine.store.enqueue_for(id, &[trouble], engine.clock.now()).await?;
        }
        if let Some(id) = item.rollback_id {
            let action = Action::RecordUndeliverable {
                what: item.effect.kind().to_owned(),
                error: error.to_owned(),
            };
            if let Err(refusal) = engine.act(id, &action, &Actor::system()).await? {
                tracing::error!(rollback = %id, ?refusal, "could not record an undeliverable message on the rollback");
            }
        }
        Ok(())
    }

    /// Delivers until nothing is due or waiting for a channel slot (used when shutting down).
    pub async fn flush(&self) {
        loop {
            let handled = self.run_once().await.unwrap_or(0);
            let waiting = self
                .engine
                .store
                .next_paced_delivery(self.engine.clock.now())
                .await
                .ok()
                .flatten();
            if handled == 0 && waiting.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Posting to a channel needs a slot: one reserved for `item` earlier, or a new one. A
    /// slot in the future is reserved for it and it waits for that moment, so each message in
    /// a backlog is put back once, in order, instead of at every turn.
    async fn take_slot(&self, item: &OutboxItem, channel: &str) -> Result<(), DeliverError> {
        if item.slot_reserved {
            return Ok(());
        }
        let now = self.engine.clock.now();
        let slot = self
            .engine
            .store
            .reserve_channel_slot(
                channel,
                now,
                crate::store::CHANNEL_POST_GAP,
                crate::store::CHANNEL_POST_BURST,
            )
            .await?;
        if slot <= now {
            Ok(())
        } else {
            Err(DeliverError::Wait(slot))
        }
    }

    /// A proposal's card gives way to rollbacks: it takes the channel's slot only when nothing
    /// is reserved ahead, and otherwise waits (holding no slot) until the channel is free, so an
    /// alert flood never queues ahead of an Approve button.
    async fn take_idle_slot(&self, channel: &str) -> Result<(), DeliverError> {
        let now = self.engine.clock.now();
        match self
            .engine
            .store
            .take_idle_channel_slot(channel, now, crate::store::CHANNEL_POST_GAP)
            .await?
        {
            None => Ok(()),
            Some(free_at) => Err(DeliverError::WaitForChannel(free_at)),
        }
    }

    pub async fn run_forever(self: Arc<Self>, shutdown: crate::shutdown::Shutdown) {
        loop {
            match self.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "delivering to Slack failed"),
            }
            let idle = self.until_next_slot().await;
            tokio::select! {
                _ = self.engine.outbox_ready.notified() => {
                    // Gathers what a burst of requests queues into one claim instead of one
                    // claim per request; Slack posts are paced a second apart per channel, so
                    // nobody sees it.
                    tokio::time::sleep(GATHER).await;
                }
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// A start announcement that waited for the channel while its run went through: the one
    /// post that says the whole run, from its end, and the queued effects it says; `None` when
    /// the thread is not that far behind, or the run did not go straight through.
    async fn run_said_together(
        &self,
        item: &OutboxItem,
        rollback: &Rollback,
        announced: &impl Fn(Announcement) -> messages::Message,
    ) -> Result<Option<(messages::Message, Vec<i64>)>> {
        let behind_the_run = rollback
            .finished_at
            .is_some_and(|done| self.engine.clock.now() - done >= FOLD_WHEN_BEHIND_BY);
        if !(item.slot_reserved && behind_the_run) {
            return Ok(None);
        }
        let behind = self.engine.store.outbox_queued_behind(item.id, MERGE_AT_MOST).await?;
        let Some(fold) = crate::domain::effects::run_said_together(rollback, &behind) else {
            return Ok(None);
        };
        let finished: Vec<_> = fold
            .steps
            .iter()
            .filter_map(|i| Some((*i, rollback.last_result(*i)?)))
            .collect();
        let steps = (!finished.is_empty()).then(|| messages::steps_finished(rollback, &finished));
        let notice = fold.notice.then(|| announced(Announcement::CustomerNotice));
        let started = announced(Announcement::Started);
        let together = messages::run_said_together(announced(Announcement::Succeeded), started, steps, notice);
        tracing::info!(outbox = item.id, rollback = %rollback.id, steps = fold.steps.len(), "the thread was behind and the run over; one message said it");
        Ok(Some((together, fold.merged)))
    }

    /// How long to wait for the next paced post (at most `IDLE_POLL`): waking on its slot, not
    /// on a poll's tick, keeps posts a gap apart; two due by the same tick would go out together
    /// and spend the channel's credit at once.
    async fn until_next_slot(&self) -> Duration {
        match self.engine.next_paced_delivery().await {
            Ok(Some(at)) => (at - self.engine.clock.now())
                .to_std()
                .unwrap_or_default()
                .min(IDLE_POLL),
            Ok(None) => IDLE_POLL,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not read when the next paced post is due"
                );
                IDLE_POLL
            }
        }
    }
}

/// How a card waits for its channel: with a slot of its own, or giving way to rollbacks'.
#[derive(Clone, Copy)]
enum Pace {
    Slot,
    GiveWay,
}

enum DeliverError {
    Call(CallError),
    Internal(anyhow::Error),
    Wait(chrono::DateTime<chrono::Utc>),
    WaitForChannel(chrono::DateTime<chrono::Utc>),
}

impl From<CallError> for DeliverError {
    fn from(e: CallError) -> Self {
        DeliverError::Call(e)
    }
}

impl From<anyhow::Error> for DeliverError {
    fn from(e: anyhow::Error) -> Self {
        DeliverError::Internal(e)
    }
}

/// 1s, 2s, 4s … capped at five minutes; only failures count as attempts, never a 429.
/// The longest a failed message waits before it is tried again. Slack's outages end without
/// notice: a short wait lets the channel catch up within seconds of Slack's recovery, and it
/// costs Slack little, since only the first waiting message of each lane is tried (one call per
/// lane every few seconds while Slack is down).
const RETRY_AT_MOST: Duration = Duration::from_secs(5);

fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 9) as u32).min(RETRY_AT_MOST)
}

/// `wait` give or take a fifth, differently for each message, so that the replicas and the
/// messages of an outage do not all come back at the same instant.
fn jittered(wait: Duration, seed: i64) -> Duration {
    let spread = (seed.unsigned_abs().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 401; // 0..=400
    wait.mul_f64(0.8 + spread as f64 / 1000.0)
}

/// The Web API method an effect is delivered with, for Slack's rate limits (`None`: not Slack).
fn slack_method(effect: &Effect) -> Option<&'static str> {
    match effect {
        Effect::PageUpdate { .. } | Effect::ChangeEvent { .. } => None,
        Effect::UpdateCard | Effect::StepProgress { .. } | Effect::ChecklistChanged { .. } => Some("chat.update"),
        Effect::Ephemeral { .. } => Some("chat.postEphemeral"),
        // A proposal's card is posted once and updated after; both count as posts' pace.
        _ => Some("chat.postMessage"),
    }
}
