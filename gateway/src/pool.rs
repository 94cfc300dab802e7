//! The verifier pool: endpoints, balancing, health checks and failover.
//!
//! * **Transport** is chosen by the URL: `http://` is plain TCP (an explicit
//!   choice), `https://` is TLS with the configured CA and optional client
//!   certificate.
//! * **Balancing** is rendezvous hashing of the image reference by default,
//!   so each verifier's cache holds its share of images; the next endpoint in
//!   hash order is the fallback. Power-of-two-choices (least in-flight) is the
//!   alternative.
//! * **Failover:** a call that fails at the transport level is retried once
//!   on the next endpoint, within the admission deadline. The failing
//!   endpoint is ejected until its health check passes again.
//! * **Limits:** each endpoint has a bounded number of in-flight calls; when
//!   every candidate is full the image is denied with `OVERLOADED` instead
//!   of queueing past the deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_proto::v1::verifier_client::VerifierClient;
use portcullis_proto::{Reason, Source, Verdict, VerifyRequest, VerifyResponse};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint as TonicEndpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::memo::{LeaseSlot, Memo, MemoSettings, Remembered};
use crate::metrics::GatewayMetrics;

/// The gRPC service name the verifiers report health for.
pub(crate) const VERIFIER_SERVICE: &str = "portcullis.v1.Verifier";

/// How calls are spread over endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Balance {
    /// Rendezvous hashing of the image reference (cache affinity).
    Rendezvous,
    /// Power of two random choices, least in-flight calls wins.
    P2c,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Maximum concurrent calls per endpoint.
    pub max_inflight: usize,
    /// Balancing strategy.
    pub balance: Balance,
    /// TLS for `https://` endpoints.
    pub tls: Option<ClientTlsConfig>,
    /// The name verifier certificates are checked against when the
    /// endpoint is an IP address (DNS discovery with TLS).
    pub tls_name: Option<String>,
    /// The memo of verifier allows (`memo.rs`).
    pub memo: MemoSettings,
}

/// A pool construction error.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URL has neither `http://` nor `https://`.
    #[error("verifier URL {0:?} must start with http:// (plain TCP) or https:// (TLS)")]
    Scheme(String),
    /// tonic rejected the URL or TLS settings.
    #[error("verifier URL {url:?}: {source}")]
    Endpoint {
        /// The URL.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// No endpoints were given.
    #[error("no verifier URLs given")]
    Empty,
}

/// One verifier endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    url: String,
    client: VerifierClient<Channel>,
    health: HealthClient<Channel>,
    healthy: AtomicBool,
    inflight: Arc<Semaphore>,
    max_inflight: usize,
    /// The lease on this verifier's policy epoch, renewed with each health
    /// check; the memo reuses its answers only under it.
    lease: Arc<LeaseSlot>,
}

impl Endpoint {
    /// Creates an endpoint that connects lazily.
    pub(crate) fn new(url: &str, settings: &PoolSettings) -> Result<Self, PoolError> {
        let endpoint_err = |source| PoolError::Endpoint {
            url: url.to_string(),
            source,
        };
        let mut endpoint = TonicEndpoint::from_shared(url.to_string())
            .map_err(endpoint_err)?
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            let mut tls = settings.tls.clone().unwrap_or_default();
            if let Some(name) = &settings.tls_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(endpoint_err)?;
        } else if !url.starts_with("http://") {
            return Err(PoolError::Scheme(url.to_string()));
        }
        let channel = endpoint.connect_lazy();
        Ok(Endpoint {
            url: url.to_string(),
            client: VerifierClient::new(channel.clone()),
            health: HealthClient::new(channel),
            healthy: AtomicBool::new(false),
            inflight: Arc::new(Semaphore::new(settings.max_inflight)),
            max_inflight: settings.max_inflight,
            lease: Arc::default(),
        })
    }

    /// Whether the last health check (or call) succeeded.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn inflight(&self) -> usize {
        self.max_inflight - self.inflight.available_permits()
    }

    /// Runs one grpc.health.v1 check and records the result.
    pub(crate) async fn check_health(&self, timeout: Duration) -> bool {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: VERIFIER_SERVICE.to_string(),
        });
        request.set_timeout(timeout);
        let ok = matches!(
            tokio::time::timeout(timeout, self.health.clone().check(request)).await,
            Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32
        );
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        if was != ok {
            tracing::info!(verifier = %self.url, healthy = ok, "verifier health changed");
        }
        ok
    }

    /// Asks for a lease on the verifier's policy epoch: its epoch, when the
    /// request left (the lease runs from then) and its length. `None` for a
    /// refusal (leases off, the policy changing) or a failure.
    async fn request_lease(&self, timeout: Duration) -> Option<(u64, Instant, Duration)> {
        let sent = Instant::now();
        let mut request = tonic::Request::new(portcullis_proto::v1::LeaseRequest {});
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, self.client.clone().lease(request)).await {
            Ok(Ok(r)) if r.get_ref().lease_ms > 0 => {
                let granted = r.into_inner();
                let length = Duration::from_millis(u64::from(granted.lease_ms));
                Some((granted.epoch, sent, length))
            }
            _ => None,
        }
    }
}

/// How long to wait before watching a verifier's health again after a
/// watch ended, and how often a watch checks that its endpoint is in use.
const WATCH_RETRY: Duration = Duration::from_millis(250);

/// Puts `endpoint` in use: shares it, and keeps a `grpc.health.v1` watch
/// open on it for as long as it is in use, recording in its lease slot
/// whether the verifier is alive. A verifier that dies closes the watch's
/// stream with its connection, so the memo stops reusing its answers then
/// rather than at the next health check (`memo.rs`). Outside a runtime no
/// watch runs, and the memo never reuses the endpoint's answers.
fn in_use(endpoint: Endpoint) -> Arc<Endpoint> {
    let endpoint = Arc::new(endpoint);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return endpoint;
    };
    let weak = Arc::downgrade(&endpoint);
    runtime.spawn(async move {
        loop {
            let Some(e) = weak.upgrade() else { return };
            let (mut health, lease, url) = (e.health.clone(), e.lease.clone(), e.url.clone());
            drop(e);
            let watch = async {
                let request = HealthCheckRequest {
                    service: VERIFIER_SERVICE.to_string(),
                };
                if let Ok(response) = health.watch(request).await {
                    let mut stream = response.into_inner();
                    // Ends (closing the stream) when the verifier stops
                    // serving, so that a stopping verifier is not held up.
                    while let Ok(Some(status)) = stream.message().await {
                        let serving = status.status == ServingStatus::Serving as i32;
                        tracing::debug!(verifier = %url, serving, "verifier health watch");
                        lease.set_alive(serving);
                        if !serving {
                            break;
                        }
                    }
                }
            };
            let unused = async {
                while weak.strong_count() > 0 {
                    tokio::time::sleep(WATCH_RETRY).await;
                }
            };
            tokio::select! {
                () = watch => lease.set_alive(false),
                () = unused => return,
            }
            tokio::time::sleep(WATCH_RETRY).await;
        }
    });
    endpoint
}

/// The pool of verifier endpoints.
#[derive(Debug)]
pub struct VerifierPool {
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    settings: ArcSwap<PoolSettings>,
    metrics: GatewayMetrics,
    rng: AtomicU64,
    memo: Memo,
}

impl VerifierPool {
    /// Creates a pool over `urls` (which DNS discovery may later replace).
    pub fn new(
        urls: &[String],
        settings: PoolSettings,
        metrics: GatewayMetrics,
    ) -> Result<Self, PoolError> {
        let endpoints = urls
            .iter()
            .map(|u| Endpoint::new(u, &settings).map(in_use))
            .collect::<Result<Vec<_>, _>>()?;
        metrics.verifier_endpoints.set(endpoints.len() as i64);
        Ok(VerifierPool {
            endpoints: ArcSwap::from_pointee(endpoints),
            memo: Memo::new(settings.memo),
            settings: ArcSwap::from_pointee(settings),
            metrics,
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        })
    }

    /// Replaces the endpoint set (DNS discovery), keeping the connections
    /// and health state of endpoints that remain.
    pub fn set_urls(&self, urls: &[String]) -> Result<(), PoolError> {
        let current = self.endpoints.load();
        let mut next = Vec::with_capacity(urls.len());
        for url in urls {
            match current.iter().find(|e| e.url == *url) {
                Some(e) => next.push(e.clone()),
                None => {
                    tracing::info!(verifier = %url, "verifier endpoint added");
                    next.push(in_use(Endpoint::new(url, &self.settings.load())?));
                }
            }
        }
        for gone in current.iter().filter(|e| !urls.contains(&e.url)) {
            tracing::info!(verifier = %gone.url, "verifier endpoint removed");
            self.metrics
                .verifier_healthy
                .remove(&vec![("verifier", gone.url.clone())]);
        }
        self.metrics.verifier_endpoints.set(next.len() as i64);
        self.endpoints.store(Arc::new(next));
        Ok(())
    }

    /// Replaces the TLS settings (rotated client certificate or CA): every
    /// endpoint gets a new channel; calls in flight finish on the old one,
    /// and health state carries over, so nothing is dropped.
    pub fn replace_tls(&self, tls: ClientTlsConfig) -> Result<(), PoolError> {
        let mut settings = (**self.settings.load()).clone();
        settings.tls = Some(tls);
        let current = self.endpoints.load();
        let mut next = Vec::with_capacity(current.len());
        for old in current.iter() {
            let mut fresh = Endpoint::new(&old.url, &settings)?;
            fresh.healthy.store(old.is_healthy(), Ordering::Relaxed);
            // Same verifier, same lease: its remembered answers stay.
            fresh.lease = old.lease.clone();
            next.push(in_use(fresh));
        }
        self.settings.store(Arc::new(settings));
        self.endpoints.store(Arc::new(next));
        Ok(())
    }

    /// The current endpoints.
    pub(crate) fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// True when at least one endpoint is healthy.
    pub fn any_healthy(&self) -> bool {
        self.endpoints.load().iter().any(|e| e.is_healthy())
    }

    /// Checks every endpoint once, in parallel, and renews the lease on
    /// each healthy one's policy epoch (a new epoch drops the answers the
    /// memo holds from it).
    pub async fn check_health(&self, timeout: Duration) {
        let endpoints = self.endpoints();
        let checks = endpoints.iter().map(|e| async move {
            let ok = e.check_health(timeout).await;
            let granted = if ok {
                e.request_lease(timeout).await
            } else {
                None
            };
            match granted {
                Some((epoch, sent, length)) => {
                    if self.memo.leased(&e.lease, epoch, sent, length) {
                        self.metrics.memo_cleared.inc();
                        tracing::info!(verifier = %e.url, "verifier policy epoch changed: its remembered answers are dropped");
                    }
                }
                None => e.lease.clear(),
            }
            self.metrics
                .verifier_healthy
                .get_or_create(&vec![("verifier", e.url.clone())])
                .set(i64::from(ok));
        });
        futures::future::join_all(checks).await;
    }

    /// Healthy endpoints in the order to try them for `image`.
    fn candidates(&self, image: &str) -> Vec<Arc<Endpoint>> {
        let endpoints = self.endpoints.load();
        let mut healthy: Vec<Arc<Endpoint>> = endpoints
            .iter()
            .filter(|e| e.is_healthy())
            .cloned()
            .collect();
        match self.settings.load().balance {
            Balance::Rendezvous => {
                healthy.sort_by_cached_key(|e| std::cmp::Reverse(rendezvous_score(&e.url, image)));
            }
            Balance::P2c if healthy.len() > 1 => {
                let n = healthy.len() as u64;
                let r = self.next_random();
                let a = (r % n) as usize;
                let mut b = ((r >> 32) % (n - 1)) as usize;
                if b >= a {
                    b += 1;
                }
                let first = if healthy[b].inflight() < healthy[a].inflight() {
                    b
                } else {
                    a
                };
                healthy.swap(0, first);
            }
            Balance::P2c => {}
        }
        healthy
    }

    fn next_random(&self) -> u64 {
        // splitmix64 over an atomic counter: cheap, lock-free, and good
        // enough to pick two endpoints.
        let mut z = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Verifies one image before `deadline`. Never fails: every problem is
    /// a denial with a reason. A request whose allow the memo holds is
    /// answered from it (`memo.rs`).
    pub async fn verify(&self, request: VerifyRequest, deadline: Instant) -> VerifyResponse {
        if let Some(answer) = self.memo.get(&request) {
            self.metrics.memo_hits.inc();
            return answer;
        }
        let candidates = self.candidates(&request.image);
        if candidates.is_empty() {
            return gateway_denial(
                Reason::VerifierUnavailable,
                "no healthy verifier is available",
            );
        }
        let mut attempts = 0;
        let mut overloaded = false;
        let mut last_error = String::new();
        for endpoint in candidates {
            if attempts == 2 {
                break;
            }
            let labels = |outcome: &str| {
                vec![
                    ("verifier", endpoint.url.clone()),
                    ("outcome", outcome.to_string()),
                ]
            };
            let Ok(_permit) = endpoint.inflight.clone().try_acquire_owned() else {
                overloaded = true;
                self.metrics
                    .verifier_calls
                    .get_or_create(&labels("overloaded"))
                    .inc();
                continue;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            if attempts == 1 {
                self.metrics
                    .verifier_retries
                    .get_or_create(&vec![("verifier", endpoint.url.clone())])
                    .inc();
            }
            attempts += 1;
            let mut call = tonic::Request::new(request.clone());
            call.set_timeout(remaining);
            match tokio::time::timeout_at(deadline, endpoint.client.clone().verify(call)).await {
                Ok(Ok(response)) => {
                    self.metrics
                        .verifier_calls
                        .get_or_create(&labels("ok"))
                        .inc();
                    let answer = response.into_inner();
                    match self.memo.remember(&request, &answer, &endpoint.lease) {
                        Remembered::Stored => self.metrics.memo_stored.inc(),
                        Remembered::EpochChanged => self.metrics.memo_cleared.inc(),
                        Remembered::No => 0,
                    };
                    return answer;
                }
                Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
                    self.metrics
                        .verifier_calls
                        .get_or_create(&labels("timeout"))
                        .inc();
                    break;
                }
                Ok(Err(status)) => {
                    self.metrics
                        .verifier_calls
                        .get_or_create(&labels("error"))
                        .inc();
                    if status.code() == tonic::Code::Unavailable {
                        endpoint.healthy.store(false, Ordering::Relaxed);
                        endpoint.lease.clear();
                    }
                    tracing::warn!(verifier = %endpoint.url, image = %request.image, code = ?status.code(), error = %status.message(), "verify call failed");
                    last_error = format!(
                        "{}: {:?}: {}",
                        endpoint.url,
                        status.code(),
                        status.message()
                    );
                }
                Err(_) => {
                    self.metrics
                        .verifier_calls
                        .get_or_create(&labels("timeout"))
                        .inc();
                    break;
                }
            }
        }
        if Instant::now() >= deadline || (attempts > 0 && last_error.is_empty()) {
            gateway_denial(Reason::Timeout, "no verdict before the admission deadline")
        } else if !last_error.is_empty() {
            gateway_denial(
                Reason::VerifierUnavailable,
                &format!("verifier call failed ({last_error})"),
            )
        } else if overloaded {
            gateway_denial(
                Reason::Overloaded,
                "every verifier is at its in-flight limit",
            )
        } else {
            gateway_denial(Reason::Timeout, "no verdict before the admission deadline")
        }
    }
}

/// A denial decided by the gateway itself (timeouts, limits, no verifier).
pub(crate) fn gateway_denial(reason: Reason, message: &str) -> VerifyResponse {
    VerifyResponse {
        verdict: Verdict::Denied as i32,
        reason: reason as i32,
        message: message.to_string(),
        source: Source::Gateway as i32,
        transient: true,
        ..Default::default()
    }
}

/// The rendezvous (highest random weight) score of `endpoint` for `key`:
/// FNV-1a over both, then a 64-bit finaliser.
fn rendezvous_score(endpoint: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in endpoint
        .bytes()
        .chain(std::iter::once(0))
        .chain(key.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_is_stable_and_spread() {
        let eps = ["http://a:1", "http://b:1", "http://c:1"];
        let pick = |img: &str| *eps.iter().max_by_key(|e| rendezvous_score(e, img)).unwrap();
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let img = format!("registry.example.com/app{i}:1");
            let p = pick(&img);
            assert_eq!(p, pick(&img));
            counts[eps.iter().position(|e| *e == p).unwrap()] += 1;
        }
        for c in counts {
            assert!(c > 800, "uneven spread {counts:?}");
        }
        // Removing an endpoint only moves the images it held.
        let moved = (0..3000)
            .filter(|i| {
                let img = format!("registry.example.com/app{i}:1");
                let before = pick(&img);
                let after = *eps[..2]
                    .iter()
                    .max_by_key(|e| rendezvous_score(e, &img))
                    .unwrap();
                before != "http://c:1" && before != after
            })
            .count();
        assert_eq!(moved, 0);
    }

    #[tokio::test]
    async fn rejects_unknown_scheme() {
        let mut reg = prometheus_client::registry::Registry::default();
        let settings = PoolSettings {
            connect_timeout: Duration::from_secs(1),
            max_inflight: 4,
            balance: Balance::Rendezvous,
            tls: None,
            tls_name: None,
            memo: MemoSettings {
                ttl: Duration::from_secs(5),
                max_entries: 100,
            },
        };
        let m = GatewayMetrics::register(&mut reg);
        let e = VerifierPool::new(&["grpc://x:1".to_string()], settings.clone(), m.clone())
            .unwrap_err();
        assert!(matches!(e, PoolError::Scheme(_)));
        assert!(
            VerifierPool::new(&[], settings.clone(), m.clone()).is_ok(),
            "DNS discovery may start empty"
        );
        let pool = VerifierPool::new(&["http://127.0.0.1:1".to_string()], settings, m).unwrap();
        // Not yet health-checked: nothing is healthy, and a call is denied
        // at once rather than waiting for the deadline.
        let r = pool
            .verify(
                VerifyRequest::default(),
                Instant::now() + Duration::from_secs(5),
            )
            .await;
        assert_eq!(r.reason(), Reason::VerifierUnavailable);
        assert!(!r.is_allowed());
    }
}
