//! `POST /slack/commands`: `/rollback …` typed by a person, answered privately.
use super::*;

pub(super) async fn slash_command(
    State(state): State<Arc<HttpState>>,
    SignedBySlack { body, delivery }: SignedBySlack,
) -> Response {
    answer_command(&state, inbound::parse_slash_command(&body), &delivery).await
}

/// The answer to a command however it came (a signed request, a Socket Mode envelope).
pub(super) async fn answer_command(
    state: &HttpState,
    command: Result<SlashCommand, inbound::InboundError>,
    delivery: &Delivery,
) -> Response {
    let command = match command {
        Ok(command) => command,
        Err(e) => {
            return ephemeral(Message::plain(format!(
                "rollbot could not read this command: {e}. Nothing was recorded."
            )));
        }
    };
    let span = tracing::info_span!("slash_command", user = %command.user_id, channel = %command.channel_id);
    match handle_command(state, &command, delivery).instrument(span).await {
        Ok(message) => ephemeral(message),
        Err(e) => {
            let reference = new_reference();
            tracing::error!(
                reference,
                error = format!("{e:#}"),
                "handling a /rollback command failed"
            );
            if crate::store::CommitOutcomeUnknown::caused(&e) {
                ephemeral(messages::request_outcome_unknown(&reference))
            } else {
                ephemeral(messages::internal_error(&reference))
            }
        }
    }
}

pub(super) async fn handle_command(
    state: &HttpState,
    command: &SlashCommand,
    delivery: &Delivery,
) -> anyhow::Result<Message> {
    let engine = &state.engine;
    let actor = state
        .directory
        .actor(&command.user_id, command.team_id.as_deref())
        .await
        .in_channel(&command.channel_id);
    let parsed = match grammar::parse(&command.text) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(messages::parse_error(&e)),
    };
    let with_subcommand_hint = |refusal: crate::domain::Refusal| match refusal {
        crate::domain::Refusal::UnknownService {
            service,
            suggestion: None,
            known,
        } => crate::domain::Refusal::UnknownService {
            suggestion: crate::domain::plan::nearest(&service, SUBCOMMANDS),
            service,
            known,
        },
        other => other,
    };
    Ok(match parsed {
        Command::Help if command.text.trim().is_empty() => {
            let args = RequestArgs::default();
            complete_in_form(state, command, &actor, &args, "service and severity")
                .await
                .unwrap_or_else(messages::help)
        }
        Command::Help => messages::help(),

        Command::Plan(args) => match engine.preview(&args.ask().plan, &actor) {
            Ok(plan) => messages::plan_preview(&plan),
            Err(refusal) => messages::refusal(&with_subcommand_hint(refusal)),
        },

        Command::Request(args) if args.severity.is_none() => {
            complete_in_form(state, command, &actor, &args, "severity missing")
                .await
                .unwrap_or_else(|| messages::severity_missing(&args))
        }
        Command::Request(args) => match engine
            .request(&actor, &command.channel_id, &args.ask(), Some(&delivery.0))
            .await?
        {
            Ok(rollback) => messages::request_acknowledged(&rollback, &engine.config.roles),
            Err(Refusal::MissingParam { runbook, name, help }) => {
                complete_in_form(state, command, &actor, &args, &format!("{name} missing"))
                    .await
                    .unwrap_or_else(|| messages::refusal(&Refusal::MissingParam { runbook, name, help }))
            }
            Err(refusal) => messages::refusal(&with_subcommand_hint(refusal)),
        },
        Command::Status(Some(id)) => match engine.status_for(id, &actor).await? {
            Ok(rollback) => messages::status(&rollback),
            Err(Refusal::NoSuchRollback { .. }) => messages::not_found(id),
            Err(refusal) => messages::refusal(&refusal),
        },
        Command::Status(None) => match engine.recent_for(&actor, &command.channel_id, false, 1).await? {
            Ok(latest) => match latest.first() {
                Some(rollback) => messages::status(rollback),
                None => messages::list(&[]),
            },
            Err(refusal) => messages::refusal(&refusal),
        },
        Command::List { drills } => match engine.recent_for(&actor, &command.channel_id, drills, 10).await? {
            Ok(recent) => messages::list(&recent),
            Err(refusal) => messages::refusal(&refusal),
        },

        Command::Postmortem(id) => match engine.postmortem_for(id, &actor).await? {
            Ok((rollback, history)) => messages::postmortem(id, &crate::postmortem::draft(&rollback, &history)),
            Err(Refusal::NoSuchRollback { .. }) => messages::not_found(id),
            Err(refusal) => messages::refusal(&refusal),
        },
        Command::Cancel(id) => match engine.act(id, &Action::Cancel, &actor).await? {
            Ok(_) => messages::cancelled(id),
            Err(refusal) => messages::refusal(&refusal),
        },
        Command::Note { id, text } => match engine.act(id, &Action::AddNote { text }, &actor).await? {
            Ok(_) => messages::noted(id),
            Err(Refusal::NoSuchRollback { .. }) => messages::not_found(id),
            Err(refusal) => messages::refusal(&refusal),
        },
    })
}

/// Opens the request form pre-filled with what was typed; `None` when no form could be opened
/// (the caller answers in text instead).
pub(super) async fn complete_in_form(
    state: &HttpState,
    command: &SlashCommand,
    actor: &Actor,
    args: &RequestArgs,
    missing: &str,
) -> Option<Message> {
    let trigger = command.trigger_id.as_deref()?;
    let form = RequestForm {
        ask: args.ask(),
        channel: command.channel_id.clone(),
        fallback: None,
        may_look_up: state.engine.may_request(actor),
    };
    match form.open(state, trigger).await {
        Ok(()) => Some(messages::form_opened(missing)),
        Err(error) => {
            tracing::warn!(%error, "could not open the request form; answering in text");
            None
        }
    }
}
