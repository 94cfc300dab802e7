//! The `cosign` validator: Sigstore signatures and attestations, with keys
//! or keyless identities, k-of-n thresholds over distinct trust roots, and
//! both the cosign v2 (`.sig`/`.att` tags) and v3 (Sigstore bundle
//! referrers) formats. Everything is verified offline: no call to public
//! Sigstore services at admission time.
//!
//! The path: resolve the tag to its digest ([`crate::registry`]) →
//! [`discover::discover`] the candidates → [`check::check`] each against
//! each selected trust root → [`decide`] thresholds, required signers and
//! attestations.

pub(crate) mod candidate;
pub(crate) mod certificate;
pub(crate) mod check;
pub(crate) mod content;
pub(crate) mod discover;
pub(crate) mod inclusion;
#[cfg(test)]
mod public_good_bundles;
use portcullis_sigstore_trust::public_good;
pub(crate) mod tlog;
use portcullis_sigstore_trust as trust_root;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use portcullis_proto::Reason;

use crate::config::cosign::{CosignSpec, SigstoreSource, TrustRoot, TrustRootKind};
use crate::config::cosign_selected_roots;
use crate::error::VerifyError;
use crate::policy::Rule;
use crate::policy::RuleOptions;
use crate::reference::ImageRef;
use crate::registry::{ClientBuildError, Credentials, RegistryClient, RegistrySettings};
use crate::validators::{BuildEnv, Caching, Call, ClientFor, Validator, signers};
use crate::verdict::{Judgement, Verified};
use candidate::Candidate;
use check::{CheckOptions, Failure, Pass, check};
use content::Claim;

/// Why a cosign validator could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CosignBuildError {
    /// The registry client.
    #[error("{0}")]
    Client(#[from] ClientBuildError),
    /// The Sigstore trust root could not be loaded through TUF.
    #[error("sigstore trust root: {0}")]
    TrustRoot(#[from] trust_root::TrustRootError),
}

/// Default bound on each registry request.
pub(crate) const REGISTRY_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on connecting to a registry.
pub(crate) const REGISTRY_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A configured cosign validator.
#[derive(Debug)]
pub(crate) struct CosignValidator {
    spec: CosignSpec,
    registry: RegistryClient,
    /// SHA-256 over the transparency material in use (Fulcio, Rekor, CT,
    /// with their windows), including what came through TUF at start-up.
    trust_fingerprint: [u8; 32],
}

impl CosignValidator {
    /// The fingerprint a verdict of this validator under `rule_fingerprint`
    /// is cached by. The rule fingerprint covers the config text; this adds
    /// the trust material loaded at start-up (a TUF mirror or the shipped
    /// public-good root), so that when a mirror rotates its keys behind an
    /// unchanged config, verdicts made under the old material miss, in this
    /// verifier and in every other one sharing the cache.
    pub(crate) fn verdict_fingerprint(&self, rule_fingerprint: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"portcullis.cosign.verdict.v1\0");
        h.update(rule_fingerprint);
        h.update(self.trust_fingerprint);
        h.finalize().into()
    }

    /// Builds the validator and its registry client.
    pub(crate) async fn new(
        spec: &CosignSpec,
        env: &BuildEnv<'_>,
    ) -> Result<Self, CosignBuildError> {
        let metrics = env.metrics;
        let registry = RegistryClient::new(RegistrySettings {
            extra_ca_pem: spec.registry_ca.clone(),
            credentials: spec.credentials.clone(),
            insecure_hosts: spec.insecure_registries.iter().cloned().collect(),
            request_timeout: REGISTRY_REQUEST_TIMEOUT,
            connect_timeout: REGISTRY_CONNECT_TIMEOUT,
            metrics: metrics.clone(),
        })?;
        let mut spec = spec.clone();
        if let Some(source) = &spec.sigstore {
            let now = chrono::Utc::now();
            let trust = match source {
                SigstoreSource::PublicGood => public_good::load(now).await,
                SigstoreSource::Mirror {
                    root,
                    metadata_url,
                    targets_url,
                } => trust_root::load_via_tuf(root, metadata_url, targets_url, None, now).await,
            }?;
            let t = &mut spec.transparency;
            t.fulcio_certs.extend(trust.fulcio_certs);
            t.rekor_keys.extend(trust.rekor_keys);
            t.rekor_v2_logs.extend(trust.rekor_v2_logs);
            t.tsas.extend(trust.tsas);
            t.ct_keys.extend(trust.ct_keys);
            tracing::info!(
                fulcio = t.fulcio_certs.len(),
                rekor = t.rekor_keys.len(),
                ctlog = t.ct_keys.len(),
                "sigstore trust root loaded through TUF"
            );
        }
        for host in spec.credentials.keys() {
            if spec.insecure_registries.contains(host) {
                tracing::warn!(
                    host = %host,
                    "credentials are configured for a plain-HTTP registry: they are never sent (credentials never travel in clear text)"
                );
            }
        }
        for (first, again) in duplicate_keys(&spec.trust_roots) {
            tracing::warn!(
                first = %first,
                again = %again,
                "trust roots `{first}` and `{again}` are the same key: a signature by it counts once towards a threshold"
            );
        }
        let trust_fingerprint = transparency_fingerprint(&spec.transparency);
        Ok(CosignValidator {
            spec,
            registry,
            trust_fingerprint,
        })
    }

    /// The registry client for a request: ours, or a view with the
    /// workload's pull-secret credentials added.
    fn client(&self, extra: Option<&Credentials>) -> ClientFor<'_> {
        ClientFor::new(&self.registry, extra)
    }

    /// Whether a request for an image on `host` would authenticate with the
    /// workload credentials `extra` (they have an entry for the host and
    /// the validator has none of its own, which take precedence).
    fn would_use_workload_credential(&self, host: &str, extra: &Credentials) -> bool {
        extra.contains_key(host) && !self.spec.credentials.contains_key(host)
    }

    /// Verifies the signatures of `digest` (in `image`'s repository) under
    /// the rule's `options`.
    pub(crate) async fn verify_digest(
        &self,
        image: &ImageRef,
        digest: &str,
        options: &RuleOptions,
        extra: Option<&Credentials>,
    ) -> Result<Verified, VerifyError> {
        let digest = digest.to_string();
        let selected = cosign_selected_roots(options, &self.spec)
            .map_err(|e| VerifyError::Internal(e.to_string()))?;
        let roots: Vec<&TrustRoot> = selected.iter().filter_map(|n| self.spec.root(n)).collect();
        let with_attestations = options.attestations.as_ref().is_some_and(|a| !a.is_empty());
        let found = discover::discover(
            &self.client(extra),
            image.registry(),
            image.repository(),
            &digest,
            with_attestations,
        )
        .await
        .map_err(|e| match e {
            crate::registry::RegistryError::Status { status: 404, .. } => {
                VerifyError::ImageNotFound(image.to_string())
            }
            e => VerifyError::Registry(e),
        })?;
        let check_options = CheckOptions {
            digest: &digest,
            require_tlog_for_keys: options
                .verify_in_transparency_log
                .unwrap_or(self.spec.transparency.has_tlog()),
            transparency: &self.spec.transparency,
            manifest: found.manifest.as_deref(),
            policy: options.sigstore_policy.unwrap_or_default(),
        };
        let signers = decide(
            &found.candidates,
            &roots,
            &self.spec,
            options,
            check_options,
            &image.to_string(),
        )?;
        Ok(Verified {
            digest: Some(digest),
            reason: Reason::Verified,
            message: format!("signed by {}", signers.join(", ")),
            warnings: Vec::new(),
            valid_until: None,
        })
    }
}

#[async_trait::async_trait]
impl Validator for CosignValidator {
    /// The image's digest, or its tag resolved with `HEAD` (which Docker
    /// Hub does not count as a pull).
    async fn resolve(
        &self,
        image: &ImageRef,
        call: &Call<'_>,
    ) -> Result<Option<String>, VerifyError> {
        crate::validators::resolve_digest(
            &self.client(call.workload.map(|w| &w.credentials)),
            image,
        )
        .await
    }

    fn resolves(&self) -> bool {
        true
    }

    async fn verify(
        &self,
        image: &ImageRef,
        digest: Option<&str>,
        rule: &Rule,
        call: &Call<'_>,
    ) -> Judgement {
        let Some(digest) = digest else {
            return Judgement::fresh(Err(VerifyError::Internal(
                "cosign verifies a digest; none was resolved".into(),
            )));
        };
        let extra = call.workload.map(|w| &w.credentials);
        Judgement::fresh(
            self.verify_digest(image, digest, &rule.options, extra)
                .await,
        )
    }

    /// Verdicts are cached by digest, under the rule's fingerprint mixed
    /// with the trust material loaded at start-up.
    fn caching(&self, rule: &Rule) -> Caching {
        Caching::ByDigest(self.verdict_fingerprint(&rule.fingerprint))
    }

    fn uses_workload_credentials(&self, image: &ImageRef, call: &Call<'_>) -> bool {
        call.workload
            .is_some_and(|w| self.would_use_workload_credential(image.registry(), &w.credentials))
    }
}

/// Applies the rule to the candidates: distinct signers assigned to distinct
/// roots ([`signers`]: one key is one vote, however many roots accept it),
/// required signers, threshold, then attestations. Returns the roots that
/// counted.
pub(crate) fn decide(
    candidates: &[Candidate],
    roots: &[&TrustRoot],
    spec: &CosignSpec,
    options: &RuleOptions,
    check_options: CheckOptions<'_>,
    image: &str,
) -> Result<Vec<String>, VerifyError> {
    let (signatures, attestations): (Vec<&Candidate>, Vec<&Candidate>) = candidates
        .iter()
        .partition(|c| content::looks_like_signature(c.origin, &c.content));
    if signatures.is_empty() {
        return Err(VerifyError::NoSignatures(image.to_string()));
    }
    let mut edges: Vec<([u8; 32], usize)> = Vec::new();
    let mut worst: Option<Failure> = None;
    for candidate in &signatures {
        for (index, root) in roots.iter().enumerate() {
            match check(candidate, root, check_options) {
                Ok(pass) if pass.claim == Claim::Signature => {
                    edges.push((pass.signer, index));
                }
                Ok(_) => {}
                Err(f) => {
                    if worst.as_ref().is_none_or(|w| f > *w) {
                        worst = Some(f);
                    }
                }
            }
        }
    }
    let mut attested: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if options.attestations.as_ref().is_some_and(|a| !a.is_empty()) {
        let attestation_roots: Vec<&TrustRoot> = roots
            .iter()
            .copied()
            .chain(attestation_only_roots(spec, options, roots))
            .collect();
        for candidate in &attestations {
            for root in &attestation_roots {
                if let Ok(Pass {
                    claim: Claim::Attestation(predicate_type),
                    ..
                }) = check(candidate, root, check_options)
                {
                    attested
                        .entry(predicate_type)
                        .or_default()
                        .insert(root.name.clone());
                }
            }
        }
    }
    if edges.is_empty() {
        return Err(match worst {
            Some(Failure::Digest(m)) => VerifyError::DigestMismatch(m),
            Some(Failure::Tlog(m)) => VerifyError::TlogInvalid(m),
            Some(Failure::Certificate(m)) => VerifyError::CertInvalid(m),
            Some(Failure::Timestamp(m)) => VerifyError::TimestampInvalid(m),
            Some(Failure::Identity(m)) => VerifyError::IdentityMismatch(m),
            Some(Failure::NoMatch(m)) => {
                VerifyError::NoMatchingSignature(format!("{m}; trust roots: {}", root_names(roots)))
            }
            None => VerifyError::NoMatchingSignature(root_names(roots)),
        });
    }
    let required = options.required.as_deref().unwrap_or_default();
    let required_indices: Vec<usize> = required
        .iter()
        .filter_map(|name| roots.iter().position(|r| &r.name == name))
        .collect();
    let assignment = signers::assign(&edges, roots.len(), &required_indices);
    let signers: Vec<String> = {
        let mut names: Vec<String> = assignment
            .matched
            .iter()
            .zip(roots)
            .filter(|(m, _)| m.is_some())
            .map(|(_, r)| r.name.clone())
            .collect();
        names.sort();
        names
    };
    let missing: Vec<String> = required
        .iter()
        .filter(|name| match roots.iter().position(|r| &r.name == *name) {
            Some(i) => assignment.unmet_required.contains(&i),
            None => true,
        })
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(VerifyError::RequiredSignerMissing(missing));
    }
    // With `trustRoot: "*"` and no threshold, every distinct signer the
    // roots name must sign (a key configured twice is one signer).
    let threshold = options
        .threshold
        .map(|t| t as usize)
        .unwrap_or_else(|| distinct_signers(roots));
    if assignment.count() < threshold {
        return Err(VerifyError::ThresholdNotMet {
            valid: assignment.count(),
            threshold,
            signers: if signers.is_empty() {
                "none".into()
            } else {
                signers.join(", ")
            },
        });
    }
    for requirement in options.attestations.iter().flatten() {
        let wanted: Vec<&str> = match requirement.trust_root.as_deref() {
            Some("*") => spec.trust_roots.iter().map(|r| r.name.as_str()).collect(),
            Some(name) => vec![name],
            None => roots.iter().map(|r| r.name.as_str()).collect(),
        };
        let ok = attested
            .get(&requirement.predicate_type)
            .is_some_and(|by| by.iter().any(|r| wanted.contains(&r.as_str())));
        if !ok {
            return Err(VerifyError::AttestationMissing(
                requirement.predicate_type.clone(),
            ));
        }
    }
    Ok(signers)
}

/// Roots named only by attestation requirements (not among the rule's
/// signature roots), so their attestations are checked too.
fn attestation_only_roots<'a>(
    spec: &'a CosignSpec,
    options: &RuleOptions,
    roots: &[&TrustRoot],
) -> Vec<&'a TrustRoot> {
    let mut out: Vec<&TrustRoot> = Vec::new();
    for requirement in options.attestations.iter().flatten() {
        let names: Vec<&str> = match requirement.trust_root.as_deref() {
            Some("*") => spec.trust_roots.iter().map(|r| r.name.as_str()).collect(),
            Some(n) => vec![n],
            None => continue,
        };
        for name in names {
            if roots.iter().all(|r| r.name != name)
                && out.iter().all(|r| r.name != name)
                && let Some(root) = spec.root(name)
            {
                out.push(root);
            }
        }
    }
    out
}

/// How many distinct signers `roots` can stand for: key roots by their key
/// (one key under two names is one signer), each keyless root one.
fn distinct_signers(roots: &[&TrustRoot]) -> usize {
    let mut keys = BTreeSet::new();
    let mut keyless = 0;
    for root in roots {
        match &root.kind {
            TrustRootKind::Key { spki_der, .. } => {
                keys.insert(spki_der.as_slice());
            }
            TrustRootKind::Keyless { .. } => keyless += 1,
        }
    }
    keys.len() + keyless
}

/// The names of key roots that share a key with an earlier root: each
/// such group counts as one signer (warned about at start-up).
pub(crate) fn duplicate_keys(roots: &[TrustRoot]) -> Vec<(String, String)> {
    let mut seen: Vec<(&[u8], &str)> = Vec::new();
    let mut out = Vec::new();
    for root in roots {
        if let TrustRootKind::Key { spki_der, .. } = &root.kind {
            match seen.iter().find(|(k, _)| *k == spki_der.as_slice()) {
                Some((_, first)) => out.push((first.to_string(), root.name.clone())),
                None => seen.push((spki_der, &root.name)),
            }
        }
    }
    out
}

fn root_names(roots: &[&TrustRoot]) -> String {
    roots
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// SHA-256 over the transparency material, in a canonical order: Rekor and
/// CT keys sorted by log id, Fulcio certificates in order, each with its
/// validity window.
fn transparency_fingerprint(t: &crate::config::cosign::TransparencyRoots) -> [u8; 32] {
    fn window(h: &mut Sha256, v: &trust_root::Validity) {
        for end in [v.start, v.end] {
            match end {
                Some(t) => h.update(t.timestamp_millis().to_be_bytes()),
                None => h.update(b"open"),
            }
        }
    }
    let mut h = Sha256::new();
    for (label, keys) in [("rekor", &t.rekor_keys), ("ct", &t.ct_keys)] {
        h.update(label.as_bytes());
        let sorted: BTreeMap<&[u8; 32], &trust_root::LogKey> = keys.iter().collect();
        for (id, key) in sorted {
            h.update(id);
            h.update((key.spki_der.len() as u64).to_be_bytes());
            h.update(&key.spki_der);
            window(&mut h, &key.valid);
        }
    }
    h.update(b"fulcio");
    for cert in &t.fulcio_certs {
        h.update((cert.der.len() as u64).to_be_bytes());
        h.update(&cert.der);
        window(&mut h, &cert.valid);
    }
    h.update(b"rekor-v2");
    let sorted: BTreeMap<&[u8; 32], &trust_root::CheckpointLog> = t.rekor_v2_logs.iter().collect();
    for (id, log) in sorted {
        h.update(id);
        h.update((log.origin.len() as u64).to_be_bytes());
        h.update(log.origin.as_bytes());
        h.update(&log.raw_key);
        window(&mut h, &log.valid);
    }
    h.update(b"tsa");
    for tsa in &t.tsas {
        h.update((tsa.chain.len() as u64).to_be_bytes());
        for c in &tsa.chain {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c);
        }
        window(&mut h, &tsa.valid);
    }
    h.finalize().into()
}
