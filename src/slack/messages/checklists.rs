//! The post-incident checklists, posted in the thread once a rollback ended: each section a
//! group of boxes people tick as the work gets done; who ticked what, under each group.
use super::*;
use crate::domain::checklist::ItemRef;
use crate::slack::wire::ChecklistBoxes;

/// Slack refuses a message of more than 50 blocks.
const MAX_BLOCKS: usize = 50;

pub fn checklists(rollback: &Rollback) -> Message {
    let id = rollback.id;
    let lists = &rollback.request.checklists;
    let open = crate::domain::checklist::items(lists)
        .filter(|(item, ..)| !rollback.ticks.contains_key(item))
        .count();
    let total = crate::domain::checklist::items(lists).count();
    let text = format!(
        "📋 *Post-incident checklists for {id}*: {} of {total} done. Tick each item when it is done; what is left unticked becomes an action item in the post-mortem draft (`/rollback postmortem {id}`).",
        total - open
    );
    let mut blocks = vec![section(text.clone())];
    'lists: for (c, checklist) in lists.iter().enumerate() {
        blocks.push(json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&checklist.title, 150), "emoji": true}}));
        for (s, list_section) in checklist.sections.iter().enumerate() {
            if blocks.len() + 3 > MAX_BLOCKS {
                blocks.push(context(format!(
                    "_More than Slack shows in one message: the rest is in the post-mortem draft (`/rollback postmortem {id}`)._"
                )));
                break 'lists;
            }
            let at = |item: usize| ItemRef {
                checklist: c,
                section: s,
                item,
            };
            let option = |(item, text): (usize, &String)| json!({"text": {"type": "plain_text", "text": truncate(text, crate::domain::checklist::MAX_ITEM_CHARS), "emoji": true}, "value": ChecklistBoxes::box_value(item)});
            let options: Vec<Value> = list_section.items.iter().enumerate().map(option).collect();
            let ticked: Vec<Value> = list_section
                .items
                .iter()
                .enumerate()
                .filter(|(item, _)| rollback.ticks.contains_key(&at(*item)))
                .map(option)
                .collect();
            let boxes = ChecklistBoxes {
                rollback: id,
                checklist: c,
                section: s,
            };
            let mut element = json!({"type": "checkboxes", "action_id": boxes.action_id(), "options": options});
            if !ticked.is_empty() {
                element["initial_options"] = json!(ticked);
            }
            blocks.push(section(format!("*{}*", escape(&list_section.name))));
            blocks.push(json!({"type": "actions", "elements": [element]}));
            let done: Vec<String> = list_section
                .items
                .iter()
                .enumerate()
                .filter_map(|(item, text)| {
                    let tick = rollback.ticks.get(&at(item))?;
                    Some(format!("✓ {} — {} {}", escape(text), user(&tick.by), hhmm(tick.at)))
                })
                .collect();
            if !done.is_empty() {
                blocks.push(context(done.join("\n")));
            }
        }
    }
    Message { text, blocks }
}
