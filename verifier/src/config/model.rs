//! Validated config types.

use super::cosign::CosignSpec;
use crate::policy::Policy;

/// The whole validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The validators, in config order.
    pub(crate) validators: Vec<ValidatorConfig>,
    /// The compiled policy.
    pub policy: Policy,
}

/// One validator entry.
#[derive(Debug, Clone)]
pub(crate) struct ValidatorConfig {
    /// The validator's unique name.
    pub(crate) name: String,
    /// Type-specific settings.
    pub(crate) kind: ValidatorKind,
    /// SHA-256 over the canonical JSON of the validator's whole config entry
    /// (trust roots included). Part of every rule fingerprint.
    pub(crate) fingerprint: [u8; 32],
}

/// Type-specific validator settings.
#[derive(Debug, Clone)]
pub(crate) enum ValidatorKind {
    /// `type: static`: always approve or always deny.
    Static {
        /// `approve: true` allows, `false` denies.
        approve: bool,
    },
    /// `type: cosign`: Sigstore signatures and attestations.
    Cosign(Box<CosignSpec>),
    /// `type: notaryv1`: Docker Content Trust.
    NotaryV1(Box<super::notary::NotarySpec>),
}

impl ValidatorKind {
    /// The config name of the type (`static`, `cosign`, `notaryv1`).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            ValidatorKind::Static { .. } => "static",
            ValidatorKind::Cosign(_) => "cosign",
            ValidatorKind::NotaryV1(_) => "notaryv1",
        }
    }
}
