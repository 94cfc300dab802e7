//! A rule's `with:` options: what the policy says about how an image is
//! judged (pinning, trust roots, thresholds, attestations, delegations).
//! Which options a validator type accepts is checked when the config loads.

use serde::{Deserialize, Serialize};

/// Whether a rule pins verified tags to their digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Pin tag-only references to the verified digest (the default).
    #[default]
    #[serde(rename = "mutate")]
    Mutate,
    /// Verify, but never patch (for GitOps tools that fight the patch).
    /// `insecureValidateOnly` is accepted as Connaisseur's name for it.
    #[serde(rename = "validateOnly", alias = "insecureValidateOnly")]
    ValidateOnly,
}

/// How many verified transparency-log entries and time sources a cosign
/// signature needs (sigstore-go's `WithTransparencyLog`,
/// `WithIntegratedTimestamps`, `WithSignedTimestamps`,
/// `WithObserverTimestamps`). Unset fields take the defaults: for keyless
/// signatures one tlog entry and one observer timestamp (a Rekor v1 SET's
/// integration time, or an RFC 3161 timestamp from a trusted TSA); for key
/// signatures one tlog entry when `verifyInTransparencyLog` (or a Rekor
/// key) says so, and no timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigstorePolicy {
    /// Verified log entries (SET or inclusion proof), in distinct logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency_log: Option<u32>,
    /// Integration times vouched for by a SET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrated_timestamps: Option<u32>,
    /// RFC 3161 timestamps from distinct trusted TSAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_timestamps: Option<u32>,
    /// Integrated plus signed timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer_timestamps: Option<u32>,
}

/// An attestation a rule requires (cosign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttestationRequirement {
    /// The in-toto predicate type URI.
    pub predicate_type: String,
    /// The trust root that must have signed it (default: the rule's).
    #[serde(default)]
    pub trust_root: Option<String>,
    /// CEL expressions over the verified statement that must all hold
    /// (variables `predicate`, `predicateType`, `subject`, `signer`,
    /// `now`); compiled and checked at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// How many distinct accepted roots must each have signed an
    /// attestation that satisfies the conditions (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Accepted roots that must be among those (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<Vec<String>>,
}

/// A rule's `with:` options. Which ones are allowed depends on the
/// validator type; the loader rejects the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleOptions {
    /// Pin or only validate.
    #[serde(default)]
    pub mode: Mode,
    /// The trust root to use (cosign, notaryv1); `"*"` means all (cosign).
    /// `key` is accepted too: Connaisseur's older spelling, still in its
    /// docs.
    #[serde(default, alias = "key")]
    pub trust_root: Option<String>,
    /// How many distinct trust roots must have signed (cosign).
    #[serde(default)]
    pub threshold: Option<u32>,
    /// Trust roots that must be among the signers (cosign).
    #[serde(default)]
    pub required: Option<Vec<String>>,
    /// Whether key-based signatures must carry a valid Rekor entry (cosign).
    #[serde(default)]
    pub verify_in_transparency_log: Option<bool>,
    /// Which time sources a keyless signature needs, as Sigstore's
    /// verification policy counts them (cosign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigstore_policy: Option<SigstorePolicy>,
    /// Required attestations (cosign).
    #[serde(default)]
    pub attestations: Option<Vec<AttestationRequirement>>,
    /// Delegations that must all sign the tag (notaryv1); `x` means
    /// `targets/x`.
    #[serde(default)]
    pub delegations: Option<Vec<String>>,
    /// How strictly signatures are verified (notation): `strict` (the
    /// default), `permissive` or `audit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_level: Option<VerificationLevel>,
    /// When a timestamp countersignature is required (notation): `always`
    /// (the default) or `afterCertExpiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_timestamp: Option<VerifyTimestamp>,
}

/// The Notary Project's verification levels (trust policy specification).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationLevel {
    /// Every validation is enforced.
    #[default]
    #[serde(rename = "strict")]
    Strict,
    /// Integrity and authenticity are enforced; an expired signature or an
    /// unauthentic timestamp is logged.
    #[serde(rename = "permissive")]
    Permissive,
    /// Integrity is enforced; every other finding is logged and shown as a
    /// warning, and the image is allowed.
    #[serde(rename = "audit")]
    Audit,
}

/// When a notation signature's timestamp countersignature is verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyTimestamp {
    /// Always (the default).
    #[default]
    #[serde(rename = "always")]
    Always,
    /// Only once the signing certificate has expired.
    #[serde(rename = "afterCertExpiry")]
    AfterCertExpiry,
}
