//! Ticks on a rollback's post-incident checklists.
use super::*;
use crate::domain::checklist::ItemRef;

/// Anyone who may read the rollback may tick its checklists, at any time: the work they list
/// goes on for days. Slack sends the group's whole selection, so each box that changed is one
/// event, and a selection that changed nothing records nothing.
pub(super) fn decide_tick(
    rollback: &Rollback,
    checklist: usize,
    section: usize,
    ticked: &[usize],
    actor: &Actor,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    may_read(rollback, actor, policy)?;
    let items = rollback
        .request
        .checklists
        .get(checklist)
        .and_then(|c| c.sections.get(section))
        .map(|s| s.items.len())
        .ok_or(Refusal::NoSuchChecklistItem { id: rollback.id })?;
    if ticked.iter().any(|&item| item >= items) {
        return Err(Refusal::NoSuchChecklistItem { id: rollback.id });
    }
    Ok((0..items)
        .filter_map(|item| {
            let at = ItemRef {
                checklist,
                section,
                item,
            };
            let now = ticked.contains(&item);
            (now != rollback.ticks.contains_key(&at)).then(|| Event::ChecklistTicked {
                item: at,
                ticked: now,
                by: actor.user.clone(),
            })
        })
        .collect())
}
