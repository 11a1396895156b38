//! Proposals: one open per alert group, starting a rollback from one, moving to PostgreSQL.
use super::*;

on_both_stores!(
    one_proposal_is_open_per_alert_group_and_changes_by_version,
    a_proposal_card_waits_for_the_one_before_it,
    starting_from_a_proposal_records_the_rollback_and_the_proposal_or_neither,
);

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
        store.open_proposals("checkout-api").await.unwrap(),
        std::slice::from_ref(&saved)
    );
    assert_eq!(store.open_proposals("search").await.unwrap(), []);
    let mut other_group = group.clone();
    other_group.group_key = "{}:{alertname=\"LatencyHigh\"}".into();
    assert_eq!(
        store
            .save_proposal(&Proposal::observe(None, &other_group, at(1)).unwrap(), at(1))
            .await
            .unwrap(),
        None,
        "another group of the service while its proposal is open: folded into it, not a second card"
    );
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
    assert_eq!(store.open_proposals("checkout-api").await.unwrap(), []);
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
    other_group.service = "search".into();
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
    other.service = "search".into();
    let next = to
        .save_proposal(&Proposal::observe(None, &other, at(90)).unwrap(), at(90))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, ProposalId(2), "numbering continues after the copied proposals");
}
