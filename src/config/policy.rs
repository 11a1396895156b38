//! Templates, roles and the severity policy with its escalation ladder.
use super::*;

pub(super) fn check_templates(
    c: &mut Checker,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> BTreeMap<Announcement, String> {
    let mut templates: BTreeMap<Announcement, String> = Announcement::ALL
        .iter()
        .map(|a| (*a, a.default_text().to_owned()))
        .collect();
    for (name, text) in raw {
        let Some(which) = Announcement::ALL.iter().find(|a| a.key() == name.get_ref()) else {
            let known: Vec<&str> = Announcement::ALL.iter().map(|a| a.key()).collect();
            c.error(
                name.span(),
                format!("unknown template `{}`", name.get_ref()),
                Some(format!("templates are {}", known.join(", "))),
            );
            continue;
        };
        if let Err(detail) = crate::templates::check(text.get_ref()) {
            let names: Vec<&str> = crate::templates::VARIABLES.iter().map(|(n, _)| *n).collect();
            c.error(
                text.span(),
                format!("template `{}` {detail}", name.get_ref()),
                Some(format!(
                    "variables are {} (docs/configuration.md says what each holds)",
                    names.join(", ")
                )),
            );
            continue;
        }
        templates.insert(*which, text.get_ref().clone());
    }
    templates
}

pub(super) fn check_roles(
    c: &mut Checker,
    raw: &BTreeMap<String, Vec<Spanned<String>>>,
) -> BTreeMap<String, Vec<String>> {
    let mut roles = BTreeMap::new();
    for (name, members) in raw {
        for member in members {
            match crate::pagerduty::OnCallSource::parse(member.get_ref()) {
                Some(Ok(_)) => {}
                Some(Err(why)) => c.error(
                    member.span(),
                    format!(
                        "`{}` in role `{name}` is not a PagerDuty on-call source",
                        member.get_ref()
                    ),
                    Some(why),
                ),
                None if !is_slack_member_id(member.get_ref()) => c.error(
                    member.span(),
                    format!("`{}` in role `{name}` is not a Slack user ID or user-group ID", member.get_ref()),
                    Some("use IDs like U0123ABCD (user) or S0123ABCD (user group), from the profile's \"Copy member ID\", or a PagerDuty schedule: pagerduty:schedule:PABC123".into()),
                ),
                None => {}
            }
        }
        roles.insert(name.clone(), members.iter().map(|m| m.get_ref().clone()).collect());
    }
    roles
}

/// Reports a role that [roles] does not define.
fn check_role_ref(c: &mut Checker, roles: &BTreeMap<String, Vec<String>>, role: &Spanned<String>) {
    if !roles.contains_key(role.get_ref()) {
        let known = roles.keys().cloned().collect::<Vec<_>>().join(", ");
        c.error(
            role.span(),
            format!("role `{}` is not defined in [roles]", role.get_ref()),
            Some(format!(
                "defined roles: {}",
                if roles.is_empty() { "none".into() } else { known }
            )),
        );
    }
}

pub(super) fn check_policy(c: &mut Checker, raw: &RawConfig, roles: &BTreeMap<String, Vec<String>>) -> Policy {
    let check_role_ref = |c: &mut Checker, role: &Spanned<String>| check_role_ref(c, roles, role);

    let workspace = raw.slack.workspace.as_ref().map(|w| {
        if !w.get_ref().starts_with('T') && !w.get_ref().starts_with('E') {
            c.error(
                w.span(),
                format!("`{}` is not a Slack workspace ID", w.get_ref()),
                Some("workspace IDs start with T (or E for Enterprise Grid)".into()),
            );
        }
        TeamId(w.get_ref().clone())
    });
    if raw.slack.channels.get_ref().is_empty() {
        c.error(
            raw.slack.channels.span(),
            "no incident channel is configured",
            Some("list the channel IDs where /rollback is accepted, e.g. channels = [\"C0INCIDENTS\"]".into()),
        );
    }
    for channel in raw.slack.channels.get_ref() {
        let id = channel.get_ref();
        if !(id.starts_with('C') || id.starts_with('G')) || id.len() < 3 {
            c.error(
                channel.span(),
                format!("`{id}` is not a Slack channel ID"),
                Some(
                    "channel IDs look like C0123ABCD: open the channel's details and copy the ID at the bottom".into(),
                ),
            );
        }
    }
    let channels = raw
        .slack
        .channels
        .get_ref()
        .iter()
        .map(|ch| ChannelId(ch.get_ref().clone()))
        .collect();
    let requester_roles = raw.slack.requesters.as_ref().map(|list| {
        for role in list {
            check_role_ref(c, role);
        }
        list.iter().map(|r| r.get_ref().clone()).collect()
    });

    let severities = check_severities(c, raw, roles);
    check_who_may_run_alone(c, raw, &severities);
    let escalation = check_escalation(c, raw, roles);
    let abort_roles = raw
        .safety
        .abort_roles
        .iter()
        .map(|role| {
            check_role_ref(c, role);
            role.get_ref().clone()
        })
        .collect();

    Policy {
        workspace,
        channels,
        requester_roles,
        severities,
        max_reason_chars: raw.limits.max_reason_chars.unwrap_or(500),
        max_open_requests_per_person: match &raw.limits.max_open_requests_per_person {
            Some(n) if *n.get_ref() == 0 => {
                c.error(
                    n.span(),
                    "`max_open_requests_per_person` is 0, which would refuse every request",
                    Some("use at least 1, or leave it out for the default of 5".into()),
                );
                0
            }
            Some(n) => *n.get_ref(),
            None => 5,
        },
        escalation,
        status_page: false,
        two_person_rule: raw.safety.two_person_rule.unwrap_or(true),
        abort_roles,
    }
}

/// Each severity's approval rules: what the file says, the defaults for the rest.
fn check_severities(
    c: &mut Checker,
    raw: &RawConfig,
    roles: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<Severity, SeverityPolicy> {
    let check_role_ref = |c: &mut Checker, role: &Spanned<String>| check_role_ref(c, roles, role);
    let mut severities = BTreeMap::new();
    for (name, section) in &raw.severity {
        let Ok(severity) = name.get_ref().parse::<Severity>() else {
            c.error(
                name.span(),
                format!("unknown severity `{}`", name.get_ref()),
                Some("severities are critical, high, medium and low".into()),
            );
            continue;
        };
        let defaults = SeverityPolicy::default_for(severity);
        let approvers: Vec<String> = match &section.approvers {
            Some(list) => {
                for role in list {
                    check_role_ref(c, role);
                }
                list.iter().map(|r| r.get_ref().clone()).collect()
            }
            None => defaults.approvers.clone(),
        };
        let approvals = section.approvals.unwrap_or(defaults.approvals);
        if approvals > 0 && approvers.is_empty() {
            c.error(
                name.span(),
                format!("severity `{severity}` needs {approvals} approval(s) but names no approvers"),
                Some("add approvers = [\"<role>\"] or set approvals = 0".into()),
            );
        }
        let respond_within = match &section.respond_within {
            Some(d) => c.duration(d, DurationSetting::RespondWithin),
            None => defaults.respond_within,
        };
        let expire_after = match &section.expire_after {
            Some(d) => c.duration(d, DurationSetting::ExpireAfter),
            None => defaults.expire_after,
        };
        severities.insert(
            severity,
            SeverityPolicy {
                approvals,
                approvers,
                require_reason: section.require_reason.unwrap_or(defaults.require_reason),
                allow_self_approval: section.allow_self_approval.unwrap_or(defaults.allow_self_approval),
                respond_within,
                review_required: approvals == 0,
                expire_after,
                reminders: check_reminders(c, section, defaults.reminders),
            },
        );
    }
    for severity in Severity::ALL {
        let policy = severities
            .entry(severity)
            .or_insert_with(|| SeverityPolicy::default_for(severity));
        let missing: Vec<_> = policy
            .approvers
            .iter()
            .filter(|r| !roles.contains_key(*r))
            .cloned()
            .collect();
        if policy.approvals > 0 && !raw.severity.keys().any(|k| k.get_ref() == severity.as_str()) && !missing.is_empty()
        {
            c.error(
                0..0,
                format!(
                    "severity `{severity}` uses its default approvers ({}) but [roles] does not define them",
                    missing.join(", ")
                ),
                Some(format!(
                    "define {} in [roles], or set [severity.{severity}] approvers",
                    missing.join(", ")
                )),
            );
        }
    }
    severities
}

/// A severity's update cadence: marks after the request, ascending, then a repeat interval
/// (`"never"` for none).
fn check_reminders(c: &mut Checker, section: &RawSeverity, defaults: Reminders) -> Reminders {
    let mut reminders = defaults;
    if let Some(marks) = &section.update_reminders {
        let mut secs = vec![];
        for mark in marks {
            let Some(d) = c.duration(mark, DurationSetting::UpdateReminder) else {
                continue;
            };
            if secs.last().is_some_and(|last| *last >= d.as_secs()) {
                c.error(
                    mark.span(),
                    format!("`{}` is not after the reminder before it", mark.get_ref()),
                    Some("list the reminders in the order they come due, e.g. [\"15m\", \"30m\", \"1h\"]".into()),
                );
            }
            secs.push(d.as_secs());
        }
        reminders.marks_secs = secs;
    }
    if let Some(every) = &section.update_reminders_then_every {
        reminders.then_every_secs = if every.get_ref() == "never" {
            None
        } else {
            c.duration(every, DurationSetting::UpdateReminder).map(|d| d.as_secs())
        };
    }
    reminders
}

/// The escalation ladder, level by level.
fn check_escalation(c: &mut Checker, raw: &RawConfig, roles: &BTreeMap<String, Vec<String>>) -> Vec<EscalationLevel> {
    let mut escalation = vec![];
    for level in &raw.escalation {
        check_role_ref(c, roles, &level.role);
        let severities = level.severities.as_ref().map(|list| {
            list.iter()
                .filter_map(|name| match name.get_ref().parse::<Severity>() {
                    Ok(s) => Some(s),
                    Err(()) => {
                        c.error(
                            name.span(),
                            format!("unknown severity `{}`", name.get_ref()),
                            Some("severities are critical, high, medium and low".into()),
                        );
                        None
                    }
                })
                .collect()
        });
        if let Some(after) = c.duration(&level.after, DurationSetting::EscalationAfter) {
            escalation.push(EscalationLevel {
                role: level.role.get_ref().clone(),
                after,
                severities,
            });
        }
    }
    escalation
}

/// A severity that runs without approval, with `requesters` unset, lets anyone in an incident
/// channel start a rollback that nobody else looks at: refused unless the file says so.
fn check_who_may_run_alone(c: &mut Checker, raw: &RawConfig, severities: &BTreeMap<Severity, SeverityPolicy>) {
    if raw.slack.requesters.is_some() || raw.slack.anyone_may_request == Some(true) {
        return;
    }
    let unapproved: Vec<String> = Severity::ALL
        .into_iter()
        .filter(|s| severities.get(s).is_some_and(|p| p.approvals == 0))
        .map(|s| s.to_string())
        .collect();
    if unapproved.is_empty() {
        return;
    }
    c.error(
        raw.slack.channels.span(),
        format!(
            "[slack] requesters is unset, so anyone in an incident channel may request, and {} {} no approval: one person could start a rollback nobody else sees first",
            unapproved.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" and "),
            if unapproved.len() == 1 { "needs" } else { "need" }
        ),
        Some("name who may request (requesters = [\"on_call\", \"team_lead\"]), give the severity approvals, or write anyone_may_request = true under [slack]".into()),
    );
}
