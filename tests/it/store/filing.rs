//! Filing new requests: the per-person limit, simultaneous requests, locks and deliveries.
use super::*;

on_both_stores!(
    a_person_files_at_most_their_limit_of_open_rollbacks_even_all_at_once,
    simultaneous_requests_each_keep_their_own_events_effects_and_timers,
    a_request_that_cannot_be_recorded_fails_alone,
    one_open_rollback_holds_its_lock_and_a_delivery_files_once_even_all_at_once,
);

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

    // All in one channel: each card holds a posting slot of its own, a burst of three on the
    // quiet channel (the third a margin later), then one a second.
    let second = |n: usize| at(0) + Duration::seconds(n as i64);
    let ms = Duration::milliseconds;
    let last = second(PEOPLE - 1) - ms(1750);
    assert_eq!(
        store.next_paced_delivery(at(0)).await.unwrap(),
        Some(at(0) + ms(250)),
        "two cards may post now, the third a margin later"
    );
    assert_eq!(
        store.next_paced_delivery(last - ms(1)).await.unwrap(),
        Some(last),
        "and the last one a second after the one before"
    );
    assert_eq!(store.next_paced_delivery(last).await.unwrap(), None);
    let cards = store.claim_outbox(Some(last), CLAIM, 100).await.unwrap();
    assert_eq!(
        cards.len(),
        PEOPLE,
        "every rollback's card, one per rollback: {:?}",
        kinds(&cards)
    );
    assert!(cards.iter().all(|c| c.effect == Effect::PostCard && c.slot_reserved));
    assert_eq!(
        store
            .reserve_channel_slot("C0INCIDENTS", at(0), std::time::Duration::from_secs(1), 1)
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
