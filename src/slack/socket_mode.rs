//! Slack's Socket Mode wire format: the frames Slack sends over the WebSocket (`hello`,
//! `disconnect`, envelopes), the acknowledgement rollbot sends back, and dialling the socket
//! through the same egress (proxy, TLS roots) as the Web API.
use super::inbound::InboundError;
use serde::Deserialize;
use serde_json::Value;

/// What Slack sent over the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The connection is ready; Slack says how many the app holds.
    Hello {
        connections: Option<u64>,
    },
    /// Slack will close this connection soon (`refresh_requested`, `warning`,
    /// `link_disabled`): open the next one now.
    Disconnect {
        reason: String,
    },
    Envelope(Envelope),
}

/// One delivery: acknowledged with its id within three seconds, or Slack reports a failure to
/// the person who typed or clicked.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub kind: EnvelopeKind,
    pub payload: Value,
    /// Whether Slack reads a payload in the acknowledgement (slash commands, view submissions).
    pub accepts_response_payload: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// `/rollback …`: the payload has the fields of the HTTP form.
    SlashCommand,
    /// Button clicks and view submissions: the payload of the HTTP `payload=` form.
    Interactive,
    /// Anything else (Events API, options): acknowledged and ignored.
    Other(String),
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    envelope_id: Option<String>,
    payload: Option<Value>,
    #[serde(default)]
    accepts_response_payload: bool,
    reason: Option<String>,
    num_connections: Option<u64>,
}

/// Reads one text frame. Frames rollbot does not know are `Err` with why; the connection goes on.
pub fn decode(text: &str) -> Result<Frame, InboundError> {
    let raw: RawFrame =
        serde_json::from_str(text).map_err(|e| InboundError(format!("the frame is not a JSON object: {e}")))?;
    let kind = raw
        .kind
        .ok_or_else(|| InboundError("the frame has no type".to_owned()))?;
    match kind.as_str() {
        "hello" => Ok(Frame::Hello {
            connections: raw.num_connections,
        }),
        "disconnect" => Ok(Frame::Disconnect {
            reason: raw.reason.unwrap_or_else(|| "unspecified".to_owned()),
        }),
        _ => {
            let id = raw
                .envelope_id
                .filter(|id| !id.trim().is_empty())
                .ok_or_else(|| InboundError(format!("the `{kind}` frame has no envelope_id")))?;
            Ok(Frame::Envelope(Envelope {
                id,
                kind: match kind.as_str() {
                    "slash_commands" => EnvelopeKind::SlashCommand,
                    "interactive" => EnvelopeKind::Interactive,
                    _ => EnvelopeKind::Other(kind),
                },
                payload: raw.payload.unwrap_or(Value::Null),
                accepts_response_payload: raw.accepts_response_payload,
            }))
        }
    }
}

/// The acknowledgement of envelope `id`, with what the HTTP answer's body would have been.
pub fn ack(id: &str, payload: Option<Value>) -> String {
    match payload {
        Some(payload) => serde_json::json!({"envelope_id": id, "payload": payload}),
        None => serde_json::json!({"envelope_id": id}),
    }
    .to_string()
}

/// Either stream a socket runs over: plain TCP (a fake on loopback) or TLS (Slack).
pub trait Link: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Link for T {}

pub type Socket = tokio_tungstenite::WebSocketStream<Box<dyn Link>>;

/// Opens the WebSocket `url` (`wss://…` from `apps.connections.open`) through the egress the
/// environment names, TLS end to end with the system's roots.
pub async fn dial(url: &str) -> anyhow::Result<Socket> {
    use anyhow::Context;
    use tower_service::Service;
    let (secure, rest) = if let Some(rest) = url.strip_prefix("wss://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        (false, rest)
    } else {
        anyhow::bail!("Slack gave a socket address that is not ws(s)://");
    };
    // The egress dials (and picks the proxy by) the https/http address of the same host.
    let dialled: http::Uri = format!("{}://{rest}", if secure { "https" } else { "http" })
        .parse()
        .context("Slack gave a socket address that is not a URL")?;
    let host = dialled.host().unwrap_or_default().to_owned();
    let mut egress = crate::outbound::Egress::from_env();
    std::future::poll_fn(|cx| Service::<http::Uri>::poll_ready(&mut egress, cx))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tcp = egress
        .call(dialled)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to Slack's socket host {host}: {e}"))?
        .into_inner();
    let link: Box<dyn Link> = if secure {
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(crate::outbound::system_roots()?));
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .with_context(|| format!("`{host}` is not a host name"))?;
        Box::new(
            tls.connect(name, tcp)
                .await
                .with_context(|| format!("TLS with Slack's socket host {host}"))?,
        )
    } else {
        Box::new(tcp)
    };
    let (socket, _) = tokio_tungstenite::client_async(url, link)
        .await
        .with_context(|| format!("the WebSocket handshake with {host}"))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_slack_documents_them() {
        let hello = r#"{"type":"hello","num_connections":2,"debug_info":{"host":"applink-1","build_number":10,"approximate_connection_time":18060},"connection_info":{"app_id":"A0ROLLBOT"}}"#;
        assert_eq!(decode(hello).unwrap(), Frame::Hello { connections: Some(2) });
        let warning = r#"{"type":"disconnect","reason":"warning","debug_info":{"host":"applink-1"}}"#;
        assert_eq!(
            decode(warning).unwrap(),
            Frame::Disconnect {
                reason: "warning".into()
            }
        );
        let command = r#"{"envelope_id":"e1","type":"slash_commands","accepts_response_payload":true,"payload":{"user_id":"U1"}}"#;
        let Frame::Envelope(envelope) = decode(command).unwrap() else {
            panic!("an envelope")
        };
        assert_eq!(envelope.kind, EnvelopeKind::SlashCommand);
        assert!(envelope.accepts_response_payload);
        assert_eq!(envelope.payload["user_id"], "U1");
        let event =
            r#"{"envelope_id":"e2","type":"events_api","payload":{},"retry_attempt":1,"retry_reason":"timeout"}"#;
        assert!(
            matches!(decode(event).unwrap(), Frame::Envelope(Envelope { kind: EnvelopeKind::Other(k), .. }) if k == "events_api")
        );
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        for bad in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"type":7}"#,
            r#"{"type":"interactive"}"#,
            r#"{"type":"interactive","envelope_id":"  "}"#,
            "{\"type\":\"hello\"",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn acknowledgements_carry_the_answer_only_when_there_is_one() {
        assert_eq!(ack("e1", None), r#"{"envelope_id":"e1"}"#);
        let with = ack("e1", Some(serde_json::json!({"text": "hi"})));
        assert_eq!(serde_json::from_str::<Value>(&with).unwrap()["payload"]["text"], "hi");
    }
}
