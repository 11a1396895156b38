//! The team's communication templates: text with variables (minijinja), overridable in the
//! configuration, with defaults taken from common incident plans.
use crate::domain::{Rollback, State};
use std::collections::BTreeMap;

pub use crate::domain::effects::Announcement;

/// The words a team gets when its configuration does not give its own.
impl Announcement {
    pub fn default_text(self) -> &'static str {
        match self {
            Announcement::Started => {
                "🔴 *ROLLBACK IN PROGRESS* — {{ service }} ({{ id }})\n\
                 *Version:* rolling back to {{ target or \"the runbook's default\" }}\n\
                 *Reason:* {{ reason or \"not given\" }}\n\
                 *Started:* {{ started }}\n\
                 *Expected completion:* {{ expected_completion or \"unknown\" }}\n\
                 *Point of contact:* {{ requester }}\n\
                 Follow along: {{ thread }}"
            }
            Announcement::Succeeded => {
                "✅ *ROLLBACK COMPLETE* — {{ service }} is back on {{ target or \"the previous version\" }} ({{ id }}, {{ duration }}). \
                 Monitoring continues; point of contact: {{ requester }}."
            }
            Announcement::Failed => {
                "❌ *ROLLBACK FAILED* — {{ service }} ({{ id }}): step {{ failed_step }} did not complete ({{ failure_reason }}). \
                 The incident continues; next steps in {{ thread }}. Point of contact: {{ requester }}."
            }
            Announcement::Cancelled => {
                "⚪ Rollback {{ id }} of {{ service }} was cancelled by {{ cancelled_by }}; nothing was rolled back."
            }
            Announcement::CustomerNotice => {
                "📣 *Customer notice, ready to send:*\n> Between {{ requested }} and {{ finished }} some requests to {{ service }} may have failed \
                 or been slow. We rolled back a recent change and the service is working normally again. We are sorry for the trouble."
            }
            Announcement::PageOpened => {
                "We are currently experiencing issues with {{ service }}. We have identified the issue and are rolling back \
                 to the previous version. Impact: some requests to {{ service }} may fail or be slow. Started: {{ started }}."
            }
            Announcement::PageMonitoring => "The rollback of {{ service }} is complete. We are monitoring the results.",
            Announcement::PageStillInvestigating => {
                "We are still working on the issue with {{ service }}: the first fix did not complete. We will post another update shortly."
            }
            Announcement::PageResolved => "This incident has been resolved; {{ service }} is operating normally.",
        }
    }
}

/// Every variable a template may use, with what it holds; `rollbot check` refuses others.
pub const VARIABLES: [(&str, &str); 19] = [
    ("id", "the rollback's id, e.g. RB-12"),
    ("service", "the service rolled back"),
    (
        "target",
        "what it is rolled back to (empty when the runbook needs none)",
    ),
    ("runbook", "the runbook that runs"),
    ("severity", "critical, high, medium or low"),
    ("reason", "the reason given (empty when none)"),
    ("requester", "who requested it (a Slack mention)"),
    ("approvers", "who approved it, comma-separated (Slack mentions)"),
    ("started", "when the run started, HH:MM UTC"),
    (
        "expected_completion",
        "started plus the runbook's expected_duration (empty when not declared)",
    ),
    ("duration", "how long the run took, once it ended"),
    ("state", "the rollback's state, e.g. running, succeeded, failed"),
    (
        "failed_step",
        "the step that failed, as \"<n> (<name>)\" (empty unless failed)",
    ),
    (
        "failure_reason",
        "why it failed, e.g. exited with code 1 (empty unless failed)",
    ),
    ("cancelled_by", "who cancelled it (empty unless cancelled)"),
    ("thread", "a link to the rollback's thread in Slack"),
    (
        "steps",
        "each step with its result so far, one per line, e.g. \"1. Undo rollout: succeeded (exit 0, 1.2s)\"",
    ),
    ("requested", "when it was requested, HH:MM UTC"),
    ("finished", "when it ended, HH:MM UTC (empty while it runs)"),
];

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// Syntax and variables of a template, as `rollbot check` sees them.
pub fn check(template: &str) -> Result<(), String> {
    let env = environment();
    let parsed = env.template_from_str(template).map_err(|e| format!("{e}"))?;
    let known: Vec<&str> = VARIABLES.iter().map(|(name, _)| *name).collect();
    let mut unknown: Vec<String> = parsed
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !known.contains(&v.as_str()))
        .collect();
    unknown.sort();
    if unknown.is_empty() {
        Ok(())
    } else {
        let what = if unknown.len() == 1 {
            "is not a template variable"
        } else {
            "are not template variables"
        };
        Err(format!("uses {} which {what}", unknown.join(", ")))
    }
}

/// The values of the variables for one rollback. `quote` makes people's text safe for where it
/// goes (mrkdwn for Slack, nothing for a plain-text page); mentions are given as `mention` makes them.
pub fn variables(
    rollback: &Rollback,
    thread: &str,
    expected_duration: Option<std::time::Duration>,
    quote: &dyn Fn(&str) -> String,
    mention: &dyn Fn(&str) -> String,
) -> BTreeMap<&'static str, String> {
    let request = &rollback.request;
    let hhmm = |at: chrono::DateTime<chrono::Utc>| at.format("%H:%M UTC").to_string();
    let started = rollback.started_at;
    let mut vars = BTreeMap::new();
    vars.insert("id", rollback.id.to_string());
    vars.insert("service", quote(&request.service));
    vars.insert("target", request.target.as_deref().map(quote).unwrap_or_default());
    vars.insert("runbook", quote(&request.runbook));
    vars.insert("severity", request.severity.to_string());
    vars.insert("reason", request.reason.as_deref().map(quote).unwrap_or_default());
    vars.insert("requester", mention(&request.requester.0));
    vars.insert(
        "approvers",
        rollback
            .approvals
            .iter()
            .map(|a| mention(&a.by.0))
            .collect::<Vec<_>>()
            .join(", "),
    );
    vars.insert("started", started.map(hhmm).unwrap_or_default());
    let expected = started
        .zip(expected_duration)
        .and_then(|(s, d)| Some(s + chrono::Duration::from_std(d).ok()?));
    vars.insert("expected_completion", expected.map(hhmm).unwrap_or_default());
    let took = rollback
        .elapsed()
        .map(|d| crate::text::duration_text(d.num_milliseconds().max(0) as u64));
    vars.insert("duration", took.unwrap_or_default());
    vars.insert("state", rollback.state.name().to_owned());
    let (failed_step, failure_reason) = match &rollback.state {
        State::Failed { step, reason } => {
            let name = rollback
                .plan
                .steps
                .get(*step)
                .map(|s| quote(&s.name))
                .unwrap_or_default();
            (format!("{} ({name})", step + 1), quote(reason))
        }
        State::Aborted { step, by } => (format!("{}", step + 1), format!("aborted by {}", mention(&by.0))),
        _ => (String::new(), String::new()),
    };
    vars.insert("failed_step", failed_step);
    vars.insert("failure_reason", failure_reason);
    let cancelled_by = match &rollback.state {
        State::Cancelled { by } => mention(&by.0),
        _ => String::new(),
    };
    vars.insert("cancelled_by", cancelled_by);
    vars.insert("thread", thread.to_owned());
    vars.insert("requested", hhmm(rollback.requested_at));
    vars.insert("finished", rollback.finished_at.map(hhmm).unwrap_or_default());
    let steps: Vec<String> = rollback
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let result = rollback
                .steps
                .iter()
                .rev()
                .find(|s| s.index == i)
                .and_then(|s| s.result.as_ref());
            let outcome = match result {
                None => "not run".to_owned(),
                Some(r) => {
                    let exit = r.exit_code.map(|c| format!("exit {c}, ")).unwrap_or_default();
                    let took = crate::text::duration_text(r.duration_ms);
                    format!("{} ({exit}{took})", format!("{:?}", r.outcome).to_lowercase())
                }
            };
            format!("{}. {}: {outcome}", i + 1, quote(&step.name))
        })
        .collect();
    vars.insert("steps", steps.join("\n"));
    vars
}

/// Renders a template; empty variables count as absent for `or` defaults.
pub fn render(template: &str, variables: &BTreeMap<&'static str, String>) -> Result<String, String> {
    let context: BTreeMap<&str, minijinja::Value> = variables
        .iter()
        .map(|(k, v)| {
            (
                *k,
                if v.is_empty() {
                    minijinja::Value::from(())
                } else {
                    minijinja::Value::from(v.clone())
                },
            )
        })
        .collect();
    environment().render_str(template, context).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::*;
    use crate::domain::{Action, Actor, Severity};

    fn rendered(story: &Story, which: Announcement) -> String {
        let rollback = &story.rollback;
        let vars = variables(
            rollback,
            "https://slack.com/archives/C0INCIDENTS/p1790000000000001",
            Some(std::time::Duration::from_secs(300)),
            &crate::text::escape,
            &|u| format!("<@{u}>"),
        );
        render(which.default_text(), &vars).unwrap()
    }

    #[test]
    fn every_default_template_renders() {
        let running = Story::requested(Severity::High, Some("bad <deploy> & co"))
            .approved()
            .act(&Actor::system(), Action::StartRun);
        let succeeded = Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result(""))
            .step(1, ok_result(""));
        let failed = Story::requested(Severity::High, None)
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, failed_result(2, ""));
        let cancelled = Story::requested(Severity::High, None).act(&actor(REQUESTER), Action::Cancel);
        let all = [
            rendered(&running, Announcement::Started),
            rendered(&succeeded, Announcement::Succeeded),
            rendered(&failed, Announcement::Failed),
            rendered(&cancelled, Announcement::Cancelled),
            rendered(&succeeded, Announcement::CustomerNotice),
            rendered(&running, Announcement::PageOpened),
            rendered(&succeeded, Announcement::PageMonitoring),
            rendered(&failed, Announcement::PageStillInvestigating),
            rendered(&succeeded, Announcement::PageResolved),
            render(
                "{{ steps }}",
                &variables(&failed.rollback, "", None, &|s| s.to_owned(), &|u| u.to_owned()),
            )
            .unwrap(),
        ];
        insta::assert_snapshot!(all.join("\n\n---\n\n"));
    }

    #[test]
    fn unknown_variables_and_broken_syntax_are_refused() {
        assert_eq!(check("{{ service }} {{ target }}"), Ok(()));
        assert_eq!(
            check("{{ servcie }} is down"),
            Err("uses servcie which is not a template variable".into())
        );
        assert_eq!(
            check("{{ a }}{{ b }}"),
            Err("uses a, b which are not template variables".into())
        );
        assert!(check("{{ service ").unwrap_err().contains("syntax error"));
    }
}
