//! The error type of the verification chain and its stable reason codes.

use thiserror::Error;

/// Why trust data (or a target lookup) was rejected.
///
/// Every variant that concerns one piece of metadata names its role
/// (`root`, `timestamp`, `snapshot`, `targets`, `targets/releases`, or
/// `N.root` for an intermediate root during rotation), so that a deny message
/// can say which file failed. [`NotaryError::reason_code`] gives the stable
/// machine-readable code and [`NotaryError::detail`] the short detail shown
/// next to it.
///
/// Signatures versus thresholds: when **no** signature of a role verifies
/// with the role's keys the error is [`NotaryError::SignatureInvalid`]; when
/// at least one verifies but fewer than the threshold do, it is
/// [`NotaryError::ThresholdNotMet`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotaryError {
    /// A metadata file needed for the decision was not supplied (the caller
    /// got a 404, or passed empty bytes).
    #[error("trust data not found: {role} metadata is missing")]
    TrustDataNotFound {
        /// The missing role (`root`, `3.root`, `targets/releases`, ...).
        role: String,
    },

    /// The pinned root key is not one of the root role's keys, or the
    /// certificate that carries it is not issued for this GUN.
    #[error("root key mismatch: {reason}")]
    RootKeyMismatch {
        /// What did not match.
        reason: String,
    },

    /// No signature of the role verified with the keys trusted for it.
    #[error("signature invalid: {role} metadata has no valid signature{}", fmt_reason(.reason))]
    SignatureInvalid {
        /// The role whose signatures failed.
        role: String,
        /// Optional extra explanation (empty when none).
        reason: String,
    },

    /// Some signatures verified, but fewer than the role's threshold.
    #[error(
        "threshold not met: {role} metadata has {valid} valid signature(s), {threshold} required"
    )]
    ThresholdNotMet {
        /// The role whose threshold was not met.
        role: String,
        /// Distinct keys with a valid signature.
        valid: u64,
        /// The role's threshold.
        threshold: u64,
    },

    /// The role's metadata expired at or before the evaluation time.
    #[error("expired: {role} metadata expired at {expires}")]
    Expired {
        /// The expired role.
        role: String,
        /// The `expires` field, RFC 3339.
        expires: String,
    },

    /// The root certificate that carries the trusted root key is not valid at
    /// the evaluation time (reason code `EXPIRED`).
    #[error("expired: the {role} certificate is valid only from {not_before} to {not_after}")]
    CertificateNotValid {
        /// The role whose key certificate is out of its validity (`root`).
        role: String,
        /// The certificate's notBefore, RFC 3339.
        not_before: String,
        /// The certificate's notAfter, RFC 3339.
        not_after: String,
    },

    /// The served bytes of a role do not match the length or a hash listed
    /// for them by the parent metadata (timestamp for snapshot, snapshot for
    /// root, targets and delegations), or the version they carry differs from
    /// the listed one.
    #[error(
        "hash mismatch: {role} metadata does not match what {listed_by} lists for it: {reason}"
    )]
    HashMismatch {
        /// The role whose bytes do not match.
        role: String,
        /// The role that lists the expected length/hashes.
        listed_by: String,
        /// What did not match.
        reason: String,
    },

    /// The served version of a role is older than the newest one seen before
    /// (or, for root, than the trusted root).
    #[error(
        "trust data rollback: {role} metadata version {served} is older than version {seen} seen before"
    )]
    TrustDataRollback {
        /// The role that was rolled back.
        role: String,
        /// The version served now.
        served: u64,
        /// The newest version seen before.
        seen: u64,
    },

    /// The tag (or digest) is not in the signed targets of the consulted
    /// role(s).
    #[error("tag not signed: {tag} is not in the signed targets of {roles}")]
    TagNotSigned {
        /// The tag looked up (or `sha256:...` for a digest-only lookup).
        tag: String,
        /// The role(s) consulted, comma separated.
        roles: String,
    },

    /// A delegation required by the policy does not exist, or does not sign
    /// the target.
    #[error("delegation missing: required delegation {name} {reason}")]
    DelegationMissing {
        /// The delegation as named in the policy (`releases`, `alice`).
        name: String,
        /// `is not declared in targets` / `does not sign <tag>`.
        reason: String,
    },

    /// The required delegations sign different digests for the same tag.
    #[error(
        "ambiguous digest: the required delegations sign different digests for {tag}: {signed}"
    )]
    AmbiguousDigest {
        /// The tag looked up.
        tag: String,
        /// `role=sha256:..` pairs, comma separated.
        signed: String,
    },

    /// The digest given with the tag is not the one signed for the tag.
    #[error("digest mismatch: the image digest {expected} is not the signed digest {signed}")]
    DigestMismatch {
        /// The digest in the image reference.
        expected: String,
        /// The digest signed for the tag.
        signed: String,
    },

    /// The metadata of a role could not be parsed or is structurally invalid
    /// (reason code `SIGNATURE_INVALID`: nothing in it can be trusted).
    #[error("malformed {role} metadata: {reason}")]
    Malformed {
        /// The role whose metadata is malformed.
        role: String,
        /// What is wrong.
        reason: String,
    },
}

fn fmt_reason(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

impl NotaryError {
    /// The stable reason code: one of `TRUST_DATA_NOT_FOUND`,
    /// `ROOT_KEY_MISMATCH`, `SIGNATURE_INVALID`, `THRESHOLD_NOT_MET`,
    /// `EXPIRED`, `HASH_MISMATCH`, `TRUST_DATA_ROLLBACK`, `TAG_NOT_SIGNED`,
    /// `DELEGATION_MISSING`, `AMBIGUOUS_DIGEST`, `DIGEST_MISMATCH`.
    ///
    /// [`NotaryError::Malformed`] maps to `SIGNATURE_INVALID` and
    /// [`NotaryError::CertificateNotValid`] to `EXPIRED`.
    pub fn reason_code(&self) -> &'static str {
        self.code().as_str()
    }

    /// The stable reason code, typed: callers map it to their own codes
    /// with an exhaustive `match`, never by parsing the string.
    pub fn code(&self) -> Code {
        match self {
            Self::TrustDataNotFound { .. } => Code::TrustDataNotFound,
            Self::RootKeyMismatch { .. } => Code::RootKeyMismatch,
            Self::SignatureInvalid { .. } | Self::Malformed { .. } => Code::SignatureInvalid,
            Self::ThresholdNotMet { .. } => Code::ThresholdNotMet,
            Self::Expired { .. } | Self::CertificateNotValid { .. } => Code::Expired,
            Self::HashMismatch { .. } => Code::HashMismatch,
            Self::TrustDataRollback { .. } => Code::TrustDataRollback,
            Self::TagNotSigned { .. } => Code::TagNotSigned,
            Self::DelegationMissing { .. } => Code::DelegationMissing,
            Self::AmbiguousDigest { .. } => Code::AmbiguousDigest,
            Self::DigestMismatch { .. } => Code::DigestMismatch,
        }
    }

    /// The short detail shown in parentheses after the reason code: the role
    /// name for metadata errors (`timestamp`, `targets/releases`), `k of n`
    /// for a threshold, the tag, the delegation name, or the signed digest.
    pub fn detail(&self) -> String {
        match self {
            Self::TrustDataNotFound { role }
            | Self::SignatureInvalid { role, .. }
            | Self::Expired { role, .. }
            | Self::CertificateNotValid { role, .. }
            | Self::HashMismatch { role, .. }
            | Self::TrustDataRollback { role, .. }
            | Self::Malformed { role, .. } => role.clone(),
            Self::RootKeyMismatch { .. } => "root".to_owned(),
            Self::ThresholdNotMet {
                valid, threshold, ..
            } => format!("{valid} of {threshold}"),
            Self::TagNotSigned { tag, .. } | Self::AmbiguousDigest { tag, .. } => tag.clone(),
            Self::DelegationMissing { name, .. } => name.clone(),
            Self::DigestMismatch { signed, .. } => signed.clone(),
        }
    }

    /// The metadata role this error is about, if it is about one
    /// (`RootKeyMismatch` is about `root`).
    pub fn role(&self) -> Option<&str> {
        match self {
            Self::TrustDataNotFound { role }
            | Self::SignatureInvalid { role, .. }
            | Self::ThresholdNotMet { role, .. }
            | Self::Expired { role, .. }
            | Self::CertificateNotValid { role, .. }
            | Self::HashMismatch { role, .. }
            | Self::TrustDataRollback { role, .. }
            | Self::Malformed { role, .. } => Some(role),
            Self::RootKeyMismatch { .. } => Some("root"),
            _ => None,
        }
    }

    pub(crate) fn malformed(role: &str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            role: role.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A key listed in TUF metadata that cannot be used: an unsupported type,
/// or material that does not match its `keytype`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unusable TUF key: {0}")]
pub struct KeyError(pub String);

/// A pinned key (or certificate) that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid pinned key: {0}")]
pub struct KeyParseError(pub String);

/// The stable reason codes of [`NotaryError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// `TRUST_DATA_NOT_FOUND`: the server has no trust data for the GUN.
    TrustDataNotFound,
    /// `ROOT_KEY_MISMATCH`: the pinned key is not a root key of the GUN.
    RootKeyMismatch,
    /// `SIGNATURE_INVALID`: a role's signatures do not verify (or it is
    /// malformed).
    SignatureInvalid,
    /// `THRESHOLD_NOT_MET`: too few of a role's keys signed.
    ThresholdNotMet,
    /// `EXPIRED`: a role (or a root certificate) is expired.
    Expired,
    /// `HASH_MISMATCH`: a role's bytes do not match its listed hash/length.
    HashMismatch,
    /// `TRUST_DATA_ROLLBACK`: a role's version is older than one seen.
    TrustDataRollback,
    /// `TAG_NOT_SIGNED`: the tag is not a signed target.
    TagNotSigned,
    /// `DELEGATION_MISSING`: a required delegation does not sign the tag.
    DelegationMissing,
    /// `AMBIGUOUS_DIGEST`: required delegations sign different digests.
    AmbiguousDigest,
    /// `DIGEST_MISMATCH`: the tag is signed for another digest.
    DigestMismatch,
}

impl Code {
    /// The code as written in deny messages, e.g. `HASH_MISMATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::TrustDataNotFound => "TRUST_DATA_NOT_FOUND",
            Code::RootKeyMismatch => "ROOT_KEY_MISMATCH",
            Code::SignatureInvalid => "SIGNATURE_INVALID",
            Code::ThresholdNotMet => "THRESHOLD_NOT_MET",
            Code::Expired => "EXPIRED",
            Code::HashMismatch => "HASH_MISMATCH",
            Code::TrustDataRollback => "TRUST_DATA_ROLLBACK",
            Code::TagNotSigned => "TAG_NOT_SIGNED",
            Code::DelegationMissing => "DELEGATION_MISSING",
            Code::AmbiguousDigest => "AMBIGUOUS_DIGEST",
            Code::DigestMismatch => "DIGEST_MISMATCH",
        }
    }
}
