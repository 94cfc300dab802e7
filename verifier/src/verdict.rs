//! What a validator concludes about one image: [`Verified`] on success (the
//! failure side is [`crate::error::VerifyError`]), and the [`Judgement`]
//! that pairs the result with where it came from (a fresh verification or a
//! cache tier).

use portcullis_proto::{Reason, Source};

use crate::error::VerifyError;

/// A successful validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The verified manifest digest, if the validator verified one.
    pub(crate) digest: Option<String>,
    /// `VERIFIED`, `STATIC_ALLOW` or `AUDIT_ONLY`.
    pub(crate) reason: Reason,
    /// A human summary (e.g. which trust roots signed).
    pub(crate) message: String,
    /// Findings that did not decide the verdict but must be shown (the
    /// failures an `audit`-level rule logs instead of denying).
    pub(crate) warnings: Vec<String>,
    /// When the verdict stops holding by itself (a certificate checked
    /// against the current time ends, the signature expires): caches never
    /// serve it past this time.
    pub(crate) valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Verified {
    /// The result of a static allow: nothing verified, nothing to pin.
    pub(crate) fn static_allow() -> Self {
        Verified {
            digest: None,
            reason: Reason::StaticAllow,
            message: "allowed by a static rule".to_string(),
            warnings: Vec::new(),
            valid_until: None,
        }
    }
}

/// How long the same answer may be given again without looking anything
/// up: what the gateway's memo may reuse (`VerifyResponse::reuse_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Not at all (the default: nothing bounds the answer's life).
    Never,
    /// Until this Unix time in milliseconds (a cache entry's expiry).
    Until(u64),
    /// For as long as the policy is unchanged (a static rule).
    WhilePolicyHolds,
}

impl Reuse {
    /// The shorter of the two.
    pub(crate) fn min(self, other: Reuse) -> Reuse {
        match (self, other) {
            (Reuse::Never, _) | (_, Reuse::Never) => Reuse::Never,
            (Reuse::WhilePolicyHolds, r) | (r, Reuse::WhilePolicyHolds) => r,
            (Reuse::Until(a), Reuse::Until(b)) => Reuse::Until(a.min(b)),
        }
    }
}

/// A validator's result with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Judgement {
    /// Allowed (what was verified) or denied (why).
    pub(crate) result: Result<Verified, VerifyError>,
    /// A fresh verification, or the cache tier that answered.
    pub(crate) source: Source,
    /// How long the answer may be reused as it stands.
    pub(crate) reuse: Reuse,
}

impl Judgement {
    /// A result computed just now (not reusable).
    pub(crate) fn fresh(result: Result<Verified, VerifyError>) -> Self {
        Judgement {
            result,
            source: Source::Fresh,
            reuse: Reuse::Never,
        }
    }
}
