//! Checking one candidate against one trust root.
//!
//! * **Key roots:** a signature verifies with the key; the content names the
//!   image digest; and, when the rule wants the transparency log, the Rekor
//!   entry's SET verifies and its body names this signature, this key and
//!   this content.
//! * **Keyless roots:** the signature verifies with the certificate's own
//!   key (so a borrowed certificate cannot vouch for an attacker's
//!   signature: a gap in sigstore-rs's identity verifiers); the Rekor entry
//!   is required, its SET verifies and its body names this signature and
//!   certificate; the certificate chains to the Fulcio roots and is valid at
//!   the integration time; its SCT verifies; the identity matches; and the
//!   content names the image digest.

use sigstore::crypto::{CosignVerificationKey, Signature};

use super::candidate::Candidate;
use super::certificate::SigningCert;
use super::content::{Claim, claim};
use super::tlog::{Signer, check_body, verify_set};
use crate::config::cosign::{TransparencyRoots, TrustRoot, TrustRootKind};

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
}

/// Checks `candidate` against `root`.
pub(crate) fn check(
    candidate: &Candidate,
    root: &TrustRoot,
    options: CheckOptions<'_>,
) -> Result<Pass, Failure> {
    let signed = match candidate.content.signed_bytes() {
        Some(bytes) => bytes,
        None => options.manifest.map(<[u8]>::to_vec).ok_or_else(|| {
            Failure::NoMatch(format!(
                "{}: the signed manifest is unavailable",
                candidate.label
            ))
        })?,
    };
    match &root.kind {
        TrustRootKind::Key { key, spki_der } => {
            let signature = first_verifying(candidate, key, &signed).ok_or_else(|| {
                Failure::NoMatch(format!(
                    "{}: not signed by `{}`",
                    candidate.label, root.name
                ))
            })?;
            let claim = claim(&candidate.content, options.digest)
                .map_err(|e| Failure::Digest(format!("{}: {e}", candidate.label)))?;
            if options.require_tlog_for_keys {
                check_tlog(
                    candidate,
                    &signed,
                    signature,
                    Signer::Key(spki_der),
                    options.transparency,
                )?;
            }
            Ok(Pass {
                claim,
                signer: spki_id(spki_der),
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
            let signature = first_verifying(candidate, &key, &signed).ok_or_else(|| {
                Failure::NoMatch(format!(
                    "{}: the signature was not made with its certificate's key",
                    candidate.label
                ))
            })?;
            let entry = check_tlog(
                candidate,
                &signed,
                signature,
                Signer::Certificate(cert.der()),
                options.transparency,
            )?;
            let issuer_spki = cert
                .verify_chain(&options.transparency.fulcio_certs, entry)
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            cert.verify_sct(&issuer_spki, &options.transparency.ct_keys)
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            let identity = cert.identity();
            let issuer_ok = identity
                .issuer
                .as_deref()
                .is_some_and(|i| issuer.matches(i));
            let subject_ok = identity.subjects.iter().any(|s| subject.matches(s));
            if !issuer_ok || !subject_ok {
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
            let spki = cert
                .spki_der()
                .map_err(|e| Failure::Certificate(format!("{}: {e}", candidate.label)))?;
            Ok(Pass {
                claim,
                signer: spki_id(&spki),
            })
        }
    }
}

/// The first of the candidate's signatures that `key` verifies over
/// `signed`.
fn first_verifying<'c>(
    candidate: &'c Candidate,
    key: &CosignVerificationKey,
    signed: &[u8],
) -> Option<&'c [u8]> {
    candidate
        .signatures
        .iter()
        .find(|sig| key.verify_signature(Signature::Raw(sig), signed).is_ok())
        .map(Vec::as_slice)
}

/// Verifies the candidate's log entry; returns its integration time.
fn check_tlog(
    candidate: &Candidate,
    signed: &[u8],
    signature: &[u8],
    signer: Signer<'_>,
    transparency: &TransparencyRoots,
) -> Result<i64, Failure> {
    let fail = |e: super::tlog::TlogError| Failure::Tlog(format!("{}: {e}", candidate.label));
    let entry = candidate
        .tlog
        .as_ref()
        .ok_or_else(|| fail(super::tlog::TlogError::Missing))?;
    verify_set(entry, &transparency.rekor_keys).map_err(fail)?;
    check_body(entry, &candidate.content, signed, signature, signer).map_err(fail)?;
    Ok(entry.integrated_time)
}
