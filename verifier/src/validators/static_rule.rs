//! The `static` validator: a fixed allow or deny. An allow verifies
//! nothing, so it carries no digest and the gateway pins nothing.

use async_trait::async_trait;

use super::{Call, Validator};
use crate::error::VerifyError;
use crate::policy::Rule;
use crate::reference::ImageRef;
use crate::verdict::{Judgement, Reuse, Verified};

/// `type: static`.
#[derive(Debug)]
pub(crate) struct StaticValidator {
    name: String,
    approve: bool,
}

impl StaticValidator {
    /// The validator called `name`, allowing or denying everything.
    pub(crate) fn new(name: &str, approve: bool) -> Self {
        StaticValidator {
            name: name.to_string(),
            approve,
        }
    }
}

#[async_trait]
impl Validator for StaticValidator {
    async fn verify(
        &self,
        _image: &ImageRef,
        _digest: Option<&str>,
        rule: &Rule,
        _call: &Call<'_>,
    ) -> Judgement {
        if self.approve {
            // Decided by the rule alone: as reusable as the policy is.
            Judgement {
                reuse: Reuse::WhilePolicyHolds,
                ..Judgement::fresh(Ok(Verified::static_allow()))
            }
        } else {
            Judgement::fresh(Err(VerifyError::StaticDeny {
                rule: rule.pattern.written().to_string(),
                validator: self.name.clone(),
            }))
        }
    }
}
