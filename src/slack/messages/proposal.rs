//! A proposal's card: what the alerts say, and Start or Dismiss.
use super::*;
use crate::domain::proposal::AutoRequestRefused;

/// What a proposal's card needs besides the proposal: the plan it would freeze (or why none),
/// and what its severity asks for.
pub struct ProposalContext<'a> {
    pub plan: &'a Result<Plan, Refusal>,
    pub approvals: u32,
    pub approver_roles: &'a [String],
}

/// A link for mrkdwn: only http(s), escaped, and unable to break out of its `<…|…>`.
pub(super) fn link(url: &str, label: &str) -> Option<String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let url = escape(url).replace('|', "%7C");
    Some(format!("<{url}|{}>", escape(label)))
}

pub(super) fn day_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Most alerts a card lists; the rest are counted.
pub(super) const PROPOSAL_ALERTS_SHOWN: usize = 5;

/// The "Proposed rollback" card of an alert group: what fired, the plan a start would freeze,
/// and what the buttons do. Start disappears once the alert resolves or someone decided.
pub fn proposal_card(proposal: &Proposal, context_of: &ProposalContext) -> Message {
    let id = proposal.id;
    let headline = format!("Proposed rollback: {}", proposal.service);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&headline, MAX_HEADER_CHARS), "emoji": true}
    })];
    let promise = if context_of.approvals == 0 {
        format!(
            "Nothing runs unless someone starts it; at {} severity it then runs without approval, and its gates and destructive steps still need a second person.",
            proposal.severity
        )
    } else {
        format!(
            "Nothing runs unless someone starts it and {} approval(s) are given.",
            context_of.approvals
        )
    };
    blocks.push(context(format!("*{id}* from Alertmanager. {promise}")));

    blocks.extend(alert_sections(proposal));

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

    blocks.extend(outcome(proposal));
    let open = proposal.resolved_at.is_none() && proposal.decision.is_none();
    if open {
        blocks.extend(proposal_controls(proposal, context_of));
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

/// Most folded groups a card lists, one line each; the rest are counted.
pub(super) const FOLDED_GROUPS_SHOWN: usize = 5;

/// One section per alert, each cut before escaping, so no alert can crowd out the others;
/// then one line per other alert group of the service.
fn alert_sections(proposal: &Proposal) -> Vec<Value> {
    let mut blocks = vec![];
    for alert in proposal.alerts.iter().take(PROPOSAL_ALERTS_SHOWN) {
        blocks.push(section(alert_line(alert)));
    }
    let hidden = proposal.alerts.len().saturating_sub(PROPOSAL_ALERTS_SHOWN) as u64 + proposal.truncated;
    if hidden > 0 {
        blocks.push(context(format!("…and {hidden} more alert(s) in this group.")));
    }
    if proposal.also.is_empty() {
        return blocks;
    }
    let groups = proposal.also.len();
    let firing = proposal.also.values().any(|g| g.firing());
    blocks.push(section(format!(
        "*{} for {}* ({groups} more alert group{}):",
        if firing { "Also firing" } else { "Also seen" },
        escape(&proposal.service),
        if groups == 1 { "" } else { "s" }
    )));
    // Firing groups first, newest notification first within each.
    let mut folded: Vec<_> = proposal.also.values().collect();
    folded.sort_by_key(|g| (!g.firing(), std::cmp::Reverse(g.last_seen)));
    for group in folded.iter().take(FOLDED_GROUPS_SHOWN) {
        let Some(alert) = group.lead_alert() else { continue };
        let more = group.alerts.len().saturating_sub(1) as u64 + group.truncated;
        let mut line = alert_line(alert);
        if more > 0 {
            line.push_str(&format!(" (+{more} more in its group)"));
        }
        blocks.push(section(line));
    }
    if groups > FOLDED_GROUPS_SHOWN {
        blocks.push(context(format!(
            "…and {} more alert group(s) for this service; Alertmanager has them all.",
            groups - FOLDED_GROUPS_SHOWN
        )));
    }
    blocks
}

/// What one alert says, in one line: cut before escaping.
fn alert_line(alert: &crate::domain::proposal::AlertSummary) -> String {
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
    line
}

/// What became of the proposal: started (by whom), dismissed, resolved, or not filed
/// automatically and why.
fn outcome(proposal: &Proposal) -> Vec<Value> {
    let mut blocks = vec![];
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
    if let Some(why) = &proposal.auto_request_refused
        && proposal.decision.is_none()
    {
        let why = match why {
            AutoRequestRefused::Refused(refused) => refusal(refused).text,
            AutoRequestRefused::Worded(worded) => worded.clone(),
        };
        blocks.push(context(format!("Not filed automatically: {why}")));
    }
    blocks
}

/// The buttons of an open proposal, and what each does.
fn proposal_controls(proposal: &Proposal, context_of: &ProposalContext) -> Vec<Value> {
    let id = proposal.id;
    let mut blocks = vec![];
    let mut buttons = vec![];
    if context_of.plan.is_ok() {
        buttons.push(button(Button::StartProposal(id), "Start rollback", Some("primary")));
    }
    buttons.push(button(Button::DismissProposal(id), "Dismiss", None));
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
    blocks
}
