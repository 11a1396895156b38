//! Refusals: why not, and what to do instead.
use super::*;

pub(super) fn state_phrase(state: &State) -> String {
    match state {
        State::AwaitingApproval => "awaiting approval".into(),
        State::Queued => "approved and about to start".into(),
        State::Running => "already running".into(),
        State::Succeeded => "already finished (succeeded)".into(),
        State::Failed { .. } => "already finished (failed)".into(),
        State::Rejected { by, .. } => format!("already rejected by {}", user(by)),
        State::Cancelled { by } => format!("already cancelled by {}", user(by)),
        State::Paused { step } => format!("paused before step {}, waiting for a person", step + 1),
        State::Interrupted { step } => format!("interrupted at step {}, waiting for a person", step + 1),
        State::Expired => "already expired".into(),
        State::Aborted { by, .. } => format!("already aborted by {}", user(by)),
    }
}

pub fn refusal(refusal: &Refusal) -> Message {
    use Refusal::*;
    Message::plain(match refusal {
        WrongWorkspace => {
            "rollbot only takes requests from its own Slack workspace. Ask in your workspace's incident channel.".into()
        }
        WrongChannel { allowed } => {
            let channels = allowed
                .iter()
                .map(|c| format!("<#{}>", escape(&c.0)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "Rollbacks are requested in the incident channel so everyone sees them: {channels}. Run the same command there."
            )
        }
        ReadWhereItLives { id, channel } => format!(
            "*{id}* lives in <#{}>: its status and post-mortem are shown there, and to its requester and approvers. Run the same command in <#{}>.",
            escape(&channel.0),
            escape(&channel.0)
        ),
        PreviewInIncidentChannel { allowed } => format!(
            "Plans are previewed in the incident channels, where they would run: {}. Run the same command there.",
            allowed
                .iter()
                .map(|c| format!("<#{}>", escape(&c.0)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        LivesInAnotherChannel { what, channel } => format!(
            "*{}* lives in <#{}>. Act on it there, so everyone in the incident sees it.",
            escape(what),
            escape(&channel.0)
        ),
        NotARequester { roles } => format!(
            "You are not in a role that may request rollbacks ({}). Ask the on-call engineer to request it.",
            role_names(roles)
        ),
        ReasonRequired { severity } => format!(
            "A {severity}-severity rollback needs a reason. Add `reason \"<why>\"` to the command and run it again."
        ),
        TooManyOpenRequests { open } => format!(
            "You already have {} open rollback requests ({}), the most one person may have at a time. Cancel one you no longer need (`/rollback cancel {}`) or let them finish, then ask again.",
            open.len(),
            open.iter().map(|id| format!("*{id}*")).collect::<Vec<_>>().join(", "),
            open.first().map(ToString::to_string).unwrap_or_default()
        ),
        LockHeld {
            open,
            service,
            state,
            requester,
            card,
        } => {
            let card = card
                .as_ref()
                .map(|(channel, ts)| format!(", <{}|its card>", thread_link(channel, ts)))
                .unwrap_or_default();
            format!(
                "*{}* already has an open rollback: *{open}* ({}, requested by {}{card}). One runs at a time, so that two undos cannot fight. Nothing was requested. Wait for it to finish, cancel it if it is no longer needed (`/rollback cancel {open}`), or ask its approvers in its thread.",
                escape(service),
                state_phrase(state),
                user(requester)
            )
        }
        ReasonTooLong { max } => {
            format!("The reason is longer than {max} characters. Shorten it; put details in the thread.")
        }
        UnknownService {
            service,
            suggestion,
            known,
        } => {
            let hint = match suggestion {
                Some(s) => format!(" Did you mean `{}`?", escape(s)),
                None if known.is_empty() => " No services are configured yet.".into(),
                None => format!(
                    " Known services: {}.",
                    known
                        .iter()
                        .map(|k| format!("`{}`", escape(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!("There is no service `{}`.{hint} {HELP_HINT}", escape(service))
        }
        UnknownRunbook {
            service,
            runbook,
            known,
        } => format!(
            "Service `{}` has no runbook `{}`. Its runbooks: {}. Leave `runbook` out to use the first.",
            escape(service),
            escape(runbook),
            known
                .iter()
                .map(|k| format!("`{}`", escape(k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TargetNotTaken { runbook } => format!("Runbook `{}` takes no target; leave out `to …`.", escape(runbook)),
        MissingParam { runbook, name, help } => {
            let how = if name == "target" {
                "Add `to <target>`".to_owned()
            } else {
                format!("Add `{}=<value>`", escape(name))
            };
            let help = help.as_deref().map(|h| format!(" ({})", escape(h))).unwrap_or_default();
            format!(
                "Runbook `{}` needs `{}`{help}. {how} and run the command again.",
                escape(runbook),
                escape(name)
            )
        }
        ParamMismatch {
            name,
            value,
            pattern,
            help,
        } => {
            let help = help.as_deref().map(|h| format!(": {}", escape(h))).unwrap_or_default();
            format!(
                "`{}` is not a valid `{}` (it must match `{}`{help}). Nothing was requested; fix the value and run the command again.",
                escape(&truncate(value, 100)),
                escape(name),
                escape(pattern)
            )
        }
        UnknownParam {
            runbook,
            name,
            suggestion,
            known,
        } => {
            let hint = match suggestion {
                Some(s) => format!(" Did you mean `{}`?", escape(s)),
                None => String::new(),
            };
            let takes = if known.is_empty() {
                "It takes no parameters.".to_owned()
            } else {
                format!("It takes {}.", ticked_list(known))
            };
            format!(
                "Runbook `{}` has no parameter `{}`.{hint} {takes} Nothing was requested; fix it and run the command again.",
                escape(runbook),
                escape(&truncate(name, 100))
            )
        }
        PreflightFailed { id, failed } => format!(
            "A preflight check of *{id}* failed: {}. If you have checked that it is safe to run anyway, click *Approve despite preflight…* on the card; the approval records that you did.",
            failed.iter().map(|f| escape(f)).collect::<Vec<_>>().join("; ")
        ),
        NotAChoice {
            name,
            value,
            suggestion,
            choices,
        } => {
            let hint = match suggestion {
                Some(s) => format!(" Did you mean `{}`?", escape(s)),
                None => String::new(),
            };
            format!(
                "`{}` is not one of the values of `{}`.{hint} Choose {}. Nothing was requested.",
                escape(&truncate(value, 100)),
                escape(name),
                ticked_list(choices)
            )
        }
        PlanTemplate { step, detail } => format!(
            "The plan could not be built: step `{}`: {}. This is a configuration problem; tell whoever runs rollbot (`rollbot check` shows it).",
            escape(step),
            escape(detail)
        ),
        NoStatusPage { incident } => format!(
            "rollbot keeps no status page here, so it cannot carry on incident `{}`. Leave `incident` out and run the command again; update the page by hand.",
            escape(incident)
        ),
        NoSuchRollback { id: Some(id) } => {
            format!("There is no rollback *{id}*. `/rollback list` shows the recent ones.")
        }
        NoSuchRollback { id: None } => "That rollback does not exist. `/rollback list` shows the recent ones.".into(),
        SelfApproval { id } => format!(
            "You requested *{id}*, so you cannot approve it: a second person must. The card lists who may approve."
        ),
        NotAnApprover { id, severity, roles } => format!(
            "You cannot approve or reject *{id}*: a {severity}-severity rollback needs someone in {}. The card lists who may approve.",
            role_names(roles)
        ),
        AlreadyApprovedByYou { id, needed, have } => format!(
            "You already approved *{id}* ({have} of {needed}). It needs another approver; the card lists who may approve."
        ),
        NotAwaitingApproval { id, state, approved_by } => {
            let by = if approved_by.is_empty() {
                String::new()
            } else {
                format!(
                    " (approved by {})",
                    approved_by.iter().map(user).collect::<Vec<_>>().join(", ")
                )
            };
            format!(
                "*{id}* is {}{by}; your click changed nothing. The card shows its current state.",
                state_phrase(state)
            )
        }
        RequesterCannotReject { id } => {
            format!("You requested *{id}*; to withdraw it use *Cancel* (or `/rollback cancel {id}`).")
        }
        NotCancellable { id, state } => format!(
            "*{id}* is {}, so it can no longer be cancelled. The card shows its current state.",
            state_phrase(state)
        ),
        NotAllowedToCancel { id } => {
            format!("Only the requester or an approver can cancel *{id}*. Ask them in the thread.")
        }
        ApprovalsDoNotMatchPlan { id, valid, needed } => {
            format!("*{id}* will not run: it holds {valid} valid approval(s) for its plan but needs {needed}.")
        }
        SystemOnly => "That action is rollbot's own and cannot be taken from Slack.".into(),
        NothingToResolve { id } => format!(
            "*{id}* has no open incident to resolve (it is resolved already, or the rollback has not finished); nothing changed."
        ),
        UpdateEmpty { id } => {
            format!("The update on *{id}* has no words; nothing was posted. Write what changed and what happens next.")
        }
        UpdateTooLong { id, max } => format!(
            "The update on *{id}* is longer than {max} characters; nothing was posted. Shorten it and link to details."
        ),
        NoSuchChecklistItem { id } => format!(
            "Those boxes are not on *{id}*'s checklists (the message is out of date, or not rollbot's); nothing was recorded. Tick them in the latest checklist message in the thread."
        ),
        NoteEmpty { id } => format!(
            "The note on *{id}* has no words; nothing was added. Write it after the number: `/rollback note {id} what you saw or decided`."
        ),
        NoteTooLong { id, max } => format!(
            "The note on *{id}* is longer than {max} characters; nothing was added. Shorten it, or add several notes."
        ),
        NotAllowedToUpdate { id } => format!(
            "Updates on *{id}* speak for the incident, so they come from its requester, someone who may approve it, or a role allowed to abort it. Ask one of them in the thread, or reply there yourself."
        ),
        NoFallback { id, runbook } => format!(
            "The runbook *{}* of *{id}* names no fallback, so there is none to run; nothing changed. Request the rollback you need with `/rollback`, or add `fallback = \"<runbook>\"` to the runbook.",
            escape(runbook)
        ),
        FallbackNotNow { id, state } => format!(
            "*{id}* is {}; a fallback is offered once a run has failed or was aborted (abort an interrupted run first), and not after the incident is resolved. Nothing changed.",
            state_phrase(state)
        ),
        FallbackAlreadyRequested { id, fallback, by } => format!(
            "{} already requested the fallback of *{id}* as *{fallback}*; nothing new was filed. Follow *{fallback}* on its card.",
            user(by)
        ),
        NotAllowedToRunFallback { id } => format!(
            "The fallback of *{id}* is requested by whoever may steer it: its requester, someone who may approve it, or a role allowed to abort it. Ask one of them in the thread; nothing changed."
        ),
        NoPageToUpdate { id } => format!(
            "The status page has no open incident for *{id}* (the run has not started, it is a drill, or it is resolved), so nothing was posted. Post the update without the status page."
        ),
        MembershipUnknown { id, roles } => format!(
            "rollbot could not check whether you are in {} (its Slack user group or PagerDuty on-call schedule could not be read), so it did not act{}. Nothing changed; try again in a minute.",
            role_names(roles),
            id.map(|id| format!(" on *{id}*")).unwrap_or_default()
        ),
        NoHigherLevel { id } => {
            format!("*{id}* is already at the top of its escalation path; ask the people on the card directly.")
        }
        NotAllowedToEscalate { id } => {
            format!("Only the requester or someone who may approve *{id}* can escalate it. Ask them in the thread.")
        }
        NotPaused { id, state } => format!(
            "*{id}* is {}, not waiting at a step; your click changed nothing. The card shows its current state.",
            state_phrase(state)
        ),
        StaleStep { id, clicked, waiting } => format!(
            "That button was for step {} of *{id}*, but it now waits at step {}; nothing changed. Use the buttons on the card as it is now.",
            clicked + 1,
            waiting + 1
        ),
        NotAllowedToAbort { id, abort_roles } => format!(
            "Only the requester of *{id}*, someone who may approve it, or {} can abort it; nothing changed. Ask one of them in the thread.",
            if abort_roles.is_empty() {
                "a role the configuration allows to abort (`[safety] abort_roles`, none set)".to_owned()
            } else {
                format!("a role allowed to abort ({})", role_names(abort_roles))
            }
        ),
        NotAllowedAtGate { id } => format!(
            "Only the requester or someone who may approve *{id}* can answer at this step. Ask them in the thread."
        ),
        SecondPersonNeeded {
            id,
            step,
            name,
            destructive,
        } => format!(
            "You requested *{id}*, so someone else must {} step {} (*{}*): {} Ask the people who may approve it in the thread.",
            if *destructive { "confirm" } else { "answer" },
            step + 1,
            escape(name),
            if *destructive {
                "it is destructive, and the two-person rule says no one runs a destructive step alone."
            } else {
                "the two-person rule says a gate is passed by a second person."
            }
        ),
        WrongPhrase { id } => {
            format!("The confirmation phrase for *{id}* did not match; the step did not run. {WRONG_PHRASE}")
        }
        OutOfOrder { id, detail } => format!("*{id}*: {}; nothing changed.", escape(detail)),
        AutomaticRequestNeedsApproval { severity } => format!(
            "rollbot did not file this request by itself: a {severity}-severity rollback runs without approval, so a person must start it. Use *Start rollback* on the proposal, or `/rollback`."
        ),
        AutomaticRequestTooSoon {
            service,
            last,
            at,
            every,
        } => format!(
            "rollbot filed *{last}* for {} at {} and files at most one request per service every {}. Use *Start rollback* on the proposal if this one is needed too.",
            escape(service),
            hhmm(*at),
            humantime::format_duration(*every)
        ),
        NotSkippable { id, step, name } => format!(
            "Step {} *{}* of *{id}* cannot be skipped after it failed or was aborted: its runbook does not allow it (`skippable = true`). Use *Retry step*, or request a new rollback; nothing changed.",
            step + 1,
            escape(name)
        ),
        AbortUnderWay { id, by } => format!(
            "{} already asked to abort *{id}*; its step is being stopped and nothing after it will start. Watch the thread.",
            user(by)
        ),
        NoSuchProposal { id } => {
            format!("There is no proposal *{id}*; nothing changed. Use `/rollback` to request a rollback.")
        }
        ProposalResolved { id, service } => format!(
            "The alert behind *{id}* has resolved, so it is no longer offered; nothing changed. To roll back anyway, type `/rollback {} to <target> severity <level>`.",
            escape(service)
        ),
        ProposalDismissed { id, by } => format!(
            "*{id}* was dismissed by {}; nothing changed. To roll back anyway, use `/rollback`.",
            user(by)
        ),
        ProposalStarted { id, rollback, by } => format!(
            "{} already started *{rollback}* from *{id}*; nothing changed. Follow it on its card (`/rollback status {rollback}`).",
            user(by)
        ),
    })
}

/// `` `a`, `b`, `c` `` with each item escaped.
fn ticked_list(items: &[String]) -> String {
    items
        .iter()
        .map(|k| format!("`{}`", escape(k)))
        .collect::<Vec<_>>()
        .join(", ")
}
