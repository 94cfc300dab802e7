//! A real local HTTP receiver for alert tests: it records every POST (path,
//! headers, JSON body) and answers with a chosen status, optionally after a
//! delay.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;

/// One received alert.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    status: u16,
    delay: Duration,
    notify: Arc<tokio::sync::Notify>,
}

/// A running receiver.
pub struct Receiver {
    /// Its address.
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver answering `status` after `delay`.
    pub async fn start(status: u16, delay: Duration) -> Self {
        let shared = Shared {
            received: Arc::default(),
            status,
            delay,
            notify: Arc::new(tokio::sync::Notify::new()),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Waits until at least `n` alerts arrived, or `timeout` passes.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() >= end {
                return got;
            }
            // Woken by the next arrival, or re-checked every 20 ms (a
            // notification can land between the check and the wait).
            let _ = tokio::time::timeout(Duration::from_millis(20), self.shared.notify.notified())
                .await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> impl IntoResponse {
    let path = request.uri().path().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    tokio::time::sleep(shared.delay).await;
    shared.received.lock().expect("lock").push(Received {
        path,
        headers,
        body,
    });
    shared.notify.notify_waiters();
    StatusCode::from_u16(shared.status).unwrap_or(StatusCode::OK)
}
