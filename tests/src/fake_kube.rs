//! A fake Kubernetes API endpoint over HTTPS, for the features that read the
//! API (owner lookups for child approval, namespace labels, pull secrets).
//! There is no kube-apiserver on this machine; this serves stored objects
//! at their API paths (`/api/v1/...`, `/apis/GROUP/VERSION/...`) with the
//! API server's 404 Status shape, and checks the bearer token. It is a
//! test double: only GET of single objects is implemented.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::certs::TestCa;

/// The bearer token the fake API accepts.
pub const TOKEN: &str = "portcullis-test-token";

#[derive(Clone, Default)]
struct Store {
    objects: Arc<Mutex<HashMap<String, Value>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// A running fake API server.
pub struct FakeKube {
    /// Its address.
    pub addr: SocketAddr,
    /// CA file that signed its certificate.
    pub ca: PathBuf,
    /// File holding [`TOKEN`].
    pub token_file: PathBuf,
    store: Store,
    handle: axum_server::Handle<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl FakeKube {
    /// Starts serving no objects.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "kube-api");
        let leaf = ca.issue("kube-api");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).expect("token");
        let store = Store::default();
        let app = Router::new().fallback(handle).with_state(store.clone());
        let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&leaf.chain, &leaf.key)
            .await
            .expect("tls");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server_handle = axum_server::Handle::new();
        let h = server_handle.clone();
        tokio::spawn(async move {
            let _ = axum_server::from_tcp_rustls(listener, config)
                .expect("server")
                .handle(h)
                .serve(app.into_make_service())
                .await;
        });
        FakeKube {
            addr,
            ca: ca.cert_path(),
            token_file,
            store,
            handle: server_handle,
            _dir: dir,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The gateway/verifier flags that point at this server.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--kube-api-url".into(),
            self.url(),
            "--kube-ca".into(),
            self.ca.display().to_string(),
            "--kube-token-file".into(),
            self.token_file.display().to_string(),
        ]
    }

    /// Stores an object at its API path (`/api/v1/namespaces/ns`, ...).
    pub fn put(&self, path: &str, object: Value) {
        self.store
            .objects
            .lock()
            .expect("lock")
            .insert(path.to_string(), object);
    }

    /// Removes the object at `path` (later GETs answer 404).
    pub fn remove(&self, path: &str) {
        self.store.objects.lock().expect("lock").remove(path);
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.store.requests.lock().expect("lock").clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn handle(State(store): State<Store>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    store.requests.lock().expect("lock").push(path.clone());
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(status(401, "Unauthorized", "no valid token")),
        )
            .into_response();
    }
    match store.objects.lock().expect("lock").get(&path) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(status(404, "NotFound", &format!("{path} not found"))),
        )
            .into_response(),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The API path of the key Secret [`key_secret`] builds
/// (`connaisseur/cosignkeys`, as Connaisseur names it).
pub const KEY_SECRET_PATH: &str = "/api/v1/namespaces/connaisseur/secrets/cosignkeys";

/// The Secret at [`KEY_SECRET_PATH`] holding `key`, a file of the test
/// PKI (`alice.pub`), as `cosign.pub`.
pub fn key_secret(key: &str) -> Value {
    use base64::Engine as _;
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "cosignkeys", "namespace": "connaisseur"},
           "data": {"cosign.pub": base64::engine::general_purpose::STANDARD
               .encode(crate::signer::pki_file(key))}})
}

/// A verifier config with one cosign validator whose trust root `ci` is the
/// key in that Secret (`k8s://connaisseur/cosignkeys`), required for every
/// image of `registry`.
pub fn key_secret_config(registry: &crate::registry::Registry) -> String {
    crate::config::config_yaml(
        vec![
            json!({"name": "signed", "type": "cosign", "insecureRegistries": [registry.host()],
                    "trustRoots": [{"name": "ci", "key": "k8s://connaisseur/cosignkeys"}]}),
        ],
        vec![crate::config::rule(
            &format!("{}/**", registry.host()),
            "signed",
            json!({"trustRoot": "ci"}),
        )],
    )
}
