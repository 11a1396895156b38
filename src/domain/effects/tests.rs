use super::*;
use crate::domain::fixtures::{Story, ok_result};
use crate::domain::{Action, Actor, PlanStep, Severity};

/// The kinds of effect the last `n` events of `story` cause, as the engine would queue them.
fn caused(story: &Story, n: usize, reach: &Reach) -> (Vec<&'static str>, usize, bool) {
    let events: Vec<Event> = story.history[story.history.len() - n..]
        .iter()
        .map(|r| r.event.clone())
        .collect();
    let awaited = n < story.history.len() && {
        let before = Rollback::from_history(story.rollback.id, &story.history[..story.history.len() - n]).unwrap();
        before.state == State::AwaitingApproval
    };
    let consequences = consequences_of(awaited, &story.rollback, &events, reach);
    let kinds = consequences.effects_to_queue().map(Effect::kind).collect();
    (kinds, consequences.timers.len(), consequences.cancel_timers)
}

#[test]
fn each_event_causes_what_people_and_timers_need() {
    let stakeholders = [ChannelId("C0STAKE".into())];
    let reach = Reach {
        notify: &stakeholders,
        status_page: true,
        resolve_after: Some(std::time::Duration::from_secs(1800)),
        change_events: false,
    };
    let system = Actor::system();
    let requested = Story::requested(Severity::High, Some("bad deploy"));
    let (kinds, timers, _) = caused(&requested, 1, &reach);
    assert_eq!(
        kinds,
        ["post_card", "plan_in_thread"],
        "the card, then what it has no room for"
    );
    assert!(timers >= 2, "escalation levels and the expiry are set: {timers}");

    let approved = requested.approved();
    assert_eq!(
        caused(&approved, 1, &reach),
        (vec!["update_card"], 1, true),
        "approval voids the ladder's timers; the update reminder is set again"
    );

    let started = approved.act(&system, Action::StartRun);
    assert_eq!(
        caused(&started, 1, &reach).0,
        ["announce", "announce", "page_update", "update_card"],
        "the start is announced in the thread and to stakeholders, and the page opens"
    );
    let done = started.step(0, ok_result("")).step(1, ok_result(""));
    let (kinds, timers, _) = caused(&done, 3, &reach);
    assert_eq!(kinds[0], "step_finished");
    assert!(
        !kinds.contains(&"step_started"),
        "a step costs one thread message, when it ends; its start is on the card: {kinds:?}"
    );
    assert!(kinds.contains(&"page_update") && kinds.iter().filter(|k| **k == "update_card").count() == 1);
    assert_eq!(timers, 1, "the watch window's resolve");

    let critical = Story::requested(Severity::Critical, None);
    assert_eq!(
        caused(&critical, 1, &reach).0,
        ["post_card", "plan_in_thread", "notify_ladder"]
    );
}

#[test]
fn a_reminder_asks_only_who_has_not_updated_and_an_update_reaches_everyone_it_should() {
    let stakeholders = [ChannelId("C0STAKE".into())];
    let reach = Reach {
        notify: &stakeholders,
        status_page: true,
        resolve_after: None,
        change_events: false,
    };
    let mut story = Story::requested(Severity::High, None)
        .approved()
        .act(&Actor::system(), Action::StartRun);
    story.next_act_at(15);
    let reminded = story.act(&Actor::system(), Action::Remind { n: 1 });
    assert_eq!(
        caused(&reminded, 1, &reach),
        (vec!["remind"], 1, false),
        "the next reminder is set"
    );
    let mut updated = reminded.act(
        &crate::domain::fixtures::actor(crate::domain::fixtures::REQUESTER),
        Action::PostUpdate {
            text: "Rolled back to 41".into(),
            to_status_page: true,
        },
    );
    assert_eq!(
        caused(&updated, 1, &reach).0,
        ["update", "update", "page_update", "update_card"],
        "the thread, the stakeholders' channel, the status page, and the card's last-update line"
    );
    updated.next_act_at(30);
    let quiet = updated.act(&Actor::system(), Action::Remind { n: 2 });
    assert_eq!(
        caused(&quiet, 1, &reach),
        (vec![], 1, false),
        "an update since the last mark: no reminder posted, the cadence goes on"
    );
}

#[test]
fn a_drill_stays_in_its_thread() {
    let stakeholders = [ChannelId("C0STAKE".into())];
    let reach = Reach {
        notify: &stakeholders,
        status_page: true,
        resolve_after: None,
        change_events: false,
    };
    let mut drill = Story::requested(Severity::High, None).approved();
    drill.rollback.request.drill = true;
    let started = drill.act(&Actor::system(), Action::StartRun);
    assert_eq!(
        caused(&started, 1, &reach).0,
        ["announce", "update_card"],
        "no stakeholder channel, no status page"
    );
}

/// A run of five steps whose third failed, its thread queued and not yet posted.
fn five_steps_third_failed() -> Story {
    let mut plan = crate::domain::fixtures::plan();
    let step = plan.steps[0].clone();
    plan.steps = (0..5)
        .map(|i| PlanStep {
            name: format!("Step {i}"),
            ..step.clone()
        })
        .collect();
    Story::requested_plan(crate::domain::fixtures::policy(), Severity::Critical, None, plan)
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result("one"))
        .step(1, ok_result("two"))
        .step(2, crate::domain::fixtures::failed_result(1, "three"))
}

#[test]
fn a_start_announcement_far_behind_a_run_that_went_through_says_the_whole_run() {
    let mut plan = crate::domain::fixtures::plan();
    let step = plan.steps[0].clone();
    plan.steps = (0..3)
        .map(|i| PlanStep {
            name: format!("Step {i}"),
            ..step.clone()
        })
        .collect();
    let story = Story::requested_plan(crate::domain::fixtures::policy(), Severity::Critical, None, plan)
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result("one"))
        .step(1, ok_result("two"))
        .step(2, ok_result("three"));
    assert_eq!(story.rollback.state, crate::domain::State::Succeeded);
    let stakeholders = Some(crate::domain::ChannelId("C0STAKE".into()));
    let end = |channel: Option<crate::domain::ChannelId>| Effect::Announce {
        which: Announcement::Succeeded,
        channel,
    };
    let behind = [
        (11, Effect::UpdateCard),
        (12, Effect::StepFinished { index: 0 }),
        (13, Effect::StepFinished { index: 1 }),
        (14, Effect::StepFinished { index: 2 }),
        (15, end(None)),
        (16, end(stakeholders.clone())),
        (
            17,
            Effect::Announce {
                which: Announcement::CustomerNotice,
                channel: None,
            },
        ),
        (18, Effect::UpdateCard),
    ];
    assert_eq!(
        run_said_together(&story.rollback, &behind),
        Some(RunSaidTogether {
            steps: vec![0, 1, 2],
            notice: true,
            merged: vec![12, 13, 14, 15, 17],
        }),
        "card updates and the stakeholders' channel stay queued: they are posts of their own"
    );
    assert_eq!(
        run_said_together(&story.rollback, &behind[..4]),
        None,
        "no fold before the end is queued: the start is announced as it was"
    );
    let decided_between = [
        (12, Effect::StepFinished { index: 0 }),
        (
            13,
            Effect::StepDecided {
                index: 1,
                by: crate::domain::UserId("U0BOB".into()),
                retry: true,
            },
        ),
        (14, end(None)),
    ];
    assert_eq!(run_said_together(&story.rollback, &decided_between), None);
    let failed = five_steps_third_failed();
    assert_eq!(
        run_said_together(&failed.rollback, &behind),
        None,
        "a run that did not go through keeps every message"
    );
}

#[test]
fn a_thread_behind_says_the_steps_that_passed_in_one_message_and_a_failure_on_its_own() {
    let story = five_steps_third_failed();
    let behind = [
        (11, Effect::UpdateCard),
        (12, Effect::StepStarted { index: 1 }),
        (13, Effect::StepFinished { index: 1 }),
        (14, Effect::StepFinished { index: 2 }),
        (15, Effect::StepFinished { index: 3 }),
    ];
    assert_eq!(
        steps_said_together(&story.rollback, 0, &behind),
        (vec![0, 1], vec![12, 13]),
        "steps 1 and 2 in one message; the card update stays queued, the failure is posted next"
    );
    assert_eq!(
        steps_said_together(&story.rollback, 2, &behind[4..]),
        (vec![2], vec![]),
        "a failed step takes nothing along"
    );
    let paused_between = [
        (13, Effect::Paused { index: 1 }),
        (14, Effect::StepFinished { index: 1 }),
    ];
    assert_eq!(
        steps_said_together(&story.rollback, 0, &paused_between),
        (vec![0], vec![]),
        "nothing goes ahead of a pause: the thread keeps the order things happened"
    );
    assert_eq!(
        steps_said_together(&story.rollback, 0, &[]),
        (vec![0], vec![]),
        "a current thread: one message a step"
    );
}
