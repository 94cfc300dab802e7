//! Prometheus metrics of the verifier: cache tiers, coalescing, Redis, and
//! registry requests.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label pairs.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// Every verifier metric. Cloning shares the values.
#[derive(Debug, Clone)]
pub struct VerifierMetrics {
    /// `portcullis_cache_lookups_total{tier, kind, result}`: tier `l1`/`l2`,
    /// kind `verdict`/`tag`/`trust`, result `hit`/`miss`.
    pub cache_lookups: Family<Labels, Counter>,
    /// `portcullis_cache_coalesced_total{kind, scope}`: calls that waited for
    /// another's verification (`scope` `process` or `cluster`).
    pub coalesced: Family<Labels, Counter>,
    /// `portcullis_cache_integrity_failures_total{kind}`: L2 values that
    /// failed the HMAC check or did not parse.
    pub integrity_failures: Family<Labels, Counter>,
    /// `portcullis_redis_errors_total{op, error}`.
    pub redis_errors: Family<Labels, Counter>,
    /// `portcullis_redis_op_duration_seconds{op}`.
    pub redis_latency: Family<Labels, Histogram>,
    /// `portcullis_registry_requests_total{host, status}`.
    pub registry_requests: Family<Labels, Counter>,
    /// `portcullis_verifications_total{validator, result, source}`; result
    /// `allowed`, `audit_only` (allowed with logged failures) or `denied`.
    pub verifications: Family<Labels, Counter>,
    /// `portcullis_verdict_refreshes_total{result}`: refresh-ahead runs by
    /// outcome (`allowed`, `denied`, `transient`).
    pub refreshes: Family<Labels, Counter>,
    /// `portcullis_cache_entries{kind}`: L1 entries by kind (sampled).
    pub cache_entries: Family<Labels, prometheus_client::metrics::gauge::Gauge>,
    /// `portcullis_redis_breaker_open`: 1 while the Redis breaker is open
    /// (sampled).
    pub redis_breaker_open: prometheus_client::metrics::gauge::Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    ])
}

impl VerifierMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        let r = registry.sub_registry_with_prefix("portcullis");
        r.register(
            "cache_lookups",
            "Cache lookups by tier, kind and result",
            m.cache_lookups.clone(),
        );
        r.register(
            "cache_coalesced",
            "Calls that waited for another call's verification",
            m.coalesced.clone(),
        );
        r.register(
            "cache_integrity_failures",
            "Shared-cache values rejected by the HMAC check",
            m.integrity_failures.clone(),
        );
        r.register(
            "redis_errors",
            "Redis errors and budget overruns",
            m.redis_errors.clone(),
        );
        r.register(
            "redis_op_duration_seconds",
            "Redis operation latency",
            m.redis_latency.clone(),
        );
        r.register(
            "registry_requests",
            "Registry HTTP requests by host and status",
            m.registry_requests.clone(),
        );
        r.register(
            "verifications",
            "Verify results by validator, result and source",
            m.verifications.clone(),
        );
        r.register(
            "verdict_refreshes",
            "Refresh-ahead re-verifications by outcome",
            m.refreshes.clone(),
        );
        r.register(
            "cache_entries",
            "In-process cache entries by kind (sampled every 5 s)",
            m.cache_entries.clone(),
        );
        r.register(
            "redis_breaker_open",
            "1 while the Redis circuit breaker is open (sampled every 5 s)",
            m.redis_breaker_open.clone(),
        );
        m
    }

    /// Metrics that are counted but not exported (tests, the CLI).
    pub fn unregistered() -> Self {
        VerifierMetrics {
            cache_lookups: Family::default(),
            coalesced: Family::default(),
            integrity_failures: Family::default(),
            redis_errors: Family::default(),
            redis_latency: Family::new_with_constructor(latency_histogram),
            registry_requests: Family::default(),
            verifications: Family::default(),
            refreshes: Family::default(),
            cache_entries: Family::default(),
            redis_breaker_open: Default::default(),
        }
    }

    /// Counts a lookup.
    pub fn lookup(&self, tier: &'static str, kind: &'static str, hit: bool) {
        self.cache_lookups
            .get_or_create(&vec![
                ("tier", tier.to_string()),
                ("kind", kind.to_string()),
                ("result", if hit { "hit" } else { "miss" }.to_string()),
            ])
            .inc();
    }
}
