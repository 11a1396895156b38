//! `[checklists.<name>]` and the severities and runbooks that name them.
use super::*;
use crate::domain::checklist::{Checklist, ChecklistSection, MAX_ITEM_CHARS, MAX_ITEMS_PER_SECTION};

/// Which checklists a rollback gets: its severity's, then its runbook's, each once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checklists {
    pub defined: BTreeMap<String, Checklist>,
    pub by_severity: BTreeMap<Severity, Vec<String>>,
    pub by_runbook: BTreeMap<String, Vec<String>>,
}

impl Checklists {
    /// The checklists frozen into a request of `runbook` at `severity`.
    pub fn for_request(&self, runbook: &str, severity: Severity) -> Vec<Checklist> {
        let mut names: Vec<&String> = vec![];
        let named = self
            .by_severity
            .get(&severity)
            .into_iter()
            .flatten()
            .chain(self.by_runbook.get(runbook).into_iter().flatten());
        for name in named {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.into_iter().filter_map(|n| self.defined.get(n).cloned()).collect()
    }
}

pub(super) fn check_checklists(c: &mut Checker, raw: &RawConfig) -> Checklists {
    let mut defined = BTreeMap::new();
    for (name, checklist) in &raw.checklists {
        let mut sections = vec![];
        for section in &checklist.get_ref().sections {
            if section.items.is_empty() || section.items.len() > MAX_ITEMS_PER_SECTION {
                c.error(
                    checklist.span(),
                    format!(
                        "checklist `{name}`, section `{}` has {} items; Slack shows 1 to {MAX_ITEMS_PER_SECTION} boxes in one group",
                        section.name,
                        section.items.len()
                    ),
                    Some("split it into sections (e.g. by horizon: immediate, short-term, long-term)".into()),
                );
            }
            for item in &section.items {
                let length = item.get_ref().chars().count();
                if length == 0 || length > MAX_ITEM_CHARS {
                    c.error(
                        item.span(),
                        format!("a checklist item has {length} characters; Slack shows 1 to {MAX_ITEM_CHARS}"),
                        Some("say it shorter; details belong in the post-mortem".into()),
                    );
                }
            }
            sections.push(ChecklistSection {
                name: section.name.clone(),
                items: section.items.iter().map(|i| i.get_ref().clone()).collect(),
            });
        }
        if sections.is_empty() {
            c.error(checklist.span(), format!("checklist `{name}` has no sections"), None);
        }
        defined.insert(
            name.clone(),
            Checklist {
                name: name.clone(),
                title: checklist.get_ref().title.clone().unwrap_or_else(|| name.clone()),
                sections,
            },
        );
    }
    let names_of = |c: &mut Checker, list: &[Spanned<String>]| -> Vec<String> {
        for name in list {
            if !defined.contains_key(name.get_ref()) {
                let known = defined.keys().cloned().collect::<Vec<_>>().join(", ");
                c.error(
                    name.span(),
                    format!("checklist `{}` is not defined in [checklists]", name.get_ref()),
                    Some(format!(
                        "defined checklists: {}",
                        if known.is_empty() { "none".into() } else { known }
                    )),
                );
            }
        }
        list.iter().map(|n| n.get_ref().clone()).collect()
    };
    let by_severity = raw
        .severity
        .iter()
        .filter_map(|(name, section)| Some((name.get_ref().parse::<Severity>().ok()?, section)))
        .map(|(severity, section)| (severity, names_of(c, &section.checklists)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    let by_runbook = raw
        .runbooks
        .iter()
        .map(|(name, runbook)| (name.clone(), names_of(c, &runbook.checklists)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    Checklists {
        defined,
        by_severity,
        by_runbook,
    }
}
