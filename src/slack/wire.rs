//! rollbot's own controls on Slack's wire, with one owner: what a button's `action_id` and
//! `value` say, and what a form's `callback_id` and `private_metadata` carry. Messages encode
//! with these types and handlers decode with them, so the two cannot drift apart.
use crate::domain::{ChannelId, ProposalId, RollbackId};

/// A button rollbot puts on a card. Buttons at a step carry that step's index, so a click on an
/// out-of-date card cannot pass a later gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Approve(RollbackId),
    /// Approve although a preflight check failed (the card shows it, a dialog asks first).
    ApproveDespitePreflight(RollbackId),
    /// Opens the form that asks why.
    Reject(RollbackId),
    Cancel(RollbackId),
    EscalateNow(RollbackId),
    /// Marks the status page incident resolved.
    Resolve(RollbackId),
    /// Opens the form for a destructive step's phrase.
    Confirm(RollbackId, usize),
    Continue(RollbackId, usize),
    Abort(RollbackId, usize),
    Retry(RollbackId, usize),
    Skip(RollbackId, usize),
    /// Opens the form for an update on the incident.
    PostUpdate(RollbackId),
    /// Opens the request form for the runbook's fallback, linked to this stopped rollback.
    RunFallback(RollbackId),
    StartProposal(ProposalId),
    DismissProposal(ProposalId),
}

impl Button {
    pub fn action_id(self) -> &'static str {
        match self {
            Button::Approve(_) => "approve",
            Button::ApproveDespitePreflight(_) => "approve_despite_preflight",
            Button::Reject(_) => "reject",
            Button::Cancel(_) => "cancel",
            Button::EscalateNow(_) => "escalate",
            Button::Resolve(_) => "resolve",
            Button::Confirm(..) => "confirm",
            Button::Continue(..) => "continue",
            Button::Abort(..) => "abort",
            Button::Retry(..) => "retry",
            Button::Skip(..) => "skip",
            Button::PostUpdate(_) => "post_update",
            Button::RunFallback(_) => "run_fallback",
            Button::StartProposal(_) => "start_proposal",
            Button::DismissProposal(_) => "dismiss_proposal",
        }
    }

    /// `RB-<n>`, `RB-<n>@<step>` or `P-<n>`.
    pub fn value(self) -> String {
        match self {
            Button::Approve(id)
            | Button::ApproveDespitePreflight(id)
            | Button::Reject(id)
            | Button::Cancel(id)
            | Button::EscalateNow(id)
            | Button::Resolve(id)
            | Button::PostUpdate(id)
            | Button::RunFallback(id) => id.to_string(),
            Button::Confirm(id, step)
            | Button::Continue(id, step)
            | Button::Abort(id, step)
            | Button::Retry(id, step)
            | Button::Skip(id, step) => format!("{id}@{step}"),
            Button::StartProposal(id) | Button::DismissProposal(id) => id.to_string(),
        }
    }

    /// The button a click names; `None` for anything rollbot did not put on a card.
    pub fn decode(action_id: &str, value: &str) -> Option<Button> {
        let rollback = || value.parse::<RollbackId>().ok();
        let at_step = || {
            let (id, step) = value.split_once('@')?;
            Some((id.parse::<RollbackId>().ok()?, step.parse::<usize>().ok()?))
        };
        let proposal = || value.parse::<ProposalId>().ok();
        Some(match action_id {
            "approve" => Button::Approve(rollback()?),
            "approve_despite_preflight" => Button::ApproveDespitePreflight(rollback()?),
            "reject" => Button::Reject(rollback()?),
            "cancel" => Button::Cancel(rollback()?),
            "escalate" => Button::EscalateNow(rollback()?),
            "resolve" => Button::Resolve(rollback()?),
            "confirm" => at_step().map(|(id, step)| Button::Confirm(id, step))?,
            "continue" => at_step().map(|(id, step)| Button::Continue(id, step))?,
            "abort" => at_step().map(|(id, step)| Button::Abort(id, step))?,
            "retry" => at_step().map(|(id, step)| Button::Retry(id, step))?,
            "skip" => at_step().map(|(id, step)| Button::Skip(id, step))?,
            "post_update" => Button::PostUpdate(rollback()?),
            "run_fallback" => Button::RunFallback(rollback()?),
            "start_proposal" => Button::StartProposal(proposal()?),
            "dismiss_proposal" => Button::DismissProposal(proposal()?),
            _ => return None,
        })
    }
}

/// One section's boxes in a rollback's post-incident checklists: the group's `action_id` is
/// `checklist:RB-<n>:<checklist>:<section>`, each box's value its item's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecklistBoxes {
    pub rollback: RollbackId,
    pub checklist: usize,
    pub section: usize,
}

impl ChecklistBoxes {
    pub fn action_id(self) -> String {
        format!("checklist:{}:{}:{}", self.rollback, self.checklist, self.section)
    }

    pub fn box_value(item: usize) -> String {
        item.to_string()
    }

    /// The group a tick names; `None` for anything rollbot did not post.
    pub fn decode(action_id: &str) -> Option<ChecklistBoxes> {
        let mut parts = action_id.strip_prefix("checklist:")?.split(':');
        let boxes = ChecklistBoxes {
            rollback: parts.next()?.parse().ok()?,
            checklist: parts.next()?.parse().ok()?,
            section: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(boxes)
    }

    /// The items a tick's boxes name, or `None` if one is not an item's position.
    pub fn decode_ticked(values: &[String]) -> Option<Vec<usize>> {
        values.iter().map(|v| v.parse().ok()).collect()
    }
}

/// A form rollbot opens, with what it carries to its submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// Why a rollback is rejected.
    Reject(RollbackId),
    /// The phrase of a destructive step.
    Confirm(RollbackId, usize),
    /// A request to finish, posted from `channel`; a drill when `drill`; the fallback of a
    /// stopped rollback when `fallback_of`.
    Request {
        channel: ChannelId,
        drill: bool,
        fallback_of: Option<RollbackId>,
        /// Parameters typed in the command that the runbook shown does not take: kept for a
        /// redraw with another runbook, never submitted.
        carried: std::collections::BTreeMap<String, String>,
    },
    /// An update on the incident a rollback answers.
    PostUpdate(RollbackId),
}

impl Form {
    pub fn callback_id(&self) -> &'static str {
        match self {
            Form::Reject(_) => "reject",
            Form::Confirm(..) => "confirm",
            Form::Request { .. } => "request",
            Form::PostUpdate(_) => "post_update",
        }
    }

    pub fn private_metadata(&self) -> String {
        match self {
            Form::Reject(id) | Form::PostUpdate(id) => id.to_string(),
            Form::Confirm(id, step) => format!("{id}:{step}"),
            Form::Request {
                channel,
                drill,
                fallback_of,
                carried,
            } => {
                let linked = fallback_of.map(|id| format!("fallback:{id}:")).unwrap_or_default();
                let drill = if *drill { "drill:" } else { "" };
                let carried = if carried.is_empty() {
                    String::new()
                } else {
                    format!(
                        "?{}",
                        serde_urlencoded::to_string(carried).expect("strings always encode")
                    )
                };
                format!("{linked}{drill}{}{carried}", channel.0)
            }
        }
    }

    /// The form a submission answers; `None` for anything rollbot did not open.
    pub fn decode(callback_id: &str, private_metadata: &str) -> Option<Form> {
        Some(match callback_id {
            "reject" => Form::Reject(private_metadata.parse().ok()?),
            "post_update" => Form::PostUpdate(private_metadata.parse().ok()?),
            "confirm" => {
                let (id, step) = private_metadata.split_once(':')?;
                Form::Confirm(id.parse().ok()?, step.parse().ok()?)
            }
            "request" => {
                let (fallback_of, rest) = match private_metadata.strip_prefix("fallback:") {
                    Some(linked) => {
                        let (id, rest) = linked.split_once(':')?;
                        (Some(id.parse().ok()?), rest)
                    }
                    None => (None, private_metadata),
                };
                let (drill, rest) = match rest.strip_prefix("drill:") {
                    Some(rest) => (true, rest),
                    None => (false, rest),
                };
                let (channel, carried) = match rest.split_once('?') {
                    Some((channel, carried)) => (channel, serde_urlencoded::from_str(carried).ok()?),
                    None => (rest, Default::default()),
                };
                Form::Request {
                    channel: ChannelId(channel.to_owned()),
                    drill,
                    fallback_of,
                    carried,
                }
            }
            _ => return None,
        })
    }
}

/// Whose card a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardOf {
    Rollback(RollbackId),
    Proposal(ProposalId),
}

/// The stamp rollbot puts on each card it posts (Slack message metadata): whose card it is, and
/// which rollbot posted it (a tag derived from its signing secret, so two installations in one
/// channel never take each other's cards). A retry whose answer never arrived finds its card in
/// the channel's history by it instead of posting a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardStamp {
    pub card: CardOf,
    pub instance: String,
}

impl CardStamp {
    pub const EVENT_TYPE: &'static str = "rollbot_card";

    /// `chat.postMessage`'s `metadata` argument.
    pub fn metadata(&self) -> serde_json::Value {
        let card = match self.card {
            CardOf::Rollback(id) => id.to_string(),
            CardOf::Proposal(id) => id.to_string(),
        };
        serde_json::json!({
            "event_type": Self::EVENT_TYPE,
            "event_payload": {"card": card, "instance": self.instance},
        })
    }

    /// The stamp a message's metadata carries; `None` for anything rollbot did not stamp.
    pub fn decode(event_type: &str, payload: &std::collections::HashMap<String, String>) -> Option<CardStamp> {
        if event_type != Self::EVENT_TYPE {
            return None;
        }
        let written = payload.get("card")?;
        let card = match written.parse::<RollbackId>() {
            Ok(id) => CardOf::Rollback(id),
            Err(_) => CardOf::Proposal(written.parse::<ProposalId>().ok()?),
        };
        let stamp = CardStamp {
            card,
            instance: payload.get("instance")?.clone(),
        };
        // Only what rollbot writes, exactly: `RB-42`, never a lenient `42`.
        (stamp.metadata()["event_payload"]["card"] == written.as_str()).then_some(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp_payload(stamp: &CardStamp) -> (String, std::collections::HashMap<String, String>) {
        let metadata = stamp.metadata();
        (
            metadata["event_type"].as_str().unwrap().to_owned(),
            serde_json::from_value(metadata["event_payload"].clone()).unwrap(),
        )
    }

    proptest! {
        #[test]
        fn a_card_stamp_decodes_to_itself(n in 1i64..1_000_000_000_000, proposal in any::<bool>(), instance in "[0-9a-f]{12}") {
            let card = if proposal { CardOf::Proposal(ProposalId(n)) } else { CardOf::Rollback(RollbackId(n)) };
            let stamp = CardStamp { card, instance };
            let (event_type, payload) = stamp_payload(&stamp);
            prop_assert_eq!(CardStamp::decode(&event_type, &payload), Some(stamp));
        }
    }

    #[test]
    fn only_rollbots_own_stamp_decodes() {
        let stamp = CardStamp {
            card: CardOf::Rollback(RollbackId(1)),
            instance: "abc".into(),
        };
        let (_, payload) = stamp_payload(&stamp);
        assert_eq!(CardStamp::decode("deploy_card", &payload), None);
        let mut no_card = payload.clone();
        no_card.insert("card".into(), "42".into());
        assert_eq!(CardStamp::decode(CardStamp::EVENT_TYPE, &no_card), None);
        no_card.remove("card");
        assert_eq!(CardStamp::decode(CardStamp::EVENT_TYPE, &no_card), None);
    }

    fn button() -> impl Strategy<Value = Button> {
        let id = (1i64..1_000_000_000_000).prop_map(RollbackId);
        let step = 0usize..500;
        let proposal = (1i64..1_000_000_000_000).prop_map(ProposalId);
        prop_oneof![
            id.clone().prop_map(Button::Approve),
            id.clone().prop_map(Button::ApproveDespitePreflight),
            id.clone().prop_map(Button::Reject),
            id.clone().prop_map(Button::Cancel),
            id.clone().prop_map(Button::EscalateNow),
            id.clone().prop_map(Button::Resolve),
            id.clone().prop_map(Button::PostUpdate),
            id.clone().prop_map(Button::RunFallback),
            (id.clone(), step.clone()).prop_map(|(i, s)| Button::Confirm(i, s)),
            (id.clone(), step.clone()).prop_map(|(i, s)| Button::Continue(i, s)),
            (id.clone(), step.clone()).prop_map(|(i, s)| Button::Abort(i, s)),
            (id.clone(), step.clone()).prop_map(|(i, s)| Button::Retry(i, s)),
            (id, step).prop_map(|(i, s)| Button::Skip(i, s)),
            proposal.clone().prop_map(Button::StartProposal),
            proposal.prop_map(Button::DismissProposal),
        ]
    }

    fn form() -> impl Strategy<Value = Form> {
        let id = (1i64..1_000_000_000_000).prop_map(RollbackId);
        prop_oneof![
            id.clone().prop_map(Form::Reject),
            id.clone().prop_map(Form::PostUpdate),
            (id.clone(), 0usize..500).prop_map(|(i, s)| Form::Confirm(i, s)),
            (
                "C[0-9A-Z]{8,10}",
                any::<bool>(),
                proptest::option::of(id),
                proptest::collection::btree_map("[a-z_]{1,10}", "\\PC{0,20}", 0..3)
            )
                .prop_map(|(c, drill, fallback_of, carried)| Form::Request {
                    channel: ChannelId(c),
                    drill,
                    fallback_of,
                    carried,
                }),
        ]
    }

    proptest! {
        #[test]
        fn a_button_decodes_to_itself(button in button()) {
            prop_assert_eq!(Button::decode(button.action_id(), &button.value()), Some(button));
        }

        #[test]
        fn a_form_decodes_to_itself(form in form()) {
            prop_assert_eq!(Form::decode(form.callback_id(), &form.private_metadata()), Some(form.clone()));
        }

        #[test]
        fn anything_else_decodes_to_nothing_or_a_real_control(action in "[a-z_]{0,20}", value in "\\PC{0,30}") {
            if let Some(button) = Button::decode(&action, &value) {
                prop_assert_eq!(button.action_id(), action.as_str());
            }
        }
    }

    #[test]
    fn a_step_button_needs_its_step_and_a_rollback_button_none() {
        assert_eq!(Button::decode("retry", "RB-1"), None);
        assert_eq!(Button::decode("approve", "RB-1@2"), None);
        assert_eq!(Button::decode("retry", "RB-1@2"), Some(Button::Retry(RollbackId(1), 2)));
        assert_eq!(Button::decode("start_proposal", "RB-1"), None);
        assert_eq!(Form::decode("confirm", "RB-1"), None);
    }
}
