//! The bare baseline a Portcullis admission is compared with: the physical
//! limit of answering an AdmissionReview over HTTPS on this machine.
//!
//! It does what every webhook must and nothing more: accept TLS (rustls,
//! the same crypto provider and the same axum/axum-server stack as the
//! gateway, `TCP_NODELAY` on), read the body, parse it as an
//! AdmissionReview v1 (every field the gateway reads, the Pod spec included),
//! and answer `allowed: true` with the request's uid. No gRPC, no policy, no
//! audit, no metrics.
//!
//!     portcullis-baseline --listen 127.0.0.1:8443 --tls-cert cert.pem --tls-key key.pem
//!
//! `loadtest/run.sh baseline` runs `static.js` against it, so its CPU per
//! admission and saturation throughput can be set beside Portcullis's
//! (`loadtest/run.sh static`) measured on the same machine.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Review {
    request: Request,
}

#[derive(Deserialize)]
struct Request {
    uid: String,
    // Parsed, as the gateway parses it (its images are read from here).
    #[allow(dead_code)]
    object: Option<Value>,
}

/// Parses the review and allows it.
async fn admit(body: Bytes) -> Result<Json<Value>, StatusCode> {
    let review: Review = serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review.request.uid, "allowed": true},
    })))
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(cert), Some(key)) = (
        arg(&args, "--listen"),
        arg(&args, "--tls-cert"),
        arg(&args, "--tls-key"),
    ) else {
        eprintln!("usage: portcullis-baseline --listen ADDR --tls-cert PEM --tls-key PEM");
        return std::process::ExitCode::from(2);
    };
    let Ok(addr) = listen.parse::<SocketAddr>() else {
        eprintln!("error: --listen {listen:?} is not an address");
        return std::process::ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result: Result<(), String> = runtime.block_on(async move {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
            .acceptor(axum_server::accept::NoDelayAcceptor::new());
        let app = axum::Router::new()
            .route("/mutate", post(admit))
            .route("/validate", post(admit))
            .route("/readyz", axum::routing::get(|| async { "ok" }));
        eprintln!("baseline listening on {addr}");
        axum_server::bind(addr)
            .acceptor(acceptor)
            .serve(app.into_make_service())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
