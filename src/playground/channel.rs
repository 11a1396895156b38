//! What the workspace shows one person, folded from the calls the Slack stand-in recorded: the
//! channels' messages as last updated, their threads, the private answers for that person and
//! the modal they have open. Pure: the page's state is a function of the calls and the session.
use crate::standin::slack::Call;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    /// Updated after it was posted (`chat.update`).
    pub edited: bool,
    pub replies: Vec<Message>,
}

/// A message only one person sees, shown after the channel's `after`th message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ephemeral {
    pub channel: String,
    pub after: usize,
    pub text: String,
    pub blocks: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Modal {
    pub view: Value,
    /// Per-field errors rollbot answered a submission with: block id → text.
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Screen {
    /// Channel id → its top-level messages, oldest first.
    pub channels: BTreeMap<String, Vec<Message>>,
    pub ephemerals: Vec<Ephemeral>,
    /// The modal on top of this person's screen.
    pub modal: Option<Modal>,
}

/// What the playground knows beyond the calls: who each trigger belonged to, what rollbot
/// answered directly (slash-command answers and submission errors), which modals closed.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub triggers: HashMap<String, String>,
    /// (user, answer) in the order they came; answers are ephemeral.
    pub answers: Vec<(String, Ephemeral)>,
    pub closed_views: HashSet<String>,
    pub view_errors: HashMap<String, BTreeMap<String, String>>,
    /// Who has which view open: view id → user (known once it was opened).
    pub view_owners: HashMap<String, String>,
}

impl Session {
    /// Learns the owner of every view opened since (views.open names the trigger, not the user).
    pub fn learn_views(&mut self, calls: &[Call]) {
        for call in calls.iter().filter(|c| c.method == "views.open") {
            let (Some(trigger), Some(view)) = (call.body["trigger_id"].as_str(), call.body["view"]["id"].as_str())
            else {
                continue;
            };
            if let Some(user) = self.triggers.get(trigger) {
                self.view_owners.insert(view.to_owned(), user.clone());
            }
        }
    }
}

/// `user`'s screen after `calls`.
pub fn screen(calls: &[Call], session: &Session, user: &str, incident_channels: &[String]) -> Screen {
    let mut screen = Screen::default();
    for channel in incident_channels {
        screen.channels.entry(channel.clone()).or_default();
    }
    let mut ephemerals: Vec<Ephemeral> = vec![];
    let mut modal: Option<(String, Modal)> = None;
    for call in calls {
        let body = &call.body;
        let channel = body["channel"].as_str().unwrap_or_default().to_owned();
        match call.method.as_str() {
            "chat.postMessage" => {
                let message = Message {
                    ts: call.ts.clone().unwrap_or_default(),
                    text: body["text"].as_str().unwrap_or_default().to_owned(),
                    blocks: blocks_of(body),
                    edited: false,
                    replies: vec![],
                };
                let messages = screen.channels.entry(channel).or_default();
                match body["thread_ts"].as_str() {
                    Some(parent) => {
                        // "Also send to the channel": the reply shows in both places.
                        let broadcast = body["reply_broadcast"] == true;
                        if let Some(parent) = messages.iter_mut().find(|m| m.ts == parent) {
                            parent.replies.push(message.clone());
                        }
                        if broadcast {
                            messages.push(message);
                        }
                    }
                    None => messages.push(message),
                }
            }
            "chat.update" => {
                let ts = body["ts"].as_str().unwrap_or_default();
                let found = screen
                    .channels
                    .get_mut(&channel)
                    .and_then(|messages| find_mut(messages, ts));
                if let Some(message) = found {
                    message.text = body["text"].as_str().unwrap_or_default().to_owned();
                    message.blocks = blocks_of(body);
                    message.edited = true;
                }
            }
            "chat.postEphemeral" if body["user"] == user => ephemerals.push(Ephemeral {
                after: screen.channels.get(&channel).map_or(0, Vec::len),
                channel,
                text: body["text"].as_str().unwrap_or_default().to_owned(),
                blocks: blocks_of(body),
            }),
            "views.open" => {
                let id = body["view"]["id"].as_str().unwrap_or_default().to_owned();
                if session.view_owners.get(&id).is_some_and(|owner| owner == user) {
                    let errors = session.view_errors.get(&id).cloned().unwrap_or_default();
                    modal = Some((
                        id,
                        Modal {
                            view: body["view"].clone(),
                            errors,
                        },
                    ));
                }
            }
            "views.update" => {
                if let Some((id, open)) = modal.as_mut()
                    && body["view_id"] == id.as_str()
                {
                    // Slack keeps the id and the new hash; the stand-in put both in the body.
                    open.view = body["view"].clone();
                }
            }
            _ => {}
        }
    }
    screen.modal = modal
        .filter(|(id, _)| !session.closed_views.contains(id))
        .map(|(id, mut open)| {
            open.errors = session.view_errors.get(&id).cloned().unwrap_or_default();
            open
        });
    ephemerals.extend(
        session
            .answers
            .iter()
            .filter(|(to, _)| to == user)
            .map(|(_, answer)| answer.clone()),
    );
    ephemerals.sort_by_key(|e| e.after);
    screen.ephemerals = ephemerals;
    screen
}

fn blocks_of(body: &Value) -> Value {
    match &body["blocks"] {
        // A form body carries its blocks as a JSON string.
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Array(vec![])),
        Value::Null => Value::Array(vec![]),
        blocks => blocks.clone(),
    }
}

fn find_mut<'a>(messages: &'a mut [Message], ts: &str) -> Option<&'a mut Message> {
    for message in messages {
        if message.ts == ts {
            return Some(message);
        }
        if let Some(reply) = message.replies.iter_mut().find(|r| r.ts == ts) {
            return Some(reply);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(method: &str, body: Value, ts: Option<&str>) -> Call {
        Call {
            method: method.into(),
            body,
            authorization: None,
            ts: ts.map(str::to_owned),
        }
    }

    #[test]
    fn a_card_shows_as_last_updated_with_its_thread_and_only_its_owner_sees_a_private_answer() {
        let calls = vec![
            call(
                "chat.postMessage",
                json!({"channel": "C1", "text": "card v1"}),
                Some("1.1"),
            ),
            call(
                "chat.postMessage",
                json!({"channel": "C1", "text": "step 1", "thread_ts": "1.1"}),
                Some("1.2"),
            ),
            call(
                "chat.postEphemeral",
                json!({"channel": "C1", "user": "U0BOB", "text": "not yours"}),
                None,
            ),
            call(
                "chat.update",
                json!({"channel": "C1", "ts": "1.1", "text": "card v2", "blocks": "[{\"type\":\"divider\"}]"}),
                None,
            ),
        ];
        let alice = screen(&calls, &Session::default(), "U0ALICE", &["C1".into()]);
        let card = &alice.channels["C1"][0];
        assert_eq!((card.text.as_str(), card.edited), ("card v2", true));
        assert_eq!(card.blocks, json!([{"type": "divider"}]));
        assert_eq!(card.replies[0].text, "step 1");
        assert!(alice.ephemerals.is_empty());
        let bob = screen(&calls, &Session::default(), "U0BOB", &["C1".into()]);
        assert_eq!(bob.ephemerals[0].text, "not yours");
        assert_eq!(bob.ephemerals[0].after, 1);
    }

    #[test]
    fn a_modal_is_its_openers_until_closed_and_shows_its_update_and_errors() {
        let calls = vec![
            call(
                "views.open",
                json!({"trigger_id": "t1", "view": {"id": "V1", "title": "v1"}}),
                None,
            ),
            call(
                "views.update",
                json!({"view_id": "V1", "view": {"id": "V1", "title": "v2"}}),
                None,
            ),
        ];
        let mut session = Session::default();
        session.triggers.insert("t1".into(), "U0ALICE".into());
        session.learn_views(&calls);
        session
            .view_errors
            .insert("V1".into(), [("reason".to_owned(), "say why".to_owned())].into());
        let alice = screen(&calls, &session, "U0ALICE", &[]);
        let modal = alice.modal.expect("Alice's modal");
        assert_eq!(modal.view["title"], "v2");
        assert_eq!(modal.errors["reason"], "say why");
        assert!(screen(&calls, &session, "U0BOB", &[]).modal.is_none());
        session.closed_views.insert("V1".into());
        assert!(screen(&calls, &session, "U0ALICE", &[]).modal.is_none());
    }
}
