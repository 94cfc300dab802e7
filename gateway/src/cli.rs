//! Command-line options. Every option can also be set from a
//! `PORTCULLIS_*` environment variable, named in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::pool::Balance;

/// Portcullis gateway: the HTTPS admission webhook. It reads AdmissionReview
/// v1, verifies every image through the verifiers in parallel, and answers
/// allow or deny (with a JSON patch pinning tags to digests on /mutate).
#[derive(Debug, Clone, Parser)]
#[command(name = "portcullis-gateway", version)]
pub struct Cli {
    /// The HTTPS address to listen on.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// The webhook's serving certificate chain (PEM). Reloaded when it
    /// changes on disk.
    #[arg(long, env = "PORTCULLIS_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// The webhook's private key (PEM).
    #[arg(long, env = "PORTCULLIS_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Require a client certificate chaining to this CA bundle (PEM) on the
    /// webhook listener: the API server presents one through its
    /// AdmissionConfiguration (deploy/kubernetes/README.md), and any other
    /// client fails the TLS handshake and gets no answer. Reloaded when the
    /// file changes. Kubelet probes present no certificate: serve them on
    /// --probe-listen.
    #[arg(long, env = "PORTCULLIS_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Also serve `GET /healthz`, `/readyz` and `/metrics` (never the
    /// webhooks) over plain HTTP on this address, for kubelet probes and
    /// Prometheus when --client-ca closes the webhook listener to them.
    #[arg(long, env = "PORTCULLIS_PROBE_LISTEN")]
    pub probe_listen: Option<SocketAddr>,
    /// Verifiers, comma-separated: `http://HOST:PORT` (plain TCP, an
    /// explicit choice), `https://HOST:PORT` (TLS), or `dns:///NAME:PORT` /
    /// `dns+https:///NAME:PORT` for every address of NAME (a headless
    /// Service), re-resolved every --dns-refresh-ms.
    #[arg(
        long,
        env = "PORTCULLIS_VERIFIER",
        value_delimiter = ',',
        required = true
    )]
    pub verifier: Vec<String>,
    /// The CA bundle (PEM) that verifier certificates must chain to, for
    /// `https://` verifiers. Required when any verifier URL is `https://`.
    #[arg(long, env = "PORTCULLIS_VERIFIER_CA")]
    pub verifier_ca: Option<PathBuf>,
    /// A client certificate (PEM) presented to `https://` verifiers (mTLS).
    #[arg(
        long,
        env = "PORTCULLIS_VERIFIER_CLIENT_CERT",
        requires = "verifier_client_key"
    )]
    pub verifier_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "PORTCULLIS_VERIFIER_CLIENT_KEY",
        requires = "verifier_client_cert"
    )]
    pub verifier_client_key: Option<PathBuf>,
    /// The time budget of one admission, in milliseconds. Keep it safely
    /// under the webhook's timeoutSeconds. Images without an answer in time
    /// are denied with TIMEOUT.
    #[arg(long, env = "PORTCULLIS_DEADLINE_MS", default_value_t = 8000)]
    pub deadline_ms: u64,
    /// The largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "PORTCULLIS_MAX_BODY_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// The most distinct images verified per admission (more: deny with
    /// TOO_MANY_IMAGES).
    #[arg(long, env = "PORTCULLIS_MAX_IMAGES", default_value_t = 64)]
    pub max_images: usize,
    /// The most concurrent calls per verifier (beyond: the next verifier, or
    /// deny with OVERLOADED).
    #[arg(
        long,
        env = "PORTCULLIS_MAX_INFLIGHT_PER_VERIFIER",
        default_value_t = 512
    )]
    pub max_inflight_per_verifier: usize,
    /// How to spread calls over verifiers.
    #[arg(long, env = "PORTCULLIS_BALANCE", value_enum, default_value_t = Balance::Rendezvous)]
    pub balance: Balance,
    /// The connect timeout to a verifier, in milliseconds.
    #[arg(long, env = "PORTCULLIS_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub connect_timeout_ms: u64,
    /// How often each verifier's health is checked (and its policy-epoch
    /// lease renewed), in milliseconds.
    #[arg(long, env = "PORTCULLIS_HEALTH_INTERVAL_MS", default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// The longest a verifier's allow is remembered and reused for the same
    /// request, in milliseconds (never past the lifetime the verifier gives
    /// it, and only under its lease; see README "The memo of verifier
    /// allows"). 0 turns the memo off.
    #[arg(long, env = "PORTCULLIS_MEMO_TTL_MS", default_value_t = 5000)]
    pub memo_ttl_ms: u64,
    /// The most verifier allows remembered at once.
    #[arg(long, env = "PORTCULLIS_MEMO_MAX_ENTRIES", default_value_t = 10_000)]
    pub memo_max_entries: usize,
    /// The gateway config file (YAML): detection mode, resource validation
    /// mode, namespace scoping, unchanged approval, alerting, audit log. See
    /// the README. Default: all off except unchanged approval; audit log to
    /// stdout.
    #[arg(long, env = "PORTCULLIS_GATEWAY_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// The Kubernetes API server URL, for namespace labels (namespace
    /// scoping). Default: in-cluster service account, or kubeconfig.
    #[arg(long, env = "PORTCULLIS_KUBE_API_URL")]
    pub kube_api_url: Option<String>,
    /// CA bundle (PEM) of the API server given by --kube-api-url.
    #[arg(long, env = "PORTCULLIS_KUBE_CA")]
    pub kube_ca: Option<std::path::PathBuf>,
    /// Bearer token file for --kube-api-url.
    #[arg(long, env = "PORTCULLIS_KUBE_TOKEN_FILE")]
    pub kube_token_file: Option<std::path::PathBuf>,
    /// How often `dns:///` verifier names are re-resolved, in milliseconds.
    #[arg(long, env = "PORTCULLIS_DNS_REFRESH_MS", default_value_t = 5000)]
    pub dns_refresh_ms: u64,
    /// Resolve `dns:///` names with this DNS server (IP:PORT, UDP) instead
    /// of the system resolver.
    #[arg(long, env = "PORTCULLIS_DNS_SERVER")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// How often certificate files are checked for changes, in milliseconds.
    #[arg(
        long,
        env = "PORTCULLIS_TLS_RELOAD_INTERVAL_MS",
        default_value_t = 5000
    )]
    pub tls_reload_interval_ms: u64,
}
