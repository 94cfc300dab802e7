//! Serves a directory's files, byte for byte, under a URL prefix over plain
//! HTTP; used to replay captured Notary trust data. Counts requests per
//! path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
struct Files {
    prefix: String,
    dir: PathBuf,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

/// A running file server.
pub struct StaticFiles {
    /// Its address.
    pub addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StaticFiles {
    /// Serves `dir/NAME` at `PREFIX/NAME`.
    pub async fn start(prefix: &str, dir: PathBuf) -> Self {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let files = Files {
            prefix: prefix.trim_end_matches('/').to_string(),
            dir,
            hits: hits.clone(),
        };
        let app = Router::new().fallback(handle).with_state(files);
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
        StaticFiles {
            addr,
            hits,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests per path so far.
    pub fn hits(&self) -> HashMap<String, usize> {
        self.hits.lock().expect("lock").clone()
    }
}

impl Drop for StaticFiles {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(State(files): State<Files>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    *files
        .hits
        .lock()
        .expect("lock")
        .entry(path.clone())
        .or_default() += 1;
    let Some(name) = path.strip_prefix(&format!("{}/", files.prefix)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if name.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(files.dir.join(name)) {
        Ok(bytes) => ([("content-type", "application/json")], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
