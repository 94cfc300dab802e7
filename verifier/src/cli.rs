//! Command-line interface: `serve` runs the gRPC server, `verify` runs the
//! same decision path offline for CI pipelines and forensics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::cache::redis::{L2, RedisSettings};
use crate::cache::{Caches, Sizing, Ttls};
use crate::config;
use crate::decision::{Engine, Outcome, Workload};
use crate::metrics::VerifierMetrics;

/// Portcullis verifier: matches images against the image policy and
/// verifies their signatures.
#[derive(Debug, Parser)]
#[command(name = "portcullis-verifier", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (portcullis.v1.Verifier and grpc.health.v1).
    Serve(Box<ServeArgs>),
    /// Decide on images offline and print one result per image. Exit status:
    /// 0 all allowed, 1 any denied, 2 usage or config error.
    Verify(VerifyArgs),
    /// Print the verifier and gateway configs for a Connaisseur Helm values
    /// file, with a note wherever the meaning changes. Exit status: 0 the
    /// migrated config loads, 1 it does not yet (see the notes), 2 the file
    /// cannot be read.
    MigrateConnaisseur(MigrateArgs),
    /// Sigstore tools: `verify-bundle` checks one bundle against an
    /// artifact with the admission code path (the sigstore-conformance
    /// CLI protocol). Exit status: 0 verified, 1 not, 2 usage or input
    /// error.
    #[command(subcommand)]
    Sigstore(crate::bundle_verify::SigstoreCommand),
}

/// Options of `migrate-connaisseur`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Connaisseur's values.yaml (or its `application` block).
    pub values: std::path::PathBuf,
    /// Also write verifier.yaml and gateway.yaml into this directory.
    #[arg(long)]
    pub out_dir: Option<std::path::PathBuf>,
}

/// Runs `migrate-connaisseur`.
pub fn run_migrate(args: MigrateArgs) -> ExitCode {
    let file = args.values.display().to_string();
    let text = match std::fs::read_to_string(&args.values) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let m = match crate::migrate::migrate(&text, &file) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", crate::migrate::render(&m, &file));
    if let Some(dir) = &args.out_dir {
        for (name, body) in [("verifier.yaml", &m.verifier), ("gateway.yaml", &m.gateway)] {
            if let Err(e) = std::fs::write(dir.join(name), body) {
                eprintln!("error: cannot write {}: {e}", dir.join(name).display());
                return ExitCode::from(2);
            }
        }
    }
    if m.load_error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (validators and policy).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// The address to listen on.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The deadline for calls that carry no grpc-timeout, in milliseconds.
    #[arg(long, env = "PORTCULLIS_DEFAULT_DEADLINE_MS", default_value_t = 8000)]
    pub default_deadline_ms: u64,
    /// Serve gRPC over TLS with this certificate chain (PEM); reloaded when
    /// it changes. Without it the server speaks plain TCP.
    #[arg(long, env = "PORTCULLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates (mTLS) chaining to this CA bundle (PEM).
    #[arg(long, env = "PORTCULLIS_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// How often TLS files are checked for changes, in milliseconds.
    #[arg(
        long,
        env = "PORTCULLIS_TLS_RELOAD_INTERVAL_MS",
        default_value_t = 5000
    )]
    pub tls_reload_interval_ms: u64,
    /// Use the workload's imagePullSecrets (read through the Kubernetes API)
    /// as registry credentials, by exact host. Off by default.
    #[arg(long, env = "PORTCULLIS_PULL_SECRETS")]
    pub pull_secrets: bool,
    /// The Kubernetes API server URL (for --pull-secrets). Default:
    /// in-cluster service account, or kubeconfig.
    #[arg(long, env = "PORTCULLIS_KUBE_API_URL")]
    pub kube_api_url: Option<String>,
    /// CA bundle (PEM) of --kube-api-url.
    #[arg(long, env = "PORTCULLIS_KUBE_CA")]
    pub kube_ca: Option<PathBuf>,
    /// Bearer token file for --kube-api-url.
    #[arg(long, env = "PORTCULLIS_KUBE_TOKEN_FILE")]
    pub kube_token_file: Option<PathBuf>,
    /// How often `k8s://` trust-root key Secrets are read again; a changed
    /// key takes effect without a restart (a Secret that cannot be read
    /// keeps the key in use).
    #[arg(long, env = "PORTCULLIS_SECRET_REFRESH_SECS", default_value_t = 30)]
    pub secret_refresh_secs: u64,
    /// The length of the policy-epoch leases granted to gateways, in
    /// milliseconds (0: none; gateways then never reuse an answer without
    /// asking). A gateway renews its lease every health check, so keep
    /// this well above the gateways' `--health-interval-ms`. With leases
    /// on, `serve` waits one lease before it listens, and a refreshed
    /// `k8s://` key takes effect one lease after it is read (see
    /// `lease.rs`); hence at most 60000.
    #[arg(
        long,
        env = "PORTCULLIS_EPOCH_LEASE_MS",
        default_value_t = 3000,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub epoch_lease_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "PORTCULLIS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Cache settings.
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Cache options of `serve`. Without `--redis-url` the verifier caches in
/// process only (L1).
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Redis URL(s) for the shared cache (L2): `redis://[:PASSWORD@]HOST:PORT`
    /// or `rediss://` for TLS; comma-separated seed nodes with
    /// `--redis-cluster`.
    #[arg(long, env = "PORTCULLIS_REDIS_URL", value_delimiter = ',')]
    pub redis_url: Vec<String>,
    /// Treat the Redis URLs as Redis Cluster seed nodes.
    #[arg(long, env = "PORTCULLIS_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// CA bundle (PEM) for `rediss://`. Default: the system roots.
    #[arg(long, env = "PORTCULLIS_REDIS_CA")]
    pub redis_ca: Option<PathBuf>,
    /// File holding the HMAC key that seals shared-cache values (required
    /// with Redis; at least 16 bytes). Or set PORTCULLIS_CACHE_HMAC_KEY.
    #[arg(long, env = "PORTCULLIS_CACHE_HMAC_KEY_FILE")]
    pub cache_hmac_key_file: Option<PathBuf>,
    /// Time budget of each Redis operation, in milliseconds; on overrun the
    /// lookup is a miss.
    #[arg(long, env = "PORTCULLIS_REDIS_BUDGET_MS", default_value_t = 25)]
    pub redis_budget_ms: u64,
    /// How long allowed verdicts are cached, in seconds.
    #[arg(long, env = "PORTCULLIS_VERDICT_TTL_SECS", default_value_t = 600)]
    pub verdict_ttl_secs: u64,
    /// How long definitive denials are cached, in seconds (transient
    /// failures never are).
    #[arg(long, env = "PORTCULLIS_NEGATIVE_TTL_SECS", default_value_t = 30)]
    pub negative_ttl_secs: u64,
    /// How long past its TTL an allowed verdict may still answer, in
    /// seconds, when re-verifying it fails transiently (registry, token
    /// service or Notary server unreachable, timing out, 429/5xx). Only for
    /// the exact digest under the same rule and trust material; never for
    /// denials; a definitive answer ends it at once; 0 turns it off.
    #[arg(long, env = "PORTCULLIS_STALE_IF_ERROR_SECS", default_value_t = 600)]
    pub stale_if_error_secs: u64,
    /// How long a tag's resolved digest is reused, in seconds.
    #[arg(long, env = "PORTCULLIS_TAG_TTL_SECS", default_value_t = 30)]
    pub tag_ttl_secs: u64,
    /// How long Notary trust data is reused at most, in seconds (never past
    /// its timestamp role's expiry).
    #[arg(long, env = "PORTCULLIS_TRUST_TTL_SECS", default_value_t = 300)]
    pub trust_ttl_secs: u64,
    /// The most entries per cache kind in process.
    #[arg(long, env = "PORTCULLIS_L1_MAX_ENTRIES", default_value_t = 200_000)]
    pub l1_max_entries: u64,
    /// The most bytes per cache kind in process.
    #[arg(long, env = "PORTCULLIS_L1_MAX_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub l1_max_bytes: u64,
    /// How long to wait for another verifier that is verifying the same
    /// image, in milliseconds.
    #[arg(long, env = "PORTCULLIS_LEASE_MS", default_value_t = 5000)]
    pub lease_ms: u64,
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The config file (validators and policy).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// The evaluation time for expiry checks (RFC 3339), for forensics and
    /// for replaying captured trust data. Default: now.
    #[arg(long)]
    pub at: Option<String>,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// The image references, as written in a manifest.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// One line of `verify --json` output. Scripts depend on these names.
#[derive(Debug, Serialize)]
pub(crate) struct JsonResult {
    /// The image as given.
    pub(crate) image: String,
    /// Whether it is allowed.
    pub(crate) allowed: bool,
    /// The verified digest, or null.
    pub(crate) digest: Option<String>,
    /// The pinned reference, or null.
    pub(crate) reference: Option<String>,
    /// The matched rule's pattern, or null.
    pub(crate) rule: Option<String>,
    /// The validator's name, or null.
    pub(crate) validator: Option<String>,
    /// The reason code, e.g. `NO_MATCHING_RULE`.
    pub(crate) reason: String,
    /// The human message.
    pub(crate) message: String,
    /// Warnings of an allowed image (an `audit`-level rule's findings);
    /// left out when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
}

impl JsonResult {
    fn new(image: &str, outcome: &Outcome) -> Self {
        let r = outcome.to_response();
        let opt = |s: String| (!s.is_empty()).then_some(s);
        JsonResult {
            image: image.to_string(),
            allowed: r.is_allowed(),
            digest: opt(r.digest.clone()),
            reference: opt(r.reference.clone()),
            rule: opt(r.rule.clone()),
            validator: opt(r.validator.clone()),
            reason: r.reason_text(),
            message: r.message,
            warnings: r.warnings,
        }
    }
}

/// Runs `verify`; returns the process exit code.
pub async fn run_verify(args: VerifyArgs) -> ExitCode {
    let now: DateTime<Utc> = match &args.at {
        None => Utc::now(),
        Some(at) => match DateTime::parse_from_rfc3339(at) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!("error: --at {at:?} is not an RFC 3339 time: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let config = match config::load_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match Engine::new(config, Arc::new(Caches::local())).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let no_workload = Workload::default();
    let outcomes = futures::future::join_all(
        args.images
            .iter()
            .map(|i| engine.decide(i, now, deadline, &no_workload)),
    )
    .await;
    let all_allowed = outcomes.iter().all(Outcome::allowed);
    let results: Vec<JsonResult> = args
        .images
        .iter()
        .zip(&outcomes)
        .map(|(image, outcome)| JsonResult::new(image, outcome))
        .collect();
    if args.json {
        match serde_json::to_string_pretty(&results) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        for r in &results {
            let verdict = if r.allowed { "ALLOWED" } else { "DENIED" };
            let pinned = r
                .reference
                .as_deref()
                .map(|p| format!(" -> {p}"))
                .unwrap_or_default();
            println!("{}: {verdict} {}: {}{pinned}", r.image, r.reason, r.message);
        }
    }
    if all_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Why `serve` could not start (or stopped), naming the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An option's file cannot be read.
    #[error("{option}: cannot read {path}: {source}")]
    Read {
        /// The option.
        option: &'static str,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Redis is configured without an HMAC key.
    #[error(
        "--redis-url needs an HMAC key of at least 16 bytes: --cache-hmac-key-file or PORTCULLIS_CACHE_HMAC_KEY"
    )]
    NoHmacKey,
    /// Redis settings are unusable.
    #[error("--redis-url: {0}")]
    Redis(#[from] crate::cache::redis::L2Error),
    /// The config file is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// A validator cannot be built from its config.
    #[error("{0}")]
    Build(#[from] crate::validators::BuildError),
    /// `--pull-secrets` has no Kubernetes API.
    #[error("--pull-secrets: {0}")]
    PullSecrets(#[from] portcullis_shared::kube_client::KubeSetupError),
    /// The config names `k8s://` Secret keys and there is no Kubernetes API.
    #[error("{file}: `k8s://` trust-root keys need the Kubernetes API: {source}")]
    SecretKeys {
        /// The config file.
        file: String,
        /// Why the client cannot be made.
        source: portcullis_shared::kube_client::KubeSetupError,
    },
    /// The serving certificate, key or client CA.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// `--metrics-listen` cannot be served.
    #[error("--metrics-listen: {0}")]
    Metrics(std::io::Error),
    /// The gRPC server failed.
    #[error("server: {0}")]
    Serve(Box<dyn std::error::Error + Send + Sync>),
}

fn read_option(option: &'static str, path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|source| StartError::Read {
        option,
        path: path.display().to_string(),
        source,
    })
}

/// Builds the caches from the options: L1 always, L2 with `--redis-url`.
pub(crate) async fn build_caches(
    args: &CacheArgs,
    metrics: VerifierMetrics,
) -> Result<Caches, StartError> {
    let ttls = Ttls {
        verdict: Duration::from_secs(args.verdict_ttl_secs),
        negative: Duration::from_secs(args.negative_ttl_secs),
        stale_if_error: Duration::from_secs(args.stale_if_error_secs),
        tag: Duration::from_secs(args.tag_ttl_secs),
        trust: Duration::from_secs(args.trust_ttl_secs),
    };
    let sizing = Sizing {
        max_entries: args.l1_max_entries,
        max_bytes: args.l1_max_bytes,
        lease: Duration::from_millis(args.lease_ms),
        ..Sizing::default()
    };
    let l2 = if args.redis_url.is_empty() {
        None
    } else {
        let hmac_key = match (
            &args.cache_hmac_key_file,
            std::env::var("PORTCULLIS_CACHE_HMAC_KEY"),
        ) {
            (Some(path), _) => read_option("--cache-hmac-key-file", path)?,
            (None, Ok(key)) => key.into_bytes(),
            (None, Err(_)) => Vec::new(),
        };
        let hmac_key = hmac_key_bytes(hmac_key);
        if hmac_key.len() < 16 {
            return Err(StartError::NoHmacKey);
        }
        let ca_pem = match &args.redis_ca {
            Some(path) => Some(read_option("--redis-ca", path)?),
            None => None,
        };
        let settings = RedisSettings {
            urls: args.redis_url.clone(),
            cluster: args.redis_cluster,
            ca_pem,
            hmac_key,
            budget: Duration::from_millis(args.redis_budget_ms.max(1)),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(2),
        };
        Some(Arc::new(L2::connect(settings, metrics.clone()).await?))
    };
    Ok(Caches::new(ttls, sizing, l2, metrics))
}

impl ServeArgs {
    /// How to reach the Kubernetes API (pull secrets, `k8s://` keys).
    fn kube_settings(&self) -> crate::pull_secrets::KubeSettings {
        crate::pull_secrets::KubeSettings {
            api_url: self.kube_api_url.clone(),
            ca: self.kube_ca.clone(),
            token_file: self.kube_token_file.clone(),
        }
    }
}

/// The config file, with `k8s://` trust-root keys read from their
/// Secrets through the Kubernetes API first (see `config::k8s_keys`), and
/// what to watch for changes when there are any.
async fn load_resolving_secrets(
    args: &ServeArgs,
) -> Result<(config::Config, Option<crate::secret_keys::Watched>), StartError> {
    let file = args.config.display().to_string();
    let text = portcullis_shared::config_error::read_file(&args.config)?;
    if !config::k8s_keys::mentions_secrets(&text) {
        return Ok((config::parse_str(&text, &file)?, None));
    }
    let client = portcullis_shared::kube_client::connect(&args.kube_settings())
        .await
        .map_err(|source| StartError::SecretKeys {
            file: file.clone(),
            source,
        })?;
    let resolved = config::k8s_keys::resolve(&text, &file, &client).await?;
    let config = config::parse_str(&resolved, &file)?;
    Ok((
        config,
        Some(crate::secret_keys::Watched {
            file,
            written: text,
            resolved,
            client,
        }),
    ))
}

/// Samples the cache-size and breaker gauges every 5 s (cheap: counters
/// moka keeps, a mutex read).
fn spawn_gauge_sampler(caches: Arc<Caches>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let m = &caches.metrics;
            for (kind, n) in [
                ("verdict", caches.verdicts.l1_entries()),
                ("tag", caches.tags.l1_entries()),
                ("trust", caches.trust.l1_entries()),
            ] {
                m.cache_entries
                    .get_or_create(&vec![("kind", kind.to_string())])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let open = caches.l2.as_ref().is_some_and(|l2| l2.breaker_open());
            m.redis_breaker_open.set(i64::from(open));
        }
    });
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub async fn run_serve(args: ServeArgs) -> Result<(), StartError> {
    let started = tokio::time::Instant::now();
    let leases = Arc::new(crate::lease::Leases::new(Duration::from_millis(
        args.epoch_lease_ms,
    )));
    let (config, watched) = load_resolving_secrets(&args).await?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = VerifierMetrics::register(&mut registry);
    let caches = Arc::new(build_caches(&args.cache, metrics).await?);
    let mut engine = Engine::new(config, caches.clone()).await?;
    let mut pull_secrets = None;
    if args.pull_secrets {
        let reader = crate::pull_secrets::PullSecrets::connect(&args.kube_settings()).await?;
        pull_secrets = Some(reader.clone());
        engine = engine.with_pull_secrets(reader);
    }
    let engine = crate::decision::shared(engine);
    if let Some(watched) = watched {
        crate::secret_keys::spawn(
            watched,
            engine.clone(),
            crate::secret_keys::Rebuild {
                caches: caches.clone(),
                pull_secrets,
            },
            Duration::from_secs(args.secret_refresh_secs.max(1)),
            leases.clone(),
        );
    }
    if let Some(addr) = args.metrics_listen {
        spawn_gauge_sampler(caches.clone());
        crate::server::serve_metrics(addr, Arc::new(registry))
            .await
            .map_err(StartError::Metrics)?;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::Reloading::start(
            crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.client_ca.clone(),
            },
            Duration::from_millis(args.tls_reload_interval_ms.max(100)),
        )?),
        _ => None,
    };
    // Not before any lease a process we replace at this address granted
    // has ended (see `lease.rs`).
    let shutdown = portcullis_shared::startup::shutdown_signal();
    tokio::pin!(shutdown);
    let delay = leases.start_delay();
    if started.elapsed() < delay {
        tracing::info!(
            wait_ms = (delay - started.elapsed()).as_millis() as u64,
            "waiting out leases a previous process may have granted before listening"
        );
        tokio::select! {
            () = tokio::time::sleep_until(started + delay) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
    crate::server::serve(
        args.listen,
        engine,
        leases,
        Duration::from_millis(args.default_deadline_ms),
        tls,
        shutdown,
    )
    .await
    .map_err(StartError::Serve)
}

/// The cache HMAC key as given: the file's bytes (or the variable's), minus
/// one trailing line ending (`echo` and editors add one). Binary keys keep
/// every byte: nothing is decoded as text.
fn hmac_key_bytes(mut key: Vec<u8>) -> Vec<u8> {
    if key.ends_with(b"\r\n") {
        key.truncate(key.len() - 2);
    } else if key.ends_with(b"\n") {
        key.truncate(key.len() - 1);
    }
    key
}

#[cfg(test)]
mod hmac_key_tests {
    use super::hmac_key_bytes;

    #[test]
    fn binary_keys_keep_every_byte() {
        // Invalid UTF-8: a lossy decoding turned all of these into U+FFFD.
        let a: Vec<u8> = (0x80..0xa0).collect();
        let b: Vec<u8> = (0xa0..0xc0).collect();
        assert_eq!(hmac_key_bytes(a.clone()), a);
        assert_ne!(hmac_key_bytes(a), hmac_key_bytes(b));
        let mut with_nl = b"0123456789abcdef".to_vec();
        with_nl.push(b'\n');
        assert_eq!(hmac_key_bytes(with_nl), b"0123456789abcdef");
        assert_eq!(hmac_key_bytes(b"key\r\n".to_vec()), b"key");
        assert_eq!(hmac_key_bytes(b" key ".to_vec()), b" key ");
    }
}

#[cfg(test)]
mod lease_flag_tests {
    use clap::Parser as _;

    use super::{Cli, Command};

    fn lease(value: &str) -> Result<u64, clap::Error> {
        let cli = Cli::try_parse_from([
            "portcullis-verifier",
            "serve",
            "--config",
            "c.yaml",
            "--epoch-lease-ms",
            value,
        ])?;
        match cli.command {
            Command::Serve(args) => Ok(args.epoch_lease_ms),
            _ => unreachable!("parsed as serve"),
        }
    }

    #[test]
    fn epoch_leases_are_bounded_so_a_key_refresh_never_waits_long() {
        assert_eq!(lease("0").unwrap(), 0);
        assert_eq!(lease("60000").unwrap(), 60_000);
        let e = lease("60001").unwrap_err().to_string();
        assert!(e.contains("--epoch-lease-ms"), "{e}");
    }
}
