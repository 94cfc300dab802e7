//! Transparency-log (Rekor) checks, offline:
//!
//! 1. the signed entry timestamp (SET) verifies with a configured Rekor key
//!    over the RFC 8785 canonical JSON of
//!    `{"body","integratedTime","logID","logIndex"}`;
//! 2. the entry body is about *this* signature: its signature, its signer
//!    (key or certificate) and the hash of what was signed must equal the
//!    candidate's. Without this, any valid Rekor entry would do (a gap in
//!    sigstore-rs's `.sig` path).
//!
//! Supported bodies: `hashedrekord` 0.0.1 and `dsse` 0.0.1.

use std::collections::HashMap;

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use sigstore::crypto::{CosignVerificationKey, Signature};

use super::candidate::{Content, TlogEntry};
use super::trust_root::LogKey;

/// Why a log entry does not vouch for a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogError {
    /// No entry at all.
    #[error("the signature has no transparency-log entry")]
    Missing,
    /// The log id names no configured Rekor key.
    #[error("the entry's log is not a trusted Rekor log")]
    UnknownLog,
    /// The log's key was not valid (its `validFor`) at the integration
    /// time.
    #[error("the Rekor key was not valid at the entry's integration time ({0})")]
    KeyNotValidThen(i64),
    /// The SET does not verify.
    #[error("the signed entry timestamp does not verify against the Rekor key")]
    BadSet,
    /// The body is not about this signature.
    #[error("the log entry is about another signature: {0}")]
    BodyMismatch(String),
}

/// Who signed, as the log entry must name it.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    /// A public key (SPKI DER).
    Key(&'a [u8]),
    /// A certificate (DER).
    Certificate(&'a [u8]),
}

/// Verifies the SET of `entry` with the Rekor key its log id names, which
/// must have been valid at the entry's integration time.
pub fn verify_set(
    entry: &TlogEntry,
    rekor_keys: &HashMap<[u8; 32], LogKey>,
) -> Result<(), TlogError> {
    let log_id: [u8; 32] = entry
        .log_id
        .as_slice()
        .try_into()
        .map_err(|_| TlogError::UnknownLog)?;
    let log_key = rekor_keys.get(&log_id).ok_or(TlogError::UnknownLog)?;
    if !log_key.valid.contains(entry.integrated_time) {
        return Err(TlogError::KeyNotValidThen(entry.integrated_time));
    }
    let key = CosignVerificationKey::try_from_der(&log_key.spki_der)
        .map_err(|_| TlogError::UnknownLog)?;
    // RFC 8785 for this object is: keys sorted, no whitespace, integers as
    // written; the base64 body and hex log id need no escaping.
    let canonical = format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        base64::engine::general_purpose::STANDARD.encode(&entry.body),
        entry.integrated_time,
        hex::encode(&entry.log_id),
        entry.log_index
    );
    key.verify_signature(
        Signature::Raw(&entry.signed_entry_timestamp),
        canonical.as_bytes(),
    )
    .map_err(|_| TlogError::BadSet)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    api_version: String,
    kind: String,
    spec: serde_json::Value,
}

#[derive(Deserialize)]
struct HashedRekordSpec {
    data: HashedRekordData,
    signature: HashedRekordSignature,
}

#[derive(Deserialize)]
struct HashedRekordData {
    hash: Hash,
}

#[derive(Deserialize)]
struct Hash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HashedRekordSignature {
    content: String,
    public_key: PublicKeyContent,
}

#[derive(Deserialize)]
struct PublicKeyContent {
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseSpec {
    payload_hash: Hash,
    signatures: Vec<DsseSignature>,
}

#[derive(Deserialize)]
struct DsseSignature {
    signature: String,
    verifier: String,
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// Whether base64-of-PEM `content` names `signer`.
fn names_signer(content: &str, signer: Signer<'_>) -> bool {
    let Some(pem_bytes) = decode_b64(content) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&pem_bytes) else {
        return false;
    };
    let Ok(block) = pem::parse(text.trim()) else {
        return false;
    };
    match signer {
        Signer::Key(spki) => block.tag() == "PUBLIC KEY" && block.contents() == spki,
        Signer::Certificate(der) => block.tag() == "CERTIFICATE" && block.contents() == der,
    }
}

fn hash_matches(hash: &Hash, data: &[u8]) -> bool {
    let computed = match hash.algorithm.as_str() {
        "sha256" => hex::encode(Sha256::digest(data)),
        "sha384" => hex::encode(Sha384::digest(data)),
        "sha512" => hex::encode(Sha512::digest(data)),
        _ => return false,
    };
    computed.eq_ignore_ascii_case(&hash.value)
}

/// Checks that the entry body is about `signature` by `signer` over
/// `content` (whose signed bytes are `signed`).
pub fn check_body(
    entry: &TlogEntry,
    content: &Content,
    signed: &[u8],
    signature: &[u8],
    signer: Signer<'_>,
) -> Result<(), TlogError> {
    let mismatch = |what: &str| TlogError::BodyMismatch(what.to_string());
    let body: Body =
        serde_json::from_slice(&entry.body).map_err(|_| mismatch("unparsable body"))?;
    match (body.kind.as_str(), body.api_version.as_str()) {
        ("hashedrekord", "0.0.1") => {
            let spec: HashedRekordSpec = serde_json::from_value(body.spec)
                .map_err(|_| mismatch("unparsable hashedrekord"))?;
            if decode_b64(&spec.signature.content).as_deref() != Some(signature) {
                return Err(mismatch("signature differs"));
            }
            if !names_signer(&spec.signature.public_key.content, signer) {
                return Err(mismatch("signer differs"));
            }
            // A message signature's log entry hashes the manifest, whose
            // digest is the image digest.
            let hashed_ok = match content {
                Content::MessageSignature { digest } => {
                    spec.data.hash.algorithm == "sha256"
                        && digest
                            .strip_prefix("sha256:")
                            .is_some_and(|h| h.eq_ignore_ascii_case(&spec.data.hash.value))
                }
                _ => hash_matches(&spec.data.hash, signed),
            };
            if !hashed_ok {
                return Err(mismatch("signed data hash differs"));
            }
            Ok(())
        }
        ("dsse", "0.0.1") => {
            let Content::Dsse { payload, .. } = content else {
                return Err(mismatch("dsse entry for a non-DSSE signature"));
            };
            let spec: DsseSpec =
                serde_json::from_value(body.spec).map_err(|_| mismatch("unparsable dsse entry"))?;
            if !hash_matches(&spec.payload_hash, payload) {
                return Err(mismatch("payload hash differs"));
            }
            let listed = spec.signatures.iter().any(|s| {
                decode_b64(&s.signature).as_deref() == Some(signature)
                    && names_signer(&s.verifier, signer)
            });
            if !listed {
                return Err(mismatch("signature or signer not in the entry"));
            }
            Ok(())
        }
        (kind, version) => Err(TlogError::BodyMismatch(format!(
            "unsupported entry kind {kind} {version}"
        ))),
    }
}
