//! Proposals: what monitoring suggests. A firing alert group becomes a proposal that people
//! start (as a normal, policy-checked request) or dismiss; it never runs anything by itself.
use super::{Actor, ChannelId, Policy, Refusal, RollbackId, Severity, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::ProposalId;

/// One alert of a group, as people need to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSummary {
    pub name: String,
    pub firing: bool,
    /// The `summary` (or `description`) annotation.
    pub summary: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Where the alert comes from (the Prometheus graph of its expression).
    pub source: Option<String>,
}

/// What one Alertmanager notification says about one service, already mapped to rollbot's
/// terms by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertGroup {
    pub group_key: String,
    pub service: String,
    pub severity: Severity,
    pub target: Option<String>,
    pub channel: ChannelId,
    pub alerts: Vec<AlertSummary>,
    /// Labels every alert of the group shares.
    pub common_labels: BTreeMap<String, String>,
    /// Alertmanager's own page for the group.
    pub external_url: Option<String>,
    /// Alerts Alertmanager left out of the notification (`truncatedAlerts`).
    pub truncated: u64,
}

impl AlertGroup {
    pub fn firing(&self) -> bool {
        self.alerts.iter().any(|a| a.firing)
    }
}

/// What people did with a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Decision {
    Dismissed {
        by: UserId,
        at: DateTime<Utc>,
    },
    /// A rollback was requested from it; by `rollbot` itself when the service files requests
    /// automatically. The rollback's number is kept beside the proposal by the store.
    Started {
        by: UserId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    #[serde(skip, default = "no_id")]
    pub id: ProposalId,
    #[serde(skip)]
    pub version: i64,
    /// The rollback requested from this proposal, if any.
    #[serde(skip)]
    pub rollback: Option<RollbackId>,
    pub group_key: String,
    pub service: String,
    pub severity: Severity,
    pub target: Option<String>,
    pub channel: ChannelId,
    pub alerts: Vec<AlertSummary>,
    pub common_labels: BTreeMap<String, String>,
    pub external_url: Option<String>,
    pub truncated: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// How many notifications of the group arrived, the first included.
    pub notifications: u32,
    pub resolved_at: Option<DateTime<Utc>>,
    pub decision: Option<Decision>,
    /// Why the service's automatic request was not filed, when it was not. (Proposals recorded
    /// before it was kept as a value hold it worded, as `auto_request_skipped`.)
    #[serde(default, alias = "auto_request_skipped", with = "refused_or_worded")]
    pub auto_request_refused: Option<AutoRequestRefused>,
}

/// Why an automatic request was not filed: the refusal, or (recorded by an earlier version)
/// its wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoRequestRefused {
    Refused(super::Refusal),
    Worded(String),
}

mod refused_or_worded {
    use super::AutoRequestRefused;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Refused(crate::domain::Refusal),
        Worded(String),
    }

    pub fn serialize<S: Serializer>(value: &Option<AutoRequestRefused>, to: S) -> Result<S::Ok, S::Error> {
        value
            .as_ref()
            .map(|v| match v {
                AutoRequestRefused::Refused(r) => Stored::Refused(r.clone()),
                AutoRequestRefused::Worded(w) => Stored::Worded(w.clone()),
            })
            .serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<AutoRequestRefused>, D::Error> {
        Ok(Option::<Stored>::deserialize(from)?.map(|s| match s {
            Stored::Refused(r) => AutoRequestRefused::Refused(r),
            Stored::Worded(w) => AutoRequestRefused::Worded(w),
        }))
    }
}

fn no_id() -> ProposalId {
    ProposalId(0)
}

impl Proposal {
    /// The proposal after a notification of its group: a new one for a firing group nobody
    /// proposed yet, the same one brought up to date otherwise. `None`: a resolved group with
    /// nothing open, which needs no card.
    pub fn observe(open: Option<&Proposal>, group: &AlertGroup, now: DateTime<Utc>) -> Option<Proposal> {
        let resolved_at = (!group.firing()).then_some(now);
        match open {
            Some(open) => Some(Proposal {
                // A repeated notification may raise the severity or name a target; once a
                // rollback was started, its request already froze both.
                severity: if open.rollback.is_some() {
                    open.severity
                } else {
                    group.severity
                },
                target: if open.rollback.is_some() {
                    open.target.clone()
                } else {
                    group.target.clone().or_else(|| open.target.clone())
                },
                alerts: group.alerts.clone(),
                common_labels: group.common_labels.clone(),
                external_url: group.external_url.clone().or_else(|| open.external_url.clone()),
                truncated: group.truncated,
                last_seen: now,
                notifications: open.notifications.saturating_add(1),
                resolved_at,
                ..open.clone()
            }),
            None if group.firing() => Some(Proposal {
                id: ProposalId(0),
                version: 0,
                rollback: None,
                group_key: group.group_key.clone(),
                service: group.service.clone(),
                severity: group.severity,
                target: group.target.clone(),
                channel: group.channel.clone(),
                alerts: group.alerts.clone(),
                common_labels: group.common_labels.clone(),
                external_url: group.external_url.clone(),
                truncated: group.truncated,
                first_seen: now,
                last_seen: now,
                notifications: 1,
                resolved_at: None,
                decision: None,
                auto_request_refused: None,
            }),
            None => None,
        }
    }

    /// The alert people see first: a firing one if any.
    pub fn lead_alert(&self) -> Option<&AlertSummary> {
        self.alerts.iter().find(|a| a.firing).or_else(|| self.alerts.first())
    }

    /// The reason recorded on a rollback started from this proposal.
    pub fn reason(&self, max_chars: usize) -> String {
        let alert = self.lead_alert();
        let name = alert.map_or("an alert", |a| a.name.as_str());
        // A proposal filed as it is first recorded has no number yet.
        let mut reason = match self.id.0 {
            0 => format!("Alert {name}"),
            _ => format!("Alert {name} ({})", self.id),
        };
        if let Some(summary) = alert.and_then(|a| a.summary.as_deref()) {
            reason.push_str(": ");
            reason.push_str(summary);
        }
        if reason.chars().count() > max_chars {
            reason = reason.chars().take(max_chars.saturating_sub(1)).collect::<String>() + "…";
        }
        reason
    }
}

/// What a person asks of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalAction {
    Start,
    Dismiss,
}

/// Whether `actor` may `action` the proposal now. Starting is then still a request like any
/// other, checked by `decide`: this only keeps a proposal from being used twice or after the
/// alert ended.
pub fn decide_proposal(
    proposal: &Proposal,
    action: ProposalAction,
    actor: &Actor,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Decision, Refusal> {
    if !super::decide::in_workspace(actor, policy) {
        return Err(Refusal::WrongWorkspace);
    }
    let id = proposal.id;
    super::decide::acting_where_it_lives(actor, &proposal.channel, id.to_string())?;
    match (&proposal.decision, proposal.rollback) {
        (Some(Decision::Started { by, .. }), Some(rollback)) => {
            return Err(Refusal::ProposalStarted {
                id,
                rollback,
                by: by.clone(),
            });
        }
        (Some(Decision::Dismissed { by, .. }), _) => {
            return Err(Refusal::ProposalDismissed { id, by: by.clone() });
        }
        _ => {}
    }
    if proposal.resolved_at.is_some() {
        return Err(Refusal::ProposalResolved {
            id,
            service: proposal.service.clone(),
        });
    }
    // Dismissing silences a proposal for everyone, so it takes the right to request.
    if action == ProposalAction::Dismiss {
        super::decide::may_request(actor, policy)?;
    }
    let by = actor.user.clone();
    Ok(match action {
        ProposalAction::Start => Decision::Started { by, at: now },
        ProposalAction::Dismiss => Decision::Dismissed { by, at: now },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;
    use crate::domain::fixtures::{alert_group, at};

    #[test]
    fn why_an_automatic_request_was_not_filed_is_kept_as_a_value_and_old_wording_still_reads() {
        let mut proposal = Proposal::observe(None, &alert_group(true, 1), at(0)).unwrap();
        proposal.auto_request_refused = Some(AutoRequestRefused::Refused(
            crate::domain::Refusal::AutomaticRequestNeedsApproval {
                severity: Severity::Critical,
            },
        ));
        let stored = serde_json::to_value(&proposal).unwrap();
        assert_eq!(
            stored["auto_request_refused"]["refusal"], "automatic_request_needs_approval",
            "{stored}"
        );
        let read: Proposal = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(read.auto_request_refused, proposal.auto_request_refused);

        let mut old = stored;
        old.as_object_mut().unwrap().remove("auto_request_refused");
        old["auto_request_skipped"] = "needs approval".into();
        let read: Proposal = serde_json::from_value(old).unwrap();
        assert_eq!(
            read.auto_request_refused,
            Some(AutoRequestRefused::Worded("needs approval".into()))
        );
    }
}
