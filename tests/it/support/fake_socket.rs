//! Slack's Socket Mode side, on loopback: `apps.connections.open` hands out one-use addresses
//! of this hub; a connection gets `hello`, then the envelopes the test sends, each to one open
//! connection in turn (as Slack spreads them over an app's connections), and records every
//! acknowledgement. The test can warn (`disconnect`), cut or stall connections.
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<HubState>>,
    acked: Arc<tokio::sync::Notify>,
    address: std::net::SocketAddr,
    accepting: Arc<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct HubState {
    tickets: HashSet<String>,
    next_ticket: u64,
    links: Vec<Link>,
    next_link: usize,
    next_envelope: u64,
    /// Envelope id → the payload of its acknowledgement (`None`: acknowledged without one).
    acks: HashMap<String, Option<Value>>,
    /// Connections ever opened, and acknowledgements of envelopes never sent.
    opened: u64,
    strays: Vec<String>,
}

struct Link {
    outgoing: tokio::sync::mpsc::UnboundedSender<Message>,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::AbortHandle>,
    open: bool,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if Arc::strong_count(&self.accepting) == 1 {
            self.accepting.abort();
            for link in &self.state.lock().unwrap().links {
                link.tasks.iter().for_each(tokio::task::AbortHandle::abort);
            }
        }
    }
}

impl Hub {
    pub async fn start() -> Hub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(HubState::default()));
        let acked = Arc::new(tokio::sync::Notify::new());
        let accepting = tokio::spawn({
            let (state, acked) = (state.clone(), acked.clone());
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    tokio::spawn(serve_link(tcp, state.clone(), acked.clone()));
                }
            }
        });
        Hub {
            state,
            acked,
            address,
            accepting: Arc::new(accepting),
        }
    }

    /// A one-use socket address, as `apps.connections.open` answers it.
    pub fn issue(&self) -> String {
        let mut state = self.state.lock().unwrap();
        state.next_ticket += 1;
        let ticket = format!("t{}", state.next_ticket);
        state.tickets.insert(ticket.clone());
        format!("ws://{}/link/?ticket={ticket}&app_id=A0ROLLBOT", self.address)
    }

    /// Connections open and not stalled.
    pub fn open_connections(&self) -> usize {
        let state = self.state.lock().unwrap();
        state
            .links
            .iter()
            .filter(|l| l.open && !l.stalled.load(std::sync::atomic::Ordering::SeqCst))
            .count()
    }

    /// Connections ever opened.
    pub fn opened(&self) -> u64 {
        self.state.lock().unwrap().opened
    }

    /// Waits until `n` connections are open.
    pub async fn wait_for_connections(&self, n: usize) {
        let started = std::time::Instant::now();
        while self.open_connections() != n {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} connections open, not {n}",
                self.open_connections()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends an envelope of `kind` to the next open connection; its id.
    pub fn send(&self, kind: &str, payload: Value, accepts_response_payload: bool) -> String {
        let mut state = self.state.lock().unwrap();
        state.next_envelope += 1;
        let id = format!("env-{}-{}", state.next_envelope, uuid_like(state.next_envelope));
        let frame = json!({
            "envelope_id": id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": 0,
            "retry_reason": "",
        });
        self.send_text(&mut state, frame.to_string());
        id
    }

    /// Sends any text frame (the test's hostile input) to the next open connection.
    pub fn send_raw(&self, text: &str) {
        let mut state = self.state.lock().unwrap();
        self.send_text(&mut state, text.to_owned());
    }

    fn send_text(&self, state: &mut HubState, text: String) {
        let open: Vec<usize> = (0..state.links.len())
            .filter(|i| state.links[*i].open && !state.links[*i].stalled.load(std::sync::atomic::Ordering::SeqCst))
            .collect();
        assert!(!open.is_empty(), "no Socket Mode connection is open");
        let link = open[state.next_link % open.len()];
        state.next_link += 1;
        let _ = state.links[link].outgoing.send(Message::Text(text.into()));
    }

    /// The acknowledgement of envelope `id` once it comes: `Some(payload)` or `None` when it
    /// carried none. Panics if none comes within `within`.
    pub async fn ack(&self, id: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.acked.notified();
            if let Some(ack) = self.state.lock().unwrap().acks.get(id) {
                return ack.clone();
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "envelope {id} was not acknowledged within {within:?}"
            );
        }
    }

    /// Acknowledgements of envelopes that were never sent.
    pub fn strays(&self) -> Vec<String> {
        self.state.lock().unwrap().strays.clone()
    }

    /// Slack's warning on every open connection: `disconnect` with `reason`, then the close
    /// `after` it.
    pub fn warn_and_close(&self, reason: &str, after: Duration) {
        let state = self.state.lock().unwrap();
        for link in state.links.iter().filter(|l| l.open) {
            let warning = json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}});
            let _ = link.outgoing.send(Message::Text(warning.to_string().into()));
            let outgoing = link.outgoing.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = outgoing.send(Message::Close(None));
            });
        }
    }

    /// Every open connection breaks at once (no close frame: the TCP connection just ends).
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        for link in state.links.iter_mut().filter(|l| l.open) {
            link.tasks.iter().for_each(tokio::task::AbortHandle::abort);
            link.open = false;
        }
    }

    /// Every open connection goes silent: it stays open but nothing is read, sent or answered.
    pub fn stall(&self) {
        let state = self.state.lock().unwrap();
        for link in state.links.iter().filter(|l| l.open) {
            link.stalled.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn uuid_like(n: u64) -> String {
    format!("{:08x}-7c1d-4f5e-9a3b-{:012x}", n.wrapping_mul(2654435761), n)
}

async fn serve_link(tcp: tokio::net::TcpStream, state: Arc<Mutex<HubState>>, acked: Arc<tokio::sync::Notify>) {
    let path = Arc::new(Mutex::new(String::new()));
    let seen_path = path.clone();
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(
        tcp,
        move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
              response: tokio_tungstenite::tungstenite::handshake::server::Response| {
            *seen_path.lock().unwrap() = request.uri().to_string();
            Ok(response)
        },
    )
    .await
    else {
        return;
    };
    let ticket = path
        .lock()
        .unwrap()
        .split("ticket=")
        .nth(1)
        .map(|rest| rest.split('&').next().unwrap_or_default().to_owned());
    let (mut sink, mut frames) = socket.split();
    let valid = ticket.is_some_and(|t| state.lock().unwrap().tickets.remove(&t));
    if !valid {
        // Slack refuses an address used twice, or made up.
        let _ = sink.send(Message::Close(None)).await;
        return;
    }
    let (outgoing, mut to_send) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let is_stalled = {
        let stalled = stalled.clone();
        move || stalled.load(std::sync::atomic::Ordering::SeqCst)
    };
    let writer = tokio::spawn({
        let is_stalled = is_stalled.clone();
        async move {
            while let Some(message) = to_send.recv().await {
                if is_stalled() {
                    continue;
                }
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
        }
    });
    let index = {
        let mut state = state.lock().unwrap();
        state.opened += 1;
        let live = state.links.iter().filter(|l| l.open).count() + 1;
        let hello = json!({
            "type": "hello",
            "num_connections": live,
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0ROLLBOT"},
        });
        let _ = outgoing.send(Message::Text(hello.to_string().into()));
        state.links.push(Link {
            outgoing,
            stalled,
            tasks: vec![writer.abort_handle()],
            open: true,
        });
        state.links.len() - 1
    };
    let reader = tokio::spawn({
        let state = state.clone();
        async move {
            while let Some(Ok(frame)) = frames.next().await {
                if is_stalled() {
                    // A stalled peer holds the connection and never answers.
                    std::future::pending::<()>().await;
                }
                let Message::Text(text) = frame else {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                    continue;
                };
                let Ok(ack) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let Some(id) = ack["envelope_id"].as_str() else {
                    continue;
                };
                let mut state = state.lock().unwrap();
                let sent = id
                    .strip_prefix("env-")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n <= state.next_envelope);
                if !sent {
                    state.strays.push(id.to_owned());
                }
                state.acks.insert(id.to_owned(), ack.get("payload").cloned());
                acked.notify_waiters();
            }
            let mut state = state.lock().unwrap();
            state.links[index].open = false;
        }
    });
    state.lock().unwrap().links[index].tasks.push(reader.abort_handle());
}
