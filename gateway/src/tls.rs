//! The webhook's TLS: the serving certificate and, with `--client-ca`, the
//! CA whose client certificates the listener requires (so that only the API
//! server, presenting a certificate from its `AdmissionConfiguration`, gets
//! an answer). All three files are reloaded from disk when they change (as
//! cert-manager rotates them), without a restart or dropped connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::GatewayMetrics;

/// The files the webhook's TLS is built from.
#[derive(Debug, Clone)]
pub(crate) struct ServingFiles {
    /// Certificate chain (PEM), `--tls-cert`.
    pub(crate) cert: PathBuf,
    /// Private key (PEM), `--tls-key`.
    pub(crate) key: PathBuf,
    /// CA bundle (PEM) that client certificates must chain to,
    /// `--client-ca`; `None`: clients are not authenticated.
    pub(crate) client_ca: Option<PathBuf>,
}

/// Why the webhook's TLS could not be set up: the option, its file, and
/// what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{option} {path}: {message}")]
pub struct TlsError {
    /// The option naming the file.
    pub option: &'static str,
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(option: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError {
        option,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Builds the rustls server config from the files. With a client CA, a
/// client without a certificate chaining to it fails the handshake and
/// never reaches a handler.
pub(crate) fn server_config(files: &ServingFiles) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err("--tls-cert", &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("--tls-cert", &files.cert, e))?;
    if certs.is_empty() {
        return Err(err("--tls-cert", &files.cert, "no certificate found"));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| err("--tls-key", &files.key, e))?;
    let builder = ServerConfig::builder();
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| err("--client-ca", ca, e))? {
                let cert = cert.map_err(|e| err("--client-ca", ca, e))?;
                roots.add(cert).map_err(|e| err("--client-ca", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| err("--client-ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| err("--tls-key", &files.key, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Loads the files into a config the server can swap at run time.
pub(crate) fn load(files: &ServingFiles) -> Result<RustlsConfig, TlsError> {
    Ok(RustlsConfig::from_config(Arc::new(server_config(files)?)))
}

fn stamp(files: &ServingFiles) -> Vec<Option<(SystemTime, u64)>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    })
    .collect()
}

/// Watches the files every `interval` and reloads `config` when any
/// changes. A failed reload keeps the previous material.
pub(crate) fn spawn_reloader(
    config: RustlsConfig,
    files: ServingFiles,
    interval: Duration,
    metrics: GatewayMetrics,
) {
    tokio::spawn(async move {
        let mut last = stamp(&files);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = stamp(&files);
            if now == last {
                continue;
            }
            let result = match server_config(&files) {
                Ok(new) => {
                    config.reload_from_config(Arc::new(new));
                    tracing::info!(cert = %files.cert.display(), "webhook TLS material reloaded");
                    last = now;
                    "ok"
                }
                Err(e) => {
                    // Often the cert and key are mid-rotation; retry next tick.
                    tracing::warn!(error = %e, "webhook TLS reload failed; keeping the old material");
                    "error"
                }
            };
            metrics
                .tls_reloads
                .get_or_create(&vec![
                    ("what", "webhook".to_string()),
                    ("result", result.to_string()),
                ])
                .inc();
        }
    });
}
