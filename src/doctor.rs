//! `rollbot doctor`: what `rollbot check` cannot see offline, asked of the services themselves
//! the way `serve` will use them. Each finding says what was checked and, when it fails, what
//! to do; nothing is posted, nothing is written.
use crate::app::StoreLocation;
use crate::config::Config;
use crate::slack::client::{CallError, SlackApi};
use crate::statuspage::StatusPage;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Works,
    /// It does not; `fix` says what to do.
    Broken {
        fix: String,
    },
    /// Could not be checked without changing something (a webhook would post).
    NotChecked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub verdict: Verdict,
}

impl Finding {
    fn works(what: impl Into<String>) -> Finding {
        Finding {
            what: what.into(),
            verdict: Verdict::Works,
        }
    }

    fn broken(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            what: what.into(),
            verdict: Verdict::Broken { fix: fix.into() },
        }
    }
}

/// What `doctor` talks to.
pub struct Reach<'a> {
    pub slack: &'a SlackApi,
    pub store: &'a StoreLocation,
    pub status_page: Option<&'a StatusPage>,
    pub pagerduty: Option<&'a crate::pagerduty::PagerDuty>,
}

/// Asks each service in turn; one failure does not hide the others.
pub async fn examine(config: &Config, reach: Reach<'_>) -> Vec<Finding> {
    let mut findings = vec![];
    match reach.slack.who_am_i().await {
        Ok(me) => {
            let workspace = config.policy.workspace.as_ref().map(|w| w.0.as_str());
            match workspace {
                Some(expected) if expected != me.team_id => findings.push(Finding::broken(
                    format!(
                        "the bot token belongs to workspace {} ({}), not {expected}",
                        me.team, me.team_id
                    ),
                    format!(
                        "use the token of the app installed in {expected}, or set [slack] workspace = \"{}\"",
                        me.team_id
                    ),
                )),
                _ => findings.push(Finding::works(format!(
                    "the bot token works: <@{}> in {} ({})",
                    me.user_id, me.team, me.team_id
                ))),
            }
        }
        Err(error) => findings.push(Finding::broken(
            format!("Slack refused the bot token ({})", short(&error)),
            "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) of the installed app",
        )),
    }
    let mut channels: Vec<&str> = config.policy.channels.iter().map(|c| c.0.as_str()).collect();
    channels.extend(config.notify_channels.iter().map(|c| c.0.as_str()));
    channels.dedup();
    for channel in channels {
        findings.push(match reach.slack.can_read(channel).await {
            Ok(()) => Finding::works(format!("the bot is in <#{channel}>")),
            Err(CallError::Permanent(code)) if code.contains("not_in_channel") => Finding::broken(
                format!("the bot is not in <#{channel}>"),
                format!("type `/invite @rollbot` in <#{channel}>"),
            ),
            Err(CallError::Permanent(code)) if code.contains("channel_not_found") => Finding::broken(
                format!("Slack knows no channel {channel}"),
                "fix the channel id in the configuration (the id from the channel's details, C…)",
            ),
            Err(error) => Finding::broken(
                format!("the bot cannot read <#{channel}> ({})", short(&error)),
                "give the app channels:history and groups:history (see manifest/slack-app.yaml) and reinstall it",
            ),
        });
    }
    let mut groups: Vec<&str> = config
        .roles
        .values()
        .flatten()
        .map(String::as_str)
        .filter(|m| m.starts_with('S'))
        .collect();
    groups.sort();
    groups.dedup();
    for group in groups {
        findings.push(match reach.slack.group_members(group).await {
            Ok(members) => Finding::works(format!(
                "user group <!subteam^{group}> is readable ({} members)",
                members.len()
            )),
            Err(error) => Finding::broken(
                format!("user group {group} cannot be read ({})", short(&error)),
                "give the app usergroups:read and reinstall it, or check the group's id (S…)",
            ),
        });
    }
    findings.extend(on_call_findings(config, reach.slack, reach.pagerduty).await);
    findings.push(store_finding(reach.store).await);
    if let Some(page) = reach.status_page {
        findings.push(match page.key_works().await {
            Ok(Some(detail)) => Finding::works(format!("the status page accepts the key: {detail}")),
            Ok(None) => Finding {
                what: "the status page webhook (not called: it would post)".into(),
                verdict: Verdict::NotChecked,
            },
            Err(error) => Finding::broken(
                format!("the status page refused ({})", short(&error)),
                "check [statuspage] page_id and the key in the variable its secret_env names",
            ),
        });
    }
    findings
}

/// Each PagerDuty source a role reads: who it has on call now, and whether Slack knows them by
/// email (someone it does not know cannot approve).
async fn on_call_findings(
    config: &Config,
    slack: &SlackApi,
    pagerduty: Option<&crate::pagerduty::PagerDuty>,
) -> Vec<Finding> {
    let mut sources: Vec<crate::pagerduty::OnCallSource> = config
        .roles
        .values()
        .flatten()
        .filter_map(|m| crate::pagerduty::OnCallSource::parse(m)?.ok())
        .collect();
    sources.sort();
    sources.dedup();
    let Some(pagerduty) = pagerduty else {
        return vec![];
    };
    let mut findings = vec![];
    for source in sources {
        let emails = match pagerduty.on_call_emails(&source).await {
            Ok(emails) => emails,
            Err(why) => {
                findings.push(Finding::broken(
                    format!("who is {} cannot be read ({why})", source.describe()),
                    "check the ID and the REST API key in the variable [pagerduty] token_env names (read-only is enough)",
                ));
                continue;
            }
        };
        let mut found = vec![];
        let mut missing = vec![];
        for email in &emails {
            match slack.user_by_email(email).await {
                Ok(Some(user)) => found.push(format!("<@{user}>")),
                Ok(None) => missing.push(email.clone()),
                Err(error) => missing.push(format!("{email} ({})", short(&error))),
            }
        }
        let what = format!("{} on call now ({})", emails.len(), source.describe());
        findings.push(if emails.is_empty() {
            Finding::broken(what, "nobody is on call there now: check the schedule, or the role has no approver")
        } else if missing.is_empty() {
            Finding::works(format!("{what}, found in Slack: {}", found.join(", ")))
        } else {
            Finding::broken(
                format!("{what}, not found in Slack by email: {}", missing.join(", ")),
                "give the app users:read and users:read.email and reinstall it, or use the same email in PagerDuty and Slack",
            )
        });
    }
    findings
}

/// Asks PostgreSQL once, creating nothing; the embedded store is a file `serve` owns while it
/// runs, so it is only looked for, never opened.
async fn store_finding(store: &StoreLocation) -> Finding {
    let url = match store {
        StoreLocation::Postgres(url) => url,
        StoreLocation::Embedded(path) if path.is_file() => {
            return Finding::works(format!("{} is there", store.describe()));
        }
        StoreLocation::Embedded(_) => {
            return Finding {
                what: format!(
                    "{} does not exist yet (`rollbot serve` creates it; set DATABASE_URL to keep the state in PostgreSQL)",
                    store.describe()
                ),
                verdict: Verdict::NotChecked,
            };
        }
    };
    let describe = match crate::postgres_tls::connector(url) {
        Ok(connector) => format!("PostgreSQL (DATABASE_URL, sslmode={})", connector.mode.name()),
        Err(error) => return Finding::broken(format!("DATABASE_URL cannot be used: {error:#}"), "fix DATABASE_URL"),
    };
    match crate::store::Store::probe(url).await {
        Ok(()) => Finding::works(format!("the store answers: {describe}")),
        Err(error) => Finding::broken(
            format!("the store does not answer: {describe}: {error:#}"),
            "check DATABASE_URL (host, port, user, TLS parameters) and that rollbot has been migrated (`rollbot migrate`)",
        ),
    }
}

fn short(error: &CallError) -> String {
    match error {
        CallError::RateLimited { .. } => "rate limited; try again in a minute".into(),
        CallError::Transient(e) | CallError::Permanent(e) => e.clone(),
    }
}

/// The findings as people read them in a terminal; whether all is well.
pub fn report(findings: &[Finding]) -> (String, bool) {
    let mut out = String::new();
    let mut healthy = true;
    for finding in findings {
        match &finding.verdict {
            Verdict::Works => {
                let _ = writeln!(out, "✅ {}", finding.what);
            }
            Verdict::NotChecked => {
                let _ = writeln!(out, "⏭️  {}", finding.what);
            }
            Verdict::Broken { fix } => {
                healthy = false;
                let _ = writeln!(out, "❌ {}\n   fix: {fix}", finding.what);
            }
        }
    }
    (out, healthy)
}
