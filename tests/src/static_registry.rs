//! Serves captured registry content from a directory, byte for byte, the
//! way a registry would: `manifests/<tag or digest-tag>` and
//! `blobs/sha256-<hex>`. Used for the real cosign-made conformance data,
//! whose image layers were never captured, so a real registry would refuse
//! to store its manifests.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// A running static registry.
pub struct StaticRegistry {
    /// Its address.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Content {
    repo: String,
    dir: PathBuf,
}

impl StaticRegistry {
    /// Serves `dir` as repository `repo`.
    pub async fn start(repo: &str, dir: PathBuf) -> Self {
        let content = Content {
            repo: repo.to_string(),
            dir,
        };
        let app = Router::new().fallback(handle).with_state(content);
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
        StaticRegistry {
            addr,
            shutdown: Some(tx),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for StaticRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

async fn handle(State(content): State<Content>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix(&format!("/v2/{}/", content.repo)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (bytes, manifest) = if let Some(reference) = rest.strip_prefix("manifests/") {
        let direct = content.dir.join("manifests").join(reference);
        let found = if reference.starts_with("sha256:") {
            // By digest: whichever captured manifest hashes to it.
            std::fs::read_dir(content.dir.join("manifests"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .find(|b| digest_of(b) == reference)
        } else {
            std::fs::read(direct).ok()
        };
        (found, true)
    } else if let Some(digest) = rest.strip_prefix("blobs/") {
        (
            std::fs::read(content.dir.join("blobs").join(digest.replacen(':', "-", 1))).ok(),
            false,
        )
    } else {
        (None, false)
    };
    let Some(bytes) = bytes else {
        return (
            StatusCode::NOT_FOUND,
            "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}",
        )
            .into_response();
    };
    let media_type = if manifest {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".to_string())
    } else {
        "application/octet-stream".to_string()
    };
    let digest = digest_of(&bytes);
    let body = if request.method() == Method::HEAD {
        Vec::new()
    } else {
        bytes
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&media_type) {
        headers.insert("content-type", v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest) {
        headers.insert("docker-content-digest", v);
    }
    response
}
