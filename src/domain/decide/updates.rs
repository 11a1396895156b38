//! Updates on the incident: who may post one, and when rollbot reminds people to.
use super::*;

/// The longest update accepted, in characters: a status page update or a Slack section holds it.
pub const MAX_UPDATE_CHARS: usize = 2_000;

pub(super) fn decide_post_update(
    rollback: &Rollback,
    text: &str,
    to_status_page: bool,
    actor: &Actor,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    let id = rollback.id;
    // Updates speak for the incident, to stakeholders and maybe the public: whoever may steer it.
    may_abort(rollback, actor, policy).map_err(|refusal| match refusal {
        unknown @ Refusal::MembershipUnknown { .. } => unknown,
        _ => Refusal::NotAllowedToUpdate { id },
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::UpdateEmpty { id });
    }
    if text.chars().count() > MAX_UPDATE_CHARS {
        return Err(Refusal::UpdateTooLong {
            id,
            max: MAX_UPDATE_CHARS,
        });
    }
    if to_status_page && !page_open(rollback, policy) {
        return Err(Refusal::NoPageToUpdate { id });
    }
    Ok(vec![Event::UpdatePosted {
        by: actor.user.clone(),
        text: text.to_owned(),
        to_status_page,
    }])
}

/// A note on the timeline: anyone who may read the rollback (who took part, or in its
/// channel) may add one, at any time, also after the end: post-mortems are written later.
pub(super) fn decide_add_note(
    rollback: &Rollback,
    text: &str,
    actor: &Actor,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    let id = rollback.id;
    may_read(rollback, actor, policy)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::NoteEmpty { id });
    }
    if text.chars().count() > MAX_UPDATE_CHARS {
        return Err(Refusal::NoteTooLong {
            id,
            max: MAX_UPDATE_CHARS,
        });
    }
    Ok(vec![Event::Noted {
        by: actor.user.clone(),
        text: text.to_owned(),
    }])
}

/// Whether the status page has an incident for this rollback that is not resolved: it opens
/// when a run starts (never for a drill).
pub fn page_open(rollback: &Rollback, policy: &Policy) -> bool {
    policy.status_page && rollback.started_at.is_some() && !rollback.request.drill && rollback.resolved.is_none()
}

/// A reminder timer fired: while the incident is open, the latest reminder whose time has come
/// is recorded (a timer that fires late, after a restart, does not post every missed one).
pub(super) fn decide_remind(
    rollback: &Rollback,
    n: usize,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    let out_of_order = |detail: String| Refusal::OutOfOrder {
        id: rollback.id,
        detail,
    };
    if !rollback.incident_open(policy.status_page) {
        return Err(out_of_order(format!("no reminder in state {}", rollback.state.name())));
    }
    if n <= rollback.reminded {
        return Err(out_of_order(format!("reminder {n} came already")));
    }
    let mut latest = None;
    let mut next = n;
    while let Some(due) = rollback.reminder_due(next) {
        if due > now {
            break;
        }
        latest = Some(next);
        next += 1;
    }
    match latest {
        Some(n) => Ok(vec![Event::Reminded { n }]),
        None => Err(out_of_order(format!("reminder {n} is not due yet"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::{Action, Actor, Event, Refusal, Severity, State};

    fn update(text: &str, to_status_page: bool) -> Action {
        Action::PostUpdate {
            text: text.into(),
            to_status_page,
        }
    }

    #[test]
    fn updates_come_from_whoever_may_steer_the_incident() {
        let mut story = Story::requested(Severity::High, None);
        let id = story.rollback.id;
        story
            .try_act(&actor(REQUESTER), update("Rolling back; next update 10:30", false))
            .unwrap();
        story.try_act(&actor(ON_CALL), update("Approver here", false)).unwrap();
        assert_eq!(
            story.try_act(&actor(OUTSIDER), update("I heard it is fixed", false)),
            Err(Refusal::NotAllowedToUpdate { id })
        );
        story.policy.abort_roles = vec!["team_lead".into()];
        story
            .try_act(&actor(TEAM_LEAD), update("Commander: customers told", false))
            .unwrap();
        assert_eq!(story.rollback.updates.len(), 3);
        assert_eq!(story.rollback.updates[0].text, "Rolling back; next update 10:30");
    }

    #[test]
    fn an_update_says_something_and_reaches_the_page_only_while_it_has_an_incident() {
        let mut story = Story::requested(Severity::High, None);
        let id = story.rollback.id;
        assert_eq!(
            story.try_act(&actor(REQUESTER), update("  \n ", false)),
            Err(Refusal::UpdateEmpty { id })
        );
        assert_eq!(
            story.try_act(&actor(REQUESTER), update(&"x".repeat(2_001), false)),
            Err(Refusal::UpdateTooLong { id, max: 2_000 })
        );
        assert_eq!(
            story.try_act(&actor(REQUESTER), update("before the run", true)),
            Err(Refusal::NoPageToUpdate { id }),
            "the page opens when the run starts"
        );
        let mut started = story.approved().act(&Actor::system(), Action::StartRun);
        started.try_act(&actor(REQUESTER), update("half-way", true)).unwrap();
        assert!(started.rollback.updates[0].to_status_page);
        assert_eq!(started.rollback.updates[0].text, "half-way");
    }

    #[test]
    fn reminders_come_while_the_incident_is_open_and_a_late_timer_posts_one() {
        let mut story = Story::requested(Severity::High, None);
        let id = story.rollback.id;
        assert!(
            matches!(
                story.try_act(&Actor::system(), Action::Remind { n: 1 }),
                Err(Refusal::OutOfOrder { .. })
            ),
            "not due at minute 1"
        );
        story.next_act_at(15);
        story.try_act(&Actor::system(), Action::Remind { n: 1 }).unwrap();
        assert_eq!(story.history.last().unwrap().event, Event::Reminded { n: 1 });
        assert!(
            story.try_act(&Actor::system(), Action::Remind { n: 1 }).is_err(),
            "once"
        );
        // rollbot was down from minute 16 to minute 70: one reminder, the latest due.
        story.next_act_at(70);
        story.try_act(&Actor::system(), Action::Remind { n: 2 }).unwrap();
        assert_eq!(story.history.last().unwrap().event, Event::Reminded { n: 3 });
        assert_eq!(story.rollback.next_reminder().map(|(n, _)| n), Some(4));
        assert_eq!(
            story.try_act(&actor(REQUESTER), Action::Remind { n: 4 }),
            Err(Refusal::SystemOnly)
        );
        let mut cancelled = story.act(&actor(REQUESTER), Action::Cancel);
        cancelled.next_act_at(201);
        assert!(
            cancelled.try_act(&Actor::system(), Action::Remind { n: 4 }).is_err(),
            "a withdrawn request needs no updates (id {id})"
        );
    }

    #[test]
    fn a_failed_rollback_is_open_until_someone_marks_it_resolved_even_without_a_status_page() {
        let mut story = Story::requested(Severity::High, None);
        story.policy.status_page = false;
        let mut failed = story
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, failed_result(1, "boom"));
        assert!(matches!(failed.rollback.state, State::Failed { .. }));
        assert!(failed.rollback.incident_open(false));
        failed.next_act_at(21);
        failed.try_act(&Actor::system(), Action::Remind { n: 1 }).unwrap();
        assert_eq!(
            failed.try_act(&actor(OUTSIDER), Action::MarkResolved),
            Err(Refusal::NotAllowedAtGate { id: failed.rollback.id })
        );
        failed.try_act(&actor(ON_CALL), Action::MarkResolved).unwrap();
        assert!(!failed.rollback.incident_open(false));
        failed.next_act_at(41);
        assert!(failed.try_act(&Actor::system(), Action::Remind { n: 2 }).is_err());
    }

    #[test]
    fn a_success_without_a_status_page_ends_the_incident_and_a_drill_has_no_reminders() {
        let mut story = Story::requested(Severity::High, None);
        story.policy.status_page = false;
        let done = story
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result(""))
            .step(1, ok_result(""));
        assert_eq!(done.rollback.state, State::Succeeded);
        assert!(!done.rollback.incident_open(false));
        assert!(done.rollback.incident_open(true), "with a page: until it is resolved");
        let mut drill = request(Severity::High, None);
        drill.drill = true;
        let events = crate::domain::decide(
            None,
            &Action::Request {
                request: drill,
                plan: plan(),
            },
            &actor(REQUESTER),
            &policy(),
            at(0),
        )
        .unwrap();
        let Event::Requested { reminders, .. } = &events[0] else {
            panic!()
        };
        assert_eq!(reminders.offset_secs(1), None);
    }
}
