//! The cache as a layer around any validator.
//!
//! * `resolve`: a tag's digest through the tag cache (both tiers,
//!   coalesced), keyed by `registry/repository:tag`, for the tag TTL. A
//!   reference that carries its digest is never looked up.
//! * `verify`: when the validator gives a fingerprint
//!   ([`Caching::ByDigest`]), the verdict for (fingerprint, digest) through
//!   the verdict cache: allows for the verdict TTL, definitive denials for
//!   the negative TTL, transient failures never (they are errors, which the
//!   cache never stores).
//! * Lookups that use a workload's registry credentials are keyed under
//!   that workload's identity as well, so one tenant's 401 never becomes a
//!   verdict another tenant reads.
//!
//! * An allow that holds only until some time (`Verified::valid_until`: a
//!   certificate checked against the current time ends, a signature
//!   expires) is cached no longer than that, and never served after it.
//!
//! * **Stale-if-error.** Every allowed verdict also leaves a copy under
//!   `KEY|stale` that lives `--stale-if-error-secs` longer. When a fresh
//!   verification of the same key fails *transiently* (registry, token
//!   service or Notary server unreachable, timing out, 429/5xx), that copy
//!   answers, with source `STALE` and a warning. It is keyed exactly like
//!   the verdict (fingerprint of rule and trust material, digest, workload
//!   scope), so a changed policy or trust root never finds it; a definitive
//!   denial deletes it at once; denials and transient failures never make
//!   one; a tag is never resolved from it (tags go through the tag cache,
//!   whose failures deny).
//!
//! What it may skip: the registry requests and signature checks of a
//! verification made under the same fingerprint (the same rule, validator
//! config and trust material) for the same digest. What it never allows:
//! a digest that was not verified and allowed under that fingerprint, or an
//! answer made from a transient failure.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Caching, Call, Validator};
use crate::cache::{CachedVerdict, Caches, verdict_key};
use crate::error::VerifyError;
use crate::policy::Rule;
use crate::reference::ImageRef;
use crate::verdict::{Judgement, Reuse};

/// Refresh-ahead starts when an allowed verdict is used with less than
/// this fraction of its TTL left.
const REFRESH_FRACTION: u32 = 10;
/// The deadline of a background re-verification (each registry request is
/// bounded by the validator's own timeouts as well).
const REFRESH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// A validator behind the tag and verdict caches.
#[derive(Debug)]
pub(crate) struct Cached {
    inner: Arc<dyn Validator>,
    caches: Arc<Caches>,
    /// Verdict keys being refreshed in the background by this process.
    refreshing: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// Caches a fresh result: the verdict with its TTL, and, for an allow, the
/// copy stale-if-error answers from (a definitive denial deletes it).
/// `None` for transient failures, which are cached nowhere.
async fn record(
    caches: &Caches,
    stale_key: &str,
    result: &Result<crate::verdict::Verified, VerifyError>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<(CachedVerdict, std::time::Duration)> {
    let ttls = caches.ttls;
    let v = CachedVerdict::from_result(result)?;
    let ttl = if v.allowed {
        ttls.verdict
    } else {
        ttls.negative
    };
    let ttl = capped(ttl, v.valid_until, now);
    if v.allowed {
        if !ttls.stale_if_error.is_zero() {
            let keep = capped(ttl + ttls.stale_if_error, v.valid_until, now);
            caches.verdicts.put(stale_key, v.clone(), keep).await;
        }
    } else {
        caches.verdicts.remove(stale_key).await;
    }
    Some((v, ttl))
}

impl Cached {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Box<dyn Validator>, caches: Arc<Caches>) -> Self {
        Cached {
            inner: Arc::from(inner),
            caches,
            refreshing: Arc::default(),
        }
    }

    /// Re-verifies `digest` in the background before its allowed verdict
    /// expires, at most once at a time per key in this process and, through
    /// the shared cache's lease, across verifiers.
    #[allow(clippy::too_many_arguments)]
    fn refresh_ahead(
        &self,
        key: String,
        stale_key: String,
        image: &ImageRef,
        digest: &str,
        rule: &Rule,
        call: &Call<'_>,
    ) {
        let Ok(mut refreshing) = self.refreshing.lock() else {
            return;
        };
        if !refreshing.insert(key.clone()) {
            return;
        }
        drop(refreshing);
        let (inner, caches, refreshing) = (
            self.inner.clone(),
            self.caches.clone(),
            self.refreshing.clone(),
        );
        let (image, digest, rule) = (image.clone(), digest.to_string(), rule.clone());
        let workload = call.workload.cloned();
        tokio::spawn(async move {
            caches
                .verdicts
                .refresh(&key, || async {
                    let call = Call {
                        now: chrono::Utc::now(),
                        deadline: tokio::time::Instant::now() + REFRESH_DEADLINE,
                        workload: workload.as_ref(),
                    };
                    let result = inner
                        .verify(&image, Some(&digest), &rule, &call)
                        .await
                        .result;
                    let outcome = match &result {
                        Ok(_) => "allowed",
                        Err(e) if e.is_transient() => "transient",
                        Err(_) => "denied",
                    };
                    caches
                        .metrics
                        .refreshes
                        .get_or_create(&vec![("result", outcome.to_string())])
                        .inc();
                    record(&caches, &stale_key, &result, call.now).await
                })
                .await;
            if let Ok(mut r) = refreshing.lock() {
                r.remove(&key);
            }
        });
    }

    /// The verdict-cache key of `digest` under `rule` (without workload
    /// scope), or `None` when verdicts are not cached.
    pub(crate) fn verdict_key(&self, rule: &Rule, digest: &str) -> Option<String> {
        match self.inner.caching(rule) {
            Caching::ByDigest(fingerprint) => Some(verdict_key(&fingerprint, digest)),
            Caching::Never => None,
        }
    }

    /// [`Validator::resolve`] through the tag cache, also telling until
    /// when the answer holds (`Reuse::Until` the tag entry's expiry for a
    /// resolved tag; `WhilePolicyHolds` when nothing was looked up).
    pub(crate) async fn resolve_expiring(
        &self,
        image: &ImageRef,
        call: &Call<'_>,
    ) -> Result<(Option<String>, Reuse), VerifyError> {
        if let Some(digest) = image.digest() {
            return self
                .inner
                .resolve(image, call)
                .await
                .map(|d| (d.or(Some(digest.to_string())), Reuse::WhilePolicyHolds));
        }
        if !self.inner.resolves() {
            return self
                .inner
                .resolve(image, call)
                .await
                .map(|d| (d, Reuse::WhilePolicyHolds));
        }
        let key = self.scoped(
            image,
            call,
            format!("{}:{}", image.name(), image.tag().unwrap_or("latest")),
        );
        let ttl = self.caches.ttls.tag;
        let resolved = self
            .caches
            .tags
            .get_or_compute_expiring(&key, call.deadline, || async {
                match self.inner.resolve(image, call).await {
                    Ok(Some(digest)) => Ok((Some(digest), ttl)),
                    // Nothing to cache for validators that do not resolve.
                    Ok(None) => Ok((None, std::time::Duration::ZERO)),
                    Err(e) => Err(e),
                }
            })
            .await;
        match resolved {
            Ok((digest, _, expires_at_ms)) => Ok((digest, Reuse::Until(expires_at_ms))),
            Err(e) => Err((*e).clone()),
        }
    }

    /// `base`, scoped to the workload when its credentials are in play.
    fn scoped(&self, image: &ImageRef, call: &Call<'_>, base: String) -> String {
        match call.workload {
            Some(w) if self.inner.uses_workload_credentials(image, call) => {
                format!("{base}|workload:{}", w.identity)
            }
            _ => base,
        }
    }
}

/// `ttl`, shortened so that an entry never outlives `valid_until` (Unix
/// seconds) as seen at `now`.
fn capped(
    ttl: std::time::Duration,
    valid_until: Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> std::time::Duration {
    match valid_until {
        Some(t) => {
            let left = u64::try_from(t - now.timestamp()).unwrap_or(0);
            ttl.min(std::time::Duration::from_secs(left))
        }
        None => ttl,
    }
}

#[async_trait]
impl Validator for Cached {
    async fn resolve(
        &self,
        image: &ImageRef,
        call: &Call<'_>,
    ) -> Result<Option<String>, VerifyError> {
        self.resolve_expiring(image, call).await.map(|(d, _)| d)
    }

    fn resolves(&self) -> bool {
        self.inner.resolves()
    }

    fn binds_tags(&self) -> bool {
        self.inner.binds_tags()
    }

    async fn verify(
        &self,
        image: &ImageRef,
        digest: Option<&str>,
        rule: &Rule,
        call: &Call<'_>,
    ) -> Judgement {
        let (Caching::ByDigest(fingerprint), Some(digest)) = (self.inner.caching(rule), digest)
        else {
            return self.inner.verify(image, digest, rule, call).await;
        };
        let ttls = self.caches.ttls;
        let key = self.scoped(image, call, verdict_key(&fingerprint, digest));
        // The stale copy's key, built only off the hit path.
        let stale_key = || format!("{key}|stale");
        let verdict = self
            .caches
            .verdicts
            .get_or_compute_expiring(&key, call.deadline, || async {
                let result = self
                    .inner
                    .verify(image, Some(digest), rule, call)
                    .await
                    .result;
                match record(&self.caches, &stale_key(), &result, call.now).await {
                    Some(stored) => Ok(stored),
                    None => Err(result.err().unwrap_or(VerifyError::Internal(
                        "transient failure without error".into(),
                    ))),
                }
            })
            .await;
        // Refresh-ahead: an allow served from a cache in the last tenth of
        // its lifetime is re-verified in the background, so that a hot
        // image never expires into a cold miss on the admission path.
        if let Ok((v, source, expires_at_ms)) = &verdict
            && v.allowed
            && *source != portcullis_proto::Source::Fresh
        {
            let now_ms = u64::try_from(call.now.timestamp_millis()).unwrap_or(0);
            let left = expires_at_ms.saturating_sub(now_ms);
            let window = (ttls.verdict / REFRESH_FRACTION).as_millis() as u64;
            if left > 0 && left < window {
                self.refresh_ahead(key.clone(), stale_key(), image, digest, rule, call);
            }
        }
        if let Err(e) = &verdict
            && e.is_transient()
            && !ttls.stale_if_error.is_zero()
            && let Some(stale) = self.caches.verdicts.peek(&stale_key()).await
            && stale.allowed
            && stale.valid_until.is_none_or(|t| t > call.now.timestamp())
        {
            tracing::warn!(
                image = %image,
                digest,
                error = %e,
                "re-verification failed transiently; answering with the last allowed verdict (stale-if-error)"
            );
            let mut result = stale.into_result();
            if let Ok(v) = &mut result {
                v.warnings.push(format!(
                    "stale: re-verification failed ({}); the last allowed verdict for this digest answers",
                    portcullis_proto::reason_code(e.reason())
                ));
            }
            return Judgement {
                result,
                source: portcullis_proto::Source::Stale,
                reuse: Reuse::Never,
            };
        }
        match verdict {
            // An allow past the time it holds until (a tier kept it a
            // little longer than its capped TTL) is verified afresh.
            Ok((v, _, _)) if v.valid_until.is_some_and(|t| t <= call.now.timestamp()) => {
                self.inner.verify(image, Some(digest), rule, call).await
            }
            // An allow may be reused no longer than its cache entry lives
            // (the entry's TTL is already capped by `valid_until`).
            Ok((v, source, expires_at_ms)) => Judgement {
                reuse: if v.allowed {
                    Reuse::Until(expires_at_ms)
                } else {
                    Reuse::Never
                },
                result: v.into_result(),
                source,
            },
            Err(e) => Judgement::fresh(Err((*e).clone())),
        }
    }

    fn caching(&self, rule: &Rule) -> Caching {
        self.inner.caching(rule)
    }

    fn uses_workload_credentials(&self, image: &ImageRef, call: &Call<'_>) -> bool {
        self.inner.uses_workload_credentials(image, call)
    }
}
