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

impl Proposal {
    /// When monitoring first saw the issue: the earliest start among its alerts (one that has
    /// resolved since still saw it first).
    pub fn detected(&self) -> Option<super::rollback::Detection> {
        self.alerts
            .iter()
            .filter_map(|a| Some((a.starts_at?, a)))
            .min_by_key(|(at, _)| *at)
            .map(|(at, alert)| super::rollback::Detection {
                at,
                alert: alert.name.clone(),
                proposal: self.id,
            })
    }
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
    /// Other alert groups about the same service, by group key: shown on this card instead of
    /// a card each, so an alert storm about one service is one card.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, FoldedGroup>,
}

/// An alert group folded into another group's proposal for the same service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldedGroup {
    pub severity: Severity,
    pub alerts: Vec<AlertSummary>,
    pub truncated: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub notifications: u32,
}

impl FoldedGroup {
    pub fn firing(&self) -> bool {
        self.alerts.iter().any(|a| a.firing)
    }

    pub fn lead_alert(&self) -> Option<&AlertSummary> {
        self.alerts.iter().find(|a| a.firing).or_else(|| self.alerts.first())
    }
}

/// Most alerts a folded group keeps: its card shows one line per group, the rest are counted.
const FOLDED_ALERTS_KEPT: usize = 5;

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
    /// The proposal a notification changes among its service's open (unresolved) proposals:
    /// the one that holds its group; else, for a firing group, the service's proposal nobody
    /// dismissed, which takes it in; else a new one. `None`: a resolved group with nothing open.
    pub fn observe_among(open: &[Proposal], group: &AlertGroup, now: DateTime<Utc>) -> Option<Proposal> {
        if let Some(lead) = open.iter().find(|p| p.group_key == group.group_key) {
            return Proposal::observe(Some(lead), group, now);
        }
        if let Some(holder) = open.iter().find(|p| p.also.contains_key(&group.group_key)) {
            return Some(holder.fold(group, now));
        }
        if !group.firing() {
            return None;
        }
        match open.iter().find(|p| p.takes_in_other_groups()) {
            Some(holder) => Some(holder.fold(group, now)),
            None => Proposal::observe(None, group, now),
        }
    }

    /// Whether a new proposal may open beside the service's open ones: none of them holds its
    /// group, and none would take it in. Checked by the store as it inserts.
    pub fn may_open_beside(&self, open: &[Proposal]) -> bool {
        open.iter().all(|p| {
            p.group_key != self.group_key && !p.also.contains_key(&self.group_key) && !p.takes_in_other_groups()
        })
    }

    /// A dismissed proposal keeps its own groups quiet but takes in no new one: a new alert
    /// after a dismissal deserves its own card.
    fn takes_in_other_groups(&self) -> bool {
        !matches!(self.decision, Some(Decision::Dismissed { .. }))
    }

    /// Whether any alert of any of its groups still fires.
    pub fn firing(&self) -> bool {
        self.alerts.iter().any(|a| a.firing) || self.also.values().any(FoldedGroup::firing)
    }

    /// The gravest severity of the folded groups still firing (critical orders first).
    fn folded_severity(&self) -> Option<Severity> {
        self.also.values().filter(|g| g.firing()).map(|g| g.severity).min()
    }

    /// The proposal with another group's notification taken in.
    fn fold(&self, group: &AlertGroup, now: DateTime<Utc>) -> Proposal {
        let mut next = self.clone();
        let folded = next.also.entry(group.group_key.clone()).or_insert_with(|| FoldedGroup {
            severity: group.severity,
            alerts: vec![],
            truncated: 0,
            first_seen: now,
            last_seen: now,
            notifications: 0,
        });
        let kept = group.alerts.len().min(FOLDED_ALERTS_KEPT);
        folded.severity = group.severity;
        folded.alerts = group.alerts[..kept].to_vec();
        folded.truncated = group.truncated + (group.alerts.len() - kept) as u64;
        folded.last_seen = now;
        folded.notifications = folded.notifications.saturating_add(1);
        if next.rollback.is_none() {
            if group.firing() {
                next.severity = next.severity.min(group.severity);
            }
            next.target = next.target.or_else(|| group.target.clone());
        }
        next.last_seen = now;
        next.notifications = next.notifications.saturating_add(1);
        next.resolved_at = (!next.firing()).then_some(now);
        next
    }

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
                    open.folded_severity().map_or(group.severity, |s| s.min(group.severity))
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
                // Resolved once every group it holds is.
                resolved_at: resolved_at.filter(|_| !open.also.values().any(FoldedGroup::firing)),
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
                also: BTreeMap::new(),
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

/// Whether rollbot may file another request for `service` by itself, given the last one it
/// filed: at most one per `every`.
pub fn may_file_automatically(
    service: &str,
    last: Option<(RollbackId, DateTime<Utc>)>,
    every: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    match last {
        Some((last, at)) if now.signed_duration_since(at).to_std().unwrap_or_default() < every => {
            Err(Refusal::AutomaticRequestTooSoon {
                service: service.to_owned(),
                last,
                at,
                every,
            })
        }
        _ => Ok(()),
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

    fn other_group(firing: bool, severity: Severity) -> AlertGroup {
        let mut group = alert_group(firing, 1);
        group.group_key = "{}:{alertname=\"LatencyHigh\"}".into();
        group.severity = severity;
        group.alerts[0].name = "LatencyHigh".into();
        group
    }

    fn saved(mut proposal: Proposal, id: i64) -> Proposal {
        proposal.id = ProposalId(id);
        proposal
    }

    #[test]
    fn a_services_other_alert_groups_fold_into_its_open_proposal_until_all_resolve() {
        let lead = saved(Proposal::observe_among(&[], &alert_group(true, 1), at(0)).unwrap(), 1);
        let folded = Proposal::observe_among(
            std::slice::from_ref(&lead),
            &other_group(true, Severity::Critical),
            at(1),
        )
        .unwrap();
        assert_eq!(folded.id, lead.id, "the same proposal, not a new one");
        assert_eq!(folded.also.len(), 1);
        assert_eq!((folded.severity, folded.notifications), (Severity::Critical, 2));
        assert!(
            !Proposal::observe(None, &other_group(true, Severity::High), at(1))
                .unwrap()
                .may_open_beside(std::slice::from_ref(&lead)),
            "the store refuses a second card for the service"
        );

        let lead_resolved =
            Proposal::observe_among(std::slice::from_ref(&folded), &alert_group(false, 1), at(2)).unwrap();
        assert_eq!(lead_resolved.resolved_at, None, "the folded group still fires");
        assert_eq!(lead_resolved.severity, Severity::Critical);
        let all_resolved =
            Proposal::observe_among(&[lead_resolved], &other_group(false, Severity::Critical), at(3)).unwrap();
        assert_eq!(all_resolved.resolved_at, Some(at(3)));
        assert_eq!(all_resolved.also.values().next().unwrap().notifications, 2);
    }

    #[test]
    fn a_dismissed_proposal_keeps_its_groups_but_takes_in_no_new_one() {
        let mut lead = saved(Proposal::observe_among(&[], &alert_group(true, 1), at(0)).unwrap(), 1);
        lead.decision = Some(Decision::Dismissed {
            by: crate::domain::UserId("U0ALICE".into()),
            at: at(1),
        });
        let repeat = Proposal::observe_among(&[lead.clone()], &alert_group(true, 1), at(2)).unwrap();
        assert_eq!((repeat.id, repeat.decision.is_some()), (lead.id, true));
        let new = Proposal::observe_among(&[lead.clone()], &other_group(true, Severity::High), at(2)).unwrap();
        assert_eq!(new.id, ProposalId(0), "a new alert after a dismissal gets its own card");
        assert!(new.may_open_beside(&[lead]));
        assert_eq!(
            Proposal::observe_among(&[], &other_group(false, Severity::High), at(3)),
            None,
            "a resolved group with nothing open needs no card"
        );
    }

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
