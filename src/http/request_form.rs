//! The request form: what its fields mean when it is submitted, and its redraw when a service or
//! runbook is picked in it.
use super::*;
use crate::domain::discovery::Offers;
use crate::domain::plan::{Ask, PlanRequest};
use crate::slack::client::OpenView;

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
        // As typed: the submission checks it (`grammar::incident_id`) beside its field.
        status_incident: value(messages::STATUS_INCIDENT_BLOCK),
        drill,
        fallback_of,
        detected: None,
    }
}

/// A request form as rollbot draws it, so that it can draw it again when discovery returns.
#[derive(Clone)]
pub(super) struct RequestForm {
    pub ask: Ask,
    pub channel: String,
    /// The stopped rollback whose fallback this form files.
    pub fallback: Option<crate::domain::Rollback>,
    /// Discoveries run only for someone who may request: they start programs.
    pub may_look_up: bool,
}

impl RequestForm {
    pub fn view(&self, engine: &Engine, offers: &Offers) -> serde_json::Value {
        let catalog = &engine.config.catalog;
        match &self.fallback {
            Some(stopped) => messages::fallback_modal(stopped, catalog, &self.ask, offers),
            None => messages::request_modal(
                catalog,
                &self.ask,
                &self.channel,
                offers,
                engine.config.status_page.is_some(),
            ),
        }
    }

    /// What the form shows, while they run, for the parameters of its runbook that nobody gave
    /// and that declare a discovery.
    pub fn pending(&self, engine: &Engine) -> Offers {
        let catalog = &engine.config.catalog;
        let plan = &self.ask.plan;
        let Some(runbook) = catalog
            .runbook_for_form(&plan.service, plan.runbook.as_deref())
            .filter(|_| self.may_look_up)
        else {
            return Offers::new();
        };
        let Some(spec) = catalog.runbooks.get(runbook) else {
            return Offers::new();
        };
        spec.params
            .keys()
            .filter(|name| {
                let given = if *name == "target" {
                    plan.target.as_ref()
                } else {
                    plan.params.get(*name)
                };
                given.is_none()
            })
            .filter_map(|name| Some((name.clone(), engine.discovery_pending(&plan.service, runbook, name)?)))
            .collect()
    }

    /// Opens the form at once (Slack's trigger lasts three seconds), then runs its discoveries
    /// and redraws it with what they found. `Err` when the form could not be opened.
    pub async fn open(self, state: &HttpState, trigger: &str) -> Result<(), crate::slack::client::CallError> {
        let offers = self.pending(&state.engine);
        let opened = state
            .slack
            .open_view(trigger, &self.view(&state.engine, &offers))
            .await?;
        self.discover_into(state, opened, offers);
        Ok(())
    }

    /// Runs the discoveries `pending` lists in the background and redraws the form with their
    /// offers. A form changed meanwhile (another runbook picked, closed) is left as it is.
    pub fn discover_into(self, state: &HttpState, opened: OpenView, pending: Offers) {
        if pending.is_empty() {
            return;
        }
        let engine = state.engine.clone();
        let slack = state.slack.clone();
        tokio::spawn(async move {
            let plan = &self.ask.plan;
            let catalog = &engine.config.catalog;
            let Some(runbook) = catalog.runbook_for_form(&plan.service, plan.runbook.as_deref()) else {
                return;
            };
            let lookups = pending.keys().map(|name| {
                let engine = &engine;
                async move { (name.clone(), engine.discover(&plan.service, runbook, name).await) }
            });
            let offers: Offers = futures_util::future::join_all(lookups)
                .await
                .into_iter()
                .filter_map(|(name, offer)| Some((name, offer?)))
                .collect();
            let view = self.view(&engine, &offers);
            if let Err(error) = slack.update_view(&opened.id, Some(&opened.hash), &view).await {
                tracing::info!(%error, "the request form changed or closed before discovery returned; left as it is");
            }
        });
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
    let actor = state.directory.actor(&change.user_id, change.team_id.as_deref()).await;
    let fallback = match fallback_of {
        Some(id) => match engine.fallback_form(id, &actor).await {
            Ok(Ok((stopped, _))) => Some(stopped),
            _ => None,
        },
        None => None,
    };
    let form = RequestForm {
        ask,
        channel: channel.0,
        fallback,
        may_look_up: engine.may_request(&actor),
    };
    let pending = form.pending(engine);
    match state
        .slack
        .update_view(&change.view_id, change.hash.as_deref(), &form.view(engine, &pending))
        .await
    {
        Ok(redrawn) => form.discover_into(state, redrawn, pending),
        // The form still works as it is: submitting it says what is missing beside the field.
        Err(error) => tracing::warn!(%error, "could not redraw the request form"),
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
    let mut ask = ask_of_form(&submission.values, drill, fallback_of);
    if ask.severity.is_none() {
        return errors(vec![(
            "severity",
            "Choose a severity: it decides who must approve.".into(),
        )]);
    }
    if let Some(typed) = ask.status_incident.take() {
        match crate::grammar::incident_id(&typed) {
            Some(id) => ask.status_incident = Some(id),
            None => {
                return errors(vec![(
                    messages::STATUS_INCIDENT_BLOCK,
                    messages::not_an_incident(&typed),
                )]);
            }
        }
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
