//! One cache kind over both tiers, with coalescing:
//!
//! 1. L1 (moka) hit → answer in microseconds.
//! 2. Otherwise one task per key in this process runs the lookup (moka's
//!    `entry().or_try_insert_with`); concurrent callers wait for it.
//! 3. That task reads L2; on a miss it takes the cluster-wide lease
//!    (`SET NX PX`). Holding it, it reads L2 once more (the previous holder
//!    may have published and released in between), then computes and
//!    publishes to L2 before releasing. If another
//!    verifier holds it, it polls L2 for that verifier's result for at most
//!    the lease time, then computes by itself (the holder may have died).
//! 4. Errors (transient failures) are returned to every waiter and cached
//!    nowhere.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use portcullis_proto::Source;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::redis::{L2, Lease};
use crate::metrics::VerifierMetrics;

/// A cached value and when it expires.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Stored<V> {
    /// The value.
    pub(crate) value: V,
    /// Expiry, Unix milliseconds.
    pub(crate) expires_at_ms: u64,
}

/// A value with where it came from.
#[derive(Debug, Clone)]
struct Held<V> {
    stored: Stored<V>,
    source: Source,
}

/// The Unix time in milliseconds (0 before 1970), as cache expiries are kept.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct ExpireAt;

impl<V> Expiry<String, Arc<Held<V>>> for ExpireAt {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Held<V>>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_millis(
            value.stored.expires_at_ms.saturating_sub(now_ms()),
        ))
    }

    /// A replaced value (refresh-ahead, [`Tiered::put`]) brings its own
    /// expiry.
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Held<V>>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_millis(
            value.stored.expires_at_ms.saturating_sub(now_ms()),
        ))
    }
}

/// Settings of one cache kind.
#[derive(Debug, Clone)]
pub struct TierSettings {
    /// The kind label for metrics and the Redis key namespace
    /// (`verdict`, `tag`, `trust`).
    pub kind: &'static str,
    /// The most entries L1 holds.
    pub max_entries: u64,
    /// The most bytes L1 holds (approximate).
    pub max_bytes: u64,
    /// How long another verifier's lease is waited for.
    pub lease: Duration,
    /// How often L2 is polled while waiting.
    pub poll: Duration,
}

/// A two-tier, coalescing cache of `V`.
pub struct Tiered<V> {
    settings: TierSettings,
    l1: moka::future::Cache<String, Arc<Held<V>>>,
    l2: Option<Arc<L2>>,
    metrics: VerifierMetrics,
}

impl<V> std::fmt::Debug for Tiered<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("kind", &self.settings.kind)
            .finish_non_exhaustive()
    }
}

/// What a computation yields: a value to cache for `ttl` (zero: do not
/// cache), or an error that is cached nowhere.
pub type Computed<V, E> = Result<(V, Duration), E>;

impl<V> Tiered<V>
where
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Creates the cache. `weigh` estimates a value's size in bytes.
    pub fn new(
        settings: TierSettings,
        l2: Option<Arc<L2>>,
        metrics: VerifierMetrics,
        weigh: fn(&V) -> u32,
    ) -> Self {
        // Bounded by bytes, and by entries through a per-entry minimum
        // weight of max_bytes / max_entries.
        let min_weight =
            (settings.max_bytes / settings.max_entries.max(1)).clamp(1, u32::MAX as u64) as u32;
        let l1 = moka::future::Cache::builder()
            .max_capacity(settings.max_bytes.max(1))
            .weigher(move |k: &String, v: &Arc<Held<V>>| {
                (k.len() as u32)
                    .saturating_add(weigh(&v.stored.value))
                    .max(min_weight)
            })
            .expire_after(ExpireAt)
            .build();
        Tiered {
            settings,
            l1,
            l2,
            metrics,
        }
    }

    fn redis_key(&self, key: &str) -> String {
        format!("pc:v1:{}:{key}", self.settings.kind)
    }

    /// The value for `key`: from L1, L2, another caller's computation, or
    /// `compute` (run at most once per key at a time in this process).
    pub async fn get_or_compute<E, F, Fut>(
        &self,
        key: &str,
        deadline: Instant,
        compute: F,
    ) -> Result<(V, Source), Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Computed<V, E>>,
    {
        self.get_or_compute_expiring(key, deadline, compute)
            .await
            .map(|(v, source, _)| (v, source))
    }

    /// [`Tiered::get_or_compute`], also telling when the value expires
    /// (Unix milliseconds), for refresh-ahead.
    pub async fn get_or_compute_expiring<E, F, Fut>(
        &self,
        key: &str,
        deadline: Instant,
        compute: F,
    ) -> Result<(V, Source, u64), Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Computed<V, E>>,
    {
        let kind = self.settings.kind;
        if let Some(held) = self.l1.get(key).await
            && held.stored.expires_at_ms > now_ms()
        {
            self.metrics.lookup("l1", kind, true);
            return Ok((
                held.stored.value.clone(),
                Source::CacheL1,
                held.stored.expires_at_ms,
            ));
        }
        self.metrics.lookup("l1", kind, false);
        let entry = self
            .l1
            .entry(key.to_string())
            .or_try_insert_with(async { self.fill(key, deadline, compute).await.map(Arc::new) })
            .await?;
        let held = entry.value();
        let source = if entry.is_fresh() {
            held.source
        } else {
            self.metrics
                .coalesced
                .get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("scope", "process".to_string()),
                ])
                .inc();
            Source::Coalesced
        };
        // A zero-TTL value was inserted only to share it with waiters.
        if held.stored.expires_at_ms <= now_ms() {
            self.l1.invalidate(key).await;
        }
        Ok((held.stored.value.clone(), source, held.stored.expires_at_ms))
    }

    /// Recomputes `key` ahead of its expiry, once across the cluster: with
    /// Redis, only the verifier that takes the key's lease computes (the
    /// others leave it to that one); the result, if any, replaces the entry
    /// in both tiers. `compute` yields `None` for "keep what is there".
    pub async fn refresh<F, Fut>(&self, key: &str, compute: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<(V, Duration)>>,
    {
        let lease = match &self.l2 {
            Some(l2) => match l2.lease(&self.redis_key(key), self.settings.lease).await {
                Lease::Held => return,
                lease => Some(lease),
            },
            None => None,
        };
        if let Some((value, ttl)) = compute().await {
            self.put(key, value, ttl).await;
        }
        if let (Some(l2), Some(Lease::Acquired(token))) = (&self.l2, &lease) {
            l2.release(&self.redis_key(key), token).await;
        }
    }

    async fn fill<E, F, Fut>(&self, key: &str, deadline: Instant, compute: F) -> Result<Held<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Computed<V, E>>,
    {
        let kind = self.settings.kind;
        let Some(l2) = &self.l2 else {
            return compute().await.map(|(value, ttl)| fresh(value, ttl));
        };
        let rkey = self.redis_key(key);
        if let Some(held) = self.read_l2(l2, &rkey, Source::CacheL2).await {
            return Ok(held);
        }
        match l2.lease(&rkey, self.settings.lease).await {
            Lease::Held => {
                let until = deadline.min(Instant::now() + self.settings.lease);
                while Instant::now() + self.settings.poll < until {
                    tokio::time::sleep(self.settings.poll).await;
                    if let Some(held) = self.read_l2(l2, &rkey, Source::Coalesced).await {
                        self.metrics
                            .coalesced
                            .get_or_create(&vec![
                                ("kind", kind.to_string()),
                                ("scope", "cluster".to_string()),
                            ])
                            .inc();
                        return Ok(held);
                    }
                }
                // The holder died or is slow: verify by ourselves.
                let (value, ttl) = compute().await?;
                self.publish(l2, &rkey, &value, ttl).await;
                Ok(fresh(value, ttl))
            }
            lease => {
                // Another verifier may have published and released between
                // our miss and our lease: look once more before verifying.
                if let Lease::Acquired(token) = &lease
                    && let Some(held) = self.read_l2(l2, &rkey, Source::Coalesced).await
                {
                    l2.release(&rkey, token).await;
                    self.metrics
                        .coalesced
                        .get_or_create(&vec![
                            ("kind", kind.to_string()),
                            ("scope", "cluster".to_string()),
                        ])
                        .inc();
                    return Ok(held);
                }
                let result = compute().await;
                if let Ok((value, ttl)) = &result {
                    self.publish(l2, &rkey, value, *ttl).await;
                }
                if let Lease::Acquired(token) = &lease {
                    l2.release(&rkey, token).await;
                }
                result.map(|(value, ttl)| fresh(value, ttl))
            }
        }
    }

    async fn read_l2(&self, l2: &L2, rkey: &str, source: Source) -> Option<Held<V>> {
        let kind = self.settings.kind;
        let Some(bytes) = l2.get(rkey, kind).await else {
            self.metrics.lookup("l2", kind, false);
            return None;
        };
        match serde_json::from_slice::<Stored<V>>(&bytes) {
            Ok(stored) if stored.expires_at_ms > now_ms() => {
                self.metrics.lookup("l2", kind, true);
                Some(Held { stored, source })
            }
            Ok(_) => {
                self.metrics.lookup("l2", kind, false);
                None
            }
            Err(e) => {
                tracing::warn!(key = rkey, error = %e, "unparsable shared-cache value; ignored");
                self.metrics
                    .integrity_failures
                    .get_or_create(&vec![("kind", kind.to_string())])
                    .inc();
                None
            }
        }
    }

    async fn publish(&self, l2: &L2, rkey: &str, value: &V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let stored = Stored {
            value: value.clone(),
            expires_at_ms: now_ms() + ttl.as_millis() as u64,
        };
        if let Ok(bytes) = serde_json::to_vec(&stored) {
            l2.put(rkey, &bytes, ttl).await;
        }
    }

    /// Stores `value` under `key` for `ttl` in both tiers (no coalescing:
    /// for values a computation derived, such as a verdict's stale copy).
    pub async fn put(&self, key: &str, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        if let Some(l2) = &self.l2 {
            self.publish(l2, &self.redis_key(key), &value, ttl).await;
        }
        self.l1
            .insert(key.to_string(), Arc::new(fresh(value, ttl)))
            .await;
    }

    /// The value under `key` if either tier holds an unexpired one; never
    /// computes.
    pub async fn peek(&self, key: &str) -> Option<V> {
        if let Some(held) = self.l1.get(key).await
            && held.stored.expires_at_ms > now_ms()
        {
            return Some(held.stored.value.clone());
        }
        let l2 = self.l2.as_ref()?;
        self.read_l2(l2, &self.redis_key(key), Source::CacheL2)
            .await
            .map(|h| h.stored.value)
    }

    /// Removes `key` from both tiers.
    pub async fn remove(&self, key: &str) {
        self.l1.invalidate(key).await;
        if let Some(l2) = &self.l2 {
            l2.delete(&self.redis_key(key)).await;
        }
    }

    /// Runs moka's pending maintenance (eviction, size accounting); for
    /// measurements and tests.
    pub async fn run_pending_tasks(&self) {
        self.l1.run_pending_tasks().await;
    }

    /// The number of L1 entries (approximate until maintenance has run).
    pub fn l1_entries(&self) -> u64 {
        self.l1.entry_count()
    }

    /// Drops every L1 entry (tests, config reload).
    pub fn clear_l1(&self) {
        self.l1.invalidate_all();
    }
}

fn fresh<V>(value: V, ttl: Duration) -> Held<V> {
    Held {
        stored: Stored {
            value,
            expires_at_ms: now_ms() + ttl.as_millis() as u64,
        },
        source: Source::Fresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> Tiered<String> {
        Tiered::new(
            TierSettings {
                kind: "verdict",
                max_entries: 100,
                max_bytes: 100_000,
                lease: Duration::from_millis(200),
                poll: Duration::from_millis(10),
            },
            None,
            VerifierMetrics::unregistered(),
            |v| v.len() as u32,
        )
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let c = Arc::new(cache());
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = c.clone();
                let runs = runs.clone();
                tokio::spawn(async move {
                    c.get_or_compute::<(), _, _>(
                        "k",
                        Instant::now() + Duration::from_secs(5),
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok(("v".to_string(), Duration::from_secs(60)))
                        },
                    )
                    .await
                })
            })
            .collect();
        let mut sources = Vec::new();
        for t in tasks {
            let (v, s) = t.await.unwrap().unwrap();
            assert_eq!(v, "v");
            sources.push(s);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Fresh).count(), 1);
        let (_, s) = c
            .get_or_compute::<(), _, _>("k", Instant::now() + Duration::from_secs(1), || async {
                unreachable!()
            })
            .await
            .unwrap();
        assert_eq!(s, Source::CacheL1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let c = cache();
        let d = Instant::now() + Duration::from_secs(5);
        let r = c
            .get_or_compute("k", d, || async { Err::<(String, Duration), _>("503") })
            .await;
        assert_eq!(r.unwrap_err().as_ref(), &"503");
        let (v, s) = c
            .get_or_compute::<&str, _, _>("k", d, || async {
                Ok(("ok".to_string(), Duration::from_secs(60)))
            })
            .await
            .unwrap();
        assert_eq!((v.as_str(), s), ("ok", Source::Fresh));
    }

    #[tokio::test]
    async fn zero_ttl_is_not_kept() {
        let c = cache();
        let d = Instant::now() + Duration::from_secs(5);
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            c.get_or_compute::<(), _, _>("k", d, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(("v".to_string(), Duration::ZERO))
            })
            .await
            .unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
