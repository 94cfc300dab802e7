//! TLS for the gRPC server, with optional client-certificate verification
//! (mTLS) and reload of the certificate, key and client CA when they change
//! on disk (as cert-manager rotates them): new connections use the new
//! material; established connections are not interrupted. Building the
//! config and watching the files are `portcullis_shared`'s.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_shared::serving::server_config;
pub use portcullis_shared::serving::{ServingFiles as TlsFiles, TlsError};
use rustls::ServerConfig;

/// gRPC is HTTP/2 only.
const ALPN: &[&[u8]] = &[b"h2"];

/// A server config that follows its files.
#[derive(Debug, Clone)]
pub struct Reloading {
    current: Arc<ArcSwap<ServerConfig>>,
}

impl Reloading {
    /// Loads the files and checks them for changes every `interval`.
    pub fn start(files: TlsFiles, interval: Duration) -> Result<Self, TlsError> {
        let current = Arc::new(ArcSwap::new(Arc::new(server_config(&files, ALPN)?)));
        let reloading = Reloading {
            current: current.clone(),
        };
        portcullis_shared::watch::spawn(files.paths(), interval, move || {
            match server_config(&files, ALPN) {
                Ok(config) => {
                    current.store(Arc::new(config));
                    tracing::info!(cert = %files.cert.display(), "TLS material reloaded");
                    true
                }
                // Often mid-rotation (cert written, key not yet).
                Err(e) => {
                    tracing::warn!(error = %e, "TLS reload failed; keeping the old material");
                    false
                }
            }
        });
        Ok(reloading)
    }

    /// An acceptor with the current material.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }
}
