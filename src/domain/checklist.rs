//! Post-incident checklists: frozen with the request, posted in the thread when the rollback
//! ends, ticked by people (each tick on the record, with who and when); what is left unticked
//! becomes the post-mortem's action items.
use super::UserId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Slack shows at most ten boxes in one checkbox group: a section holds as many items.
pub const MAX_ITEMS_PER_SECTION: usize = 10;
/// Slack cuts a checkbox's text at 75 characters.
pub const MAX_ITEM_CHARS: usize = 75;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    /// Its key in the configuration (`[checklists.<name>]`).
    pub name: String,
    pub title: String,
    pub sections: Vec<ChecklistSection>,
}

/// A group of items with a horizon: "Immediate (next hour)", "Short-term (next day)", …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistSection {
    pub name: String,
    pub items: Vec<String>,
}

/// One item: the checklist's, the section's and the item's positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemRef {
    pub checklist: usize,
    pub section: usize,
    pub item: usize,
}

/// Who ticked an item, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub by: UserId,
    pub at: DateTime<Utc>,
}

/// The items of `checklists` with their text, in order.
pub fn items(checklists: &[Checklist]) -> impl Iterator<Item = (ItemRef, &Checklist, &ChecklistSection, &str)> {
    checklists.iter().enumerate().flat_map(|(c, checklist)| {
        checklist.sections.iter().enumerate().flat_map(move |(s, section)| {
            section.items.iter().enumerate().map(move |(i, text)| {
                (
                    ItemRef {
                        checklist: c,
                        section: s,
                        item: i,
                    },
                    checklist,
                    section,
                    text.as_str(),
                )
            })
        })
    })
}

/// JSON maps take only string keys: the ticks are kept as `[[item, tick], …]`.
pub mod ticks_as_pairs {
    use super::{ItemRef, Tick};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(ticks: &BTreeMap<ItemRef, Tick>, to: S) -> Result<S::Ok, S::Error> {
        ticks.iter().collect::<Vec<_>>().serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<BTreeMap<ItemRef, Tick>, D::Error> {
        Ok(Vec::<(ItemRef, Tick)>::deserialize(from)?.into_iter().collect())
    }
}
