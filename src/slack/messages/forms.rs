//! Forms (Slack modals): the request form, the reason for a rejection, a destructive step's phrase.
use super::*;
use crate::domain::decide::MAX_UPDATE_CHARS;

/// The modal that asks why a rollback is rejected.
pub fn reject_modal(id: RollbackId) -> Value {
    json!({
        "type": "modal",
        "callback_id": Form::Reject(id).callback_id(),
        "private_metadata": Form::Reject(id).private_metadata(),
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

/// The modal for an update on the incident: where it goes, what it says. The status page box is
/// offered only while the page has an open incident for this rollback.
pub fn update_modal(rollback: &Rollback, page_open: bool) -> Value {
    let id = rollback.id;
    let form = Form::PostUpdate(id);
    let drill = if rollback.request.drill {
        " This is a drill: the update stays in its thread."
    } else {
        ""
    };
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!(
            "An update on *{id}* ({}): {}. It is posted in the rollback's thread and to the stakeholders' channels, and kept in the timeline.{drill}",
            escape(&rollback.request.service),
            state_line(rollback)
        ), MAX_SECTION_CHARS)}}),
        json!({
            "type": "input",
            "block_id": "update",
            "label": {"type": "plain_text", "text": "What changed, and what happens next?"},
            "element": {"type": "plain_text_input", "action_id": "update", "multiline": true, "max_length": MAX_UPDATE_CHARS},
            "hint": {"type": "plain_text", "text": "Say what people notice, what is being done, and when the next update comes."}
        }),
    ];
    if page_open {
        blocks.push(json!({
            "type": "input",
            "block_id": "status_page",
            "optional": true,
            "label": {"type": "plain_text", "text": "Status page"},
            "element": {"type": "checkboxes", "action_id": "status_page", "options": [{
                "text": {"type": "plain_text", "text": "Also post it on the public status page"},
                "description": {"type": "plain_text", "text": "Customers read it: leave out internal names and links."},
                "value": "yes"
            }]}
        }));
    }
    json!({
        "type": "modal",
        "callback_id": form.callback_id(),
        "private_metadata": form.private_metadata(),
        "title": {"type": "plain_text", "text": truncate(&format!("Update on {id}"), 24)},
        "submit": {"type": "plain_text", "text": "Post update"},
        "close": {"type": "plain_text", "text": "Not now"},
        "blocks": blocks
    })
}

/// The modal where a destructive step's phrase must be typed.
pub fn confirm_modal(rollback: &Rollback, index: usize) -> Value {
    let step = &rollback.plan.steps[index];
    let phrase = step.confirm.as_deref().unwrap_or_default();
    json!({
        "type": "modal",
        "callback_id": Form::Confirm(rollback.id, index).callback_id(),
        "private_metadata": Form::Confirm(rollback.id, index).private_metadata(),
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
pub fn request_modal(services: &[&str], ask: &crate::domain::plan::Ask, channel: &str) -> Value {
    let option =
        |value: &str, label: &str| json!({"text": {"type": "plain_text", "text": truncate(label, 75)}, "value": value});
    let mut service = json!({
        "type": "static_select",
        "action_id": "service",
        "placeholder": {"type": "plain_text", "text": "Which service?"},
        "options": services.iter().take(100).map(|s| option(s, s)).collect::<Vec<_>>(),
    });
    if services.contains(&ask.plan.service.as_str()) {
        service["initial_option"] = option(&ask.plan.service, &ask.plan.service);
    }
    // Slack matches the initial option by its whole object, description included.
    let described = |s: Severity| {
        let mut described = option(s.as_str(), severity_label(s));
        described["description"] = json!({"type": "plain_text", "text": severity_description(s)});
        described
    };
    let mut severity = json!({
        "type": "static_select",
        "action_id": "severity",
        "placeholder": {"type": "plain_text", "text": "How severe?"},
        "options": Severity::ALL.iter().map(|s| described(*s)).collect::<Vec<_>>(),
    });
    if let Some(s) = ask.severity {
        severity["initial_option"] = described(s);
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
    let (title, submit) = if ask.drill {
        ("Start a drill", "Start drill")
    } else {
        ("Request a rollback", "Request")
    };
    let form = Form::Request {
        channel: crate::domain::ChannelId(channel.to_owned()),
        drill: ask.drill,
        fallback_of: ask.fallback_of,
    };
    json!({
        "type": "modal",
        "callback_id": form.callback_id(),
        "private_metadata": form.private_metadata(),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            input("service", "Service", service, false, None),
            input("severity", "Severity", severity, false, Some("Decides who must approve, as the decision matrix says: critical and low need no approval.")),
            input("target", "Target", text_input("target", ask.plan.target.as_ref(), false, 200), true, Some("What to roll back to, e.g. a revision or release.")),
            input("runbook", "Runbook", text_input("runbook", ask.plan.runbook.as_ref(), false, 100), true, Some("Leave empty for the service's default runbook.")),
            input("reason", "Reason", text_input("reason", ask.reason.as_ref(), true, 500), true, Some("Required for low severity.")),
        ]
    })
}

/// The request form for a stopped rollback's fallback: filled in from it, and saying what the
/// submission files (a new rollback with its own approvals) before anyone submits it.
pub fn fallback_modal(
    stopped: &Rollback,
    services: &[&str],
    ask: &crate::domain::plan::Ask,
    target_help: Option<&str>,
) -> Value {
    let mut view = request_modal(services, ask, &stopped.request.channel.0);
    let runbook = ask.plan.runbook.as_deref().unwrap_or_default();
    let how = match &stopped.state {
        State::Aborted { step, .. } => format!("was aborted at step {}", step + 1),
        State::Failed { step, .. } => format!("failed at step {}", step + 1),
        other => format!("is {}", state_phrase(other)),
    };
    let target = match (ask.plan.target.is_some(), target_help) {
        (true, _) => "The target is carried over; check it.".to_owned(),
        (false, Some(help)) => format!("Its target: {}.", escape(help)),
        (false, None) => String::new(),
    };
    let intro = format!(
        "↪️ *{}* ({}) {how}. Its runbook names *{}* as the fallback. Submitting files a new rollback linked to *{}*: it needs its own approvals, like any request of its severity, and nothing runs before then. {target}",
        stopped.id,
        escape(&stopped.plan.runbook),
        escape(runbook),
        stopped.id
    );
    if let Some(blocks) = view["blocks"].as_array_mut() {
        blocks.insert(0, json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(intro.trim_end(), MAX_SECTION_CHARS)}}));
    }
    view["title"] = json!({"type": "plain_text", "text": "Request the fallback"});
    view["submit"] = json!({"type": "plain_text", "text": "Request fallback"});
    view
}

pub fn form_opened(missing: &str) -> Message {
    Message::plain(format!(
        "Opening a form to finish the request ({missing}). Nothing is recorded until you submit it."
    ))
}

pub const WRONG_PHRASE: &str = "That is not the phrase. Type it exactly as shown above (it is case-sensitive).";
pub const UPDATE_NEEDED: &str = "Write the update: what changed, and what happens next.";
pub const REASON_NEEDED: &str = "Say why, so the requester knows what to do instead.";

pub const CONTROL_CHARACTER: &str = "This contains a control character (a NUL byte or a terminal escape, often pasted from a terminal), which rollbot cannot record. Remove it and submit again.";
