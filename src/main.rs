use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rollbot::app::{App, Settings, StoreLocation};
use rollbot::clock::SystemClock;
use rollbot::config::Config;
use rollbot::grammar::{self, Command};
use rollbot::slack::client::SlackApi;
use rollbot::slack::signature::SignatureVerifier;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

// Every request builds and drops many small values (JSON, messages, rows); glibc's allocator
// spent as much CPU on them as rollbot's own code under load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Slack chat-ops for incident rollbacks: plan, approve, run, report.
#[derive(Parser)]
#[command(name = "rollbot", version)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "ROLLBOT_CONFIG", default_value = "rollbot.toml")]
    config: PathBuf,
    /// How logs are written to stderr: `human` to read, `json` (one object per line) to ship.
    #[arg(long, global = true, env = "ROLLBOT_LOG_FORMAT", value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Where the embedded store keeps `rollbot.db` when DATABASE_URL is not set.
    #[arg(long, global = true, env = "ROLLBOT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve Slack's webhooks and run approved rollbacks.
    /// Needs SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (each also as NAME_FILE). Keeps its state in
    /// PostgreSQL when DATABASE_URL is set, otherwise in ./rollbot.db (see --data-dir).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ROLLBOT_LISTEN", default_value = "0.0.0.0:3000")]
        listen: String,
    },
    /// Try rollbot without a Slack workspace: rollbot on a scratch embedded store, a stand-in for
    /// Slack, and a local page that shows the incident channel as Slack would. Requests run as
    /// drills (nothing is executed) unless --execute is given. Without --config, and with no
    /// ./rollbot.toml, it uses a bundled demo configuration.
    Playground {
        /// Where the page listens (loopback unless you say otherwise).
        #[arg(long, default_value = "127.0.0.1:3030")]
        listen: String,
        /// Run the runbooks' steps on this machine instead of rehearsing them as drills.
        #[arg(long)]
        execute: bool,
    },
    /// Validate the configuration and print services, runbooks and the resolved policy.
    Check,
    /// Ask Slack, the store and the status page what `check` cannot see offline: the bot token
    /// works, the bot is in each channel, user groups are readable, the database answers over
    /// its TLS settings, the status page takes its key. Exit 1 when something does not work.
    /// Reads the environment `serve` reads; posts and writes nothing.
    Doctor,
    /// Print the plan a request would freeze, without requesting or running anything.
    /// Takes the words of `/rollback plan`, e.g. `rollbot plan checkout-api to 41`.
    Plan {
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Apply the store's migrations (`serve` applies them too); or, with --from and --to, copy
    /// everything from an embedded store's file into an empty PostgreSQL database.
    Migrate {
        /// The embedded store's file to copy from, e.g. ./rollbot.db (stop rollbot first).
        #[arg(long, requires = "to")]
        from: Option<PathBuf>,
        /// The PostgreSQL database to copy into, e.g. postgres://rollbot@db:5432/rollbot.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Print the Slack app manifest with rollbot's request URLs under BASE_URL, ready to paste
    /// into "Create New App → From an app manifest".
    Manifest {
        /// Where Slack reaches rollbot, e.g. https://rollbot.example.com
        #[arg(long, required_unless_present = "socket_mode", conflicts_with = "socket_mode")]
        base_url: Option<String>,
        /// The variant for Socket Mode (SLACK_APP_TOKEN): no request URLs, as rollbot dials out.
        #[arg(long)]
        socket_mode: bool,
    },
    /// Exit 0 when a rollbot listening at ADDRESS answers /healthz with 200 (for container
    /// health checks: the runtime image has no curl).
    Healthcheck {
        #[arg(long, env = "ROLLBOT_LISTEN", default_value = "127.0.0.1:3000")]
        address: String,
    },
    /// Print the post-mortem draft of a rollback as Markdown, from the store.
    Postmortem {
        /// The rollback, e.g. RB-12.
        id: String,
    },
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error(s) in {}", errors.0.len(), path.display());
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    // The step supervisor is this same binary, kept light: no runtime, no logging.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == rollbot::engine::supervisor::SUBCOMMAND)
    {
        rollbot::engine::supervisor::main(args);
    }
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("rollbot: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "rollbot=info,warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    let result = match cli.command {
        Cmd::Check => {
            return match load_config(&cli.config) {
                Ok(config) => {
                    print!("{}", rollbot::report::check(&config));
                    println!("{}: OK", cli.config.display());
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            };
        }
        Cmd::Doctor => {
            let config = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            return match doctor(&config, cli.data_dir.as_deref()).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(error) => {
                    eprintln!("rollbot: {error:#}");
                    ExitCode::from(2)
                }
            };
        }
        Cmd::Plan { words } => {
            let config = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            return plan(&config, &shell_words_as_typed(&words));
        }
        Cmd::Migrate { from, to } => match (from, to) {
            (Some(from), Some(to)) => copy_to_postgres(&from, &to).await,
            _ => migrate(cli.data_dir.as_deref()).await,
        },
        Cmd::Manifest { socket_mode: true, .. } => {
            print!("{}", rollbot::manifest::for_socket_mode());
            Ok(())
        }
        Cmd::Manifest { base_url, .. } => match rollbot::manifest::for_base_url(&base_url.unwrap_or_default()) {
            Ok(manifest) => {
                print!("{manifest}");
                Ok(())
            }
            Err(problem) => {
                eprintln!("rollbot: {problem}");
                return ExitCode::from(2);
            }
        },
        Cmd::Postmortem { id } => postmortem(&id, cli.data_dir.as_deref()).await,
        Cmd::Healthcheck { address } => match healthcheck(&address) {
            Ok(()) => Ok(()),
            Err(e) => {
                eprintln!("rollbot is not healthy at {address}: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        Cmd::Playground { listen, execute } => playground(&cli.config, &listen, execute, cli.data_dir).await,
        Cmd::Serve { listen } => {
            let config = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            serve(config, &listen, cli.data_dir.as_deref()).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollbot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The words the shell passed, as they would be typed in Slack: the shell took the quotes off
/// `tables="a b"` and `reason "bad deploy"`, so a word with a space gets them back.
fn shell_words_as_typed(words: &[String]) -> String {
    let quoted = |word: &String| {
        if !word.contains(char::is_whitespace) {
            return word.clone();
        }
        match word.split_once('=') {
            Some((name, value)) if grammar::is_param_name(&name.to_ascii_lowercase()) => format!("{name}=\"{value}\""),
            _ => format!("\"{word}\""),
        }
    };
    words.iter().map(quoted).collect::<Vec<_>>().join(" ")
}

fn plan(config: &Config, text: &str) -> ExitCode {
    let args = match grammar::parse(&format!("plan {text}")) {
        Ok(Command::Plan(args)) => args,
        Ok(_) => unreachable!("a text starting with `plan` parses as a plan"),
        Err(e) => {
            eprintln!("{}", rollbot::report::parse_error(&e));
            return ExitCode::from(2);
        }
    };
    match config.catalog.freeze(&args.ask().plan) {
        Ok(plan) => {
            print!("{}", rollbot::report::plan(&plan));
            ExitCode::SUCCESS
        }
        Err(refusal) => {
            eprintln!("{}", rollbot::report::refusal(&refusal));
            ExitCode::from(2)
        }
    }
}

/// Prints each finding; whether all is well.
async fn doctor(config: &Config, data_dir: Option<&std::path::Path>) -> Result<bool> {
    let bot_token = rollbot::app::env_or_file("SLACK_BOT_TOKEN")?
        .map(|t| rollbot::secret::Secret::new(t.trim()))
        .ok_or_else(|| anyhow::anyhow!("set SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE): doctor asks Slack with it"))?;
    let api_url = std::env::var("SLACK_API_URL").unwrap_or_else(|_| rollbot::slack::client::DEFAULT_API_URL.to_owned());
    let slack = SlackApi::new(&api_url, &bot_token)?;
    let store = StoreLocation::from_env(data_dir)?;
    let status_page = rollbot::app::status_page_from_env(config)?;
    let pagerduty = rollbot::app::pagerduty_from_env(config)?;
    let findings = rollbot::doctor::examine(
        config,
        rollbot::doctor::Reach {
            slack: &slack,
            store: &store,
            status_page: status_page.as_ref(),
            pagerduty: pagerduty.as_ref(),
        },
    )
    .await;
    let (report, healthy) = rollbot::doctor::report(&findings);
    print!("{report}");
    Ok(healthy)
}

async fn postmortem(id: &str, data_dir: Option<&std::path::Path>) -> Result<()> {
    let id: rollbot::domain::RollbackId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("`{id}` is not a rollback id; write it like RB-12"))?;
    let location = StoreLocation::from_env(data_dir)?;
    if let StoreLocation::Embedded(path) = &location {
        rollbot::store::embedded::existing_file(path)?;
    }
    let store = location.open().await.with_context(|| {
        format!("cannot read the store; while `rollbot serve` owns it, use `/rollback postmortem {id}` or the API")
    })?;
    let (rollback, history) = store
        .load_with_history(id)
        .await?
        .with_context(|| format!("there is no rollback {id}"))?;
    print!("{}", rollbot::postmortem::draft(&rollback, &history));
    Ok(())
}

async fn migrate(data_dir: Option<&std::path::Path>) -> Result<()> {
    let location = StoreLocation::from_env(data_dir)?;
    let ran = location.connect().await?.migrate().await?;
    if ran.is_empty() {
        println!("{} is up to date", location.describe());
    }
    for name in ran {
        println!("applied {name}");
    }
    Ok(())
}

/// Moves a team from the embedded file to PostgreSQL with its whole history.
async fn copy_to_postgres(from: &std::path::Path, to: &str) -> Result<()> {
    use rollbot::store::ops::Schema;
    let path = rollbot::store::embedded::existing_file(from)?;
    let source = rollbot::store::EmbeddedStore::open(&path)?;
    source.migrate().await?;
    let export = source
        .export()
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let target = rollbot::store::PostgresStore::connect(to).await?;
    target.migrate().await?;
    target.import(&export).await?;
    println!(
        "copied {} rollback(s), {} event(s), {} timer(s) and {} outbox message(s) from {} to PostgreSQL.",
        export.rollbacks.len(),
        export.events.len(),
        export.timers.len(),
        export.outbox.len(),
        path.display()
    );
    println!(
        "Start rollbot with DATABASE_URL set to that database; keep {} as a backup.",
        path.display()
    );
    Ok(())
}

/// One plain HTTP/1.0 GET with a 2 s budget; a listener on 0.0.0.0 is asked on loopback.
fn healthcheck(address: &str) -> Result<()> {
    use std::io::{Read, Write};
    let address = address.replace("0.0.0.0", "127.0.0.1");
    let target: std::net::SocketAddr = address
        .parse()
        .with_context(|| format!("`{address}` is not host:port"))?;
    let timeout = std::time::Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.take(4096).read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or_default();
    anyhow::ensure!(status.split_whitespace().nth(1) == Some("200"), "answered `{status}`");
    Ok(())
}

async fn playground(config: &std::path::Path, listen: &str, execute: bool, data_dir: Option<PathBuf>) -> Result<()> {
    let (config, source) = if config == std::path::Path::new("rollbot.toml") && !config.exists() {
        let demo = Config::parse("playground.toml", rollbot::playground::DEMO_CONFIG)
            .map_err(|errors| anyhow::anyhow!("the bundled demo configuration: {errors}"))?;
        (demo, "the bundled demo (examples/playground.toml)".to_owned())
    } else {
        match load_config(config) {
            Ok(loaded) => (loaded, config.display().to_string()),
            Err(_) => anyhow::bail!("fix {} first (the errors are above)", config.display()),
        }
    };
    let data_dir =
        data_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("rollbot-playground-{}", std::process::id())));
    let playground = rollbot::playground::Playground::start(rollbot::playground::Options {
        config,
        config_source: source.clone(),
        listen: listen.to_owned(),
        execute,
        data_dir: data_dir.clone(),
        step_supervisor: None,
    })
    .await?;
    println!("rollbot playground: open {} in a browser", playground.url);
    println!("  configuration: {source}");
    println!(
        "  store: {}",
        data_dir.join(rollbot::store::embedded::FILE_NAME).display()
    );
    println!(
        "  mode: {}",
        if execute {
            "--execute: steps run on this machine"
        } else {
            "rehearsal: every request runs as a drill, nothing is executed"
        }
    );
    println!("  Slack is a stand-in on loopback: nothing is posted anywhere. Ctrl-C stops.");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    drop(playground);
    Ok(())
}

async fn serve(config: Config, listen: &str, data_dir: Option<&std::path::Path>) -> Result<()> {
    let settings = Settings::from_env(data_dir)?;
    let alertmanager_token = rollbot::app::alertmanager_token_from_env(&config)?;
    let store = settings.store.open().await?;
    tracing::info!(store = %settings.store.describe(), "store open");
    let slack = SlackApi::new(&settings.slack_api_url, &settings.bot_token)?;
    let status_page = rollbot::app::status_page_from_env(&config)?;
    let pagerduty = rollbot::app::pagerduty_from_env(&config)?;
    let change_events = rollbot::app::change_events_from_env(&config)?;
    let seal_key = rollbot::domain::seal::SealKey::derive(settings.signing_secrets.iter().map(|s| s.expose()));
    let app = App::new(rollbot::app::Parts {
        seal_key,
        config,
        store,
        clock: Arc::new(SystemClock),
        verifier: SignatureVerifier::new(settings.signing_secrets),
        slack,
        tokens: rollbot::http::BearerTokens {
            api: settings.api_token,
            alertmanager: alertmanager_token,
        },
        status_page,
        pagerduty,
        change_events,
        step_secrets: rollbot::engine::secrets::SecretSource::Process,
    });
    let app = match settings.app_token {
        Some(app_token) => {
            tracing::info!("Socket Mode: Slack's requests also arrive over a socket rollbot opens (SLACK_APP_TOKEN)");
            app.with_socket_mode(app_token)
        }
        None => app,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "rollbot is listening");
    let (trigger, shutdown) = rollbot::shutdown::channel();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        trigger.fire();
    });
    app.serve(listener, shutdown).await
}
