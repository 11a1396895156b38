//! Every message a person sees, built by pure functions from state, grouped by what people
//! read: the card (`card`), a proposal's card (`proposal`), the thread (`thread`), forms
//! (`forms`), private answers (`private`) and refusals (`refusals`). Shared pieces (the
//! message type, mentions, the plan's text, Block Kit builders) are here. User-supplied text is
//! always escaped for mrkdwn, and every block stays inside Block Kit's limits.
use super::wire::{Button, Form};
use crate::domain::plan::{Plan, SqlCheck, StepAction};
use crate::domain::proposal::{Decision, Proposal};
use crate::domain::rollback::{State, StepOutcome, StepResult};
use crate::domain::{Refusal, Rollback, RollbackId, Severity, UserId};
use crate::grammar::ParseError;
pub use crate::text::{duration_text, escape, truncate};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

mod card;
mod checklists;
mod forms;
mod plan;
mod private;
mod proposal;
mod refusals;
mod thread;

pub use card::*;
pub use checklists::checklists;
pub use forms::*;
pub use plan::plan_in_thread;
use plan::plan_sections;
pub use private::*;
pub use proposal::*;
pub use refusals::*;
pub use thread::*;

pub const MAX_SECTION_CHARS: usize = 3000;
pub const MAX_HEADER_CHARS: usize = 150;
const HELP_HINT: &str = "Type `/rollback help` for the grammar and examples.";

/// A message as Slack takes it: `text` is the notification fallback, `blocks` the layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Value>,
}

impl Message {
    pub fn plain(text: impl Into<String>) -> Self {
        Message {
            text: text.into(),
            blocks: vec![],
        }
    }
}

/// The last `max` characters, with a marker in front when something was dropped.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    const MARKER: &str = "(earlier output truncated) …";
    let keep = max.saturating_sub(MARKER.chars().count() + 1);
    format!("{MARKER}\n{}", text.chars().skip(count - keep).collect::<String>())
}

fn mention(member: &str) -> String {
    if let Some(Ok(on_call)) = crate::pagerduty::OnCallSource::parse(member) {
        format!("whoever is {}", on_call.describe())
    } else if member.starts_with('S') {
        format!("<!subteam^{member}>")
    } else {
        format!("<@{member}>")
    }
}

fn user(id: &UserId) -> String {
    if id.0 == crate::domain::SYSTEM_USER {
        "rollbot".into()
    } else {
        format!("<@{}>", escape(&id.0))
    }
}

/// A time as Slack shows it to each reader, in their own time zone (`<!date^…>`), with UTC
/// where a client cannot (notifications, older apps). Only for mrkdwn: plain text shows the token.
fn hhmm(at: DateTime<Utc>) -> String {
    format!("<!date^{}^{{time}}|{}>", at.timestamp(), at.format("%H:%M UTC"))
}

fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🔴 Critical",
        Severity::High => "🟠 High",
        Severity::Medium => "🟡 Medium",
        Severity::Low => "🔵 Low",
    }
}

/// Quotes an argument the way a shell would need it, for display only: nothing runs through
/// a shell.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A step's exact action as one line, e.g. `kubectl rollout undo deployment/api --to-revision=41`.
pub fn step_line(action: &StepAction) -> String {
    match action {
        StepAction::Command { argv, env, .. } => {
            let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", shell_quote(v))).collect();
            let argv: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
            [env, argv].concat().join(" ")
        }
        StepAction::Gate { message } => format!("(gate) {message}"),
        StepAction::Http {
            method,
            url,
            headers,
            body,
            expect_status,
            ..
        } => {
            let mut parts = vec![method.clone(), shell_quote(url)];
            for (name, value) in headers {
                parts.push(format!("-H {}", shell_quote(&format!("{name}: {value}"))));
            }
            if let Some(body) = body {
                parts.push(format!("-d {}", shell_quote(body)));
            }
            let expected: Vec<String> = expect_status.iter().map(u16::to_string).collect();
            format!("{} → expect HTTP {}", parts.join(" "), expected.join("/"))
        }
        StepAction::Health {
            url,
            expect_status,
            body_contains,
            within_secs,
            every_ms,
        } => {
            let body = body_contains
                .as_ref()
                .map(|b| format!(" with {b:?} in the body"))
                .unwrap_or_default();
            format!(
                "GET {} until HTTP {expect_status}{body}, every {}, within {}",
                shell_quote(url),
                duration_text(*every_ms),
                duration_text(within_secs * 1000)
            )
        }
        StepAction::Sql {
            database,
            connection,
            check,
            read_only,
            ..
        } => {
            let what = match check {
                SqlCheck::Snapshot { tables, schema } => match schema {
                    Some(schema) => format!("snapshot row counts of every table in schema {schema}"),
                    None => format!("snapshot row counts of {}", tables.join(", ")),
                },
                SqlCheck::Compare { default_drift, drift } => {
                    let exceptions: Vec<String> = drift.iter().map(|(t, d)| format!("{t} {d}")).collect();
                    let exceptions = if exceptions.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", exceptions.join(", "))
                    };
                    format!("compare row counts with the snapshot (allowed drift {default_drift}{exceptions})")
                }
                SqlCheck::Assert { query, expect } => format!("assert ({query}) {expect}"),
            };
            let mode = if *read_only { "read-only" } else { "read-write" };
            format!("sql {database} ({connection}, {mode}): {what}")
        }
        StepAction::Notify { channel, text } => match channel {
            Some(channel) => format!("post to {channel}: {text}"),
            None => format!("post in the thread: {text}"),
        },
        StepAction::StatusPage { status, message } => format!("status page → {status}: {message}"),
    }
}

/// Text inside a code block: escaped, and unable to close the block early.
fn code_block(text: &str) -> String {
    format!("```{}```", escape(text).replace("```", "`\u{200b}``"))
}

pub fn plan_text(plan: &Plan) -> String {
    let lines: Vec<String> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {}\n   {}", i + 1, s.name, step_line(&s.action)))
        .collect();
    lines.join("\n")
}

/// Who may approve, as mentions: members of the approving roles, less the requester when
/// they may not approve their own rollback.
fn approvers(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> String {
    let roles: Vec<String> = rollback
        .approver_roles_now()
        .into_iter()
        .map(|(role, _)| role)
        .collect();
    let requester = (!rollback.allow_self_approval).then_some(rollback.request.requester.0.as_str());
    members_of(&roles, directory, requester)
}

/// Who the rollback waits for now, as mentions: the approvers while it awaits approval; at a
/// gate or a phrase, whoever may answer (not the requester under the two-person rule); after an
/// interruption or a failure, the requester and whoever may approve. `None` when nobody is awaited.
pub(super) fn awaited(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> Option<String> {
    // A failure someone resolved, or handed on to its fallback, waits for nobody.
    if !rollback.awaits_person() {
        return None;
    }
    let mut roles: Vec<String> = rollback.approver_roles_now().into_iter().map(|(r, _)| r).collect();
    if rollback.approvals_required == 0 {
        // Nothing needed approval: its ladder answers gates (`decide::gate_keeper`).
        roles.extend(
            rollback
                .ladder
                .iter()
                .take(rollback.level.max(1))
                .map(|l| l.role.clone()),
        );
    }
    let requester = rollback.request.requester.0.as_str();
    let people = match rollback.state {
        State::AwaitingApproval => approvers(rollback, directory),
        State::Paused { .. } => members_of(&roles, directory, rollback.second_person.then_some(requester)),
        State::Interrupted { .. } | State::Failed { .. } => {
            let others = members_of(&roles, directory, Some(requester));
            match (requester == crate::domain::SYSTEM_USER, others.starts_with("nobody")) {
                (true, _) => others,
                (false, true) => mention(requester),
                (false, false) => format!("{}, {others}", mention(requester)),
            }
        }
        _ => return None,
    };
    Some(people)
}

/// Everyone in `roles`, as mentions (groups as group mentions), less `except`.
fn members_of(roles: &[String], directory: &BTreeMap<String, Vec<String>>, except: Option<&str>) -> String {
    let members: Vec<String> = roles
        .iter()
        .flat_map(|role| directory.get(role).into_iter().flatten())
        .filter(|m| Some(m.as_str()) != except)
        .map(|m| mention(m))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if members.is_empty() {
        "nobody (no members configured)".into()
    } else {
        members.join(", ")
    }
}

/// The escalation status while a rollback awaits approval: current level, next level, expiry.
fn ladder_line(rollback: &Rollback) -> Option<String> {
    let mut parts = vec![];
    if rollback.level > 0 {
        let joined = &rollback.escalations.last()?.role;
        parts.push(format!(
            "Escalated to level {} of {} (`{}` joined).",
            rollback.level,
            rollback.ladder.len(),
            escape(joined)
        ));
    }
    if let Some((_, next, at)) = rollback.next_level() {
        // Named, not mentioned: a mention would notify them before their time.
        parts.push(format!(
            "Next: `{}` joins at {} if nobody approves, and is mentioned then; *Escalate now* brings them in at once.",
            escape(&next.role),
            hhmm(at)
        ));
    }
    if let Some(at) = rollback.expires_at {
        parts.push(format!("Expires at {} unapproved.", hhmm(at)));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn role_names(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| format!("`{}`", escape(r)))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn headline(rollback: &Rollback) -> String {
    let target = rollback
        .request
        .target
        .as_deref()
        .map(|t| format!(" to {t}"))
        .unwrap_or_default();
    let drill = if rollback.request.drill { "🧪 DRILL · " } else { "" };
    format!(
        "{drill}Rollback {}: {}{}",
        rollback.id, rollback.request.service, target
    )
}

/// What the decision matrix says of low severity, wherever a low request is made or shown.
pub(super) const LOW_ADVICE: &str = "The decision matrix's advice for low severity: usually a forward fix, not a rollback (monitor and fix: minor bugs with workarounds, small slowdowns, cosmetic issues).";

/// Each severity as the decision matrix describes it, for the request form (75 characters each).
pub(super) fn severity_description(severity: crate::domain::Severity) -> &'static str {
    use crate::domain::Severity::*;
    match severity {
        Critical => "Crash, data corruption, breach, errors >10%: runs at once",
        High => "Errors 1-10%, key feature broken: on-call lead approves",
        Medium => "Degraded, subset of users: team lead evaluates",
        Low => "Minor, has a workaround: usually a forward fix, no approval",
    }
}

const DRILL_NOTE: &str = "🧪 *This is a drill.* Approvals, escalation and gates work as in a real rollback, but no step is executed (each shows what it would run, or runs its drill override), and neither the status page nor the stakeholder channels hear of it.";

fn state_line(rollback: &Rollback) -> String {
    let total = rollback.plan.steps.len();
    match &rollback.state {
        State::AwaitingApproval if rollback.request.drill => format!(
            "⏳ *Awaiting approval* (drill): {} of {} so far. Next: an approver below clicks *Approve* to rehearse the plan; no step is executed.",
            rollback.valid_approvals(),
            rollback.approvals_required
        ),
        State::AwaitingApproval => format!(
            "⏳ *Awaiting approval*: {} of {} so far. Next: an approver below clicks *Approve* to run the plan exactly as shown.",
            rollback.valid_approvals(),
            rollback.approvals_required
        ),
        State::Queued if rollback.approvals_required == 0 && rollback.steps.is_empty() => {
            "▶️ *No approval needed*: starting the runbook now.".into()
        }
        State::Queued if rollback.steps.is_empty() => "▶️ *Approved*: starting the runbook now.".into(),
        State::Queued => "▶️ *Going on*: the next step starts now.".into(),
        State::Running if let Some(asked) = &rollback.abort_requested => format!(
            "🛑 *Stopping* step {} of {total}, {}: {} asked to abort at {}. Nothing after it will start.",
            asked.index + 1,
            step_name(rollback, asked.index),
            user(&asked.by),
            hhmm(asked.at)
        ),
        State::Running => {
            let current = rollback.steps.last().map(|s| s.index).unwrap_or(0);
            let name = step_name(rollback, current);
            // When it started and when it is stopped: a hung step must not look like progress.
            let timing = match rollback.steps.last().filter(|s| s.result.is_none()) {
                Some(record) => {
                    let limit = rollback.plan.steps[current]
                        .action
                        .time_limit()
                        .and_then(|l| chrono::Duration::from_std(l).ok())
                        .map(|l| {
                            format!(
                                "; it is stopped if it has not finished by {}",
                                hhmm(record.started_at + l)
                            )
                        })
                        .unwrap_or_default();
                    let run = rollback
                        .started_at
                        .map(|at| format!(" (the run started at {})", hhmm(at)))
                        .unwrap_or_default();
                    format!(" Step started at {}{run}{limit}.", hhmm(record.started_at))
                }
                None => String::new(),
            };
            format!(
                "🔄 *Running* step {} of {total}: {name}.{timing} Output goes to the thread.",
                current + 1
            )
        }
        State::Succeeded => {
            let took = rollback
                .elapsed()
                .map(|d| format!(" in {}", duration_text(d.num_milliseconds().max(0) as u64)))
                .unwrap_or_default();
            format!("✅ *Succeeded*: all {total} steps ran{took}.")
        }
        State::Failed { step, reason } => {
            let name = step_name(rollback, *step);
            format!(
                "❌ *Failed* at step {} of {total}, *{name}*: {}. The steps after it did not run. Output is in the thread.",
                step + 1,
                escape(reason)
            )
        }
        State::Rejected { by, reason } => {
            let why = reason
                .as_deref()
                .map(|r| format!(": “{}”", escape(r)))
                .unwrap_or_default();
            format!("🚫 *Rejected* by {}{why}. Nothing ran.", user(by))
        }
        State::Cancelled { by } => format!("🛑 *Cancelled* by {}. Nothing ran.", user(by)),
        State::Paused { step } => {
            let paused = &rollback.plan.steps[*step];
            let (n, name) = (step + 1, escape(&paused.name));
            match (&paused.confirm, &paused.action) {
                (Some(phrase), _) => format!(
                    "⏸️ *Paused before step {n} of {total}, {name}*: it is destructive. Next: click *Confirm…* and type `{}` exactly to run it, or *Abort*.",
                    escape(phrase)
                ),
                (None, StepAction::Gate { message }) => format!(
                    "⏸️ *Paused at step {n} of {total}, {name}*: {}. Next: *Continue* runs the rest; *Abort* stops here.",
                    escape(message)
                ),
                (None, _) => format!("⏸️ *Paused* before step {n} of {total}, {name}."),
            }
        }
        State::Expired => {
            let waited = rollback
                .expires_at
                .map(|at| at - rollback.requested_at)
                .and_then(|d| d.to_std().ok());
            let waited = waited
                .map(|d| format!(" within {}", humantime::format_duration(d)))
                .unwrap_or_default();
            format!("⌛ *Expired*: nobody approved it{waited}. Nothing ran. Request it again if it is still needed.")
        }
        State::Interrupted { step } => {
            let name = step_name(rollback, *step);
            let retry = if rollback.plan.steps[*step].confirm.is_some() {
                "*Retry step* asks for its confirmation phrase again, then runs it"
            } else {
                "*Retry step* runs it again"
            };
            format!(
                "⚠️ *Interrupted* at step {} of {total}, *{name}*: the rollbot process running it stopped. That attempt is not running any more (a step is stopped when its process can no longer renew its lease), but whether it took effect is unknown. Check it, then choose: {retry}, *Skip step* goes on with the next step, *Abort* stops here.",
                step + 1
            )
        }
        State::Aborted { step, by } => {
            let name = step_name(rollback, *step);
            format!(
                "🛑 *Aborted* by {} at step {} of {total}, *{name}*. The steps from there on did not run.",
                user(by),
                step + 1
            )
        }
    }
}

/// A step's name, escaped, by its index.
fn step_name(rollback: &Rollback, index: usize) -> String {
    rollback
        .plan
        .steps
        .get(index)
        .map(|s| escape(&s.name))
        .unwrap_or_default()
}

fn step_icon(rollback: &Rollback, index: usize) -> &'static str {
    match rollback.steps.iter().rev().find(|s| s.index == index) {
        None => "▫️",
        Some(s) => match &s.result {
            None => "🔄",
            Some(r) if r.outcome == StepOutcome::Succeeded => "✅",
            Some(r) if r.outcome == StepOutcome::Interrupted => "⚠️",
            // A drill showed it without running it: not a failure.
            Some(r) if r.outcome == StepOutcome::Rehearsed => "🧪",
            Some(_) => "❌",
        },
    }
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, MAX_SECTION_CHARS)}})
}

fn context(text: String) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&text, MAX_SECTION_CHARS)}]})
}

/// The dialog Slack shows before a retry: the interrupted attempt may have done its work.
fn retry_confirm(rollback: &Rollback, index: usize) -> Value {
    let step = &rollback.plan.steps[index];
    let phrase = if step.confirm.is_some() {
        " You will be asked for its confirmation phrase again before it runs."
    } else {
        ""
    };
    let how = match rollback.state {
        State::Failed { .. } => "failed, and may have done part of its work",
        State::Aborted { .. } => "was aborted, and may have done part of its work",
        _ => "may already have taken effect before it was interrupted",
    };
    json!({
        "title": {"type": "plain_text", "text": "Run this step again?"},
        "text": {"type": "plain_text", "text": truncate(&format!(
            "Step {} “{}” {how}. Check it first: running it again repeats it.{phrase}",
            index + 1,
            step.name
        ), 300)},
        "confirm": {"type": "plain_text", "text": "Retry step"},
        "deny": {"type": "plain_text", "text": "Not yet"},
        "style": "danger",
    })
}

/// The dialog before an approval: what it sets off.
fn approve_confirm(rollback: &Rollback) -> Value {
    let steps = rollback.plan.steps.len();
    let destructive = rollback.plan.steps.iter().filter(|s| s.confirm.is_some()).count();
    let destructive = match destructive {
        0 => String::new(),
        n => format!(" {n} of them destructive (each asks for its phrase)."),
    };
    let what = if rollback.request.drill {
        "rehearses (nothing is executed)"
    } else {
        "runs"
    };
    json!({
        "title": {"type": "plain_text", "text": format!("Approve {}?", rollback.id)},
        "text": {"type": "plain_text", "text": truncate(&format!(
            "Your approval of this {} rollback {what} the plan with digest `{}`: {steps} step(s) on {}, in order, once the approvals are complete.{destructive}",
            rollback.request.severity,
            &rollback.plan_digest[..12],
            rollback.request.service
        ), 300)},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Not yet"},
    })
}

/// The dialog before approving over a failed preflight check: what failed, and that the
/// approval says so.
fn approve_despite_preflight_confirm(rollback: &Rollback, failed: &[String]) -> Value {
    json!({
        "title": {"type": "plain_text", "text": truncate(&format!("Approve {} anyway?", rollback.id), 24)},
        "text": {"type": "plain_text", "text": truncate(&format!(
            "Preflight failed: {}. Approving runs the plan with digest `{}` as shown all the same, and the card, the timeline and the post-mortem record that you approved despite the failed check.",
            failed.join("; "),
            &rollback.plan_digest[..12]
        ), 300)},
        "confirm": {"type": "plain_text", "text": "Approve anyway"},
        "deny": {"type": "plain_text", "text": "Not yet"},
        "style": "danger",
    })
}

/// The dialog before skipping an interrupted step.
fn skip_confirm(rollback: &Rollback, index: usize) -> Value {
    let step = &rollback.plan.steps[index];
    json!({
        "title": {"type": "plain_text", "text": "Skip this step?"},
        "text": {"type": "plain_text", "text": truncate(&format!(
            "The run goes on after step {} “{}” as if it had done its work. Skip only if you checked that it did, or that it is not needed.",
            index + 1,
            step.name
        ), 300)},
        "confirm": {"type": "plain_text", "text": "Skip step"},
        "deny": {"type": "plain_text", "text": "Not yet"},
    })
}

/// The dialog before an abort: what stops, and what will not run.
fn abort_confirm(rollback: &Rollback, index: usize) -> Value {
    let step = &rollback.plan.steps[index];
    let later: Vec<&str> = rollback.plan.steps[index + 1..]
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let running = if rollback.step_in_flight() == Some(index) {
        format!(
            "Step {} “{}” is stopped now (SIGTERM, then SIGKILL after {}s).",
            index + 1,
            step.name,
            crate::domain::ABORT_GRACE.as_secs()
        )
    } else {
        format!("The run stops before step {} “{}”.", index + 1, step.name)
    };
    let never = if later.is_empty() {
        String::new()
    } else {
        format!(" Never run: {}.", later.join(", "))
    };
    json!({
        "title": {"type": "plain_text", "text": format!("Abort {}?", rollback.id)},
        "text": {"type": "plain_text", "text": truncate(&format!(
            "{running}{never} The system may be left half-way."
        ), 300)},
        "confirm": {"type": "plain_text", "text": "Abort"},
        "deny": {"type": "plain_text", "text": "Keep running"},
        "style": "danger",
    })
}

/// A Block Kit button for one of rollbot's controls, encoded by `slack::wire`.
fn button(control: Button, label: &str, style: Option<&str>) -> Value {
    let mut button = json!({
        "type": "button",
        "action_id": control.action_id(),
        "text": {"type": "plain_text", "text": label},
        "value": control.value(),
    });
    if let Some(style) = style {
        button["style"] = json!(style);
    }
    button
}

#[cfg(test)]
mod form_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod thread_tests;
