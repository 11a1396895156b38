//! `rollbot playground`: rollbot on the embedded store with the Slack stand-in beside it, and a
//! local page that shows the incident channel the way Slack does. Every command and click on the
//! page reaches rollbot's real HTTP handlers as a signed Slack request; what rollbot posts goes to
//! the stand-in, which the page reads. Nothing here is on `serve`'s path.
pub mod channel;
mod page;
mod people;

pub use people::{Person, people_of};

use crate::app::{App, Parts, StoreLocation};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::grammar::{self, Command};
use crate::slack::client::SlackApi;
use crate::slack::signature::{Secret, SignatureVerifier};
use crate::standin::slack::{Identity, SlackStandIn};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// How a playground is started.
pub struct Options {
    pub config: Config,
    /// Where the configuration came from, as the page says it.
    pub config_source: String,
    /// Where the page listens, e.g. 127.0.0.1:3030 (port 0: any free one).
    pub listen: String,
    /// Run steps for real; otherwise every request is a drill.
    pub execute: bool,
    /// Where the embedded store keeps its file.
    pub data_dir: PathBuf,
    /// The step supervisor, where this process's own executable is not a rollbot binary.
    pub step_supervisor: Option<PathBuf>,
}

/// A running playground; dropping it stops it.
pub struct Playground {
    /// The page's address.
    pub url: String,
    pub slack: SlackStandIn,
    stop: Option<crate::shutdown::Trigger>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Playground {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.fire();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The workspace a playground plays when the configuration names none.
pub const TEAM: &str = "T0PLAYGROUND";

impl Playground {
    pub async fn start(options: Options) -> Result<Playground> {
        let team = options
            .config
            .policy
            .workspace
            .as_ref()
            .map_or(TEAM.to_owned(), |t| t.0.clone());
        // Fresh secrets per run: the page signs with them, and nothing outside this process
        // knows them.
        let signing_secret = format!("playground-{}", uuid::Uuid::new_v4().simple());
        let bot_token = format!("xoxb-playground-{}", uuid::Uuid::new_v4().simple());
        let api_token = Secret::new(format!("playground-api-{}", uuid::Uuid::new_v4().simple()));
        let identity = Identity {
            team_id: team.clone(),
            bot_token: bot_token.clone(),
            app_token: None,
        };
        let slack = SlackStandIn::start(identity, None)
            .await
            .context("starting the Slack stand-in")?;
        slack.enforce_slack_limits(Arc::new(SystemClock));
        let people = people_of(&options.config);
        for (group, members) in people::groups(&options.config) {
            slack.set_group(&group, &members.iter().map(String::as_str).collect::<Vec<_>>());
        }

        let page_listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let url = format!("http://{}", page_listener.local_addr()?);
        let status_page = options
            .config
            .status_page
            .as_ref()
            .map(|_| {
                crate::statuspage::StatusPage::new(crate::statuspage::Provider::Webhook {
                    url: format!("{url}{}", page::STATUS_PAGE_PATH),
                    secret: Secret::new(uuid::Uuid::new_v4().simple().to_string()),
                })
            })
            .transpose()?;

        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let store = StoreLocation::Embedded(options.data_dir.join(crate::store::embedded::FILE_NAME))
            .open()
            .await?;
        let channels: Vec<String> = options.config.policy.channels.iter().map(|c| c.0.clone()).collect();
        let app = App::new(Parts {
            seal_key: crate::domain::seal::SealKey::derive([signing_secret.as_str()]),
            config: options.config,
            store,
            clock: Arc::new(SystemClock),
            verifier: SignatureVerifier::new(vec![Secret::new(signing_secret.clone())]),
            slack: SlackApi::new(&slack.api_url, &Secret::new(bot_token))?,
            tokens: crate::http::BearerTokens {
                api: Some(api_token.clone()),
                alertmanager: None,
            },
            status_page,
            // The playground reaches nothing outside: a role read from PagerDuty stays
            // unresolved there, and its approvals refuse as they would with PagerDuty down.
            pagerduty: None,
            change_events: None,
            step_secrets: crate::engine::secrets::SecretSource::Process,
        });
        let app = match options.step_supervisor {
            Some(program) => app.with_step_supervisor(program),
            None => app,
        };
        let rollbot_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let rollbot_url = format!("http://{}", rollbot_listener.local_addr()?);
        let (stop, shutdown) = crate::shutdown::channel();
        let rollbot = tokio::spawn(async move {
            if let Err(error) = app.serve(rollbot_listener, shutdown).await {
                tracing::error!(error = format!("{error:#}"), "rollbot stopped");
            }
        });
        let state = page::PageState::new(page::Wiring {
            slack: slack.clone(),
            rollbot_url,
            signing_secret,
            api_token,
            team,
            channels,
            people,
            execute: options.execute,
            config_source: options.config_source,
        })?;
        let router = page::router(Arc::new(state));
        let page = tokio::spawn(async move {
            if let Err(error) = axum::serve(page_listener, router).await {
                tracing::error!(%error, "the playground page stopped");
            }
        });
        Ok(Playground {
            url,
            slack,
            stop: Some(stop),
            tasks: vec![rollbot, page],
        })
    }
}

/// What the page sends rollbot for `text` typed after `/rollback`: unless steps may run, a
/// request becomes a drill (docs/drills.md), so nothing is executed and nothing leaves.
pub fn as_sent(text: &str, execute: bool) -> String {
    match grammar::parse(text) {
        Ok(Command::Request(args)) if !args.drill && !execute => format!("drill {}", text.trim_start()),
        _ => text.to_owned(),
    }
}

/// The configuration a newcomer gets: a service with two runbooks whose steps only print.
pub const DEMO_CONFIG: &str = include_str!("../../examples/playground.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_a_rehearsal_a_request_is_sent_as_a_drill_and_nothing_else_changes() {
        assert_eq!(as_sent("checkout-api to 41", false), "drill checkout-api to 41");
        assert_eq!(as_sent("drill checkout-api to 41", false), "drill checkout-api to 41");
        assert_eq!(as_sent("status RB-1", false), "status RB-1");
        assert_eq!(as_sent("postmortem RB-1", false), "postmortem RB-1");
        assert_eq!(as_sent("", false), "");
        assert_eq!(as_sent("checkout-api to 41", true), "checkout-api to 41");
    }

    #[test]
    fn the_demo_configuration_is_valid() {
        let config = Config::parse("playground.toml", DEMO_CONFIG).unwrap();
        assert!(!config.policy.channels.is_empty());
    }
}
