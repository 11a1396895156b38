//! A service on loopback for `http` and `health` steps: each path answers from a script of
//! statuses (the last one repeats), optionally slowly, and every request is recorded.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Clone)]
pub struct Script {
    pub statuses: Vec<u16>,
    pub body: &'static str,
    pub delay: Duration,
    /// Answer with the request's Authorization header in the body (a careless API echoing it).
    pub echo_authorization: bool,
}

#[derive(Default)]
struct Inner {
    scripts: BTreeMap<String, Script>,
    received: Vec<Received>,
}

pub struct FakeService {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (script, nth) = {
        let mut inner = inner.lock().unwrap();
        let path = uri.path().to_owned();
        inner.received.push(Received {
            method: method.to_string(),
            path: path.clone(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let nth = inner.received.iter().filter(|r| r.path == path).count() - 1;
        (inner.scripts.get(&path).cloned(), nth)
    };
    let Some(script) = script else {
        return (StatusCode::NOT_FOUND, "no such path".into());
    };
    tokio::time::sleep(script.delay).await;
    let status = script
        .statuses
        .get(nth)
        .or(script.statuses.last())
        .copied()
        .unwrap_or(200);
    let body = if script.echo_authorization {
        format!(
            "{} (you sent: {})",
            script.body,
            header("authorization").unwrap_or_default()
        )
    } else {
        script.body.to_owned()
    };
    (StatusCode::from_u16(status).unwrap(), body)
}

impl FakeService {
    pub async fn start() -> FakeService {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = axum::Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeService { url, inner }
    }

    pub fn script(&self, path: &str, script: Script) {
        self.inner.lock().unwrap().scripts.insert(path.to_owned(), script);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

pub fn answers(statuses: &[u16], body: &'static str) -> Script {
    Script {
        statuses: statuses.to_vec(),
        body,
        delay: Duration::ZERO,
        echo_authorization: false,
    }
}
