//! The post-mortem draft: Markdown in the shape of the usual template, built only from a
//! rollback's recorded events, so the same events always give the same text.
use crate::domain::rollback::{Event, Recorded, Rollback, StepOutcome};
use crate::domain::{StepAction, UserId};
use crate::slack::messages::duration_text;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Text from people, made safe for a Markdown table cell or line.
fn md(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

fn who(user: &UserId) -> String {
    if user.0 == crate::domain::SYSTEM_USER {
        "rollbot".into()
    } else {
        format!("@{}", md(&user.0))
    }
}

fn hhmm(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

fn step_name(rollback: &Rollback, index: usize) -> String {
    rollback
        .plan
        .steps
        .get(index)
        .map(|s| md(&s.name))
        .unwrap_or_else(|| format!("#{}", index + 1))
}

/// One timeline line per event that a reader of the post-mortem needs.
fn timeline_entry(rollback: &Rollback, recorded: &Recorded) -> Option<String> {
    let by = who(&recorded.actor);
    let total = rollback.plan.steps.len();
    Some(match &recorded.event {
        Event::Requested {
            request,
            approvals_required,
            ..
        } => {
            let target = request
                .target
                .as_deref()
                .map(|t| format!(" to {}", md(t)))
                .unwrap_or_default();
            let reason = request
                .reason
                .as_deref()
                .map(|r| format!(", reason “{}”", md(r)))
                .unwrap_or_default();
            let incident = request
                .status_incident
                .as_deref()
                .map(|i| format!(", carrying on status page incident `{}`", md(i)))
                .unwrap_or_default();
            let approval = if *approvals_required == 0 {
                "no approval required".to_owned()
            } else {
                format!("{approvals_required} approval(s) required")
            };
            format!(
                "Requested by {by}: {}{target}, runbook {}, severity {}{reason}{incident}; {approval}",
                md(&request.service),
                md(&request.runbook),
                request.severity
            )
        }
        Event::Approved {
            by,
            role,
            level,
            despite_failed_preflight,
            ..
        } => {
            let despite = if *despite_failed_preflight {
                ", despite a failed preflight check"
            } else {
                ""
            };
            format!("Approved by {} ({}, level {level}){despite}", who(by), md(role))
        }
        Event::PreflightChecked { checks } => {
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed())
                .map(|c| {
                    let detail = if c.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", md(&c.detail))
                    };
                    format!("{} FAILED{detail}", md(&c.name))
                })
                .collect();
            let lines = if failed.is_empty() {
                vec![format!("all {} check(s) passed", checks.len())]
            } else {
                failed
            };
            format!("Preflight: {}", lines.join("; "))
        }
        Event::Rejected { by, reason } => {
            format!(
                "Rejected by {}{}",
                who(by),
                reason.as_deref().map(|r| format!(": “{}”", md(r))).unwrap_or_default()
            )
        }
        Event::Cancelled { by } => format!("Cancelled by {}", who(by)),
        Event::Escalated { level, role, by } => match by {
            Some(by) => format!("Escalated to {} (level {level}) by {}", md(role), who(by)),
            None => format!("Escalated to {} (level {level}): no approval in time", md(role)),
        },
        Event::Expired => "Expired without approval".into(),
        Event::RunStarted => "Run started".into(),
        Event::StepStarted { index } => format!("Step {}/{total} “{}” started", index + 1, step_name(rollback, *index)),
        Event::StepFinished { index, result } => {
            let outcome = match result.outcome {
                StepOutcome::Succeeded => "succeeded",
                StepOutcome::Failed => "failed",
                StepOutcome::TimedOut => "timed out",
                StepOutcome::CouldNotStart => "could not start",
                StepOutcome::Interrupted => "was interrupted",
                StepOutcome::Rehearsed => "was not run (drill)",
                StepOutcome::Aborted => "was stopped (aborted)",
            };
            let exit = result.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
            format!(
                "Step {}/{total} “{}” {outcome} after {}{exit}",
                index + 1,
                step_name(rollback, *index),
                duration_text(result.duration_ms)
            )
        }
        Event::Paused { index } => format!("Paused before step {} “{}”", index + 1, step_name(rollback, *index)),
        Event::Confirmed { index, by } => format!("{} typed the confirmation for step {}", who(by), index + 1),
        Event::Continued { index, by } => format!("{} passed the gate at step {}", who(by), index + 1),
        Event::Aborted { index, by } => format!("Aborted by {} at step {}", who(by), index + 1),
        Event::AbortRequested { index, by } => {
            format!("{} asked to abort while step {} ran", who(by), index + 1)
        }
        Event::Interrupted { step: Some(index) } => {
            format!(
                "Interrupted at step {}: the rollbot process running it stopped",
                index + 1
            )
        }
        Event::Interrupted { step: None } => {
            "The rollbot process stopped between steps; the run was queued again".into()
        }
        Event::LateResult { index, result } => format!(
            "A late result for step {} from an attempt whose process had lost the run: {}{} (on the record only, not the step's result)",
            index + 1,
            result.outcome.name().replace('_', " "),
            result.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default()
        ),
        Event::Retried { index, by } => format!("{} chose to retry step {}", who(by), index + 1),
        Event::Skipped { index, by } => format!("{} chose to skip step {}", who(by), index + 1),
        Event::Succeeded => "Succeeded".into(),
        Event::Failed { step, reason } => format!("Failed at step {}: {}", step + 1, md(reason)),
        Event::PageUpdated { status } => format!("Status page set to {}", md(status)),
        Event::Resolved { by: Some(by) } => format!("{} marked the incident resolved", who(by)),
        // The cadence is rollbot's prompt; the updates people posted are what a reader needs.
        Event::Reminded { .. } => return None,
        Event::Noted { by, text } => format!("{} noted: “{}”", who(by), md(text)),
        Event::ChecklistTicked { item, ticked, by } => {
            let text = crate::domain::checklist::items(&rollback.request.checklists)
                .find(|(at, ..)| at == item)
                .map_or_else(|| "an item".to_owned(), |(_, _, _, text)| format!("“{}”", md(text)));
            let verb = if *ticked { "ticked" } else { "unticked" };
            format!("{} {verb} {text}", who(by))
        }
        Event::UpdatePosted {
            by,
            text,
            to_status_page,
        } => format!(
            "{} posted an update{}: “{}”",
            who(by),
            if *to_status_page {
                " (also to the status page)"
            } else {
                ""
            },
            md(text)
        ),
        Event::FallbackRequested { rollback, runbook, by } => format!(
            "{} requested the fallback runbook {} as {rollback}, with its own approvals",
            who(by),
            md(runbook)
        ),
        Event::Resolved { by: None } => "The status page incident was resolved at the end of the watch window".into(),
        Event::Undeliverable { what, error } => {
            let message = match what.as_str() {
                "change_event" => "A PagerDuty change event".to_owned(),
                "page_update" => "A status page update".to_owned(),
                other => format!("A Slack message ({})", md(other)),
            };
            format!("{message} could not be delivered: {}", md(error))
        }
    })
}

pub fn draft(rollback: &Rollback, history: &[Recorded]) -> String {
    let request = &rollback.request;
    let mut out = String::new();
    let target = request
        .target
        .as_deref()
        .map(|t| format!(" to {}", md(t)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "# Post-mortem: {} — rollback of {}{target}\n",
        rollback.id,
        md(&request.service)
    );
    let _ = writeln!(out, "- **Date:** {}", rollback.requested_at.format("%Y-%m-%d"));
    if let Some(detected) = &request.detected {
        let before = (rollback.requested_at - detected.at).num_milliseconds().max(0) as u64;
        let _ = writeln!(
            out,
            "- **Issue detected:** {} UTC, by the alert {} ({}), {} before the request",
            hhmm(detected.at),
            md(&detected.alert),
            detected.proposal,
            duration_text(before)
        );
    }
    let end = rollback
        .finished_at
        .or_else(|| history.last().map(|r| r.at))
        .unwrap_or(rollback.requested_at);
    let _ = writeln!(
        out,
        "- **Duration:** {} (requested {} UTC, last event {} UTC)",
        duration_text((end - rollback.requested_at).num_milliseconds().max(0) as u64),
        hhmm(rollback.requested_at),
        hhmm(end)
    );
    let _ = writeln!(out, "- **Severity:** {}", request.severity);
    let _ = writeln!(out, "- **Outcome:** {}", rollback.state.name().replace('_', " "));
    let _ = writeln!(out, "- **Requested by:** {}", who(&request.requester));
    let approvers: Vec<String> = rollback
        .approvals
        .iter()
        .map(|a| format!("{} ({})", who(&a.by), md(&a.role)))
        .collect();
    let approvers = if approvers.is_empty() {
        "none".into()
    } else {
        approvers.join(", ")
    };
    let _ = writeln!(out, "- **Approved by:** {approvers}");
    let _ = writeln!(
        out,
        "- **Post-incident review required:** {}",
        if rollback.review_required { "yes" } else { "no" }
    );
    let _ = writeln!(out, "- **Plan digest:** `{}`\n", rollback.plan_digest);

    let _ = writeln!(out, "## Summary\n");
    let reason = request
        .reason
        .as_deref()
        .map(|r| format!(" The reason given: “{}”.", md(r)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} rolled {} back{target} with runbook {} ({} step(s)).{reason} Outcome: {}.\n",
        who(&request.requester),
        md(&request.service),
        md(&request.runbook),
        rollback.plan.steps.len(),
        rollback.state.name().replace('_', " ")
    );

    let _ = writeln!(out, "## Timeline (UTC)\n");
    let _ = writeln!(out, "| Time | Event |");
    let _ = writeln!(out, "|---|---|");
    for recorded in history {
        if let Some(entry) = timeline_entry(rollback, recorded) {
            let _ = writeln!(out, "| {} | {entry} |", hhmm(recorded.at));
        }
    }

    let _ = writeln!(out, "\n## Plan that ran\n");
    for (i, step) in rollback.plan.steps.iter().enumerate() {
        let what = match &step.action {
            StepAction::Gate { message } => format!("gate: {}", md(message)),
            _ => format!(
                "`{}`",
                crate::slack::messages::step_line(&step.action).replace('`', "'")
            ),
        };
        let _ = writeln!(out, "{}. {} — {what}", i + 1, md(&step.name));
    }

    verification(&mut out, rollback);
    for section in ["Root Cause", "Impact"] {
        let _ = writeln!(out, "\n## {section}\n\n_To be written._");
    }
    for section in ["What Went Well", "What Went Wrong", "Lessons Learned"] {
        let _ = writeln!(out, "\n## {section}\n\n- ");
    }
    action_items(&mut out, rollback);
    out
}

/// What is left to do: every checklist item nobody ticked, by its checklist and horizon, then a
/// row to add more; what was ticked, with who and when, below.
fn action_items(out: &mut String, rollback: &Rollback) {
    let _ = writeln!(out, "\n## Action Items\n\n| Action | Owner | Due |\n|---|---|---|");
    let items: Vec<_> = crate::domain::checklist::items(&rollback.request.checklists).collect();
    for (item, checklist, section, text) in &items {
        if !rollback.ticks.contains_key(item) {
            let _ = writeln!(
                out,
                "| {} ({}, {}) |  |  |",
                md(text),
                md(&checklist.title),
                md(&section.name)
            );
        }
    }
    let _ = writeln!(out, "|  |  |  |");
    let done: Vec<String> = items
        .iter()
        .filter_map(|(item, _, _, text)| {
            let tick = rollback.ticks.get(item)?;
            Some(format!("- [x] {} — {} at {}", md(text), who(&tick.by), hhmm(tick.at)))
        })
        .collect();
    if !done.is_empty() {
        let _ = writeln!(out, "\nDone from the checklists:\n\n{}", done.join("\n"));
    }
}

/// What was checked and what it found: preflight before approval, then every SQL and health
/// step's last result with what it reported (row counts before and after, the assertion's value,
/// the health check's answer), so the draft carries the evidence the thread showed.
fn verification(out: &mut String, rollback: &Rollback) {
    let _ = writeln!(out, "\n## Verification\n");
    let mut any = false;
    for check in rollback.preflight.iter().flatten() {
        any = true;
        let detail = if check.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", md(&check.detail))
        };
        let outcome = if check.passed() { "passed" } else { "FAILED" };
        let _ = writeln!(out, "- Before approval, {}: {outcome}{detail}", md(&check.name));
    }
    for (i, step) in rollback.plan.steps.iter().enumerate() {
        if !matches!(step.action, StepAction::Sql { .. } | StepAction::Health { .. }) {
            continue;
        }
        any = true;
        let Some(result) = rollback.last_result(i) else {
            let _ = writeln!(out, "- Step {} {}: did not run", i + 1, md(&step.name));
            continue;
        };
        let detail = result
            .detail
            .as_deref()
            .map(|d| format!(" — {}", md(d)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- Step {} {}: {}{detail}",
            i + 1,
            md(&step.name),
            result.outcome.name().replace('_', " ")
        );
        let report = result.output_tail.trim();
        if !report.is_empty() {
            for line in report.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    if !any {
        let _ = writeln!(
            out,
            "_Nothing checked the result: no preflight, SQL or health step ran._"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::*;
    use crate::domain::{Action, Actor, Severity};

    /// A recorded history: a request nobody answered for 30 minutes, an escalation, an
    /// approval from the new level, a step that failed once... then the draft.
    fn recorded_story() -> (Rollback, Vec<Recorded>) {
        let mut story = Story::requested(Severity::High, Some("checkout 500s | after deploy 42"));
        story.reach_level(1);
        let story = story
            .act(&actor(DEVOPS_LEAD), Action::Approve)
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result("deployment.apps/checkout-api rolled back"))
            .step(1, failed_result(1, "timed out waiting for rollout"));
        (story.rollback.clone(), story.history.clone())
    }

    #[test]
    fn the_draft_follows_the_timeline_and_is_deterministic() {
        let (rollback, history) = recorded_story();
        let first = draft(&rollback, &history);
        assert_eq!(first, draft(&rollback, &history), "the same events give the same text");
        insta::assert_snapshot!(first);
    }
}
