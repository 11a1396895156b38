//! Requests exactly as Slack sends them: slash commands and button clicks, field for field.
use super::*;

/// A slash-command form, field for field as Slack sends it (from Slack's published sample in tests/data/slack).
/// Slack gives every invocation (a command typed, a button clicked) a trigger of its own, so
/// two invocations never have the same body: the same body twice is one delivery repeated.
fn new_trigger_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("13345224609.738474920.{n:019x}")
}

pub fn slash_body(user: &str, channel: &str, text: &str) -> String {
    slash_body_from_team(user, TEAM, channel, text)
}

/// The same, typed in workspace `team` (another workspace sharing the app).
pub fn slash_body_from_team(user: &str, team: &str, channel: &str, text: &str) -> String {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(slack_samples().join("payloads/SlashCommandPayload.json")).unwrap(),
    )
    .unwrap();
    let mut fields: Vec<(String, String)> = vec![];
    for (key, value) in sample.as_object().unwrap() {
        let filled = match key.as_str() {
            "team_id" => team.to_owned(),
            "team_domain" => "acme".to_owned(),
            "channel_id" => channel.to_owned(),
            "channel_name" => "incident-response".to_owned(),
            "user_id" => user.to_owned(),
            "user_name" => user.to_lowercase(),
            "command" => "/rollback".to_owned(),
            // Slack escapes these three in command text.
            "text" => text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
            "response_url" => "http://127.0.0.1:9/commands/T0TEST/1/x".to_owned(),
            "trigger_id" => new_trigger_id(),
            "api_app_id" => "A0ROLLBOT".to_owned(),
            _ => match value {
                Value::String(_) => String::new(),
                other => other.to_string(),
            },
        };
        fields.push((key.clone(), filled));
    }
    serde_urlencoded::to_string(&fields).unwrap()
}

/// A block_actions payload for a button on a card, shaped like Slack's sample.
pub fn click_body(user: &str, channel: &str, action: &str, id: &str) -> String {
    click_body_from_team(user, TEAM, channel, action, id)
}

pub fn click_body_from_team(user: &str, team: &str, channel: &str, action: &str, id: &str) -> String {
    let mut payload: Value = serde_json::from_str(
        &std::fs::read_to_string(slack_samples().join("payloads/BlockActionPayload.json")).unwrap(),
    )
    .unwrap();
    payload["team"]["id"] = json!(team);
    payload["user"]["id"] = json!(user);
    payload["user"]["team_id"] = json!(team);
    payload["channel"]["id"] = json!(channel);
    payload["container"]["channel_id"] = json!(channel);
    payload["container"]["message_ts"] = json!("1790000000.000001");
    payload["trigger_id"] = json!(new_trigger_id());
    let action_value = json!({"type": "button", "action_id": action, "block_id": format!("rollback:{id}"), "value": id, "action_ts": "1790000001.000000"});
    payload["actions"] = json!([action_value]);
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// A block_actions payload for a checkbox group in a message, as Slack sends a tick: the
/// group's whole selection (`selected`: its options as posted).
pub fn ticks_body(user: &str, channel: &str, message_ts: &str, action_id: &str, selected: Vec<Value>) -> String {
    let mut payload: Value = serde_json::from_str(
        &std::fs::read_to_string(slack_samples().join("payloads/BlockActionPayload.json")).unwrap(),
    )
    .unwrap();
    payload["team"]["id"] = json!(TEAM);
    payload["user"]["id"] = json!(user);
    payload["user"]["team_id"] = json!(TEAM);
    payload["channel"]["id"] = json!(channel);
    payload["container"]["channel_id"] = json!(channel);
    payload["container"]["message_ts"] = json!(message_ts);
    payload["trigger_id"] = json!(new_trigger_id());
    let action = json!({"type": "checkboxes", "action_id": action_id, "block_id": "checklist", "selected_options": selected, "action_ts": "1790000001.000000"});
    payload["actions"] = json!([action]);
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}
