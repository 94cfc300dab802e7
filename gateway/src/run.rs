//! Starting the gateway: build the pool, check health once, serve HTTPS.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::admission::AdmissionLimits;
use crate::admission::pipeline::Admission;
use crate::alerts::Alerter;
use crate::audit::AuditLog;
use crate::cli::Cli;
use crate::cluster::{Cluster, ClusterSettings};
use crate::config::GatewayConfig;
use crate::discovery::{self, NameResolver, Target, TargetError};
use crate::http::{AppState, probe_router, router};
use crate::metrics::GatewayMetrics;
use crate::pool::{PoolSettings, VerifierPool};
use crate::tls;

/// A start-up error, naming the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file named by an option cannot be read.
    #[error("{option}: cannot read {path}: {source}")]
    Read {
        /// The option, e.g. `--verifier-ca`.
        option: &'static str,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The verifier list is unusable.
    #[error("--verifier: {0}")]
    Pool(#[from] crate::pool::PoolError),
    /// The serving certificate, its key or the client CA cannot be loaded.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// The config file is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// An alert receiver cannot be set up.
    #[error("alerting: {0}")]
    Alerting(#[from] crate::alerts::AlertSetupError),
    /// The audit log cannot be opened.
    #[error("auditLog.path {0}: {1}")]
    Audit(String, std::io::Error),
    /// A `--verifier` entry is malformed.
    #[error("--verifier: {0}")]
    Target(#[from] TargetError),
    /// `--dns-server` is unusable.
    #[error("--dns-server: {0}")]
    Dns(#[from] crate::discovery::DnsError),
    /// An `https://` verifier was given without `--verifier-ca`.
    #[error(
        "--verifier-ca is required for https:// verifiers (the CA their certificates chain to)"
    )]
    MissingCa,
    /// The server failed.
    #[error("server: {0}")]
    Serve(std::io::Error),
}

fn read(option: &'static str, path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|source| StartError::Read {
        option,
        path: path.display().to_string(),
        source,
    })
}

fn client_tls(cli: &Cli) -> Result<Option<ClientTlsConfig>, StartError> {
    if !cli
        .verifier
        .iter()
        .any(|u| u.starts_with("https://") || u.starts_with("dns+https://"))
    {
        return Ok(None);
    }
    let Some(ca) = &cli.verifier_ca else {
        return Err(StartError::MissingCa);
    };
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--verifier-ca", ca)?));
    if let (Some(cert), Some(key)) = (&cli.verifier_client_cert, &cli.verifier_client_key) {
        tls = tls.identity(Identity::from_pem(
            read("--verifier-client-cert", cert)?,
            read("--verifier-client-key", key)?,
        ));
    }
    Ok(Some(tls))
}

/// Runs the gateway until `shutdown` resolves.
pub async fn run(
    cli: Cli,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let config = match &cli.config {
        Some(path) => crate::config::load_file(path)?,
        None => GatewayConfig::default(),
    };
    let cluster = connect_cluster(&cli, &config).await;
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let targets = cli
        .verifier
        .iter()
        .map(|v| Target::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(StartError::Pool(crate::pool::PoolError::Empty));
    }
    let resolver = match cli.dns_server {
        Some(server) => NameResolver::server(server)?,
        None => NameResolver::System,
    };
    let settings = PoolSettings {
        connect_timeout: Duration::from_millis(cli.connect_timeout_ms),
        max_inflight: cli.max_inflight_per_verifier.max(1),
        balance: cli.balance,
        tls: client_tls(&cli)?,
        tls_name: targets
            .iter()
            .find_map(|t| t.tls_name().map(str::to_string)),
        memo: crate::memo::MemoSettings {
            ttl: Duration::from_millis(cli.memo_ttl_ms),
            max_entries: cli.memo_max_entries,
        },
    };
    let initial = match discovery::resolve_all(&targets, &resolver).await {
        Ok(urls) => urls,
        Err(e) => {
            tracing::warn!(error = %e, "verifier discovery failed at start-up; retrying in the background");
            Vec::new()
        }
    };
    let pool = Arc::new(VerifierPool::new(&initial, settings, metrics.clone())?);
    discovery::spawn_refresher(
        pool.clone(),
        targets,
        resolver,
        Duration::from_millis(cli.dns_refresh_ms.max(100)),
    );
    spawn_client_tls_reloader(&cli, pool.clone());
    let health_interval = Duration::from_millis(cli.health_interval_ms.max(50));
    let health_timeout = health_interval.min(Duration::from_secs(2));
    pool.check_health(health_timeout).await;
    {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(health_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                pool.check_health(health_timeout).await;
            }
        });
    }
    let serving = tls::ServingFiles {
        cert: cli.tls_cert.clone(),
        key: cli.tls_key.clone(),
        client_ca: cli.client_ca.clone(),
    };
    let tls_config = tls::load(&serving)?;
    tls::spawn_reloader(
        tls_config.clone(),
        serving,
        Duration::from_millis(cli.tls_reload_interval_ms.max(100)),
        metrics.clone(),
    );
    let admission = Admission {
        pool,
        limits: AdmissionLimits {
            deadline: Duration::from_millis(cli.deadline_ms),
            max_images: cli.max_images,
        },
        alerter: Alerter::new(&config.alerting, metrics.clone())?,
        audit: AuditLog::open(&config.audit_log.path)
            .map_err(|e| StartError::Audit(config.audit_log.path.clone(), e))?,
        cluster,
        config: Arc::new(config),
        metrics: metrics.clone(),
    };
    let state = AppState {
        admission: Arc::new(admission),
        body_limit: cli.max_body_bytes,
        body_timeout: Duration::from_millis(cli.deadline_ms),
        metrics,
        registry: Arc::new(registry),
    };
    let handle = axum_server::Handle::new();
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
        });
    }
    tracing::info!(
        addr = %cli.listen,
        verifiers = ?cli.verifier,
        client_auth = cli.client_ca.is_some(),
        "gateway listening"
    );
    let probe_app = probe_router(state.clone());
    let probe_handle = handle.clone();
    let probes = async move {
        match cli.probe_listen {
            Some(addr) => {
                tracing::info!(%addr, "serving probes and metrics over plain HTTP");
                axum_server::bind(addr)
                    .handle(probe_handle)
                    .serve(probe_app.into_make_service())
                    .await
            }
            None => Ok(()),
        }
    };
    // TCP_NODELAY: without it, the first response on a new TLS 1.3
    // connection can wait ~40 ms behind the session-ticket write for the
    // client's delayed ACK.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls_config)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let webhook = axum_server::bind(cli.listen)
        .acceptor(acceptor)
        .handle(handle.clone())
        .serve(router(state).into_make_service());
    tokio::try_join!(webhook, probes)
        .map(|_| ())
        .map_err(StartError::Serve)
}

/// Watches the verifier CA and client certificate files and swaps the
/// pool's TLS settings when they change (certificate rotation).
fn spawn_client_tls_reloader(cli: &Cli, pool: Arc<VerifierPool>) {
    let files: Vec<std::path::PathBuf> = [
        &cli.verifier_ca,
        &cli.verifier_client_cert,
        &cli.verifier_client_key,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let interval = Duration::from_millis(cli.tls_reload_interval_ms.max(100));
    let cli = cli.clone();
    portcullis_shared::watch::spawn(files, interval, move || match client_tls(&cli) {
        Ok(Some(tls)) => match pool.replace_tls(tls) {
            Ok(()) => {
                tracing::info!("verifier client TLS reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "verifier client TLS reload failed; keeping the old one");
                false
            }
        },
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "verifier client TLS reload failed; keeping the old one");
            false
        }
    });
}

/// Connects to the Kubernetes API when a feature needs it (namespace
/// scoping). Without access, namespaces are validated.
async fn connect_cluster(cli: &Cli, config: &GatewayConfig) -> Option<Cluster> {
    if !config.namespaced_validation.enabled {
        return None;
    }
    let settings = ClusterSettings {
        api_url: cli.kube_api_url.clone(),
        ca: cli.kube_ca.clone(),
        token_file: cli.kube_token_file.clone(),
    };
    match Cluster::connect(&settings).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes API access: every namespace will be validated");
            None
        }
    }
}
