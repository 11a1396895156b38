//! `[alertmanager]`, `[statuspage]` and `[pagerduty]`.
use super::*;

pub(super) const COMPONENT_STATUSES: [&str; 4] = [
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
];

pub(super) fn check_alertmanager(
    c: &mut Checker,
    raw: &RawAlertmanager,
    channels: &[ChannelId],
) -> Option<AlertmanagerSettings> {
    let severity = |c: &mut Checker, value: &Spanned<String>| match value.get_ref().parse::<Severity>() {
        Ok(severity) => Some(severity),
        Err(()) => {
            c.error(
                value.span(),
                format!("`{}` is not a severity", value.get_ref()),
                Some("severities are critical, high, medium and low".into()),
            );
            None
        }
    };
    let channel = match &raw.channel {
        Some(channel) if !channels.iter().any(|c| &c.0 == channel.get_ref()) => {
            c.error(
                channel.span(),
                format!("`{}` is not one of the incident channels", channel.get_ref()),
                Some(
                    "proposals are requests in waiting: post them where requests are accepted ([slack] channels)"
                        .into(),
                ),
            );
            return None;
        }
        Some(channel) => ChannelId(channel.get_ref().clone()),
        None => channels.first()?.clone(),
    };
    let default_severity = match &raw.default_severity {
        Some(value) => severity(c, value)?,
        None => Severity::High,
    };
    let mut severities = BTreeMap::new();
    for (label, value) in &raw.severities {
        if let Some(severity) = severity(c, value) {
            severities.insert(label.clone(), severity);
        }
    }
    let auto_request_every = match &raw.auto_request_every {
        Some(every) => c.duration(every, DurationSetting::AutoRequestEvery)?,
        None => DEFAULT_AUTO_REQUEST_EVERY,
    };
    let label = |name: &Option<String>, default: &str| name.clone().unwrap_or_else(|| default.to_owned());
    Some(AlertmanagerSettings {
        channel,
        token_env: label(&raw.token_env, DEFAULT_ALERTMANAGER_TOKEN_ENV),
        service_label: label(&raw.service_label, "service"),
        severity_label: label(&raw.severity_label, "severity"),
        target_label: raw.target_label.clone(),
        default_severity,
        severities,
        auto_request_every,
    })
}

pub(super) fn check_status_page(c: &mut Checker, raw: &RawStatusPage) -> Option<StatusPageSettings> {
    let kind = match raw.provider.get_ref().as_str() {
        "atlassian" => match &raw.page_id {
            Some(page_id) => StatusPageKind::Atlassian {
                api_url: raw
                    .api_url
                    .clone()
                    .unwrap_or_else(|| "https://api.statuspage.io/v1".into()),
                page_id: page_id.clone(),
            },
            None => {
                c.error(
                    raw.provider.span(),
                    "the atlassian status page needs `page_id`",
                    Some("the page ID is in the page's API settings".into()),
                );
                return None;
            }
        },
        "webhook" => match &raw.url {
            Some(url) => StatusPageKind::Webhook { url: url.clone() },
            None => {
                c.error(raw.provider.span(), "the webhook status page needs `url`", None);
                return None;
            }
        },
        other => {
            c.error(
                raw.provider.span(),
                format!("unknown status page provider `{other}`"),
                Some("providers are atlassian and webhook".into()),
            );
            return None;
        }
    };
    let impacted_status = match &raw.impacted_status {
        Some(s) if !COMPONENT_STATUSES.contains(&s.get_ref().as_str()) => {
            c.error(
                s.span(),
                format!("`{}` is not a component status", s.get_ref()),
                Some(format!("use one of {}", COMPONENT_STATUSES.join(", "))),
            );
            return None;
        }
        Some(s) => s.get_ref().clone(),
        None => "partial_outage".into(),
    };
    let default_env = if matches!(kind, StatusPageKind::Atlassian { .. }) {
        "STATUSPAGE_API_KEY"
    } else {
        "STATUSPAGE_WEBHOOK_SECRET"
    };
    let attach_to_open = match raw.attach.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "components")) => true,
        Some((_, "never")) => false,
        Some((value, other)) => {
            c.error(
                value.span(),
                format!("`{other}` is not a way to attach"),
                Some("use \"components\" (carry on an open incident for the service's components) or \"never\"".into()),
            );
            return None;
        }
    };
    Some(StatusPageSettings {
        attach_to_open,
        kind,
        secret_env: raw.secret_env.clone().unwrap_or_else(|| default_env.into()),
        impacted_status,
        resolve_after: raw
            .resolve_after
            .as_ref()
            .and_then(|d| c.duration(d, DurationSetting::ResolveAfter)),
    })
}

/// PagerDuty's settings: present when a role reads who is on call from it or `[pagerduty]` is
/// given (for change events, say).
pub(super) fn check_pagerduty(
    raw: Option<&RawPagerDuty>,
    roles: &BTreeMap<String, Vec<String>>,
) -> Option<PagerDutySettings> {
    let reads_on_call = roles
        .values()
        .flatten()
        .any(|m| crate::pagerduty::OnCallSource::parse(m).is_some());
    if raw.is_none() && !reads_on_call {
        return None;
    }
    let setting = |pick: fn(&RawPagerDuty) -> &Option<String>, default: &str| {
        raw.and_then(|p| pick(p).clone()).unwrap_or_else(|| default.to_owned())
    };
    Some(PagerDutySettings {
        reads_on_call,
        api_url: setting(|p| &p.api_url, crate::pagerduty::DEFAULT_API_URL),
        token_env: setting(|p| &p.token_env, crate::pagerduty::DEFAULT_TOKEN_ENV),
        change_events: raw
            .and_then(|p| p.routing_key_env.clone())
            .map(|routing_key_env| ChangeEventSettings {
                routing_key_env,
                url: setting(|p| &p.events_url, crate::pagerduty::DEFAULT_CHANGE_EVENTS_URL),
            }),
    })
}
