//! The one HTTP client rollbot uses for services other than Slack: status pages and the `http`
//! and `health` steps. reqwest, through the environment's proxy; HTTPS with the system's roots
//! (plain HTTP too), a time limit on the whole exchange, and answers read up to a bound so a huge
//! one cannot fill memory.
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

/// Only the start of an answer is ever shown or parsed.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct HttpClient {
    http: reqwest::Client,
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
    /// Reaches services through the proxy the environment names (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `NO_PROXY`, as curl reads them); follows no redirects, since a step's URL is what was
    /// approved.
    pub fn new() -> anyhow::Result<HttpClient> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(system_roots()?)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rollbot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {}", error_chain(&e)))?;
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
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| ExchangeError::Build(e.to_string()))?;
        let url = reqwest::Url::parse(url).map_err(|e| ExchangeError::Build(format!("{url}: {e}")))?;
        let mut request = self.http.request(method, url);
        let typed = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            let name =
                http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| ExchangeError::Build(e.to_string()))?;
            let value = http::HeaderValue::from_str(value).map_err(|e| ExchangeError::Build(e.to_string()))?;
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let exchange = async {
            // Without the URL: a step's URL may carry a secret in its query.
            let mut response = request
                .send()
                .await
                .map_err(|e| ExchangeError::Unreachable(error_chain(&e.without_url())))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut read = Vec::new();
            let mut too_long = false;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| ExchangeError::Unreachable(error_chain(&e.without_url())))?
            {
                if read.len() + chunk.len() > MAX_ANSWER_BYTES {
                    too_long = true;
                    break;
                }
                read.extend_from_slice(&chunk);
            }
            let body = if too_long {
                format!("(answer longer than {} KiB, not read)", MAX_ANSWER_BYTES / 1024)
            } else {
                String::from_utf8_lossy(&read).into_owned()
            };
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

/// An error with every cause after it, as people need it to see why a call failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    chain
}

/// The connector for Slack's Web API: straight to the destination, or through the proxy the
/// environment names for it (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, read as curl reads them),
/// by an HTTP `CONNECT` tunnel, so TLS stays end to end.
#[derive(Clone)]
pub struct Egress {
    direct: hyper_util::client::legacy::connect::HttpConnector,
    proxies: std::sync::Arc<hyper_util::client::proxy::matcher::Matcher>,
}

impl Egress {
    pub fn from_env() -> Egress {
        let mut direct = hyper_util::client::legacy::connect::HttpConnector::new();
        // TLS is layered on top by hyper-rustls, which hands this connector https URIs too.
        direct.enforce_http(false);
        Egress {
            direct,
            proxies: std::sync::Arc::new(hyper_util::client::proxy::matcher::Matcher::from_env()),
        }
    }
}

type Dialed = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
type DialError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for Egress {
    type Response = Dialed;
    type Error = DialError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Dialed, DialError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), DialError>> {
        tower_service::Service::<http::Uri>::poll_ready(&mut self.direct, cx).map_err(Into::into)
    }

    fn call(&mut self, destination: http::Uri) -> Self::Future {
        let mut direct = self.direct.clone();
        match self.proxies.intercept(&destination) {
            None => Box::pin(async move { direct.call(destination).await.map_err(Into::into) }),
            Some(proxy) => {
                let mut tunnel = hyper_util::client::legacy::connect::proxy::Tunnel::new(proxy.uri().clone(), direct);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    std::future::poll_fn(|cx| tower_service::Service::<http::Uri>::poll_ready(&mut tunnel, cx))
                        .await
                        .map_err(|e| -> DialError { Box::new(e) })?;
                    tunnel.call(destination).await.map_err(|e| -> DialError { Box::new(e) })
                })
            }
        }
    }
}
