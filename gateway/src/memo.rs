//! The memo of verifier allows: a repeated request answered without a gRPC
//! round trip.
//!
//! When a verifier allows an image, its answer says for how long the very
//! same request may get the very same answer (`reuse_ms`: no longer than
//! the verifier itself would reuse it: its tag resolution's and verdict's
//! remaining lifetime) and under which policy epoch it was made. The gateway
//! remembers it, keyed by everything the request carries except its uid
//! (image as written, namespace, pull-secret names, container kind), and
//! answers the same request from memory while **both** hold:
//!
//! * the remembered lifetime (capped by `--memo-ttl-ms`) has not run out;
//! * the gateway holds an unexpired **lease** from the verifier that
//!   answered, at the epoch the answer was made under ([`LeaseSlot`],
//!   renewed every health check). A verifier ends every lease before it
//!   changes its policy or trust roots (see the verifier's `lease.rs`), so a
//!   changed policy takes effect on the next admission; an answer naming
//!   another epoch than the lease's drops the lease and that verifier's
//!   entries at once;
//! * the verifier is alive: its `grpc.health.v1` watch is open and says it
//!   serves (`pool.rs` `in_use`); a verifier that dies closes the watch
//!   with its connection, which drops the lease.
//!
//! What it may skip: the call for a request whose allow it remembers. What
//! it never allows: anything a verifier did not allow under enforcement.
//! Only allows are kept, never denials, transient failures, answers with
//! warnings (audit-only, stale) or the gateway's own answers; nothing is
//! kept without a lease at the answer's epoch. The gateway stays free of
//! cryptography: it compares strings and numbers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use portcullis_proto::{Source, VerifyRequest, VerifyResponse};
use tokio::time::Instant;

/// Memo settings.
#[derive(Debug, Clone, Copy)]
pub struct MemoSettings {
    /// The longest any answer is remembered; zero turns the memo off.
    pub ttl: Duration,
    /// The most answers remembered at once.
    pub max_entries: usize,
}

/// A lease on one verifier's policy epoch.
#[derive(Debug, Clone, Copy)]
struct Lease {
    epoch: u64,
    until: Instant,
}

/// The lease the gateway holds from one verifier endpoint, if any, and
/// whether the verifier is known to be alive.
#[derive(Debug, Default)]
pub(crate) struct LeaseSlot {
    lease: ArcSwapOption<Lease>,
    /// True while a `grpc.health.v1` watch of the verifier is open and
    /// says it serves (`pool.rs` `watch_liveness`): a verifier that dies
    /// closes it at once, so its answers stop being reused then, not at
    /// the next health check.
    alive: AtomicBool,
}

impl LeaseSlot {
    /// The epoch of an unexpired lease at `now`, while the verifier is
    /// alive.
    fn epoch_at(&self, now: Instant) -> Option<u64> {
        if !self.alive.load(Ordering::Acquire) {
            return None;
        }
        self.lease
            .load()
            .as_ref()
            .filter(|l| now < l.until)
            .map(|l| l.epoch)
    }

    /// Records whether the verifier's health watch is open and serving;
    /// `false` also drops the lease.
    pub(crate) fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::Release);
        if !alive {
            self.clear();
        }
    }

    /// Records a lease at `epoch` of `length`, asked for at `sent`.
    /// Returns the epoch of the lease it replaces (use [`Memo::leased`],
    /// which drops the answers of a replaced epoch).
    fn grant(&self, epoch: u64, sent: Instant, length: Duration) -> Option<u64> {
        self.lease
            .swap(Some(Arc::new(Lease {
                epoch,
                until: sent + length,
            })))
            .map(|l| l.epoch)
    }

    /// Drops the lease (no answer of this verifier is reused until the
    /// next one is granted).
    pub(crate) fn clear(&self) {
        self.lease.store(None);
    }
}

struct Entry {
    answer: VerifyResponse,
    lease: Arc<LeaseSlot>,
    epoch: u64,
    until: Instant,
}

/// What [`Memo::remember`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// Kept the answer.
    Stored,
    /// Nothing (not a reusable allow, no lease, memo off or full).
    No,
    /// The answer named a new epoch: the lease and the verifier's entries
    /// were dropped.
    EpochChanged,
}

/// The remembered allows.
pub(crate) struct Memo {
    settings: MemoSettings,
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The key of a request: every field but the uid, each prefixed with its
/// length, so that no two different requests share a key whatever bytes
/// their strings hold.
fn key(request: &VerifyRequest) -> Vec<u8> {
    let fields = [
        request.image.as_str(),
        request.namespace.as_str(),
        request.container_kind.as_str(),
    ]
    .into_iter()
    .chain(request.image_pull_secrets.iter().map(String::as_str));
    let mut key = Vec::with_capacity(96);
    key.extend_from_slice(&(request.image_pull_secrets.len() as u64).to_le_bytes());
    for field in fields {
        key.extend_from_slice(&(field.len() as u64).to_le_bytes());
        key.extend_from_slice(field.as_bytes());
    }
    key
}

impl Memo {
    /// An empty memo.
    pub(crate) fn new(settings: MemoSettings) -> Self {
        Memo {
            settings,
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        // A map is consistent even if a holder panicked.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered answer to `request`, if its lifetime has not run out
    /// and its verifier's lease is still at its epoch.
    pub(crate) fn get(&self, request: &VerifyRequest) -> Option<VerifyResponse> {
        if self.settings.ttl.is_zero() {
            return None;
        }
        let now = Instant::now();
        let entries = self.entries();
        let entry = entries.get(&key(request))?;
        if now >= entry.until || entry.lease.epoch_at(now) != Some(entry.epoch) {
            return None;
        }
        let mut answer = entry.answer.clone();
        answer.source = Source::GatewayMemo as i32;
        Some(answer)
    }

    /// Remembers `answer` to `request`, made by the verifier whose lease is
    /// `lease`, if it is an allow it may reuse. When the answer names
    /// another epoch than the lease's, drops that lease and the verifier's
    /// entries instead.
    pub(crate) fn remember(
        &self,
        request: &VerifyRequest,
        answer: &VerifyResponse,
        lease: &Arc<LeaseSlot>,
    ) -> Remembered {
        if self.settings.ttl.is_zero() {
            return Remembered::No;
        }
        let now = Instant::now();
        match lease.epoch_at(now) {
            None => return Remembered::No,
            Some(epoch) if epoch != answer.epoch => {
                lease.clear();
                self.forget(lease);
                return Remembered::EpochChanged;
            }
            Some(_) => {}
        }
        let reusable = answer.is_allowed()
            && !answer.transient
            && answer.reuse_ms > 0
            && answer.warnings.is_empty()
            && !matches!(answer.source(), Source::Gateway | Source::Stale);
        if !reusable {
            return Remembered::No;
        }
        let life = self
            .settings
            .ttl
            .min(Duration::from_millis(u64::from(answer.reuse_ms)));
        let mut entries = self.entries();
        if entries.len() >= self.settings.max_entries {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= self.settings.max_entries {
                return Remembered::No;
            }
        }
        entries.insert(
            key(request),
            Entry {
                answer: answer.clone(),
                lease: lease.clone(),
                epoch: answer.epoch,
                until: now + life,
            },
        );
        Remembered::Stored
    }

    /// Records a lease the verifier whose slot is `lease` granted at
    /// `epoch` for `length`, asked for at `sent`. When it replaces a lease
    /// at another epoch, that verifier's answers are dropped; returns true
    /// then.
    pub(crate) fn leased(
        &self,
        lease: &Arc<LeaseSlot>,
        epoch: u64,
        sent: Instant,
        length: Duration,
    ) -> bool {
        let changed = lease
            .grant(epoch, sent, length)
            .is_some_and(|before| before != epoch);
        if changed {
            self.forget(lease);
        }
        changed
    }

    /// Drops every answer made by the verifier whose lease is `lease`.
    fn forget(&self, lease: &Arc<LeaseSlot>) {
        self.entries().retain(|_, e| !Arc::ptr_eq(&e.lease, lease));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_proto::{Reason, Verdict};

    fn settings() -> MemoSettings {
        MemoSettings {
            ttl: Duration::from_secs(5),
            max_entries: 100,
        }
    }

    fn request(image: &str, namespace: &str) -> VerifyRequest {
        VerifyRequest {
            image: image.into(),
            namespace: namespace.into(),
            request_uid: "uid".into(),
            image_pull_secrets: vec![],
            container_kind: "containers".into(),
        }
    }

    fn allow(epoch: u64, reuse_ms: u32) -> VerifyResponse {
        VerifyResponse {
            verdict: Verdict::Allowed as i32,
            reason: Reason::Verified as i32,
            digest: format!("sha256:{}", "a".repeat(64)),
            source: Source::CacheL1 as i32,
            epoch,
            reuse_ms,
            ..Default::default()
        }
    }

    fn leased(epoch: u64) -> Arc<LeaseSlot> {
        let slot = Arc::new(LeaseSlot::default());
        slot.set_alive(true);
        slot.grant(epoch, Instant::now(), Duration::from_secs(3));
        slot
    }

    #[tokio::test(start_paused = true)]
    async fn an_allow_is_reused_for_the_same_request_only() {
        let memo = Memo::new(settings());
        let lease = leased(7);
        let r = request("reg.example/app:v1", "team-a");
        assert_eq!(
            memo.remember(&r, &allow(7, 60_000), &lease),
            Remembered::Stored
        );
        let hit = memo.get(&r).expect("remembered");
        assert_eq!(hit.source(), Source::GatewayMemo);
        assert!(hit.is_allowed());
        // Another uid is the same request.
        let mut other_uid = r.clone();
        other_uid.request_uid = "another".into();
        assert!(memo.get(&other_uid).is_some());
        // Anything else the verifier reads is not.
        assert!(memo.get(&request("reg.example/app:v1", "team-b")).is_none());
        assert!(memo.get(&request("reg.example/app:v2", "team-a")).is_none());
        let mut secrets = r.clone();
        secrets.image_pull_secrets = vec!["regcred".into()];
        assert!(memo.get(&secrets).is_none());
        let mut kind = r.clone();
        kind.container_kind = "initContainers".into();
        assert!(memo.get(&kind).is_none());
    }

    #[test]
    fn keys_cannot_be_forged_by_moving_bytes_between_fields() {
        // Joined with a separator these two would read the same.
        let a = request("reg.example/app:v1", "team\0a");
        let b = request("reg.example/app:v1\0team", "a");
        assert_ne!(key(&a), key(&b));
        let mut c = a.clone();
        c.image_pull_secrets = vec![String::new()];
        assert_ne!(key(&a), key(&c));
    }

    #[tokio::test(start_paused = true)]
    async fn denials_transients_warnings_and_unleased_answers_are_not_kept() {
        let memo = Memo::new(settings());
        let lease = leased(7);
        let r = request("reg.example/app:v1", "team-a");
        let denied = VerifyResponse {
            verdict: Verdict::Denied as i32,
            reason: Reason::NoSignatures as i32,
            epoch: 7,
            reuse_ms: 60_000,
            ..Default::default()
        };
        let transient = VerifyResponse {
            transient: true,
            ..allow(7, 60_000)
        };
        let warned = VerifyResponse {
            warnings: vec!["audit: signature missing".into()],
            ..allow(7, 60_000)
        };
        let stale = VerifyResponse {
            source: Source::Stale as i32,
            ..allow(7, 60_000)
        };
        let gateway = VerifyResponse {
            source: Source::Gateway as i32,
            ..allow(7, 60_000)
        };
        for answer in [denied, transient, warned, stale, gateway, allow(7, 0)] {
            memo.remember(&r, &answer, &lease);
            assert!(memo.get(&r).is_none(), "kept {answer:?}");
        }
        let unleased = Arc::new(LeaseSlot::default());
        memo.remember(&r, &allow(7, 60_000), &unleased);
        assert!(memo.get(&r).is_none(), "kept without a lease");
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_outlives_its_reuse_time_the_cap_or_the_lease() {
        let memo = Memo::new(settings());
        let lease = leased(7);
        let short = request("reg.example/app:v1", "team-a");
        memo.remember(&short, &allow(7, 1_500), &lease);
        let capped = request("reg.example/app:v2", "team-a");
        memo.remember(&capped, &allow(7, u32::MAX), &lease);
        tokio::time::advance(Duration::from_millis(1_400)).await;
        assert!(memo.get(&short).is_some());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(memo.get(&short).is_none(), "past the verifier's reuse time");
        assert!(memo.get(&capped).is_some());
        // The lease (3 s from the grant) ends before the cap (5 s).
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert!(memo.get(&capped).is_none(), "past the lease");
        // Renewed at the same epoch: reusable again until the cap.
        lease.grant(7, Instant::now(), Duration::from_secs(3));
        assert!(memo.get(&capped).is_some());
        tokio::time::advance(Duration::from_millis(2_000)).await;
        assert!(memo.get(&capped).is_none(), "past --memo-ttl-ms");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_epoch_ends_every_answer_of_the_old_one() {
        let memo = Memo::new(settings());
        let lease = leased(7);
        let r = request("reg.example/app:v1", "team-a");
        memo.remember(&r, &allow(7, 60_000), &lease);
        assert!(memo.get(&r).is_some());
        // The lease is renewed at a new epoch: the old answer is dead, and
        // dropped.
        assert!(memo.leased(&lease, 8, Instant::now(), Duration::from_secs(3)));
        assert!(memo.get(&r).is_none());
        assert!(!memo.leased(&lease, 8, Instant::now(), Duration::from_secs(3)));
        // An answer naming another epoch than the lease's drops the lease
        // and the verifier's entries.
        let other = request("reg.example/app:v2", "team-a");
        assert_eq!(
            memo.remember(&other, &allow(8, 60_000), &lease),
            Remembered::Stored
        );
        assert!(memo.get(&other).is_some());
        assert_eq!(
            memo.remember(&r, &allow(9, 60_000), &lease),
            Remembered::EpochChanged
        );
        assert!(memo.get(&other).is_none());
        lease.grant(9, Instant::now(), Duration::from_secs(3));
        assert!(memo.get(&other).is_none(), "the entries were dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_verifier_known_dead_is_not_answered_for() {
        let memo = Memo::new(settings());
        let lease = leased(7);
        let r = request("reg.example/app:v1", "team-a");
        memo.remember(&r, &allow(7, 60_000), &lease);
        assert!(memo.get(&r).is_some());
        lease.set_alive(false);
        assert!(memo.get(&r).is_none());
        // Alive again, the dropped lease still has to be granted anew.
        lease.set_alive(true);
        assert!(memo.get(&r).is_none());
        lease.grant(7, Instant::now(), Duration::from_secs(3));
        assert!(memo.get(&r).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn it_stays_within_its_size() {
        let memo = Memo::new(MemoSettings {
            ttl: Duration::from_secs(5),
            max_entries: 2,
        });
        let lease = leased(7);
        for i in 0..3 {
            memo.remember(
                &request(&format!("r/a:{i}"), "n"),
                &allow(7, 60_000),
                &lease,
            );
        }
        assert!(memo.get(&request("r/a:0", "n")).is_some());
        assert!(memo.get(&request("r/a:2", "n")).is_none(), "full");
        tokio::time::advance(Duration::from_secs(6)).await;
        lease.grant(7, Instant::now(), Duration::from_secs(3));
        memo.remember(&request("r/a:2", "n"), &allow(7, 60_000), &lease);
        assert!(
            memo.get(&request("r/a:2", "n")).is_some(),
            "expired entries made room"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_turns_it_off() {
        let memo = Memo::new(MemoSettings {
            ttl: Duration::ZERO,
            max_entries: 100,
        });
        let lease = leased(7);
        let r = request("reg.example/app:v1", "team-a");
        memo.remember(&r, &allow(7, 60_000), &lease);
        assert!(memo.get(&r).is_none());
    }
}
