//! TLS for the gRPC server, with optional client-certificate verification
//! (mTLS) and reload of the certificate, key and client CA when they change
//! on disk (as cert-manager rotates them): new connections use the new
//! material; established connections are not interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The files TLS is built from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to; `None`: no client auth.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up.
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

/// Builds a server config from the files.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
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
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn stamp(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

/// A server config that follows its files.
#[derive(Debug, Clone)]
pub struct Reloading {
    current: Arc<ArcSwap<ServerConfig>>,
}

impl Reloading {
    /// Loads the files and checks them for changes every `interval`.
    pub fn start(files: TlsFiles, interval: Duration) -> Result<Self, TlsError> {
        let current = Arc::new(ArcSwap::new(server_config(&files)?));
        let reloading = Reloading {
            current: current.clone(),
        };
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
                match server_config(&files) {
                    Ok(config) => {
                        current.store(config);
                        last = now;
                        tracing::info!(cert = %files.cert.display(), "TLS material reloaded");
                    }
                    // Often mid-rotation (cert written, key not yet).
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS reload failed; keeping the old material")
                    }
                }
            }
        });
        Ok(reloading)
    }

    /// An acceptor with the current material.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }
}
