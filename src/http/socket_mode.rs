//! Socket Mode: where no public HTTPS endpoint can be exposed, rollbot dials out to Slack and
//! receives the same commands, clicks and form submissions as envelopes over a WebSocket. Each
//! envelope goes through the very handlers the signed HTTP requests go through, and is
//! acknowledged with the body the HTTP answer would have had.
//!
//! A process holds one connection and opens the next as soon as Slack warns that it will close
//! this one (`disconnect`), so no envelope falls between the two; a connection that breaks is
//! reopened with a growing pause. Several replicas each hold their own: Slack delivers every
//! envelope to one of them.
use super::*;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::slack::socket_mode::{self as wire, Envelope, EnvelopeKind, Frame};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a connection may stay silent (Slack pings every few seconds) before it is
/// presumed dead and replaced.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(40);
/// Pings per silence limit, so a connection that is only quiet is never taken for dead.
const PINGS_PER_SILENCE: u32 = 4;
/// After Slack's warning, how long the old connection keeps serving before rollbot closes it.
const DRAIN_AFTER_WARNING: Duration = Duration::from_secs(30);
/// Pauses between failed attempts to connect: the first, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

pub struct SocketMode {
    state: Arc<HttpState>,
    app_token: Secret,
    silence_limit: Duration,
}

/// Slack answered `apps.connections.open` with 429: the next attempt waits this long.
#[derive(Debug)]
struct SlackSaidWait(Duration);

impl std::fmt::Display for SlackSaidWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slack asked to wait {:?} before opening another connection", self.0)
    }
}

impl std::error::Error for SlackSaidWait {}

/// How a connection ended.
enum Ended {
    /// Slack warned: the next connection should open now; this one drains on its own.
    Warned,
    /// Closed or broken after it had worked (`hello` seen).
    Closed,
    ShutDown,
}

impl SocketMode {
    pub fn new(state: Arc<HttpState>, app_token: Secret) -> SocketMode {
        SocketMode {
            state,
            app_token,
            silence_limit: SILENCE_LIMIT,
        }
    }

    /// A shorter silence limit, for tests that stall the connection.
    pub fn with_silence_limit(mut self, limit: Duration) -> SocketMode {
        self.silence_limit = limit;
        self
    }

    /// Holds a connection until `shutdown`, reopening it whenever it ends.
    pub async fn run_forever(self: Arc<Self>, shutdown: Shutdown) {
        let mut pause = FIRST_PAUSE;
        let mut draining = tokio::task::JoinSet::new();
        loop {
            let (warned_tx, warned) = tokio::sync::oneshot::channel();
            let mut connection = tokio::spawn(self.clone().hold(shutdown.clone(), warned_tx));
            let ended = tokio::select! {
                // A connection that ends drops its sender: only a real warning counts.
                Ok(()) = warned => Ok(Ended::Warned),
                joined = &mut connection => joined.unwrap_or_else(|e| Err(anyhow::anyhow!("the connection task failed: {e}"))),
            };
            match ended {
                Ok(Ended::Warned) => {
                    // The warned connection still serves what Slack sends it until it closes.
                    draining.spawn(connection);
                    pause = FIRST_PAUSE;
                    continue;
                }
                Ok(Ended::Closed) => pause = FIRST_PAUSE,
                Ok(Ended::ShutDown) => break,
                Err(error) => {
                    if let Some(SlackSaidWait(wait)) = error.downcast_ref() {
                        pause = pause.max(*wait);
                    }
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in_ms = pause.as_millis() as u64,
                        "Socket Mode: could not hold a connection to Slack"
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait() => break,
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
        while draining.join_next().await.is_some() {}
    }

    /// One connection, from `apps.connections.open` to its close.
    async fn hold(
        self: Arc<Self>,
        shutdown: Shutdown,
        warned: tokio::sync::oneshot::Sender<()>,
    ) -> anyhow::Result<Ended> {
        use anyhow::Context;
        let url = match self.state.slack.open_socket(&self.app_token).await {
            Ok(url) => url,
            Err(crate::slack::client::CallError::RateLimited { retry_after }) => {
                return Err(SlackSaidWait(retry_after.unwrap_or(LONGEST_PAUSE)).into());
            }
            Err(crate::slack::client::CallError::Permanent(code)) => anyhow::bail!(
                "apps.connections.open refused the app-level token ({code}): SLACK_APP_TOKEN must be an xapp- token with the connections:write scope, and Socket Mode must be on in the app's settings"
            ),
            Err(e) => anyhow::bail!("apps.connections.open: {e}"),
        };
        let socket = wire::dial(&url).await?;
        let (mut sink, mut frames) = socket.split();
        let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel::<WsMessage>();
        let mut warned = Some(warned);
        let mut greeted = false;
        let mut drain_until: Option<tokio::time::Instant> = None;
        let mut ping = tokio::time::interval(self.silence_limit / PINGS_PER_SILENCE);
        let mut last_heard = tokio::time::Instant::now();
        let mut in_flight = tokio::task::JoinSet::new();
        let ended = loop {
            let deadline = drain_until.unwrap_or(last_heard + self.silence_limit);
            tokio::select! {
                frame = frames.next() => {
                    last_heard = tokio::time::Instant::now();
                    let text = match frame {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(_))) | None if !greeted => {
                            anyhow::bail!("Slack closed the connection before its hello")
                        }
                        Some(Ok(WsMessage::Close(_))) | None => break Ended::Closed,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) if greeted => {
                            tracing::info!(error = %e, "Socket Mode: the connection broke; reconnecting");
                            break Ended::Closed;
                        }
                        Some(Err(e)) => return Err(e).context("reading the socket before Slack's hello"),
                    };
                    match wire::decode(text.as_str()) {
                        Ok(Frame::Hello { connections }) => {
                            greeted = true;
                            tracing::info!(connections, "Socket Mode: connected to Slack");
                        }
                        Ok(Frame::Disconnect { reason }) => {
                            tracing::info!(reason, "Socket Mode: Slack will close this connection; opening the next");
                            if let Some(warned) = warned.take() {
                                let _ = warned.send(());
                            }
                            drain_until.get_or_insert(tokio::time::Instant::now() + DRAIN_AFTER_WARNING);
                        }
                        Ok(Frame::Envelope(envelope)) => {
                            let state = self.state.clone();
                            let acks = acks_tx.clone();
                            in_flight.spawn(async move {
                                let ack = answer(&state, envelope).await;
                                let _ = acks.send(WsMessage::Text(ack.into()));
                            });
                        }
                        Err(e) => tracing::warn!(error = %e, "Socket Mode: ignored a frame rollbot cannot read"),
                    }
                }
                Some(ack) = acks.recv() => {
                    sink.send(ack).await.context("acknowledging an envelope")?;
                }
                _ = ping.tick() => {
                    sink.send(WsMessage::Ping(Default::default())).await.context("pinging Slack")?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if drain_until.is_none() {
                        tracing::warn!(silent_for_s = self.silence_limit.as_secs_f64(), "Socket Mode: Slack went silent; replacing the connection");
                    }
                    break Ended::Closed;
                }
                _ = shutdown.wait() => break Ended::ShutDown,
            }
        };
        // What was received is answered before the socket closes: an acknowledged request is
        // never dropped, and one that is not acknowledged Slack reports as failed.
        drop(acks_tx);
        while in_flight.join_next().await.is_some() {}
        while let Ok(ack) = acks.try_recv() {
            let _ = sink.send(ack).await;
        }
        let _ = sink.send(WsMessage::Close(None)).await;
        Ok(ended)
    }
}

/// The acknowledgement of one envelope: what the same request over HTTP would have answered.
async fn answer(state: &HttpState, envelope: Envelope) -> String {
    let delivery = Delivery::of_envelope(&envelope.payload);
    let response = match &envelope.kind {
        EnvelopeKind::SlashCommand => {
            answer_command(state, inbound::slash_command_from_json(&envelope.payload), &delivery).await
        }
        EnvelopeKind::Interactive => {
            answer_interaction(state, inbound::interaction_from_json(&envelope.payload), &delivery).await
        }
        EnvelopeKind::Other(kind) => {
            tracing::debug!(kind, "Socket Mode: acknowledged an envelope rollbot does not handle");
            return wire::ack(&envelope.id, None);
        }
    };
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    if !status.is_success() {
        tracing::warn!(%status, answer = %String::from_utf8_lossy(&body), "Socket Mode: refused an envelope");
    }
    let payload = (status.is_success() && envelope.accepts_response_payload)
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten();
    wire::ack(&envelope.id, payload)
}
