//! What a change causes besides its events, in the core's words: the effects a worker turns
//! into Slack messages and status page updates, the timers rollbot sets for itself, and the
//! conditions of the write (leases, guards). `consequences_of` is the pure rule from events to
//! effects; the store writes what it returns as rows and knows nothing of wording.
use super::proposal::ProposalId;
use super::{ChannelId, Event, Rollback, State, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Announcement {
    Started,
    Succeeded,
    Failed,
    Cancelled,
    /// Ready-to-send words for customers and support, posted in the thread when it succeeds.
    CustomerNotice,
    /// The status page's words, plain text, for the public.
    PageOpened,
    PageMonitoring,
    PageStillInvestigating,
    PageResolved,
}

impl Announcement {
    pub const ALL: [Announcement; 9] = [
        Announcement::Started,
        Announcement::Succeeded,
        Announcement::Failed,
        Announcement::Cancelled,
        Announcement::CustomerNotice,
        Announcement::PageOpened,
        Announcement::PageMonitoring,
        Announcement::PageStillInvestigating,
        Announcement::PageResolved,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Announcement::Started => "started",
            Announcement::Succeeded => "succeeded",
            Announcement::Failed => "failed",
            Announcement::Cancelled => "cancelled",
            Announcement::CustomerNotice => "customer_notice",
            Announcement::PageOpened => "page_opened",
            Announcement::PageMonitoring => "page_monitoring",
            Announcement::PageStillInvestigating => "page_still_investigating",
            Announcement::PageResolved => "page_resolved",
        }
    }
}

/// What happened that the page must reflect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageUpdate {
    /// The rollback started: open an incident as `identified`, components impacted.
    Opened,
    /// It succeeded: `monitoring`.
    Monitoring,
    /// It failed: the incident stays open with an update.
    StillInvestigating,
    /// Someone (or the watch window) marked it resolved: `resolved`, components operational.
    Resolved,
    /// A runbook's `statuspage` step set this status, with its own words.
    Set(PageStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    Investigating,
    Identified,
    Monitoring,
}

impl PageStatus {
    pub fn parse(text: &str) -> Option<PageStatus> {
        match text {
            "investigating" => Some(PageStatus::Investigating),
            "identified" => Some(PageStatus::Identified),
            "monitoring" => Some(PageStatus::Monitoring),
            _ => None,
        }
    }
}

impl PageUpdate {
    pub fn status(self) -> &'static str {
        match self {
            PageUpdate::Opened | PageUpdate::StillInvestigating => "identified",
            PageUpdate::Monitoring => "monitoring",
            PageUpdate::Resolved => "resolved",
            PageUpdate::Set(PageStatus::Investigating) => "investigating",
            PageUpdate::Set(PageStatus::Identified) => "identified",
            PageUpdate::Set(PageStatus::Monitoring) => "monitoring",
        }
    }
}

/// Something that must reach the outside world because of a change, delivered by a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    PostCard,
    /// In the thread, first: the plan's steps the card has no room for (nothing when it has).
    PlanInThread,
    /// Re-render the card from current state; several pending updates collapse into one.
    UpdateCard,
    /// No longer queued: a step's start is on the card. Rows queued before say nothing.
    StepStarted {
        index: usize,
    },
    StepFinished {
        index: usize,
    },
    /// In the thread: how the rollback ended (succeeded, failed, expired, aborted).
    RunFinished,
    /// A private line to one person, already worded by the edge.
    Ephemeral {
        channel: ChannelId,
        user: UserId,
        text: String,
    },
    /// In the thread: the next ladder level joined, with its people mentioned.
    Escalated {
        level: usize,
    },
    /// In the thread: the run waits for a person before step `index`.
    Paused {
        index: usize,
    },
    /// In the thread: someone confirmed or passed step `index`.
    GateCleared {
        index: usize,
        by: UserId,
    },
    /// In the thread: a rollback that needed no approval started; everyone on the ladder is told.
    NotifyLadder,
    /// In the thread: the process running step `index` stopped; people must decide.
    Interrupted {
        index: usize,
    },
    /// In the thread: `by` asked to abort while step `index` runs; it is being stopped.
    AbortRequested {
        index: usize,
        by: UserId,
    },
    /// A communication template: into the card's thread, also shown in the channel (`None`), or
    /// as a message of its own in another channel.
    Announce {
        which: Announcement,
        channel: Option<ChannelId>,
    },
    /// An update for the status page, in its own delivery lane. `message`: the words of a
    /// runbook's `statuspage` step (lifecycle updates use the templates).
    PageUpdate {
        update: PageUpdate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A runbook's `notify` step: text into the thread (`None`) or a channel.
    Notify {
        channel: Option<ChannelId>,
        text: String,
    },
    /// In the thread: a drill ended; how long each part of the path took.
    DrillSummary,
    /// In the thread: the status page could not be updated, so people must do it by hand.
    PageTrouble {
        update: PageUpdate,
        error: String,
    },
    /// In the thread: someone chose to retry (or skip) an interrupted step.
    StepDecided {
        index: usize,
        by: UserId,
        retry: bool,
    },
    /// Post or re-render a proposal's card from its current state; pending ones collapse.
    ProposalCard {
        proposal: ProposalId,
    },
    /// In the thread, to the point of contact: time to post an update (reminder `n`).
    Remind {
        n: usize,
    },
    /// Update `index` of the rollback: into the thread (`None`) or a stakeholders' channel.
    Update {
        index: usize,
        channel: Option<ChannelId>,
    },
    /// On the card: step `index` still runs; its latest output (secrets scrubbed) as of `at`.
    /// Queued by the process running it, never by a decision; stale once the step ended.
    StepProgress {
        index: usize,
        output: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// In the thread: fallback `index` of the rollback was requested as a rollback of its own.
    FallbackRequested {
        index: usize,
    },
    /// In the thread: an attempt that had lost the run ended; what it did is on the record,
    /// and it is not the step's result.
    LateResult {
        index: usize,
        result: Box<super::StepResult>,
    },
    /// In the thread, once the rollback ended: its post-incident checklists, in one message.
    Checklists,
    /// A PagerDuty change event: the rollback started (`ended: false`) or ended, in its own lane.
    ChangeEvent {
        ended: bool,
    },
    /// Redraw the rollback's checklists with what is ticked now, in `message` (the message
    /// they were ticked in, as Slack names it), so everyone sees the same boxes.
    ChecklistChanged {
        message: String,
    },
}

impl Effect {
    /// Effects of one rollback are delivered in order within their lane; lanes do not wait
    /// for each other.
    pub fn lane(&self) -> String {
        match self {
            Effect::PageUpdate { .. } => "statuspage".into(),
            Effect::ChangeEvent { .. } => "pagerduty".into(),
            // Proposals have no rollback: each keeps its messages in order in a lane of its own.
            Effect::ProposalCard { proposal } => format!("proposal-{}", proposal.0),
            _ => "slack".into(),
        }
    }

    /// Effects that render current state: a pending, unclaimed one makes another redundant.
    pub fn collapses(&self) -> bool {
        matches!(self, Effect::UpdateCard | Effect::ProposalCard { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Effect::PostCard => "post_card",
            Effect::PlanInThread => "plan_in_thread",
            Effect::UpdateCard => "update_card",
            Effect::StepStarted { .. } => "step_started",
            Effect::StepFinished { .. } => "step_finished",
            Effect::RunFinished => "run_finished",
            Effect::Ephemeral { .. } => "ephemeral",
            Effect::Escalated { .. } => "escalated",
            Effect::Paused { .. } => "paused",
            Effect::GateCleared { .. } => "gate_cleared",
            Effect::NotifyLadder => "notify_ladder",
            Effect::Interrupted { .. } => "interrupted",
            Effect::AbortRequested { .. } => "abort_requested",
            Effect::Announce { .. } => "announce",
            Effect::PageUpdate { .. } => "page_update",
            Effect::Notify { .. } => "notify",
            Effect::DrillSummary => "drill_summary",
            Effect::PageTrouble { .. } => "page_trouble",
            Effect::StepDecided { .. } => "step_decided",
            Effect::ProposalCard { .. } => "proposal_card",
            Effect::LateResult { .. } => "late_result",
            Effect::Remind { .. } => "remind",
            Effect::Update { .. } => "update",
            Effect::FallbackRequested { .. } => "fallback_requested",
            Effect::StepProgress { .. } => "step_progress",
            Effect::Checklists => "checklists",
            Effect::ChangeEvent { .. } => "change_event",
            Effect::ChecklistChanged { .. } => "checklist_changed",
        }
    }
}

/// What one thread message about finished step `head` may say besides, when the lane fell behind
/// Slack's pace and more is queued behind it (`behind`, in order): the steps that passed right
/// after it, in one message, so a thread never trails its run by a message a step. Returns the
/// steps the message is about (`head` first) and the queued effects it says.
///
/// A step that did not pass is posted on its own, and so is everything else (a pause, an
/// announcement): merging stops there, so the thread keeps the order things happened. A step's
/// start (queued before starts went to the card only) says nothing and goes along; card updates
/// are stepped over, since they render the current state whenever they go.
pub fn steps_said_together(rollback: &Rollback, head: usize, behind: &[(i64, Effect)]) -> (Vec<usize>, Vec<i64>) {
    let passed = |index: usize| rollback.last_result(index).is_some_and(|r| r.outcome.passed());
    let mut steps = vec![head];
    let mut merged = vec![];
    if !passed(head) {
        return (steps, merged);
    }
    for (id, effect) in behind {
        match effect {
            Effect::StepStarted { .. } => merged.push(*id),
            Effect::UpdateCard | Effect::StepProgress { .. } => {}
            Effect::StepFinished { index } if passed(*index) && !steps.contains(index) => {
                steps.push(*index);
                merged.push(*id);
            }
            _ => break,
        }
    }
    (steps, merged)
}

/// What a start announcement that waited for the channel may say besides, once the run it
/// announces has succeeded meanwhile: the steps, the end and the customer notice queued behind
/// it, so that a lane behind Slack's pace costs one post per rollback and the channel never
/// reads "in progress" after the run is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSaidTogether {
    /// The steps that passed, in the order they are queued.
    pub steps: Vec<usize>,
    /// The customer notice rides along (it is queued right after the end).
    pub notice: bool,
    /// The queued effects the one message says.
    pub merged: Vec<i64>,
}

/// `None` unless `rollback` succeeded and its end announcement is queued behind (`behind`, in
/// order), with nothing between that must be read on its own (a failure, a pause, a decision):
/// then only a run that went straight through is folded. Card updates, live progress and posts
/// to other channels are stepped over and stay queued.
pub fn run_said_together(rollback: &Rollback, behind: &[(i64, Effect)]) -> Option<RunSaidTogether> {
    if rollback.state != crate::domain::State::Succeeded {
        return None;
    }
    let passed = |index: usize| rollback.last_result(index).is_some_and(|r| r.outcome.passed());
    let mut fold = RunSaidTogether {
        steps: vec![],
        notice: false,
        merged: vec![],
    };
    let mut ended = false;
    for (id, effect) in behind {
        match effect {
            Effect::UpdateCard | Effect::StepProgress { .. } => {}
            Effect::Announce { channel: Some(_), .. } => {}
            Effect::StepStarted { .. } if !ended => fold.merged.push(*id),
            Effect::StepFinished { index } if !ended && passed(*index) && !fold.steps.contains(index) => {
                fold.steps.push(*index);
                fold.merged.push(*id);
            }
            Effect::Announce {
                which: Announcement::Succeeded,
                channel: None,
            } if !ended => {
                ended = true;
                fold.merged.push(*id);
            }
            Effect::Announce {
                which: Announcement::CustomerNotice,
                channel: None,
            } if ended => {
                fold.notice = true;
                fold.merged.push(*id);
                break;
            }
            _ => break,
        }
    }
    ended.then_some(fold)
}

/// Something rollbot itself must do to a rollback at a given time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimerAction {
    Escalate {
        level: usize,
    },
    Expire,
    /// The watch window after success ended: resolve the status page incident.
    Resolve,
    /// Reminder `n` of the update cadence.
    Remind {
        n: usize,
    },
    /// Run the preflight checks and record what they found.
    Preflight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub action: TimerAction,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// Everything a change causes besides its events, written in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consequences {
    pub effects: Vec<Effect>,
    pub timers: Vec<Timer>,
    /// The rollback no longer awaits approval: its pending timers are void.
    pub cancel_timers: bool,
    /// The writer runs the rollback's steps from this change on. Whatever the change, a
    /// rollback it leaves not running holds no lease any more.
    pub lease: Option<Lease>,
    /// What the write needs besides the expected version.
    pub guard: Guard,
}

impl Consequences {
    /// The effects to queue, in order: of those that render current state, the first of each
    /// kind in a lane stands for the rest, since a later one would render the same.
    pub(crate) fn effects_to_queue(&self) -> impl Iterator<Item = &Effect> {
        let mut rendering: Vec<(&'static str, String)> = vec![];
        self.effects.iter().filter(move |effect| {
            if !effect.collapses() {
                return true;
            }
            let key = (effect.kind(), effect.lane());
            let first = !rendering.contains(&key);
            rendering.push(key);
            first
        })
    }

    /// Adds what a later change in the same write causes, after what this one caused.
    pub fn then(&mut self, later: Consequences) {
        self.effects.extend(later.effects);
        self.timers.extend(later.timers);
        self.cancel_timers |= later.cancel_timers;
        self.lease = later.lease.or(self.lease.take());
        if later.guard != Guard::Version {
            self.guard = later.guard;
        }
    }
}

/// Who runs a rollback's steps, and for how long without renewing: past that, the run counts
/// as abandoned. Taken with the write that claims the run; that write's version becomes the
/// lease's epoch, so every claim of a run, even by the same process, has an epoch of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub length: std::time::Duration,
    /// The time the lease counts from: `None` is the database's clock (see `Clock::store_time`).
    pub at: Option<DateTime<Utc>>,
}

/// What a lease holder presents with each write it makes: a write whose fence no longer
/// matches the rollback's lease is refused, however the rollback's version moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub epoch: i64,
}

/// What must hold, besides the version, for a change to be written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Guard {
    /// Only the version: people's clicks and rollbot's timers.
    #[default]
    Version,
    /// The writer still holds the run's lease at this epoch: the executor's writes.
    Holder(Fence),
    /// The run's lease really lapsed, by the store's clock (`at`, `None` for the database's):
    /// an interruption. A run that never took a lease counts from its last change plus `grace`.
    Lapsed {
        grace: std::time::Duration,
        at: Option<DateTime<Utc>>,
    },
}

/// Where news of a rollback goes besides its card, from the configuration.
pub struct Reach<'a> {
    pub notify: &'a [ChannelId],
    pub status_page: bool,
    pub resolve_after: Option<std::time::Duration>,
    /// PagerDuty hears of each rollback's start and end as change events.
    pub change_events: bool,
}

/// What recording `events` causes besides the events: messages to deliver, timers to set,
/// timers to void. `after` is the rollback with the events applied. Pure: the same events on
/// the same rollback always cause the same effects.
pub fn consequences_of(awaited_approval: bool, after: &Rollback, events: &[Event], reach: &Reach) -> Consequences {
    // A drill stays in its thread: stakeholders' channels and the public page never hear of it.
    let drill = after.request.drill;
    let notify = if drill { &[] } else { reach.notify };
    let status_page = reach.status_page && !drill;
    let page = |effects: &mut Vec<Effect>, update: PageUpdate| {
        if status_page {
            effects.push(Effect::PageUpdate { update, message: None });
        }
    };
    let change = |effects: &mut Vec<Effect>, ended: bool| {
        if reach.change_events && !drill {
            effects.push(Effect::ChangeEvent { ended });
        }
    };
    let mut effects = vec![];
    let announce = |effects: &mut Vec<Effect>, which: Announcement| {
        effects.push(Effect::Announce { which, channel: None });
        effects.extend(notify.iter().map(|c| Effect::Announce {
            which,
            channel: Some(c.clone()),
        }));
    };
    let mut timers = vec![];
    let mut card_changed = false;
    for event in events {
        match event {
            Event::Requested { .. } => {
                effects.push(Effect::PostCard);
                effects.push(Effect::PlanInThread);
                timers.extend(next_reminder(after));
                if after.approvals_required == 0 {
                    if !after.ladder.is_empty() {
                        effects.push(Effect::NotifyLadder);
                    }
                } else {
                    // Checked at once, before anyone approves; void once approved.
                    timers.push(Timer {
                        action: TimerAction::Preflight,
                        due_at: after.requested_at,
                    });
                    for (index, level) in after.ladder.iter().enumerate() {
                        let due_at = after.requested_at + chrono::Duration::seconds(level.after_secs as i64);
                        timers.push(Timer {
                            action: TimerAction::Escalate { level: index + 1 },
                            due_at,
                        });
                    }
                    if let Some(due_at) = after.expires_at {
                        timers.push(Timer {
                            action: TimerAction::Expire,
                            due_at,
                        });
                    }
                }
            }
            // The card shows the running step (it changed, so it is updated); the thread hears
            // of the step when it ends.
            Event::StepStarted { .. } => {}
            Event::StepFinished { index, .. } => effects.push(Effect::StepFinished { index: *index }),
            Event::LateResult { index, result } => effects.push(Effect::LateResult {
                index: *index,
                result: Box::new(result.clone()),
            }),
            Event::Succeeded => {
                announce(&mut effects, Announcement::Succeeded);
                effects.push(Effect::Announce {
                    which: Announcement::CustomerNotice,
                    channel: None,
                });
                page(&mut effects, PageUpdate::Monitoring);
                if let (true, Some(window), Some(done)) = (status_page, reach.resolve_after, after.finished_at) {
                    let due_at = done + chrono::Duration::from_std(window).unwrap_or_default();
                    timers.push(Timer {
                        action: TimerAction::Resolve,
                        due_at,
                    });
                }
            }
            Event::Failed { .. } => {
                announce(&mut effects, Announcement::Failed);
                page(&mut effects, PageUpdate::StillInvestigating);
            }
            // Who aborted, and what ran and what did not: the system may be half-way.
            Event::Aborted { .. } => {
                effects.push(Effect::RunFinished);
                announce(&mut effects, Announcement::Failed);
                page(&mut effects, PageUpdate::StillInvestigating);
            }
            Event::Resolved { .. } => page(&mut effects, PageUpdate::Resolved),
            Event::Cancelled { by } => {
                // Someone else withdrew the request: its requester is told, by name.
                if *by != after.request.requester {
                    effects.push(Effect::RunFinished);
                }
                announce(&mut effects, Announcement::Cancelled)
            }
            Event::Rejected { .. } => effects.push(Effect::RunFinished),
            // The first start of a run; a resumed run (after a gate) is not news.
            Event::RunStarted if after.steps.is_empty() => {
                announce(&mut effects, Announcement::Started);
                page(&mut effects, PageUpdate::Opened);
                change(&mut effects, false);
            }
            Event::Expired => effects.push(Effect::RunFinished),
            Event::Escalated { level, .. } => effects.push(Effect::Escalated { level: *level }),
            Event::Paused { index } => effects.push(Effect::Paused { index: *index }),
            Event::Confirmed { index, by } | Event::Continued { index, by } => effects.push(Effect::GateCleared {
                index: *index,
                by: by.clone(),
            }),
            Event::Interrupted { step: Some(index) } => effects.push(Effect::Interrupted { index: *index }),
            Event::AbortRequested { index, by } => effects.push(Effect::AbortRequested {
                index: *index,
                by: by.clone(),
            }),
            Event::Retried { index, by } => effects.push(Effect::StepDecided {
                index: *index,
                by: by.clone(),
                retry: true,
            }),
            Event::Skipped { index, by } => effects.push(Effect::StepDecided {
                index: *index,
                by: by.clone(),
                retry: false,
            }),
            Event::Reminded { n } => {
                // Whoever updated since the last mark is not nagged; the cadence goes on.
                if !after.updated_since_previous_mark(*n) {
                    effects.push(Effect::Remind { n: *n });
                }
                timers.extend(next_reminder(after));
                continue;
            }
            Event::UpdatePosted {
                to_status_page, text, ..
            } => {
                let index = after.updates.len().saturating_sub(1);
                effects.push(Effect::Update { index, channel: None });
                effects.extend(notify.iter().map(|c| Effect::Update {
                    index,
                    channel: Some(c.clone()),
                }));
                if *to_status_page {
                    let status = if after.state == State::Succeeded {
                        PageStatus::Monitoring
                    } else {
                        PageStatus::Identified
                    };
                    if status_page {
                        effects.push(Effect::PageUpdate {
                            update: PageUpdate::Set(status),
                            message: Some(text.clone()),
                        });
                    }
                }
            }
            Event::FallbackRequested { .. } => effects.push(Effect::FallbackRequested {
                index: after.fallbacks.len().saturating_sub(1),
            }),
            Event::Approved { .. }
            | Event::RunStarted
            | Event::Interrupted { step: None }
            | Event::PreflightChecked { .. } => {}
            // Telling Slack that Slack refused a message would only fail again.
            // A note is for the timeline and the post-mortem: the one who wrote it is answered.
            // A tick redraws its checklist, queued by the edge with the message it came from.
            Event::Undeliverable { .. }
            | Event::PageUpdated { .. }
            | Event::Noted { .. }
            | Event::ChecklistTicked { .. } => continue,
        }
        card_changed |= match event {
            Event::Requested { .. } => false,
            Event::PreflightChecked { checks } => {
                crate::domain::preflight::shown(after.plan.preflight.len(), Some(checks))
            }
            _ => true,
        };
        let ends = matches!(
            event,
            Event::Succeeded
                | Event::Failed { .. }
                | Event::Aborted { .. }
                | Event::Cancelled { .. }
                | Event::Expired
                | Event::Rejected { .. }
        );
        let ran = matches!(event, Event::Succeeded | Event::Failed { .. } | Event::Aborted { .. });
        if ran {
            change(&mut effects, true);
        }
        if ran && !after.request.checklists.is_empty() {
            effects.push(Effect::Checklists);
        }
        if drill && ends {
            effects.push(Effect::DrillSummary);
        }
    }
    if card_changed {
        effects.push(Effect::UpdateCard);
    }
    let (ladder, wait_ended) = ladder_during_a_wait(after, events);
    timers.extend(ladder);
    let cancel_timers = (awaited_approval && after.state != State::AwaitingApproval) || wait_ended;
    // Voiding the ladder's timers voids every pending timer: the update cadence is set again.
    if cancel_timers
        && after.incident_open(reach.status_page)
        && !timers.iter().any(|t| matches!(t.action, TimerAction::Remind { .. }))
    {
        timers.extend(next_reminder(after));
    }
    Consequences {
        effects,
        timers,
        cancel_timers,
        lease: None,
        guard: Guard::Version,
    }
}

/// The timer of the rollback's next update reminder, if its cadence has one left.
fn next_reminder(after: &Rollback) -> Option<Timer> {
    let (n, due_at) = after.next_reminder()?;
    Some(Timer {
        action: TimerAction::Remind { n },
        due_at,
    })
}

/// The ladder while the run waits for a person after it started: a wait that begins (a gate, a
/// phrase, an interruption, a failure) sets the levels not yet open, counted from now; one that
/// ends (someone answered) voids them. Returns the timers to set and whether the wait ended.
fn ladder_during_a_wait(after: &Rollback, events: &[Event]) -> (Vec<Timer>, bool) {
    let wait_ended = events.iter().any(|e| {
        matches!(
            e,
            Event::Confirmed { .. }
                | Event::Continued { .. }
                | Event::Retried { .. }
                | Event::Skipped { .. }
                | Event::Aborted { .. }
                | Event::Resolved { .. }
                | Event::FallbackRequested { .. }
        )
    });
    let wait_began = events.iter().any(|e| {
        matches!(
            e,
            Event::Paused { .. } | Event::Interrupted { step: Some(_) } | Event::Failed { .. }
        )
    });
    if !wait_began || !after.awaits_person() || after.request.drill {
        return (vec![], wait_ended);
    }
    let since = after.waiting_since();
    let timers = after
        .ladder
        .iter()
        .enumerate()
        .skip(after.level)
        .map(|(index, level)| Timer {
            action: TimerAction::Escalate { level: index + 1 },
            due_at: since + chrono::Duration::seconds(level.after_secs as i64),
        })
        .collect();
    (timers, wait_ended)
}

#[cfg(test)]
mod tests;
