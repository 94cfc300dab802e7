//! Validated config types.

use super::cosign::CosignSpec;
use crate::policy::Policy;
use crate::policy::RuleOptions;

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

/// Type-specific validator settings: one variant per validator type, each
/// defined in its own module (`config/<type>.rs`).
#[derive(Debug, Clone)]
pub(crate) enum ValidatorKind {
    /// `type: static`: always approve or always deny.
    Static(super::static_rule::StaticSpec),
    /// `type: cosign`: Sigstore signatures and attestations.
    Cosign(Box<CosignSpec>),
    /// `type: notaryv1`: Docker Content Trust.
    NotaryV1(Box<super::notary::NotarySpec>),
    /// `type: notation`: Notary Project signatures (JWS and COSE envelopes).
    Notation(Box<super::notation::NotationSpec>),
}

impl ValidatorKind {
    /// The type's view of the rules that use it.
    pub(crate) fn spec(&self) -> &dyn RuleOptionsCheck {
        match self {
            ValidatorKind::Static(s) => s,
            ValidatorKind::Cosign(s) => s.as_ref(),
            ValidatorKind::NotaryV1(s) => s.as_ref(),
            ValidatorKind::Notation(s) => s.as_ref(),
        }
    }
}

/// What a validator type's config says about the rules that route to it.
pub(crate) trait RuleOptionsCheck {
    /// The config `type:` name.
    fn type_name(&self) -> &'static str;
    /// The `with:` options this type accepts (others are config errors).
    fn options(&self) -> &'static [&'static str];
    /// Checks a rule's options against this validator's config (names
    /// trust roots that exist, a threshold it can meet); `(field, message)`.
    fn check_rule(&self, options: &RuleOptions) -> Result<(), (String, String)>;
}
