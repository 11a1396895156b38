//! Load shapes: a fixed number of connections each sending as fast as answers come back, or a
//! fixed rate (latency counted from when each request was due, so a slow server cannot hide
//! its queue).
use crate::client::Connection;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Connections(usize),
    Rate(u32),
}

impl Shape {
    pub fn label(&self) -> String {
        match self {
            Shape::Connections(n) => format!("{n} conns"),
            Shape::Rate(r) => format!("{r}/s"),
        }
    }
}

/// A request to sign when it is sent (Slack's timestamps must be fresh).
#[derive(Clone)]
pub struct Request {
    path: &'static str,
    body: Vec<u8>,
    forged: bool,
}

impl Request {
    pub fn signed(path: &'static str, body: Vec<u8>) -> Request {
        Request {
            path,
            body,
            forged: false,
        }
    }

    /// The same request with a signature made with the wrong secret.
    pub fn forged(self) -> Request {
        Request { forged: true, ..self }
    }

    pub async fn send(&self, connection: &mut Connection) -> Result<(u16, Vec<u8>)> {
        let timestamp = chrono::Utc::now().timestamp();
        let secret = if self.forged { "not-the-secret" } else { crate::SECRET };
        let signature = rollbot::slack::signature::sign(secret, timestamp, &self.body);
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
            ("X-Slack-Request-Timestamp", timestamp.to_string()),
            ("X-Slack-Signature", signature),
        ];
        connection.send("POST", self.path, &headers, &self.body).await
    }
}

pub type MakeRequest = Arc<dyn Fn(usize) -> Request + Send + Sync>;
pub type OnAnswer = Arc<dyn Fn(usize, &[u8]) + Send + Sync>;

#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
    }
}

#[derive(Default)]
struct Tally {
    errors: usize,
    latencies: Vec<Duration>,
}

/// What one request came to: its latency, or an error.
type Verdict = Option<Duration>;

/// Sends `n` requests made by `make` in `shape`; an answer other than `expect` is an error.
pub async fn drive(
    address: &str,
    shape: &Shape,
    n: usize,
    make: MakeRequest,
    expect: u16,
    on_answer: Option<OnAnswer>,
) -> Outcome {
    let one = Arc::new(move |i: usize, mut connection: Connection, due: Instant| {
        let on_answer = on_answer.clone();
        let request = make(i);
        async move {
            let verdict = match request.send(&mut connection).await {
                Ok((status, answer)) if status == expect => {
                    if let Some(on_answer) = &on_answer {
                        on_answer(i, &answer);
                    }
                    Ok(Some(due.elapsed()))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            };
            (connection, verdict)
        }
    });
    run_shape(address, shape, n, one).await
}

/// When each target's step reported in; waiters sleep until a report comes instead of polling,
/// so the load generator does not take CPU from the server on the same cores.
#[derive(Default)]
pub struct Started {
    at: Mutex<HashMap<String, Instant>>,
    news: tokio::sync::Notify,
}

impl Started {
    pub fn note(&self, target: String) {
        self.at.lock().unwrap().insert(target, Instant::now());
        self.news.notify_waiters();
    }

    /// When `target`'s step started, or `None` if it has not by `until`.
    async fn wait(&self, target: &str, until: Instant) -> Option<Instant> {
        loop {
            let notified = self.news.notified();
            tokio::pin!(notified);
            // Registered before looking, so a report between the look and the wait is not missed.
            notified.as_mut().enable();
            if let Some(at) = self.at.lock().unwrap().get(target).copied() {
                return Some(at);
            }
            if tokio::time::timeout_at(until.into(), notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Clicks that start runs: each latency runs from the click to the moment the step's process
/// reported in (`started`, by target), waiting up to 30 s for it.
pub async fn drive_until_started(
    address: &str,
    shape: &Shape,
    n: usize,
    make: MakeRequest,
    targets: Arc<Vec<(String, String)>>,
    started: Arc<Started>,
) -> Outcome {
    let one = Arc::new(move |i: usize, mut connection: Connection, due: Instant| {
        let request = make(i);
        let target = targets[i].1.clone();
        let started = started.clone();
        async move {
            match request.send(&mut connection).await {
                Ok((200, _)) => {}
                Ok(_) => return (connection, Ok(None)),
                Err(e) => return (connection, Err(e)),
            }
            let at = started.wait(&target, Instant::now() + Duration::from_secs(30)).await;
            (connection, Ok(at.map(|at| at.saturating_duration_since(due))))
        }
    });
    run_shape(address, shape, n, one).await
}

async fn run_shape<F, Fut>(address: &str, shape: &Shape, n: usize, one: Arc<F>) -> Outcome
where
    F: Fn(usize, Connection, Instant) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Connection, Result<Verdict>)> + Send,
{
    let tally = Arc::new(Mutex::new(Tally::default()));
    // Connections are opened before the clock starts, as a load generator like wrk does: the
    // run measures answering, not the kernel's handshakes.
    let mut opened = vec![];
    if let Shape::Connections(connections) = *shape {
        let opening = (0..connections).map(|_| Connection::open(address));
        opened = futures_util::future::join_all(opening).await;
    }
    let began = Instant::now();
    match *shape {
        Shape::Connections(_) => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for first in opened {
                let (address, next, one, tally) = (address.to_owned(), next.clone(), one.clone(), tally.clone());
                workers.spawn(async move {
                    let mut connection = first.ok();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let open = match connection.take() {
                            Some(open) => open,
                            None => match Connection::open(&address).await {
                                Ok(open) => open,
                                Err(_) => {
                                    tally.lock().unwrap().errors += 1;
                                    continue;
                                }
                            },
                        };
                        let (open, verdict) = one(i, open, Instant::now()).await;
                        note(&tally, &verdict);
                        if verdict.is_ok() {
                            connection = Some(open);
                        }
                    }
                });
            }
            workers.join_all().await;
        }
        Shape::Rate(per_second) => {
            let pool: Arc<Mutex<Vec<Connection>>> = Arc::default();
            let mut requests = tokio::task::JoinSet::new();
            let gap = Duration::from_secs_f64(1.0 / per_second as f64);
            for i in 0..n {
                let due = began + gap * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let (address, pool, one, tally) = (address.to_owned(), pool.clone(), one.clone(), tally.clone());
                requests.spawn(async move {
                    let taken = pool.lock().unwrap().pop();
                    let connection = match taken {
                        Some(c) => Some(c),
                        None => Connection::open(&address).await.ok(),
                    };
                    let Some(connection) = connection else {
                        tally.lock().unwrap().errors += 1;
                        return;
                    };
                    let (connection, verdict) = one(i, connection, due).await;
                    note(&tally, &verdict);
                    if verdict.is_ok() {
                        pool.lock().unwrap().push(connection);
                    }
                });
            }
            requests.join_all().await;
        }
    }
    let elapsed = began.elapsed();
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    Outcome {
        requests: n,
        errors: tally.errors,
        elapsed,
        latencies: tally.latencies,
    }
}

fn note(tally: &Mutex<Tally>, verdict: &Result<Verdict>) {
    let mut tally = tally.lock().unwrap();
    match verdict {
        Ok(Some(latency)) => tally.latencies.push(*latency),
        _ => tally.errors += 1,
    }
}
