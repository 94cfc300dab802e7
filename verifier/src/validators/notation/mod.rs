//! The `notation` validator: Notary Project signatures (the `notation` CLI,
//! Ratify, Kyverno, Connaisseur's `type: notation`), JWS and COSE envelopes
//! attached to images as OCI 1.1 referrers, trusted through X.509 roots
//! (certificate authorities or signing authorities) with optional RFC 3161
//! timestamp countersignatures. Everything is verified offline.
//!
//! The path: resolve the tag to its digest → [`discover::discover`] the
//! image manifest and its signature envelopes ([`envelope`]) →
//! [`verify::integrity`] of each → [`verify::against_root`] for each
//! selected trust root, at the rule's verification level → one vote per
//! signing key ([`super::signers`]) towards `threshold` (default 1: as in
//! Connaisseur and `notation verify`, one trusted signature admits) and
//! `required`.
//!
//! Levels (`verificationLevel`): `strict` enforces every step; `permissive`
//! logs authentic-timestamp and expiry failures; `audit` logs authenticity
//! too. Integrity is always enforced, so an unsigned image, a tampered
//! envelope or a signature for other content is denied at every level. An
//! image allowed despite logged failures is answered `AUDIT_ONLY` with the
//! failures as warnings, which the gateway shows and audits.

mod chain;
mod discover;
mod envelope;
mod verify;

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use portcullis_proto::Reason;

use super::{BuildEnv, Caching, Call, ClientFor, Validator, signers};
use crate::config::notation::{Identity, NotationRoot, NotationSpec, Requirements};
use crate::error::VerifyError;
use crate::policy::Rule;
use crate::reference::ImageRef;
use crate::registry::{ClientBuildError, Credentials, RegistryClient, RegistrySettings};
use crate::validators::cosign::{REGISTRY_CONNECT_TIMEOUT, REGISTRY_REQUEST_TIMEOUT};
use crate::verdict::{Judgement, Verified};
use verify::{Failure, Target};

/// Parses `data` as both envelope kinds (the fuzz harness's entry).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_envelope(data: &[u8]) {
    let _ = envelope::parse(envelope::JWS, data);
    let _ = envelope::parse(envelope::COSE, data);
}

/// A configured notation validator.
#[derive(Debug)]
pub(crate) struct NotationValidator {
    spec: NotationSpec,
    registry: RegistryClient,
    /// SHA-256 over the trust material, including what an imported trust
    /// policy read from files (which the rule fingerprint does not see).
    trust_fingerprint: [u8; 32],
}

/// What one verification asks: the roots, TSA roots, identities and
/// requirements (from the rule, or from a trust policy statement).
struct Ask<'a> {
    roots: Vec<&'a NotationRoot>,
    tsa_roots: Vec<Vec<u8>>,
    identities: Vec<Identity>,
    requirements: Requirements,
    threshold: usize,
    required: Vec<String>,
}

impl NotationValidator {
    /// Builds the validator and its registry client.
    pub(crate) fn new(spec: &NotationSpec, env: &BuildEnv<'_>) -> Result<Self, ClientBuildError> {
        let registry = RegistryClient::new(RegistrySettings {
            extra_ca_pem: spec.registry_ca.clone(),
            credentials: spec.credentials.clone(),
            insecure_hosts: spec.insecure_registries.iter().cloned().collect(),
            request_timeout: REGISTRY_REQUEST_TIMEOUT,
            connect_timeout: REGISTRY_CONNECT_TIMEOUT,
            metrics: env.metrics.clone(),
        })?;
        Ok(NotationValidator {
            trust_fingerprint: trust_fingerprint(spec),
            spec: spec.clone(),
            registry,
        })
    }

    fn client(&self, extra: Option<&Credentials>) -> ClientFor<'_> {
        ClientFor::new(&self.registry, extra)
    }

    /// What the rule (or the trust policy statement for `image`) asks.
    fn ask(&self, image: &ImageRef, rule: &Rule) -> Result<Ask<'_>, VerifyError> {
        if let Some(policy) = &self.spec.trust_policy {
            let repository = format!("{}/{}", image.registry(), image.repository());
            let statement = policy.statement_for(&repository).ok_or_else(|| {
                VerifyError::NoMatchingRule(format!(
                    "{image} (no statement of the Notation trust policy covers {repository})"
                ))
            })?;
            return Ok(Ask {
                roots: statement
                    .roots
                    .iter()
                    .filter_map(|n| self.spec.root(n))
                    .collect(),
                tsa_roots: statement.tsa_certs.clone(),
                identities: statement.identities.clone(),
                requirements: statement.requirements.clone(),
                threshold: 1,
                required: Vec::new(),
            });
        }
        let options = &rule.options;
        let roots = self
            .spec
            .selected_roots(options)
            .map_err(VerifyError::Internal)?;
        let tsa_roots = roots.iter().flat_map(|r| r.tsa_certs.clone()).collect();
        Ok(Ask {
            roots,
            tsa_roots,
            identities: vec![Identity::Any],
            requirements: Requirements::from_options(options),
            threshold: options.threshold.map_or(1, |t| t as usize),
            required: options.required.clone().unwrap_or_default(),
        })
    }

    async fn verify_digest(
        &self,
        image: &ImageRef,
        digest: &str,
        rule: &Rule,
        call: &Call<'_>,
    ) -> Result<Verified, VerifyError> {
        let ask = self.ask(image, rule)?;
        let client = self.client(call.workload.map(|w| &w.credentials));
        let found = discover::discover(&client, image.registry(), image.repository(), digest)
            .await
            .map_err(VerifyError::Registry)?
            .ok_or_else(|| VerifyError::ImageNotFound(image.to_string()))?;
        if found.signatures.is_empty() {
            return Err(VerifyError::NoSignatures(image.to_string()));
        }
        let media_type = manifest_media_type(&found.manifest);
        let target = Target {
            digest,
            media_type: &media_type,
            size: found.manifest.bytes.len() as u64,
        };
        decide(found.signatures, &target, &ask, call.now)
    }
}

/// The manifest's media type: its own `mediaType` field, else the type the
/// registry served it with.
fn manifest_media_type(m: &crate::registry::Fetched) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Head>(&m.bytes)
        .ok()
        .and_then(|h| h.media_type)
        .or_else(|| m.media_type.clone())
        .unwrap_or_default()
}

/// An intact signature that passed against one root.
struct Pass {
    /// The root's index in [`Ask::roots`].
    root: usize,
    /// The signer's key.
    signer: [u8; 32],
    /// What was logged, and until when it holds.
    outcome: verify::Outcome,
}

/// Applies integrity, then each root at the rule's level, then thresholds.
fn decide(
    signatures: Vec<(
        String,
        Result<envelope::SignerInfo, envelope::EnvelopeError>,
    )>,
    target: &Target<'_>,
    ask: &Ask<'_>,
    now: DateTime<Utc>,
) -> Result<Verified, VerifyError> {
    let mut worst: Option<Failure> = None;
    let note = |f: Failure, worst: &mut Option<Failure>| {
        if worst.as_ref().is_none_or(|w| f.rank() > w.rank()) {
            *worst = Some(f);
        }
    };
    let mut intact = Vec::new();
    for (label, parsed) in signatures {
        match parsed {
            Err(e) => note(
                Failure {
                    reason: Reason::SignatureInvalid,
                    message: format!("integrity: {label}: {e}"),
                },
                &mut worst,
            ),
            Ok(info) => match verify::integrity(info, target) {
                Ok(i) => intact.push(i),
                Err(f) => note(f, &mut worst),
            },
        }
    }
    let mut edges = Vec::new();
    let mut passes: Vec<Pass> = Vec::new();
    for signature in &intact {
        for (index, root) in ask.roots.iter().enumerate() {
            match verify::against_root(
                signature,
                root,
                &ask.tsa_roots,
                &ask.identities,
                &ask.requirements,
                now,
            ) {
                Ok(outcome) => {
                    let signer = signature.chain.signer();
                    edges.push((signer, index));
                    passes.push(Pass {
                        root: index,
                        signer,
                        outcome,
                    });
                }
                Err(f) => note(f, &mut worst),
            }
        }
    }
    let decided = count(&edges, &passes, ask, worst);
    match decided {
        Ok(verified) => Ok(verified),
        // Under `audit`, anything but integrity is logged: an intact
        // signature for this image admits, with the failure as a warning.
        Err(e) if ask.requirements.audit && !intact.is_empty() => Ok(Verified {
            digest: Some(target.digest.to_string()),
            reason: Reason::AuditOnly,
            message: "allowed at verification level audit".into(),
            warnings: vec![format!(
                "{}: {e}",
                portcullis_proto::reason_code(e.reason())
            )],
            valid_until: None,
        }),
        Err(e) => Err(e),
    }
}

/// Thresholds and required roots over the (signer, root) pairs that passed.
fn count(
    edges: &[([u8; 32], usize)],
    passes: &[Pass],
    ask: &Ask<'_>,
    worst: Option<Failure>,
) -> Result<Verified, VerifyError> {
    if edges.is_empty() {
        return Err(match worst {
            Some(f) => VerifyError::Notation {
                reason: f.reason,
                message: f.message,
            },
            None => VerifyError::NoMatchingSignature(root_names(&ask.roots)),
        });
    }
    let required: Vec<usize> = ask
        .required
        .iter()
        .filter_map(|n| ask.roots.iter().position(|r| &r.name == n))
        .collect();
    let assignment = signers::assign(edges, ask.roots.len(), &required);
    let missing: Vec<String> = assignment
        .unmet_required
        .iter()
        .map(|i| ask.roots[*i].name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(VerifyError::RequiredSignerMissing(missing));
    }
    let mut names = Vec::new();
    let mut warnings = Vec::new();
    let mut valid_until: Option<DateTime<Utc>> = None;
    for (index, signer) in assignment.matched.iter().enumerate() {
        let Some(signer) = signer else { continue };
        names.push(ask.roots[index].name.clone());
        if let Some(pass) = passes
            .iter()
            .find(|p| p.root == index && &p.signer == signer)
        {
            warnings.extend(pass.outcome.logged.iter().cloned());
            if let Some(u) = pass.outcome.valid_until {
                valid_until = Some(valid_until.map_or(u, |v| v.min(u)));
            }
        }
    }
    if assignment.count() < ask.threshold {
        return Err(VerifyError::ThresholdNotMet {
            valid: assignment.count(),
            threshold: ask.threshold,
            signers: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    }
    names.sort();
    warnings.sort();
    warnings.dedup();
    Ok(Verified {
        digest: None,
        reason: if warnings.is_empty() {
            Reason::Verified
        } else {
            Reason::AuditOnly
        },
        message: if warnings.is_empty() {
            format!("signed by {} (notation)", names.join(", "))
        } else {
            format!(
                "allowed with {} logged failure(s) at verification level {}",
                warnings.len(),
                if ask.requirements.audit {
                    "audit"
                } else {
                    "permissive"
                }
            )
        },
        warnings,
        valid_until,
    })
}

fn root_names(roots: &[&NotationRoot]) -> String {
    roots
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// SHA-256 over the roots (names, store types, certificates, TSA roots)
/// and, for an imported trust policy, its statements.
fn trust_fingerprint(spec: &NotationSpec) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"portcullis.notation.trust.v1\0");
    let mut bytes = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    for root in &spec.trust_roots {
        bytes(root.name.as_bytes());
        bytes(root.store.as_str().as_bytes());
        for c in root.certs.iter().chain(&root.tsa_certs) {
            bytes(c);
        }
    }
    if let Some(policy) = &spec.trust_policy {
        for s in &policy.statements {
            bytes(
                format!(
                    "{:?}|{:?}|{:?}|{:?}",
                    s.name, s.scopes, s.requirements, s.identities
                )
                .as_bytes(),
            );
            for r in &s.roots {
                bytes(r.as_bytes());
            }
            for c in &s.tsa_certs {
                bytes(c);
            }
        }
    }
    h.finalize().into()
}

#[async_trait::async_trait]
impl Validator for NotationValidator {
    /// The image's digest, or its tag resolved with `HEAD`.
    async fn resolve(
        &self,
        image: &ImageRef,
        call: &Call<'_>,
    ) -> Result<Option<String>, VerifyError> {
        super::resolve_digest(&self.client(call.workload.map(|w| &w.credentials)), image).await
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
                "notation verifies a digest; none was resolved".into(),
            )));
        };
        let result = self
            .verify_digest(image, digest, rule, call)
            .await
            .map(|v| Verified {
                digest: Some(digest.to_string()),
                ..v
            });
        Judgement::fresh(result)
    }

    /// Verdicts are cached by digest, under the rule's fingerprint mixed
    /// with the trust material (an imported trust policy's files included);
    /// an allow never outlives the time it was checked to hold until (a
    /// certificate's end or the signature's expiry, see `valid_until`).
    fn caching(&self, rule: &Rule) -> Caching {
        let mut h = Sha256::new();
        h.update(b"portcullis.notation.verdict.v1\0");
        h.update(rule.fingerprint);
        h.update(self.trust_fingerprint);
        Caching::ByDigest(h.finalize().into())
    }

    fn uses_workload_credentials(&self, image: &ImageRef, call: &Call<'_>) -> bool {
        call.workload.is_some_and(|w| {
            w.credentials.contains_key(image.registry())
                && !self.spec.credentials.contains_key(image.registry())
        })
    }
}
