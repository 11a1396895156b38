//! The card's thread: each step's result (several at once when the thread is behind), pauses,
//! escalations, announcements. A step's start is on the card, which shows it live.
use super::*;

pub fn step_finished(rollback: &Rollback, index: usize, result: &StepResult) -> Message {
    let step = &rollback.plan.steps[index];
    let exit = result.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
    let (icon, verb) = match result.outcome {
        StepOutcome::Succeeded => ("✅", "succeeded".to_owned()),
        StepOutcome::Failed => ("❌", "failed".to_owned()),
        StepOutcome::TimedOut => ("⏱️", "timed out and was killed".to_owned()),
        StepOutcome::Interrupted => ("⚠️", "was interrupted".to_owned()),
        StepOutcome::Rehearsed => ("🧪", "was not run (drill)".to_owned()),
        StepOutcome::Aborted => ("🛑", "was stopped (aborted)".to_owned()),
        StepOutcome::CouldNotStart => (
            "❌",
            format!(
                "could not start ({})",
                escape(result.detail.as_deref().unwrap_or("unknown error"))
            ),
        ),
    };
    let attempts = match result.attempts {
        Some(n) if n > 1 => format!(", {n} attempts"),
        _ => String::new(),
    };
    let took = if result.outcome == StepOutcome::Rehearsed {
        String::new()
    } else {
        format!(" after {}", duration_text(result.duration_ms))
    };
    let mut head = format!(
        "{icon} Step {}/{} *{}* {verb}{took}{exit}{attempts}",
        index + 1,
        rollback.plan.steps.len(),
        escape(&step.name),
    );
    if let Some(detail) = result
        .detail
        .as_deref()
        .filter(|_| result.outcome != StepOutcome::CouldNotStart)
    {
        head += &format!("\n{}", escape(detail));
    }
    if rollback.request.drill && step.drill.is_some() && result.outcome != StepOutcome::Rehearsed {
        head += "\n_A drill: its drill override ran instead of the step._";
    }
    if !result.outcome.passed() && step.on_failure == crate::domain::plan::OnFailure::Continue {
        head += "\n_This step may fail (`on_failure = \"continue\"`): the run goes on._";
    }
    // A rehearsed step ran nothing, so it has no output to speak of; what it would have run is
    // what the drill is for.
    let output = if result.outcome == StepOutcome::Rehearsed {
        format!("\n_It would run:_\n{}", code_block(&step_line(&step.action)))
    } else if result.output_tail.trim().is_empty() {
        "\n_(no output)_".to_owned()
    } else {
        format!(
            "\n{}",
            code_block(&tail(
                &result.output_tail,
                MAX_SECTION_CHARS - head.chars().count() - 40
            ))
        )
    };
    Message::plain(head + &output)
}

/// Several steps that passed, in one message: what a thread that fell behind Slack's pace posts
/// instead of one message each. Every step keeps its line (how it ended, how long, its exit code)
/// and, while the message has room, the last lines of its output; one step alone reads as
/// [`step_finished`].
pub fn steps_finished(rollback: &Rollback, finished: &[(usize, &StepResult)]) -> Message {
    match finished {
        [] => Message::plain(String::new()),
        [(index, result)] => step_finished(rollback, *index, result),
        [(first, _), .., (last, _)] => {
            let total = rollback.plan.steps.len();
            let all_rehearsed = finished.iter().all(|(_, r)| r.outcome == StepOutcome::Rehearsed);
            let took: u64 = finished.iter().map(|(_, r)| r.duration_ms).sum();
            let head = if all_rehearsed {
                format!("🧪 Steps {}–{} of {total} were not run (drill)", first + 1, last + 1)
            } else {
                format!(
                    "✅ Steps {}–{} of {total} passed, {} in all",
                    first + 1,
                    last + 1,
                    duration_text(took)
                )
            };
            let lines: Vec<String> = finished
                .iter()
                .map(|(i, r)| merged_step_line(rollback, *i, r))
                .collect();
            let outputs: Vec<String> = finished.iter().map(|(_, r)| merged_step_output(r)).collect();
            let with_outputs: String = lines
                .iter()
                .zip(&outputs)
                .map(|(line, output)| format!("\n{line}{output}"))
                .collect();
            let body = if head.chars().count() + with_outputs.chars().count() <= MAX_SECTION_CHARS {
                with_outputs
            } else {
                // Never a step left out: their outputs go first (each is kept with its result).
                let mut bare: String = lines.iter().map(|line| format!("\n{line}")).collect();
                bare += "\n_Their output is kept with each step's result, in the timeline and the post-mortem draft._";
                bare
            };
            Message::plain(head + &body)
        }
    }
}

/// Lines of a step's output kept in a merged message.
const MERGED_OUTPUT_LINES: usize = 3;

fn merged_step_line(rollback: &Rollback, index: usize, result: &StepResult) -> String {
    let step = &rollback.plan.steps[index];
    let how = match result.outcome {
        StepOutcome::Rehearsed => {
            // What it would have run is what the drill is for; inline, so the list stays a list.
            let action = truncate(&step_line(&step.action), 200).replace('`', "'");
            format!("🧪 not run (drill); it would run `{}`", escape(&action))
        }
        _ => {
            let exit = result.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
            let instead = if rollback.request.drill && step.drill.is_some() {
                " (a drill: its drill override ran)"
            } else {
                ""
            };
            format!("✅ {}{exit}{instead}", duration_text(result.duration_ms))
        }
    };
    let detail = result
        .detail
        .as_deref()
        .map(|d| format!(" · {}", escape(&truncate(d, 200))))
        .unwrap_or_default();
    format!("{}. *{}* — {how}{detail}", index + 1, escape(&step.name))
}

fn merged_step_output(result: &StepResult) -> String {
    let output = result.output_tail.trim_end();
    if result.outcome == StepOutcome::Rehearsed || output.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = output.lines().collect();
    let kept = lines[lines.len().saturating_sub(MERGED_OUTPUT_LINES)..].join("\n");
    format!("\n{}", code_block(&tail(&kept, 300)))
}

/// A runbook's `notify` step, in its own words.
pub fn notify_step(rollback: &Rollback, text: &str) -> Message {
    Message::plain(truncate(
        &format!(
            "📣 {} ({}): {}",
            rollback.id,
            escape(&rollback.request.service),
            escape(text)
        ),
        MAX_SECTION_CHARS,
    ))
}

pub(super) fn minutes_seconds(d: chrono::Duration) -> String {
    duration_text(d.num_milliseconds().max(0) as u64)
}

/// What a drill measured: how long the path took, part by part.
pub fn drill_summary(rollback: &Rollback, history: &[crate::domain::Recorded]) -> Message {
    let Some(t) = crate::domain::path_timings(history) else {
        return Message::plain(format!("🧪 Drill {} ended; it has no record to time.", rollback.id));
    };
    let mut lines = vec![format!(
        "🧪 *Drill {} ended: {}.* Timings:",
        rollback.id,
        rollback.state.name().replace('_', " ")
    )];
    lines.push(match t.to_first_approval {
        Some(d) => format!("• Time to first approval: {}", minutes_seconds(d)),
        None if rollback.approvals_required == 0 => "• No approval needed (critical)".to_owned(),
        None => "• Nobody approved".to_owned(),
    });
    for (level, role, waited) in &t.levels {
        let who = match role {
            Some(role) => format!("level {level} (`{}`)", escape(role)),
            None => "the severity's approvers".to_owned(),
        };
        lines.push(format!("• Waiting on {who}: {}", minutes_seconds(*waited)));
    }
    if let Some(running) = t.running {
        lines.push(format!(
            "• Running the runbook, gates included: {}",
            minutes_seconds(running)
        ));
    }
    lines.push(format!("• Total: {}", minutes_seconds(t.total)));
    lines.push("Nothing was executed except drill overrides; the status page was not touched.".to_owned());
    Message::plain(lines.join("\n"))
}

/// The thread's last word on a rollback: how it ended.
/// In the thread (and the channel) when a rollback ends. When someone other than the requester
/// ended it, the requester is mentioned, so they hear of it; an abort says what ran and what
/// did not, since the system may be half-way.
pub fn run_finished(rollback: &Rollback) -> Message {
    let requester = &rollback.request.requester;
    let ended_by = match &rollback.state {
        State::Rejected { by, .. } | State::Cancelled { by } | State::Aborted { by, .. } => Some(by),
        _ => None,
    };
    let mut text = match ended_by {
        Some(by) if by != requester && requester.0 != crate::domain::SYSTEM_USER => {
            format!("{}: {} {}", user(requester), rollback.id, state_line(rollback))
        }
        _ => format!("{} {}", rollback.id, state_line(rollback)),
    };
    if let State::Aborted { step, .. } = rollback.state {
        text.push('\n');
        text.push_str(&half_way(rollback, step));
    }
    Message::plain(text)
}

/// What ran, what was stopped and what did not run, for a rollback aborted at `step`.
fn half_way(rollback: &Rollback, step: usize) -> String {
    let mut ran = vec![];
    let mut stopped = None;
    for record in &rollback.steps {
        match &record.result {
            Some(result) if record.index == step && !result.outcome.passed() => stopped = Some(record.index),
            Some(_) if !ran.contains(&record.index) => ran.push(record.index),
            _ => {}
        }
    }
    let name = |i: usize| format!("{}. {}", i + 1, step_name(rollback, i));
    let list = |steps: Vec<usize>| {
        if steps.is_empty() {
            "none".to_owned()
        } else {
            steps.into_iter().map(name).collect::<Vec<_>>().join(", ")
        }
    };
    let not_run: Vec<usize> = (0..rollback.plan.steps.len())
        .filter(|i| !ran.contains(i) && stopped != Some(*i))
        .collect();
    let stopped = match stopped {
        Some(i) => format!(" Stopped while it ran: {}.", name(i)),
        None => String::new(),
    };
    format!(
        "⚠️ The system may be half-way. Ran: {}.{stopped} Did not run: {}. Check the service before anything else runs.",
        list(ran),
        list(not_run)
    )
}

/// In the thread when a ladder level joins: its people are mentioned so they are notified.
pub fn escalated(rollback: &Rollback, level: usize, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let Some(escalation) = rollback.escalations.iter().find(|e| e.level == level) else {
        return Message::plain(format!("{} escalated to level {level}.", rollback.id));
    };
    let why = match &escalation.by {
        Some(by) => format!("{} asked to escalate", user(by)),
        None => {
            let waited = (escalation.at - rollback.waiting_since()).to_std().unwrap_or_default();
            let waited = humantime::format_duration(std::time::Duration::from_secs(waited.as_secs() / 60 * 60));
            match rollback.state {
                State::AwaitingApproval => format!("nobody approved for {waited}"),
                _ => format!("nobody answered for {waited}"),
            }
        }
    };
    let now = match rollback.state {
        State::AwaitingApproval => "you may now approve or reject it on the card above.".to_owned(),
        _ => format!("you are needed on the card above: {}", state_line(rollback)),
    };
    Message::plain(format!(
        "⏫ *{}* escalated to `{}` ({why}): {}, {now}",
        rollback.id,
        escape(&escalation.role),
        members_of(std::slice::from_ref(&escalation.role), directory, None)
    ))
}

/// In the thread when a rollback that needs no approval starts: the whole ladder is told.
pub fn ladder_notified(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let people: Vec<String> = rollback
        .ladder
        .iter()
        .map(|l| {
            format!(
                "`{}` ({})",
                escape(&l.role),
                members_of(std::slice::from_ref(&l.role), directory, None)
            )
        })
        .collect();
    Message::plain(format!(
        "🚨 *{}* is a {} rollback and runs without approval. For awareness: {}. A post-incident review is required.",
        rollback.id,
        rollback.request.severity,
        people.join(", ")
    ))
}

/// In the thread when the run stops before a step that needs a person.
/// In the thread when the run stops for a person: they are mentioned, so they are notified.
pub fn paused(rollback: &Rollback, index: usize, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let mut paused = rollback.clone();
    paused.state = State::Paused { step: index };
    Message::plain(format!(
        "{} {}{}",
        rollback.id,
        state_line(&paused),
        awaited_line(&paused, directory)
    ))
}

/// " Awaited: <people>." for a rollback that waits for someone, else nothing.
fn awaited_line(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> String {
    awaited(rollback, directory)
        .map(|people| format!("\nAwaited: {people}."))
        .unwrap_or_default()
}

/// In the thread when someone confirmed or passed a step.
pub fn gate_cleared(rollback: &Rollback, index: usize, by: Option<&UserId>) -> Message {
    let step = &rollback.plan.steps[index];
    let verb = if step.confirm.is_some() { "confirmed" } else { "passed" };
    let who = by.map(user).unwrap_or_else(|| "someone".into());
    Message::plain(format!(
        "▶️ {who} {verb} step {} *{}*; the run continues.",
        index + 1,
        escape(&step.name)
    ))
}

/// A communication template filled in for this rollback. People's text is escaped for mrkdwn
/// before it enters the template; the template itself is the team's own text.
pub fn announcement(
    rollback: &Rollback,
    which: crate::templates::Announcement,
    template: &str,
    thread_link: &str,
    expected_duration: Option<std::time::Duration>,
) -> Message {
    let variables = crate::templates::variables(rollback, thread_link, expected_duration, &escape, &|u| {
        mention(&escape(u))
    });
    let drill = if rollback.request.drill { "🧪 DRILL — " } else { "" };
    match crate::templates::render(template, &variables) {
        Ok(text) => Message::plain(truncate(&format!("{drill}{text}"), MAX_SECTION_CHARS)),
        // `check` refuses broken templates, so this only happens if one fails at render time.
        Err(e) => Message::plain(format!(
            "{} {} (the `{}` template could not be rendered: {})",
            rollback.id,
            state_line(rollback),
            which.key(),
            escape(&e)
        )),
    }
}

/// One message for a run that started and succeeded while its thread waited for Slack's pace:
/// the end first (the news), then what was announced at the start, quoted, then the steps and
/// the customer notice. Every part is the message it stands for, unchanged.
pub fn run_said_together(end: Message, started: Message, steps: Option<Message>, notice: Option<Message>) -> Message {
    let quoted: Vec<String> = started.text.lines().map(|line| format!(">{line}")).collect();
    let mut parts = vec![
        end.text,
        format!(
            "_It started and ended while this thread waited for Slack's pace; what was announced at the start:_\n{}",
            quoted.join("\n")
        ),
    ];
    parts.extend(steps.map(|m| m.text));
    parts.extend(notice.map(|m| m.text));
    Message::plain(parts.join("\n\n"))
}

/// The status page's text for a rollback: plain text for the public, no Slack markup.
pub fn page_text(rollback: &Rollback, template: &str) -> String {
    let variables = crate::templates::variables(rollback, "", None, &|s| s.to_owned(), &|u| format!("@{u}"));
    crate::templates::render(template, &variables)
        .unwrap_or_else(|_| format!("We are working on an issue with {}.", rollback.request.service))
}

/// In the thread when the status page could not be updated: people must do it by hand.
pub fn page_trouble(rollback: &Rollback, update: crate::domain::effects::PageUpdate, error: &str) -> Message {
    Message::plain(format!(
        "⚠️ The status page could not be set to *{}* for {} ({}). The rollback is not affected; please update the page by hand.",
        update.status(),
        rollback.id,
        escape(&truncate(error, 300))
    ))
}

/// Where a message in Slack can be opened from anywhere: Slack turns this into the workspace's link.
pub fn thread_link(channel: &str, ts: &str) -> String {
    format!("https://slack.com/archives/{channel}/p{}", ts.replace('.', ""))
}

/// In the thread when the process running a step stopped.
/// In the thread when someone asks to abort while a step runs.
pub fn abort_requested(rollback: &Rollback, index: usize, by: &crate::domain::UserId) -> Message {
    Message::plain(format!(
        "🛑 {} asked to abort *{}*: stopping step {} *{}* now (SIGTERM, then SIGKILL after {}s). No later step will start.",
        user(by),
        rollback.id,
        index + 1,
        step_name(rollback, index),
        crate::domain::ABORT_GRACE.as_secs()
    ))
}

pub fn interrupted(rollback: &Rollback, index: usize, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let mut interrupted = rollback.clone();
    interrupted.state = State::Interrupted { step: index };
    Message::plain(format!(
        "{} {}{}",
        rollback.id,
        state_line(&interrupted),
        awaited_line(&interrupted, directory)
    ))
}

/// In the thread when an attempt that had lost the run ended after all (its process stalled
/// past the lease): what it did, and that it is not the step's result.
pub fn late_result(rollback: &Rollback, index: usize, result: &StepResult) -> Message {
    let name = step_name(rollback, index);
    let exit = result.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
    let detail = result
        .detail
        .as_deref()
        .map(|d| format!(" ({})", escape(&truncate(d, 300))))
        .unwrap_or_default();
    let mut text = format!(
        "🕰️ An earlier attempt of step {} *{name}* ended late: {}{exit}{detail}. Its process had lost the run, so this is on the record only; it is not the step's result and nothing more runs from it.",
        index + 1,
        result.outcome.name().replace('_', " "),
    );
    if !result.output_tail.is_empty() {
        text += &format!("\n```{}```", escape(&truncate(&result.output_tail, 1500)));
    }
    Message::plain(text)
}

/// In the thread when someone decided about an interrupted step.
pub fn step_decided(rollback: &Rollback, index: usize, by: &UserId, retry: bool) -> Message {
    let step = rollback
        .plan
        .steps
        .get(index)
        .map(|s| escape(&s.name))
        .unwrap_or_default();
    let what = if retry {
        "chose to run it again"
    } else {
        "checked it and chose to go on without it"
    };
    Message::plain(format!(
        "↪️ Step {} *{step}* was interrupted; {} {what}.",
        index + 1,
        user(by)
    ))
}

/// In the thread, shown in the channel: the runbook's fallback was requested as a rollback of
/// its own, so this one's record ends here and the new card carries the incident.
pub fn fallback_requested(rollback: &Rollback, index: usize) -> Message {
    let Some(link) = rollback.fallbacks.get(index) else {
        return Message::plain(format!("↪️ A fallback of *{}* was requested.", rollback.id));
    };
    Message::plain(format!(
        "↪️ {} requested the fallback runbook *{}* as *{}*, a new rollback with its own card and approvals. Follow the incident there: updates and reminders continue on *{}*.",
        user(&link.by),
        escape(&link.runbook),
        link.rollback,
        link.rollback
    ))
}

/// In the thread, to the point of contact (the requester): reminder `n` of the update cadence.
/// What the incident plans' communication plan asks for by then, where things stand, the last
/// update, and the button that posts one.
pub fn update_reminder(rollback: &Rollback, n: usize) -> Message {
    let id = rollback.id;
    let due = rollback.reminder_due(n).unwrap_or(rollback.requested_at);
    let open_for = due - rollback.requested_at;
    let ask = match open_for.num_minutes() {
        ..=15 => "the incident plan asks to update the development team by now",
        16..=30 => "the incident plan asks to inform stakeholders by now",
        31..=60 => "the incident plan asks for a status update within the hour",
        _ => "keep people posted",
    };
    let last = match rollback.last_update() {
        Some(update) => format!("Last update: {} at {}.", user(&update.by), hhmm(update.at)),
        None => "No update has been posted yet.".to_owned(),
    };
    let head = format!(
        "⏰ {} *{id}* ({}) has been open for {}: time for an update ({ask}).",
        user(&rollback.request.requester),
        escape(&rollback.request.service),
        open_for_words(open_for),
    );
    let body = format!("Now: {} {last}", state_line(rollback));
    let mut post = button(Button::PostUpdate(id), "Post update", Some("primary"));
    post["accessibility_label"] = json!(format!("Post an update on {id}"));
    Message {
        text: truncate(&format!("{head} {body}"), MAX_SECTION_CHARS),
        blocks: vec![
            section(truncate(&format!("{head}\n{body}"), MAX_SECTION_CHARS)),
            json!({"type": "actions", "block_id": format!("rollback:{id}"), "elements": [post]}),
            context("*Post update* opens a form: the update goes to this thread, the stakeholders' channels and, if you tick it, the status page.".into()),
        ],
    }
}

/// An update someone posted: in the thread (`thread_link` `None`) or in a stakeholders'
/// channel, with a link to the thread.
pub fn update_posted(rollback: &Rollback, index: usize, thread_link: Option<&str>) -> Message {
    let Some(update) = rollback.updates.get(index) else {
        return Message::plain(format!("📣 An update on {} could not be found.", rollback.id));
    };
    let page = if update.to_status_page {
        " _(also posted on the status page)_"
    } else {
        ""
    };
    let link = thread_link.map(|link| format!(" <{link}|Thread>")).unwrap_or_default();
    let head = format!(
        "📣 *Update on {}* ({}) from {}{page}:{link}",
        rollback.id,
        escape(&rollback.request.service),
        user(&update.by)
    );
    Message::plain(truncate(
        &format!("{head}\n{}", quoted(&escape(&update.text))),
        MAX_SECTION_CHARS,
    ))
}

/// "15 min", "1 h", "2 h 30 min": how long an incident has been open, as people say it.
fn open_for_words(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Text as a Slack block quote, line by line.
fn quoted(text: &str) -> String {
    text.lines()
        .map(|line| format!("> {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
