//! `POST /slack/interactions`: button clicks and form submissions.
use super::*;
use crate::engine::FormFor;

pub(super) async fn interaction(
    State(state): State<Arc<HttpState>>,
    SignedBySlack { body, delivery }: SignedBySlack,
) -> Response {
    answer_interaction(&state, inbound::parse_interaction(&body), &delivery).await
}

/// The answer to a click or a submitted form however it came (a signed request, a Socket
/// Mode envelope).
pub(super) async fn answer_interaction(
    state: &HttpState,
    interaction: Result<Interaction, inbound::InboundError>,
    delivery: &Delivery,
) -> Response {
    match interaction {
        Ok(Interaction::Button(click)) => {
            let span =
                tracing::info_span!("click", user = %click.user_id, action = %click.action_id, value = %click.value);
            handle_click(state, click).instrument(span).await
        }
        Ok(Interaction::Submission(submission)) => {
            let span = tracing::info_span!("submission", user = %submission.user_id, view = %submission.callback_id);
            handle_submission(state, submission, delivery).instrument(span).await
        }
        Ok(Interaction::FormChanged(change)) => {
            let span = tracing::info_span!("form", user = %change.user_id, view = %change.callback_id, block = %change.block_id);
            redraw_request_form(state, change).instrument(span).await
        }
        Ok(Interaction::Ticked(ticks)) => {
            let span = tracing::info_span!("ticks", user = %ticks.user_id, action = %ticks.action_id);
            handle_ticks(state, ticks).instrument(span).await
        }
        Ok(Interaction::Ignored { kind }) => {
            tracing::debug!(kind, "ignored an interaction rollbot does not handle");
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused an interaction payload");
            (
                StatusCode::BAD_REQUEST,
                format!("rollbot could not read this interaction: {e}"),
            )
                .into_response()
        }
    }
}

/// What a button on the card asks for. Buttons at a paused step carry that step's index, so a
/// click on an out-of-date card cannot pass a later gate.
pub(super) enum ButtonIntent {
    Act(Action),
    Continue {
        step: usize,
    },
    Abort {
        step: usize,
    },
    Retry {
        step: usize,
    },
    Skip {
        step: usize,
    },
    /// Open a modal first: the action needs typed input.
    AskRejectReason,
    AskForUpdate,
    AskForFallback,
    AskConfirmation {
        step: usize,
    },
}

/// What a click on the card asks for (`None`: not one of the card's buttons).
pub(super) fn button_intent(action_id: &str, value: &str) -> Option<(RollbackId, ButtonIntent)> {
    Some(match Button::decode(action_id, value)? {
        Button::Approve(id) => (id, ButtonIntent::Act(Action::Approve)),
        Button::ApproveDespitePreflight(id) => (id, ButtonIntent::Act(Action::ApproveDespitePreflight)),
        Button::Reject(id) => (id, ButtonIntent::AskRejectReason),
        Button::Cancel(id) => (id, ButtonIntent::Act(Action::Cancel)),
        Button::EscalateNow(id) => (id, ButtonIntent::Act(Action::EscalateNow)),
        Button::Resolve(id) => (id, ButtonIntent::Act(Action::MarkResolved)),
        Button::Confirm(id, step) => (id, ButtonIntent::AskConfirmation { step }),
        Button::Continue(id, step) => (id, ButtonIntent::Continue { step }),
        Button::Abort(id, step) => (id, ButtonIntent::Abort { step }),
        Button::Retry(id, step) => (id, ButtonIntent::Retry { step }),
        Button::Skip(id, step) => (id, ButtonIntent::Skip { step }),
        Button::PostUpdate(id) => (id, ButtonIntent::AskForUpdate),
        Button::RunFallback(id) => (id, ButtonIntent::AskForFallback),
        Button::StartProposal(_) | Button::DismissProposal(_) => return None,
    })
}

pub(super) async fn handle_click(state: &HttpState, click: inbound::ButtonClick) -> Response {
    let engine = &state.engine;
    let answer = |text: String| answer_to(&click, text);
    let outcome: anyhow::Result<()> = async {
        if let Some(answered) = proposal_click(state, &click).await {
            return answered;
        }
        let Some((id, intent)) = button_intent(&click.action_id, &click.value) else {
            return engine.tell(&[answer(messages::unknown_button().text)]).await;
        };
        let actor = clicker(state, &click).await;
        let action = match intent {
            ButtonIntent::Act(action) => action,
            ButtonIntent::Continue { step } => Action::Continue { index: step },
            ButtonIntent::Abort { step } => Action::Abort { index: step },
            ButtonIntent::Retry { step } => Action::RetryStep { index: step },
            ButtonIntent::Skip { step } => Action::SkipStep { index: step },
            ButtonIntent::AskConfirmation { step } => {
                return open_form(state, &click, id, FormFor::Confirm { step }, &actor).await;
            }
            ButtonIntent::AskRejectReason => return open_form(state, &click, id, FormFor::Reject, &actor).await,
            ButtonIntent::AskForUpdate => return open_form(state, &click, id, FormFor::PostUpdate, &actor).await,
            ButtonIntent::AskForFallback => return open_fallback_form(state, &click, id, &actor).await,
        };
        match engine.act(id, &action, &actor).await? {
            Ok(_) => Ok(()),
            Err(refusal) => engine.tell(&[answer(messages::refusal(&refusal).text)]).await,
        }
    }
    .await;
    answered(engine, &click, outcome).await
}

/// Slack's answer to a click once it was handled: on an internal error, the person gets one
/// line with a reference and the log the whole chain.
pub(super) async fn answered(
    engine: &crate::engine::Engine,
    click: &inbound::ButtonClick,
    outcome: anyhow::Result<()>,
) -> Response {
    match outcome {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(reference, error = format!("{e:#}"), "handling a click failed");
            // The click may not be recorded; try to say so, and let Slack show the failure too.
            let _ = engine
                .tell(&[answer_to(click, messages::click_failed(&reference).text)])
                .await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Opens the form a button asks for, if its answer could be accepted; otherwise says why not.
async fn open_form(
    state: &HttpState,
    click: &inbound::ButtonClick,
    id: RollbackId,
    form: FormFor,
    actor: &Actor,
) -> anyhow::Result<()> {
    let engine = &state.engine;
    let rollback = match engine.may_answer(id, form, actor).await? {
        Ok(rollback) => rollback,
        Err(Refusal::NoSuchRollback { .. }) => {
            return engine.tell(&[answer_to(click, messages::not_found(id).text)]).await;
        }
        Err(refusal) => return engine.tell(&[answer_to(click, messages::refusal(&refusal).text)]).await,
    };
    let view = match form {
        FormFor::Confirm { step } => return open_confirmation(state, click, rollback, step).await,
        FormFor::Reject => messages::reject_modal(id),
        FormFor::PostUpdate => {
            let policy = &engine.config.policy;
            messages::update_modal(&rollback, crate::domain::decide::page_open(&rollback, policy))
        }
    };
    open_modal(state, click, view).await
}

/// Opens a destructive step's confirmation at once (the trigger lasts three seconds), then
/// runs its `loses` count and redraws it with what the count said. A form closed or submitted
/// meanwhile is left as it is.
async fn open_confirmation(
    state: &HttpState,
    click: &inbound::ButtonClick,
    rollback: crate::domain::Rollback,
    step: usize,
) -> anyhow::Result<()> {
    let engine = &state.engine;
    let Some(trigger) = click.trigger_id.as_deref() else {
        anyhow::bail!("the click carried no trigger_id to open a modal with");
    };
    let pending = engine.losses_pending(&rollback, step);
    let view = messages::confirm_modal(&rollback, step, engine.clock.now(), &pending);
    let opened = match state.slack.open_view(trigger, &view).await {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!(%error, "could not open a confirmation");
            return engine.tell(&[answer_to(click, messages::modal_failed().text)]).await;
        }
    };
    if pending == crate::domain::preflight::Losses::Undeclared {
        return Ok(());
    }
    let engine = engine.clone();
    let slack = state.slack.clone();
    tokio::spawn(async move {
        let losses = engine.count_losses(&rollback, step).await;
        let view = messages::confirm_modal(&rollback, step, engine.clock.now(), &losses);
        if let Err(error) = slack.update_view(&opened.id, Some(&opened.hash), &view).await {
            tracing::info!(%error, "the confirmation closed before its count returned; left as it is");
        }
    });
    Ok(())
}

/// Opens the request form for a stopped rollback's fallback, filled in from it; or says why not.
async fn open_fallback_form(
    state: &HttpState,
    click: &inbound::ButtonClick,
    id: RollbackId,
    actor: &Actor,
) -> anyhow::Result<()> {
    let engine = &state.engine;
    let (stopped, ask) = match engine.fallback_form(id, actor).await? {
        Ok(form) => form,
        Err(Refusal::NoSuchRollback { .. }) => {
            return engine.tell(&[answer_to(click, messages::not_found(id).text)]).await;
        }
        Err(refusal) => return engine.tell(&[answer_to(click, messages::refusal(&refusal).text)]).await,
    };
    let Some(trigger) = click.trigger_id.as_deref() else {
        anyhow::bail!("the click carried no trigger_id to open a modal with");
    };
    let form = RequestForm {
        ask,
        channel: stopped.request.channel.0.clone(),
        fallback: Some(stopped),
        may_look_up: engine.may_request(actor),
    };
    if let Err(error) = form.open(state, trigger).await {
        tracing::warn!(%error, "could not open the fallback form");
        engine.tell(&[answer_to(click, messages::modal_failed().text)]).await?;
    }
    Ok(())
}

/// A private line to the person who clicked, where they clicked.
pub(super) fn answer_to(click: &inbound::ButtonClick, text: String) -> Effect {
    Effect::Ephemeral {
        channel: crate::domain::ChannelId(click.channel_id.clone()),
        user: crate::domain::UserId(click.user_id.clone()),
        text,
    }
}

/// A click on a proposal's card (`None`: not one). Start files the clicking person's request;
/// a refusal is told to them privately.
pub(super) async fn proposal_click(state: &HttpState, click: &inbound::ButtonClick) -> Option<anyhow::Result<()>> {
    let start = match click.action_id.as_str() {
        "start_proposal" => true,
        "dismiss_proposal" => false,
        _ => return None,
    };
    let engine = &state.engine;
    let answer = |text: String| answer_to(click, text);
    Some(
        async {
            let id = match Button::decode(&click.action_id, &click.value) {
                Some(Button::StartProposal(id) | Button::DismissProposal(id)) => id,
                _ => return engine.tell(&[answer(messages::unknown_button().text)]).await,
            };
            let actor = clicker(state, click).await;
            let refused = if start {
                match engine.start_proposal(id, &actor).await? {
                    Ok(rollback) => {
                        let text = messages::request_acknowledged(&rollback, &engine.config.roles).text;
                        return engine.tell(&[answer(text)]).await;
                    }
                    Err(refusal) => refusal,
                }
            } else {
                match engine.dismiss_proposal(id, &actor).await? {
                    Ok(_) => return Ok(()),
                    Err(refusal) => refusal,
                }
            };
            engine.tell(&[answer(messages::refusal(&refused).text)]).await
        }
        .await,
    )
}

/// Opens a modal at once: Slack's trigger is valid for three seconds only, so this call cannot
/// wait in the outbox. If it fails, the person is told to click again.
pub(super) async fn open_modal(
    state: &HttpState,
    click: &inbound::ButtonClick,
    view: serde_json::Value,
) -> anyhow::Result<()> {
    let Some(trigger) = click.trigger_id.as_deref() else {
        anyhow::bail!("the click carried no trigger_id to open a modal with");
    };
    if let Err(error) = state.slack.open_view(trigger, &view).await {
        tracing::warn!(%error, "could not open a modal");
        let text = messages::modal_failed().text;
        state.engine.tell(&[answer_to(click, text)]).await?;
    }
    Ok(())
}

/// Answers a modal submission: close it, or show the error next to the field.
pub(super) async fn handle_submission(
    state: &HttpState,
    submission: inbound::ViewSubmission,
    delivery: &Delivery,
) -> Response {
    let engine = &state.engine;
    let field_error = |block: &str, text: String| {
        axum::Json(serde_json::json!({"response_action": "errors", "errors": {block: text}})).into_response()
    };
    let actor = state
        .directory
        .actor(&submission.user_id, submission.team_id.as_deref())
        .await;
    if let Some((block, _)) = submission
        .values
        .iter()
        .find(|(_, value)| value.chars().any(crate::text::is_unprintable))
    {
        return field_error(block, messages::CONTROL_CHARACTER.into());
    }
    let form = Form::decode(&submission.callback_id, &submission.private_metadata);
    let (action, id, block) = match (submission.callback_id.as_str(), form) {
        (_, Some(Form::Reject(id))) => {
            let reason = submission
                .values
                .get("reason")
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty());
            if reason.is_none() {
                return field_error("reason", messages::REASON_NEEDED.into());
            }
            (Action::Reject { reason }, id, "reason")
        }
        (_, Some(Form::PostUpdate(id))) => {
            let text = submission.values.get("update").cloned().unwrap_or_default();
            if text.trim().is_empty() {
                return field_error("update", messages::UPDATE_NEEDED.into());
            }
            let to_status_page = submission
                .values
                .get("status_page")
                .is_some_and(|ticked| ticked.split(',').any(|v| v == "yes"));
            (Action::PostUpdate { text, to_status_page }, id, "update")
        }
        (_, Some(Form::Confirm(id, index))) => {
            let phrase = submission.values.get("phrase").cloned().unwrap_or_default();
            (Action::Confirm { index, phrase }, id, "phrase")
        }
        (
            _,
            Some(Form::Request {
                channel,
                drill,
                fallback_of,
                carried: _,
            }),
        ) => {
            return submit_request(state, &actor, &submission, delivery, channel, (drill, fallback_of)).await;
        }
        ("reject", None) => return field_error("reason", messages::unknown_button().text),
        ("confirm", None) => return field_error("phrase", messages::unknown_button().text),
        ("post_update", None) => return field_error("update", messages::unknown_button().text),
        (other, None) => {
            tracing::warn!(callback_id = other, "a submission of a view rollbot does not know");
            return StatusCode::OK.into_response();
        }
    };
    match engine.act(id, &action, &actor).await {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(Refusal::WrongPhrase { .. })) => field_error(block, messages::WRONG_PHRASE.into()),
        Ok(Err(refusal)) => field_error(block, messages::refusal(&refusal).text),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "handling a modal submission failed"
            );
            field_error(block, messages::click_failed(&reference).text)
        }
    }
}
