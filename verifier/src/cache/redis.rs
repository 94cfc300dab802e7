//! The shared tier (L2): Redis, standalone or Cluster, plain or TLS, with
//! AUTH from the URL. Redis is never on the critical path:
//!
//! * every operation has a hard time budget (default 25 ms);
//! * an error or budget overrun counts as a miss, and after several in a
//!   row a circuit opens and Redis is skipped for a cool-down;
//! * values are sealed with an HMAC over key and value ([`super::seal`]);
//!   a value that fails the check is ignored, logged and counted.
//!
//! A dead Redis costs latency, never correctness.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;

use super::seal::{open, seal};
use crate::metrics::VerifierMetrics;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URLs: one for standalone, several for the
    /// seed nodes of a Cluster.
    pub urls: Vec<String>,
    /// Treat the URLs as Redis Cluster seed nodes.
    pub cluster: bool,
    /// CA (PEM) for `rediss://`; default: the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The HMAC key shared by the verifiers.
    pub hmac_key: Vec<u8>,
    /// Budget of each operation.
    pub budget: Duration,
    /// Consecutive failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open.
    pub breaker_cooldown: Duration,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Why L2 could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// Bad URL or TLS settings.
    #[error("redis: {0}")]
    Config(String),
    /// Could not connect at start-up.
    #[error("redis: cannot connect: {0}")]
    Connect(String),
}

/// The shared cache tier.
pub struct L2 {
    conn: Conn,
    settings: RedisSettings,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    metrics: VerifierMetrics,
    instance: String,
    /// Leases taken so far, for unique tokens.
    leases: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("urls", &self.settings.urls)
            .finish_non_exhaustive()
    }
}

/// The result of asking for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// We hold it, under this token: verify, publish, then release it with
    /// the token (only the holder's token deletes it).
    Acquired(String),
    /// Another verifier holds it: wait for its result.
    Held,
    /// Redis is unavailable: verify ourselves.
    Unavailable,
}

impl L2 {
    /// Connects. A Redis that is down at start-up is not fatal: the
    /// connection manager keeps reconnecting in the background, and until
    /// then every lookup is a miss.
    pub async fn connect(
        settings: RedisSettings,
        metrics: VerifierMetrics,
    ) -> Result<Self, L2Error> {
        let certs = || redis::TlsCertificates {
            client_tls: None,
            root_cert: settings.ca_pem.clone(),
        };
        let conn = if settings.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(settings.urls.clone())
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(settings.budget.max(Duration::from_millis(50)));
            if settings.ca_pem.is_some() {
                builder = builder.certs(certs());
            }
            let client = builder
                .build()
                .map_err(|e| L2Error::Config(e.to_string()))?;
            Conn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(|e| L2Error::Connect(e.to_string()))?,
            )
        } else {
            let url = settings
                .urls
                .first()
                .ok_or_else(|| L2Error::Config("no Redis URL".into()))?;
            let client = if settings.ca_pem.is_some() && url.starts_with("rediss://") {
                redis::Client::build_with_tls(url.as_str(), certs())
            } else {
                redis::Client::open(url.as_str())
            }
            .map_err(|e| L2Error::Config(e.to_string()))?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(settings.budget.max(Duration::from_millis(50))))
                .set_number_of_retries(1);
            Conn::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| L2Error::Connect(e.to_string()))?,
            )
        };
        Ok(L2 {
            conn,
            settings,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            metrics,
            instance: format!("{}-{}", std::process::id(), rand_suffix()),
            leases: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Whether the breaker is open now (for the `redis_breaker_open` gauge;
    /// unlike the request path, this never moves it to half-open).
    pub fn breaker_open(&self) -> bool {
        self.open_until
            .lock()
            .map(|g| g.is_some_and(|until| Instant::now() < until))
            .unwrap_or(true)
    }

    fn circuit_open(&self) -> bool {
        let mut open = match self.open_until.lock() {
            Ok(g) => g,
            Err(_) => return true,
        };
        match *open {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                // Half-open: let requests through; one failure reopens.
                *open = None;
                self.failures.store(
                    self.settings.breaker_threshold.saturating_sub(1),
                    Ordering::Relaxed,
                );
                false
            }
            None => false,
        }
    }

    fn record(&self, op: &'static str, result: Result<(), &str>, started: Instant) {
        self.metrics
            .redis_latency
            .get_or_create(&vec![("op", op.to_string())])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => self.failures.store(0, Ordering::Relaxed),
            Err(kind) => {
                self.metrics
                    .redis_errors
                    .get_or_create(&vec![("op", op.to_string()), ("error", kind.to_string())])
                    .inc();
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.settings.breaker_threshold
                    && let Ok(mut open) = self.open_until.lock()
                    && open.is_none()
                {
                    tracing::warn!(
                        failures = n,
                        "redis circuit opened; using L1 only for a while"
                    );
                    *open = Some(Instant::now() + self.settings.breaker_cooldown);
                }
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, op: &'static str, cmd: redis::Cmd) -> Option<T> {
        if self.circuit_open() {
            return None;
        }
        let started = Instant::now();
        let fut = async {
            match self.conn.clone() {
                Conn::Single(mut c) => query(&cmd, &mut c).await,
                Conn::Cluster(mut c) => query(&cmd, &mut c).await,
            }
        };
        match tokio::time::timeout(self.settings.budget, fut).await {
            Ok(Ok(v)) => {
                self.record(op, Ok(()), started);
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(op, error = %e, "redis error");
                self.record(op, Err("error"), started);
                None
            }
            Err(_) => {
                self.record(op, Err("budget"), started);
                None
            }
        }
    }

    /// Reads and checks a sealed value. `None` on miss, error, or a value
    /// that fails the integrity check.
    pub async fn get(&self, key: &str, kind: &'static str) -> Option<Vec<u8>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let sealed: Option<Vec<u8>> = self.run("get", cmd).await.flatten();
        let sealed = sealed?;
        match open(&self.settings.hmac_key, key, &sealed) {
            Ok(value) => Some(value.to_vec()),
            Err(e) => {
                tracing::warn!(key, kind, error = %e, "rejected a shared-cache value");
                self.metrics
                    .integrity_failures
                    .get_or_create(&vec![("kind", kind.to_string())])
                    .inc();
                None
            }
        }
    }

    /// Writes a sealed value that expires after `ttl`.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        let ms = ttl.as_millis().max(1) as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(seal(&self.settings.hmac_key, key, value))
            .arg("PX")
            .arg(ms);
        let _: Option<redis::Value> = self.run("set", cmd).await;
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        let _: Option<redis::Value> = self.run("del", cmd).await;
    }

    /// Tries to take the lease for `key` (`SET NX PX`) under a token unique
    /// to this acquisition.
    pub async fn lease(&self, key: &str, ttl: Duration) -> Lease {
        let n = self
            .leases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}-{n}", self.instance);
        let mut cmd = redis::cmd("SET");
        cmd.arg(lease_key(key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        match self.run::<Option<String>>("lease", cmd).await {
            Some(Some(_)) => Lease::Acquired(token),
            Some(None) => Lease::Held,
            None => Lease::Unavailable,
        }
    }

    /// Releases a lease we hold: compare-and-delete, so that a lease that
    /// expired while we verified and was taken by another verifier is left
    /// to its new holder.
    pub async fn release(&self, key: &str, token: &str) {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(lease_key(key))
            .arg(token);
        let _: Option<redis::Value> = self.run("release", cmd).await;
    }
}

async fn query<T: redis::FromRedisValue, C: ConnectionLike + Send>(
    cmd: &redis::Cmd,
    conn: &mut C,
) -> redis::RedisResult<T> {
    cmd.query_async(conn).await
}

/// Deletes KEYS[1] only if it still holds ARGV[1] (our token).
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// The lease key lives in the same Cluster slot as the value (hash tag).
fn lease_key(key: &str) -> String {
    format!("{{{key}}}:lease")
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}
