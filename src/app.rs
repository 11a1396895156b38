//! Wiring: settings from the environment, and the pieces of a running rollbot.
use crate::clock::Clock;
use crate::config::Config;
use crate::config::StatusPageKind;
use crate::engine::Engine;
use crate::engine::delivery::Delivery;
use crate::engine::executor::Executor;
use crate::engine::secrets::SecretSource;
use crate::engine::timers::Timers;
use crate::http::{HttpState, router};
use crate::shutdown::Shutdown;
use crate::slack::client::{DEFAULT_API_URL, SlackApi};
use crate::slack::directory::Directory;
use crate::slack::signature::{Secret, SignatureVerifier};
use crate::statuspage::{Provider, StatusPage};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use tokio::sync::Notify;

/// What `serve` needs from the environment. Each secret may also come from `<NAME>_FILE`.
pub struct Settings {
    pub signing_secrets: Vec<Secret>,
    pub bot_token: Secret,
    pub slack_api_url: String,
    pub store: StoreLocation,
    /// Bearer token for `/api/v1`; the API is off without one.
    pub api_token: Option<Secret>,
    /// The app-level token (`xapp-…`) for Socket Mode; without one Slack must reach rollbot's
    /// HTTPS endpoints.
    pub app_token: Option<Secret>,
}

/// `SLACK_APP_TOKEN`, when set: it must be an app-level token, which is what opens sockets.
fn app_token_from_env() -> Result<Option<Secret>> {
    let Some(token) = env_or_file("SLACK_APP_TOKEN")?.map(|t| t.trim().to_owned()) else {
        return Ok(None);
    };
    if token.is_empty() {
        return Ok(None);
    }
    if !token.starts_with("xapp-") {
        bail!(
            "SLACK_APP_TOKEN is not an app-level token (they start with xapp-). Create one with the \
             connections:write scope under Basic Information → App-Level Tokens, or unset \
             SLACK_APP_TOKEN to receive Slack's requests over HTTPS."
        );
    }
    Ok(Some(Secret::new(token)))
}

/// Reads `NAME`, or the file named by `NAME_FILE` (for mounted secrets).
pub fn env_or_file(name: &str) -> Result<Option<String>> {
    if let Ok(value) = std::env::var(name) {
        return Ok(Some(value));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var(&file_var) {
        Ok(path) => {
            let value = std::fs::read_to_string(&path).with_context(|| format!("reading {file_var} ({path})"))?;
            Ok(Some(value.trim().to_owned()))
        }
        Err(_) => Ok(None),
    }
}

fn required(name: &str, what: &str) -> Result<String> {
    match env_or_file(name)? {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => bail!("{name} is not set: {what}. Set {name} or {name}_FILE."),
    }
}

/// Where rollbot keeps its state: PostgreSQL when `DATABASE_URL` is set (several replicas may
/// share it), otherwise the embedded file `rollbot.db` in the data directory (one process).
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Postgres(String),
    Embedded(std::path::PathBuf),
}

impl StoreLocation {
    /// `data_dir`: `--data-dir` / `ROLLBOT_DATA_DIR`, the current directory when absent.
    pub fn from_env(data_dir: Option<&std::path::Path>) -> Result<StoreLocation> {
        Ok(
            match env_or_file("DATABASE_URL")?.filter(|url| !url.trim().is_empty()) {
                Some(url) => StoreLocation::Postgres(url.trim().to_owned()),
                None => StoreLocation::Embedded(
                    data_dir
                        .unwrap_or(std::path::Path::new("."))
                        .join(crate::store::embedded::FILE_NAME),
                ),
            },
        )
    }

    /// Reaches the store, migrations not applied yet.
    pub async fn connect(&self) -> Result<Store> {
        match self {
            StoreLocation::Postgres(url) => Store::connect(url).await,
            StoreLocation::Embedded(path) => Store::open_embedded(path),
        }
    }

    /// Reaches the store and applies its migrations.
    pub async fn open(&self) -> Result<Store> {
        let store = self.connect().await?;
        store.migrate().await.context("applying migrations")?;
        Ok(store)
    }

    /// For the log line at start: never the URL, which may hold a password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Postgres(_) => "PostgreSQL (DATABASE_URL)".to_owned(),
            StoreLocation::Embedded(path) => format!("the embedded store {}", path.display()),
        }
    }
}

impl Settings {
    pub fn from_env(data_dir: Option<&std::path::Path>) -> Result<Settings> {
        let signing = required(
            "SLACK_SIGNING_SECRET",
            "it is the app's Signing Secret (Basic Information page); several, comma-separated, during a rotation",
        )?;
        Ok(Settings {
            signing_secrets: signing
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect(),
            bot_token: Secret::new(required(
                "SLACK_BOT_TOKEN",
                "it is the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
            )?),
            slack_api_url: std::env::var("SLACK_API_URL").unwrap_or_else(|_| DEFAULT_API_URL.to_owned()),
            store: StoreLocation::from_env(data_dir)?,
            api_token: env_or_file("ROLLBOT_API_TOKEN")?
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            app_token: app_token_from_env()?,
        })
    }
}

/// The status page client the configuration asks for, with its secret from the environment.
pub fn status_page_from_env(config: &Config) -> Result<Option<StatusPage>> {
    let Some(page) = &config.status_page else {
        return Ok(None);
    };
    let secret = Secret::new(required(
        &page.secret_env,
        "it is the status page's API key or webhook signing secret ([statuspage] secret_env)",
    )?);
    let provider = match &page.kind {
        StatusPageKind::Atlassian { api_url, page_id } => Provider::Atlassian {
            api_url: api_url.clone(),
            page_id: page_id.clone(),
            api_key: secret,
        },
        StatusPageKind::Webhook { url } => Provider::Webhook {
            url: url.clone(),
            secret,
        },
    };
    Ok(Some(StatusPage::new(provider)?))
}

/// PagerDuty's REST API with its key from the environment, when a role reads who is on call
/// from it (then the key is required).
pub fn pagerduty_from_env(config: &Config) -> Result<Option<crate::pagerduty::PagerDuty>> {
    let Some(pager) = config.pagerduty.as_ref().filter(|p| p.reads_on_call) else {
        return Ok(None);
    };
    let token = Secret::new(required(
        &pager.token_env,
        "it is a PagerDuty REST API key (read-only is enough), for roles read from PagerDuty ([pagerduty] token_env)",
    )?);
    Ok(Some(crate::pagerduty::PagerDuty::new(&pager.api_url, token)?))
}

/// PagerDuty's Events API with the integration key from the environment, when change events
/// are configured (then the key is required).
pub fn change_events_from_env(config: &Config) -> Result<Option<crate::pagerduty::ChangeEvents>> {
    let Some(events) = config.pagerduty.as_ref().and_then(|p| p.change_events.as_ref()) else {
        return Ok(None);
    };
    let key = Secret::new(required(
        &events.routing_key_env,
        "it is the integration key (routing key) of a PagerDuty service's Events API v2 integration ([pagerduty] routing_key_env)",
    )?);
    Ok(Some(crate::pagerduty::ChangeEvents::new(&events.url, key)?))
}

/// A running rollbot's parts. Tests build one and drive the workers with `run_once`.
/// The Alertmanager hook's bearer token, when `[alertmanager]` is configured (then required).
pub fn alertmanager_token_from_env(config: &Config) -> Result<Option<Secret>> {
    let Some(settings) = &config.alertmanager else {
        return Ok(None);
    };
    Ok(Some(Secret::new(required(
        &settings.token_env,
        "it is the bearer token Alertmanager presents (http_config.authorization.credentials; [alertmanager] token_env)",
    )?)))
}

pub struct App {
    pub engine: Arc<Engine>,
    pub executor: Arc<Executor>,
    pub delivery: Arc<Delivery>,
    pub timers: Arc<Timers>,
    pub router: axum::Router,
    /// What Slack's requests are answered with, over HTTP or Socket Mode.
    pub edge: Arc<HttpState>,
    /// Set when `SLACK_APP_TOKEN` is: Slack's requests also arrive over Socket Mode.
    pub socket_mode: Option<Arc<crate::http::socket_mode::SocketMode>>,
    /// The HTTP server's deadlines and connection cap.
    pub limits: crate::http::server::Limits,
}

/// What a rollbot process is made of: its configuration, where it keeps its state, whose
/// clock it reads and how it reaches the outside.
pub struct Parts {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub verifier: SignatureVerifier,
    pub slack: SlackApi,
    pub tokens: crate::http::BearerTokens,
    pub status_page: Option<StatusPage>,
    /// Who is on call, for roles that read it from PagerDuty.
    pub pagerduty: Option<crate::pagerduty::PagerDuty>,
    /// Where each rollback's start and end go as PagerDuty change events.
    pub change_events: Option<crate::pagerduty::ChangeEvents>,
    /// Where `${env:…}` references in steps are read from.
    pub step_secrets: SecretSource,
    /// What requests and approvals are sealed with (derived from the signing secrets).
    pub seal_key: crate::domain::seal::SealKey,
}

impl App {
    pub fn new(parts: Parts) -> App {
        let Parts {
            config,
            store,
            clock,
            verifier,
            slack,
            tokens,
            status_page,
            pagerduty,
            change_events,
            step_secrets,
            seal_key,
        } = parts;
        let metrics = Arc::new(crate::metrics::Live::default());
        let slack = slack.reporting_to(metrics.clone());
        let engine = Arc::new(Engine {
            store,
            config: Arc::new(config),
            clock,
            outbox_ready: Arc::new(Notify::new()),
            run_ready: Arc::new(Notify::new()),
            ready_here: Default::default(),
            secrets: step_secrets,
            metrics: metrics.clone(),
            seal: seal_key,
            status_page,
        });
        let slack = Arc::new(slack);
        let directory = Arc::new(Directory::new(
            engine.config.roles.clone(),
            slack.clone(),
            pagerduty.map(Arc::new),
            engine.clock.clone(),
            engine.config.group_cache,
        ));
        let edge = Arc::new(HttpState {
            engine: engine.clone(),
            verifier,
            directory,
            slack: slack.clone(),
            tokens,
            live: metrics,
            figures: Default::default(),
        });
        App {
            executor: Arc::new(Executor::new(engine.clone())),
            delivery: Arc::new(Delivery::new(engine.clone(), slack).with_change_events(change_events)),
            timers: Arc::new(Timers::new(engine.clone())),
            router: router(edge.clone()),
            edge,
            socket_mode: None,
            engine,
            limits: Default::default(),
        }
    }

    /// Also receives Slack's requests over Socket Mode, with the app-level token `app_token`.
    pub fn with_socket_mode(mut self, app_token: Secret) -> App {
        self.socket_mode = Some(Arc::new(crate::http::socket_mode::SocketMode::new(
            self.edge.clone(),
            app_token,
        )));
        self
    }

    /// Supervises `command` steps with `program`, a rollbot binary, where this process's own
    /// executable is not one (the test harness).
    pub fn with_step_supervisor(mut self, program: std::path::PathBuf) -> App {
        self.executor = Arc::new(Executor::new(self.engine.clone()).supervised_by(program));
        self
    }

    /// Serves HTTP and runs the workers until `shutdown` fires; in-flight requests finish first.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: Shutdown) -> Result<()> {
        let executor = tokio::spawn(self.executor.clone().run_forever(shutdown.clone()));
        let delivery = tokio::spawn(self.delivery.clone().run_forever(shutdown.clone()));
        let timers = tokio::spawn(self.timers.clone().run_forever(shutdown.clone()));
        let socket_mode = self
            .socket_mode
            .clone()
            .map(|socket| tokio::spawn(socket.run_forever(shutdown.clone())));
        let server = crate::http::server::serve(listener, self.router, shutdown.clone(), self.limits);
        let result = server.await.context("the HTTP server stopped");
        let _ = tokio::join!(executor, delivery, timers);
        if let Some(socket_mode) = socket_mode {
            let _ = socket_mode.await;
        }
        // The executor may have just recorded interruptions: tell the channel before leaving.
        // Whatever is left stays in the outbox for the next process.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.delivery.flush()).await;
        result
    }
}
