//! How current the channel is (issue 27): from the moment rollbacks of 20 instant steps end to
//! the last Slack call about them, the Slack calls per step, and the 429s provoked, against the
//! fake Slack's model of Slack's published limits; and how soon the channel catches up after
//! a minute in which Slack answered every call with 503.
use crate::client;
use crate::servers::{Call, SlackLog};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Steps of the benchmark's `quick` runbook.
pub const STEPS: usize = 20;
/// The channel is taken as caught up once Slack has heard nothing for this long.
const QUIET: Duration = Duration::from_secs(5);
/// After an outage: longer than a failed message's longest wait between tries.
const QUIET_AFTER_OUTAGE: Duration = Duration::from_secs(15);
const GIVE_UP: Duration = Duration::from_secs(900);
/// Scenario (c): how long Slack is down, from the moment the first card is posted.
pub const OUTAGE: Duration = Duration::from_secs(60);

/// Files `concurrent` critical rollbacks of the quick runbook at once and measures the channel;
/// with `outage`, Slack is down for that long from the first card on (the runs happen in it).
pub async fn freshness(
    address: &str,
    database_url: &str,
    log: &SlackLog,
    concurrent: usize,
    outage: Option<Duration>,
) -> Result<Value> {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    log.clear();
    log.limits_on.store(true, Ordering::Relaxed);
    if let Some(length) = outage {
        log.outage_after(1, length);
    }
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
        let recovered = log.outage_ends();
        let down = recovered.is_some_and(|until| Instant::now() < until);
        let last = log.calls().last().map(|c| c.at).unwrap_or(ended);
        // After an outage, quiet counts from Slack's recovery too: the first retry may come a
        // few seconds after it.
        let quiet_since = recovered.map_or(last, |r| last.max(r));
        let quiet = if recovered.is_some() { QUIET_AFTER_OUTAGE } else { QUIET };
        if !down && quiet_since.elapsed() >= quiet {
            break last;
        }
        if requested.elapsed() > GIVE_UP {
            bail!("Slack kept being called for {GIVE_UP:?}");
        }
    };
    log.limits_on.store(false, Ordering::Relaxed);
    let calls = log.calls();
    let count = |method: &str| calls.iter().filter(|c| c.method == method).count();
    let steps = (STEPS * concurrent) as f64;
    let posts = count("chat.postMessage");
    let threads = read_threads(&calls);
    let mut row = json!({
        "rollbacks": concurrent,
        "steps_each": STEPS,
        "run_seconds": ended.duration_since(requested).as_secs_f64(),
        "staleness_seconds": last_call.saturating_duration_since(ended).as_secs_f64(),
        "posts": posts,
        "updates": count("chat.update"),
        "posts_per_step": posts as f64 / steps,
        "slack_calls_per_step": calls.len() as f64 / steps,
        "rate_limited": log.rate_limited.load(Ordering::Relaxed),
        "rate_limited_calls": log
            .refused()
            .iter()
            .map(|(at, method)| format!("{method} at {:.2} s", at.saturating_duration_since(requested).as_secs_f64()))
            .collect::<Vec<_>>(),
        "posts_at": calls
            .iter()
            .filter(|c| c.method == "chat.postMessage")
            .map(|c| format!("{:.2}", c.at.saturating_duration_since(requested).as_secs_f64()))
            .collect::<Vec<_>>(),
        "cards": threads.len(),
        "cards_succeeded_at_the_end": threads.values().filter(|t| t.card_says_succeeded).count(),
        "threads_in_order": threads.values().filter(|t| t.in_order()).count(),
        "duplicate_posts": threads.values().map(|t| t.duplicates).sum::<usize>(),
    });
    let outage_text = match log.outage_ends() {
        Some(recovered) => {
            let caught_up = last_call.saturating_duration_since(recovered).as_secs_f64();
            row["outage_seconds"] = json!(outage.unwrap_or_default().as_secs_f64());
            row["caught_up_after_recovery_seconds"] = json!(caught_up);
            row["unavailable_answers"] = json!(log.unavailable.load(Ordering::Relaxed));
            format!(
                "; after {} s of 503s ({} refused calls) it caught up {caught_up:.1} s after Slack recovered",
                outage.unwrap_or_default().as_secs(),
                log.unavailable.load(Ordering::Relaxed)
            )
        }
        None => String::new(),
    };
    println!(
        "channel, {concurrent} rollback(s) of {STEPS} instant steps: runs in {:.1} s; the channel is {:.1} s behind at the end; {posts} posts ({:.2} per step), {} updates, {} rate-limited calls; {}/{} cards say Succeeded, {}/{} threads in order, {} duplicate posts{outage_text}",
        row["run_seconds"].as_f64().unwrap_or(0.0),
        row["staleness_seconds"].as_f64().unwrap_or(0.0),
        row["posts_per_step"].as_f64().unwrap_or(0.0),
        row["updates"],
        row["rate_limited"],
        row["cards_succeeded_at_the_end"],
        row["cards"],
        row["threads_in_order"],
        row["cards"],
        row["duplicate_posts"],
    );
    Ok(row)
}

/// What one card and its thread show at the end.
#[derive(Default)]
struct Thread {
    posts: Vec<String>,
    card_says_succeeded: bool,
    duplicates: usize,
}

impl Thread {
    /// Announced, then the steps, then the end and the customer notice, each once; or, for a
    /// thread that fell behind its finished run, one post saying it all from the end (the start
    /// quoted, then the steps and the notice) and no start announcement after it.
    fn in_order(&self) -> bool {
        let together = self
            .posts
            .iter()
            .position(|p| p.contains("It started and ended while this thread waited"));
        if let Some(i) = together {
            let text = &self.posts[i];
            let at = |needle: &str| text.find(needle);
            let later_start = self.posts[i + 1..].iter().any(|p| p.contains("ROLLBACK IN PROGRESS"));
            return match (
                at("ROLLBACK COMPLETE"),
                at("ROLLBACK IN PROGRESS"),
                at("✅ Step"),
                at("Customer notice"),
            ) {
                (Some(complete), Some(started), Some(steps), Some(notice)) => {
                    complete < started && started < steps && steps < notice && !later_start
                }
                _ => false,
            };
        }
        let at = |needle: &str| self.posts.iter().position(|p| p.contains(needle));
        let (Some(started), Some(steps), Some(complete), Some(notice)) = (
            at("ROLLBACK IN PROGRESS"),
            self.posts.iter().position(|p| p.starts_with("✅ Step")),
            at("ROLLBACK COMPLETE"),
            at("Customer notice"),
        ) else {
            return false;
        };
        started < steps && steps < complete && complete < notice
    }
}

/// Each card's thread as the channel shows it: posts in the order Slack took them, the card's
/// last text, and any message posted twice.
fn read_threads(calls: &[Call]) -> HashMap<String, Thread> {
    let mut threads: HashMap<String, Thread> = HashMap::new();
    for call in calls {
        let thread = threads.entry(call.card.clone()).or_default();
        match call.method.as_str() {
            "chat.postMessage" => {
                if thread.posts.contains(&call.text) {
                    thread.duplicates += 1;
                }
                thread.posts.push(call.text.clone());
            }
            "chat.update" => thread.card_says_succeeded = call.text.contains("Succeeded"),
            _ => {}
        }
    }
    threads.retain(|_, t| !t.posts.is_empty());
    threads
}
