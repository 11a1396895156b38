//! One conformance suite for both stores: every operation, with the guarantees the engine and
//! the workers rely on. Each check runs once on PostgreSQL and once on the embedded file.
use crate::support::{Backend, TestStorage};
use chrono::{DateTime, Duration, Utc};
use rollbot::domain::Rollback;
use rollbot::domain::fixtures::{Story, actor, alert_group, at};
use rollbot::domain::proposal::{Decision, Proposal, ProposalId};
use rollbot::domain::{Action, ChannelId, Recorded, RollbackId, Severity, State};
use rollbot::store::{CardRef, Consequences, Effect, Fence, Filed, Guard, Lease, Store, Timer, TimerAction, Written};

/// Files a rollback with no per-person limit, as most checks here need.
trait CreateUnlimited {
    async fn create_unlimited(&self, history: &[Recorded], consequences: &Consequences) -> anyhow::Result<Rollback>;
}

impl CreateUnlimited for Store {
    async fn create_unlimited(&self, history: &[Recorded], consequences: &Consequences) -> anyhow::Result<Rollback> {
        match self.create_rollback(history, consequences, None).await? {
            Filed::Yes(rollback) => Ok(rollback),
            other => anyhow::bail!("not filed: {other:?}"),
        }
    }
}

/// Runs each named check against a fresh store of each kind.
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod postgres {
            $( #[tokio::test] async fn $check() { super::run(super::Backend::Postgres, super::$check).await } )*
        }
        mod embedded {
            $( #[tokio::test] async fn $check() { super::run(super::Backend::Embedded, super::$check).await } )*
        }
    };
}

on_both_stores!(
    rollbacks_are_numbered_in_order_and_keep_every_event_in_order,
    a_write_on_a_stale_version_is_a_conflict_and_changes_nothing,
    recent_lists_newest_first_by_channel_and_drills_apart,
    leases_show_which_runs_lost_their_process,
    a_change_can_take_the_lease_and_one_that_stops_the_run_ends_it,
    the_executors_writes_are_fenced_by_owner_and_epoch,
    one_change_queues_its_messages_in_order_with_one_card_update,
    the_card_and_the_page_incident_are_remembered,
    the_outbox_hands_out_a_rollbacks_effects_in_order_one_lane_at_a_time,
    a_claimed_effect_is_not_handed_out_again_until_its_claim_lapses,
    pending_card_updates_collapse_into_one,
    retries_waits_and_give_ups_are_kept_with_their_reason,
    timers_fire_in_due_order_once_and_die_with_the_wait,
    channel_slots_space_posts_one_gap_apart,
    a_message_waiting_for_its_slot_comes_back_holding_it,
    a_card_filed_while_its_channel_is_busy_holds_the_next_slot,
    figures_count_what_waits_and_what_exists,
    migrations_apply_once,
    one_proposal_is_open_per_alert_group_and_changes_by_version,
    a_proposal_card_waits_for_the_one_before_it,
    starting_from_a_proposal_records_the_rollback_and_the_proposal_or_neither,
    a_person_files_at_most_their_limit_of_open_rollbacks_even_all_at_once,
    simultaneous_requests_each_keep_their_own_events_effects_and_timers,
    a_request_that_cannot_be_recorded_fails_alone,
    one_open_rollback_holds_its_lock_and_a_delivery_files_once_even_all_at_once,
    a_rate_limit_is_not_an_attempt_and_every_replica_sees_it,
    delivered_messages_are_pruned_after_their_retention_and_the_timeline_stays,
);

async fn run<F: std::future::Future<Output = ()>>(backend: Backend, check: fn(Store) -> F) {
    let storage = TestStorage::new(backend);
    let store = storage.open(None).await;
    assert_eq!(
        store.backend_name(),
        match backend {
            Backend::Postgres => "postgres",
            Backend::Embedded => "embedded",
        }
    );
    check(store).await;
}

fn nothing() -> Consequences {
    Consequences::default()
}

fn effects(effects: Vec<Effect>) -> Consequences {
    Consequences {
        effects,
        ..Default::default()
    }
}

/// A new high-severity request, optionally from another channel or as a drill.
fn request(channel: &str, drill: bool) -> Story {
    let mut story = Story::requested(Severity::High, Some("bad deploy"));
    if channel != "C0INCIDENTS" || drill {
        for recorded in &mut story.history {
            if let rollbot::domain::Event::Requested { request, .. } = &mut recorded.event {
                request.channel = ChannelId(channel.to_owned());
                request.drill = drill;
            }
        }
    }
    story
}

/// Records what `story` did after its first `already` events, as the engine would.
async fn record(store: &Store, id: RollbackId, story: &Story, already: usize, expected_version: i64) -> Written {
    let mut rollback = story.rollback.clone();
    rollback.id = id;
    store
        .append(&rollback, expected_version, &story.history[already..], &nothing())
        .await
        .unwrap()
}

async fn rollbacks_are_numbered_in_order_and_keep_every_event_in_order(store: Store) {
    let first = request("C0INCIDENTS", false);
    let one = store.create_unlimited(&first.history, &nothing()).await.unwrap();
    let two = store
        .create_unlimited(&request("C0INCIDENTS", false).history, &nothing())
        .await
        .unwrap();
    assert_eq!((one.id, two.id), (RollbackId(1), RollbackId(2)));
    assert_eq!(store.load(RollbackId(1)).await.unwrap(), Some(one.clone()));
    assert_eq!(store.load(RollbackId(3)).await.unwrap(), None);

    let requested = first.history.len();
    let approved = first.approved();
    assert_eq!(
        record(&store, one.id, &approved, requested, one.version).await,
        Written::Ok
    );
    let stored = store.load(one.id).await.unwrap().unwrap();
    assert_eq!(stored.state, State::Queued);
    assert_eq!(stored.version, approved.rollback.version);
    let history = store.history(one.id).await.unwrap();
    assert_eq!(
        history, approved.history,
        "every event, in order, with its time and actor"
    );
    let (loaded, with_history) = store.load_with_history(one.id).await.unwrap().unwrap();
    assert_eq!(
        (loaded.state, with_history.len()),
        (State::Queued, approved.history.len())
    );
    assert_eq!(store.waiting_to_run(10).await.unwrap(), [one.id]);
    assert!(store.load_with_history(RollbackId(9)).await.unwrap().is_none());
}

async fn a_write_on_a_stale_version_is_a_conflict_and_changes_nothing(store: Store) {
    let story = request("C0INCIDENTS", false);
    let created = store.create_unlimited(&story.history, &nothing()).await.unwrap();
    let requested = story.history.len();
    let approved = story.approved();
    let mut rejected = request("C0INCIDENTS", false);
    rejected
        .try_act(&actor("U0BOB"), Action::Reject { reason: None })
        .unwrap();

    assert_eq!(
        record(&store, created.id, &approved, requested, created.version).await,
        Written::Ok
    );
    let mut late = rejected.rollback.clone();
    late.id = created.id;
    let written = store
        .append(
            &late,
            created.version,
            &rejected.history[requested..],
            &effects(vec![Effect::UpdateCard]),
        )
        .await
        .unwrap();
    assert_eq!(
        written,
        Written::Conflict,
        "the second writer decided on an old version"
    );
    assert_eq!(store.load(created.id).await.unwrap().unwrap().state, State::Queued);
    assert_eq!(store.history(created.id).await.unwrap(), approved.history);
    assert!(
        store
            .claim_outbox(Some(at(10)), std::time::Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "the losing write's effects were not queued"
    );
}

async fn recent_lists_newest_first_by_channel_and_drills_apart(store: Store) {
    for (channel, drill) in [
        ("C0INCIDENTS", false),
        ("C0OTHER", false),
        ("C0INCIDENTS", true),
        ("C0INCIDENTS", false),
    ] {
        store
            .create_unlimited(&request(channel, drill).history, &nothing())
            .await
            .unwrap();
    }
    let ids = |list: Vec<rollbot::domain::Rollback>| list.iter().map(|r| r.id.0).collect::<Vec<_>>();
    assert_eq!(ids(store.recent(None, 10).await.unwrap()), [4, 3, 2, 1]);
    assert_eq!(ids(store.recent(Some("C0INCIDENTS"), 10).await.unwrap()), [4, 3, 1]);
    assert_eq!(ids(store.recent(Some("C0INCIDENTS"), 2).await.unwrap()), [4, 3]);
    assert_eq!(ids(store.recent_drills(Some("C0INCIDENTS"), 10).await.unwrap()), [3]);
    assert_eq!(
        ids(store.recent_drills(Some("C0OTHER"), 10).await.unwrap()),
        Vec::<i64>::new()
    );
}

async fn leases_show_which_runs_lost_their_process(store: Store) {
    let story = request("C0INCIDENTS", false);
    let created = store.create_unlimited(&story.history, &nothing()).await.unwrap();
    let requested = story.history.len();
    let running = story
        .approved()
        .act(&rollbot::domain::Actor::system(), Action::StartRun);
    assert_eq!(
        record(&store, created.id, &running, requested, created.version).await,
        Written::Ok
    );
    let changed_at = running.history.last().unwrap().at;
    let grace = std::time::Duration::from_secs(60);
    let lapsed = |when: DateTime<Utc>| {
        let store = store.clone();
        async move { store.runs_with_lapsed_lease(Some(when), grace).await.unwrap() }
    };
    assert!(
        store.waiting_to_run(10).await.unwrap().is_empty(),
        "running, not waiting"
    );
    assert!(lapsed(changed_at + Duration::seconds(59)).await.is_empty());
    assert_eq!(
        lapsed(changed_at + Duration::seconds(61)).await,
        [created.id],
        "a run that never took a lease counts from its last change"
    );

    // The lease is taken with a change (the executor's claim); its version is the epoch.
    let running_len = running.history.len();
    let stepping = running.act(&rollbot::domain::Actor::system(), Action::StartStep { index: 0 });
    let changed_at = stepping.history.last().unwrap().at;
    let epoch = append_holding(
        &store,
        created.id,
        &stepping,
        running_len,
        lease("rollbot-a", changed_at, 60),
    )
    .await;
    let a = Fence {
        owner: "rollbot-a".into(),
        epoch,
    };
    let length = std::time::Duration::from_secs(120);
    assert!(
        store
            .hold_lease(created.id, &a, length, Some(changed_at))
            .await
            .unwrap()
    );
    let until = changed_at + Duration::seconds(120);
    assert!(lapsed(until - Duration::seconds(1)).await.is_empty());
    assert_eq!(lapsed(until + Duration::seconds(1)).await, [created.id]);

    let b = Fence {
        owner: "rollbot-b".into(),
        epoch,
    };
    let stale = Fence {
        owner: "rollbot-a".into(),
        epoch: epoch - 1,
    };
    for other in [&b, &stale] {
        assert!(
            !store.hold_lease(created.id, other, length, Some(until)).await.unwrap(),
            "{other:?} does not hold the lease and cannot take it back by renewing"
        );
        store.release_lease(created.id, other).await.unwrap();
    }
    assert!(
        lapsed(until - Duration::seconds(1)).await.is_empty(),
        "nobody else renewed nor released the lease"
    );
    store.release_lease(created.id, &a).await.unwrap();
    assert_eq!(
        lapsed(until - Duration::seconds(1)).await,
        [created.id],
        "released: nobody runs it any more"
    );
    assert!(
        !store.hold_lease(created.id, &a, length, Some(until)).await.unwrap(),
        "a released lease cannot be renewed"
    );
}

fn lease(owner: &str, from: DateTime<Utc>, secs: u64) -> Lease {
    Lease {
        owner: owner.into(),
        length: std::time::Duration::from_secs(secs),
        at: Some(from),
    }
}

/// Records `story`'s events after the first `already`, taking `lease`; returns its epoch.
async fn append_holding(store: &Store, id: RollbackId, story: &Story, already: usize, lease: Lease) -> i64 {
    let mut rollback = story.rollback.clone();
    rollback.id = id;
    let consequences = Consequences {
        lease: Some(lease),
        ..Default::default()
    };
    let expected = rollback.version - (story.history.len() - already) as i64;
    assert_eq!(
        store
            .append(&rollback, expected, &story.history[already..], &consequences)
            .await
            .unwrap(),
        Written::Ok
    );
    rollback.version
}

/// Records `story`'s events after the first `already` under `guard`.
async fn append_guarded(store: &Store, id: RollbackId, story: &Story, already: usize, guard: Guard) -> Written {
    let mut rollback = story.rollback.clone();
    rollback.id = id;
    let consequences = Consequences {
        guard,
        ..Default::default()
    };
    let expected = rollback.version - (story.history.len() - already) as i64;
    store
        .append(&rollback, expected, &story.history[already..], &consequences)
        .await
        .unwrap()
}

/// A process that stalled past its lease cannot write for the run once another declared it
/// lapsed, a person chose to retry, and a new claim took a new epoch; its renewals fail too.
/// An interruption is written only while the lease is really lapsed.
async fn the_executors_writes_are_fenced_by_owner_and_epoch(store: Store) {
    let system = rollbot::domain::Actor::system();
    let story = request("C0INCIDENTS", false).approved();
    let created = store.create_unlimited(&story.history, &nothing()).await.unwrap();
    let story_len = story.history.len();
    let claimed = story
        .act(&system, Action::StartRun)
        .act(&system, Action::StartStep { index: 0 });
    let first_epoch = append_holding(&store, created.id, &claimed, story_len, lease("rollbot-a", at(0), 1800)).await;
    let a = Fence {
        owner: "rollbot-a".into(),
        epoch: first_epoch,
    };
    let lapsed_at = |minutes: i64| Guard::Lapsed {
        grace: std::time::Duration::from_secs(30),
        at: Some(at(minutes)),
    };

    let claimed_len = claimed.history.len();

    let interrupted = claimed.act(&system, Action::Interrupt);
    assert_eq!(
        append_guarded(&store, created.id, &interrupted, claimed_len, lapsed_at(29)).await,
        Written::Guarded,
        "the lease still holds: nothing is interrupted"
    );
    assert_eq!(store.load(created.id).await.unwrap().unwrap().state, State::Running);
    assert_eq!(
        append_guarded(&store, created.id, &interrupted, claimed_len, lapsed_at(31)).await,
        Written::Ok
    );
    let interrupted_len = interrupted.history.len();
    let retried = interrupted.act(
        &actor(rollbot::domain::fixtures::ON_CALL),
        Action::RetryStep { index: 0 },
    );
    assert_eq!(
        append_guarded(&store, created.id, &retried, interrupted_len, Guard::Version).await,
        Written::Ok
    );
    let retried_len = retried.history.len();
    let reclaimed = retried
        .act(&system, Action::StartRun)
        .act(&system, Action::StartStep { index: 0 });
    let second_epoch = append_holding(
        &store,
        created.id,
        &reclaimed,
        retried_len,
        lease("rollbot-a", at(40), 1800),
    )
    .await;
    assert!(second_epoch > first_epoch, "each claim has an epoch of its own");

    // The first attempt's process wakes up with its result: same owner, old epoch. Even on
    // the current version it is refused.
    let result = rollbot::domain::StepResult {
        outcome: rollbot::domain::StepOutcome::Succeeded,
        ..Default::default()
    };
    let reclaimed_len = reclaimed.history.len();
    let reclaimed_version = reclaimed.rollback.version;
    let late = reclaimed.act(
        &system,
        Action::FinishStep {
            index: 0,
            result: result.clone(),
        },
    );
    assert_eq!(
        append_guarded(&store, created.id, &late, reclaimed_len, Guard::Holder(a.clone())).await,
        Written::Guarded
    );
    assert!(
        !store
            .hold_lease(created.id, &a, std::time::Duration::from_secs(1800), Some(at(41)))
            .await
            .unwrap()
    );
    let current = store.load(created.id).await.unwrap().unwrap();
    assert_eq!(current.version, reclaimed_version, "nothing was written");
    assert_eq!(
        current.steps.last().unwrap().result,
        None,
        "the new attempt has no result yet"
    );

    let b = Fence {
        owner: "rollbot-a".into(),
        epoch: second_epoch,
    };
    assert_eq!(
        append_guarded(&store, created.id, &late, reclaimed_len, Guard::Holder(b)).await,
        Written::Ok,
        "the holder of the current epoch records its result"
    );
}

/// The executor takes its lease in the same write that starts the run; a rollback that stops
/// running (interrupted, paused, finished) holds none, so a later run is not hidden by it.
async fn a_change_can_take_the_lease_and_one_that_stops_the_run_ends_it(store: Store) {
    let system = rollbot::domain::Actor::system();
    let story = request("C0INCIDENTS", false).approved();
    let created = store.create_unlimited(&story.history, &nothing()).await.unwrap();
    let mut written = story.history.len();
    let mut version = created.version;
    let mut change = |story: Story, lease: Option<Lease>| {
        let store = store.clone();
        let already = written;
        written = story.history.len();
        let expected = version;
        version = story.rollback.version;
        async move {
            let mut rollback = story.rollback.clone();
            rollback.id = created.id;
            let consequences = Consequences {
                lease,
                ..Default::default()
            };
            let outcome = store
                .append(&rollback, expected, &story.history[already..], &consequences)
                .await
                .unwrap();
            assert_eq!(outcome, Written::Ok);
            story
        }
    };
    let grace = std::time::Duration::from_secs(60);
    let lapsed_at = |store: Store, when: DateTime<Utc>| async move {
        store.runs_with_lapsed_lease(Some(when), grace).await.unwrap()
    };

    let until = at(30);
    let started = change(
        story.act(&system, Action::StartRun),
        Some(lease("rollbot-a", at(0), 1800)),
    )
    .await;
    assert!(
        lapsed_at(store.clone(), until - Duration::seconds(1)).await.is_empty(),
        "the lease written with the run's start holds until it runs out"
    );
    assert_eq!(
        lapsed_at(store.clone(), until + Duration::seconds(1)).await,
        [created.id]
    );

    let stepping = change(started.act(&system, Action::StartStep { index: 0 }), None).await;
    assert!(
        lapsed_at(store.clone(), until - Duration::seconds(1)).await.is_empty(),
        "a change without a lease leaves the held one alone"
    );

    let interrupted = change(stepping.act(&system, Action::Interrupt), None).await;
    let retried = change(
        interrupted.act(
            &actor(rollbot::domain::fixtures::ON_CALL),
            Action::RetryStep { index: 0 },
        ),
        None,
    )
    .await;
    let rerun = change(retried.act(&system, Action::StartRun), None).await;
    let rerun_at = rerun.history.last().unwrap().at;
    assert!(
        rerun_at + Duration::seconds(61) < until,
        "the check needs the old lease still in force"
    );
    assert_eq!(
        lapsed_at(store.clone(), rerun_at + Duration::seconds(61)).await,
        [created.id],
        "the interruption ended the old lease: the new run, without one, counts from its last change"
    );
}

/// Everything one change causes goes out in the order it was caused, however many messages,
/// and several card updates in one change are one update.
async fn one_change_queues_its_messages_in_order_with_one_card_update(store: Store) {
    let story = request("C0INCIDENTS", false);
    let created = store.create_unlimited(&story.history, &nothing()).await.unwrap();
    let requested = story.history.len();
    let approved = story.approved();
    let mut rollback = approved.rollback.clone();
    rollback.id = created.id;
    let caused = effects(vec![
        Effect::UpdateCard,
        Effect::StepFinished { index: 0 },
        Effect::UpdateCard,
        Effect::StepStarted { index: 1 },
        Effect::RunFinished,
    ]);
    let outcome = store
        .append(&rollback, created.version, &approved.history[requested..], &caused)
        .await
        .unwrap();
    assert_eq!(outcome, Written::Ok);
    let mut sent = vec![];
    loop {
        let claimed = store.claim_outbox(Some(at(60)), CLAIM, 10).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        for item in claimed {
            sent.push(item.effect.kind());
            store.outbox_delivered(item.id, at(60)).await.unwrap();
        }
    }
    assert_eq!(sent, ["update_card", "step_finished", "step_started", "run_finished"]);
}

async fn the_card_and_the_page_incident_are_remembered(store: Store) {
    let created = store
        .create_unlimited(&request("C0INCIDENTS", false).history, &nothing())
        .await
        .unwrap();
    assert_eq!(store.card(created.id).await.unwrap(), None);
    assert_eq!(store.page_incident(created.id).await.unwrap(), None);
    let card = CardRef {
        channel: "C0INCIDENTS".into(),
        ts: "1763780400.000100".into(),
    };
    store.remember_card(created.id, &card).await.unwrap();
    store.remember_page_incident(created.id, "p0incident").await.unwrap();
    assert_eq!(store.card(created.id).await.unwrap(), Some(card));
    assert_eq!(
        store.page_incident(created.id).await.unwrap().as_deref(),
        Some("p0incident")
    );
    assert_eq!(store.card(RollbackId(99)).await.unwrap(), None);
}

fn kinds(items: &[rollbot::store::OutboxItem]) -> Vec<&'static str> {
    items.iter().map(|i| i.effect.kind()).collect()
}

const CLAIM: std::time::Duration = std::time::Duration::from_secs(30);

async fn the_outbox_hands_out_a_rollbacks_effects_in_order_one_lane_at_a_time(store: Store) {
    let page = Effect::PageUpdate {
        update: rollbot::statuspage::PageUpdate::Opened,
        message: None,
    };
    let one = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            &effects(vec![Effect::PostCard, Effect::StepStarted { index: 0 }, page.clone()]),
        )
        .await
        .unwrap();
    let private = Effect::Ephemeral {
        channel: ChannelId("C0INCIDENTS".into()),
        user: rollbot::domain::UserId("U0ALICE".into()),
        text: "Recorded".into(),
    };
    store.enqueue(&[private], at(0)).await.unwrap();
    store.enqueue_for(one.id, &[Effect::RunFinished], at(0)).await.unwrap();

    let first = store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap();
    assert_eq!(
        kinds(&first),
        ["post_card", "page_update", "ephemeral"],
        "the first of each lane of the rollback, and the private answer; never the second of a lane"
    );
    assert_eq!(first[0].rollback_id, Some(one.id));
    assert_eq!(first[2].rollback_id, None);
    assert!(first.iter().all(|i| i.attempts == 1));
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    for item in &first {
        store.outbox_delivered(item.id, at(0)).await.unwrap();
    }
    assert_eq!(
        kinds(&store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap()),
        ["step_started"]
    );
    assert!(store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap().is_empty());
}

async fn a_claimed_effect_is_not_handed_out_again_until_its_claim_lapses(store: Store) {
    store
        .create_unlimited(&request("C0INCIDENTS", false).history, &effects(vec![Effect::PostCard]))
        .await
        .unwrap();
    let claimed = store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap();
    assert_eq!(kinds(&claimed), ["post_card"]);
    let during = at(0) + Duration::seconds(29);
    assert!(
        store.claim_outbox(Some(during), CLAIM, 10).await.unwrap().is_empty(),
        "claimed by another worker"
    );
    let after = at(0) + Duration::seconds(31);
    let again = store.claim_outbox(Some(after), CLAIM, 10).await.unwrap();
    assert_eq!(
        (again[0].id, again[0].attempts),
        (claimed[0].id, 2),
        "its process died: handed out again"
    );
}

async fn pending_card_updates_collapse_into_one(store: Store) {
    let created = store
        .create_unlimited(&request("C0INCIDENTS", false).history, &nothing())
        .await
        .unwrap();
    for _ in 0..3 {
        store
            .enqueue_for(created.id, &[Effect::UpdateCard], at(0))
            .await
            .unwrap();
    }
    let claimed = store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap();
    assert_eq!(kinds(&claimed), ["update_card"], "one update renders the newest state");
    store
        .enqueue_for(created.id, &[Effect::UpdateCard], at(0))
        .await
        .unwrap();
    store.outbox_delivered(claimed[0].id, at(0)).await.unwrap();
    assert_eq!(
        kinds(&store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap()),
        ["update_card"],
        "an update queued while another was being sent is kept: the sent one may be older"
    );
}

async fn retries_waits_and_give_ups_are_kept_with_their_reason(store: Store) {
    let created = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            &effects(vec![Effect::PostCard, Effect::RunFinished]),
        )
        .await
        .unwrap();
    let card = store.claim_outbox(Some(at(0)), CLAIM, 1).await.unwrap().remove(0);
    let later = at(0) + Duration::seconds(42);
    store.outbox_retry_at(card.id, later, "rate limited").await.unwrap();
    assert_eq!(
        store.next_paced_delivery(at(0)).await.unwrap(),
        None,
        "a retry after an error is not a paced post"
    );
    assert!(
        store
            .claim_outbox(Some(later - Duration::seconds(1)), CLAIM, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store.claim_outbox(Some(later), CLAIM, 10).await.unwrap();
    assert_eq!((kinds(&retried), retried[0].attempts), (vec!["post_card"], 2));

    let paced_until = later + Duration::seconds(1);
    store.outbox_wait_for_slot(card.id, paced_until).await.unwrap();
    assert_eq!(
        store.next_paced_delivery(later).await.unwrap(),
        None,
        "it has an error on record"
    );
    let again = store.claim_outbox(Some(paced_until), CLAIM, 10).await.unwrap();
    assert_eq!(again[0].attempts, 2, "waiting for a slot is not an attempt");

    store
        .outbox_undeliverable(card.id, paced_until, "not_in_channel")
        .await
        .unwrap();
    let figures = store.figures(paced_until).await.unwrap();
    assert_eq!((figures.outbox_pending, figures.outbox_undeliverable), (1, 1));
    let next = store.claim_outbox(Some(paced_until), CLAIM, 10).await.unwrap();
    assert_eq!(kinds(&next), ["run_finished"], "given up: the next one goes");
    store
        .outbox_wait_for_slot(next[0].id, paced_until + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        store.next_paced_delivery(paced_until).await.unwrap(),
        Some(paced_until + Duration::seconds(1))
    );
    let _ = created;
}

fn timers(due: &[(TimerAction, DateTime<Utc>)]) -> Consequences {
    Consequences {
        timers: due
            .iter()
            .map(|(action, due_at)| Timer {
                action: action.clone(),
                due_at: *due_at,
            })
            .collect(),
        ..Default::default()
    }
}

async fn timers_fire_in_due_order_once_and_die_with_the_wait(store: Store) {
    let escalate = TimerAction::Escalate { level: 1 };
    let created = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            &timers(&[(TimerAction::Expire, at(60)), (escalate.clone(), at(30))]),
        )
        .await
        .unwrap();
    assert_eq!(
        store.pending_timers(created.id).await.unwrap(),
        [(escalate.clone(), at(30)), (TimerAction::Expire, at(60))]
    );
    assert!(
        store
            .claim_due_timers(Some(at(29)), CLAIM, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.claim_due_timers(Some(at(61)), CLAIM, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|t| t.action.clone()).collect::<Vec<_>>(),
        [escalate.clone(), TimerAction::Expire],
        "earliest first"
    );
    assert!(due.iter().all(|t| t.rollback_id == created.id));
    assert!(
        store
            .claim_due_timers(Some(at(61)), CLAIM, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed"
    );
    store.timer_fired(due[0].id, at(61)).await.unwrap();
    let after_claim = at(61) + Duration::seconds(31);
    let again = store.claim_due_timers(Some(after_claim), CLAIM, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|t| t.id).collect::<Vec<_>>(),
        [due[1].id],
        "a fired timer never fires again; an unfired claim lapses"
    );
    assert_eq!(
        store.pending_timers(created.id).await.unwrap(),
        [(TimerAction::Expire, at(60))]
    );

    let other = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            &timers(&[(escalate.clone(), at(30))]),
        )
        .await
        .unwrap();
    let story = request("C0INCIDENTS", false);
    let requested = story.history.len();
    let approved = story.approved();
    let mut rollback = approved.rollback.clone();
    rollback.id = other.id;
    let written = store
        .append(
            &rollback,
            other.version,
            &approved.history[requested..],
            &Consequences {
                cancel_timers: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written, Written::Ok);
    assert!(
        store.pending_timers(other.id).await.unwrap().is_empty(),
        "approved: no escalation"
    );
}

async fn channel_slots_space_posts_one_gap_apart(store: Store) {
    let gap = std::time::Duration::from_secs(1);
    let now = at(0);
    let slot = |channel: &'static str, when| {
        let store = store.clone();
        async move { store.reserve_channel_slot(channel, when, gap).await.unwrap() }
    };
    assert_eq!(slot("C0INCIDENTS", now).await, now, "a free channel: post now");
    assert_eq!(
        slot("C0INCIDENTS", now).await,
        now + Duration::seconds(1),
        "then one gap later"
    );
    assert_eq!(
        slot("C0INCIDENTS", now).await,
        now + Duration::seconds(2),
        "each waiting message holds its own slot"
    );
    assert_eq!(slot("C0OTHER", now).await, now, "per channel");
    assert_eq!(
        slot("C0INCIDENTS", now + Duration::seconds(10)).await,
        now + Duration::seconds(10),
        "a quiet channel is free again, with no credit for the quiet"
    );
    assert_eq!(
        slot("C0INCIDENTS", now + Duration::seconds(10)).await,
        now + Duration::seconds(11)
    );
}

/// A new rollback's card takes its channel's next posting slot when it is filed, so the
/// delivery worker only has to post it; what follows the card waits with it.
async fn a_card_filed_while_its_channel_is_busy_holds_the_next_slot(store: Store) {
    let gap = std::time::Duration::from_secs(1);
    let second = |n: i64| at(0) + Duration::seconds(n);
    assert_eq!(
        store.reserve_channel_slot("C0INCIDENTS", at(0), gap).await.unwrap(),
        at(0)
    );
    let busy = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            &effects(vec![Effect::PostCard, Effect::NotifyLadder]),
        )
        .await
        .unwrap();
    let elsewhere = store
        .create_unlimited(&request("C0OTHER", false).history, &effects(vec![Effect::PostCard]))
        .await
        .unwrap();
    let now = store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap();
    assert_eq!(
        (now.len(), now[0].rollback_id, now[0].slot_reserved),
        (1, Some(elsewhere.id), true),
        "a card in a free channel posts at once, holding its slot"
    );
    assert_eq!(
        store.next_paced_delivery(at(0)).await.unwrap(),
        Some(second(1)),
        "the busy channel's card waits for the next slot"
    );
    assert!(
        store
            .claim_outbox(Some(second(1) - Duration::milliseconds(1)), CLAIM, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let card = store.claim_outbox(Some(second(1)), CLAIM, 10).await.unwrap();
    assert_eq!(
        (
            kinds(&card),
            card[0].rollback_id,
            card[0].slot_reserved,
            card[0].attempts
        ),
        (vec!["post_card"], Some(busy.id), true, 1),
        "then it is due, once, holding the slot: not put back, not counted as tried"
    );
    assert_eq!(
        store.reserve_channel_slot("C0INCIDENTS", at(0), gap).await.unwrap(),
        second(2),
        "the slot is taken"
    );
    store.outbox_delivered(card[0].id, second(1)).await.unwrap();
    assert_eq!(
        kinds(&store.claim_outbox(Some(second(1)), CLAIM, 10).await.unwrap()),
        ["notify_ladder"]
    );
}

/// A message put back for its slot comes back once, at that slot, saying it holds it; a retry
/// after an error must take a new one.
async fn a_message_waiting_for_its_slot_comes_back_holding_it(store: Store) {
    let created = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            // A thread reply: unlike a new card, it has no slot until it is about to be posted.
            &effects(vec![Effect::Paused { index: 0 }, Effect::RunFinished]),
        )
        .await
        .unwrap();
    let card = store.claim_outbox(Some(at(0)), CLAIM, 1).await.unwrap().remove(0);
    assert!(!card.slot_reserved);
    store.outbox_wait_for_slot(card.id, at(3)).await.unwrap();
    store
        .enqueue_for(created.id, &[Effect::StepStarted { index: 0 }], at(1))
        .await
        .unwrap();
    assert_eq!(store.next_paced_delivery(at(0)).await.unwrap(), Some(at(3)));
    assert!(
        store.claim_outbox(Some(at(2)), CLAIM, 10).await.unwrap().is_empty(),
        "not before its slot, nor what waits behind it, queued before or after"
    );
    let due = store.claim_outbox(Some(at(3)), CLAIM, 10).await.unwrap();
    assert_eq!(kinds(&due), ["paused"], "then the reply first");
    assert_eq!((due[0].id, due[0].slot_reserved, due[0].attempts), (card.id, true, 1));

    store.outbox_hand_back(card.id).await.unwrap();
    let handed_back = store.claim_outbox(Some(at(3)), CLAIM, 10).await.unwrap().remove(0);
    assert_eq!(
        (handed_back.id, handed_back.slot_reserved, handed_back.attempts),
        (card.id, true, 1),
        "handed back untried, it keeps its slot and its attempt count"
    );

    store.outbox_retry_at(card.id, at(5), "ratelimited").await.unwrap();
    let retried = store.claim_outbox(Some(at(5)), CLAIM, 10).await.unwrap().remove(0);
    assert_eq!(
        (retried.slot_reserved, retried.attempts),
        (false, 2),
        "a retry takes a new slot"
    );
    store.outbox_delivered(retried.id, at(5)).await.unwrap();
    for next in ["run_finished", "step_started"] {
        let item = store.claim_outbox(Some(at(5)), CLAIM, 10).await.unwrap();
        assert_eq!(kinds(&item), [next], "the rest of its lane, in order");
        store.outbox_delivered(item[0].id, at(5)).await.unwrap();
    }
}

async fn figures_count_what_waits_and_what_exists(store: Store) {
    let empty = store.figures(at(0)).await.unwrap();
    assert_eq!(
        (
            empty.outbox_pending,
            empty.outbox_oldest_pending_age_seconds,
            empty.rollbacks.len()
        ),
        (0, 0.0, 0)
    );
    store
        .create_unlimited(&request("C0INCIDENTS", false).history, &effects(vec![Effect::PostCard]))
        .await
        .unwrap();
    let critical = Story::requested(Severity::Critical, None);
    store.create_unlimited(&critical.history, &nothing()).await.unwrap();
    let figures = store.figures(at(2)).await.unwrap();
    assert_eq!(figures.outbox_pending, 1);
    assert_eq!(figures.outbox_oldest_pending_age_seconds, 120.0);
    assert_eq!(
        figures.rollbacks,
        [
            ("awaiting_approval".to_owned(), "high".to_owned(), 1),
            ("queued".to_owned(), "critical".to_owned(), 1)
        ]
    );
    store.ping().await.unwrap();
}

async fn migrations_apply_once(store: Store) {
    assert_eq!(
        store.migrate().await.unwrap(),
        Vec::<&str>::new(),
        "already applied when opened"
    );
}

#[tokio::test]
async fn a_second_process_on_the_same_file_is_told_to_use_postgres() {
    let storage = TestStorage::new(Backend::Embedded);
    let file = storage.embedded_file().unwrap();
    let owner = storage.open(None).await;
    let refusal = Store::open_embedded(&file).err().expect("the file is taken");
    assert_eq!(
        refusal.to_string(),
        format!(
            "{file} is in use by another rollbot process. The embedded store serves one process; to run several \
             replicas, use PostgreSQL (set DATABASE_URL=postgres://…, and move this file's history there with \
             `rollbot migrate --from {file} --to postgres://…`).",
            file = file.display()
        )
    );
    drop(owner);
    let next = Store::open_embedded(&file).expect("free once its owner is gone");
    assert!(next.load(RollbackId(1)).await.unwrap().is_none());
}

/// What each store gives back is what it was given, to the microsecond and the character
/// (a drill's mark, a reason with mrkdwn in it), so the two are interchangeable.
#[tokio::test]
async fn both_stores_give_back_the_history_they_were_given() {
    let mut histories: Vec<Vec<Recorded>> = vec![];
    for backend in [Backend::Postgres, Backend::Embedded] {
        let storage = TestStorage::new(backend);
        let store = storage.open(None).await;
        let mut story = request("C0INCIDENTS", true);
        story
            .try_act(
                &actor("U0BOB"),
                Action::Reject {
                    reason: Some("<!here> & wrong".into()),
                },
            )
            .unwrap();
        let created = store.create_unlimited(&story.history, &nothing()).await.unwrap();
        histories.push(store.history(created.id).await.unwrap());
        assert_eq!(histories.last().unwrap(), &story.history);
    }
    assert_eq!(histories[0], histories[1]);
}

async fn one_proposal_is_open_per_alert_group_and_changes_by_version(store: Store) {
    let group = alert_group(true, 2);
    let new = Proposal::observe(None, &group, at(0)).unwrap();
    let saved = store
        .save_proposal(&new, at(0))
        .await
        .unwrap()
        .expect("the first of its group");
    assert_eq!((saved.id, saved.version, saved.rollback), (ProposalId(1), 1, None));
    assert_eq!(
        store.save_proposal(&new, at(0)).await.unwrap(),
        None,
        "a second open proposal for the same group and service is a conflict"
    );
    assert_eq!(
        store.open_proposal(&group.group_key, "checkout-api").await.unwrap(),
        Some(saved.clone())
    );
    assert_eq!(store.open_proposal(&group.group_key, "search").await.unwrap(), None);
    assert_eq!(store.load_proposal(saved.id).await.unwrap(), Some(saved.clone()));

    let repeated = Proposal::observe(Some(&saved), &group, at(5)).unwrap();
    let second = store.save_proposal(&repeated, at(5)).await.unwrap().unwrap();
    assert_eq!((second.id, second.version, second.notifications), (saved.id, 2, 2));
    assert_eq!(
        store.save_proposal(&repeated, at(6)).await.unwrap(),
        None,
        "written from a stale version: a conflict"
    );
    assert_eq!(
        store.load_proposal(saved.id).await.unwrap(),
        Some(second.clone()),
        "and nothing changed"
    );

    let resolved = Proposal::observe(Some(&second), &alert_group(false, 2), at(20)).unwrap();
    store.save_proposal(&resolved, at(20)).await.unwrap().unwrap();
    assert_eq!(
        store.open_proposal(&group.group_key, "checkout-api").await.unwrap(),
        None
    );
    let next = store
        .save_proposal(&Proposal::observe(None, &group, at(60)).unwrap(), at(60))
        .await
        .unwrap()
        .expect("the group fires again: a new proposal");
    assert_eq!(next.id, ProposalId(2));

    assert_eq!(store.proposal_card(saved.id).await.unwrap(), None);
    let card = CardRef {
        channel: "C0INCIDENTS".into(),
        ts: "1790000000.000100".into(),
    };
    store.remember_proposal_card(saved.id, &card).await.unwrap();
    assert_eq!(store.proposal_card(saved.id).await.unwrap(), Some(card));
}

async fn a_proposal_card_waits_for_the_one_before_it(store: Store) {
    let group = alert_group(true, 1);
    let first = store
        .save_proposal(&Proposal::observe(None, &group, at(0)).unwrap(), at(0))
        .await
        .unwrap()
        .unwrap();
    let mut other_group = alert_group(true, 1);
    other_group.group_key = "{}:{alertname=\"Down\"}".into();
    store
        .save_proposal(&Proposal::observe(None, &other_group, at(0)).unwrap(), at(0))
        .await
        .unwrap()
        .unwrap();
    let again = store
        .save_proposal(&Proposal::observe(Some(&first), &group, at(1)).unwrap(), at(1))
        .await
        .unwrap()
        .unwrap();

    let claimed = store.claim_outbox(Some(at(1)), CLAIM, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|i| i.effect.clone()).collect::<Vec<_>>(),
        [
            Effect::ProposalCard {
                proposal: ProposalId(1)
            },
            Effect::ProposalCard {
                proposal: ProposalId(2)
            }
        ],
        "one card message per proposal: the second save collapsed into the pending one"
    );
    let soon = at(1) + Duration::seconds(5);
    store
        .save_proposal(&Proposal::observe(Some(&again), &group, soon).unwrap(), soon)
        .await
        .unwrap()
        .unwrap();
    let waiting = store.claim_outbox(Some(soon), CLAIM, 10).await.unwrap();
    assert!(
        waiting.is_empty(),
        "{waiting:?}: a change while the card is being posted waits for the post, so the card is never posted twice"
    );
    store.outbox_delivered(claimed[0].id, soon).await.unwrap();
    assert_eq!(
        kinds(&store.claim_outbox(Some(soon), CLAIM, 10).await.unwrap()),
        ["proposal_card"]
    );
}

/// The proposal as a Start click by U0ALICE leaves it, before the store records it.
fn started_by_alice(proposal: Proposal) -> Proposal {
    Proposal {
        decision: Some(Decision::Started {
            by: rollbot::domain::UserId("U0ALICE".into()),
            at: at(1),
        }),
        ..proposal
    }
}

async fn starting_from_a_proposal_records_the_rollback_and_the_proposal_or_neither(store: Store) {
    let proposal = store
        .save_proposal(&Proposal::observe(None, &alert_group(true, 1), at(0)).unwrap(), at(0))
        .await
        .unwrap()
        .unwrap();
    let started = started_by_alice(proposal.clone());
    let story = request("C0INCIDENTS", false);
    let Filed::Yes((rollback, saved)) = store
        .start_from_proposal(&started, &story.history, &effects(vec![Effect::PostCard]), None)
        .await
        .unwrap()
    else {
        panic!("the proposal had not changed");
    };
    assert_eq!(
        (rollback.id, saved.rollback, saved.version),
        (RollbackId(1), Some(RollbackId(1)), 2)
    );
    assert_eq!(store.load_proposal(proposal.id).await.unwrap(), Some(saved));

    assert!(
        store
            .start_from_proposal(&started, &story.history, &nothing(), None)
            .await
            .unwrap()
            == Filed::ProposalChanged,
        "a second start from the same version loses"
    );
    assert_eq!(
        store.recent(None, 10).await.unwrap().len(),
        1,
        "and leaves no rollback behind"
    );

    let fresh = Proposal::observe(None, &alert_group(true, 1), at(2)).unwrap();
    assert!(
        store
            .start_from_proposal(&fresh, &story.history, &nothing(), None)
            .await
            .unwrap()
            == Filed::ProposalChanged,
        "nor does opening a second proposal for a group that has one"
    );
    assert_eq!(store.recent(None, 10).await.unwrap().len(), 1);
    let next = store.create_unlimited(&story.history, &nothing()).await.unwrap();
    assert_eq!(next.id, RollbackId(2), "the lost starts took no RB number");
}

/// `rollbot migrate` carries proposals, their cards and their rollbacks to PostgreSQL.
#[tokio::test]
async fn proposals_move_to_postgres_with_their_rollback_and_card() {
    let embedded = TestStorage::new(Backend::Embedded);
    let from = embedded.open(None).await;
    let proposal = from
        .save_proposal(&Proposal::observe(None, &alert_group(true, 1), at(0)).unwrap(), at(0))
        .await
        .unwrap()
        .unwrap();
    let started = started_by_alice(proposal);
    let Filed::Yes((_, started)) = from
        .start_from_proposal(&started, &request("C0INCIDENTS", false).history, &nothing(), None)
        .await
        .unwrap()
    else {
        panic!("the proposal had not changed");
    };
    let card = CardRef {
        channel: "C0INCIDENTS".into(),
        ts: "1790000000.000100".into(),
    };
    from.remember_proposal_card(started.id, &card).await.unwrap();
    let Store::Embedded(file) = &from else { unreachable!() };
    let export = file.export().await.unwrap();

    let postgres = TestStorage::new(Backend::Postgres);
    let to = postgres.open(None).await;
    let Store::Postgres(database) = &to else { unreachable!() };
    database.import(&export).await.unwrap();
    assert_eq!(to.load_proposal(started.id).await.unwrap(), Some(started.clone()));
    assert_eq!(to.proposal_card(started.id).await.unwrap(), Some(card));
    let next = to
        .save_proposal(&Proposal::observe(None, &alert_group(true, 1), at(90)).unwrap(), at(90))
        .await
        .unwrap();
    assert_eq!(next, None, "the copied proposal is still the group's open one");
    let mut other = alert_group(true, 1);
    other.group_key = "other".into();
    let next = to
        .save_proposal(&Proposal::observe(None, &other, at(90)).unwrap(), at(90))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, ProposalId(2), "numbering continues after the copied proposals");
}

async fn a_person_files_at_most_their_limit_of_open_rollbacks_even_all_at_once(store: Store) {
    let story = request("C0INCIDENTS", false);
    let no_effects = nothing();
    let attempts = (0..6).map(|_| store.create_rollback(&story.history, &no_effects, Some(3)));
    let outcomes: Vec<Filed<Rollback>> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let open = [RollbackId(1), RollbackId(2), RollbackId(3)];
    assert_eq!(
        outcomes.iter().filter(|o| matches!(o, Filed::Yes(_))).count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Filed::TooManyOpen(open.to_vec()))
            .count(),
        3,
        "the refused are told which three are open, and took no number: {outcomes:?}"
    );

    let mut someone_else = request("C0INCIDENTS", false);
    for recorded in &mut someone_else.history {
        recorded.actor.0 = "U0SOMEONE".into();
        if let rollbot::domain::Event::Requested { request, .. } = &mut recorded.event {
            request.requester.0 = "U0SOMEONE".into();
        }
    }
    let theirs = store
        .create_rollback(&someone_else.history, &nothing(), Some(3))
        .await
        .unwrap();
    assert!(
        matches!(theirs, Filed::Yes(ref r) if r.id == RollbackId(4)),
        "{theirs:?}"
    );

    let cancelled = story
        .clone()
        .act(&actor(rollbot::domain::fixtures::REQUESTER), Action::Cancel);
    assert_eq!(
        record(
            &store,
            RollbackId(2),
            &cancelled,
            story.history.len(),
            story.rollback.version
        )
        .await,
        Written::Ok
    );
    let again = store
        .create_rollback(&story.history, &nothing(), Some(3))
        .await
        .unwrap();
    assert!(
        matches!(again, Filed::Yes(ref r) if r.id == RollbackId(5)),
        "a finished rollback frees its place: {again:?}"
    );
    assert_eq!(
        store
            .create_rollback(&story.history, &nothing(), Some(3))
            .await
            .unwrap(),
        Filed::TooManyOpen(vec![RollbackId(1), RollbackId(3), RollbackId(5)])
    );
}

/// A request by `user` (as requester and actor of every event).
fn request_by(user: &str) -> Story {
    let mut story = request("C0INCIDENTS", false);
    for recorded in &mut story.history {
        recorded.actor.0 = user.into();
        if let rollbot::domain::Event::Requested { request, .. } = &mut recorded.event {
            request.requester.0 = user.into();
        }
    }
    story
}

/// Simultaneous requests may be recorded together (PostgreSQL files a burst in one
/// transaction); each must still get its own number and exactly what it asked for.
async fn simultaneous_requests_each_keep_their_own_events_effects_and_timers(store: Store) {
    const PEOPLE: usize = 40;
    let stories: Vec<Story> = (0..PEOPLE).map(|i| request_by(&format!("U0PERSON{i}"))).collect();
    let consequences: Vec<Consequences> = (0..PEOPLE)
        .map(|i| Consequences {
            effects: vec![Effect::PostCard, Effect::UpdateCard, Effect::UpdateCard],
            timers: vec![Timer {
                action: TimerAction::Expire,
                due_at: at(60 + i as i64),
            }],
            ..Default::default()
        })
        .collect();
    let attempts = stories
        .iter()
        .zip(&consequences)
        .map(|(story, consequences)| store.create_rollback(&story.history, consequences, Some(1)));
    let filed: Vec<Rollback> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|outcome| match outcome.unwrap() {
            Filed::Yes(rollback) => rollback,
            other => panic!("each person's first request is filed: {other:?}"),
        })
        .collect();

    let mut numbers: Vec<i64> = filed.iter().map(|r| r.id.0).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=PEOPLE as i64).collect::<Vec<_>>(),
        "one number each, none skipped"
    );
    for (i, rollback) in filed.iter().enumerate() {
        let person = format!("U0PERSON{i}");
        assert_eq!(rollback.request.requester.0, person);
        assert_eq!(store.load(rollback.id).await.unwrap().as_ref(), Some(rollback));
        let history = store.history(rollback.id).await.unwrap();
        assert_eq!(
            history, stories[i].history,
            "{person}'s events, in order, under their own number"
        );
        assert_eq!(
            store.pending_timers(rollback.id).await.unwrap(),
            [(TimerAction::Expire, at(60 + i as i64))],
            "{person}'s timer"
        );
    }

    // All in one channel: each card holds a posting slot of its own, a second after the last.
    let second = |n: usize| at(0) + Duration::seconds(n as i64);
    assert_eq!(
        store.next_paced_delivery(at(0)).await.unwrap(),
        Some(second(1)),
        "one card may post now, the next a second later"
    );
    assert_eq!(
        store.next_paced_delivery(second(PEOPLE - 2)).await.unwrap(),
        Some(second(PEOPLE - 1)),
        "and the last {} seconds after the first",
        PEOPLE - 1
    );
    let cards = store.claim_outbox(Some(second(PEOPLE - 1)), CLAIM, 100).await.unwrap();
    assert_eq!(
        cards.len(),
        PEOPLE,
        "every rollback's card, one per rollback: {:?}",
        kinds(&cards)
    );
    assert!(cards.iter().all(|c| c.effect == Effect::PostCard && c.slot_reserved));
    assert_eq!(
        store
            .reserve_channel_slot("C0INCIDENTS", at(0), std::time::Duration::from_secs(1))
            .await
            .unwrap(),
        second(PEOPLE),
        "no two cards share a slot, and the next message comes after them all"
    );
    for card in &cards {
        store.outbox_delivered(card.id, second(PEOPLE)).await.unwrap();
    }
    let updates = store.claim_outbox(Some(second(PEOPLE)), CLAIM, 100).await.unwrap();
    assert_eq!(
        kinds(&updates),
        vec!["update_card"; PEOPLE],
        "then one card update each: the second collapsed into the first"
    );
    for update in &updates {
        store.outbox_delivered(update.id, second(PEOPLE)).await.unwrap();
    }
    assert!(
        store
            .claim_outbox(Some(second(PEOPLE)), CLAIM, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let again = store
        .create_rollback(&stories[7].history, &nothing(), Some(1))
        .await
        .unwrap();
    assert_eq!(
        again,
        Filed::TooManyOpen(vec![filed[7].id]),
        "the limit counts what was filed together"
    );
}

/// A broken request among simultaneous ones (here: no events at all) fails by itself; the
/// others it may have been batched with are recorded.
async fn a_request_that_cannot_be_recorded_fails_alone(store: Store) {
    let first = request_by("U0FIRST");
    let last = request_by("U0LAST");
    let none = nothing();
    let (first_filed, broken, last_filed) = tokio::join!(
        store.create_rollback(&first.history, &none, Some(5)),
        store.create_rollback(&[], &none, Some(5)),
        store.create_rollback(&last.history, &none, Some(5)),
    );
    assert!(broken.is_err(), "{broken:?}");
    for (filed, who) in [(first_filed, "U0FIRST"), (last_filed, "U0LAST")] {
        match filed.unwrap() {
            Filed::Yes(rollback) => assert_eq!(rollback.request.requester.0, who),
            other => panic!("{who}'s request is recorded: {other:?}"),
        }
    }
    assert_eq!(store.recent(None, 10).await.unwrap().len(), 2);
}

/// `request` with a lock key and a delivery, as the engine files them.
fn keyed(lock: Option<&str>, delivery: Option<&str>) -> Story {
    let mut story = request("C0INCIDENTS", false);
    for recorded in &mut story.history {
        if let rollbot::domain::Event::Requested { request, .. } = &mut recorded.event {
            request.lock = lock.map(str::to_owned);
            request.delivery = delivery.map(str::to_owned);
        }
    }
    story.rollback.request.lock = lock.map(str::to_owned);
    story.rollback.request.delivery = delivery.map(str::to_owned);
    story
}

async fn one_open_rollback_holds_its_lock_and_a_delivery_files_once_even_all_at_once(store: Store) {
    let same_service = keyed(Some("service:checkout-api"), None);
    let no_effects = nothing();
    let attempts = (0..4).map(|_| store.create_rollback(&same_service.history, &no_effects, None));
    let outcomes: Vec<Filed<Rollback>> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let filed: Vec<&Rollback> = outcomes
        .iter()
        .filter_map(|o| match o {
            Filed::Yes(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(filed.len(), 1, "one open rollback per lock: {outcomes:?}");
    let holder = filed[0].id;
    assert_eq!(
        outcomes.iter().filter(|o| **o == Filed::Locked(holder)).count(),
        3,
        "the others are told which rollback holds the lock: {outcomes:?}"
    );
    assert!(matches!(
        store
            .create_rollback(&keyed(Some("service:other"), None).history, &nothing(), None)
            .await
            .unwrap(),
        Filed::Yes(_)
    ));
    assert!(
        matches!(
            store
                .create_rollback(&keyed(None, None).history, &nothing(), None)
                .await
                .unwrap(),
            Filed::Yes(_)
        ),
        "a rollback without a lock (a drill, or a runbook that opted out) is not held up"
    );

    // Once the holder is over, the lock is free.
    let cancelled = same_service.act(&actor(rollbot::domain::fixtures::REQUESTER), Action::Cancel);
    let mut rollback = cancelled.rollback.clone();
    rollback.id = holder;
    assert_eq!(
        store
            .append(
                &rollback,
                filed[0].version,
                &cancelled.history[same_service_len()..],
                &nothing()
            )
            .await
            .unwrap(),
        Written::Ok
    );
    assert!(matches!(
        store
            .create_rollback(&keyed(Some("service:checkout-api"), None).history, &nothing(), None)
            .await
            .unwrap(),
        Filed::Yes(_)
    ));

    // The same delivery three times, at once: one rollback, and each answer is it.
    let delivered = keyed(None, Some("slack:0123abcd"));
    let attempts = (0..3).map(|_| store.create_rollback(&delivered.history, &no_effects, None));
    let outcomes: Vec<Filed<Rollback>> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: Vec<RollbackId> = outcomes
        .iter()
        .map(|o| match o {
            Filed::Yes(r) | Filed::Seen(r) => r.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| matches!(o, Filed::Yes(_))).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        store.forget_deliveries(at(0)).await.unwrap(),
        0,
        "seen at the window's edge: kept"
    );
    assert_eq!(
        store.forget_deliveries(at(61)).await.unwrap(),
        1,
        "long past Slack's window: forgotten"
    );
}

/// How many events a fresh `request` story has.
fn same_service_len() -> usize {
    request("C0INCIDENTS", false).history.len()
}

async fn a_rate_limit_is_not_an_attempt_and_every_replica_sees_it(store: Store) {
    store
        .create_unlimited(&request("C0INCIDENTS", false).history, &effects(vec![Effect::PostCard]))
        .await
        .unwrap();
    let card = store.claim_outbox(Some(at(0)), CLAIM, 1).await.unwrap().remove(0);
    assert_eq!(card.attempts, 1);
    let later = at(0) + Duration::seconds(2);
    store.outbox_rate_limited(card.id, later, "rate limited").await.unwrap();
    store.slack_back_off("chat.postMessage", later).await.unwrap();
    store
        .slack_back_off("chat.postMessage", later - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        store.slack_backoffs(at(0)).await.unwrap(),
        [("chat.postMessage".to_owned(), later)],
        "the later appointment stands"
    );
    assert!(
        store.slack_backoffs(later).await.unwrap().is_empty(),
        "and ends when it says"
    );
    assert!(
        store
            .claim_outbox(Some(later - Duration::seconds(1)), CLAIM, 1)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_outbox(Some(later), CLAIM, 1).await.unwrap();
    assert_eq!(again[0].attempts, 1, "a 429 is not an attempt");
    assert_eq!(store.outbox_queued_at(card.id).await.unwrap(), Some(at(0)));
}

async fn delivered_messages_are_pruned_after_their_retention_and_the_timeline_stays(store: Store) {
    let story = request("C0INCIDENTS", false);
    let created = store
        .create_unlimited(&story.history, &effects(vec![Effect::PostCard, Effect::RunFinished]))
        .await
        .unwrap();
    let claimed = store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap();
    store.outbox_delivered(claimed[0].id, at(1)).await.unwrap();
    let second = store.claim_outbox(Some(at(1)), CLAIM, 10).await.unwrap();
    store
        .outbox_undeliverable(second[0].id, at(1), "not_in_channel")
        .await
        .unwrap();
    assert_eq!(
        store.prune_outbox(at(1), 100).await.unwrap(),
        0,
        "not past its retention yet"
    );
    assert_eq!(
        store.prune_outbox(at(2), 100).await.unwrap(),
        1,
        "the delivered one goes"
    );
    assert_eq!(store.prune_outbox(at(2), 100).await.unwrap(), 0);
    assert_eq!(
        store.figures(at(2)).await.unwrap().outbox_undeliverable,
        1,
        "an undeliverable message stays, with its error"
    );
    assert_eq!(
        store.history(created.id).await.unwrap().len(),
        story.history.len(),
        "the timeline stays"
    );
}
