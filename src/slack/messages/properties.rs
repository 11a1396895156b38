use super::*;
use crate::domain::fixtures::*;
use crate::domain::proposal::ProposalId;
use proptest::prelude::*;

const OPEN: char = '⟦';
const CLOSE: char = '⟧';

/// Whether text is inert in mrkdwn: no `<` or `>`, and every `&` starts an entity.
fn inert(text: &str) -> bool {
    !text.contains(['<', '>'])
        && text
            .match_indices('&')
            .all(|(i, _)| ["&amp;", "&lt;", "&gt;"].iter().any(|e| text[i..].starts_with(e)))
}

/// Every stretch of user text (between the sentinels, or to the end where it was cut) in
/// every string of the message.
fn user_text_is_inert(message: &Message) -> Result<(), String> {
    let json = serde_json::to_value(message).unwrap();
    let mut strings = vec![];
    collect(&json, &mut strings);
    for text in strings {
        for (start, _) in text.match_indices(OPEN) {
            let rest = &text[start + OPEN.len_utf8()..];
            let stretch = rest.split(CLOSE).next().unwrap_or(rest);
            if !inert(stretch) {
                return Err(format!("user text {stretch:?} is live in {text:?}"));
            }
        }
    }
    Ok(())
}

fn collect(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// Text a hostile person might type: markup characters, mentions, links, entities.
fn hostile() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("<!channel>".to_owned()),
            Just("<@U0BOSS>".to_owned()),
            Just("<https://evil.example|click>".to_owned()),
            Just("&lt;".to_owned()),
            Just("&".to_owned()),
            Just("```".to_owned()),
            "[<>&|*_`~a-z ]{1,8}",
        ],
        1..12,
    )
    .prop_map(|parts| format!("{OPEN}{}{CLOSE}", parts.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Found by `user_text_is_never_markup`: a cut inside `&lt;` left a live `&`.
    #[test]
    fn truncating_escaped_text_never_splits_an_entity(text in "[<>&a]{0,40}", max in 14usize..40) {
        prop_assert!(inert(&truncate(&escape(&text), max)));
    }

    #[test]
    fn escaped_text_is_inert(text in "\\PC{0,200}") {
        prop_assert!(inert(&escape(&text)));
    }

    /// No message shows user text (reasons, targets, alert text, typed words) as markup.
    #[test]
    fn user_text_is_never_markup(reason in hostile(), target in hostile(), alert in hostile(), word in hostile()) {
        let mut story = Story::requested(Severity::High, Some(&reason));
        story.rollback.request.target = Some(target.clone());
        let rejected = story.clone().act(&actor(ON_CALL), crate::domain::Action::Reject { reason: Some(reason.clone()) });
        let mut group = alert_group(true, 2);
        group.alerts[0].name = alert.clone();
        group.alerts[0].summary = Some(alert.clone());
        group.alerts[1].source = Some(format!("https://prometheus.example.com/{alert}"));
        group.common_labels.insert("instance".into(), alert.clone());
        group.target = Some(target.clone());
        let mut proposal = Proposal::observe(None, &group, at(0)).unwrap();
        proposal.id = ProposalId(1);
        let plan = Ok(plan());
        let messages = [
            card(&story.rollback, &directory(), false),
            card(&rejected.rollback, &directory(), false),
            status(&story.rollback),
            list(&[story.rollback.clone()]),
            request_acknowledged(&story.rollback, &directory()),
            notify_step(&story.rollback, &word),
            proposal_card(&proposal, &ProposalContext { plan: &plan, approvals: 1, approver_roles: &["on_call".into()] }),
            refusal(&Refusal::UnknownService { service: word.clone(), suggestion: Some(word.clone()), known: vec![word.clone()] }),
            refusal(&Refusal::ParamMismatch { name: word.clone(), value: word.clone(), pattern: word.clone(), help: Some(word.clone()) }),
            refusal(&Refusal::OutOfOrder { id: RollbackId(1), detail: word.clone() }),
        ];
        for message in &messages {
            prop_assert!(user_text_is_inert(message).is_ok(), "{}", user_text_is_inert(message).unwrap_err());
        }
    }
}
