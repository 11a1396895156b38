//! How current the channel is (issue 27): from the moment rollbacks of 20 instant steps end to
//! the last Slack call about them, the Slack calls per step, and the 429s provoked, against the
//! fake Slack's model of Slack's published limits.
use crate::client;
use crate::servers::SlackLog;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Steps of the benchmark's `quick` runbook.
pub const STEPS: usize = 20;
/// The channel is taken as caught up once Slack has heard nothing for this long.
const QUIET: Duration = Duration::from_secs(5);
const GIVE_UP: Duration = Duration::from_secs(900);

/// Files `concurrent` critical rollbacks of the quick runbook at once and measures the channel.
pub async fn freshness(address: &str, database_url: &str, log: &SlackLog, concurrent: usize) -> Result<Value> {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    log.clear();
    log.limits_on.store(true, Ordering::Relaxed);
    let requested = Instant::now();
    let mut ids = vec![];
    for n in 0..concurrent {
        let mut connection = client::Connection::open(address).await?;
        let request = crate::slash(
            &format!("UQ{n}"),
            &format!("quick-api severity critical reason \"bench {n}\""),
        );
        let (_, answer) = request.send(&mut connection).await?;
        let id = crate::rollback_id(&answer)
            .with_context(|| format!("a quick request was not recorded: {}", String::from_utf8_lossy(&answer)))?;
        ids.push(id.trim_start_matches("RB-").parse::<i64>()?);
    }
    let ended = loop {
        let rows = db
            .query("SELECT state FROM rollbacks WHERE id = ANY($1)", &[&ids])
            .await?;
        let states: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if states.len() == ids.len() && states.iter().all(|s| s == "succeeded") {
            break Instant::now();
        }
        if let Some(other) = states
            .iter()
            .find(|s| !["queued", "running", "succeeded"].contains(&s.as_str()))
        {
            bail!("a quick rollback ended {other}");
        }
        if requested.elapsed() > GIVE_UP {
            bail!("the quick rollbacks did not finish: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let last_call = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last = log.calls().last().map(|(at, _, _)| *at).unwrap_or(ended);
        if last.elapsed() >= QUIET {
            break last;
        }
        if requested.elapsed() > GIVE_UP {
            bail!("Slack kept being called for {GIVE_UP:?}");
        }
    };
    log.limits_on.store(false, Ordering::Relaxed);
    let calls = log.calls();
    let count = |method: &str| calls.iter().filter(|(_, m, _)| m == method).count();
    let complete = calls
        .iter()
        .filter(|(_, m, t)| m == "chat.postMessage" && t.contains("ROLLBACK COMPLETE"))
        .count();
    let steps = (STEPS * concurrent) as f64;
    let posts = count("chat.postMessage");
    let row = json!({
        "rollbacks": concurrent,
        "steps_each": STEPS,
        "run_seconds": ended.duration_since(requested).as_secs_f64(),
        "staleness_seconds": last_call.saturating_duration_since(ended).as_secs_f64(),
        "posts": posts,
        "updates": count("chat.update"),
        "posts_per_step": posts as f64 / steps,
        "slack_calls_per_step": calls.len() as f64 / steps,
        "rate_limited": log.rate_limited.load(Ordering::Relaxed),
        "complete_announcements": complete,
    });
    println!(
        "channel, {concurrent} rollback(s) of {STEPS} instant steps: runs in {:.1} s; the channel is {:.1} s behind at the end; {posts} posts ({:.2} per step), {} updates, {} rate-limited calls",
        row["run_seconds"].as_f64().unwrap_or(0.0),
        row["staleness_seconds"].as_f64().unwrap_or(0.0),
        row["posts_per_step"].as_f64().unwrap_or(0.0),
        row["updates"],
        row["rate_limited"]
    );
    Ok(row)
}
