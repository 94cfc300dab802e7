//! Why an image was denied: one typed enum, with a stable reason code per
//! variant and a flag for failures that may go away on retry.

use portcullis_proto::Reason;

use crate::reference::ReferenceError;
use crate::registry::RegistryError;

/// A denial. `Display` is the human message; [`VerifyError::reason`] the
/// stable code; [`VerifyError::detail`] the code's parameters.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The image reference does not parse.
    #[error("invalid image reference: {0}")]
    InvalidReference(#[from] ReferenceError),
    /// No policy rule matches the image.
    #[error("no policy rule matches {0}")]
    NoMatchingRule(String),
    /// A static rule denies the image.
    #[error("denied by static validator `{validator}` (rule `{rule}`)")]
    StaticDeny {
        /// The rule's pattern as written.
        rule: String,
        /// The validator's name.
        validator: String,
    },
    /// The verification did not finish within the caller's deadline.
    #[error("verification did not finish within the deadline")]
    Timeout,
    /// A bug or an impossible state; never an allow.
    #[error("internal error: {0}")]
    Internal(String),
    /// The image (tag or digest) does not exist in its registry.
    #[error("image {0} not found in its registry")]
    ImageNotFound(String),
    /// The registry failed or refused us.
    #[error("{0}")]
    Registry(RegistryError),
    /// No signature of any kind is attached to the image.
    #[error("no signatures found for {0}")]
    NoSignatures(String),
    /// Signatures exist, but none verifies with the rule's trust roots.
    #[error("no signature matches the trust roots ({0})")]
    NoMatchingSignature(String),
    /// Fewer distinct trust roots signed than the threshold requires.
    #[error("{valid} of {threshold} required trust roots signed ({signers})")]
    ThresholdNotMet {
        /// Distinct roots with a valid signature.
        valid: usize,
        /// The threshold.
        threshold: usize,
        /// Who signed, for the message.
        signers: String,
    },
    /// Required trust roots are not among the signers.
    #[error("required signers missing: {}", .0.join(", "))]
    RequiredSignerMissing(Vec<String>),
    /// A keyless signature's identity is not the trusted one.
    #[error("keyless identity mismatch: {0}")]
    IdentityMismatch(String),
    /// A transparency-log entry is missing or does not verify.
    #[error("transparency log: {0}")]
    TlogInvalid(String),
    /// A keyless certificate does not verify.
    #[error("certificate: {0}")]
    CertInvalid(String),
    /// Too few verified time sources (RFC 3161 timestamps, SET times).
    #[error("timestamp: {0}")]
    TimestampInvalid(String),
    /// Correctly signed, but for another digest.
    #[error("digest mismatch: {0}")]
    DigestMismatch(String),
    /// A required attestation is missing or unverified.
    #[error("no verified attestation of type {0}")]
    AttestationMissing(String),
    /// Attestations of the required type exist, but none meets the rule's
    /// conditions (the first failing condition is named).
    #[error("attestation {predicate_type}: condition not met: {condition}")]
    AttestationConditionFailed {
        /// The predicate type.
        predicate_type: String,
        /// The first condition that failed, as written.
        condition: String,
    },
    /// A condition could not be evaluated on an attestation (a run-time
    /// error, a result that is not a bool, the step budget, a statement
    /// over the size cap).
    #[error("attestation {predicate_type}: condition not evaluated: {message}")]
    AttestationPolicyError {
        /// The predicate type.
        predicate_type: String,
        /// The condition and what went wrong.
        message: String,
    },
    /// Notary trust data does not verify or does not sign the tag.
    #[error("{0}")]
    Notary(portcullis_notary_tuf::NotaryError),
    /// The Notary server failed or refused us.
    #[error("notary: {0}")]
    NotaryUnavailable(RegistryError),
    /// A Notation signature failed a verification step (the message names
    /// the step: integrity, authenticity, authentic timestamp, expiry).
    #[error("{message}")]
    Notation {
        /// The step's reason code.
        reason: Reason,
        /// What failed.
        message: String,
    },
    /// A definitive denial answered from the cache.
    #[error("{message}")]
    Cached {
        /// The original reason.
        reason: Reason,
        /// The original detail.
        detail: String,
        /// The original message.
        message: String,
    },
}

impl VerifyError {
    /// The stable reason code.
    pub(crate) fn reason(&self) -> Reason {
        match self {
            VerifyError::InvalidReference(_) => Reason::InvalidReference,
            VerifyError::NoMatchingRule(_) => Reason::NoMatchingRule,
            VerifyError::StaticDeny { .. } => Reason::StaticDeny,
            VerifyError::Timeout => Reason::Timeout,
            VerifyError::Internal(_) => Reason::InternalError,
            VerifyError::ImageNotFound(_) => Reason::ImageNotFound,
            VerifyError::Registry(RegistryError::AuthFailed { .. }) => Reason::RegistryAuthFailed,
            VerifyError::Registry(_) => Reason::RegistryUnavailable,
            VerifyError::NoSignatures(_) => Reason::NoSignatures,
            VerifyError::NoMatchingSignature(_) => Reason::NoMatchingSignature,
            VerifyError::ThresholdNotMet { .. } => Reason::ThresholdNotMet,
            VerifyError::RequiredSignerMissing(_) => Reason::RequiredSignerMissing,
            VerifyError::IdentityMismatch(_) => Reason::IdentityMismatch,
            VerifyError::TlogInvalid(_) => Reason::TlogInvalid,
            VerifyError::CertInvalid(_) => Reason::CertInvalid,
            VerifyError::TimestampInvalid(_) => Reason::TimestampInvalid,
            VerifyError::DigestMismatch(_) => Reason::DigestMismatch,
            VerifyError::AttestationMissing(_) => Reason::AttestationMissing,
            VerifyError::AttestationConditionFailed { .. } => Reason::AttestationConditionFailed,
            VerifyError::AttestationPolicyError { .. } => Reason::AttestationPolicyError,
            VerifyError::Cached { reason, .. } => *reason,
            VerifyError::Notation { reason, .. } => *reason,
            VerifyError::NotaryUnavailable(_) => Reason::NotaryUnavailable,
            VerifyError::Notary(e) => notary_reason(e),
        }
    }

    /// The reason's parameters (e.g. `1 of 2`), or "".
    pub(crate) fn detail(&self) -> String {
        match self {
            VerifyError::Registry(e) => e.detail(),
            VerifyError::ThresholdNotMet {
                valid, threshold, ..
            } => format!("{valid} of {threshold}"),
            VerifyError::RequiredSignerMissing(names) => names.join(", "),
            VerifyError::AttestationMissing(predicate_type) => predicate_type.clone(),
            VerifyError::AttestationConditionFailed {
                predicate_type,
                condition,
            } => format!("{predicate_type}: {condition}"),
            VerifyError::AttestationPolicyError {
                predicate_type,
                message,
            } => format!("{predicate_type}: {message}"),
            VerifyError::Cached { detail, .. } => detail.clone(),
            VerifyError::NotaryUnavailable(e) => match e {
                RegistryError::AuthFailed { host } => format!("{host}, 401"),
                e => e.detail(),
            },
            VerifyError::Notary(e) => notary_detail(e),
            _ => String::new(),
        }
    }

    /// True for failures that may go away on retry. Such denials are never
    /// cached.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            VerifyError::Timeout | VerifyError::Internal(_) => true,
            VerifyError::Registry(e) | VerifyError::NotaryUnavailable(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// The proto reason of a Notary error, by its typed code (exhaustive: a new
/// code does not compile until it has a reason).
fn notary_reason(e: &portcullis_notary_tuf::NotaryError) -> Reason {
    use portcullis_notary_tuf::Code;
    match e.code() {
        Code::TrustDataNotFound => Reason::TrustDataNotFound,
        Code::RootKeyMismatch => Reason::RootKeyMismatch,
        Code::SignatureInvalid => Reason::SignatureInvalid,
        Code::ThresholdNotMet => Reason::ThresholdNotMet,
        Code::Expired => Reason::Expired,
        Code::HashMismatch => Reason::HashMismatch,
        Code::TrustDataRollback => Reason::TrustDataRollback,
        Code::TagNotSigned => Reason::TagNotSigned,
        Code::DelegationMissing => Reason::DelegationMissing,
        Code::AmbiguousDigest => Reason::AmbiguousDigest,
        Code::DigestMismatch => Reason::DigestMismatch,
    }
}

/// The detail of a Notary error as the reason codes are documented:
/// `SIGNATURE_INVALID (role)`, `THRESHOLD_NOT_MET (role)`, `EXPIRED (role)`,
/// `HASH_MISMATCH (role)`, `TRUST_DATA_ROLLBACK (role)`,
/// `DELEGATION_MISSING (name)`; the others carry none (the message says
/// more).
fn notary_detail(e: &portcullis_notary_tuf::NotaryError) -> String {
    use portcullis_notary_tuf::NotaryError as N;
    match e {
        N::TrustDataNotFound { .. }
        | N::RootKeyMismatch { .. }
        | N::TagNotSigned { .. }
        | N::AmbiguousDigest { .. }
        | N::DigestMismatch { .. } => String::new(),
        N::DelegationMissing { name, .. } => name.clone(),
        other => other
            .role()
            .map(str::to_string)
            .unwrap_or_else(|| other.detail()),
    }
}
