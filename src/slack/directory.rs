//! Who holds which role: Slack user IDs listed in the config directly, and members of Slack
//! user groups read with `usergroups.users.list`, cached for a short while. A group that cannot
//! be read leaves its roles unresolved, and decisions that depend on them refuse (fail closed).
use super::client::{CallError, SlackApi};
use crate::clock::Clock;
use crate::domain::{Actor, TeamId, UserId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a group lookup may take on the request path.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

/// A user group's members as read from Slack, and when.
type CachedMembers = (DateTime<Utc>, Vec<String>);

pub struct Directory {
    roles: BTreeMap<String, Vec<String>>,
    slack: Arc<SlackApi>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    cache: Mutex<HashMap<String, CachedMembers>>,
}

fn is_group(member: &str) -> bool {
    member.starts_with('S')
}

impl Directory {
    pub fn new(
        roles: BTreeMap<String, Vec<String>>,
        slack: Arc<SlackApi>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        Directory {
            roles,
            slack,
            clock,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The actor with every role they hold now; roles behind unreadable groups are unresolved.
    pub async fn actor(&self, user: &str, team: Option<&str>) -> Actor {
        let mut roles = BTreeSet::new();
        let mut unresolved = BTreeSet::new();
        for (role, members) in &self.roles {
            if members.iter().any(|m| m == user) {
                roles.insert(role.clone());
                continue;
            }
            for group in members.iter().filter(|m| is_group(m)) {
                match self.group_members(group).await {
                    Some(members) if members.iter().any(|m| m == user) => {
                        roles.insert(role.clone());
                        unresolved.remove(role);
                        break;
                    }
                    Some(_) => {}
                    None => {
                        unresolved.insert(role.clone());
                    }
                }
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

    async fn group_members(&self, group: &str) -> Option<Vec<String>> {
        let now = self.clock.now();
        if let Some((fetched, members)) = self.cache.lock().expect("cache lock").get(group)
            && now - *fetched < chrono::Duration::from_std(self.ttl).unwrap_or_default()
        {
            return Some(members.clone());
        }
        // This runs while Slack waits for our answer (3 s), so a slow lookup counts as a failed one:
        // the role stays unresolved and the decision refuses rather than guesses.
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.slack.group_members(group)).await;
        match lookup.unwrap_or_else(|_| Err(CallError::Transient("usergroups.users.list took too long".into()))) {
            Ok(members) => {
                self.cache
                    .lock()
                    .expect("cache lock")
                    .insert(group.to_owned(), (now, members.clone()));
                Some(members)
            }
            Err(error) => {
                tracing::warn!(group, %error, "could not read a user group's members; its roles stay unresolved");
                None
            }
        }
    }
}
