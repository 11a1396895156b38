//! Who holds which role: Slack user IDs listed in the config directly, members of Slack user
//! groups read with `usergroups.users.list`, and whoever PagerDuty has on call for a schedule or
//! an escalation level (their emails found in Slack with `users.lookupByEmail`), each cached for
//! a short while. A source that cannot be read leaves its roles unresolved, and decisions that
//! depend on them refuse (fail closed).
use super::client::{CallError, SlackApi};
use crate::clock::Clock;
use crate::domain::{Actor, TeamId, UserId};
use crate::pagerduty::{OnCallSource, PagerDuty};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a group lookup may take on the request path.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

/// A user group's (or an on-call source's) members as read, and when.
type CachedMembers = (DateTime<Utc>, Vec<String>);
/// The Slack user with an email (`None`: nobody active has it), and when Slack said so.
type CachedUser = (DateTime<Utc>, Option<String>);

pub struct Directory {
    roles: BTreeMap<String, Vec<String>>,
    slack: Arc<SlackApi>,
    pagerduty: Option<Arc<PagerDuty>>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// By the member as the configuration writes it (`S…`, `pagerduty:…`).
    cache: Mutex<HashMap<String, CachedMembers>>,
    /// Emails to Slack users (`None`: nobody in Slack has it), as `users.lookupByEmail` answered.
    emails: Mutex<HashMap<String, CachedUser>>,
}

/// A member that stands for others, read when someone clicks.
enum Source {
    Group,
    OnCall(OnCallSource),
}

fn source(member: &str) -> Option<Source> {
    match OnCallSource::parse(member) {
        Some(Ok(on_call)) => Some(Source::OnCall(on_call)),
        // The configuration refuses a malformed one; never read it as a user.
        Some(Err(_)) => None,
        None => member.starts_with('S').then_some(Source::Group),
    }
}

impl Directory {
    pub fn new(
        roles: BTreeMap<String, Vec<String>>,
        slack: Arc<SlackApi>,
        pagerduty: Option<Arc<PagerDuty>>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        Directory {
            roles,
            slack,
            pagerduty,
            clock,
            ttl,
            cache: Mutex::new(HashMap::new()),
            emails: Mutex::new(HashMap::new()),
        }
    }

    /// The actor with every role they hold now; roles behind unreadable groups or schedules
    /// are unresolved. Every source a role of theirs may come through is read side by side, so
    /// a slow one costs its own bound once, not once per source.
    pub async fn actor(&self, user: &str, team: Option<&str>) -> Actor {
        let direct: BTreeSet<&String> = self
            .roles
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == user))
            .map(|(role, _)| role)
            .collect();
        let to_read: BTreeSet<&String> = self
            .roles
            .iter()
            .filter(|(role, _)| !direct.contains(role))
            .flat_map(|(_, members)| members.iter().filter(|m| source(m).is_some()))
            .collect();
        let reads = to_read.iter().filter_map(|member| {
            let source = source(member)?;
            Some(async move { (member.as_str(), self.members_of(member, source).await) })
        });
        let read: HashMap<&str, Option<Vec<String>>> =
            futures_util::future::join_all(reads).await.into_iter().collect();
        let mut roles = BTreeSet::new();
        let mut unresolved = BTreeSet::new();
        for (role, members) in &self.roles {
            if direct.contains(role) {
                roles.insert(role.clone());
                continue;
            }
            let sources: Vec<&Option<Vec<String>>> = members.iter().filter_map(|m| read.get(m.as_str())).collect();
            if sources
                .iter()
                .any(|found| found.as_ref().is_some_and(|f| f.iter().any(|m| m == user)))
            {
                roles.insert(role.clone());
            } else if sources.iter().any(|found| found.is_none()) {
                unresolved.insert(role.clone());
            }
        }
        Actor {
            user: UserId(user.to_owned()),
            team: team.map(|t| TeamId(t.to_owned())),
            roles,
            unresolved_roles: unresolved,
            channel: None,
        }
    }

    /// Who `member` stands for now, from the cache while it is fresh; `None` when it could not
    /// be read. This runs while Slack waits for our answer (3 s), so a slow lookup counts as a
    /// failed one: the role stays unresolved and the decision refuses rather than guesses.
    async fn members_of(&self, member: &str, source: Source) -> Option<Vec<String>> {
        let now = self.clock.now();
        if let Some((fetched, members)) = self.cache.lock().expect("cache lock").get(member)
            && self.fresh(now, *fetched)
        {
            return Some(members.clone());
        }
        let read = match &source {
            Source::Group => Box::pin(self.slack.group_members(member)) as Lookup<'_>,
            Source::OnCall(on_call) => Box::pin(self.on_call(on_call, now)),
        };
        let read = read_within(LOOKUP_TIMEOUT, member, &source, read).await?;
        self.cache
            .lock()
            .expect("cache lock")
            .insert(member.to_owned(), (now, read.clone()));
        Some(read)
    }

    fn fresh(&self, now: DateTime<Utc>, fetched: DateTime<Utc>) -> bool {
        now - fetched < chrono::Duration::from_std(self.ttl).unwrap_or_default()
    }

    /// The Slack users PagerDuty has on call for `on_call`: its emails, each looked up in Slack.
    /// Someone on call with no Slack user cannot approve, and is logged; a failed lookup fails
    /// the whole read.
    async fn on_call(&self, on_call: &OnCallSource, now: DateTime<Utc>) -> Result<Vec<String>, CallError> {
        let pagerduty = self
            .pagerduty
            .as_ref()
            .ok_or_else(|| CallError::Permanent("a role reads PagerDuty, but rollbot has no PagerDuty key".into()))?;
        let emails = pagerduty.on_call_emails(on_call).await.map_err(CallError::Transient)?;
        let mut users = vec![];
        for email in emails {
            let known = self
                .emails
                .lock()
                .expect("email cache lock")
                .get(&email)
                .filter(|(fetched, _)| self.fresh(now, *fetched))
                .map(|(_, user)| user.clone());
            let user = match known {
                Some(user) => user,
                None => {
                    let user = self.slack.user_by_email(&email).await?;
                    self.emails
                        .lock()
                        .expect("email cache lock")
                        .insert(email.clone(), (now, user.clone()));
                    user
                }
            };
            match user {
                Some(user) => users.push(user),
                None => tracing::warn!(
                    source = %on_call.describe(),
                    "someone PagerDuty has on call has no active Slack user with their email; they cannot approve"
                ),
            }
        }
        Ok(users)
    }
}

type Lookup<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, CallError>> + Send + 'a>>;

async fn read_within(limit: Duration, member: &str, source: &Source, read: Lookup<'_>) -> Option<Vec<String>> {
    let what = match source {
        Source::Group => "usergroups.users.list",
        Source::OnCall(_) => "PagerDuty's on-call read",
    };
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(members)) => Some(members),
        Ok(Err(error)) => {
            tracing::warn!(member, %error, "could not read {what}; the roles it stands for stay unresolved");
            None
        }
        Err(_) => {
            tracing::warn!(member, "{what} took too long; the roles it stands for stay unresolved");
            None
        }
    }
}
