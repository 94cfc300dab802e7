//! Leases on the policy epoch, and the fence that ends them before the
//! policy changes in place.
//!
//! The gateway may answer a request it has seen before with the verifier's
//! earlier allow (its memo), without a gRPC round trip. What makes that
//! safe is a **lease**: every [`Engine`](crate::decision::Engine) has a
//! random *epoch*; each answer names the epoch it was made under; a
//! gateway asks each verifier for a lease every health tick and reuses an
//! answer only while it holds an unexpired lease at that answer's epoch,
//! the lease measured from when the gateway *sent* its request (so the
//! gateway's lease never ends later than the verifier believes).
//!
//! * Before the verifier swaps in a new engine (a refreshed `k8s://` key),
//!   [`Leases::fence`] stops granting leases and waits until every lease
//!   it granted has ended, plus a margin for clock-rate differences. Only
//!   then does the new policy answer anything, so no gateway reuses an
//!   answer of the old policy after the first answer of the new one.
//! * At start-up, a verifier with leases on waits one lease length before
//!   it listens ([`Leases::start_delay`]): a process that replaces another
//!   at the same address (a restarted container) must not answer while the
//!   old process's leases may still run.
//!
//! What this lets the gateway skip: the round trip of a request it has
//! seen answered. What it can never allow: an answer of an epoch the
//! verifier no longer serves, or one past the lifetime the verifier gave
//! it (`reuse_ms`: the tag resolution's and the verdict's remaining life).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Added to the wait for granted leases: the gateway's and the verifier's
/// clocks may run at slightly different rates.
const MARGIN: Duration = Duration::from_millis(100);

/// The leases this verifier grants.
#[derive(Debug)]
pub struct Leases {
    /// How long each lease lasts; zero turns leases off.
    length: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Fences in progress; no lease is granted while any runs.
    fencing: u32,
    /// When the latest lease granted ends.
    granted_until: Option<Instant>,
}

impl Leases {
    /// Leases of `length` (zero: none are granted).
    pub fn new(length: Duration) -> Self {
        Leases {
            length,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grants a lease at the epoch `epoch` reads (read under the lock, so
    /// that no fence starts between the check and the read), or `None`
    /// when leases are off or a fence is in progress.
    pub(crate) fn grant(&self, epoch: impl FnOnce() -> u64) -> Option<(u64, Duration)> {
        if self.length.is_zero() {
            return None;
        }
        let mut state = self.state();
        if state.fencing > 0 {
            return None;
        }
        let until = Instant::now() + self.length;
        state.granted_until = Some(state.granted_until.map_or(until, |t| t.max(until)));
        Some((epoch(), self.length))
    }

    /// Runs `change` once every lease granted so far has ended, granting
    /// none in between.
    pub(crate) async fn fence<T>(&self, change: impl FnOnce() -> T) -> T {
        let wait_until = {
            let mut state = self.state();
            state.fencing += 1;
            state.granted_until
        };
        if let Some(t) = wait_until {
            tokio::time::sleep_until(t + MARGIN + self.length / 50).await;
        }
        let out = change();
        self.state().fencing -= 1;
        out
    }

    /// How long to wait before listening: one lease, when leases are on.
    pub(crate) fn start_delay(&self) -> Duration {
        if self.length.is_zero() {
            Duration::ZERO
        } else {
            self.length + MARGIN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fence_waits_out_every_granted_lease_and_grants_none_meanwhile() {
        let leases = std::sync::Arc::new(Leases::new(Duration::from_secs(3)));
        let granted_at = Instant::now();
        assert_eq!(leases.grant(|| 7), Some((7, Duration::from_secs(3))));
        tokio::time::advance(Duration::from_secs(1)).await;
        let fence = {
            let leases = leases.clone();
            tokio::spawn(async move { leases.fence(Instant::now).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(leases.grant(|| 8), None, "no lease while fencing");
        let changed_at = fence.await.unwrap();
        assert!(
            changed_at >= granted_at + Duration::from_secs(3) + MARGIN,
            "the change ran {:?} after the grant, before the lease ended",
            changed_at - granted_at
        );
        assert_eq!(leases.grant(|| 9), Some((9, Duration::from_secs(3))));
    }

    #[tokio::test(start_paused = true)]
    async fn without_leases_nothing_is_granted_or_waited_for() {
        let leases = Leases::new(Duration::ZERO);
        assert_eq!(leases.grant(|| 1), None);
        assert_eq!(leases.start_delay(), Duration::ZERO);
        let before = Instant::now();
        leases.fence(|| ()).await;
        assert_eq!(Instant::now(), before);
    }
}
