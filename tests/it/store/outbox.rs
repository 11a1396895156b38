//! The outbox and timers: order, lanes, claims, collapsing, pacing, retries, pruning.
use super::*;

on_both_stores!(
    one_change_queues_its_messages_in_order_with_one_card_update,
    the_outbox_hands_out_a_rollbacks_effects_in_order_one_lane_at_a_time,
    a_claimed_effect_is_not_handed_out_again_until_its_claim_lapses,
    pending_card_updates_collapse_into_one,
    retries_waits_and_give_ups_are_kept_with_their_reason,
    timers_fire_in_due_order_once_and_die_with_the_wait,
    channel_slots_space_posts_one_gap_apart,
    a_message_that_gives_way_takes_only_a_free_channel,
    a_message_waiting_for_its_slot_comes_back_holding_it,
    a_card_filed_while_its_channel_is_busy_holds_the_next_slot,
    figures_count_what_waits_and_what_exists,
    a_rate_limit_is_not_an_attempt_and_every_replica_sees_it,
    delivered_messages_are_pruned_after_their_retention_and_the_timeline_stays,
    one_message_says_what_is_queued_behind_it_and_all_of_it_is_done_at_once,
);

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
        async move { store.reserve_channel_slot(channel, when, gap, 1).await.unwrap() }
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

    // As Slack allows short bursts: a quiet channel takes three at once, then one a second.
    let burst = |when| {
        let store = store.clone();
        async move { store.reserve_channel_slot("C0BURST", when, gap, 3).await.unwrap() }
    };
    let mut slots = vec![];
    for _ in 0..5 {
        slots.push(burst(now).await);
    }
    let ms = Duration::milliseconds;
    assert_eq!(
        slots,
        [now, now, now + ms(250), now + ms(1250), now + ms(2250)],
        "three at once (the third a margin later, as Slack counts from the first arrival), then one a gap"
    );
    let later = now + Duration::seconds(5);
    assert_eq!(
        [burst(later).await, burst(later).await, burst(later).await],
        [later, later, later + ms(250)],
        "the credit comes back a post a gap, up to the burst"
    );
    assert_eq!(
        burst(now + Duration::seconds(60)).await,
        now + Duration::seconds(60),
        "after a quiet minute, a burst again"
    );
    assert_eq!(burst(now + Duration::seconds(60)).await, now + Duration::seconds(60));

    // Cards take their slots one a gap when they are filed; a message reserving later never
    // goes ahead of a slot already given (burst credit only counts for the future), or the
    // channel would see two posts at once where Slack's bucket has no credit left.
    let mixed = |when, burst| {
        let store = store.clone();
        async move { store.reserve_channel_slot("C0MIXED", when, gap, burst).await.unwrap() }
    };
    let mut cards = vec![];
    for _ in 0..5 {
        cards.push(mixed(now, 1).await);
    }
    assert_eq!(cards.last(), Some(&(now + Duration::seconds(4))));
    let thread = mixed(now + ms(500), 3).await;
    assert!(
        thread >= now + Duration::seconds(4),
        "reserved after five cards (the last at +4 s), it goes no earlier than +4 s: {}",
        (thread - now).num_milliseconds()
    );
}
/// A message that gives way (a proposal's card) takes a slot only from a free channel, and
/// never pushes back what is reserved.
async fn a_message_that_gives_way_takes_only_a_free_channel(store: Store) {
    let gap = std::time::Duration::from_secs(1);
    let second = |n: i64| at(0) + Duration::seconds(n);
    let idle = |when| {
        let store = store.clone();
        async move { store.take_idle_channel_slot("C0INCIDENTS", when, gap).await.unwrap() }
    };
    assert_eq!(idle(second(0)).await, None, "a free channel: post now");
    assert_eq!(idle(second(0)).await, Some(second(1)), "busy until its slot is over");
    assert_eq!(
        store
            .reserve_channel_slot("C0INCIDENTS", second(0), gap, 1)
            .await
            .unwrap(),
        second(1),
        "a rollback's message still gets the next slot"
    );
    assert_eq!(idle(second(1)).await, Some(second(2)), "and goes first");
    assert_eq!(idle(second(2)).await, None);
    assert_eq!(
        store
            .reserve_channel_slot("C0INCIDENTS", second(2), gap, 1)
            .await
            .unwrap(),
        second(3),
        "taking a free slot spaces what follows"
    );

    let created = store
        .create_unlimited(
            &request("C0INCIDENTS", false).history,
            &effects(vec![Effect::NotifyLadder]),
        )
        .await
        .unwrap();
    let claimed = store.claim_outbox(Some(second(3)), CLAIM, 10).await.unwrap();
    let waiting = claimed.iter().find(|i| i.effect == Effect::NotifyLadder).unwrap();
    store.outbox_wait_for_channel(waiting.id, second(5)).await.unwrap();
    assert_eq!(
        store.next_paced_delivery(second(3)).await.unwrap(),
        Some(second(5)),
        "waiting for the channel is paced, not a failure"
    );
    let again = store.claim_outbox(Some(second(5)), CLAIM, 10).await.unwrap();
    let again = again.iter().find(|i| i.id == waiting.id).unwrap();
    assert_eq!(again.attempts, waiting.attempts, "not an attempt");
    assert_eq!(
        store
            .take_idle_channel_slot("C0INCIDENTS", second(5), gap)
            .await
            .unwrap(),
        None,
        "and it reserved nothing: the channel is free when it looks again"
    );
    let _ = created;
}
/// A new rollback's card takes its channel's next posting slot when it is filed, so the
/// delivery worker only has to post it; what follows the card waits with it.
async fn a_card_filed_while_its_channel_is_busy_holds_the_next_slot(store: Store) {
    let gap = std::time::Duration::from_secs(1);
    let ms = Duration::milliseconds;
    // A burst spends the channel's credit: the next post is due a gap after the credit ran out.
    for _ in 0..3 {
        store.reserve_channel_slot("C0INCIDENTS", at(0), gap, 3).await.unwrap();
    }
    let next = at(0) + ms(1250);
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
        Some(next),
        "the busy channel's card waits for the next slot"
    );
    assert!(
        store
            .claim_outbox(Some(next - ms(1)), CLAIM, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let card = store.claim_outbox(Some(next), CLAIM, 10).await.unwrap();
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
        store.reserve_channel_slot("C0INCIDENTS", at(0), gap, 1).await.unwrap(),
        at(0) + Duration::seconds(4),
        "the slot is taken"
    );
    store.outbox_delivered(card[0].id, next).await.unwrap();
    assert_eq!(
        kinds(&store.claim_outbox(Some(next), CLAIM, 10).await.unwrap()),
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

/// A step message that takes along what queued behind it in its lane: it sees exactly that lane,
/// in order; the merged rows are done with it (and pruned like it), the rest still goes out.
async fn one_message_says_what_is_queued_behind_it_and_all_of_it_is_done_at_once(store: Store) {
    let story = request("C0INCIDENTS", false);
    let page = Effect::PageUpdate {
        update: rollbot::statuspage::PageUpdate::Opened,
        message: None,
    };
    let caused = effects(vec![
        Effect::StepFinished { index: 0 },
        page.clone(),
        Effect::StepFinished { index: 1 },
        Effect::StepFinished { index: 2 },
        Effect::RunFinished,
    ]);
    store.create_unlimited(&story.history, &caused).await.unwrap();
    let other = request("C0INCIDENTS", false);
    store
        .create_unlimited(&other.history, &effects(vec![Effect::StepFinished { index: 0 }]))
        .await
        .unwrap();
    let claimed = store.claim_outbox(Some(at(0)), CLAIM, 10).await.unwrap();
    let head = claimed
        .iter()
        .find(|i| i.effect == Effect::StepFinished { index: 0 })
        .unwrap();
    let behind = store.outbox_queued_behind(head.id, 10).await.unwrap();
    let kinds: Vec<&Effect> = behind.iter().map(|(_, e)| e).collect();
    assert_eq!(
        kinds,
        [
            &Effect::StepFinished { index: 1 },
            &Effect::StepFinished { index: 2 },
            &Effect::RunFinished
        ],
        "its own lane only (not the page's, not another rollback's), in order"
    );
    let merged = [behind[0].0, behind[1].0];
    store.outbox_delivered_merging(head.id, &merged, at(1)).await.unwrap();
    let mut next = vec![];
    loop {
        let claimed = store.claim_outbox(Some(at(2)), CLAIM, 10).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        for item in claimed {
            next.push(item.effect.kind());
            store.outbox_delivered(item.id, at(2)).await.unwrap();
        }
    }
    next.sort();
    assert_eq!(
        next,
        ["page_update", "run_finished", "step_finished"],
        "the merged steps never go out again; the run's end, the page and the other rollback's step do"
    );
    assert_eq!(
        store.prune_outbox(at(3), 100).await.unwrap(),
        6,
        "merged rows are pruned as delivered ones"
    );
}
