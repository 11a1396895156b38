//! Every message a person sees, built by pure functions from state. User-supplied text is
//! always escaped for mrkdwn, and every block stays inside Block Kit's limits.
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
    if member.starts_with('S') {
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

fn hhmm(at: DateTime<Utc>) -> String {
    at.format("%H:%M UTC").to_string()
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
fn ladder_line(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> Option<String> {
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
        parts.push(format!(
            "Next: `{}` ({}) joins at {} if nobody approves; *Escalate now* brings them in at once.",
            escape(&next.role),
            members_of(std::slice::from_ref(&next.role), directory, None),
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

const DRILL_NOTE: &str = "🧪 *This is a drill.* Approvals, escalation and gates work as in a real rollback, but no step is executed (each shows what it would run, or runs its drill override), and neither the status page nor the stakeholder channels hear of it.";

fn state_line(rollback: &Rollback) -> String {
    let total = rollback.plan.steps.len();
    match &rollback.state {
        State::AwaitingApproval => format!(
            "⏳ *Awaiting approval*: {} of {} so far. Next: an approver below clicks *Approve* to run the plan exactly as shown.",
            rollback.valid_approvals(),
            rollback.approvals_required
        ),
        State::Queued => "▶️ *Approved*: starting the runbook now.".into(),
        State::Running => {
            let current = rollback.steps.last().map(|s| s.index).unwrap_or(0);
            let name = step_name(rollback, current);
            format!(
                "🔄 *Running* step {} of {total}: {name}. Output goes to the thread.",
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
            Some(_) => "❌",
        },
    }
}

/// The rollback's card in the channel, re-rendered from current state on every change.
pub fn card(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>, status_page: bool) -> Message {
    let id = rollback.id;
    let request = &rollback.request;
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&escape(&headline(rollback)), MAX_HEADER_CHARS), "emoji": true}
    })];
    if rollback.request.drill {
        blocks.push(context(DRILL_NOTE.into()));
    }
    if rollback.review_required && !rollback.request.drill {
        blocks.push(section(
            "🚨 *Critical severity: runs without approval.* A post-incident review is required.".into(),
        ));
    }
    blocks.push(section(state_line(rollback)));
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
    ];
    for approval in &rollback.approvals {
        fields.push(format!(
            "*Approved by*\n{} (`{}`) at {}",
            user(&approval.by),
            escape(&approval.role),
            hhmm(approval.at)
        ));
    }
    fields.truncate(10);
    blocks.push(json!({
        "type": "section",
        "fields": fields.into_iter().map(|f| json!({"type": "mrkdwn", "text": f})).collect::<Vec<_>>()
    }));

    let steps: Vec<String> = rollback
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{} {}. *{}*\n{}",
                step_icon(rollback, i),
                i + 1,
                escape(&s.name),
                code_block(&step_line(&s.action))
            )
        })
        .collect();
    let plan_header = format!(
        "*Plan* (runbook `{}`, digest `{}`): exactly what runs, in order.\n",
        escape(&request.runbook),
        &rollback.plan_digest[..12]
    );
    blocks.push(section(plan_header + &steps.join("\n")));

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
            if let Some(line) = ladder_line(rollback, directory) {
                blocks.push(context(line));
            }
            let mut buttons = vec![
                button("approve", "Approve", id, Some("primary")),
                button("reject", "Reject", id, Some("danger")),
            ];
            if rollback.next_level().is_some() {
                buttons.push(button("escalate", "Escalate now", id, None));
            }
            buttons.push(button("cancel", "Cancel", id, None));
            blocks.push(json!({"type": "actions", "block_id": format!("rollback:{id}"), "elements": buttons}));
            blocks.push(context(
                "*Approve* runs the plan above as shown. *Reject* asks for a reason and closes the request without running anything. *Cancel* withdraws it (requester or approvers).".into(),
            ));
        }
        State::Interrupted { step } => {
            let at_step = format!("{id}@{step}");
            let mut retry = button("retry", "Retry step", &at_step, Some("danger"));
            retry["confirm"] = retry_confirm(rollback, step);
            blocks.push(json!({
                "type": "actions",
                "block_id": format!("rollback:{id}"),
                "elements": [
                    retry,
                    button("skip", "Skip step", &at_step, None),
                    button("abort", "Abort", &at_step, None),
                ]
            }));
            blocks.push(context(
                "The requester or anyone who may approve it can decide. rollbot never runs a started step again by itself.".into(),
            ));
        }
        State::Paused { step } => {
            let paused = &rollback.plan.steps[step];
            let at_step = format!("{id}@{step}");
            let first = if paused.confirm.is_some() {
                button("confirm", "Confirm…", &at_step, Some("danger"))
            } else {
                button("continue", "Continue", &at_step, Some("primary"))
            };
            blocks.push(json!({
                "type": "actions",
                "block_id": format!("rollback:{id}"),
                "elements": [first, button("abort", "Abort", &at_step, None)]
            }));
            blocks.push(context(
                "The requester or anyone who may approve it can answer. *Abort* stops the run here; nothing after this step runs.".into(),
            ));
        }
        State::Queued => {
            blocks.push(json!({
                "type": "actions",
                "block_id": format!("rollback:{id}"),
                "elements": [button("cancel", "Cancel", id, None)]
            }));
            blocks.push(context("*Cancel* stops it before the first step starts.".into()));
        }
        State::Succeeded if status_page => match &rollback.resolved {
            None => {
                blocks.push(json!({
                    "type": "actions",
                    "block_id": format!("rollback:{id}"),
                    "elements": [button("resolve", "Mark resolved", id, Some("primary"))]
                }));
                blocks.push(context(
                    "Status page: *monitoring*. *Mark resolved* once the service is healthy: the incident is resolved and its components set operational.".into(),
                ));
            }
            Some(resolution) => {
                let how = match &resolution.by {
                    Some(by) => format!("by {}", user(by)),
                    None => "at the end of the watch window".to_owned(),
                };
                blocks.push(context(format!(
                    "Status page: *resolved* {how} at {}.",
                    hhmm(resolution.at)
                )));
            }
        },
        _ => {}
    }
    let text = format!("{}: {}", escape(&headline(rollback)), state_line(rollback));
    Message {
        text: truncate(&text, MAX_SECTION_CHARS),
        blocks,
    }
}

/// What a proposal's card needs besides the proposal: the plan it would freeze (or why none),
/// and what its severity asks for.
pub struct ProposalContext<'a> {
    pub plan: &'a Result<Plan, Refusal>,
    pub approvals: u32,
    pub approver_roles: &'a [String],
}

/// A link for mrkdwn: only http(s), escaped, and unable to break out of its `<…|…>`.
fn link(url: &str, label: &str) -> Option<String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let url = escape(url).replace('|', "%7C");
    Some(format!("<{url}|{}>", escape(label)))
}

fn day_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Most alerts a card lists; the rest are counted.
const PROPOSAL_ALERTS_SHOWN: usize = 5;

/// The "Proposed rollback" card of an alert group: what fired, the plan a start would freeze,
/// and what the buttons do. Start disappears once the alert resolves or someone decided.
pub fn proposal_card(proposal: &Proposal, context_of: &ProposalContext) -> Message {
    let id = proposal.id;
    let headline = format!("Proposed rollback: {}", proposal.service);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&headline, MAX_HEADER_CHARS), "emoji": true}
    })];
    blocks.push(context(format!(
        "*{id}* from Alertmanager. Nothing runs unless someone starts it and the policy's approvals are given."
    )));

    // One section per alert, each cut before escaping, so no alert can crowd out the others.
    for alert in proposal.alerts.iter().take(PROPOSAL_ALERTS_SHOWN) {
        let icon = if alert.firing { "🔥" } else { "✅" };
        let mut line = format!("{icon} *{}*", escape(&truncate(&alert.name, 100)));
        match (alert.firing, alert.starts_at, alert.ends_at) {
            (true, Some(start), _) => line.push_str(&format!(" firing since {}", day_time(start))),
            (true, None, _) => line.push_str(" firing"),
            (false, _, Some(end)) => line.push_str(&format!(" resolved at {}", day_time(end))),
            (false, _, None) => line.push_str(" resolved"),
        }
        if let Some(summary) = &alert.summary {
            line.push_str(&format!(": {}", escape(&truncate(summary, 300))));
        }
        if let Some(source) = alert
            .source
            .as_deref()
            .filter(|u| u.len() <= 1000)
            .and_then(|u| link(u, "source"))
        {
            line.push_str(&format!(" ({source})"));
        }
        blocks.push(section(line));
    }
    let hidden = proposal.alerts.len().saturating_sub(PROPOSAL_ALERTS_SHOWN) as u64 + proposal.truncated;
    if hidden > 0 {
        blocks.push(context(format!("…and {hidden} more alert(s) in this group.")));
    }

    let labels: Vec<String> = proposal.common_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let runbook = match context_of.plan {
        Ok(plan) => format!("`{}`", escape(&plan.runbook)),
        Err(_) => "(none)".into(),
    };
    let fields = [
        format!("*Service*\n{}", escape(&proposal.service)),
        format!("*Severity*\n{}", severity_label(proposal.severity)),
        format!(
            "*Target*\n{}",
            proposal
                .target
                .as_deref()
                .map(|t| escape(&truncate(t, 200)))
                .unwrap_or_else(|| "(not in the alert)".into())
        ),
        format!("*Runbook*\n{runbook}"),
        format!(
            "*Labels*\n{}",
            if labels.is_empty() {
                "(none in common)".into()
            } else {
                // Escaping may grow the text fivefold; a field holds 2000 characters.
                code_block(&truncate(&labels.join(" "), 350))
            }
        ),
    ];
    blocks.push(json!({
        "type": "section",
        "fields": fields.iter().map(|f| json!({"type": "mrkdwn", "text": f})).collect::<Vec<_>>()
    }));
    match context_of.plan {
        Ok(plan) => blocks.push(section(format!(
            "*Plan that would run* (runbook `{}`, digest `{}`):\n{}",
            escape(&plan.runbook),
            plan.short_digest(),
            code_block(&plan_text(plan))
        ))),
        Err(why) => blocks.push(section(format!(
            "*No plan can be built from this alert:* {}",
            refusal(why).text
        ))),
    }

    let open = proposal.resolved_at.is_none() && proposal.decision.is_none();
    match (&proposal.decision, proposal.rollback) {
        (Some(Decision::Started { by, at }), Some(rollback)) if by.0 == crate::domain::SYSTEM_USER => {
            blocks.push(section(format!(
                "▶️ rollbot filed *{rollback}* from this alert at {} (this service files requests automatically). It waits for approval on its own card.",
                hhmm(*at)
            )))
        }
        (Some(Decision::Started { by, at }), Some(rollback)) => blocks.push(section(format!(
            "▶️ {} started *{rollback}* from this alert at {}. Follow it on its own card.",
            user(by),
            hhmm(*at)
        ))),
        (Some(Decision::Dismissed { by, at }), _) => blocks.push(section(format!(
            "🔕 Dismissed by {} at {}. To roll back anyway, use `/rollback`.",
            user(by),
            hhmm(*at)
        ))),
        _ => {}
    }
    if let Some(at) = proposal.resolved_at {
        blocks.push(section(format!(
            "✅ *The alert resolved* at {}.{}",
            hhmm(at),
            if proposal.decision.is_none() {
                " Start is no longer offered."
            } else {
                ""
            }
        )));
    }
    if let Some(why) = &proposal.auto_request_skipped
        && proposal.decision.is_none()
    {
        blocks.push(context(format!("Not filed automatically: {why}")));
    }
    if open {
        let mut buttons = vec![];
        if context_of.plan.is_ok() {
            buttons.push(button("start_proposal", "Start rollback", id, Some("primary")));
        }
        buttons.push(button("dismiss_proposal", "Dismiss", id, None));
        blocks.push(json!({"type": "actions", "block_id": format!("proposal:{id}"), "elements": buttons}));
        let start = if context_of.plan.is_err() {
            "*Start rollback* is not offered: the plan above cannot be built from this alert; use `/rollback` with a target.".to_owned()
        } else if context_of.approvals == 0 {
            format!(
                "*Start rollback* files this as your request. 🚨 At {} severity it runs *at once, without approval*, and flags a post-incident review.",
                proposal.severity
            )
        } else {
            format!(
                "*Start rollback* files this as your request; nothing runs until {} approval(s) from {} on its card.",
                context_of.approvals,
                role_names(context_of.approver_roles)
            )
        };
        blocks.push(context(format!("{start} *Dismiss* closes the proposal for everyone.")));
    }
    blocks.push(context(format!(
        "Notified {} time(s); first at {}, last at {}.",
        proposal.notifications,
        hhmm(proposal.first_seen),
        hhmm(proposal.last_seen)
    )));
    if let Some(url) = proposal.external_url.as_deref().and_then(|u| link(u, "Alertmanager")) {
        blocks.push(context(format!("Group in {url}")));
    }
    let lead = proposal.lead_alert().map_or("an alert", |a| a.name.as_str());
    let state = match (&proposal.decision, proposal.resolved_at) {
        (Some(Decision::Started { .. }), _) => "started",
        (Some(Decision::Dismissed { .. }), _) => "dismissed",
        (None, Some(_)) => "resolved",
        (None, None) => "firing",
    };
    Message {
        text: truncate(
            &format!("{headline} ({id}): {} {state}", escape(lead)),
            MAX_SECTION_CHARS,
        ),
        blocks,
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
    json!({
        "title": {"type": "plain_text", "text": "Run this step again?"},
        "text": {"type": "plain_text", "text": truncate(&format!(
            "Step {} “{}” may already have taken effect before it was interrupted. Check it first: running it again repeats it.{phrase}",
            index + 1,
            step.name
        ), 300)},
        "confirm": {"type": "plain_text", "text": "Retry step"},
        "deny": {"type": "plain_text", "text": "Not yet"},
        "style": "danger",
    })
}

fn button(action_id: &str, label: &str, value: impl std::fmt::Display, style: Option<&str>) -> Value {
    let mut button = json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value.to_string(),
    });
    if let Some(style) = style {
        button["style"] = json!(style);
    }
    button
}

pub fn step_started(rollback: &Rollback, index: usize) -> Message {
    let step = &rollback.plan.steps[index];
    let (icon, verb, action) = match (rollback.request.drill, &step.drill) {
        (false, _) => ("▶️", "started", &step.action),
        (true, None) => ("🧪", "is not run in a drill; it would run", &step.action),
        (true, Some(instead)) => ("🧪", "runs its drill override instead", instead.as_ref()),
    };
    Message::plain(format!(
        "{icon} Step {}/{} *{}* {verb}\n{}",
        index + 1,
        rollback.plan.steps.len(),
        escape(&step.name),
        code_block(&step_line(action))
    ))
}

pub fn step_finished(rollback: &Rollback, index: usize, result: &StepResult) -> Message {
    let step = &rollback.plan.steps[index];
    let exit = result.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
    let (icon, verb) = match result.outcome {
        StepOutcome::Succeeded => ("✅", "succeeded".to_owned()),
        StepOutcome::Failed => ("❌", "failed".to_owned()),
        StepOutcome::TimedOut => ("⏱️", "timed out and was killed".to_owned()),
        StepOutcome::Interrupted => ("⚠️", "was interrupted".to_owned()),
        StepOutcome::Rehearsed => ("🧪", "was not run (drill)".to_owned()),
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
    if !result.outcome.passed() && step.on_failure == crate::domain::plan::OnFailure::Continue {
        head += "\n_This step may fail (`on_failure = \"continue\"`): the run goes on._";
    }
    // A rehearsed step ran nothing, so it has no output to speak of.
    let output = if result.outcome == StepOutcome::Rehearsed {
        String::new()
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

fn minutes_seconds(d: chrono::Duration) -> String {
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
pub fn run_finished(rollback: &Rollback) -> Message {
    Message::plain(format!("{} {}", rollback.id, state_line(rollback)))
}

/// In the thread when a ladder level joins: its people are mentioned so they are notified.
pub fn escalated(rollback: &Rollback, level: usize, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let Some(escalation) = rollback.escalations.iter().find(|e| e.level == level) else {
        return Message::plain(format!("{} escalated to level {level}.", rollback.id));
    };
    let why = match &escalation.by {
        Some(by) => format!("{} asked to escalate", user(by)),
        None => {
            let waited = (escalation.at - rollback.requested_at).to_std().unwrap_or_default();
            format!(
                "nobody approved for {}",
                humantime::format_duration(std::time::Duration::from_secs(waited.as_secs() / 60 * 60))
            )
        }
    };
    Message::plain(format!(
        "⏫ *{}* escalated to `{}` ({why}): {}, you may now approve or reject it on the card above.",
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
pub fn paused(rollback: &Rollback, index: usize) -> Message {
    Message::plain(format!("{} {}", rollback.id, state_line_for_pause(rollback, index)))
}

fn state_line_for_pause(rollback: &Rollback, index: usize) -> String {
    let mut paused = rollback.clone();
    paused.state = State::Paused { step: index };
    state_line(&paused)
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
pub fn interrupted(rollback: &Rollback, index: usize) -> Message {
    let mut interrupted = rollback.clone();
    interrupted.state = State::Interrupted { step: index };
    Message::plain(format!("{} {}", rollback.id, state_line(&interrupted)))
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

/// The modal that asks why a rollback is rejected.
pub fn reject_modal(id: RollbackId) -> Value {
    json!({
        "type": "modal",
        "callback_id": "reject",
        "private_metadata": id.to_string(),
        "title": {"type": "plain_text", "text": truncate(&format!("Reject {id}"), 24)},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Keep it"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("Rejecting *{id}* closes it; nothing will run. The reason is shown on the card and kept in the timeline.")}},
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why reject it?"},
                "element": {"type": "plain_text_input", "action_id": "reason", "multiline": true, "max_length": 500}
            }
        ]
    })
}

/// The modal where a destructive step's phrase must be typed.
pub fn confirm_modal(rollback: &Rollback, index: usize) -> Value {
    let step = &rollback.plan.steps[index];
    let phrase = step.confirm.as_deref().unwrap_or_default();
    json!({
        "type": "modal",
        "callback_id": "confirm",
        "private_metadata": format!("{}:{index}", rollback.id),
        "title": {"type": "plain_text", "text": truncate(&format!("Confirm {}", rollback.id), 24)},
        "submit": {"type": "plain_text", "text": "Run this step"},
        "close": {"type": "plain_text", "text": "Not now"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!(
                "Step {} *{}* is destructive. It will run:\n{}\nType `{}` to run it.",
                index + 1, escape(&step.name), code_block(&step_line(&step.action)), escape(phrase)
            ), MAX_SECTION_CHARS)}},
            {
                "type": "input",
                "block_id": "phrase",
                "label": {"type": "plain_text", "text": "Confirmation phrase"},
                "element": {"type": "plain_text_input", "action_id": "phrase"}
            }
        ]
    })
}

/// The form that completes an incomplete `/rollback`, pre-filled with what was typed.
pub fn request_modal(services: &[&str], args: &crate::grammar::RequestArgs, channel: &str) -> Value {
    let option =
        |value: &str, label: &str| json!({"text": {"type": "plain_text", "text": truncate(label, 75)}, "value": value});
    let mut service = json!({
        "type": "static_select",
        "action_id": "service",
        "placeholder": {"type": "plain_text", "text": "Which service?"},
        "options": services.iter().take(100).map(|s| option(s, s)).collect::<Vec<_>>(),
    });
    if services.contains(&args.service.as_str()) {
        service["initial_option"] = option(&args.service, &args.service);
    }
    let mut severity = json!({
        "type": "static_select",
        "action_id": "severity",
        "placeholder": {"type": "plain_text", "text": "How severe?"},
        "options": Severity::ALL.iter().map(|s| option(s.as_str(), severity_label(*s))).collect::<Vec<_>>(),
    });
    if let Some(s) = args.severity {
        severity["initial_option"] = option(s.as_str(), severity_label(s));
    }
    let text_input = |action_id: &str, initial: Option<&String>, multiline: bool, max: usize| {
        let mut element =
            json!({"type": "plain_text_input", "action_id": action_id, "multiline": multiline, "max_length": max});
        if let Some(value) = initial {
            element["initial_value"] = json!(truncate(value, max));
        }
        element
    };
    let input = |block: &str, label: &str, element: Value, optional: bool, hint: Option<&str>| {
        let mut block = json!({"type": "input", "block_id": block, "label": {"type": "plain_text", "text": label}, "element": element, "optional": optional});
        if let Some(hint) = hint {
            block["hint"] = json!({"type": "plain_text", "text": hint});
        }
        block
    };
    // The form carries the drill mark with the channel, so the submission stays a drill.
    let (metadata, title, submit) = if args.drill {
        (format!("drill:{channel}"), "Start a drill", "Start drill")
    } else {
        (channel.to_owned(), "Request a rollback", "Request")
    };
    json!({
        "type": "modal",
        "callback_id": "request",
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            input("service", "Service", service, false, None),
            input("severity", "Severity", severity, false, Some("Decides who must approve: critical runs at once.")),
            input("target", "Target", text_input("target", args.target.as_ref(), false, 200), true, Some("What to roll back to, e.g. a revision or release.")),
            input("runbook", "Runbook", text_input("runbook", args.runbook.as_ref(), false, 100), true, Some("Leave empty for the service's default runbook.")),
            input("reason", "Reason", text_input("reason", args.reason.as_ref(), true, 500), true, Some("Required for low severity.")),
        ]
    })
}

pub fn form_opened(missing: &str) -> Message {
    Message::plain(format!(
        "Opening a form to finish the request ({missing}). Nothing is recorded until you submit it."
    ))
}

pub const WRONG_PHRASE: &str = "That is not the phrase. Type it exactly as shown above (it is case-sensitive).";
pub const REASON_NEEDED: &str = "Say why, so the requester knows what to do instead.";

/// The private answer to the requester once the request is recorded.
pub fn request_acknowledged(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let id = rollback.id;
    let next = if rollback.approvals_required == 0 {
        "Critical severity: it runs now without approval, and a post-incident review is flagged.".to_owned()
    } else {
        format!(
            "It needs {} approval(s) from {} ({}). You cannot approve your own rollback.",
            rollback.approvals_required,
            role_names(&rollback.approver_roles),
            approvers(rollback, directory)
        )
    };
    let drill = if rollback.request.drill {
        " It is a drill: nothing will be executed, and the status page and stakeholder channels are left alone."
    } else {
        ""
    };
    Message::plain(format!(
        "Recorded *{id}*: {} ({}).{drill} The card with the exact plan is being posted in this channel. {next} `/rollback status {id}` shows where it is; `/rollback cancel {id}` withdraws it before it starts.",
        escape(&headline(rollback)),
        rollback.request.severity
    ))
}

pub fn help() -> Message {
    Message::plain(
        "*rollbot* rolls a service back with the approvals your incident's severity needs.\n\
*Request a rollback*\n\
`/rollback <service> [to <target>] [runbook <name>] severity <critical|high|medium|low> [reason \"<text>\"]`\n\
e.g. `/rollback checkout-api to 41 severity high reason \"bad deploy\"`\n\
*See what would run, without requesting*: `/rollback plan checkout-api to 41`\n\
*Rehearse the whole path, nothing executed*: `/rollback drill checkout-api to 41 severity high` · `/rollback list drills`\n\
*Follow up*: `/rollback status RB-12` · `/rollback list` · `/rollback cancel RB-12` (before it starts)\n\
Critical severity runs at once and flags a post-incident review; other severities wait for *Approve* on the card from someone in the approving role. You cannot approve your own request.",
    )
}

pub fn plan_preview(plan: &Plan) -> Message {
    Message::plain(format!(
        "Plan for *{}* (runbook `{}`, digest `{}`); nothing was requested or run:\n{}",
        escape(&plan.service),
        escape(&plan.runbook),
        plan.short_digest(),
        code_block(&plan_text(plan))
    ))
}

pub fn status(rollback: &Rollback) -> Message {
    let steps: Vec<String> = rollback
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {}. {}", step_icon(rollback, i), i + 1, escape(&s.name)))
        .collect();
    Message::plain(format!(
        "*{}* ({})\n{}\n{}",
        escape(&headline(rollback)),
        rollback.request.severity,
        state_line(rollback),
        steps.join("\n")
    ))
}

pub fn list(rollbacks: &[Rollback]) -> Message {
    if rollbacks.is_empty() {
        return Message::plain(
            "No rollbacks yet in this channel. Start one with `/rollback <service> to <target> severity <level>`.",
        );
    }
    let lines: Vec<String> = rollbacks
        .iter()
        .map(|r| {
            let target = r
                .request
                .target
                .as_deref()
                .map(|t| format!(" to {}", escape(t)))
                .unwrap_or_default();
            format!(
                "• *{}*{} {}{target} · {} · {} · by {} at {}",
                r.id,
                if r.request.drill { " 🧪 drill" } else { "" },
                escape(&r.request.service),
                r.request.severity,
                r.state.name().replace('_', " "),
                user(&r.request.requester),
                r.requested_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect();
    Message::plain(format!(
        "Latest rollbacks (newest first):\n{}\n`/rollback status RB-n` for details.",
        lines.join("\n")
    ))
}

/// The post-mortem draft, privately; long drafts point to where the whole text is.
pub fn postmortem(id: RollbackId, markdown: &str) -> Message {
    const ROOM: usize = 3500;
    let body = if markdown.chars().count() > ROOM {
        format!(
            "{}\n\n_(cut here: the whole draft is printed by `rollbot postmortem {id}` and served at `/api/v1/rollbacks/{id}/postmortem.md`)_",
            markdown.chars().take(ROOM).collect::<String>()
        )
    } else {
        markdown.to_owned()
    };
    Message::plain(format!(
        "Post-mortem draft for *{id}*, from its timeline. Copy it into your incident doc and fill in the blanks:\n{}",
        code_block(&body)
    ))
}

pub fn cancelled(id: RollbackId) -> Message {
    Message::plain(format!(
        "Cancelled *{id}*. Nothing ran; the card in the channel says so."
    ))
}

pub fn not_found(id: RollbackId) -> Message {
    Message::plain(format!(
        "There is no rollback *{id}*. `/rollback list` shows the recent ones."
    ))
}

pub fn internal_error(reference: &str) -> Message {
    Message::plain(format!(
        "⚠️ Something went wrong inside rollbot (reference `{reference}`). Your request was NOT recorded; try again, and if it keeps failing give that reference to whoever runs rollbot."
    ))
}

/// The request's commit did not come back: it may be recorded, so a blind retry could file it twice.
pub fn request_outcome_unknown(reference: &str) -> Message {
    Message::plain(format!(
        "⚠️ rollbot lost its database while recording your request (reference `{reference}`), so it may or may not be recorded. Check `/rollback list` before you try again; if it is not there, try again."
    ))
}

pub fn click_failed(reference: &str) -> Message {
    Message::plain(format!(
        "⚠️ rollbot could not record your click (reference `{reference}`); nothing changed. Try again, and if it keeps failing give that reference to whoever runs rollbot."
    ))
}

fn state_phrase(state: &State) -> String {
    match state {
        State::AwaitingApproval => "awaiting approval".into(),
        State::Queued => "approved and about to start".into(),
        State::Running => "already running".into(),
        State::Succeeded => "already finished (succeeded)".into(),
        State::Failed { .. } => "already finished (failed)".into(),
        State::Rejected { by, .. } => format!("already rejected by {}", user(by)),
        State::Cancelled { by } => format!("already cancelled by {}", user(by)),
        State::Paused { step } => format!("paused before step {}, waiting for a person", step + 1),
        State::Interrupted { step } => format!("interrupted at step {}, waiting for a person", step + 1),
        State::Expired => "already expired".into(),
        State::Aborted { by, .. } => format!("already aborted by {}", user(by)),
    }
}

pub fn refusal(refusal: &Refusal) -> Message {
    use Refusal::*;
    Message::plain(match refusal {
        WrongWorkspace => {
            "rollbot only takes requests from its own Slack workspace. Ask in your workspace's incident channel.".into()
        }
        WrongChannel { allowed } => {
            let channels = allowed
                .iter()
                .map(|c| format!("<#{}>", escape(&c.0)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "Rollbacks are requested in the incident channel so everyone sees them: {channels}. Run the same command there."
            )
        }
        LivesInAnotherChannel { what, channel } => format!(
            "*{}* lives in <#{}>. Act on it there, so everyone in the incident sees it.",
            escape(what),
            escape(&channel.0)
        ),
        NotARequester { roles } => format!(
            "You are not in a role that may request rollbacks ({}). Ask the on-call engineer to request it.",
            role_names(roles)
        ),
        ReasonRequired { severity } => format!(
            "A {severity}-severity rollback needs a reason. Add `reason \"<why>\"` to the command and run it again."
        ),
        TooManyOpenRequests { open } => format!(
            "You already have {} open rollback requests ({}), the most one person may have at a time. Cancel one you no longer need (`/rollback cancel {}`) or let them finish, then ask again.",
            open.len(),
            open.iter().map(|id| format!("*{id}*")).collect::<Vec<_>>().join(", "),
            open.first().map(ToString::to_string).unwrap_or_default()
        ),
        LockHeld {
            open,
            service,
            state,
            requester,
            card,
        } => {
            let card = card
                .as_ref()
                .map(|(channel, ts)| format!(", <{}|its card>", thread_link(channel, ts)))
                .unwrap_or_default();
            format!(
                "*{}* already has an open rollback: *{open}* ({}, requested by {}{card}). One runs at a time, so that two undos cannot fight. Nothing was requested. Wait for it to finish, cancel it if it is no longer needed (`/rollback cancel {open}`), or ask its approvers in its thread.",
                escape(service),
                state_phrase(state),
                user(requester)
            )
        }
        ReasonTooLong { max } => {
            format!("The reason is longer than {max} characters. Shorten it; put details in the thread.")
        }
        UnknownService {
            service,
            suggestion,
            known,
        } => {
            let hint = match suggestion {
                Some(s) => format!(" Did you mean `{}`?", escape(s)),
                None if known.is_empty() => " No services are configured yet.".into(),
                None => format!(
                    " Known services: {}.",
                    known
                        .iter()
                        .map(|k| format!("`{}`", escape(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!("There is no service `{}`.{hint} {HELP_HINT}", escape(service))
        }
        UnknownRunbook {
            service,
            runbook,
            known,
        } => format!(
            "Service `{}` has no runbook `{}`. Its runbooks: {}. Leave `runbook` out to use the first.",
            escape(service),
            escape(runbook),
            known
                .iter()
                .map(|k| format!("`{}`", escape(k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TargetNotTaken { runbook } => format!("Runbook `{}` takes no target; leave out `to …`.", escape(runbook)),
        MissingParam { runbook, name, help } => {
            let how = if name == "target" {
                "Add `to <target>`".to_owned()
            } else {
                format!("Give `{}`", escape(name))
            };
            let help = help.as_deref().map(|h| format!(" ({})", escape(h))).unwrap_or_default();
            format!(
                "Runbook `{}` needs `{}`{help}. {how} and run the command again.",
                escape(runbook),
                escape(name)
            )
        }
        ParamMismatch {
            name,
            value,
            pattern,
            help,
        } => {
            let help = help.as_deref().map(|h| format!(": {}", escape(h))).unwrap_or_default();
            format!(
                "`{}` is not a valid `{}` (it must match `{}`{help}). Nothing was requested; fix the value and run the command again.",
                escape(&truncate(value, 100)),
                escape(name),
                escape(pattern)
            )
        }
        UnknownParam { runbook, name } => format!(
            "Runbook `{}` has no parameter `{}`. Leave it out and run the command again; `/rollback plan` shows what the runbook takes.",
            escape(runbook),
            escape(name)
        ),
        PlanTemplate { step, detail } => format!(
            "The plan could not be built: step `{}`: {}. This is a configuration problem; tell whoever runs rollbot (`rollbot check` shows it).",
            escape(step),
            escape(detail)
        ),
        NoSuchRollback { id: Some(id) } => {
            format!("There is no rollback *{id}*. `/rollback list` shows the recent ones.")
        }
        NoSuchRollback { id: None } => "That rollback does not exist. `/rollback list` shows the recent ones.".into(),
        SelfApproval { id } => format!(
            "You requested *{id}*, so you cannot approve it: a second person must. The card lists who may approve."
        ),
        NotAnApprover { id, severity, roles } => format!(
            "You cannot approve or reject *{id}*: a {severity}-severity rollback needs someone in {}. The card lists who may approve.",
            role_names(roles)
        ),
        AlreadyApprovedByYou { id, needed, have } => format!(
            "You already approved *{id}* ({have} of {needed}). It needs another approver; the card lists who may approve."
        ),
        NotAwaitingApproval { id, state, approved_by } => {
            let by = if approved_by.is_empty() {
                String::new()
            } else {
                format!(
                    " (approved by {})",
                    approved_by.iter().map(user).collect::<Vec<_>>().join(", ")
                )
            };
            format!(
                "*{id}* is {}{by}; your click changed nothing. The card shows its current state.",
                state_phrase(state)
            )
        }
        RequesterCannotReject { id } => {
            format!("You requested *{id}*; to withdraw it use *Cancel* (or `/rollback cancel {id}`).")
        }
        NotCancellable { id, state } => format!(
            "*{id}* is {}, so it can no longer be cancelled. The card shows its current state.",
            state_phrase(state)
        ),
        NotAllowedToCancel { id } => {
            format!("Only the requester or an approver can cancel *{id}*. Ask them in the thread.")
        }
        ApprovalsDoNotMatchPlan { id, valid, needed } => {
            format!("*{id}* will not run: it holds {valid} valid approval(s) for its plan but needs {needed}.")
        }
        SystemOnly => "That action is rollbot's own and cannot be taken from Slack.".into(),
        NothingToResolve { id } => format!(
            "*{id}* has no open status page incident to resolve (it is resolved already, or the rollback has not succeeded); nothing changed."
        ),
        MembershipUnknown { id, roles } => format!(
            "rollbot could not check with Slack whether you are in {} (a user group), so it did not act{}. Nothing changed; try again in a minute.",
            role_names(roles),
            id.map(|id| format!(" on *{id}*")).unwrap_or_default()
        ),
        NoHigherLevel { id } => {
            format!("*{id}* is already at the top of its escalation path; ask the people on the card directly.")
        }
        NotAllowedToEscalate { id } => {
            format!("Only the requester or someone who may approve *{id}* can escalate it. Ask them in the thread.")
        }
        NotPaused { id, state } => format!(
            "*{id}* is {}, not waiting at a step; your click changed nothing. The card shows its current state.",
            state_phrase(state)
        ),
        StaleStep { id, clicked, waiting } => format!(
            "That button was for step {} of *{id}*, but it now waits at step {}; nothing changed. Use the buttons on the card as it is now.",
            clicked + 1,
            waiting + 1
        ),
        NotAllowedAtGate { id } => format!(
            "Only the requester or someone who may approve *{id}* can answer at this step. Ask them in the thread."
        ),
        WrongPhrase { id } => {
            format!("The confirmation phrase for *{id}* did not match; the step did not run. {WRONG_PHRASE}")
        }
        OutOfOrder { id, detail } => format!("*{id}*: {}; nothing changed.", escape(detail)),
        AutomaticRequestNeedsApproval { severity } => format!(
            "rollbot did not file this request by itself: a {severity}-severity rollback runs without approval, so a person must start it. Use *Start rollback* on the proposal, or `/rollback`."
        ),
        NoSuchProposal { id } => {
            format!("There is no proposal *{id}*; nothing changed. Use `/rollback` to request a rollback.")
        }
        ProposalResolved { id, service } => format!(
            "The alert behind *{id}* has resolved, so it is no longer offered; nothing changed. To roll back anyway, type `/rollback {} to <target> severity <level>`.",
            escape(service)
        ),
        ProposalDismissed { id, by } => format!(
            "*{id}* was dismissed by {}; nothing changed. To roll back anyway, use `/rollback`.",
            user(by)
        ),
        ProposalStarted { id, rollback, by } => format!(
            "{} already started *{rollback}* from *{id}*; nothing changed. Follow it on its card (`/rollback status {rollback}`).",
            user(by)
        ),
    })
}

pub fn parse_error(error: &ParseError) -> Message {
    use ParseError::*;
    let suggest = |s: &Option<String>| {
        s.as_ref()
            .map(|s| format!(" Did you mean `{}`?", escape(s)))
            .unwrap_or_default()
    };
    let text = match error {
        TooLong { max } => format!("That command is longer than {max} characters."),
        UnterminatedQuote => "A quote is opened but never closed. Close it: `reason \"bad deploy\"`.".into(),
        MissingService { found: None } => {
            "Which service? Name it first: `/rollback <service> to <target> severity <level>`.".into()
        }
        MissingService { found: Some(word) } => format!(
            "Which service? The command starts with `{}`; name the service first: `/rollback <service> {} …`.",
            escape(word),
            escape(word)
        ),
        BadServiceName { word } => format!(
            "`{}` is not a service name: names are letters, digits, `-`, `_` and `.`.",
            escape(&truncate(word, 100))
        ),
        UnknownWord { word, suggestion } => format!(
            "I don't understand `{}`.{} After the service, use `to`, `runbook`, `severity` or `reason`.",
            escape(&truncate(word, 100)),
            suggest(suggestion)
        ),
        MissingValue { keyword } => format!(
            "`{keyword}` needs a value, e.g. {}.",
            match *keyword {
                "to" => "`to 41`",
                "runbook" => "`runbook kubernetes`",
                "severity" => "`severity high`",
                _ => "`reason \"bad deploy\"`",
            }
        ),
        Repeated { keyword } => format!("`{keyword}` is given twice; keep one."),
        BadSeverity { word, suggestion } => format!(
            "`{}` is not a severity.{} Use critical, high, medium or low.",
            escape(&truncate(word, 100)),
            suggest(suggestion)
        ),
        BadId { command, word: None } => {
            format!("`/rollback {command}` needs a rollback id, e.g. `/rollback {command} RB-12`.")
        }
        BadId {
            command,
            word: Some(word),
        } => format!(
            "`{}` is not a rollback id; write it like `RB-12`, e.g. `/rollback {command} RB-12`.",
            escape(&truncate(word, 100))
        ),
        UnexpectedAfter { command, word } => format!(
            "`/rollback {command}` does not take `{}`.",
            escape(&truncate(word, 100))
        ),
    };
    Message::plain(format!("{text} {HELP_HINT}"))
}

pub fn severity_missing(args: &crate::grammar::RequestArgs) -> Message {
    let example = crate::grammar::RequestArgs {
        severity: Some(Severity::High),
        ..args.clone()
    };
    Message::plain(format!(
        "How severe is the incident? The severity decides who must approve. Run it again with one of critical, high, medium or low, e.g. `/rollback {}`. Nothing was recorded.",
        escape(&example.to_text())
    ))
}

pub fn modal_failed() -> Message {
    Message::plain(
        "rollbot could not open the form (Slack did not answer in time); nothing changed. Click the button again.",
    )
}

pub fn unknown_button() -> Message {
    Message::plain(
        "That button is not one rollbot knows (it may be from an older card); nothing changed. `/rollback status RB-n` shows a rollback's state.",
    )
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::domain::fixtures::*;
    use crate::domain::proposal::ProposalId;
    use proptest::prelude::*;

    const OPEN: char = '⟦';
    const CLOSE: char = '⟧';

    /// Whether text is inert in mrkdwn: no `<` or `>`, and every `&` starts an entity.
    fn inert(text: &str) -> bool {
        !text.contains(['<', '>'])
            && text
                .match_indices('&')
                .all(|(i, _)| ["&amp;", "&lt;", "&gt;"].iter().any(|e| text[i..].starts_with(e)))
    }

    /// Every stretch of user text (between the sentinels, or to the end where it was cut) in
    /// every string of the message.
    fn user_text_is_inert(message: &Message) -> Result<(), String> {
        let json = serde_json::to_value(message).unwrap();
        let mut strings = vec![];
        collect(&json, &mut strings);
        for text in strings {
            for (start, _) in text.match_indices(OPEN) {
                let rest = &text[start + OPEN.len_utf8()..];
                let stretch = rest.split(CLOSE).next().unwrap_or(rest);
                if !inert(stretch) {
                    return Err(format!("user text {stretch:?} is live in {text:?}"));
                }
            }
        }
        Ok(())
    }

    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            Value::Object(map) => map.values().for_each(|v| collect(v, out)),
            _ => {}
        }
    }

    /// Text a hostile person might type: markup characters, mentions, links, entities.
    fn hostile() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("<!channel>".to_owned()),
                Just("<@U0BOSS>".to_owned()),
                Just("<https://evil.example|click>".to_owned()),
                Just("&lt;".to_owned()),
                Just("&".to_owned()),
                Just("```".to_owned()),
                "[<>&|*_`~a-z ]{1,8}",
            ],
            1..12,
        )
        .prop_map(|parts| format!("{OPEN}{}{CLOSE}", parts.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Found by `user_text_is_never_markup`: a cut inside `&lt;` left a live `&`.
        #[test]
        fn truncating_escaped_text_never_splits_an_entity(text in "[<>&a]{0,40}", max in 14usize..40) {
            prop_assert!(inert(&truncate(&escape(&text), max)));
        }

        #[test]
        fn escaped_text_is_inert(text in "\\PC{0,200}") {
            prop_assert!(inert(&escape(&text)));
        }

        /// No message shows user text (reasons, targets, alert text, typed words) as markup.
        #[test]
        fn user_text_is_never_markup(reason in hostile(), target in hostile(), alert in hostile(), word in hostile()) {
            let mut story = Story::requested(Severity::High, Some(&reason));
            story.rollback.request.target = Some(target.clone());
            let rejected = story.clone().act(&actor(ON_CALL), crate::domain::Action::Reject { reason: Some(reason.clone()) });
            let mut group = alert_group(true, 2);
            group.alerts[0].name = alert.clone();
            group.alerts[0].summary = Some(alert.clone());
            group.alerts[1].source = Some(format!("https://prometheus.example.com/{alert}"));
            group.common_labels.insert("instance".into(), alert.clone());
            group.target = Some(target.clone());
            let mut proposal = Proposal::observe(None, &group, at(0)).unwrap();
            proposal.id = ProposalId(1);
            let plan = Ok(plan());
            let messages = [
                card(&story.rollback, &directory(), false),
                card(&rejected.rollback, &directory(), false),
                status(&story.rollback),
                list(&[story.rollback.clone()]),
                request_acknowledged(&story.rollback, &directory()),
                notify_step(&story.rollback, &word),
                proposal_card(&proposal, &ProposalContext { plan: &plan, approvals: 1, approver_roles: &["on_call".into()] }),
                refusal(&Refusal::UnknownService { service: word.clone(), suggestion: Some(word.clone()), known: vec![word.clone()] }),
                refusal(&Refusal::ParamMismatch { name: word.clone(), value: word.clone(), pattern: word.clone(), help: Some(word.clone()) }),
                refusal(&Refusal::OutOfOrder { id: RollbackId(1), detail: word.clone() }),
            ];
            for message in &messages {
                prop_assert!(user_text_is_inert(message).is_ok(), "{}", user_text_is_inert(message).unwrap_err());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::*;
    use crate::domain::proposal::ProposalId;
    use crate::domain::{Action, Actor, ChannelId, StepOutcome};

    fn card_json(story: &Story) -> Value {
        serde_json::to_value(card(&story.rollback, &directory(), false)).unwrap()
    }

    /// How each step kind reads on the card, in plans and in the thread, secrets as references.
    #[test]
    fn every_step_kind_as_people_read_it() {
        use crate::domain::plan::{Drift, PlanStep, SqlCheck};
        let sql = |check| StepAction::Sql {
            database: "orders".into(),
            connection: "${env:ORDERS_DATABASE_URL}".into(),
            check,
            read_only: true,
            timeout_secs: 30,
        };
        let steps = vec![
            StepAction::Http {
                method: "PATCH".into(),
                url: "https://app.launchdarkly.com/api/v2/flags/shop/new-checkout".into(),
                headers: BTreeMap::from([("Authorization".into(), "${env:LD_TOKEN}".into())]),
                body: Some(r#"{"instructions":[{"kind":"turnFlagOff"}]}"#.into()),
                expect_status: vec![200, 204],
                timeout_secs: 30,
            },
            StepAction::Health {
                url: "https://checkout.example.com/healthz".into(),
                expect_status: 200,
                body_contains: Some("ok".into()),
                within_secs: 120,
                every_ms: 5000,
            },
            sql(SqlCheck::Snapshot {
                tables: vec![],
                schema: Some("public".into()),
            }),
            sql(SqlCheck::Compare {
                default_drift: Drift::Rows(0),
                drift: BTreeMap::from([("audit_log".into(), Drift::Percent(10))]),
            }),
            sql(SqlCheck::Assert {
                query: "SELECT count(*) FROM pg_constraint WHERE contype = 'f'".into(),
                expect: ">= 3".into(),
            }),
            StepAction::Notify {
                channel: Some("C0STATUS".into()),
                text: "checkout-api <goes> into maintenance".into(),
            },
            StepAction::StatusPage {
                status: "monitoring".into(),
                message: "We are watching.".into(),
            },
        ];
        let mut story = Story::requested(Severity::High, None);
        story.rollback.plan.steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, a)| PlanStep::new(format!("Step {}", i + 1), a))
            .collect();
        insta::assert_snapshot!(plan_text(&story.rollback.plan));
        insta::assert_snapshot!(notify_step(&story.rollback, "checkout-api <goes> & comes back").text);
    }

    #[test]
    fn a_drill_is_marked_on_its_card_and_its_steps() {
        let mut story = Story::requested(Severity::High, None);
        story.rollback.request.drill = true;
        insta::assert_json_snapshot!(card_json(&story));
        insta::assert_snapshot!(step_started(&story.rollback, 0).text);
        let rehearsed = StepResult {
            outcome: StepOutcome::Rehearsed,
            ..Default::default()
        };
        insta::assert_snapshot!(step_finished(&story.rollback, 0, &rehearsed).text);
    }

    #[test]
    fn card_awaiting_approval() {
        insta::assert_json_snapshot!(card_json(&Story::requested(Severity::High, Some("bad deploy"))));
    }

    #[test]
    fn card_approved_and_queued() {
        insta::assert_json_snapshot!(card_json(
            &Story::requested(Severity::Medium, None).act(&actor(TEAM_LEAD), Action::Approve)
        ));
    }

    #[test]
    fn card_running_and_its_thread() {
        let story = Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result("deployment.apps/checkout-api rolled back"))
            .act(&Actor::system(), Action::StartStep { index: 1 });
        insta::assert_json_snapshot!(card_json(&story));
        insta::assert_snapshot!(step_started(&story.rollback, 1).text);
        insta::assert_snapshot!(
            step_finished(
                &story.rollback,
                0,
                &ok_result("deployment.apps/checkout-api rolled back")
            )
            .text
        );
    }

    #[test]
    fn card_succeeded() {
        let story = Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result(""))
            .step(1, ok_result(""));
        insta::assert_json_snapshot!(card_json(&story));
        insta::assert_snapshot!(run_finished(&story.rollback).text);
    }

    #[test]
    fn card_interrupted_asks_before_a_retry_and_a_late_result_stays_late() {
        let story = Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .act(&Actor::system(), Action::StartStep { index: 0 })
            .act(&Actor::system(), Action::Interrupt);
        insta::assert_json_snapshot!(card_json(&story));
        insta::assert_snapshot!(interrupted(&story.rollback, 0).text);
        let late = StepResult {
            outcome: StepOutcome::Interrupted,
            detail: Some(
                "stopped by the rollbot process running it: the execution lease could not be renewed in time".into(),
            ),
            output_tail: "Waiting for deployment \"checkout-api\" rollout to finish".into(),
            ..Default::default()
        };
        insta::assert_snapshot!(late_result(&story.rollback, 0, &late).text);
    }

    #[test]
    fn card_failed_says_which_step_and_why() {
        let story = Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, failed_result(1, "error: deployment \"checkout-api\" not found"));
        insta::assert_json_snapshot!(card_json(&story));
        insta::assert_snapshot!(
            step_finished(
                &story.rollback,
                0,
                &failed_result(1, "error: deployment \"checkout-api\" not found")
            )
            .text
        );
        let timed_out = StepResult {
            outcome: StepOutcome::TimedOut,
            exit_code: None,
            duration_ms: 120_000,
            output_tail: "Waiting for deployment rollout to finish".into(),
            detail: None,
            ..Default::default()
        };
        insta::assert_snapshot!(step_finished(&story.rollback, 0, &timed_out).text);
    }

    #[test]
    fn card_rejected_and_cancelled() {
        let rejected = Story::requested(Severity::High, None).act(
            &actor(ON_CALL),
            Action::Reject {
                reason: Some("the deploy is not the cause".into()),
            },
        );
        insta::assert_json_snapshot!(card_json(&rejected));
        let cancelled = Story::requested(Severity::High, None).act(&actor(REQUESTER), Action::Cancel);
        insta::assert_snapshot!(state_line(&cancelled.rollback));
    }

    #[test]
    fn card_critical() {
        insta::assert_json_snapshot!(card_json(&Story::requested(Severity::Critical, None)));
    }

    #[test]
    fn private_answers() {
        let story = Story::requested(Severity::High, Some("bad deploy"));
        insta::assert_snapshot!(request_acknowledged(&story.rollback, &directory()).text);
        insta::assert_snapshot!(help().text);
        insta::assert_snapshot!(plan_preview(&plan()).text);
        insta::assert_snapshot!(status(&story.rollback).text);
        insta::assert_snapshot!(list(&[story.rollback.clone()]).text);
        insta::assert_snapshot!(internal_error("1a2b3c4d").text);
        insta::assert_snapshot!(request_outcome_unknown("1a2b3c4d").text);
    }

    #[test]
    fn every_refusal_says_why_and_what_next() {
        let id = RollbackId(7);
        let refusals = vec![
            Refusal::WrongWorkspace,
            Refusal::WrongChannel {
                allowed: vec![ChannelId("C0INCIDENTS".into())],
            },
            Refusal::LivesInAnotherChannel {
                what: "RB-7".into(),
                channel: ChannelId("C0INCIDENTS".into()),
            },
            Refusal::NotARequester {
                roles: vec!["on_call".into()],
            },
            Refusal::ReasonRequired {
                severity: Severity::Low,
            },
            Refusal::ReasonTooLong { max: 500 },
            Refusal::TooManyOpenRequests {
                open: vec![RollbackId(3), RollbackId(4), RollbackId(9)],
            },
            Refusal::LockHeld {
                open: RollbackId(3),
                service: "checkout-api".into(),
                state: State::Running,
                requester: UserId("U0ALICE".into()),
                card: Some(("C0INCIDENTS".into(), "1700000000.000100".into())),
            },
            Refusal::UnknownService {
                service: "chekout".into(),
                suggestion: Some("checkout-api".into()),
                known: vec![],
            },
            Refusal::UnknownService {
                service: "x".into(),
                suggestion: None,
                known: vec!["checkout-api".into()],
            },
            Refusal::UnknownRunbook {
                service: "checkout-api".into(),
                runbook: "ansible".into(),
                known: vec!["kubernetes".into()],
            },
            Refusal::TargetNotTaken {
                runbook: "flags".into(),
            },
            Refusal::MissingParam {
                runbook: "kubernetes".into(),
                name: "target".into(),
                help: Some("revision".into()),
            },
            Refusal::ParamMismatch {
                name: "target".into(),
                value: "<b>".into(),
                pattern: "[0-9]+".into(),
                help: None,
            },
            Refusal::UnknownParam {
                runbook: "kubernetes".into(),
                name: "x".into(),
            },
            Refusal::PlanTemplate {
                step: "Undo".into(),
                detail: "`{{ vars.x }}` is undefined".into(),
            },
            Refusal::NoSuchRollback { id: Some(id) },
            Refusal::SelfApproval { id },
            Refusal::NotAnApprover {
                id,
                severity: Severity::High,
                roles: vec!["on_call".into(), "devops_lead".into()],
            },
            Refusal::AlreadyApprovedByYou { id, needed: 2, have: 1 },
            Refusal::NotAwaitingApproval {
                id,
                state: State::Running,
                approved_by: vec![UserId(ON_CALL.into())],
            },
            Refusal::RequesterCannotReject { id },
            Refusal::NotCancellable {
                id,
                state: State::Succeeded,
            },
            Refusal::NotAllowedToCancel { id },
            Refusal::ApprovalsDoNotMatchPlan {
                id,
                valid: 0,
                needed: 1,
            },
            Refusal::SystemOnly,
            Refusal::MembershipUnknown {
                id: Some(id),
                roles: vec!["on_call".into()],
            },
            Refusal::NoHigherLevel { id },
            Refusal::NotAllowedToEscalate { id },
            Refusal::NotPaused {
                id,
                state: State::Succeeded,
            },
            Refusal::StaleStep {
                id,
                clicked: 1,
                waiting: 2,
            },
            Refusal::NotAllowedAtGate { id },
            Refusal::WrongPhrase { id },
            Refusal::AutomaticRequestNeedsApproval {
                severity: Severity::Critical,
            },
            Refusal::NoSuchProposal { id: ProposalId(3) },
            Refusal::ProposalResolved {
                id: ProposalId(3),
                service: "checkout-api".into(),
            },
            Refusal::ProposalDismissed {
                id: ProposalId(3),
                by: UserId(ON_CALL.into()),
            },
            Refusal::ProposalStarted {
                id: ProposalId(3),
                rollback: id,
                by: UserId(REQUESTER.into()),
            },
        ];
        let text: Vec<String> = refusals.iter().map(|r| refusal(r).text).collect();
        insta::assert_snapshot!(text.join("\n"));
    }

    /// Finds every text in a message and checks Block Kit's limits on it.
    fn assert_within_block_kit_limits(message: &Message) {
        assert!(message.blocks.len() <= 50, "{} blocks", message.blocks.len());
        for block in &message.blocks {
            let kind = block["type"].as_str().unwrap();
            if kind == "header" {
                assert!(block["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER_CHARS);
            }
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(
                    text.chars().count() <= MAX_SECTION_CHARS,
                    "{kind} text of {} chars",
                    text.chars().count()
                );
            }
            for field in block["fields"].as_array().into_iter().flatten() {
                assert!(field["text"].as_str().unwrap().chars().count() <= 2000);
            }
            for element in block["elements"].as_array().into_iter().flatten() {
                if let Some(value) = element["value"].as_str() {
                    assert!(value.len() <= 2000);
                }
                if let Some(text) = element["text"].as_str() {
                    assert!(text.chars().count() <= MAX_SECTION_CHARS);
                }
            }
        }
    }

    fn proposal_json(proposal: &Proposal, severity: Severity) -> Value {
        let policy = policy().severity(severity);
        let plan = Ok(plan());
        let message = proposal_card(
            proposal,
            &ProposalContext {
                plan: &plan,
                approvals: policy.approvals,
                approver_roles: &policy.approvers,
            },
        );
        assert_within_block_kit_limits(&message);
        serde_json::to_value(message).unwrap()
    }

    fn firing_proposal() -> Proposal {
        let mut proposal = Proposal::observe(None, &alert_group(true, 2), at(0)).unwrap();
        proposal.id = ProposalId(3);
        proposal
    }

    #[test]
    fn proposal_card_firing_offers_start_and_dismiss() {
        insta::assert_json_snapshot!(proposal_json(&firing_proposal(), Severity::High));
    }

    #[test]
    fn proposal_card_after_people_or_the_alert_decided() {
        let proposal = firing_proposal();
        let started = Proposal {
            decision: Some(Decision::Started {
                by: UserId(REQUESTER.into()),
                at: at(2),
            }),
            rollback: Some(RollbackId(7)),
            ..proposal.clone()
        };
        let dismissed = Proposal {
            decision: Some(Decision::Dismissed {
                by: UserId(ON_CALL.into()),
                at: at(2),
            }),
            ..proposal.clone()
        };
        let resolved = Proposal::observe(Some(&proposal), &alert_group(false, 2), at(20)).unwrap();
        let skipped = Proposal {
            auto_request_skipped: Some(
                refusal(&Refusal::AutomaticRequestNeedsApproval {
                    severity: Severity::Critical,
                })
                .text,
            ),
            severity: Severity::Critical,
            ..proposal.clone()
        };
        let texts: Vec<String> = [
            (&started, Severity::High),
            (&dismissed, Severity::High),
            (&resolved, Severity::High),
            (&skipped, Severity::Critical),
        ]
        .into_iter()
        .map(|(p, severity)| {
            let card = proposal_json(p, severity);
            let buttons: Vec<&str> = card["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|b| b["elements"].as_array().into_iter().flatten())
                .filter_map(|e| e["action_id"].as_str())
                .collect();
            let lines: Vec<&str> = card["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|b| b["text"]["text"].as_str().or(b["elements"][0]["text"].as_str()))
                .collect();
            format!("{}\nbuttons: {buttons:?}\n{}", card["text"], lines.join("\n"))
        })
        .collect();
        insta::assert_snapshot!(texts.join("\n\n---\n\n"));
    }

    #[test]
    fn proposal_card_without_a_plan_offers_only_dismiss() {
        let plan = Err(Refusal::MissingParam {
            runbook: "kubernetes".into(),
            name: "target".into(),
            help: Some("revision".into()),
        });
        let message = proposal_card(
            &firing_proposal(),
            &ProposalContext {
                plan: &plan,
                approvals: 1,
                approver_roles: &["on_call".into()],
            },
        );
        let json = serde_json::to_string(&message).unwrap();
        assert!(json.contains("No plan can be built from this alert:* Runbook `kubernetes` needs `target`"));
        assert!(!json.contains("start_proposal") && json.contains("dismiss_proposal"));
    }

    #[test]
    fn a_proposal_from_a_storm_of_huge_alerts_stays_inside_block_kit_limits() {
        let mut group = alert_group(true, 20);
        for alert in &mut group.alerts {
            alert.summary = Some("<&>".repeat(2000));
            alert.name = "N".repeat(500);
        }
        group.common_labels = (0..200).map(|i| (format!("label{i}"), "&".repeat(100))).collect();
        group.target = Some("4".repeat(5000));
        group.truncated = 480;
        let proposal = Proposal::observe(None, &group, at(0)).unwrap();
        let json = proposal_json(&proposal, Severity::High).to_string();
        assert!(json.contains("…and 495 more alert(s) in this group."));
        assert!(json.contains("… (truncated)"));
    }

    #[test]
    fn huge_content_stays_inside_block_kit_limits_with_a_visible_marker() {
        let mut story = Story::requested(Severity::High, Some(&"why ".repeat(120)));
        story.rollback.request.reason = Some("r".repeat(5000));
        story.rollback.request.target = Some("9".repeat(400));
        for i in 0..40 {
            let mut step = story.rollback.plan.steps[0].clone();
            step.name = format!("step {i} {}", "n".repeat(100));
            story.rollback.plan.steps.push(step);
        }
        let message = card(&story.rollback, &directory(), false);
        assert_within_block_kit_limits(&message);
        assert!(serde_json::to_string(&message).unwrap().contains("… (truncated)"));

        let huge_output = "line of output\n".repeat(1000);
        let finished = step_finished(&story.rollback, 0, &ok_result(&huge_output));
        assert!(finished.text.chars().count() <= MAX_SECTION_CHARS);
        assert!(finished.text.contains("(earlier output truncated)"));
        assert!(
            finished.text.trim_end_matches("```").ends_with("line of output\n"),
            "the end of the output is kept"
        );
    }

    #[test]
    fn modals_are_valid_slack_views() {
        let story = Story::requested_with(policy(), Severity::High, None);
        let mut paused = story.rollback.clone();
        paused.plan = plan_with_gates();
        let typed = crate::grammar::RequestArgs {
            service: "checkout-api".into(),
            target: Some("41".into()),
            reason: Some("bad <deploy>".into()),
            ..Default::default()
        };
        let request = request_modal(&["checkout-api", "payments"], &typed, "C0INCIDENTS");
        insta::assert_json_snapshot!(request);
        for view in [reject_modal(RollbackId(1)), confirm_modal(&paused, 3), request] {
            let parsed: Result<slack_morphism::prelude::SlackView, _> = serde_json::from_value(view.clone());
            assert!(parsed.is_ok(), "{:?}\n{view:#}", parsed.err());
        }
        insta::assert_json_snapshot!(confirm_modal(&paused, 3));
    }

    #[test]
    fn escaping_leaves_no_markup_from_user_text() {
        assert_eq!(escape("<!channel> & <@U1|x>"), "&lt;!channel&gt; &amp; &lt;@U1|x&gt;");
        assert_eq!(
            code_block("a```b"),
            "```a`\u{200b}``b```",
            "user text cannot close a code block"
        );
    }
}
