//! Slack's inbound wire formats: slash-command forms and interaction payloads. Only the fields
//! rollbot needs are read; everything else Slack adds is ignored.
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundError(pub String);

impl fmt::Display for InboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    pub team_id: Option<String>,
    pub channel_id: String,
    pub user_id: String,
    pub command: String,
    pub text: String,
    pub trigger_id: Option<String>,
}

#[derive(Deserialize)]
struct SlashForm {
    team_id: Option<String>,
    channel_id: Option<String>,
    user_id: Option<String>,
    command: Option<String>,
    text: Option<String>,
    trigger_id: Option<String>,
}

fn required(value: Option<String>, name: &str) -> Result<String, InboundError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| InboundError(format!("the request has no {name}")))
}

fn optional(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

pub fn parse_slash_command(body: &[u8]) -> Result<SlashCommand, InboundError> {
    let form: SlashForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| InboundError(format!("the command form could not be read: {e}")))?;
    slash_command_of(form)
}

/// A slash command as Socket Mode carries it: the same fields as the form, as a JSON object.
pub fn slash_command_from_json(payload: &serde_json::Value) -> Result<SlashCommand, InboundError> {
    if !payload.is_object() {
        return Err(InboundError("the command is not a JSON object".to_owned()));
    }
    let form =
        SlashForm::deserialize(payload).map_err(|e| InboundError(format!("the command could not be read: {e}")))?;
    slash_command_of(form)
}

fn slash_command_of(form: SlashForm) -> Result<SlashCommand, InboundError> {
    Ok(SlashCommand {
        team_id: optional(form.team_id),
        channel_id: required(form.channel_id, "channel_id")?,
        user_id: required(form.user_id, "user_id")?,
        command: required(form.command, "command")?,
        text: form.text.unwrap_or_default(),
        trigger_id: optional(form.trigger_id),
    })
}

/// The interactions rollbot acts on: a button on its card, and its modals being submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    Button(ButtonClick),
    Submission(ViewSubmission),
    /// A select inside one of rollbot's open forms changed (a service or runbook picked), so the
    /// form may show what the choice brings.
    FormChanged(FormChange),
    /// Boxes ticked or unticked in one of rollbot's messages (a post-incident checklist).
    Ticked(BoxesTicked),
    /// Anything else Slack sends (view submissions, shortcuts): acknowledged and ignored.
    Ignored {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonClick {
    pub team_id: Option<String>,
    pub user_id: String,
    pub channel_id: String,
    pub action_id: String,
    pub value: String,
    pub trigger_id: Option<String>,
}

/// A checkbox group in a message changed: its whole selection now, and the message it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxesTicked {
    pub team_id: Option<String>,
    pub user_id: String,
    pub channel_id: String,
    pub action_id: String,
    /// The values of the boxes ticked now.
    pub ticked: Vec<String>,
    /// The message's `ts`.
    pub message_ts: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSubmission {
    pub team_id: Option<String>,
    pub user_id: String,
    pub callback_id: String,
    pub private_metadata: String,
    /// Input block id → the value typed or selected.
    pub values: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormChange {
    pub team_id: Option<String>,
    pub user_id: String,
    pub view_id: String,
    /// What Slack answers `views.update` with `hash_conflict` for when the form moved on.
    pub hash: Option<String>,
    pub callback_id: String,
    pub private_metadata: String,
    /// The block whose element changed.
    pub block_id: String,
    /// Input block id → the value typed or selected so far.
    pub values: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PayloadForm {
    payload: Option<String>,
}

#[derive(Deserialize)]
struct RawPayload {
    #[serde(rename = "type")]
    kind: Option<String>,
    team: Option<IdOnly>,
    user: Option<RawUser>,
    channel: Option<IdOnly>,
    container: Option<RawContainer>,
    #[serde(default)]
    actions: Vec<RawAction>,
    trigger_id: Option<String>,
    view: Option<RawView>,
}

#[derive(Deserialize)]
struct RawView {
    id: Option<String>,
    hash: Option<String>,
    callback_id: Option<String>,
    private_metadata: Option<String>,
    state: Option<RawViewState>,
}

#[derive(Deserialize)]
struct RawViewState {
    #[serde(default)]
    values: std::collections::BTreeMap<String, std::collections::BTreeMap<String, RawInput>>,
}

#[derive(Deserialize)]
struct RawInput {
    value: Option<String>,
    selected_option: Option<RawOption>,
    /// Checkboxes: the values of the boxes ticked.
    selected_options: Option<Vec<RawOption>>,
}

#[derive(Deserialize)]
struct RawOption {
    value: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawUser {
    id: Option<String>,
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct RawContainer {
    #[serde(rename = "type")]
    kind: Option<String>,
    channel_id: Option<String>,
    message_ts: Option<String>,
}

#[derive(Deserialize)]
struct RawAction {
    #[serde(rename = "type")]
    kind: Option<String>,
    block_id: Option<String>,
    action_id: Option<String>,
    value: Option<String>,
    selected_options: Option<Vec<RawOption>>,
}

pub fn parse_interaction(body: &[u8]) -> Result<Interaction, InboundError> {
    let form: PayloadForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| InboundError(format!("the interaction form could not be read: {e}")))?;
    let payload = required(form.payload, "payload")?;
    let raw: RawPayload = serde_json::from_str(&payload)
        .map_err(|e| InboundError(format!("the interaction payload is not valid JSON: {e}")))?;
    interaction_of(raw)
}

/// An interaction as Socket Mode carries it: the payload itself, not a form around it.
pub fn interaction_from_json(payload: &serde_json::Value) -> Result<Interaction, InboundError> {
    if !payload.is_object() {
        return Err(InboundError("the interaction payload is not a JSON object".to_owned()));
    }
    let raw = RawPayload::deserialize(payload)
        .map_err(|e| InboundError(format!("the interaction payload could not be read: {e}")))?;
    interaction_of(raw)
}

fn interaction_of(raw: RawPayload) -> Result<Interaction, InboundError> {
    let kind = required(raw.kind, "type")?;
    if kind == "view_submission" {
        let user = raw.user.ok_or_else(|| InboundError("the request has no user".into()))?;
        let view = raw.view.ok_or_else(|| InboundError("the request has no view".into()))?;
        let values = view_values(view.state);
        return Ok(Interaction::Submission(ViewSubmission {
            team_id: raw.team.and_then(|t| optional(t.id)).or_else(|| optional(user.team_id)),
            user_id: required(user.id, "user.id")?,
            callback_id: required(view.callback_id, "view.callback_id")?,
            private_metadata: view.private_metadata.unwrap_or_default(),
            values,
        }));
    }
    if kind != "block_actions" {
        return Ok(Interaction::Ignored { kind });
    }
    let user = raw.user.ok_or_else(|| InboundError("the request has no user".into()))?;
    if raw.container.as_ref().and_then(|c| c.kind.as_deref()) == Some("view") {
        let view = raw
            .view
            .ok_or_else(|| InboundError("the form's action has no view".into()))?;
        let action = raw
            .actions
            .into_iter()
            .next()
            .ok_or_else(|| InboundError("the request has no actions".into()))?;
        return Ok(Interaction::FormChanged(FormChange {
            team_id: raw.team.and_then(|t| optional(t.id)).or_else(|| optional(user.team_id)),
            user_id: required(user.id, "user.id")?,
            view_id: required(view.id, "view.id")?,
            hash: optional(view.hash),
            callback_id: required(view.callback_id, "view.callback_id")?,
            private_metadata: view.private_metadata.unwrap_or_default(),
            block_id: required(action.block_id, "actions[0].block_id")?,
            values: view_values(view.state),
        }));
    }
    let action = raw
        .actions
        .into_iter()
        .next()
        .ok_or_else(|| InboundError("the request has no actions".into()))?;
    let message_ts = raw.container.as_ref().and_then(|c| optional(c.message_ts.clone()));
    let channel_id = raw
        .channel
        .and_then(|c| optional(c.id))
        .or_else(|| raw.container.and_then(|c| optional(c.channel_id)));
    if action.kind.as_deref() == Some("checkboxes") {
        return Ok(Interaction::Ticked(BoxesTicked {
            team_id: raw.team.and_then(|t| optional(t.id)).or_else(|| optional(user.team_id)),
            user_id: required(user.id, "user.id")?,
            channel_id: required(channel_id, "channel.id")?,
            action_id: required(action.action_id, "actions[0].action_id")?,
            ticked: action
                .selected_options
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| o.value)
                .collect(),
            message_ts: required(message_ts, "container.message_ts")?,
        }));
    }
    Ok(Interaction::Button(ButtonClick {
        team_id: raw.team.and_then(|t| optional(t.id)).or_else(|| optional(user.team_id)),
        user_id: required(user.id, "user.id")?,
        channel_id: required(channel_id, "channel.id")?,
        action_id: required(action.action_id, "actions[0].action_id")?,
        value: required(action.value, "actions[0].value")?,
        trigger_id: optional(raw.trigger_id),
    }))
}

/// A view's inputs as block id → value: text typed, the option selected, or the boxes ticked
/// (comma-joined).
fn view_values(state: Option<RawViewState>) -> std::collections::BTreeMap<String, String> {
    state
        .map(|s| s.values)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(block, inputs)| {
            let input = inputs.into_values().next()?;
            let ticked = input.selected_options.map(|options| {
                let values: Vec<String> = options.into_iter().filter_map(|o| o.value).collect();
                values.join(",")
            });
            let value = input.value.or(input.selected_option.and_then(|o| o.value)).or(ticked)?;
            Some((block, value))
        })
        .collect()
}
