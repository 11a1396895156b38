//! Private answers: what only the person who typed or clicked sees.
use super::*;

/// The private answer to the requester once the request is recorded.
pub fn request_acknowledged(rollback: &Rollback, directory: &BTreeMap<String, Vec<String>>) -> Message {
    let id = rollback.id;
    let next = if rollback.approvals_required == 0 && rollback.request.severity == crate::domain::Severity::Low {
        format!("Low severity: no approval needed, so it runs now, and a post-incident review is flagged. {LOW_ADVICE}")
    } else if rollback.approvals_required == 0 {
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
`/rollback <service> [to <target>] [runbook <name>] [<param>=<value>…] severity <critical|high|medium|low> [reason \"<text>\"]`\n\
e.g. `/rollback checkout-api to 41 severity high reason \"bad deploy\"` · `/rollback orders runbook partial-restore tables=orders,payments severity high`\n\
*See what would run, without requesting*: `/rollback plan checkout-api to 41`\n\
*Rehearse the whole path, nothing executed*: `/rollback drill checkout-api to 41 severity high` · `/rollback list drills`\n\
*Follow up*: `/rollback status RB-12` · `/rollback list` · `/rollback cancel RB-12` (before it starts)\n\
*Carry on the status page incident already open*: add `incident <id or link>`, e.g. `/rollback checkout-api to 41 severity high incident p9x1k2lmn0qr`\n\
*For the post-mortem*: `/rollback note RB-12 what you saw, tried or decided` · `/rollback postmortem RB-12`\n\
Critical severity runs at once and flags a post-incident review; other severities wait for *Approve* on the card from someone in the approving role. You cannot approve your own request.",
    )
}

pub fn plan_preview(plan: &Plan) -> Message {
    let params: Vec<String> = plan
        .params
        .iter()
        .map(|(k, v)| format!("`{}={}`", escape(k), escape(&v.replace('`', "ˋ"))))
        .collect();
    let params = if params.is_empty() {
        String::new()
    } else {
        format!(", parameters {}", params.join(" "))
    };
    Message::plain(format!(
        "Plan for *{}* (runbook `{}`, digest `{}`{params}); nothing was requested or run:\n{}",
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

pub fn noted(id: RollbackId) -> Message {
    Message::plain(format!(
        "📝 Noted on *{id}*'s timeline, with your name and the time; it is in the post-mortem draft (`/rollback postmortem {id}`). Nobody else was notified."
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
        ControlCharacter => "That command contains a control character (a NUL byte or a terminal escape, often pasted from a terminal), which rollbot cannot record. Nothing was recorded; type the command again without it.".into(),
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
            "I don't understand `{}`.{} After the service, use `to`, `runbook`, `severity`, `reason`, `incident` or the runbook's parameters as `name=value`.",
            escape(&truncate(word, 100)),
            suggest(suggestion)
        ),
        MissingValue { keyword } => format!(
            "`{keyword}` needs a value, e.g. {}.",
            match *keyword {
                "to" => "`to 41`",
                "runbook" => "`runbook kubernetes`",
                "severity" => "`severity high`",
                "incident" => "`incident p9x1k2lmn0qr` (the status page incident's id, or its link)",
                _ => "`reason \"bad deploy\"`",
            }
        ),
        Repeated { keyword } => format!("`{keyword}` is given twice; keep one."),
        MissingParamValue { name } => format!(
            "`{name}=` needs a value right after the `=`, e.g. `{name}=orders,payments` or `{name}=\"a value with spaces\"`."
        ),
        RepeatedParam { name } => {
            let also = if name == "target" { " (`to …` is `target=…`)" } else { "" };
            format!("`{name}` is given twice{also}; keep one.")
        }
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
        BadIncident { word } => not_an_incident(word),
    };
    Message::plain(format!("{text} {HELP_HINT}"))
}

/// What was given as a status page incident, in a command or the request form, is not one.
pub fn not_an_incident(word: &str) -> String {
    format!(
        "`{}` is not a status page incident: give its id (`incident p9x1k2lmn0qr`) or paste its link, or leave `incident` out to open a new one.",
        escape(&truncate(word, 100))
    )
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
