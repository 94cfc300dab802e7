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

pub(crate) mod attestations;
pub(crate) mod candidate;
pub(crate) mod certificate;
pub(crate) mod check;
pub(crate) mod content;
pub(crate) mod discover;
pub(crate) mod inclusion;
pub(crate) mod prehashed;
#[cfg(test)]
mod public_good_bundles;
use portcullis_sigstore_trust::public_good;
pub(crate) mod tlog;
use portcullis_sigstore_trust as trust_root;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use portcullis_proto::Reason;

use crate::config::cosign::{CosignSpec, SigstoreSource, TrustRoot, TrustRootKind};
use crate::config::cosign_selected_roots;
use crate::error::VerifyError;
use crate::policy::Rule;
use crate::policy::RuleOptions;
use crate::policy::conditions::{self, Condition, SignerInfo, Statement};
use crate::reference::ImageRef;
use crate::registry::{ClientBuildError, Credentials, RegistryClient, RegistrySettings};
use crate::validators::{BuildEnv, Caching, Call, ClientFor, Validator, signers};
use crate::verdict::{Judgement, Verified};
use attestations::{Attested, Requirement};
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
    /// The CEL environment attestation conditions run in.
    cel: conditions::Environment,
    /// Compiled attestation conditions by their text (checked at start-up,
    /// compiled once here).
    compiled: moka::future::Cache<String, Arc<Condition>>,
    /// What the last verification of a digest under a rule established
    /// (see [`Gathered`]), kept for rules whose conditions read `now`:
    /// when such an allow reaches the time it flips, it is judged again
    /// from these verified statements, not from the registry. Keyed like
    /// the verdict (rule and trust fingerprint, repository, digest, and
    /// the workload when its credentials were used), kept no longer than
    /// a verdict, and only after an allow.
    evidence: moka::future::Cache<[u8; 32], Arc<Gathered>>,
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
            cel: conditions::environment(),
            compiled: moka::future::Cache::builder().max_capacity(4096).build(),
            evidence: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(env.caches.ttls.verdict)
                .build(),
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

    /// The rule's attestation requirements with their conditions compiled
    /// (once per text) and their accepted roots resolved.
    async fn requirements<'a>(
        &self,
        options: &'a RuleOptions,
        roots: &[&TrustRoot],
    ) -> Result<Vec<Requirement<'a>>, VerifyError> {
        let mut out = Vec::new();
        for written in options.attestations.iter().flatten() {
            let accepted: Vec<String> = match written.trust_root.as_deref() {
                Some("*") => self
                    .spec
                    .trust_roots
                    .iter()
                    .map(|r| r.name.clone())
                    .collect(),
                Some(name) => vec![name.to_string()],
                None => roots.iter().map(|r| r.name.clone()).collect(),
            };
            let mut compiled = Vec::with_capacity(written.conditions.len());
            for source in &written.conditions {
                let condition = match self.compiled.get(source).await {
                    Some(c) => c,
                    None => {
                        // Checked when the config loaded; an error here is a bug.
                        let c = Condition::compile(&self.cel, source)
                            .map(Arc::new)
                            .map_err(|e| {
                                VerifyError::Internal(format!("condition {source:?}: {e}"))
                            })?;
                        self.compiled.insert(source.clone(), c.clone()).await;
                        c
                    }
                };
                compiled.push(condition);
            }
            out.push(Requirement {
                written,
                accepted,
                conditions: compiled,
            });
        }
        Ok(out)
    }

    /// Verifies the signatures of `digest` (in `image`'s repository) under
    /// `rule`, at time `now`.
    pub(crate) async fn verify_digest(
        &self,
        image: &ImageRef,
        digest: &str,
        rule: &Rule,
        call: &Call<'_>,
    ) -> Result<Verified, VerifyError> {
        let options = &rule.options;
        let extra = call.workload.map(|w| &w.credentials);
        let digest = digest.to_string();
        let selected = cosign_selected_roots(options, &self.spec)
            .map_err(|e| VerifyError::Internal(e.to_string()))?;
        let roots: Vec<&TrustRoot> = selected.iter().filter_map(|n| self.spec.root(n)).collect();
        let requirements = self.requirements(options, &roots).await?;
        let reads_now = requirements
            .iter()
            .flat_map(|r| &r.conditions)
            .any(|c| c.uses_now);
        let evidence_key = reads_now.then(|| {
            let mut h = Sha256::new();
            h.update(b"portcullis.cosign.evidence.v1\0");
            h.update(self.verdict_fingerprint(&rule.fingerprint));
            h.update(image.registry().as_bytes());
            h.update(b"/");
            h.update(image.repository().as_bytes());
            h.update(b"@");
            h.update(digest.as_bytes());
            if self.uses_workload_credentials(image, call)
                && let Some(w) = call.workload
            {
                h.update(b"\0workload:");
                h.update(w.identity.as_bytes());
            }
            <[u8; 32]>::from(h.finalize())
        });
        let kept = match &evidence_key {
            Some(key) => self.evidence.get(key).await,
            None => None,
        };
        let gathered = match kept {
            Some(g) => g,
            None => Arc::new(
                self.gather_fresh(image, &digest, &roots, options, extra)
                    .await?,
            ),
        };
        let (signers, flips_at) = judge(
            &gathered,
            &roots,
            options,
            &requirements,
            &self.cel,
            &image.to_string(),
            call.now,
        )?;
        if let Some(key) = evidence_key {
            self.evidence.insert(key, gathered).await;
        }
        Ok(Verified {
            digest: Some(digest),
            reason: Reason::Verified,
            message: format!("signed by {}", signers.join(", ")),
            warnings: Vec::new(),
            valid_until: flips_at,
        })
    }

    /// Discovers the candidates of `digest` in the registry and checks
    /// them ([`gather`]).
    async fn gather_fresh(
        &self,
        image: &ImageRef,
        digest: &str,
        roots: &[&TrustRoot],
        options: &RuleOptions,
        extra: Option<&Credentials>,
    ) -> Result<Gathered, VerifyError> {
        let with_attestations = options.attestations.as_ref().is_some_and(|a| !a.is_empty());
        let found = discover::discover(
            &self.client(extra),
            image.registry(),
            image.repository(),
            digest,
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
            digest,
            require_tlog_for_keys: options
                .verify_in_transparency_log
                .unwrap_or(self.spec.transparency.has_tlog()),
            transparency: &self.spec.transparency,
            manifest: found.manifest.as_deref(),
            policy: options.sigstore_policy.unwrap_or_default(),
        };
        Ok(gather(
            &found.candidates,
            roots,
            &self.spec,
            options,
            check_options,
        ))
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
        Judgement::fresh(self.verify_digest(image, digest, rule, call).await)
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

/// What the signatures and attestations of one digest establish before
/// the rule counts them: which signers verified for which roots, the most
/// telling failure, and the verified attestations. This is the expensive
/// part (every signature, certificate, log entry and timestamp is
/// checked); [`judge`] then applies the rule, cheaply, at a given time.
#[derive(Debug)]
pub(crate) struct Gathered {
    /// Nothing attached looks like an image signature.
    no_signatures: bool,
    /// (signer, root index) for every signature that verified for a root.
    edges: Vec<([u8; 32], usize)>,
    /// The most telling reason a signature did not count.
    worst: Option<Failure>,
    /// The attestations that verified and name the image.
    attested: Vec<Attested>,
}

/// Checks every candidate against every selected root (and attestations
/// against the roots their requirements accept).
pub(crate) fn gather(
    candidates: &[Candidate],
    roots: &[&TrustRoot],
    spec: &CosignSpec,
    options: &RuleOptions,
    check_options: CheckOptions<'_>,
) -> Gathered {
    let (signatures, attestations): (Vec<&Candidate>, Vec<&Candidate>) = candidates
        .iter()
        .partition(|c| content::looks_like_signature(c.origin, &c.content));
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
    let mut attested: Vec<Attested> = Vec::new();
    let requirements = options.attestations.as_deref().unwrap_or_default();
    if !requirements.is_empty() {
        let with_conditions: BTreeSet<&str> = requirements
            .iter()
            .filter(|r| !r.conditions.is_empty())
            .map(|r| r.predicate_type.as_str())
            .collect();
        let attestation_roots: Vec<&TrustRoot> = roots
            .iter()
            .copied()
            .chain(attestation_only_roots(spec, options, roots))
            .collect();
        for candidate in &attestations {
            for root in &attestation_roots {
                let Ok(Pass {
                    claim: Claim::Attestation(predicate_type),
                    identity,
                    ..
                }) = check(candidate, root, check_options)
                else {
                    continue;
                };
                let statement = with_conditions.contains(predicate_type.as_str()).then(|| {
                    match &candidate.content {
                        candidate::Content::Dsse { payload, .. } => Statement::parse(
                            payload,
                            SignerInfo {
                                root: &root.name,
                                keyless: identity.as_ref().map(|(i, s)| (i.as_str(), s.as_str())),
                            },
                        ),
                        _ => Err("not an in-toto statement".to_string()),
                    }
                });
                attested.push(Attested {
                    predicate_type,
                    root: root.name.clone(),
                    statement,
                });
            }
        }
    }
    Gathered {
        no_signatures: signatures.is_empty(),
        edges,
        worst,
        attested,
    }
}

/// Applies the rule to what was gathered, at time `now`: distinct signers
/// assigned to distinct roots ([`signers`]: one key is one vote, however
/// many roots accept it), required signers, threshold, then attestations
/// and their conditions. Returns the roots that counted and, when a
/// condition reads `now`, the time the allow stops holding by the clock
/// alone ([`attestations::next_flip`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn judge(
    gathered: &Gathered,
    roots: &[&TrustRoot],
    options: &RuleOptions,
    requirements: &[Requirement<'_>],
    env: &conditions::Environment,
    image: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<String>, Option<chrono::DateTime<chrono::Utc>>), VerifyError> {
    if gathered.no_signatures {
        return Err(VerifyError::NoSignatures(image.to_string()));
    }
    if gathered.edges.is_empty() {
        return Err(match gathered.worst.clone() {
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
    let assignment = signers::assign(&gathered.edges, roots.len(), &required_indices);
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
    attestations::judge(&gathered.attested, requirements, env, now)?;
    let flips_at = attestations::next_flip(&gathered.attested, requirements, env, now);
    Ok((signers, flips_at))
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
