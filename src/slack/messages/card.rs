//! The rollback's card: what it is, where it stands, and what the next click does.
use super::*;

/// The rollback's card in the channel, re-rendered from current state on every change.
pub fn card(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>, status_page: bool) -> Message {
    // A drill never touches the status page (docs/drills.md), so its card does not speak of one.
    let status_page = status_page && !rollback.request.drill;
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&escape(&headline(rollback)), MAX_HEADER_CHARS), "emoji": true}
    })];
    if rollback.request.drill {
        blocks.push(context(DRILL_NOTE.into()));
    }
    if let Some(of) = rollback.request.fallback_of {
        blocks.push(context(format!(
            "↪️ The fallback of *{of}*, which stopped: its thread has what ran and what did not."
        )));
    }
    if rollback.review_required && !rollback.request.drill {
        blocks.push(section(match rollback.request.severity {
            crate::domain::Severity::Low => format!(
                "🟢 *Low severity: no approval needed — it runs at once.* {LOW_ADVICE} Like every rollback that runs without approval, it is flagged for a post-incident review."
            ),
            severity => format!(
                "🚨 *{} severity: no approval needed — it runs at once.* A post-incident review is required.",
                capitalized(severity.as_str())
            ),
        }));
    }
    blocks.push(section(state_line(rollback)));
    blocks.push(request_fields(rollback));
    blocks.extend(preflight_section(rollback).map(section));
    blocks.extend(plan_sections(rollback).into_iter().map(section));
    blocks.extend(last_update_line(rollback));
    blocks.extend(controls(rollback, directory, status_page));
    // Slack notifies from `text`: it names whoever is awaited, so they hear of it.
    let text = match awaited(rollback, directory) {
        Some(people) => format!(
            "{}: {} Awaited: {people}",
            escape(&headline(rollback)),
            state_line(rollback)
        ),
        None => format!("{}: {}", escape(&headline(rollback)), state_line(rollback)),
    };
    Message {
        text: truncate(&text, MAX_SECTION_CHARS),
        blocks,
    }
}

/// What the process running a step last saw of it: its latest output lines, as of `at`.
pub struct LiveStep<'a> {
    pub index: usize,
    pub output: &'a str,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The card while a step runs, refreshed by the process running it: how long the step has run
/// as of the refresh, and its latest output, so a hung step does not look like progress.
pub fn card_while_a_step_runs(
    rollback: &Rollback,
    directory: &BTreeMap<String, Vec<String>>,
    status_page: bool,
    live: &LiveStep,
) -> Message {
    let mut message = card(rollback, directory, status_page);
    let started = rollback
        .steps
        .iter()
        .rev()
        .find(|s| s.index == live.index && s.result.is_none())
        .map(|s| s.started_at);
    let Some(started) = started else {
        return message;
    };
    let ran = (live.at - started).num_milliseconds().max(0) as u64;
    let mut text = format!(
        "⏱️ Step {} has run for {} (as of {}).",
        live.index + 1,
        duration_text(ran),
        hhmm(live.at)
    );
    if live.output.trim().is_empty() {
        text.push_str(" It has written no output yet.");
    } else {
        text.push_str(" Its latest output:\n");
        text.push_str(&code_block(&truncate(live.output, 1200)));
    }
    // Beside the state line, above the request's fields.
    let at = message
        .blocks
        .iter()
        .position(|b| b.get("fields").is_some())
        .unwrap_or(message.blocks.len());
    message.blocks.insert(at, section(text));
    message
}

/// What people can do after a run failed or was aborted at `step`: run it again, skip it where
/// the runbook allows, bring in the next level, and resolve the status page by hand.
fn after_a_stop(rollback: &Rollback, step: usize, status_page: bool) -> Vec<Value> {
    let id = rollback.id;
    if !rollback.fallbacks.is_empty() {
        // The fallback carries the incident on: its card is where people act now.
        return rollback
            .fallbacks
            .iter()
            .map(|link| {
                context(format!(
                    "↪️ {} requested the fallback runbook *{}* as *{}* at {}. Follow the incident on that card: it needs its own approvals, and updates continue there.",
                    user(&link.by),
                    escape(&link.runbook),
                    link.rollback,
                    hhmm(link.at)
                ))
            })
            .collect();
    }
    let mut buttons = vec![];
    let mut said = vec![];
    let mut retry = button(Button::Retry(id, step), "Retry step", Some("danger"));
    retry["confirm"] = retry_confirm(rollback, step);
    buttons.push(retry);
    said.push(format!("*Retry step* runs step {} again", step + 1));
    if rollback.plan.steps[step].skippable {
        let mut skip = button(Button::Skip(id, step), "Skip step and continue", None);
        skip["confirm"] = skip_confirm(rollback, step);
        buttons.push(skip);
        said.push("*Skip step and continue* goes on with the next step".into());
    }
    if let (Some(fallback), None) = (&rollback.plan.fallback, &rollback.resolved) {
        buttons.push(button(Button::RunFallback(id), "Run fallback…", None));
        said.push(format!(
            "*Run fallback…* opens a request for the runbook *{}*, a new rollback that needs its own approvals",
            escape(fallback)
        ));
    }
    if let Some((_, next, _)) = rollback.next_level() {
        buttons.push(button(Button::EscalateNow(id), "Escalate now", None));
        said.push(format!("*Escalate now* brings in `{}`", escape(&next.role)));
    }
    buttons.push(post_update_button(id));
    said.push("*Post update* tells the thread, the stakeholders and, if you tick it, the status page".into());
    let page_open = status_page && rollback.started_at.is_some() && rollback.resolved.is_none();
    if rollback.resolved.is_none() {
        buttons.push(button(Button::Resolve(id), "Mark resolved", None));
        said.push(if page_open {
            "*Mark resolved* resolves the status page incident once the service is healthy by other means".into()
        } else {
            "*Mark resolved* closes the incident once the service is healthy by other means, which ends the update reminders".into()
        });
    }
    let mut blocks = vec![
        json!({"type": "actions", "block_id": format!("rollback:{id}"), "elements": buttons}),
        context(format!(
            "Next: {}. The requester or anyone who may approve it can decide.",
            said.join("; ")
        )),
    ];
    match (&rollback.resolved, status_page) {
        (Some(resolution), _) => blocks.push(context(resolved_line(resolution, status_page))),
        (None, true) if page_open => blocks.push(context(
            "Status page: *investigating*. The rollback did not finish.".into(),
        )),
        _ => {}
    }
    blocks
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn resolved_line(resolution: &crate::domain::rollback::Resolution, status_page: bool) -> String {
    let how = match &resolution.by {
        Some(by) => format!("by {}", user(by)),
        None => "at the end of the watch window".to_owned(),
    };
    let what = if status_page { "Status page" } else { "Incident" };
    format!("{what}: *resolved* {how} at {}.", hhmm(resolution.at))
}

const POST_UPDATE_SAYS: &str = "*Post update* tells the thread, the stakeholders and, if you tick it, the status page.";

fn post_update_button(id: RollbackId) -> Value {
    button(Button::PostUpdate(id), "Post update", None)
}

/// The latest update people posted, when there is one.
fn last_update_line(rollback: &Rollback) -> Option<Value> {
    let update = rollback.last_update()?;
    Some(context(truncate(
        &format!(
            "📣 Last update by {} at {}: {}",
            user(&update.by),
            hhmm(update.at),
            escape(&update.text)
        ),
        300,
    )))
}

/// Who asked for what, and who approved it, as a card's fields.
fn request_fields(rollback: &Rollback) -> Value {
    let request = &rollback.request;
    let mut fields = vec![
        format!("*Service*\n{}", escape(&request.service)),
        format!(
            "*Target*\n{}",
            request
                .target
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| "(runbook default)".into())
        ),
        format!("*Severity*\n{}", severity_label(request.severity)),
        format!("*Runbook*\n{}", escape(&request.runbook)),
    ];
    if let Some(incident) = &request.status_incident {
        fields.push(format!(
            "*Status page incident*\n{} (carried on)",
            inline_code_or_empty(incident)
        ));
    }
    if !rollback.plan.params.is_empty() {
        let params: Vec<String> = rollback
            .plan
            .params
            .iter()
            .map(|(name, value)| format!("`{}` = {}", escape(name), inline_code_or_empty(value)))
            .collect();
        fields.push(truncate(&format!("*Parameters*\n{}", params.join("\n")), 1900));
    }
    fields.extend([
        format!(
            "*Requested by*\n{} at {}",
            user(&request.requester),
            hhmm(rollback.requested_at)
        ),
        format!(
            "*Reason*\n{}",
            request
                .reason
                .as_deref()
                .map(|r| truncate(&escape(r), 1900))
                .unwrap_or_else(|| "(none given)".into())
        ),
    ]);
    for approval in &rollback.approvals {
        let despite = if approval.despite_failed_preflight {
            " ⚠️ despite a failed preflight check"
        } else {
            ""
        };
        fields.push(format!(
            "*Approved by*\n{} (`{}`) at {}{despite}",
            user(&approval.by),
            escape(&approval.role),
            hhmm(approval.at)
        ));
    }
    fields.truncate(10);
    json!({
        "type": "section",
        "fields": fields.into_iter().map(|f| json!({"type": "mrkdwn", "text": f})).collect::<Vec<_>>()
    })
}

/// The frozen plan, step by step, with each step's progress.
/// The buttons the rollback's state offers, and what each does.
fn controls(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>, status_page: bool) -> Vec<Value> {
    let id = rollback.id;
    let actions =
        |elements: Vec<Value>| json!({"type": "actions", "block_id": format!("rollback:{id}"), "elements": elements});
    let mut blocks = vec![];
    match rollback.state {
        State::AwaitingApproval => {
            let self_note = if rollback.allow_self_approval {
                ""
            } else {
                " The requester cannot approve their own rollback."
            };
            let roles: Vec<String> = rollback.approver_roles_now().into_iter().map(|(r, _)| r).collect();
            blocks.push(context(format!(
                "Who may approve now: {} ({}).{self_note}",
                approvers(rollback, directory),
                role_names(&roles)
            )));
            if let Some(line) = ladder_line(rollback) {
                blocks.push(context(line));
            }
            let failed = rollback
                .preflight
                .as_deref()
                .map(crate::domain::preflight::failed)
                .unwrap_or_default();
            let approve = if failed.is_empty() {
                let mut approve = button(Button::Approve(id), "Approve", Some("primary"));
                approve["confirm"] = approve_confirm(rollback);
                approve
            } else {
                let mut approve = button(
                    Button::ApproveDespitePreflight(id),
                    "Approve despite preflight…",
                    Some("danger"),
                );
                approve["confirm"] = approve_despite_preflight_confirm(rollback, &failed);
                approve
            };
            let mut buttons = vec![
                approve,
                button(Button::Reject(id), "Reject", Some("danger")),
            ];
            if rollback.next_level().is_some() {
                buttons.push(button(Button::EscalateNow(id), "Escalate now", None));
            }
            buttons.push(button(Button::Cancel(id), "Cancel", None));
            blocks.push(actions(buttons));
            blocks.push(context(
                "*Approve* runs the plan above as shown. *Reject* asks for a reason and closes the request without running anything. *Cancel* withdraws it (requester or approvers).".into(),
            ));
        }
        State::Interrupted { step } => {
            let mut retry = button(Button::Retry(id, step), "Retry step", Some("danger"));
            retry["confirm"] = retry_confirm(rollback, step);
            let mut skip = button(Button::Skip(id, step), "Skip step", None);
            skip["confirm"] = skip_confirm(rollback, step);
            let mut abort = button(Button::Abort(id, step), "Abort", None);
            abort["confirm"] = abort_confirm(rollback, step);
            let mut buttons = vec![retry, skip, abort];
            if rollback.next_level().is_some() {
                buttons.push(button(Button::EscalateNow(id), "Escalate now", None));
            }
            buttons.push(post_update_button(id));
            blocks.push(actions(buttons));
            blocks.push(context(
                format!("The requester or anyone who may approve it can decide. rollbot never runs a started step again by itself. {POST_UPDATE_SAYS}"),
            ));
        }
        State::Failed { step, .. } | State::Aborted { step, .. } if !rollback.request.drill => {
            blocks.extend(after_a_stop(rollback, step, status_page));
        }
        State::Paused { step } => {
            let paused = &rollback.plan.steps[step];
            let first = if paused.confirm.is_some() {
                button(Button::Confirm(id, step), "Confirm…", Some("danger"))
            } else {
                button(Button::Continue(id, step), "Continue", Some("primary"))
            };
            let mut abort = button(Button::Abort(id, step), "Abort", None);
            abort["confirm"] = abort_confirm(rollback, step);
            blocks.push(actions(vec![first, abort, post_update_button(id)]));
            let who = if rollback.second_person {
                "Someone who may approve it, not the requester (the two-person rule), answers; the requester may abort."
            } else {
                "The requester or anyone who may approve it can answer."
            };
            blocks.push(context(format!(
                "{who} *Abort* stops the run here; nothing after this step runs. {POST_UPDATE_SAYS}"
            )));
        }
        State::Queued if rollback.steps.is_empty() => {
            blocks.push(actions(vec![button(Button::Cancel(id), "Cancel", None)]));
            blocks.push(context("*Cancel* stops it before the first step starts.".into()));
        }
        State::Running | State::Queued => match (&rollback.abort_requested, rollback.step_in_flight()) {
            (Some(asked), _) => blocks.push(context(format!(
                "🛑 {} asked to abort at {}: step {} is being stopped (SIGTERM, then SIGKILL after {}s); nothing after it starts.",
                user(&asked.by),
                hhmm(asked.at),
                asked.index + 1,
                crate::domain::ABORT_GRACE.as_secs()
            ))),
            (None, in_flight) => {
                let Some(step) = in_flight.or(rollback.resume_step()) else {
                    return blocks;
                };
                let mut abort = button(Button::Abort(id, step), "Abort", Some("danger"));
                abort["confirm"] = abort_confirm(rollback, step);
                blocks.push(actions(vec![abort, post_update_button(id)]));
                blocks.push(context(format!(
                    "*Abort* stops the run now: the running step is stopped and nothing after it starts (the requester, approvers, or a role allowed to abort). {POST_UPDATE_SAYS}"
                )));
            }
        },
        State::Succeeded if status_page => match &rollback.resolved {
            None => {
                blocks.push(actions(vec![
                    button(Button::Resolve(id), "Mark resolved", Some("primary")),
                    post_update_button(id),
                ]));
                blocks.push(context(
                    format!("Status page: *monitoring*. *Mark resolved* once the service is healthy: the incident is resolved and its components set operational. {POST_UPDATE_SAYS}"),
                ));
            }
            Some(resolution) => blocks.push(context(resolved_line(resolution, true))),
        },
        _ => {}
    }
    blocks
}

/// A value people approve, as inline code: a backtick in it would end the code span early, so it
/// is shown as a look-alike; an empty value says so.
fn inline_code_or_empty(value: &str) -> String {
    if value.is_empty() {
        "(empty)".to_owned()
    } else {
        format!("`{}`", escape(&value.replace('`', "ˋ")))
    }
}

/// What the preflight checks found, while a person may still act on it: ⏳ while they run,
/// then one line per check. Gone from the card once the rollback left the approval stage (the
/// timeline and post-mortem keep it).
fn preflight_section(rollback: &Rollback) -> Option<String> {
    if rollback.state != State::AwaitingApproval
        || !crate::domain::preflight::shown(rollback.plan.preflight.len(), rollback.preflight.as_deref())
    {
        return None;
    }
    let Some(checks) = &rollback.preflight else {
        return Some(
            "*Preflight* ⏳ checking that the plan can run (programs, variables, the runbook's checks)…".into(),
        );
    };
    let lines = preflight_lines(checks);
    let failed = checks.iter().filter(|c| !c.passed()).count();
    let head = match failed {
        0 => "*Preflight*: every check passed.".to_owned(),
        n => format!(
            "*Preflight*: {n} check(s) failed. Fix them and request again, or approve knowing it (the approval records that)."
        ),
    };
    Some(truncate(&format!("{head}\n{}", lines.join("\n")), MAX_SECTION_CHARS))
}

/// One line per preflight check: ✅ or ❌, its name and what it saw.
pub(super) fn preflight_lines(checks: &[crate::domain::preflight::PreflightCheck]) -> Vec<String> {
    checks
        .iter()
        .map(|check| {
            let mark = if check.passed() { "✅" } else { "❌" };
            let detail = if check.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&truncate(&check.detail, 200)))
            };
            // Check names come from the runbook and may hold backticks of their own.
            format!("{mark} {}{detail}", escape(&check.name))
        })
        .collect()
}
