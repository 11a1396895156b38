//! Requests as Slack sends them to an app, field for field (Slack's published payload samples,
//! `tests/data/slack/payloads`), and signed as Slack signs them: what the playground sends
//! rollbot's real handlers when someone types or clicks on its page.
use serde_json::{Value, json};

/// Who does something, where.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub team: &'a str,
    pub user: &'a str,
    pub user_name: &'a str,
    pub channel: &'a str,
    /// Slack gives every invocation a trigger of its own; a modal is opened with it.
    pub trigger_id: &'a str,
}

/// A slash command's form (`application/x-www-form-urlencoded`).
pub fn slash_command(origin: &Origin, command: &str, text: &str, response_url: &str) -> String {
    let fields = [
        ("token", ""),
        ("api_app_id", APP_ID),
        ("team_id", origin.team),
        ("team_domain", "playground"),
        ("enterprise_id", ""),
        ("enterprise_name", ""),
        ("channel_id", origin.channel),
        ("channel_name", "incident-response"),
        ("user_id", origin.user),
        ("user_name", origin.user_name),
        ("command", command),
        // Slack escapes these three in command text.
        ("text", &escape_command_text(text)),
        ("response_url", response_url),
        ("trigger_id", origin.trigger_id),
        ("is_enterprise_install", "false"),
    ];
    serde_urlencoded::to_string(fields).expect("strings encode")
}

/// The app's id in the stand-in workspace.
pub const APP_ID: &str = "A0ROLLBOT";

fn escape_command_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A click on an element of a message: `action` is the element as posted (a button), with
/// what Slack adds (`block_id`, `action_ts`).
pub fn message_action(origin: &Origin, message: &Value, action: Value) -> String {
    let payload = json!({
        "type": "block_actions",
        "enterprise": null,
        "team": {"id": origin.team, "domain": "playground"},
        "user": {"id": origin.user, "username": origin.user_name, "name": origin.user_name, "team_id": origin.team},
        "api_app_id": APP_ID,
        "token": "",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": origin.channel, "is_ephemeral": false},
        "trigger_id": origin.trigger_id,
        "channel": {"id": origin.channel, "name": "incident-response"},
        "message": message,
        "state": {"values": {}},
        "response_url": "",
        "actions": [action],
        "is_enterprise_install": false,
    });
    form_with_payload(&payload)
}

/// A change in an open modal's element (a select that dispatches its action): the container
/// is the view, and the state holds every field as it stands.
pub fn view_action(origin: &Origin, view: &Value, state: Value, action: Value) -> String {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": origin.team, "domain": "playground"},
        "user": {"id": origin.user, "username": origin.user_name, "name": origin.user_name, "team_id": origin.team},
        "api_app_id": APP_ID,
        "token": "",
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": origin.trigger_id,
        "view": submitted_view(origin, view, state),
        "actions": [action],
        "is_enterprise_install": false,
    });
    form_with_payload(&payload)
}

/// The submit button of an open modal.
pub fn view_submission(origin: &Origin, view: &Value, state: Value) -> String {
    let payload = json!({
        "type": "view_submission",
        "team": {"id": origin.team, "domain": "playground"},
        "user": {"id": origin.user, "username": origin.user_name, "name": origin.user_name, "team_id": origin.team},
        "api_app_id": APP_ID,
        "token": "",
        "trigger_id": origin.trigger_id,
        "view": submitted_view(origin, view, state),
        "response_urls": [],
        "is_enterprise_install": false,
    });
    form_with_payload(&payload)
}

/// The view as Slack sends it back: as opened, with its id, hash and the state of its inputs.
fn submitted_view(origin: &Origin, view: &Value, state: Value) -> Value {
    let mut view = view.clone();
    view["team_id"] = json!(origin.team);
    view["app_id"] = json!(APP_ID);
    view["bot_id"] = json!("B0ROLLBOT");
    view["state"] = json!({ "values": state });
    view
}

fn form_with_payload(payload: &Value) -> String {
    serde_urlencoded::to_string([("payload", payload.to_string())]).expect("strings encode")
}

/// The headers Slack signs a request with, at `timestamp` (seconds).
pub fn signature_headers(signing_secret: &str, timestamp: i64, body: &str) -> [(&'static str, String); 3] {
    [
        ("content-type", "application/x-www-form-urlencoded".to_owned()),
        ("x-slack-request-timestamp", timestamp.to_string()),
        (
            "x-slack-signature",
            crate::slack::signature::sign(signing_secret, timestamp, body.as_bytes()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn sample(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/slack/payloads")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn origin() -> Origin<'static> {
        Origin {
            team: "T0PLAY",
            user: "U0ALICE",
            user_name: "alice",
            channel: "C0INCIDENTS",
            trigger_id: "1.2.3",
        }
    }

    #[test]
    fn a_slash_command_carries_every_field_of_slacks_sample_with_the_text_escaped() {
        let form = slash_command(
            &origin(),
            "/rollback",
            "api to 41 reason \"a<b & c\"",
            "http://127.0.0.1:9/r",
        );
        let fields: std::collections::BTreeMap<String, String> = serde_urlencoded::from_str(&form).unwrap();
        assert_eq!(
            fields.keys().cloned().collect::<BTreeSet<_>>(),
            keys(&sample("SlashCommandPayload.json"))
        );
        assert_eq!(fields["text"], "api to 41 reason \"a&lt;b &amp; c\"");
        assert_eq!(fields["user_id"], "U0ALICE");
    }

    #[test]
    fn a_submission_has_slacks_top_level_fields_and_sends_the_view_back_with_its_state() {
        let view =
            json!({"id": "V1", "hash": "1.abc", "callback_id": "request", "private_metadata": "m", "blocks": []});
        let state = json!({"reason": {"reason": {"type": "plain_text_input", "value": "bad deploy"}}});
        let form = view_submission(&origin(), &view, state.clone());
        let fields: Vec<(String, String)> = serde_urlencoded::from_str(&form).unwrap();
        let payload: Value = serde_json::from_str(&fields[0].1).unwrap();
        let expected: BTreeSet<String> = [
            "type",
            "team",
            "user",
            "api_app_id",
            "token",
            "trigger_id",
            "view",
            "is_enterprise_install",
        ]
        .map(str::to_owned)
        .into();
        assert!(keys(&sample("ViewSubmissionPayload.json")).is_superset(&expected));
        assert!(keys(&payload).is_superset(&expected));
        assert_eq!(payload["view"]["state"]["values"], state);
        assert_eq!(payload["view"]["hash"], "1.abc");
    }
}
