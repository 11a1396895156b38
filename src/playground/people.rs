//! Who one can be on the playground's page: everyone the configuration's roles name, members
//! made up for its user groups, and a visitor in no role.
use crate::config::Config;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    /// May type a request (`[slack] requesters`, or anyone when it is unset).
    pub may_request: bool,
}

/// Someone in the channel with no role: the one whose clicks rollbot refuses.
pub const VISITOR: &str = "U0VISITOR";

/// Everyone, requesters first (in the order their roles are written), the visitor last.
pub fn people_of(config: &Config) -> Vec<Person> {
    let mut people: Vec<Person> = vec![];
    for (role, members) in &config.roles {
        for member in members {
            let named: Vec<(String, String)> = if is_group(member) {
                group_members(member)
                    .into_iter()
                    .enumerate()
                    .map(|(n, id)| (id, format!("{role} {} (in {member})", n + 1)))
                    .collect()
            } else {
                vec![(member.clone(), name_of(member))]
            };
            for (id, name) in named {
                match people.iter_mut().find(|p| p.id == id) {
                    Some(person) => person.roles.push(role.clone()),
                    None => people.push(Person {
                        name,
                        id,
                        roles: vec![role.clone()],
                        may_request: false,
                    }),
                }
            }
        }
    }
    people.push(Person {
        id: VISITOR.to_owned(),
        name: "Visitor".to_owned(),
        roles: vec![],
        may_request: false,
    });
    let requesters = config.policy.requester_roles.as_ref();
    for person in &mut people {
        person.may_request = requesters.is_none_or(|roles| person.roles.iter().any(|r| roles.contains(r)));
    }
    // As the escalation path reads: the severities' approvers, then each level of the ladder.
    let path: Vec<&String> = config
        .policy
        .severities
        .values()
        .flat_map(|s| &s.approvers)
        .chain(config.policy.escalation.iter().map(|level| &level.role))
        .collect();
    let rank = |person: &Person| {
        let place = person
            .roles
            .iter()
            .filter_map(|r| path.iter().position(|p| *p == r))
            .min();
        (
            !person.may_request,
            person.roles.is_empty(),
            place.unwrap_or(usize::MAX),
        )
    };
    people.sort_by_key(rank);
    people
}

/// The members the stand-in gives each user group the roles name.
pub fn groups(config: &Config) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = vec![];
    for member in config.roles.values().flatten().filter(|m| is_group(m)) {
        if !groups.iter().any(|(g, _)| g == member) {
            groups.push((member.clone(), group_members(member)));
        }
    }
    groups
}

fn is_group(id: &str) -> bool {
    id.starts_with('S')
}

/// Two made-up members of a group, named after it.
fn group_members(group: &str) -> Vec<String> {
    (1..=2).map(|n| format!("U{group}{n}")).collect()
}

/// `U0ALICE` reads as Alice; an id that is not a name reads as itself.
fn name_of(id: &str) -> String {
    let word = id.trim_start_matches(['U', 'W']).trim_start_matches('0');
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphabetic()) {
        return id.to_owned();
    }
    let mut name = word.to_ascii_lowercase();
    name[..1].make_ascii_uppercase();
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_members_and_groups_become_people_requesters_first_and_a_visitor_last() {
        let config = Config::parse(
            "t.toml",
            r#"
[slack]
channels = ["C0INC"]
requesters = ["on_call"]
[roles]
team_lead = ["U0CAROL"]
on_call = ["U0ALICE", "S0ONCALL"]
[services.api]
runbooks = ["r"]
[[runbooks.r.steps]]
name = "s"
run = ["true"]
"#,
        )
        .unwrap();
        let people = people_of(&config);
        let summary: Vec<(&str, &str, bool)> = people
            .iter()
            .map(|p| (p.id.as_str(), p.name.as_str(), p.may_request))
            .collect();
        assert_eq!(
            summary,
            [
                ("U0ALICE", "Alice", true),
                ("US0ONCALL1", "on_call 1 (in S0ONCALL)", true),
                ("US0ONCALL2", "on_call 2 (in S0ONCALL)", true),
                ("U0CAROL", "Carol", false),
                (VISITOR, "Visitor", false),
            ]
        );
        assert_eq!(
            groups(&config),
            [(
                "S0ONCALL".to_owned(),
                vec!["US0ONCALL1".to_owned(), "US0ONCALL2".to_owned()]
            )]
        );
    }
}
