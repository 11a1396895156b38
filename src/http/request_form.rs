//! The request form: what its fields mean when it is submitted, and its redraw when a service or
//! runbook is picked in it.
use super::*;
use crate::domain::plan::{Ask, PlanRequest};

/// What the form says so far, as a request. A severity that does not parse is none.
fn ask_of_form(
    values: &std::collections::BTreeMap<String, String>,
    drill: bool,
    fallback_of: Option<RollbackId>,
) -> Ask {
    let value = |block: &str| values.get(block).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Ask {
        plan: PlanRequest {
            service: value("service").unwrap_or_default(),
            target: value("target"),
            runbook: value("runbook"),
            params: messages::params_of_form(values),
        },
        severity: value("severity").and_then(|s| s.parse().ok()),
        reason: value("reason"),
        drill,
        fallback_of,
    }
}

/// A service or runbook was picked in an open request form: redraw it with that runbook's
/// fields, keeping what was already typed. Anything else changing is left to Slack.
pub(super) async fn redraw_request_form(state: &HttpState, change: inbound::FormChange) -> Response {
    let Some(Form::Request {
        channel,
        drill,
        fallback_of,
        carried,
    }) = Form::decode(&change.callback_id, &change.private_metadata)
    else {
        tracing::debug!(view = %change.callback_id, "a form action rollbot does not redraw for");
        return StatusCode::OK.into_response();
    };
    if !matches!(change.block_id.as_str(), "service" | "runbook") {
        return StatusCode::OK.into_response();
    }
    let engine = &state.engine;
    let mut ask = ask_of_form(&change.values, drill, fallback_of);
    // What the command gave and the last runbook did not take, for this one to take.
    for (name, value) in carried {
        ask.plan.params.entry(name).or_insert(value);
    }
    if change.block_id == "service" {
        // Another service: start from its default runbook, not the one picked for the last.
        ask.plan.runbook = None;
    }
    let catalog = &engine.config.catalog;
    let view = match fallback_of {
        Some(id) => {
            let actor = state.directory.actor(&change.user_id, change.team_id.as_deref()).await;
            match engine.fallback_form(id, &actor).await {
                Ok(Ok((stopped, _))) => messages::fallback_modal(&stopped, catalog, &ask),
                _ => messages::request_modal(catalog, &ask, &channel.0),
            }
        }
        None => messages::request_modal(catalog, &ask, &channel.0),
    };
    if let Err(error) = state
        .slack
        .update_view(&change.view_id, change.hash.as_deref(), &view)
        .await
    {
        // The form still works as it is: submitting it says what is missing beside the field.
        tracing::warn!(%error, "could not redraw the request form");
    }
    StatusCode::OK.into_response()
}

/// The request form's fields, checked on the server; each problem is shown beside its field.
pub(super) async fn submit_request(
    state: &HttpState,
    actor: &crate::domain::Actor,
    submission: &inbound::ViewSubmission,
    delivery: &Delivery,
    channel: crate::domain::ChannelId,
    (drill, fallback_of): (bool, Option<RollbackId>),
) -> Response {
    let engine = &state.engine;
    let errors = |pairs: Vec<(&str, String)>| {
        let errors: serde_json::Map<String, serde_json::Value> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
        axum::Json(serde_json::json!({"response_action": "errors", "errors": errors})).into_response()
    };
    let ask = ask_of_form(&submission.values, drill, fallback_of);
    if ask.severity.is_none() {
        return errors(vec![(
            "severity",
            "Choose a severity: it decides who must approve.".into(),
        )]);
    }
    let channel = channel.0;
    match engine.request(actor, &channel, &ask, Some(&delivery.0)).await {
        Ok(Ok(rollback)) => {
            let ack = Effect::Ephemeral {
                channel: crate::domain::ChannelId(channel),
                user: actor.user.clone(),
                text: messages::request_acknowledged(&rollback, &engine.config.roles).text,
            };
            match engine.tell(&[ack]).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => {
                    // The rollback is recorded; only the private note failed. Close the form.
                    tracing::error!(
                        error = format!("{e:#}"),
                        "queueing the request's acknowledgement failed"
                    );
                    StatusCode::OK.into_response()
                }
            }
        }
        Ok(Err(refusal)) => {
            let field = match &refusal {
                Refusal::UnknownRunbook { .. } | Refusal::PlanTemplate { .. } => "runbook",
                Refusal::MissingParam { .. }
                | Refusal::ParamMismatch { .. }
                | Refusal::TargetNotTaken { .. }
                | Refusal::UnknownParam { .. }
                | Refusal::NotAChoice { .. } => {
                    // Beside the field of the parameter it is about, when the form has one.
                    let name = match &refusal {
                        Refusal::MissingParam { name, .. }
                        | Refusal::ParamMismatch { name, .. }
                        | Refusal::NotAChoice { name, .. } => name.as_str(),
                        _ => "target",
                    };
                    return errors(vec![(&messages::param_block(name), messages::refusal(&refusal).text)]);
                }
                Refusal::ReasonRequired { .. } | Refusal::ReasonTooLong { .. } => "reason",
                _ => "service",
            };
            errors(vec![(field, messages::refusal(&refusal).text)])
        }
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "recording a request from the form failed"
            );
            errors(vec![("service", messages::internal_error(&reference).text)])
        }
    }
}
