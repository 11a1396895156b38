//! The plan as people approve it: every step shown, packed into sections on step boundaries, a
//! long command split across code blocks that each close, and what does not fit on the card in
//! full in its thread, with the card saying so. Never a silent cut of what is approved.
use super::*;

/// Sections of the card the plan may take (the card has Slack's 50 blocks in all, and a message
/// that large is slow to read); past it the card shows the first steps and says where the rest is.
const CARD_PLAN_SECTIONS: usize = 4;
/// Sections per thread message of the plan's continuation.
const THREAD_PLAN_SECTIONS: usize = 10;

/// Step `index` as the card shows it: its state, number and name, then its command in one code
/// block, or in several (each closed) when it is longer than a section holds.
fn step_pieces(rollback: &Rollback, index: usize) -> Vec<String> {
    let step = &rollback.plan.steps[index];
    let head = format!(
        "{} {}. *{}*\n",
        step_icon(rollback, index),
        index + 1,
        escape(&step.name)
    );
    let code = escape(&step_line(&step.action)).replace("```", "`\u{200b}``");
    let room = MAX_SECTION_CHARS - head.chars().count() - 40;
    let chunks = split_escaped(&code, room);
    let parts = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(n, chunk)| match n {
            0 => format!("{head}```{chunk}```"),
            n => format!(
                "_(step {} continued, part {} of {parts})_\n```{chunk}```",
                index + 1,
                n + 1
            ),
        })
        .collect()
}

/// Escaped text in pieces of at most `most` characters, never cutting an entity (`&amp;`).
fn split_escaped(text: &str, most: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= most {
        return vec![text.to_owned()];
    }
    let mut pieces = vec![];
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + most).min(chars.len());
        if end < chars.len()
            && let Some(amp) = chars[end.saturating_sub(5).max(start)..end]
                .iter()
                .rposition(|c| *c == '&')
        {
            let amp = end.saturating_sub(5).max(start) + amp;
            if !chars[amp..end].contains(&';') && amp > start {
                end = amp;
            }
        }
        pieces.push(chars[start..end].iter().collect());
        start = end;
    }
    pieces
}

/// Packs whole steps, from `first`, into sections, starting with `header`; stops before a step
/// that would need more than `budget` sections in all. Returns the sections and the first step
/// not packed.
fn pack(rollback: &Rollback, first: usize, header: &str, budget: usize) -> (Vec<String>, usize) {
    let mut sections = vec![header.to_owned()];
    let mut next = first;
    while next < rollback.plan.steps.len() {
        let mut trial = sections.clone();
        for piece in step_pieces(rollback, next) {
            let last = trial.last_mut().expect("at least the header");
            if last.chars().count() + 1 + piece.chars().count() <= MAX_SECTION_CHARS {
                last.push('\n');
                last.push_str(&piece);
            } else {
                trial.push(piece);
            }
        }
        if trial.len() > budget {
            break;
        }
        sections = trial;
        next += 1;
    }
    (sections, next)
}

fn card_header(rollback: &Rollback) -> String {
    format!(
        "*Plan* (runbook `{}`, digest `{}`): exactly what runs, in order.",
        escape(&rollback.request.runbook),
        &rollback.plan_digest[..12]
    )
}

/// The first step the card has no room for; `None` when it shows every step.
fn first_in_thread(rollback: &Rollback) -> Option<usize> {
    let header = card_header(rollback);
    let (_, packed) = pack(rollback, 0, &header, CARD_PLAN_SECTIONS);
    // Short of the whole plan, one section goes to saying where the rest is.
    (packed < rollback.plan.steps.len()).then(|| pack(rollback, 0, &header, CARD_PLAN_SECTIONS - 1).1)
}

/// The plan's sections on the card: every step when they fit; otherwise the first steps and a
/// section that says which steps are in the thread.
pub(super) fn plan_sections(rollback: &Rollback) -> Vec<String> {
    let total = rollback.plan.steps.len();
    let Some(first_unshown) = first_in_thread(rollback) else {
        return pack(rollback, 0, &card_header(rollback), CARD_PLAN_SECTIONS).0;
    };
    let (mut shown, _) = pack(rollback, 0, &card_header(rollback), CARD_PLAN_SECTIONS - 1);
    shown.push(format!(
        "⚠️ *Steps {}–{total} of {total} are not shown on this card*: the plan is longer than one message holds. They are in full in this card's thread, in the first replies. *Approve* covers every step, as the digest `{}` says; read them before you approve.",
        first_unshown + 1,
        &rollback.plan_digest[..12]
    ));
    shown
}

/// In the thread, first: the steps the card could not show, in full (none when it shows all).
pub fn plan_in_thread(rollback: &Rollback) -> Vec<Message> {
    let total = rollback.plan.steps.len();
    let Some(mut next) = first_in_thread(rollback) else {
        return vec![];
    };
    let mut messages = vec![];
    while next < total {
        let header = format!(
            "📋 *Plan of {}, continued* (digest `{}`): exactly what runs, in order, from step {}.",
            rollback.id,
            &rollback.plan_digest[..12],
            next + 1
        );
        let (sections, after) = pack(rollback, next, &header, THREAD_PLAN_SECTIONS);
        // A step too long for a whole message is shown in as many as it takes.
        let (sections, after) = if after == next {
            let pieces = step_pieces(rollback, next);
            let mut sections = vec![header];
            sections.extend(pieces);
            (sections, next + 1)
        } else {
            (sections, after)
        };
        let text = format!("Plan of {}, steps {}–{after} of {total}", rollback.id, next + 1);
        messages.push(Message {
            text,
            blocks: sections.into_iter().map(section).collect(),
        });
        next = after;
    }
    messages
}
