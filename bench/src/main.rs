//! rollbot's load benchmark (docs/performance.md). `bash bench/run` builds and runs it.
//!
//! It starts rollbot as its own process with a fresh PostgreSQL database and a fake Slack on
//! loopback, and a reference server (axum + the same HMAC check + a fixed JSON answer) as the
//! machine's lower bound; it signs every request itself with a fresh timestamp, and reports
//! latency, throughput, errors, CPU and memory per scenario, as a table and as JSON.
mod channel;
mod client;
mod load;
mod proc_stats;
mod servers;

use anyhow::{Context, Result, bail};
use load::{Outcome, Request, Shape};
use proc_stats::{CpuTimes, postgres_cpu, process_cpu, rss_kib};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const SECRET: &str = "bench-signing-secret";
const TEAM: &str = "T0BENCH";
const CHANNEL: &str = "C0BENCH";
const APPROVER: &str = "U0APPROVER";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.get(1).map(String::as_str) {
        // The runbook step stands for the user's own program: it starts no runtime, so its
        // cost (counted with rollbot's children) stays what any small process costs.
        Some("step-started") => servers::report_step_started(&args[2], &args[3]),
        Some("reference-server") => runtime()?.block_on(servers::reference_server(SECRET.to_owned())),
        _ => {
            let quick = args.iter().any(|a| a == "--quick");
            let out = option("--out").unwrap_or_else(|| "bench/results/latest.json".to_owned());
            let only = Scenarios::parse(option("--only").as_deref())?;
            runtime()?.block_on(run(quick, only, &out))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Which scenarios a run measures (`--only help,create`); all by default. `approve` clicks on
/// the rollbacks `create` made, so it measures nothing without it.
#[derive(Debug, Clone, Copy)]
struct Scenarios {
    help: bool,
    forged: bool,
    create: bool,
    approve: bool,
    steps: bool,
    channel: bool,
}

impl Scenarios {
    fn parse(only: Option<&str>) -> Result<Scenarios> {
        let Some(only) = only else {
            return Ok(Scenarios {
                help: true,
                forged: true,
                create: true,
                approve: true,
                steps: true,
                channel: true,
            });
        };
        let names: Vec<&str> = only.split(',').map(str::trim).collect();
        for name in &names {
            if !["help", "forged", "create", "approve", "steps", "channel"].contains(name) {
                bail!(
                    "--only takes help, forged, create, approve, steps and channel, separated by commas; not {name:?}"
                );
            }
        }
        let has = |n: &str| names.contains(&n);
        Ok(Scenarios {
            help: has("help"),
            forged: has("forged"),
            create: has("create"),
            approve: has("approve"),
            steps: has("steps"),
            channel: has("channel"),
        })
    }
}

/// How many requests each kind of run sends.
struct Sizes {
    closed: usize,
    rate: u32,
    at_rate: usize,
    steps_closed: usize,
    steps_at_rate: usize,
}

async fn run(quick: bool, only: Scenarios, out: &str) -> Result<()> {
    let sizes = if quick {
        Sizes {
            closed: 2_000,
            rate: 200,
            at_rate: 400,
            steps_closed: 200,
            steps_at_rate: 200,
        }
    } else {
        Sizes {
            closed: 20_000,
            rate: 200,
            at_rate: 2_000,
            steps_closed: 2_000,
            steps_at_rate: 1_000,
        }
    };
    let me = std::env::current_exe()?;
    let rollbot_bin = me.with_file_name("rollbot");
    if !rollbot_bin.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release --bin rollbot` (bench/run does)",
            rollbot_bin.display()
        );
    }
    let work = std::env::temp_dir().join(format!("rollbot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    // The step reports its start over UDP; the benchmark notes when each target's step began.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let udp_port = udp.local_addr()?.port();
    let started: Arc<load::Started> = Arc::default();
    {
        let started = started.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 64];
            while let Ok(n) = udp.recv(&mut buffer).await {
                started.note(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
        });
    }

    let postgres =
        std::env::var("ROLLBOT_BENCH_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let database = format!("rollbot_bench_{}", std::process::id());
    let admin = admin_connection(&postgres).await?;
    admin.batch_execute(&format!("CREATE DATABASE {database}")).await?;
    let database_url = format!("{postgres}/{database}");
    let config = work.join("rollbot.toml");
    std::fs::write(&config, bench_config(&me.display().to_string(), udp_port))?;
    let (slack_url, slack_log) = servers::fake_slack().await?;

    let result = measure(
        &sizes,
        &rollbot_bin,
        &me,
        &config,
        &database_url,
        &slack_url,
        &slack_log,
        &started,
        only,
    )
    .await;
    // Dropped whatever happened, with its connections.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await?;
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    println!("\nwritten to {out}");
    Ok(())
}

async fn admin_connection(postgres: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&format!("{postgres}/postgres"), tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {postgres}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Severity high takes two approvals, so one approval click is a decision and a write and
/// nothing runs; medium takes one, so its approval starts the run whose step reports back.
fn bench_config(bench_exe: &str, udp_port: u16) -> String {
    let quick_steps: String = (1..=channel::STEPS)
        .map(|n| format!("[[runbooks.quick.steps]]\nname = \"Step {n}\"\nrun = [\"true\"]\n"))
        .collect();
    format!(
        r#"
[slack]
workspace = "{TEAM}"
channels = ["{CHANNEL}"]
anyone_may_request = true

[roles]
on_call = ["{APPROVER}", "U0APPROVER2"]

[severity.critical]
approvals = 0

[severity.high]
approvals = 2
approvers = ["on_call"]
respond_within = "15m"

[severity.medium]
approvals = 1
approvers = ["on_call"]

[severity.low]
approvals = 1
approvers = ["on_call"]

[runbooks.report]
description = "Tells the benchmark its step started"
params.target = {{ pattern = "[0-9]+" }}

[[runbooks.report.steps]]
name = "Report"
run = ["{bench_exe}", "step-started", "{udp_port}", "{{{{ params.target }}}}"]
timeout = "30s"

# Every request here is for one service; the benchmark measures filing distinct requests, so the
# service lets them stand side by side (a real service holds one open rollback at a time).
[services.checkout-api]
runbooks = ["report"]
lock = false

[runbooks.quick]
description = "Twenty instant steps: what the channel shows of a fast runbook"
{quick_steps}
[services.quick-api]
runbooks = ["quick"]
lock = false
"#
    )
}

/// A `/rollback` slash command from `user`, signed now.
fn slash(user: &str, text: &str) -> Request {
    let body = format!(
        "token=x&team_id={TEAM}&team_domain=bench&channel_id={CHANNEL}&channel_name=incident&user_id={user}&user_name={user}&command=%2Frollback&text={}&api_app_id=A0BENCH&is_enterprise_install=false&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fhook&trigger_id=1.2.3",
        form_escape(text)
    );
    Request::signed("/slack/commands", body.into_bytes())
}

/// `user` clicks Approve on rollback `id`'s card, as Slack posts it.
fn approve_click(user: &str, id: &str) -> Request {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "bench"},
        "user": {"id": user, "username": user, "name": user, "team_id": TEAM},
        "api_app_id": "A0BENCH",
        "token": "x",
        "container": {"type": "message", "message_ts": "1790000000.000001", "channel_id": CHANNEL, "is_ephemeral": false},
        "trigger_id": "1.2.3",
        "channel": {"id": CHANNEL, "name": "incident"},
        "message": {"type": "message", "ts": "1790000000.000001", "text": ""},
        "response_url": "http://127.0.0.1:9/hook",
        "actions": [{"type": "button", "action_id": "approve", "block_id": format!("rollback:{id}"), "value": id, "action_ts": "1790000001.000000"}],
    });
    let body = format!("payload={}", form_escape(&payload.to_string()));
    Request::signed("/slack/interactions", body.into_bytes())
}

fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The RB number in an acknowledgement ("Recorded *RB-12*: …").
fn rollback_id(answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let start = text.find("RB-")?;
    let digits: String = text[start + 3..].chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("RB-{digits}"))
}

struct Server {
    child: tokio::process::Child,
    address: String,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Ends the process and waits until it is gone, so the next one starts on a quiet machine.
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// How many times rollbot is started to measure its start-up.
const STARTS: usize = 5;

async fn start_rollbot(
    bin: &std::path::Path,
    config: &std::path::Path,
    database_url: &str,
    slack_url: &str,
) -> Result<(Server, Duration)> {
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    let began = Instant::now();
    let child = tokio::process::Command::new(bin)
        .args(["serve", "--listen", &address])
        .env("ROLLBOT_CONFIG", config)
        .env("DATABASE_URL", database_url)
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        .env("SLACK_API_URL", slack_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting rollbot")?;
    loop {
        if let Ok(mut connection) = client::Connection::open(&address).await {
            if let Ok((200, _)) = connection.send("GET", "/healthz", &[], b"").await {
                break;
            }
        }
        if began.elapsed() > Duration::from_secs(10) {
            bail!("rollbot did not answer /healthz within 10 s");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Ok((Server { child, address }, began.elapsed()))
}

async fn start_reference(me: &std::path::Path) -> Result<Server> {
    let mut child = tokio::process::Command::new(me)
        .arg("reference-server")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("reference stdout")?).lines();
    let address = lines
        .next_line()
        .await?
        .context("the reference server printed no address")?;
    Ok(Server { child, address })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One measured run, with the CPU the server (and PostgreSQL) spent on it.
struct Measured {
    outcome: Outcome,
    server_cpu: CpuTimes,
    postgres_cpu: CpuTimes,
    peak_rss_kib: u64,
}

async fn measured(server: &Server, with_postgres: bool, work: impl std::future::Future<Output = Outcome>) -> Measured {
    let before = process_cpu(server.pid());
    let pg_before = if with_postgres { postgres_cpu() } else { HashMap::new() };
    let outcome = work.await;
    let server_cpu = process_cpu(server.pid()).since(&before);
    let postgres_cpu = if with_postgres {
        proc_stats::since_all(&postgres_cpu(), &pg_before)
    } else {
        CpuTimes::default()
    };
    Measured {
        outcome,
        server_cpu,
        postgres_cpu,
        peak_rss_kib: rss_kib(server.pid(), "VmHWM:"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    sizes: &Sizes,
    rollbot_bin: &std::path::Path,
    me: &std::path::Path,
    config: &std::path::Path,
    database_url: &str,
    slack_url: &str,
    slack_log: &servers::SlackLog,
    started: &Arc<load::Started>,
    only: Scenarios,
) -> Result<Value> {
    // Migrations first, so start-up measures serving, not schema changes.
    let migrated = std::process::Command::new(rollbot_bin)
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .env("ROLLBOT_CONFIG", config)
        .output()?;
    if !migrated.status.success() {
        bail!("rollbot migrate failed: {}", String::from_utf8_lossy(&migrated.stderr));
    }
    // One start is one sample of a noisy moment; the median of a few says what a restart costs.
    let mut starts = vec![];
    for _ in 1..STARTS {
        let (server, took) = start_rollbot(rollbot_bin, config, database_url, slack_url).await?;
        starts.push(took);
        server.stop().await;
    }
    let (rollbot, took) = start_rollbot(rollbot_bin, config, database_url, slack_url).await?;
    starts.push(took);
    starts.sort();
    let start_to_first_200 = starts[starts.len() / 2];
    let slowest_start = starts[starts.len() - 1];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = rss_kib(rollbot.pid(), "VmRSS:");
    let reference = start_reference(me).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reference_idle_rss_kib = rss_kib(reference.pid(), "VmRSS:");
    println!(
        "rollbot: start to first 200 {:.1} ms (median of {STARTS}, slowest {:.1} ms), idle RSS {:.1} MiB (reference {:.1} MiB)",
        start_to_first_200.as_secs_f64() * 1e3,
        slowest_start.as_secs_f64() * 1e3,
        idle_rss_kib as f64 / 1024.0,
        reference_idle_rss_kib as f64 / 1024.0
    );

    let shapes = [Shape::Connections(32), Shape::Connections(256), Shape::Rate(sizes.rate)];
    let when = |on: bool| if on { &shapes[..] } else { &shapes[..0] };
    let count = |shape: &Shape| match shape {
        Shape::Rate(_) => sizes.at_rate,
        Shape::Connections(_) => sizes.closed,
    };
    let mut rows: Vec<Value> = vec![];
    let mut reference_rows: HashMap<String, (f64, f64)> = HashMap::new();
    let record = |scenario: &str, server: &str, shape: &Shape, m: Measured, rows: &mut Vec<Value>| {
        let o = &m.outcome;
        let per_1000 = |cpu: &CpuTimes| cpu.millis() / o.requests.max(1) as f64 * 1000.0;
        let row = json!({
            "scenario": scenario,
            "server": server,
            "load": shape.label(),
            "requests": o.requests,
            "errors": o.errors,
            "seconds": o.elapsed.as_secs_f64(),
            "throughput_per_s": o.throughput(),
            "p50_ms": o.percentile_ms(50.0),
            "p99_ms": o.percentile_ms(99.0),
            "max_ms": o.percentile_ms(100.0),
            "server_cpu_ms_per_1000": per_1000(&m.server_cpu),
            "postgres_cpu_ms_per_1000": per_1000(&m.postgres_cpu),
            "peak_rss_mib": m.peak_rss_kib as f64 / 1024.0,
        });
        rows.push(row);
    };

    // 1. The read-only path, on the reference and on rollbot; and forged signatures.
    for shape in when(only.help) {
        let n = count(shape);
        let help = Arc::new(|_: usize| slash("U0HELP", "help"));
        let m = measured(
            &reference,
            false,
            load::drive(&reference.address, shape, n, help.clone(), 200, None),
        )
        .await;
        reference_rows.insert(shape.label(), (m.outcome.throughput(), m.outcome.percentile_ms(99.0)));
        record("help", "reference", shape, m, &mut rows);
        let m = measured(&rollbot, true, load::drive(&rollbot.address, shape, n, help, 200, None)).await;
        record("help", "rollbot", shape, m, &mut rows);
    }
    for shape in when(only.forged).iter().take(2) {
        let forged = Arc::new(|_: usize| slash("U0MALLORY", "help").forged());
        let m = measured(
            &reference,
            false,
            load::drive(&reference.address, shape, sizes.closed, forged.clone(), 401, None),
        )
        .await;
        record("forged signature", "reference", shape, m, &mut rows);
        let m = measured(
            &rollbot,
            true,
            load::drive(&rollbot.address, shape, sizes.closed, forged, 401, None),
        )
        .await;
        record("forged signature", "rollbot", shape, m, &mut rows);
    }

    // 2. Durable request creation: each by a different person (the per-person limit is 5).
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut next_target = 0usize;
    for shape in when(only.create) {
        let n = count(shape);
        let base = next_target;
        next_target += n;
        let create = Arc::new(move |i: usize| {
            slash(
                &format!("UC{}", base + i),
                &format!("checkout-api to {} severity high", base + i),
            )
        });
        let ids = created.clone();
        let keep: load::OnAnswer = Arc::new(move |_, answer: &[u8]| {
            if let Some(id) = rollback_id(answer) {
                ids.lock().unwrap().push(id);
            }
        });
        let m = measured(
            &rollbot,
            true,
            load::drive(&rollbot.address, shape, n, create, 200, Some(keep)),
        )
        .await;
        record("create rollback", "rollbot", shape, m, &mut rows);
    }

    // 3. One approval (of the two high needs) on distinct pending rollbacks: decision + write.
    let pending: Vec<String> = created.lock().unwrap().clone();
    let mut offset = 0usize;
    for shape in when(only.approve) {
        let n = count(shape).min(pending.len().saturating_sub(offset));
        let ids: Arc<Vec<String>> = Arc::new(pending[offset..offset + n].to_vec());
        offset += n;
        let click = Arc::new(move |i: usize| approve_click(APPROVER, &ids[i]));
        let m = measured(
            &rollbot,
            true,
            load::drive(&rollbot.address, shape, n, click, 200, None),
        )
        .await;
        record("approve (decision + write)", "rollbot", shape, m, &mut rows);
    }

    // 4. Approval click → the first step's process started, on medium rollbacks (one approval).
    for shape in when(only.steps) {
        let n = match shape {
            Shape::Rate(_) => sizes.steps_at_rate,
            Shape::Connections(_) => sizes.steps_closed,
        };
        let mut medium: Vec<(String, String)> = vec![];
        for i in 0..n {
            let target = format!("{}", 1_000_000 + next_target + i);
            let mut connection = client::Connection::open(&rollbot.address).await?;
            let request = slash(
                &format!("UM{}", next_target + i),
                &format!("checkout-api to {target} severity medium"),
            );
            let (_, answer) = request.send(&mut connection).await?;
            medium.push((
                rollback_id(&answer).context("a medium request was not recorded")?,
                target,
            ));
        }
        next_target += n;
        let medium = Arc::new(medium);
        let clicks = medium.clone();
        let click = Arc::new(move |i: usize| approve_click(APPROVER, &clicks[i].0));
        let m = measured(
            &rollbot,
            true,
            load::drive_until_started(&rollbot.address, shape, n, click, medium.clone(), started.clone()),
        )
        .await;
        record("approve → first step started", "rollbot", shape, m, &mut rows);
    }

    // Ratios to the reference's read-only path under the same load.
    for row in &mut rows {
        if let Some((throughput, p99)) = reference_rows.get(row["load"].as_str().unwrap_or_default()) {
            let ratio_throughput = row["throughput_per_s"].as_f64().unwrap_or(0.0) / throughput.max(f64::MIN_POSITIVE);
            let ratio_p99 = row["p99_ms"].as_f64().unwrap_or(0.0) / p99.max(f64::MIN_POSITIVE);
            row["throughput_vs_reference"] = json!(ratio_throughput);
            row["p99_vs_reference"] = json!(ratio_p99);
        }
    }
    print_table(&rows);
    // How current the channel is, within Slack's limits: one rollback, then ten at once.
    let mut channel_rows = vec![];
    if only.channel {
        // (a) one rollback, (b) ten at once, (c) one through a minute of 503s.
        for (concurrent, outage) in [(1, None), (10, None), (1, Some(channel::OUTAGE))] {
            channel_rows.push(channel::freshness(&rollbot.address, database_url, slack_log, concurrent, outage).await?);
        }
    }
    drop(rollbot);
    drop(reference);
    Ok(json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "start_to_first_200_ms": start_to_first_200.as_secs_f64() * 1e3,
        "slowest_start_to_first_200_ms": slowest_start.as_secs_f64() * 1e3,
        "starts_measured": STARTS,
        "idle_rss_mib": idle_rss_kib as f64 / 1024.0,
        "reference_idle_rss_mib": reference_idle_rss_kib as f64 / 1024.0,
        "runs": rows,
        "channel": channel_rows,
    }))
}

fn print_table(rows: &[Value]) {
    println!(
        "\n{:<30} {:<9} {:<8} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "scenario",
        "server",
        "load",
        "reqs",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "cpu/1k",
        "pg/1k",
        "rss MiB",
        "×ref/s",
        "×ref99"
    );
    for r in rows {
        let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
        // A ratio needs the reference's run of the same load (`--only` may leave it out).
        let ratio = |key: &str| r[key].as_f64().map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        println!(
            "{:<30} {:<9} {:<8} {:>7} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>8.1} {:>7.1} {:>7} {:>7}",
            r["scenario"].as_str().unwrap_or_default(),
            r["server"].as_str().unwrap_or_default(),
            r["load"].as_str().unwrap_or_default(),
            r["requests"],
            r["errors"],
            f("throughput_per_s"),
            f("p50_ms"),
            f("p99_ms"),
            f("max_ms"),
            f("server_cpu_ms_per_1000"),
            f("postgres_cpu_ms_per_1000"),
            f("peak_rss_mib"),
            ratio("throughput_vs_reference"),
            ratio("p99_vs_reference"),
        );
    }
}
