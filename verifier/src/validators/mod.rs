//! Validators: the signature schemes a policy rule can route an image to.

pub mod cosign;
pub mod notary;
pub mod static_rule;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use portcullis_proto::Reason;

use crate::config::{RuleOptions, ValidatorConfig, ValidatorKind};
use crate::error::VerifyError;
use crate::policy::Rule;
use crate::reference::ImageRef;

/// A successful validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The verified manifest digest, if the validator verified one.
    pub digest: Option<String>,
    /// `VERIFIED` or `STATIC_ALLOW`.
    pub reason: Reason,
    /// A human summary (e.g. which trust roots signed).
    pub message: String,
}

impl Verified {
    /// The result of a static allow: nothing verified, nothing to pin.
    pub fn static_allow() -> Self {
        Verified {
            digest: None,
            reason: Reason::StaticAllow,
            message: "allowed by a static rule".to_string(),
        }
    }
}

/// What a validator needs to judge one image.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The parsed image reference.
    pub image: &'a ImageRef,
    /// The matched rule.
    pub rule: &'a Rule,
    /// The rule's options.
    pub options: &'a RuleOptions,
    /// The evaluation time for expiry checks.
    pub now: DateTime<Utc>,
}

/// One configured validator, ready to run.
#[derive(Debug)]
pub enum Validator {
    /// `type: static`.
    Static {
        /// Allow or deny.
        approve: bool,
    },
    /// `type: cosign`.
    Cosign(Box<cosign::CosignValidator>),
    /// `type: notaryv1`.
    Notary(Box<notary::NotaryValidator>),
}

/// A validator that cannot be built (reported at start-up).
#[derive(Debug, thiserror::Error)]
#[error("validator `{name}`: {reason}")]
pub struct BuildError {
    /// The validator's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl Validator {
    /// Builds the runtime validator from its config.
    pub async fn from_config(
        config: &ValidatorConfig,
        metrics: &crate::metrics::VerifierMetrics,
    ) -> Result<Self, BuildError> {
        let err = |reason: String| BuildError {
            name: config.name.clone(),
            reason,
        };
        Ok(match &config.kind {
            ValidatorKind::Static { approve } => Validator::Static { approve: *approve },
            ValidatorKind::Cosign(spec) => Validator::Cosign(Box::new(
                cosign::CosignValidator::new(spec, metrics)
                    .await
                    .map_err(|e| err(e.to_string()))?,
            )),
            ValidatorKind::NotaryV1(spec) => Validator::Notary(Box::new(
                notary::NotaryValidator::new(spec, metrics).map_err(|e| err(e.to_string()))?,
            )),
        })
    }

    /// Validates one image, without the verdict cache (which the decision
    /// path applies to cosign).
    pub async fn validate(
        &self,
        name: &str,
        request: Request<'_>,
        caches: &std::sync::Arc<crate::cache::Caches>,
        deadline: tokio::time::Instant,
    ) -> Result<Verified, VerifyError> {
        match self {
            Validator::Static { approve } => {
                static_rule::decide(*approve, request.rule.pattern.written(), name)
            }
            Validator::Cosign(v) => v.validate(request).await,
            Validator::Notary(v) => {
                v.validate(
                    request.image,
                    request.options,
                    request.now,
                    caches,
                    deadline,
                )
                .await
            }
        }
    }
}

/// The validators by name.
#[derive(Debug, Default)]
pub struct Validators {
    by_name: HashMap<String, Validator>,
}

impl Validators {
    /// Builds every configured validator.
    pub async fn from_configs(
        configs: &[ValidatorConfig],
        metrics: &crate::metrics::VerifierMetrics,
    ) -> Result<Self, BuildError> {
        let mut by_name = HashMap::with_capacity(configs.len());
        for c in configs {
            by_name.insert(c.name.clone(), Validator::from_config(c, metrics).await?);
        }
        Ok(Validators { by_name })
    }

    /// The validator called `name`.
    pub fn get(&self, name: &str) -> Option<&Validator> {
        self.by_name.get(name)
    }
}
