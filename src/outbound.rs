//! The one HTTP client rollbot uses for services other than Slack: status pages and the `http`
//! and `health` steps. HTTPS with the system's roots (plain HTTP too), a time limit on the whole
//! exchange, and answers read up to a bound so a huge one cannot fill memory.
use std::time::Duration;

/// Why a call did not go through, sorted by what the outbox should do about it.
#[derive(Debug)]
pub enum CallError {
    /// Slack asked us to slow down.
    RateLimited { retry_after: Option<Duration> },
    /// Worth another try later: network trouble, Slack's own errors.
    Transient(String),
    /// Will fail the same way every time (e.g. `channel_not_found`, `not_in_channel`).
    Permanent(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::RateLimited { retry_after } => {
                write!(f, "rate limited (retry after {retry_after:?})")
            }
            CallError::Transient(e) => write!(f, "transient: {e}"),
            CallError::Permanent(e) => write!(f, "permanent: {e}"),
        }
    }
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Only the start of an answer is ever shown or parsed.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct HttpClient {
    http: hyper_util::client::legacy::Client<Https, http_body_util::Full<bytes::Bytes>>,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<Duration>,
    pub body: String,
}

#[derive(Debug, PartialEq)]
pub enum ExchangeError {
    /// The request itself is malformed (a bad URL or header).
    Build(String),
    /// No connection, or it broke; the whole error chain.
    Unreachable(String),
    TimedOut(Duration),
}

/// TLS settings trusting the system's roots, loaded once per process and shared by every HTTPS
/// client (Slack, status pages, steps): loading reads and parses every root file, a few hundred
/// where `SSL_CERT_DIR` is set, which was a third of start-up when each client did it.
pub fn system_roots() -> anyhow::Result<rustls::ClientConfig> {
    static LOADED: std::sync::OnceLock<Result<rustls::ClientConfig, String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            use hyper_rustls::ConfigBuilderExt;
            rustls::ClientConfig::builder()
                .with_native_roots()
                .map(|roots| roots.with_no_client_auth())
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("loading the system's TLS roots: {e}"))
}

impl HttpClient {
    pub fn new() -> anyhow::Result<HttpClient> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(system_roots()?)
            .https_or_http()
            .enable_http1()
            .build();
        let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(HttpClient { http })
    }

    /// One request. A body is sent as `application/json` unless `headers` name a content type.
    pub async fn exchange<'a>(
        &self,
        method: &str,
        url: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let headers: Vec<(&str, &str)> = headers.into_iter().collect();
        let mut request = http::Request::builder().method(method).uri(url);
        let typed = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .header("user-agent", concat!("rollbot/", env!("CARGO_PKG_VERSION")))
            .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ExchangeError::Build(e.to_string()))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                let mut chain = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    chain.push_str(&format!(": {s}"));
                    source = s.source();
                }
                ExchangeError::Unreachable(chain)
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body =
                http_body_util::BodyExt::collect(http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES))
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_else(|_| format!("(answer longer than {} KiB, not read)", MAX_ANSWER_BYTES / 1024));
            Ok(Answer {
                status,
                retry_after,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ExchangeError::TimedOut(timeout))?
    }
}
