//! The `notaryv1` validator: Docker Content Trust, with full TUF
//! verification of the Notary metadata ([`tuf`]).
//!
//! The path:
//!
//! 1. [`fetch`] the trust data of the GUN (`registry/repository`): `root`,
//!    `timestamp`, `snapshot` and `targets` in parallel, then the delegations
//!    the lookup needs, then the intermediate `N.root.json` files when the
//!    served root is newer than the one we trust. Trust data is cached per
//!    GUN (both tiers, coalesced), for the trust TTL and never past the
//!    timestamp role's expiry.
//! 2. [`tuf::verify_repository`] against the pinned root key, the trusted
//!    root (rotation) and the highest version seen of every role (rollback),
//!    at the evaluation time.
//! 3. Look the tag (and/or digest) up under the delegation policy.
//!
//! The highest versions and the trusted root are kept per GUN in the
//! verifier and, with Redis, in the shared cache, so that neither a restart
//! nor another verifier can be rolled back.

pub mod fetch;
pub mod state;
pub mod tuf;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use portcullis_proto::Reason;

use crate::cache::Caches;
use crate::config::RuleOptions;
use crate::config::notary::NotarySpec;
use crate::error::VerifyError;
use crate::reference::ImageRef;
use crate::registry::{ClientBuildError, RegistryClient, RegistrySettings};
use crate::validators::Verified;
use fetch::TrustData;
use state::TrustState;
use tuf::{NotaryError, TargetQuery};

/// A configured Notary validator.
#[derive(Debug)]
pub struct NotaryValidator {
    spec: NotarySpec,
    client: RegistryClient,
    state: TrustState,
}

impl NotaryValidator {
    /// Builds the validator and its HTTP client.
    pub fn new(
        spec: &NotarySpec,
        metrics: &crate::metrics::VerifierMetrics,
    ) -> Result<Self, ClientBuildError> {
        let mut credentials = std::collections::HashMap::new();
        if let Some(c) = &spec.credential {
            credentials.insert(spec.host_key.clone(), c.clone());
        }
        let client = RegistryClient::new(RegistrySettings {
            extra_ca_pem: spec.ca.clone(),
            credentials,
            insecure_hosts: Default::default(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            metrics: metrics.clone(),
        })?;
        Ok(NotaryValidator {
            spec: spec.clone(),
            client,
            state: TrustState::default(),
        })
    }

    /// Verifies one image at `now`.
    pub async fn validate(
        &self,
        image: &ImageRef,
        options: &RuleOptions,
        now: DateTime<Utc>,
        caches: &Arc<Caches>,
        deadline: tokio::time::Instant,
    ) -> Result<Verified, VerifyError> {
        let root_name = options.trust_root.as_deref().unwrap_or("default");
        let root = self.spec.root(root_name).ok_or_else(|| {
            VerifyError::Internal(format!("no notary trust root named `{root_name}`"))
        })?;
        let gun = image.name();
        let wanted: Vec<String> = options
            .delegations
            .iter()
            .flatten()
            .map(|d| full_delegation_name(d))
            .collect();
        let data = fetch::trust_data(
            &self.client,
            &self.spec,
            &gun,
            &wanted,
            caches,
            deadline,
            self.state.trusted_root_version(&gun, &root.key),
        )
        .await?;
        let verified = self.verify(&gun, root, &data, now, caches).await?;
        let digest_bytes = match image.digest() {
            Some(d) => Some(
                d.strip_prefix("sha256:")
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        VerifyError::Notary(NotaryError::DigestMismatch {
                            expected: d.to_string(),
                            signed: "a sha256 digest".to_string(),
                        })
                    })?,
            ),
            None => None,
        };
        let query = TargetQuery {
            tag: image.tag().map(str::to_string),
            digest: digest_bytes,
        };
        let delegations = (!wanted.is_empty()).then_some(wanted.as_slice());
        let target = verified
            .lookup(&query, delegations)
            .map_err(VerifyError::Notary)?;
        Ok(Verified {
            digest: Some(target.digest),
            reason: Reason::Verified,
            message: format!(
                "signed for `{}` by {}",
                target.name,
                target.roles.join(", ")
            ),
        })
    }

    /// TUF verification with the remembered trusted root and versions;
    /// remembers the new ones.
    async fn verify(
        &self,
        gun: &str,
        root: &crate::config::notary::NotaryRoot,
        data: &TrustData,
        now: DateTime<Utc>,
        caches: &Arc<Caches>,
    ) -> Result<tuf::VerifiedRepo, VerifyError> {
        let remembered = self.state.load(gun, &root.key, caches.l2.as_deref()).await;
        let verified = tuf::verify_repository(
            gun,
            &root.key,
            remembered.trusted_root.as_ref(),
            &data.intermediate_roots,
            &data.bytes,
            &remembered.versions,
            now,
        )
        .map_err(VerifyError::Notary)?;
        self.state
            .store(
                gun,
                &root.key,
                verified.trusted_root(),
                verified.versions(),
                caches.l2.as_deref(),
            )
            .await;
        Ok(verified)
    }
}

/// `releases` → `targets/releases`; full names are kept.
pub fn full_delegation_name(name: &str) -> String {
    if name.starts_with("targets/") {
        name.to_string()
    } else {
        format!("targets/{name}")
    }
}
