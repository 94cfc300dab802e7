//! Checking one candidate against one trust root.
//!
//! * **Key roots:** a signature verifies with the key; the content names the
//!   image digest; and, when the rule wants the transparency log, the Rekor
//!   entry's SET verifies and its body names this signature, this key and
//!   this content.
//! * **Keyless roots:** the signature verifies with the certificate's own
//!   key (so a borrowed certificate cannot vouch for an attacker's
//!   signature: a gap in sigstore-rs's identity verifiers); the Rekor entry
//!   is required and its body names this signature and certificate; the
//!   certificate chains to the Fulcio roots and is valid at every verified
//!   time; its SCT verifies; the identity matches; and the content names the
//!   image digest.
//!
//! **Time sources** ([`evidence`]). A log entry counts when its SET (Rekor
//! v1) or its inclusion proof against a signed checkpoint (Rekor v1 or v2)
//! verifies; an entry with both must pass both. A SET vouches for the
//! entry's integration time. An RFC 3161 timestamp counts when it covers
//! the signature, chains to a trusted TSA at its time and lies in that
//! TSA's `validFor`. The rule's [`SigstorePolicy`] says how many of each a
//! signature needs; by default a keyless signature needs one log entry and
//! one time (a SET's, or a timestamp's), so a Rekor v2 entry counts only
//! with a timestamp and a bundle with neither is denied.
//!
//! [`SigstorePolicy`]: crate::policy::SigstorePolicy

use sigstore::crypto::{CosignVerificationKey, Signature};

use super::candidate::{Candidate, Content};
use super::certificate::SigningCert;
use super::content::{Claim, claim};
use super::tlog::{Signer, check_body, verify_entry};
use crate::config::cosign::{TransparencyRoots, TrustRoot, TrustRootKind};
use crate::policy::SigstorePolicy;

/// Why a candidate does not count for a root, ranked: a failure found
/// further along the checks says more about what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// No signature verifies with the root's key.
    NoMatch(String),
    /// Keyless: the certificate's identity is not the root's.
    Identity(String),
    /// Keyless: chain, validity or SCT.
    Certificate(String),
    /// Too few verified time sources (timestamps or SET times).
    Timestamp(String),
    /// The transparency-log entry is missing or invalid.
    Tlog(String),
    /// Correctly signed, but for another image.
    Digest(String),
}

/// What a passing candidate vouches for, and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pass {
    /// Signature or attestation.
    pub(crate) claim: Claim,
    /// SHA-256 of the DER SPKI of the key that made the signature: the
    /// root's key, or the keyless certificate's (one per certificate). One
    /// signer is one vote, however many roots accept it.
    pub(crate) signer: [u8; 32],
    /// Keyless: the certificate's OIDC issuer and the subject that matched
    /// the root (shown to attestation conditions as `signer`).
    pub(crate) identity: Option<(String, String)>,
}

fn spki_id(spki_der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(spki_der).into()
}

/// Options that change the checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckOptions<'a> {
    /// The image digest.
    pub(crate) digest: &'a str,
    /// Whether key-based signatures need a Rekor entry.
    pub(crate) require_tlog_for_keys: bool,
    /// The transparency infrastructure.
    pub(crate) transparency: &'a TransparencyRoots,
    /// The manifest bytes, needed for message-signature bundles.
    pub(crate) manifest: Option<&'a [u8]>,
    /// The rule's time-source policy (defaults per kind of signer).
    pub(crate) policy: SigstorePolicy,
}

/// Checks `candidate` against `root`.
pub(crate) fn check(
    candidate: &Candidate,
    root: &TrustRoot,
    options: CheckOptions<'_>,
) -> Result<Pass, Failure> {
    let signed = signed_data(candidate, options)?;
    match &root.kind {
        TrustRootKind::Key { key, spki_der } => {
            let signature =
                first_verifying(candidate, key, spki_der, &signed).ok_or_else(|| {
                    Failure::NoMatch(format!(
                        "{}: not signed by `{}`",
                        candidate.label, root.name
                    ))
                })?;
            let claim = claim(&candidate.content, options.digest)
                .map_err(|e| Failure::Digest(format!("{}: {e}", candidate.label)))?;
            let p = options.policy;
            let needs = Needs {
                tlog: p
                    .transparency_log
                    .unwrap_or(u32::from(options.require_tlog_for_keys)),
                integrated: p.integrated_timestamps.unwrap_or(0),
                signed: p.signed_timestamps.unwrap_or(0),
                observer: p.observer_timestamps.unwrap_or(0),
            };
            if needs != Needs::default() {
                let found = evidence(
                    candidate,
                    signed.bytes(),
                    signature,
                    Signer::Key(spki_der),
                    options.transparency,
                );
                found.meets(&needs, &candidate.label)?;
            }
            Ok(Pass {
                claim,
                signer: spki_id(spki_der),
                identity: None,
            })
        }
        TrustRootKind::Keyless { issuer, subject } => {
            let Some(cert_der) = &candidate.certificate else {
                return Err(Failure::NoMatch(format!(
                    "{}: not a keyless signature",
                    candidate.label
                )));
            };
            let cert = SigningCert::parse(cert_der)
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            let key = cert
                .public_key()
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            let spki = cert
                .spki_der()
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            let signature = first_verifying(candidate, &key, &spki, &signed).ok_or_else(|| {
                Failure::NoMatch(format!(
                    "{}: the signature was not made with its certificate's key",
                    candidate.label
                ))
            })?;
            let p = options.policy;
            let needs = Needs {
                tlog: p.transparency_log.unwrap_or(1),
                integrated: p.integrated_timestamps.unwrap_or(0),
                signed: p.signed_timestamps.unwrap_or(0),
                observer: p.observer_timestamps.unwrap_or(1).max(1),
            };
            let found = evidence(
                candidate,
                signed.bytes(),
                signature,
                Signer::Certificate(cert.der()),
                options.transparency,
            );
            found.meets(&needs, &candidate.label)?;
            // The certificate must be valid, and its CA trusted, at every
            // verified time.
            let mut issuer_spki = Vec::new();
            for t in found.times() {
                issuer_spki = cert
                    .verify_chain(&options.transparency.fulcio_certs, t)
                    .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            }
            cert.verify_sct(&issuer_spki, &options.transparency.ct_keys)
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            let identity = cert.identity();
            let issuer_ok = identity
                .issuer
                .as_deref()
                .is_some_and(|i| issuer.matches(i));
            let matched = identity.subjects.iter().find(|s| subject.matches(s));
            if !issuer_ok || matched.is_none() {
                return Err(Failure::Identity(format!(
                    "{}: signed by {} (issuer {}), trust root `{}` wants {subject} (issuer {issuer})",
                    candidate.label,
                    identity.subjects.join(", "),
                    identity.issuer.as_deref().unwrap_or("none"),
                    root.name
                )));
            }
            let claim = claim(&candidate.content, options.digest)
                .map_err(|e| Failure::Digest(format!("{}: {e}", candidate.label)))?;
            Ok(Pass {
                claim,
                signer: spki_id(&spki),
                identity: identity.issuer.clone().zip(matched.cloned()),
            })
        }
    }
}

/// What a signature was made over.
enum Signed {
    /// The bytes (a payload, a PAE, an artifact or a manifest).
    Bytes(Vec<u8>),
    /// Only their SHA-256: a message signature whose artifact was given as
    /// a digest (see [`super::prehashed`]).
    Sha256([u8; 32]),
}

impl Signed {
    /// The bytes, or none when only the digest is known (the log-entry
    /// binding of a message signature reads its digest, not these).
    fn bytes(&self) -> &[u8] {
        match self {
            Signed::Bytes(b) => b,
            Signed::Sha256(_) => &[],
        }
    }
}

/// What the candidate's signatures sign: its own payload, the manifest or
/// artifact bytes the caller has, or for a message signature without them
/// the SHA-256 it names (which [`claim`] then holds to the digest asked
/// about).
fn signed_data(candidate: &Candidate, options: CheckOptions<'_>) -> Result<Signed, Failure> {
    if let Some(bytes) = candidate.content.signed_bytes() {
        return Ok(Signed::Bytes(bytes));
    }
    if let Some(bytes) = options.manifest {
        return Ok(Signed::Bytes(bytes.to_vec()));
    }
    let unavailable = || {
        Failure::NoMatch(format!(
            "{}: the signed manifest is unavailable",
            candidate.label
        ))
    };
    match &candidate.content {
        Content::MessageSignature { digest } => digest
            .strip_prefix("sha256:")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .map(Signed::Sha256)
            .ok_or_else(unavailable),
        _ => Err(unavailable()),
    }
}

/// The first of the candidate's signatures that `key` (whose
/// SubjectPublicKeyInfo is `spki_der`) verifies over `signed`.
fn first_verifying<'c>(
    candidate: &'c Candidate,
    key: &CosignVerificationKey,
    spki_der: &[u8],
    signed: &Signed,
) -> Option<&'c [u8]> {
    candidate
        .signatures
        .iter()
        .find(|sig| match signed {
            Signed::Bytes(bytes) => key.verify_signature(Signature::Raw(sig), bytes).is_ok(),
            Signed::Sha256(digest) => super::prehashed::verifies(spki_der, digest, sig),
        })
        .map(Vec::as_slice)
}

/// How many of each time source a signature needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Needs {
    tlog: u32,
    integrated: u32,
    signed: u32,
    observer: u32,
}

/// What a candidate's log entries and timestamps establish.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    /// Distinct logs with a verified entry about this signature.
    logs: Vec<[u8; 32]>,
    /// Integration times vouched for by SETs.
    integrated: Vec<i64>,
    /// Times of verified RFC 3161 timestamps, one per TSA.
    signed: Vec<i64>,
    /// Why the first entry that did not count failed.
    tlog_error: Option<String>,
    /// Why the first timestamp that did not count failed.
    timestamp_error: Option<String>,
}

impl Evidence {
    /// Every verified time: SET integration times and timestamp times.
    fn times(&self) -> impl Iterator<Item = i64> + '_ {
        self.integrated.iter().chain(&self.signed).copied()
    }

    fn meets(&self, needs: &Needs, label: &str) -> Result<(), Failure> {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        if count(self.logs.len()) < needs.tlog {
            return Err(Failure::Tlog(format!(
                "{label}: {} of {} required transparency-log entries verify{}",
                self.logs.len(),
                needs.tlog,
                self.tlog_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_else(|| ": the signature has no transparency-log entry".into())
            )));
        }
        let why = || {
            self.timestamp_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        };
        if count(self.signed.len()) < needs.signed {
            return Err(Failure::Timestamp(format!(
                "{label}: {} of {} required RFC 3161 timestamps verify{}",
                self.signed.len(),
                needs.signed,
                why()
            )));
        }
        if count(self.integrated.len()) < needs.integrated {
            return Err(Failure::Timestamp(format!(
                "{label}: {} of {} required signed entry timestamps verify",
                self.integrated.len(),
                needs.integrated
            )));
        }
        let observed = self.integrated.len() + self.signed.len();
        if count(observed) < needs.observer {
            return Err(Failure::Timestamp(format!(
                "{label}: no verified time for the signature (neither a signed entry timestamp nor a trusted RFC 3161 timestamp){}",
                why()
            )));
        }
        Ok(())
    }
}

/// Verifies the candidate's log entries (each also bound to this
/// signature, signer and content) and its timestamps over `signature`.
pub(crate) fn evidence(
    candidate: &Candidate,
    signed: &[u8],
    signature: &[u8],
    signer: Signer<'_>,
    transparency: &TransparencyRoots,
) -> Evidence {
    let mut out = Evidence::default();
    for entry in &candidate.tlog {
        let verified = verify_entry(entry, transparency).and_then(|v| {
            check_body(entry, &candidate.content, signed, signature, signer).map(|()| v)
        });
        match verified {
            Ok(v) => {
                if !out.logs.contains(&v.log_id) {
                    out.logs.push(v.log_id);
                    out.integrated.extend(v.integrated_time);
                }
            }
            Err(e) => {
                out.tlog_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let mut tsas_used: Vec<usize> = Vec::new();
    for token in &candidate.timestamps {
        match verify_timestamp(token, signature, transparency) {
            Ok((tsa, time)) => {
                if !tsas_used.contains(&tsa) {
                    tsas_used.push(tsa);
                    out.signed.push(time);
                }
            }
            Err(e) => {
                out.timestamp_error.get_or_insert(e);
            }
        }
    }
    out
}

/// One RFC 3161 timestamp over `signature`, from the first trusted TSA it
/// verifies with; returns that TSA's index and the stamped time.
fn verify_timestamp(
    der: &[u8],
    signature: &[u8],
    transparency: &TransparencyRoots,
) -> Result<(usize, i64), String> {
    let token = portcullis_timestamp::token_from_response(der).map_err(|e| e.to_string())?;
    if transparency.tsas.is_empty() {
        return Err("no timestamp authority is trusted".into());
    }
    let mut first_error = None;
    for (i, tsa) in transparency.tsas.iter().enumerate() {
        let Some((root, known)) = tsa.chain.split_last() else {
            continue;
        };
        match portcullis_timestamp::verify_with(
            &token,
            signature,
            std::slice::from_ref(root),
            known,
        ) {
            Ok(ts) if tsa.valid.contains(ts.time.timestamp()) => {
                return Ok((i, ts.time.timestamp()));
            }
            Ok(ts) => {
                // The token verified with this TSA: its window is the
                // reason, whatever other TSAs said.
                first_error = Some(format!(
                    "the timestamp {} is outside its TSA's validity window",
                    ts.time
                ));
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "no trusted TSA".into()))
}
