//! The webhook's serving certificate, reloaded from disk when it changes
//! (as cert-manager rotates it), without a restart or dropped connections.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;

use crate::metrics::GatewayMetrics;

/// Loads the certificate chain and key (PEM).
pub async fn load(cert: &Path, key: &Path) -> Result<RustlsConfig, std::io::Error> {
    RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot load TLS certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            ),
        )
    })
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches `cert` and `key` every `interval` and reloads `config` when either
/// changes. A failed reload keeps the previous certificate.
pub fn spawn_reloader(
    config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    interval: Duration,
    metrics: GatewayMetrics,
) {
    tokio::spawn(async move {
        let mut last = (stamp(&cert), stamp(&key));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = (stamp(&cert), stamp(&key));
            if now == last {
                continue;
            }
            match config.reload_from_pem_file(&cert, &key).await {
                Ok(()) => {
                    tracing::info!(cert = %cert.display(), "webhook certificate reloaded");
                    metrics
                        .tls_reloads
                        .get_or_create(&vec![
                            ("what", "webhook".to_string()),
                            ("result", "ok".to_string()),
                        ])
                        .inc();
                    last = now;
                }
                Err(e) => {
                    // Often the cert and key are mid-rotation; retry next tick.
                    tracing::warn!(cert = %cert.display(), error = %e, "webhook certificate reload failed; keeping the old one");
                    metrics
                        .tls_reloads
                        .get_or_create(&vec![
                            ("what", "webhook".to_string()),
                            ("result", "error".to_string()),
                        ])
                        .inc();
                }
            }
        }
    });
}
