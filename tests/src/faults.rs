//! A fault-injecting HTTP proxy in front of a real registry: it forwards
//! requests unchanged, or answers with a chosen status, or never answers.
//! Used for the registry-failure cases (401, 404, 429, 500, a registry that
//! hangs), which a healthy real registry cannot be made to produce.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the upstream.
    Pass,
    /// Answer every request with this status (401 carries a Basic
    /// challenge).
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// Answer every `n`th request with `status` and, if given, a
    /// `Retry-After` of that many seconds; forward the others.
    EveryNth {
        /// Which requests (every `n`th, counting from the switch).
        n: usize,
        /// The status.
        status: u16,
        /// The `Retry-After` seconds.
        retry_after: Option<u32>,
    },
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    requests: Arc<AtomicUsize>,
    /// Requests counted by `Fault::EveryNth` since it was set.
    nth: Arc<AtomicUsize>,
    /// Answers injected by `Fault::EveryNth`.
    injected: Arc<AtomicUsize>,
    client: reqwest::Client,
}

/// A running proxy.
pub struct FaultProxy {
    /// Its address.
    pub addr: SocketAddr,
    shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. `http://127.0.0.1:5000`).
    pub async fn start(upstream: &str) -> Self {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            fault: Arc::new(Mutex::new(Fault::Pass)),
            requests: Arc::new(AtomicUsize::new(0)),
            nth: Arc::new(AtomicUsize::new(0)),
            injected: Arc::new(AtomicUsize::new(0)),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        FaultProxy {
            addr,
            shared,
            shutdown: Some(tx),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Switches the fault.
    pub async fn set(&self, fault: Fault) {
        self.shared.nth.store(0, Ordering::SeqCst);
        *self.shared.fault.lock().await = fault;
    }

    /// Answers injected by [`Fault::EveryNth`] so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let fault = shared.fault.lock().await.clone();
    match fault {
        Fault::Hang => {
            futures::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut headers = HeaderMap::new();
            if code == 401 {
                headers.insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"test\""),
                );
            }
            if code == 429 {
                headers.insert("retry-after", HeaderValue::from_static("30"));
            }
            (
                status,
                headers,
                format!(
                    "{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"injected {code}\"}}]}}"
                ),
            )
                .into_response()
        }
        Fault::Pass => forward(&shared, request).await,
        Fault::EveryNth {
            n,
            status,
            retry_after,
        } => {
            let seen = shared.nth.fetch_add(1, Ordering::SeqCst) + 1;
            if n > 0 && seen % n == 0 {
                shared.injected.fetch_add(1, Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                if let Some(s) = retry_after {
                    headers.insert(
                        "retry-after",
                        HeaderValue::from_str(&s.to_string()).expect("header"),
                    );
                }
                let code = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
                (
                    code,
                    headers,
                    "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}",
                )
                    .into_response()
            } else {
                forward(&shared, request).await
            }
        }
    }
}

async fn forward(shared: &Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", shared.upstream);
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut upstream = shared.client.request(parts.method.clone(), &url).body(body);
    for (name, value) in parts.headers.iter() {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in headers.iter() {
                if name != "transfer-encoding" && name != "content-length" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
