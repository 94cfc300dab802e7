//! Validators: the signature schemes a policy rule can route an image to,
//! behind one small trait.
//!
//! * [`Validator`] is what a scheme implements: resolve a tag to the digest
//!   it verifies (if it verifies digests), verify, and say how its verdicts
//!   may be cached (a fingerprint of everything that decided them).
//! * [`Cached`] is the cache as a layer around any validator: the tag cache
//!   for `resolve`, the verdict cache for `verify` (both tiers, coalesced),
//!   keyed by the validator's fingerprint. It implements [`Validator`] too.
//! * [`Validators`] holds them by name, built once at start-up from the
//!   config ([`build`]: one line per validator type).
//!
//! Request-scoped inputs (the evaluation time, the deadline, the workload's
//! registry credentials) travel in one small [`Call`].

mod cached;
pub(crate) mod cosign;
pub(crate) mod notary;
pub(crate) mod notation;
mod signers;
mod static_rule;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::cache::Caches;
use crate::config::{ValidatorConfig, ValidatorKind};
use crate::error::VerifyError;
use crate::metrics::VerifierMetrics;
use crate::policy::Rule;
use crate::reference::ImageRef;
use crate::registry::{Credentials, RegistryClient};
use crate::verdict::Judgement;

pub(crate) use cached::Cached;

/// The request-scoped inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// The evaluation time for expiry checks.
    pub(crate) now: DateTime<Utc>,
    /// When the caller stops waiting.
    pub(crate) deadline: tokio::time::Instant,
    /// The workload's registry credentials (pull secrets), if any.
    pub(crate) workload: Option<&'a WorkloadCredentials>,
}

/// A workload's registry credentials and who it is: lookups made with them
/// are cached under [`WorkloadCredentials::identity`], never under the key
/// other workloads read.
#[derive(Debug, Clone)]
pub(crate) struct WorkloadCredentials {
    /// Credentials by exact registry host.
    pub(crate) credentials: Credentials,
    /// A hash of the namespace and the secret names.
    pub(crate) identity: String,
}

/// How a validator's verdicts may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    /// Not at all: the validator is cheap (static) or caches what it needs
    /// itself at a lower level (Notary's trust data, re-verified each time).
    Never,
    /// By digest, under this fingerprint of everything that decided the
    /// verdict: the rule (pattern, options, the validator's whole config)
    /// and any trust material loaded at start-up.
    ByDigest([u8; 32]),
}

/// One signature scheme.
#[async_trait]
pub(crate) trait Validator: Send + Sync + std::fmt::Debug {
    /// The digest `image` names now: its own digest, or its tag resolved in
    /// the registry. `None` for validators that judge the reference as
    /// written (static rules; Notary, whose signed targets map tags).
    async fn resolve(
        &self,
        _image: &ImageRef,
        _call: &Call<'_>,
    ) -> Result<Option<String>, VerifyError> {
        Ok(None)
    }

    /// Whether [`resolve`] looks anything up (cosign, notation). Validators
    /// that judge the reference as written say no, and the cache layer then
    /// skips the tag cache for them (no lookup, no shared-cache round trip,
    /// per admission of a static or Notary image).
    ///
    /// [`resolve`]: Validator::resolve
    fn resolves(&self) -> bool {
        false
    }

    /// Whether the validator itself checks that the tag of a `tag@digest`
    /// reference names the digest (Notary: the signed targets), so that the
    /// tag may choose its rule without asking the registry.
    fn binds_tags(&self) -> bool {
        false
    }

    /// Verifies `image` under `rule`; `digest` is what [`resolve`] gave.
    ///
    /// [`resolve`]: Validator::resolve
    async fn verify(
        &self,
        image: &ImageRef,
        digest: Option<&str>,
        rule: &Rule,
        call: &Call<'_>,
    ) -> Judgement;

    /// How this validator's verdicts under `rule` may be cached.
    fn caching(&self, _rule: &Rule) -> Caching {
        Caching::Never
    }

    /// Whether requests for `image` would authenticate with the workload's
    /// credentials in `call` (so that cache keys must be scoped to it).
    fn uses_workload_credentials(&self, _image: &ImageRef, _call: &Call<'_>) -> bool {
        false
    }
}

/// The validator's registry client, or a per-request view of it with a
/// workload's credentials.
pub(crate) enum ClientFor<'a> {
    /// The validator's own client.
    Ours(&'a RegistryClient),
    /// A view with the workload's pull-secret credentials added.
    Workload(Box<RegistryClient>),
}

impl std::ops::Deref for ClientFor<'_> {
    type Target = RegistryClient;

    fn deref(&self) -> &RegistryClient {
        match self {
            ClientFor::Ours(c) => c,
            ClientFor::Workload(c) => c,
        }
    }
}

impl<'a> ClientFor<'a> {
    /// `base`, or a view of it with `extra` credentials when there are any.
    pub(crate) fn new(base: &'a RegistryClient, extra: Option<&Credentials>) -> Self {
        match extra {
            Some(creds) if !creds.is_empty() => {
                ClientFor::Workload(Box::new(base.with_extra_credentials(creds)))
            }
            _ => ClientFor::Ours(base),
        }
    }
}

/// The digest `image` names: its own, or its tag (default `latest`)
/// resolved with `HEAD` through `client` (which Docker Hub does not count as
/// a pull); the resolution of every validator that verifies digests.
pub(crate) async fn resolve_digest(
    client: &RegistryClient,
    image: &ImageRef,
) -> Result<Option<String>, VerifyError> {
    if let Some(d) = image.digest() {
        return Ok(Some(d.to_string()));
    }
    let tag = image.tag().unwrap_or("latest");
    client
        .resolve_tag(image.registry(), image.repository(), tag)
        .await
        .map_err(VerifyError::Registry)?
        .ok_or_else(|| VerifyError::ImageNotFound(image.to_string()))
        .map(Some)
}

/// A validator that cannot be built (reported at start-up).
#[derive(Debug, thiserror::Error)]
#[error("validator `{name}`: {source}")]
pub struct BuildError {
    /// The validator's name.
    pub name: String,
    /// Why: the validator type's own error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// What building a validator may use: metrics and the caches' stores.
pub(crate) struct BuildEnv<'a> {
    pub(crate) metrics: &'a VerifierMetrics,
    pub(crate) caches: &'a Arc<Caches>,
}

/// Builds the validator a config entry describes: one line per type.
async fn build(
    config: &ValidatorConfig,
    env: &BuildEnv<'_>,
) -> Result<Box<dyn Validator>, BuildError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| BuildError {
        name: config.name.clone(),
        source,
    };
    Ok(match &config.kind {
        ValidatorKind::Static(spec) => Box::new(static_rule::StaticValidator::new(
            &config.name,
            spec.approve,
        )),
        ValidatorKind::Cosign(spec) => Box::new(
            cosign::CosignValidator::new(spec, env)
                .await
                .map_err(|e| err(Box::new(e)))?,
        ),
        ValidatorKind::NotaryV1(spec) => {
            Box::new(notary::NotaryValidator::new(spec, env).map_err(|e| err(Box::new(e)))?)
        }
        ValidatorKind::Notation(spec) => {
            Box::new(notation::NotationValidator::new(spec, env).map_err(|e| err(Box::new(e)))?)
        }
    })
}

/// The validators by name, each behind the cache layer.
#[derive(Debug, Default)]
pub(crate) struct Validators {
    by_name: HashMap<String, Cached>,
}

impl Validators {
    /// Builds every configured validator.
    pub(crate) async fn build_all(
        configs: &[ValidatorConfig],
        env: &BuildEnv<'_>,
    ) -> Result<Self, BuildError> {
        let mut by_name = HashMap::with_capacity(configs.len());
        for c in configs {
            let inner = build(c, env).await?;
            by_name.insert(c.name.clone(), Cached::new(inner, env.caches.clone()));
        }
        Ok(Validators { by_name })
    }

    /// The validator called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Cached> {
        self.by_name.get(name)
    }
}
