use super::{Actor, ChannelId, Severity, TeamId};
use std::collections::BTreeMap;
use std::time::Duration;

/// Who may do what, resolved from the configuration. Frozen parts are copied into each
/// rollback when it is requested, so a config change never alters a pending approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub workspace: Option<TeamId>,
    pub channels: Vec<ChannelId>,
    /// `None`: anyone in an incident channel may request.
    pub requester_roles: Option<Vec<String>>,
    pub severities: BTreeMap<Severity, SeverityPolicy>,
    /// Longest reason accepted, in characters.
    pub max_reason_chars: usize,
    /// How many unfinished rollbacks one person may have requested at a time.
    pub max_open_requests_per_person: usize,
    /// Who joins the approvers as time passes without an answer.
    pub escalation: Vec<EscalationLevel>,
    /// Whether a status page is kept, so that incidents can be marked resolved.
    pub status_page: bool,
    /// The two-person rule: a gate or a destructive step always needs someone other than the
    /// requester. On unless `[safety] two_person_rule = false`.
    pub two_person_rule: bool,
    /// Roles that may abort any rollback, besides its requester and approvers.
    pub abort_roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EscalationLevel {
    pub role: String,
    pub after: Duration,
    /// `None`: every severity.
    pub severities: Option<Vec<Severity>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeverityPolicy {
    pub approvals: u32,
    pub approvers: Vec<String>,
    pub require_reason: bool,
    pub allow_self_approval: bool,
    pub respond_within: Option<Duration>,
    /// Runs without approval are flagged for a post-incident review.
    pub review_required: bool,
    /// A request nobody approved by then is marked expired.
    pub expire_after: Option<Duration>,
    /// When, after the request, the point of contact is reminded to post an update, and how
    /// often after the last of those marks (`None`: no more).
    pub reminders: crate::domain::updates::Reminders,
}

impl SeverityPolicy {
    /// The defaults of the incident plans in DESIGN.md.
    pub fn default_for(severity: Severity) -> Self {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        match severity {
            Severity::Critical => SeverityPolicy {
                approvals: 0,
                approvers: vec![],
                require_reason: false,
                allow_self_approval: false,
                respond_within: None,
                review_required: true,
                expire_after: None,
                reminders: Default::default(),
            },
            Severity::High => SeverityPolicy {
                approvals: 1,
                approvers: vec!["on_call".into()],
                require_reason: false,
                allow_self_approval: false,
                respond_within: minutes(15),
                review_required: false,
                expire_after: minutes(4 * 60),
                reminders: Default::default(),
            },
            Severity::Medium => SeverityPolicy {
                approvals: 1,
                approvers: vec!["team_lead".into()],
                require_reason: false,
                allow_self_approval: false,
                respond_within: minutes(60),
                review_required: false,
                expire_after: minutes(8 * 60),
                reminders: Default::default(),
            },
            // The decision matrix: low needs no approval and is "probably not" a rollback, so
            // it needs a reason, and its card and form say the matrix's advice.
            Severity::Low => SeverityPolicy {
                approvals: 0,
                approvers: vec![],
                require_reason: true,
                allow_self_approval: false,
                respond_within: None,
                review_required: false,
                expire_after: None,
                reminders: Default::default(),
            },
        }
    }
}

impl Policy {
    pub fn severity(&self, severity: Severity) -> SeverityPolicy {
        self.severities
            .get(&severity)
            .cloned()
            .unwrap_or_else(|| SeverityPolicy::default_for(severity))
    }

    /// The escalation levels that apply to a severity, in the order they open.
    pub fn ladder(&self, severity: Severity) -> Vec<crate::domain::rollback::LadderLevel> {
        let mut levels: Vec<_> = self
            .escalation
            .iter()
            .filter(|l| l.severities.as_ref().is_none_or(|s| s.contains(&severity)))
            .map(|l| crate::domain::rollback::LadderLevel {
                role: l.role.clone(),
                after_secs: l.after.as_secs(),
            })
            .collect();
        levels.sort_by_key(|l| l.after_secs);
        levels
    }

    pub fn may_request(&self, actor: &Actor) -> bool {
        match &self.requester_roles {
            None => true,
            Some(roles) => roles.iter().any(|r| actor.roles.contains(r)),
        }
    }
}
