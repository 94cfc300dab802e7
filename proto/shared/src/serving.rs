//! A rustls server config from files: the certificate chain, its key, and
//! optionally the CA bundle client certificates must chain to (then a
//! client without one fails the handshake). Errors name the option and the
//! file at fault.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The files a TLS listener is built from.
#[derive(Debug, Clone)]
pub struct ServingFiles {
    /// Certificate chain (PEM), `--tls-cert`.
    pub cert: PathBuf,
    /// Private key (PEM), `--tls-key`.
    pub key: PathBuf,
    /// CA bundle (PEM) client certificates must chain to, `--client-ca`;
    /// `None`: clients are not authenticated.
    pub client_ca: Option<PathBuf>,
}

impl ServingFiles {
    /// The files, for watching them.
    pub fn paths(&self) -> Vec<PathBuf> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// Why TLS could not be set up: the option, its file, and what is wrong.
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

/// Builds the server config, offering `alpn` protocols.
pub fn server_config(files: &ServingFiles, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
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
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
