//! Per-host protection for registries under stress: a bound on concurrent
//! requests to one host, and a circuit breaker that stops asking a host
//! that keeps failing.
//!
//! * **Concurrency.** At most [`MAX_INFLIGHT_PER_HOST`] requests to one
//!   host at a time from one validator's client (its workload views share
//!   the bound); the rest wait their turn, within the caller's deadline. A
//!   throttling registry does not get the burst that made it throttle.
//! * **Breaker.** After [`TRIP_AFTER`] transient failures in a row (5xx,
//!   429, timeouts, connection errors), the host's circuit opens for
//!   [`OPEN_FOR`]: requests fail at once as transient
//!   (`REGISTRY_UNAVAILABLE (host, circuit open)`), so admissions get their
//!   answer (or stale-if-error) without waiting on a dead host. After that
//!   window requests go through again; one success closes it, one more
//!   failure reopens it. Only ever a transient failure: never an allow, never
//!   a cached verdict.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

/// Concurrent requests to one host.
pub(crate) const MAX_INFLIGHT_PER_HOST: usize = 32;
/// Transient failures in a row that open the circuit.
pub(crate) const TRIP_AFTER: u32 = 5;
/// How long an open circuit refuses requests.
pub(crate) const OPEN_FOR: Duration = Duration::from_secs(2);

/// One host's bound and breaker.
#[derive(Debug)]
pub(crate) struct Host {
    permits: Arc<Semaphore>,
    failures: AtomicU32,
    open_until_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Host {
    /// Whether the circuit is open now.
    pub(crate) fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Relaxed) > now_ms()
    }

    /// Waits for a request slot.
    pub(crate) async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Records a request's outcome.
    pub(crate) fn record(&self, transient_failure: bool) {
        if !transient_failure {
            self.failures.store(0, Ordering::Relaxed);
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= TRIP_AFTER {
            self.open_until_ms
                .store(now_ms() + OPEN_FOR.as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// The hosts a client has talked to.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    by_host: Mutex<HashMap<String, Arc<Host>>>,
}

impl Hosts {
    /// The guard of `host`.
    pub(crate) fn get(&self, host: &str) -> Arc<Host> {
        let Ok(mut map) = self.by_host.lock() else {
            // A poisoned map: a fresh, unshared guard (no bound is lost
            // for correctness; only sharing is).
            return Arc::new(Host::new());
        };
        map.entry(host.to_string())
            .or_insert_with(|| Arc::new(Host::new()))
            .clone()
    }
}

impl Host {
    fn new() -> Self {
        Host {
            permits: Arc::new(Semaphore::new(MAX_INFLIGHT_PER_HOST)),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets() {
        let h = Host::new();
        for _ in 0..TRIP_AFTER - 1 {
            h.record(true);
        }
        assert!(!h.is_open());
        h.record(false);
        for _ in 0..TRIP_AFTER - 1 {
            h.record(true);
        }
        assert!(!h.is_open(), "a success in between resets the count");
        h.record(true);
        assert!(h.is_open());
    }
}
