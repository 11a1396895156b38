//! Rollbacks: numbering, versions, leases and fencing, cards, migrations.
use super::*;

on_both_stores!(
    rollbacks_are_numbered_in_order_and_keep_every_event_in_order,
    a_write_on_a_stale_version_is_a_conflict_and_changes_nothing,
    recent_lists_newest_first_by_channel_and_drills_apart,
    leases_show_which_runs_lost_their_process,
    a_change_can_take_the_lease_and_one_that_stops_the_run_ends_it,
    the_executors_writes_are_fenced_by_owner_and_epoch,
    the_card_and_the_page_incident_are_remembered,
    migrations_apply_once,
);

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

/// The owner's lock is on the database file itself: another path to it (a symlink) is the same
/// file, and there is no side file whose removal would let a second owner in.
#[tokio::test]
async fn the_embedded_file_has_one_owner_whatever_path_names_it() {
    let storage = TestStorage::new(Backend::Embedded);
    let file = storage.embedded_file().unwrap();
    let _owner = storage.open(None).await;
    let alias = file.with_file_name("alias.db");
    std::os::unix::fs::symlink(&file, &alias).unwrap();
    let refusal = Store::open_embedded(&alias)
        .err()
        .expect("a symlink names the same file");
    assert!(
        refusal.to_string().contains("is in use by another rollbot process"),
        "{refusal}"
    );
    let side_file = file.with_extension("db.lock");
    let _ = std::fs::remove_file(&side_file);
    assert!(
        Store::open_embedded(&file).is_err(),
        "removing a lock file beside it changes nothing"
    );
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
