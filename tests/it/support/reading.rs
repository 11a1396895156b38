//! Reading what rollbot posted, as people in the channel would: cards, threads, private
//! answers, modals; and making it stable enough to pin in a snapshot.
use super::*;

/// A message as the fake Slack received it, with its text flattened for assertions.
#[derive(Debug, Clone)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
}

/// Text as a reader in UTC sees it: Slack shows each `<!date^…|fallback>` in the reader's
/// own time zone, which for these stories is the fallback.
pub fn as_read(text: &str) -> String {
    static DATE: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"<!date\^[0-9]+\^[^|>]*\|([^>]*)>").unwrap());
    DATE.replace_all(text, "$1").into_owned()
}

impl Posted {
    pub(super) fn from_call(call: &Call, ts: String) -> Posted {
        let mut text = call.body["text"].as_str().unwrap_or_default().to_owned();
        collect_text(&call.body["blocks"], &mut text);
        Posted {
            channel: call.body["channel"].as_str().unwrap_or_default().to_owned(),
            ts,
            text: as_read(&text),
            blocks: call.body["blocks"].clone(),
        }
    }

    /// The action_ids of the buttons on the message.
    pub fn buttons(&self) -> Vec<String> {
        let mut ids = vec![];
        for block in self.blocks.as_array().into_iter().flatten() {
            for element in block["elements"].as_array().into_iter().flatten() {
                if let Some(id) = element["action_id"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
        ids
    }

    /// The button with `action_id`, as posted.
    pub fn button(&self, action_id: &str) -> Value {
        self.blocks
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|block| block["elements"].as_array().into_iter().flatten())
            .find(|element| element["action_id"] == action_id)
            .unwrap_or_else(|| panic!("no `{action_id}` button in {}", self.text))
            .clone()
    }
}

fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get("text") {
                out.push('\n');
                out.push_str(t);
            }
            for (k, v) in map {
                if k != "text" || !v.is_string() {
                    collect_text(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

impl Rollbot {
    /// The next new card posted to a channel (not a thread reply).
    pub fn expect_card(&self) -> Posted {
        let mut cards =
            self.take(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none_or(Value::is_null));
        assert!(
            !cards.is_empty(),
            "expected a new card; Slack saw: {:#?}",
            self.slack.calls()
        );
        let (_, call) = cards.remove(0);
        // Put back any further cards for later expectations.
        let mut seen = self.seen.lock().unwrap();
        for (i, _) in cards {
            seen[i] = false;
        }
        Posted::from_call(&call, call.ts.clone().unwrap())
    }

    /// The card as people see it now: its last update, or the original if never updated.
    pub fn card_now(&self, card: &Posted) -> Posted {
        let updates = self.take(|c| c.method == "chat.update" && c.body["ts"] == card.ts.as_str());
        match updates.last() {
            Some((_, call)) => Posted::from_call(call, card.ts.clone()),
            None => card.clone(),
        }
    }

    /// Top-level posts to `channel` (not the card's) since the last look, in order.
    pub fn posts_in(&self, channel: &str) -> Vec<String> {
        self.take(|c| {
            c.method == "chat.postMessage"
                && c.body["channel"] == channel
                && c.body.get("thread_ts").is_none_or(Value::is_null)
        })
        .into_iter()
        .map(|(_, c)| as_read(c.body["text"].as_str().unwrap_or_default()))
        .collect()
    }

    /// Replies in the card's thread since the last look, in order.
    pub fn thread(&self, card: &Posted) -> Vec<String> {
        self.take(|c| c.method == "chat.postMessage" && c.body["thread_ts"] == card.ts.as_str())
            .into_iter()
            .map(|(_, c)| as_read(c.body["text"].as_str().unwrap_or_default()))
            .collect()
    }

    /// Replies in the card's thread since the last look, whole (text, blocks, buttons).
    pub fn thread_posts(&self, card: &Posted) -> Vec<Posted> {
        self.take(|c| c.method == "chat.postMessage" && c.body["thread_ts"] == card.ts.as_str())
            .into_iter()
            .map(|(_, c)| {
                let ts = c.ts.clone().unwrap_or_default();
                Posted::from_call(&c, ts)
            })
            .collect()
    }

    /// The next modal rollbot opened (`views.open`), for the person who clicked.
    pub fn expect_modal(&self) -> Value {
        self.expect_modals(1).remove(0)
    }

    /// The `n` modals opened since the last look.
    pub fn expect_modals(&self, n: usize) -> Vec<Value> {
        let opened = self.take(|c| c.method == "views.open");
        assert_eq!(
            opened.len(),
            n,
            "expected {n} modal(s); Slack saw: {:#?}",
            self.slack.calls()
        );
        opened.into_iter().map(|(_, c)| c.body["view"].clone()).collect()
    }

    /// The open form as rollbot last redrew it (`views.update`), with its id and new hash.
    pub fn expect_form_redrawn(&self) -> Value {
        let mut updated = self.take(|c| c.method == "views.update");
        assert_eq!(
            updated.len(),
            1,
            "expected one redraw of the form; Slack saw: {:#?}",
            self.slack.calls()
        );
        updated.remove(0).1.body["view"].clone()
    }

    /// `expect_form_redrawn`, once rollbot redrew the form in the background (a discovery
    /// returning); fails after ten seconds.
    pub async fn await_form_redrawn(&self) -> Value {
        self.await_form_updates(1).await.remove(0)["view"].clone()
    }

    /// The next `n` redraws rollbot asked of Slack (`views.update` bodies: the hash they named,
    /// and the view, which has its new `hash` where Slack took it), once there are `n`.
    pub async fn await_form_updates(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.unseen().iter().filter(|c| c.method == "views.update").count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "the form was not redrawn {n} time(s); Slack saw: {:#?}",
                self.slack.calls()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let updates = self.take(|c| c.method == "views.update");
        assert_eq!(updates.len(), n, "more redraws than expected: {updates:#?}");
        updates.into_iter().map(|(_, c)| c.body).collect()
    }

    /// `user` picks `value` in the select of `block` of the open form `view`, with the other
    /// fields as typed so far (block id → text), as Slack sends it when the select dispatches
    /// its action.
    pub async fn pick(&self, user: &str, view: &Value, block: &str, value: &str, typed: &[(&str, &str)]) {
        let payload = form_action_payload(user, view, block, value, typed);
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let response = self.signed_post("/slack/interactions", body).await;
        assert_eq!(response.status(), 200);
    }

    /// Group lookups since the last look (they are Slack calls too).
    pub fn group_lookups(&self) -> Vec<String> {
        self.take(|c| c.method == "usergroups.users.list")
            .into_iter()
            .map(|(_, c)| c.body["usergroup"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Emails looked up in Slack since the last look (`users.lookupByEmail`).
    pub fn email_lookups(&self) -> Vec<String> {
        self.take(|c| c.method == "users.lookupByEmail")
            .into_iter()
            .map(|(_, c)| c.body["email"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// `user` submits `view` with these typed values (input block id → text); returns
    /// rollbot's answer: `None` when the modal may close, or the JSON it answered with.
    pub async fn submit(&self, user: &str, view: &Value, values: &[(&str, &str)]) -> Option<Value> {
        self.submit_ticking(user, view, values, &[]).await
    }

    /// `submit`, with checkboxes ticked too: (input block id, the ticked option's value).
    pub async fn submit_ticking(
        &self,
        user: &str,
        view: &Value,
        values: &[(&str, &str)],
        ticked: &[(&str, &str)],
    ) -> Option<Value> {
        let payload = submission_payload(user, view, values, ticked);
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let response = self.signed_post("/slack/interactions", body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        (!text.is_empty()).then(|| serde_json::from_str(&text).unwrap())
    }

    /// Private messages to `user` since the last look.
    pub fn ephemerals(&self, user: &str) -> Vec<String> {
        self.take(|c| c.method == "chat.postEphemeral" && c.body["user"] == user)
            .into_iter()
            .map(|(_, c)| as_read(c.body["text"].as_str().unwrap_or_default()))
            .collect()
    }

    /// The channels rollbot read the history of (`conversations.history`), since the last look.
    pub fn history_lookups(&self) -> Vec<String> {
        self.take(|c| c.method == "conversations.history")
            .into_iter()
            .map(|(_, c)| c.body["channel"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Calls that changed what people see and the test has not looked at (reads change nothing).
    pub fn unseen(&self) -> Vec<Call> {
        let calls = self.slack.calls();
        let seen = self.seen.lock().unwrap();
        calls
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !["conversations.history", "apps.connections.open"].contains(&c.method.as_str()))
            .filter(|(i, _)| !seen.get(*i).copied().unwrap_or(false))
            .map(|(_, c)| c)
            .collect()
    }
}

/// `text` with what changes from run to run (step durations, loopback ports, scratch paths and
/// the plan digests that include them) replaced by a placeholder, for a snapshot of what people
/// read.
pub fn redacted(text: &str) -> String {
    let durations = regex::Regex::new(r"\b\d+(\.\d+)? ?(ms|s)\b").unwrap();
    let ports = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let scratch = regex::Regex::new(r"/tmp/\.tmp\w+").unwrap();
    let digest = regex::Regex::new(r"digest `[0-9a-f]{12}`").unwrap();
    let text = digest.replace_all(text, "digest `[digest]`");
    let text = durations.replace_all(&text, "[duration]");
    let text = ports.replace_all(&text, "127.0.0.1:[port]");
    scratch.replace_all(&text, "[scratch]").into_owned()
}

/// A thread as one text to pin: its messages in order, each after a rule.
pub fn transcript(thread: &[String]) -> String {
    thread.iter().map(|m| format!("---\n{m}\n")).collect()
}

/// A block_actions payload from a select in an open modal, shaped like Slack's sample: the
/// container is the view, there is no channel or message, and the state holds every field.
pub fn form_action_payload(user: &str, view: &Value, block: &str, value: &str, typed: &[(&str, &str)]) -> Value {
    let mut payload: Value = serde_json::from_str(
        &std::fs::read_to_string(slack_samples().join("payloads/BlockActionPayload.json")).unwrap(),
    )
    .unwrap();
    let object = payload.as_object_mut().unwrap();
    for absent in ["channel", "message", "response_url", "state"] {
        object.remove(absent);
    }
    payload["type"] = json!("block_actions");
    payload["team"]["id"] = json!(TEAM);
    payload["user"]["id"] = json!(user);
    payload["user"]["team_id"] = json!(TEAM);
    payload["container"] = json!({"type": "view", "view_id": view["id"]});
    let selected = json!({"text": {"type": "plain_text", "text": value}, "value": value});
    payload["actions"] = json!([{"type": "static_select", "action_id": block, "block_id": block,
                                 "selected_option": selected, "action_ts": "1790000000.000001"}]);
    // Slack's state holds every input as it stands: what the form started with, then what
    // was typed over it.
    let mut state = serde_json::Map::new();
    for input in view["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "input")
    {
        let id = input["block_id"].as_str().unwrap_or_default();
        let element = &input["element"];
        if let Some(value) = element["initial_value"].as_str() {
            state.insert(
                id.to_owned(),
                json!({ id: {"type": "plain_text_input", "value": value} }),
            );
        } else if element["initial_option"].is_object() {
            state.insert(
                id.to_owned(),
                json!({ id: {"type": "static_select", "selected_option": element["initial_option"]} }),
            );
        }
    }
    for (block, text) in typed {
        state.insert(
            block.to_string(),
            json!({ *block: {"type": "plain_text_input", "value": text} }),
        );
    }
    state.insert(
        block.to_owned(),
        json!({ block: {"type": "static_select", "selected_option": selected} }),
    );
    payload["view"]["id"] = view["id"].clone();
    payload["view"]["hash"] = view["hash"].clone();
    payload["view"]["callback_id"] = view["callback_id"].clone();
    payload["view"]["private_metadata"] = view["private_metadata"].clone();
    payload["view"]["state"] = json!({ "values": state });
    payload
}

/// A view_submission payload shaped like Slack's sample: `user` submits `view` with these typed
/// values (input block id → text) and ticked checkboxes (input block id, option value).
pub fn submission_payload(user: &str, view: &Value, values: &[(&str, &str)], ticked: &[(&str, &str)]) -> Value {
    let mut payload: Value = serde_json::from_str(
        &std::fs::read_to_string(slack_samples().join("payloads/ViewSubmissionPayload.json")).unwrap(),
    )
    .unwrap();
    payload["team"]["id"] = json!(TEAM);
    payload["user"]["id"] = json!(user);
    payload["user"]["team_id"] = json!(TEAM);
    payload["view"]["callback_id"] = view["callback_id"].clone();
    payload["view"]["private_metadata"] = view["private_metadata"].clone();
    let mut state = serde_json::Map::new();
    for (block, text) in values {
        state.insert(
            block.to_string(),
            json!({ *block: {"type": "plain_text_input", "value": text} }),
        );
    }
    for (block, value) in ticked {
        state.insert(
            block.to_string(),
            json!({ *block: {"type": "checkboxes", "selected_options": [{"text": {"type": "plain_text", "text": "ticked"}, "value": value}]}}),
        );
    }
    payload["view"]["state"] = json!({ "values": state });
    payload
}
