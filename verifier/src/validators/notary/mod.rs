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
//!    timestamp role's expiry, refreshed ahead of its expiry, and stood in
//!    for by the last good copy when the server fails transiently
//!    ([`fetch::TrustSource`]).
//! 2. [`tuf::verify_repository`] against the pinned root key, the trusted
//!    root (rotation) and the highest version seen of every role (rollback),
//!    at the evaluation time.
//! 3. Look the tag (and/or digest) up under the delegation policy.
//!
//! The highest versions and the trusted root are kept per GUN in the
//! verifier and, with Redis, in the shared cache, so that neither a restart
//! nor another verifier can be rolled back.

mod fetch;
mod state;
use portcullis_notary_tuf as tuf;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use portcullis_proto::Reason;

use crate::cache::{ByteStore, Memo, SharedRecords};
use crate::config::notary::NotarySpec;
use crate::error::VerifyError;
use crate::policy::{Rule, RuleOptions};
use crate::reference::ImageRef;
use crate::registry::{ClientBuildError, RegistryClient, RegistrySettings};
use crate::validators::{BuildEnv, Call, Validator};
use crate::verdict::{Judgement, Verified};
use fetch::TrustData;
use state::TrustState;
use tuf::{NotaryError, TargetQuery};

/// A configured Notary validator. What it caches goes through stores
/// built at start-up: the trust data's bytes (both tiers, coalesced, for
/// the trust TTL), the rollback state (shared records), and a memo of
/// repositories already verified from the same bytes (in process).
#[derive(Debug)]
pub(crate) struct NotaryValidator {
    spec: NotarySpec,
    /// The trust data's server, store, stale copies and refresh-ahead.
    source: fetch::TrustSource,
    state: TrustState,
    /// Verified repositories by the hash of their bytes.
    verified: Memo<[u8; 32], Arc<tuf::VerifiedRepo>>,
}

impl NotaryValidator {
    /// Builds the validator, its HTTP client and its stores.
    pub(crate) fn new(spec: &NotarySpec, env: &BuildEnv<'_>) -> Result<Self, ClientBuildError> {
        let metrics = env.metrics;
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
        let source = fetch::TrustSource {
            client: Arc::new(client),
            spec: Arc::new(spec.clone()),
            store: ByteStore::new(env.caches.trust.clone()),
            ttl: env.caches.ttls.trust,
            // With stale-if-error off, nothing is kept to fall back to.
            last_good: moka::future::Cache::builder()
                .max_capacity(if env.caches.ttls.stale_if_error.is_zero() {
                    0
                } else {
                    10_000
                })
                .time_to_live(env.caches.ttls.trust + env.caches.ttls.stale_if_error)
                .build(),
            refreshing: Arc::default(),
        };
        Ok(NotaryValidator {
            spec: spec.clone(),
            source,
            state: TrustState::new(SharedRecords::new(env.caches.l2.clone())),
            verified: Memo::new(10_000, Duration::from_secs(600)),
        })
    }

    /// Verifies one image at `now`.
    async fn validate(
        &self,
        image: &ImageRef,
        options: &RuleOptions,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<(Verified, bool), VerifyError> {
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
        let fetch::Fetched { data, stale } = self
            .source
            .trust_data(
                &gun,
                &wanted,
                deadline,
                self.state.trusted_root_version(&gun, &root.key),
            )
            .await?;
        // A stale copy that does not verify (expired meanwhile, or older
        // than versions seen since) is no answer: the transient failure is.
        let judged = self.judge(&gun, root, &data, now, image, &wanted).await;
        match (judged, stale) {
            (Ok(v), stale) => Ok((v, stale.is_some())),
            (Err(_), Some(transient)) => Err(transient),
            (Err(e), None) => Err(e),
        }
    }

    /// TUF verification of `data` and the lookup of the image in it.
    async fn judge(
        &self,
        gun: &str,
        root: &crate::config::notary::NotaryRoot,
        data: &TrustData,
        now: DateTime<Utc>,
        image: &ImageRef,
        wanted: &[String],
    ) -> Result<Verified, VerifyError> {
        let verified = self.verify_repository(gun, root, data, now).await?;
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
        let delegations = (!wanted.is_empty()).then_some(wanted);
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
            warnings: Vec::new(),
            valid_until: None,
        })
    }

    /// TUF verification with the remembered trusted root and versions;
    /// remembers the new ones.
    async fn verify_repository(
        &self,
        gun: &str,
        root: &crate::config::notary::NotaryRoot,
        data: &TrustData,
        now: DateTime<Utc>,
    ) -> Result<Arc<tuf::VerifiedRepo>, VerifyError> {
        // The same bytes verified before need no second verification, as
        // long as nothing expired since and no role has been seen at a
        // higher version meanwhile (else these bytes are a rollback, and the
        // full check below says so).
        let remembered = self.state.load(gun, &root.key).await;
        let memo_key = memo_key(gun, &root.key, data);
        if let Some(verified) = self.verified.get(&memo_key).await
            && now < verified.earliest_expiry()
            && remembered
                .versions
                .iter()
                .all(|(role, seen)| verified.versions().get(role).is_none_or(|v| v >= seen))
        {
            return Ok(verified);
        }
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
            .store(gun, &root.key, verified.trusted_root(), verified.versions())
            .await;
        let verified = Arc::new(verified);
        self.verified.insert(memo_key, verified.clone()).await;
        Ok(verified)
    }
}

#[async_trait::async_trait]
impl Validator for NotaryValidator {
    /// The signed targets map tags to digests: a `tag@digest` reference
    /// whose tag is signed for another digest is denied
    /// (`DIGEST_MISMATCH`).
    fn binds_tags(&self) -> bool {
        true
    }

    async fn verify(
        &self,
        image: &ImageRef,
        _digest: Option<&str>,
        rule: &Rule,
        call: &Call<'_>,
    ) -> Judgement {
        match self
            .validate(image, &rule.options, call.now, call.deadline)
            .await
        {
            Ok((verified, true)) => Judgement {
                result: Ok(verified),
                source: portcullis_proto::Source::Stale,
                reuse: crate::verdict::Reuse::Never,
            },
            Ok((verified, false)) => Judgement::fresh(Ok(verified)),
            Err(e) => Judgement::fresh(Err(e)),
        }
    }
}

/// SHA-256 over everything a verification depends on besides the
/// remembered state and the time.
fn memo_key(gun: &str, pinned: &tuf::PinnedKey, data: &TrustData) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    part(gun.as_bytes());
    part(pinned.spki_der());
    part(&data.bytes.root);
    part(&data.bytes.timestamp);
    part(&data.bytes.snapshot);
    part(&data.bytes.targets);
    for (name, bytes) in &data.bytes.delegations {
        part(name.as_bytes());
        part(bytes);
    }
    for (version, bytes) in &data.intermediate_roots {
        part(&version.to_be_bytes());
        part(bytes);
    }
    h.finalize().into()
}

/// `releases` → `targets/releases`; full names are kept.
pub(crate) fn full_delegation_name(name: &str) -> String {
    if name.starts_with("targets/") {
        name.to_string()
    } else {
        format!("targets/{name}")
    }
}
