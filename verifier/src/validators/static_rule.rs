//! The `static` validator: a fixed allow or deny.

use crate::error::VerifyError;
use crate::validators::Verified;

/// Applies a static validator. An allow verifies nothing, so it carries no
/// digest and the gateway pins nothing.
pub fn decide(approve: bool, rule: &str, validator: &str) -> Result<Verified, VerifyError> {
    if approve {
        Ok(Verified::static_allow())
    } else {
        Err(VerifyError::StaticDeny {
            rule: rule.to_string(),
            validator: validator.to_string(),
        })
    }
}
