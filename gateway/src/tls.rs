//! The webhook's TLS: the serving certificate and, with `--client-ca`, the
//! CA whose client certificates the listener requires (so that only the API
//! server, presenting a certificate from its `AdmissionConfiguration`, gets
//! an answer). All three files are reloaded from disk when they change (as
//! cert-manager rotates them), without a restart or dropped connections.
//! Building the config and watching the files are `portcullis_shared`'s.

use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use portcullis_shared::serving::server_config;
pub(crate) use portcullis_shared::serving::{ServingFiles, TlsError};

use crate::metrics::GatewayMetrics;

/// The protocols the webhook speaks: the API server uses HTTP/2 or 1.1.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Loads the files into a config the server can swap at run time.
pub(crate) fn load(files: &ServingFiles) -> Result<RustlsConfig, TlsError> {
    Ok(RustlsConfig::from_config(Arc::new(server_config(
        files, ALPN,
    )?)))
}

/// Watches the files every `interval` and reloads `config` when any
/// changes. A failed reload keeps the previous material (and is retried).
pub(crate) fn spawn_reloader(
    config: RustlsConfig,
    files: ServingFiles,
    interval: Duration,
    metrics: GatewayMetrics,
) {
    portcullis_shared::watch::spawn(files.paths(), interval, move || {
        let ok = match server_config(&files, ALPN) {
            Ok(new) => {
                config.reload_from_config(Arc::new(new));
                tracing::info!(cert = %files.cert.display(), "webhook TLS material reloaded");
                true
            }
            Err(e) => {
                // Often the cert and key are mid-rotation; retry next tick.
                tracing::warn!(error = %e, "webhook TLS reload failed; keeping the old material");
                false
            }
        };
        metrics
            .tls_reloads
            .get_or_create(&vec![
                ("what", "webhook".to_string()),
                ("result", if ok { "ok" } else { "error" }.to_string()),
            ])
            .inc();
        ok
    });
}
