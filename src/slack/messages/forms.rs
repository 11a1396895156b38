//! Forms (Slack modals): the request form, the reason for a rejection, a destructive step's phrase.
use super::*;
use crate::domain::decide::MAX_UPDATE_CHARS;
use crate::domain::discovery::{Offer, Offers};
use crate::domain::preflight::Losses;

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

/// What a person should know before typing a destructive step's phrase: when the copy that
/// protects it was made, what the run counted before it, what was checked before approval.
fn before_destroying(rollback: &Rollback, index: usize, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut lines = vec![];
    let backup = (0..index).rev().find(|i| rollback.plan.steps[*i].backup);
    match backup {
        None => lines.push("⚠️ *Backup*: no step before it keeps a copy in this plan.".to_owned()),
        Some(i) => {
            let name = escape(&rollback.plan.steps[i].name);
            let record = rollback.steps.iter().rev().find(|s| s.index == i);
            let line = match record.and_then(|r| r.result.as_ref().map(|result| (r, result))) {
                Some((record, result)) if result.outcome == crate::domain::StepOutcome::Succeeded => {
                    let done = record.started_at + chrono::Duration::milliseconds(result.duration_ms as i64);
                    let minutes = (now - done).num_minutes().max(0);
                    format!(
                        "🛟 *Backup*: step {} *{name}* finished at {} ({minutes} min ago).",
                        i + 1,
                        hhmm(done)
                    )
                }
                Some((_, result)) => format!(
                    "⚠️ *Backup*: step {} *{name}* did not succeed ({}): there may be no copy.",
                    i + 1,
                    result.outcome.name().replace('_', " ")
                ),
                None => format!("⚠️ *Backup*: step {} *{name}* has not run in this rollback.", i + 1),
            };
            lines.push(line);
        }
    }
    let counted = (0..index).rev().find_map(|i| {
        rollback
            .last_result(i)
            .and_then(|r| r.snapshot.as_ref())
            .map(|counts| (i, counts))
    });
    if let Some((i, counts)) = counted {
        let tables: Vec<String> = counts
            .counts
            .iter()
            .map(|(table, rows)| format!("{} {rows}", escape(table)))
            .collect();
        lines.push(format!(
            "📊 *Rows now* (step {}, `{}`), which it may replace: {}",
            i + 1,
            escape(&counts.database),
            tables.join(" · ")
        ));
    }
    if let Some(checks) = rollback.preflight.as_deref().filter(|c| !c.is_empty()) {
        lines.push(format!(
            "*Checked before approval*\n{}",
            super::card::preflight_lines(checks).join("\n")
        ));
    }
    lines.join("\n")
}

/// What the step would undo, from its `loses` count: being counted, counted, or why not.
fn losses_text(losses: &Losses) -> Option<String> {
    Some(match losses {
        Losses::Undeclared => return None,
        Losses::Counting { source } => {
            format!("⏳ *What it would undo*: counting with `{}`…", escape(source))
        }
        Losses::Counted { source, lines } if lines.is_empty() => {
            format!("🧾 *What it would undo* (`{}`): it printed nothing.", escape(source))
        }
        Losses::Counted { source, lines } => {
            let quoted: Vec<String> = lines.iter().map(|l| format!(">{}", escape(l))).collect();
            format!("🧾 *What it would undo* (`{}`):\n{}", escape(source), quoted.join("\n"))
        }
        Losses::Failed { source, why } => format!(
            "⚠️ *What it would undo*: the count (`{}`) failed: {}. Nothing says what is lost: check before typing the phrase.",
            escape(source),
            escape(why)
        ),
    })
}

/// The modal where a destructive step's phrase must be typed.
pub fn confirm_modal(rollback: &Rollback, index: usize, now: chrono::DateTime<chrono::Utc>, losses: &Losses) -> Value {
    let step = &rollback.plan.steps[index];
    let phrase = step.confirm.as_deref().unwrap_or_default();
    let mut modal = json!({
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
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&before_destroying(rollback, index, now), MAX_SECTION_CHARS)}},
        ]
    });
    let blocks = modal["blocks"].as_array_mut().expect("blocks are a list");
    if let Some(text) = losses_text(losses) {
        blocks.push(json!({"type": "section", "block_id": "losses", "text": {"type": "mrkdwn", "text": truncate(&text, MAX_SECTION_CHARS)}}));
    }
    blocks.push(json!({
        "type": "input",
        "block_id": "phrase",
        "label": {"type": "plain_text", "text": "Confirmation phrase"},
        "element": {"type": "plain_text_input", "action_id": "phrase"}
    }));
    modal
}

/// The block of the form where a runbook parameter is typed or picked: `target` keeps its own
/// block, the others are `param.<name>`.
pub fn param_block(name: &str) -> String {
    if name == "target" {
        "target".to_owned()
    } else {
        format!("param.{name}")
    }
}

/// The parameters of a submitted or changed form, from its `param.<name>` blocks.
pub fn params_of_form(
    values: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    values
        .iter()
        .filter_map(|(block, value)| Some((block.strip_prefix("param.")?.to_owned(), value.trim().to_owned())))
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

/// An option of a static select.
fn option(value: &str, label: &str) -> Value {
    json!({"text": {"type": "plain_text", "text": truncate(label, 75)}, "value": value})
}

/// A text field, pre-filled when something was typed.
fn text_input(action_id: &str, initial: Option<&String>, multiline: bool, max: usize) -> Value {
    let mut element =
        json!({"type": "plain_text_input", "action_id": action_id, "multiline": multiline, "max_length": max});
    if let Some(value) = initial.filter(|v| !v.is_empty()) {
        element["initial_value"] = json!(truncate(value, max));
    }
    element
}

/// An input block of a form.
fn input(block: &str, label: &str, element: Value, optional: bool, hint: Option<&str>) -> Value {
    let mut block = json!({"type": "input", "block_id": block, "label": {"type": "plain_text", "text": truncate(label, 2000)}, "element": element, "optional": optional});
    if let Some(hint) = hint {
        block["hint"] = json!({"type": "plain_text", "text": truncate(hint, 2000)});
    }
    block
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 2000)}]})
}

/// The request form's field for the status page incident to carry on.
pub const STATUS_INCIDENT_BLOCK: &str = "status_incident";

/// The form that completes an incomplete `/rollback`, pre-filled with what was typed. Once the
/// service is known it offers that service's runbooks, and the fields of the chosen runbook's
/// parameters (a select where the runbook lists the choices, or where its discovery found recent
/// values); picking another service or runbook redraws it (the selects dispatch their action).
/// With `status_page`, it asks for the status page incident to carry on (a drill never
/// touches the page, so its form does not).
pub fn request_modal(
    catalog: &crate::domain::plan::Catalog,
    ask: &crate::domain::plan::Ask,
    channel: &str,
    offers: &Offers,
    status_page: bool,
) -> Value {
    let chosen_runbook = catalog.runbook_for_form(&ask.plan.service, ask.plan.runbook.as_deref());
    let runbook = chosen_runbook.and_then(|r| catalog.runbooks.get(r));
    let carried: std::collections::BTreeMap<String, String> = ask
        .plan
        .params
        .iter()
        .filter(|(name, _)| !runbook.is_some_and(|r| r.params.contains_key(*name)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let form = Form::Request {
        channel: crate::domain::ChannelId(channel.to_owned()),
        drill: ask.drill,
        fallback_of: ask.fallback_of,
        carried: carried.clone(),
    };
    let mut blocks = vec![service_field(catalog, &ask.plan.service), severity_field(ask.severity)];
    match catalog.services.get(&ask.plan.service) {
        None => blocks.push(context(
            "Choose the service: its runbooks and what each needs appear here.",
        )),
        Some(service) => {
            blocks.push(runbook_field(catalog, &service.runbooks, chosen_runbook));
            let params = runbook.map(|r| &r.params);
            // The target first: it is what people came to give.
            let ordered = params
                .into_iter()
                .flatten()
                .filter(|(n, _)| *n == "target")
                .chain(params.into_iter().flatten().filter(|(n, _)| *n != "target"));
            for (name, spec) in ordered {
                let given = if name == "target" {
                    ask.plan.target.as_ref()
                } else {
                    ask.plan.params.get(name)
                };
                blocks.extend(param_field(&service.name, name, spec, given, offers.get(name)));
            }
            let left_out: Vec<String> = carried
                .iter()
                .map(|(name, value)| format!("`{}={}`", escape(name), escape(value)))
                .collect();
            if !left_out.is_empty() {
                blocks.push(context(&format!(
                    "Not taken by this runbook, so left out: {}",
                    left_out.join(" ")
                )));
            }
        }
    }
    blocks.push(input(
        "reason",
        "Reason",
        text_input("reason", ask.reason.as_ref(), true, 500),
        true,
        Some("Required for low severity."),
    ));
    if status_page && !ask.drill {
        blocks.push(input(
            STATUS_INCIDENT_BLOCK,
            "Status page incident (optional)",
            text_input(STATUS_INCIDENT_BLOCK, ask.status_incident.as_ref(), false, 300),
            true,
            Some("Already open on the status page? Paste its link or id and rollbot carries it on. Empty: rollbot opens one, or carries on the open one for this service's components."),
        ));
    }
    // The form carries the drill mark with the channel, so the submission stays a drill.
    let (title, submit) = if ask.drill {
        ("Start a drill", "Start drill")
    } else {
        ("Request a rollback", "Request")
    };
    json!({
        "type": "modal",
        "callback_id": form.callback_id(),
        "private_metadata": form.private_metadata(),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    })
}

fn service_field(catalog: &crate::domain::plan::Catalog, chosen: &str) -> Value {
    let mut service = json!({
        "type": "static_select",
        "action_id": "service",
        "placeholder": {"type": "plain_text", "text": "Which service?"},
        "options": catalog.services.keys().take(100).map(|s| option(s, s)).collect::<Vec<_>>(),
    });
    if catalog.services.contains_key(chosen) {
        service["initial_option"] = option(chosen, chosen);
    }
    let mut block = input("service", "Service", service, false, None);
    block["dispatch_action"] = json!(true);
    block
}

fn severity_field(chosen: Option<Severity>) -> Value {
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
    if let Some(s) = chosen {
        severity["initial_option"] = described(s);
    }
    input(
        "severity",
        "Severity",
        severity,
        false,
        Some("Decides who must approve, as the decision matrix says: critical and low need no approval."),
    )
}

fn runbook_field(catalog: &crate::domain::plan::Catalog, offered: &[String], chosen: Option<&String>) -> Value {
    let runbook_option = |name: &String| {
        let mut option = option(name, name);
        let runbook = catalog.runbooks.get(name);
        let about: Vec<String> = runbook
            .and_then(|r| r.description.clone())
            .into_iter()
            .chain(
                runbook
                    .and_then(|r| r.expected_duration)
                    .map(|d| format!("about {} min", d.as_secs().div_ceil(60))),
            )
            .collect();
        if !about.is_empty() {
            option["description"] = json!({"type": "plain_text", "text": truncate(&about.join(" · "), 75)});
        }
        option
    };
    let mut runbook = json!({
        "type": "static_select",
        "action_id": "runbook",
        "options": offered.iter().take(100).map(runbook_option).collect::<Vec<_>>(),
    });
    if let Some(name) = chosen {
        runbook["initial_option"] = runbook_option(name);
    }
    let mut block = input(
        "runbook",
        "Runbook",
        runbook,
        false,
        Some("The first is the service's default."),
    );
    block["dispatch_action"] = json!(true);
    block
}

/// The field of one runbook parameter: a select of the runbook's choices or of the values its
/// discovery found, else a text field; with a line saying where found values come from.
fn param_field(
    service: &str,
    name: &str,
    spec: &crate::domain::plan::ParamSpec,
    given: Option<&String>,
    offer: Option<&Offer>,
) -> Vec<Value> {
    let initial = given.or(spec.default.as_ref());
    let block = param_block(name);
    let label = if name == "target" { "Target" } else { name };
    let select = |options: Vec<Value>, initial: Option<Value>| {
        let mut select = json!({"type": "static_select", "action_id": block, "options": options});
        if let Some(initial) = initial {
            select["initial_option"] = initial;
        }
        select
    };
    // A typed value that discovery did not list stays in a text field, as typed.
    let found = match offer {
        Some(Offer::Found { found, .. })
            if spec.choices.is_empty()
                && !found.choices.is_empty()
                && given.is_none_or(|v| found.choices.iter().any(|c| &c.value == v)) =>
        {
            Some(found)
        }
        _ => None,
    };
    let element = if let Some(found) = found {
        let options: Vec<Value> = found.choices.iter().map(|c| option(&c.value, &c.label)).collect();
        let initial = initial
            .and_then(|v| found.choices.iter().find(|c| &c.value == v))
            .map(|c| option(&c.value, &c.label));
        select(options, initial)
    } else if spec.choices.is_empty() {
        text_input(&block, initial, false, crate::domain::plan::MAX_PARAM_CHARS)
    } else {
        let options = spec.choices.iter().take(100).map(|c| option(c, c)).collect();
        select(
            options,
            initial.filter(|v| spec.choices.contains(v)).map(|v| option(v, v)),
        )
    };
    let hint = match (&spec.help, spec.choices.is_empty()) {
        (Some(help), _) => help.clone(),
        (None, true) => format!("Must match {}", spec.pattern_source),
        (None, false) => "One of the runbook's choices.".to_owned(),
    };
    let mut blocks = vec![input(&block, label, element, !spec.required, Some(&hint))];
    if spec.choices.is_empty()
        && let Some(offer) = offer
    {
        blocks.push(context(&offer_line(service, name, offer, given)));
    }
    blocks
}

/// Where the values a parameter's field offers come from, and what to do when the one wanted
/// is not among them.
fn offer_line(service: &str, name: &str, offer: &Offer, given: Option<&String>) -> String {
    let other = if name == "target" {
        format!("type `/rollback {} to &lt;value&gt;`", escape(service))
    } else {
        format!("type `/rollback {} {}=&lt;value&gt;`", escape(service), escape(name))
    };
    match offer {
        Offer::Looking { source } => format!("⏳ Looking up recent values with `{}`…", escape(source)),
        Offer::Found { source, found } if found.choices.is_empty() => format!(
            "`{}` listed no value this runbook accepts{}: type the value.",
            escape(source),
            if found.not_accepted > 0 {
                format!(" ({} did not match its pattern)", found.not_accepted)
            } else {
                String::new()
            }
        ),
        Offer::Found { source, found } => {
            let unlisted = given
                .filter(|v| !found.choices.iter().any(|c| &c.value == *v))
                .map(|v| format!(" `{}`, as typed, is not among them.", escape(v)))
                .unwrap_or_default();
            format!(
                "🕘 {} recent value{}, newest first, from `{}`.{unlisted} Another value: {other}.",
                found.choices.len(),
                if found.choices.len() == 1 { "" } else { "s" },
                escape(source)
            )
        }
        Offer::Failed { source, why } if source.is_empty() => {
            format!("⚠️ Could not list recent values ({}). Type the value.", escape(why))
        }
        Offer::Failed { source, why } => {
            format!(
                "⚠️ Could not list recent values with `{}` ({}). Type the value.",
                escape(source),
                escape(why)
            )
        }
    }
}

/// The request form for a stopped rollback's fallback: filled in from it, and saying what the
/// submission files (a new rollback with its own approvals) before anyone submits it.
pub fn fallback_modal(
    stopped: &Rollback,
    catalog: &crate::domain::plan::Catalog,
    ask: &crate::domain::plan::Ask,
    offers: &Offers,
) -> Value {
    // The fallback carries on the page incident of the rollback it follows.
    let mut view = request_modal(catalog, ask, &stopped.request.channel.0, offers, false);
    let target_help = ask
        .plan
        .runbook
        .as_ref()
        .and_then(|runbook| catalog.runbooks.get(runbook))
        .and_then(|runbook| runbook.params.get("target"))
        .and_then(|target| target.help.as_deref());
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
