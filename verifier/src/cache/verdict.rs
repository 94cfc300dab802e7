//! The cached form of a verdict, and the caches the decision path uses.

use std::sync::Arc;
use std::time::Duration;

use portcullis_proto::Reason;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::redis::L2;
use super::store::Blob;
use super::tiered::{TierSettings, Tiered};
use crate::error::VerifyError;
use crate::metrics::VerifierMetrics;
use crate::verdict::Verified;

/// A verdict as cached: allowed with the verified digest, or a definitive
/// denial with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedVerdict {
    /// Allowed or not.
    pub allowed: bool,
    /// The verified digest (allowed only).
    pub digest: Option<String>,
    /// The reason code (proto number).
    pub reason: i32,
    /// The reason's parameters.
    pub detail: String,
    /// The human message.
    pub message: String,
    /// Warnings of an allowed verdict (re-shown on every hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Unix seconds after which an allow no longer holds by itself (a
    /// certificate or signature ends); never served past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
}

impl CachedVerdict {
    /// From a validator's result; `None` for transient failures, which are
    /// never cached.
    pub(crate) fn from_result(result: &Result<Verified, VerifyError>) -> Option<Self> {
        match result {
            Ok(v) => Some(CachedVerdict {
                allowed: true,
                digest: v.digest.clone(),
                reason: v.reason as i32,
                detail: String::new(),
                message: v.message.clone(),
                warnings: v.warnings.clone(),
                valid_until: v.valid_until.map(|t| t.timestamp()),
            }),
            Err(e) if e.is_transient() => None,
            Err(e) => Some(CachedVerdict {
                allowed: false,
                digest: None,
                reason: e.reason() as i32,
                detail: e.detail(),
                message: e.to_string(),
                warnings: Vec::new(),
                valid_until: None,
            }),
        }
    }

    /// Back to a result.
    pub(crate) fn into_result(self) -> Result<Verified, VerifyError> {
        let reason = Reason::try_from(self.reason).unwrap_or(Reason::Unspecified);
        if self.allowed
            && matches!(
                reason,
                Reason::Verified | Reason::StaticAllow | Reason::AuditOnly
            )
        {
            Ok(Verified {
                digest: self.digest,
                reason,
                message: self.message,
                warnings: self.warnings,
                valid_until: self
                    .valid_until
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
            })
        } else {
            Err(VerifyError::Cached {
                reason,
                detail: self.detail,
                message: self.message,
            })
        }
    }
}

/// Time-to-live settings.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// Allowed verdicts.
    pub verdict: Duration,
    /// Definitive denials.
    pub negative: Duration,
    /// Tag → digest resolutions.
    pub tag: Duration,
    /// Trust data (Notary metadata) refresh interval.
    pub trust: Duration,
    /// How long past its TTL an allowed verdict may still answer when
    /// re-verifying it fails transiently (zero: never).
    pub stale_if_error: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            verdict: Duration::from_secs(600),
            negative: Duration::from_secs(30),
            tag: Duration::from_secs(30),
            trust: Duration::from_secs(300),
            stale_if_error: Duration::from_secs(600),
        }
    }
}

/// L1 sizing and cross-verifier waiting.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// The most entries per cache kind in L1.
    pub max_entries: u64,
    /// The most bytes per cache kind in L1.
    pub max_bytes: u64,
    /// How long to wait for another verifier's lease.
    pub lease: Duration,
    /// How often to poll L2 while waiting.
    pub poll: Duration,
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing {
            max_entries: 200_000,
            max_bytes: 128 * 1024 * 1024,
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(15),
        }
    }
}

/// The caches of the decision path.
#[derive(Debug)]
pub struct Caches {
    /// Verdicts by rule fingerprint and digest.
    pub verdicts: Tiered<CachedVerdict>,
    /// Digests by `registry/repo:tag` (`None`: the validator resolves no
    /// tags; shared with waiters only, never kept).
    pub tags: Tiered<Option<String>>,
    /// Trust data of validators that cache below the verdict (Notary), as
    /// opaque bytes.
    pub(crate) trust: Arc<Tiered<Blob>>,
    /// TTLs.
    pub ttls: Ttls,
    /// The shared tier, if configured.
    pub l2: Option<Arc<L2>>,
    /// Metrics.
    pub metrics: VerifierMetrics,
}

impl Caches {
    /// Builds the caches over an optional shared tier.
    pub fn new(ttls: Ttls, sizing: Sizing, l2: Option<Arc<L2>>, metrics: VerifierMetrics) -> Self {
        let settings = |kind| TierSettings {
            kind,
            max_entries: sizing.max_entries,
            max_bytes: sizing.max_bytes,
            lease: sizing.lease,
            poll: sizing.poll,
        };
        Caches {
            verdicts: Tiered::new(
                settings("verdict"),
                l2.clone(),
                metrics.clone(),
                |v: &CachedVerdict| {
                    (v.message.len()
                        + v.detail.len()
                        + v.digest.as_ref().map_or(0, String::len)
                        + 64) as u32
                },
            ),
            tags: Tiered::new(
                settings("tag"),
                l2.clone(),
                metrics.clone(),
                |v: &Option<String>| v.as_ref().map_or(0, String::len) as u32,
            ),
            trust: Arc::new(Tiered::new(
                settings("trust"),
                l2.clone(),
                metrics.clone(),
                |v: &Blob| v.0.len() as u32,
            )),
            ttls,
            l2,
            metrics,
        }
    }

    /// In-process caches only (the `verify` command, tests).
    pub fn local() -> Self {
        Self::new(
            Ttls::default(),
            Sizing::default(),
            None,
            VerifierMetrics::unregistered(),
        )
    }
}

/// The verdict cache key: SHA-256 over the rule fingerprint and the digest.
pub fn verdict_key(rule_fingerprint: &[u8; 32], digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule_fingerprint);
    h.update(b"\0");
    h.update(digest.as_bytes());
    hex::encode(h.finalize())
}
