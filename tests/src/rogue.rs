//! A registry that misbehaves on purpose, for the cases a real registry
//! cannot be made to produce: token realms on plain HTTP or odd schemes, and
//! redirects to other hosts or down to HTTP. Every request it (or a capture
//! endpoint) receives is recorded with its `Authorization` header, so tests
//! can assert where credentials did and did not go.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::certs::TestCa;

/// What the server does with each request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answer `/v2/` requests with 401 and a Bearer challenge naming this
    /// realm.
    BearerRealm(String),
    /// Require Basic credentials (401 Basic challenge without them), then
    /// redirect every request to this base URL (path kept).
    BasicThenRedirect(String),
    /// Record and answer 404.
    Capture,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The path and query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Clone)]
struct Shared {
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running misbehaving server.
pub struct Rogue {
    /// Its address.
    pub addr: SocketAddr,
    tls: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: axum_server::Handle<SocketAddr>,
}

impl Rogue {
    /// Starts on a free port; over TLS with a leaf from `ca`, else plain.
    pub async fn start(behaviour: Behaviour, ca: Option<&TestCa>) -> Self {
        let shared = Shared {
            behaviour,
            seen: Arc::default(),
        };
        let seen = shared.seen.clone();
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server_handle = axum_server::Handle::new();
        let h = server_handle.clone();
        match ca {
            Some(ca) => {
                let leaf = ca.issue(&format!("rogue-{}", addr.port()));
                let config =
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&leaf.chain, &leaf.key)
                        .await
                        .expect("tls");
                tokio::spawn(async move {
                    let _ = axum_server::from_tcp_rustls(listener, config)
                        .expect("server")
                        .handle(h)
                        .serve(app.into_make_service())
                        .await;
                });
            }
            None => {
                tokio::spawn(async move {
                    let _ = axum_server::from_tcp(listener)
                        .expect("server")
                        .handle(h)
                        .serve(app.into_make_service())
                        .await;
                });
            }
        }
        Rogue {
            addr,
            tls: ca.is_some(),
            seen,
            handle: server_handle,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.seen.lock().expect("lock").push(Seen {
        path: path.clone(),
        authorization: authorization.clone(),
    });
    let mut headers = HeaderMap::new();
    match &shared.behaviour {
        Behaviour::BearerRealm(realm) => {
            let challenge = format!(r#"Bearer realm="{realm}",service="rogue""#);
            headers.insert(
                "www-authenticate",
                HeaderValue::from_str(&challenge).expect("header"),
            );
            (StatusCode::UNAUTHORIZED, headers, "").into_response()
        }
        Behaviour::BasicThenRedirect(target) => {
            if authorization.is_none() {
                headers.insert(
                    "www-authenticate",
                    HeaderValue::from_static(r#"Basic realm="rogue""#),
                );
                return (StatusCode::UNAUTHORIZED, headers, "").into_response();
            }
            headers.insert(
                "location",
                HeaderValue::from_str(&format!("{target}{path}")).expect("header"),
            );
            (StatusCode::TEMPORARY_REDIRECT, headers, "").into_response()
        }
        Behaviour::Capture => StatusCode::NOT_FOUND.into_response(),
    }
}
