//! The same requests as `requests.rs`, delivered as Slack delivers them in Socket Mode: an
//! envelope over the connection rollbot opened, answered by its acknowledgement.
use super::*;

/// How long Slack waits for an acknowledgement before it tells the person it failed.
pub const ACK_WINDOW: std::time::Duration = std::time::Duration::from_secs(3);

/// The slash-command fields of `slash_body`, as the JSON object Socket Mode carries.
pub fn slash_payload(user: &str, channel: &str, text: &str) -> Value {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(&slash_body(user, channel, text)).unwrap();
    Value::Object(fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// The block_actions payload of `click_body`, as the JSON object Socket Mode carries.
pub fn click_payload(user: &str, channel: &str, button: &Button) -> Value {
    let form: Vec<(String, String)> =
        serde_urlencoded::from_str(&click_body(user, channel, button.action_id(), &button.value())).unwrap();
    serde_json::from_str(&form[0].1).unwrap()
}

impl Rollbot {
    /// `/rollback <text>` typed by `user` in the incident channel, over Socket Mode; the
    /// private answer from the acknowledgement (within Slack's three seconds).
    pub async fn socket_slash(&self, user: &str, text: &str) -> String {
        let id = self
            .slack
            .socket
            .send("slash_commands", slash_payload(user, INCIDENTS, text), true);
        let payload = self
            .slack
            .socket
            .ack(&id, ACK_WINDOW)
            .await
            .expect("a command's acknowledgement carries the answer");
        assert_eq!(payload["response_type"], "ephemeral", "{payload}");
        payload["text"].as_str().unwrap().to_owned()
    }

    /// `user` clicks `button` in the incident channel, over Socket Mode; the acknowledgement's
    /// payload (clicks carry none).
    pub async fn socket_click(&self, user: &str, button: Button) -> Option<Value> {
        let id = self
            .slack
            .socket
            .send("interactive", click_payload(user, INCIDENTS, &button), false);
        self.slack.socket.ack(&id, ACK_WINDOW).await
    }

    /// `user` submits `view` with these values over Socket Mode; the acknowledgement's payload
    /// (`None`: the modal may close).
    pub async fn socket_submit(&self, user: &str, view: &Value, values: &[(&str, &str)]) -> Option<Value> {
        let id = self
            .slack
            .socket
            .send("interactive", submission_payload(user, view, values, &[]), true);
        self.slack.socket.ack(&id, ACK_WINDOW).await
    }
}
