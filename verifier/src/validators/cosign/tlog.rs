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
//! 3. **Inclusion** ([`verify_entry`]): an entry with an inclusion proof
//!    must prove it ([`super::inclusion`]): for Rekor v1 against a
//!    checkpoint signed by the same log key (checked as well as the SET
//!    when both are there), for Rekor v2 (no SET) against a checkpoint
//!    signed by the log's Ed25519 key as its origin. A checkpoint for a tree
//!    that does not contain the entry, or signed by another key, fails.
//!
//! Supported bodies: `hashedrekord` 0.0.1 and 0.0.2 (Rekor v2, which logs
//! DSSE envelopes as a hashedrekord over their PAE), `rekord` 0.0.1 (cosign 1.x),
//! `dsse` 0.0.1, and for DSSE
//! attestations logged by cosign before v2.2, `intoto` 0.0.2 and 0.0.1.
//! An `intoto` 0.0.1 body names no signature, only the signer and the
//! payload hash: it binds the entry to "this signer signed this payload",
//! which with the verified signature is the same claim. (Entries so old that
//! they lack the payload hash are refused.)

use std::collections::HashMap;

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use sigstore::crypto::{CosignVerificationKey, Signature};

use super::candidate::{Content, TlogEntry};
use super::inclusion::{InclusionError, NoteKey, leaf_hash, verify_checkpoint, verify_inclusion};
use super::trust_root::LogKey;
use crate::config::cosign::TransparencyRoots;

/// Why a log entry does not vouch for a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TlogError {
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
    /// The entry has neither a signed entry timestamp nor an inclusion
    /// proof (a Rekor v2 entry needs the proof).
    #[error("the log entry has no inclusion proof{0}")]
    NoProof(&'static str),
    /// The inclusion proof or its checkpoint does not verify.
    #[error("inclusion: {0}")]
    Inclusion(#[from] InclusionError),
}

/// What a verified entry vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The log (its id), for counting distinct logs.
    pub(crate) log_id: [u8; 32],
    /// The integration time, when a SET vouches for it (Rekor v1).
    pub(crate) integrated_time: Option<i64>,
}

/// Verifies `entry` as an entry of a trusted log: the SET (v1, when
/// present) and the inclusion proof against a signed checkpoint (when
/// present; required without a SET). The body's binding to the signature
/// is [`check_body`]'s.
pub(crate) fn verify_entry(
    entry: &TlogEntry,
    transparency: &TransparencyRoots,
) -> Result<Verified, TlogError> {
    let log_id: [u8; 32] = entry
        .log_id
        .as_slice()
        .try_into()
        .map_err(|_| TlogError::UnknownLog)?;
    if let Some(key) = transparency.rekor_keys.get(&log_id) {
        let mut integrated_time = None;
        if !entry.signed_entry_timestamp.is_empty() {
            verify_set(entry, &transparency.rekor_keys)?;
            integrated_time = Some(entry.integrated_time);
        }
        match &entry.proof {
            Some(proof) => prove(
                entry,
                proof,
                u64::try_from(proof.log_index).map_err(|_| InclusionError::Proof)?,
                NoteKey::Ecdsa {
                    spki_der: &key.spki_der,
                    host: key.host.as_deref(),
                },
            )?,
            None if integrated_time.is_none() => return Err(TlogError::NoProof("")),
            None => {}
        }
        return Ok(Verified {
            log_id,
            integrated_time,
        });
    }
    let log = transparency
        .rekor_v2_logs
        .get(&log_id)
        .ok_or(TlogError::UnknownLog)?;
    let proof = entry
        .proof
        .as_ref()
        .ok_or(TlogError::NoProof(" (a Rekor v2 entry needs one)"))?;
    prove(
        entry,
        proof,
        u64::try_from(entry.log_index).map_err(|_| InclusionError::Proof)?,
        NoteKey::Ed25519 {
            key: &log.raw_key,
            origin: &log.origin,
        },
    )?;
    Ok(Verified {
        log_id,
        integrated_time: None,
    })
}

/// The proof leads from the body at `index` to the root of a checkpoint
/// signed by `key`, and the proof's own root and size are the checkpoint's.
fn prove(
    entry: &TlogEntry,
    proof: &super::candidate::InclusionProof,
    index: u64,
    key: NoteKey<'_>,
) -> Result<(), InclusionError> {
    let envelope = proof
        .checkpoint
        .as_deref()
        .ok_or_else(|| InclusionError::Malformed("no checkpoint".into()))?;
    let checkpoint = verify_checkpoint(envelope, key)?;
    if proof.root_hash.as_slice() != checkpoint.root
        || u64::try_from(proof.tree_size).ok() != Some(checkpoint.size)
    {
        return Err(InclusionError::Proof);
    }
    if !verify_inclusion(
        index,
        checkpoint.size,
        leaf_hash(&entry.body),
        &proof.hashes,
        &checkpoint.root,
    ) {
        return Err(InclusionError::Proof);
    }
    Ok(())
}

/// Who signed, as the log entry must name it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signer<'a> {
    /// A public key (SPKI DER).
    Key(&'a [u8]),
    /// A certificate (DER).
    Certificate(&'a [u8]),
}

/// Verifies the SET of `entry` with the Rekor key its log id names, which
/// must have been valid at the entry's integration time.
pub(crate) fn verify_set(
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
    /// `rekord` only: the signature format (`x509` for cosign).
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize)]
struct PublicKeyContent {
    content: String,
}

/// Rekor v2 `hashedrekord` 0.0.2 (`spec.hashedRekordV002`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HashedRekordV2 {
    hashed_rekord_v002: HashedRekordV2Spec,
}

#[derive(Deserialize)]
struct HashedRekordV2Spec {
    data: HashedRekordV2Data,
    signature: HashedRekordV2Signature,
}

#[derive(Deserialize)]
struct HashedRekordV2Data {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
struct HashedRekordV2Signature {
    content: String,
    verifier: V2Verifier,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Verifier {
    #[serde(default)]
    public_key: Option<RawBytes>,
    #[serde(default)]
    x509_certificate: Option<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV2Spec {
    content: IntotoV2Content,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV2Content {
    envelope: IntotoV2Envelope,
    payload_hash: Hash,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV2Envelope {
    #[serde(default)]
    payload_type: Option<String>,
    signatures: Vec<IntotoV2Signature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV2Signature {
    /// Base64 of the envelope's base64 signature text.
    sig: String,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV1Spec {
    content: IntotoV1Content,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV1Content {
    #[serde(default)]
    payload_hash: Option<Hash>,
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
pub(crate) fn check_body(
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
        // `rekord` 0.0.1 (cosign 1.x) has the same fields in its canonical
        // form, plus the signature format.
        (kind @ ("hashedrekord" | "rekord"), "0.0.1") => {
            let spec: HashedRekordSpec = serde_json::from_value(body.spec)
                .map_err(|_| mismatch("unparsable hashedrekord"))?;
            if kind == "rekord" && spec.signature.format.as_deref() != Some("x509") {
                return Err(mismatch("rekord entry with a non-x509 signature"));
            }
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
        ("intoto", "0.0.2") => {
            let Content::Dsse {
                payload,
                payload_type,
            } = content
            else {
                return Err(mismatch("intoto entry for a non-DSSE signature"));
            };
            let spec: IntotoV2Spec = serde_json::from_value(body.spec)
                .map_err(|_| mismatch("unparsable intoto entry"))?;
            if !hash_matches(&spec.content.payload_hash, payload) {
                return Err(mismatch("payload hash differs"));
            }
            if spec
                .content
                .envelope
                .payload_type
                .as_ref()
                .is_some_and(|t| t != payload_type)
            {
                return Err(mismatch("payload type differs"));
            }
            let listed = spec.content.envelope.signatures.iter().any(|s| {
                let inner = decode_b64(&s.sig)
                    .and_then(|text| String::from_utf8(text).ok())
                    .and_then(|text| decode_b64(&text));
                inner.as_deref() == Some(signature) && names_signer(&s.public_key, signer)
            });
            if !listed {
                return Err(mismatch("signature or signer not in the entry"));
            }
            Ok(())
        }
        ("intoto", "0.0.1") => {
            let Content::Dsse { payload, .. } = content else {
                return Err(mismatch("intoto entry for a non-DSSE signature"));
            };
            let spec: IntotoV1Spec = serde_json::from_value(body.spec)
                .map_err(|_| mismatch("unparsable intoto entry"))?;
            let Some(payload_hash) = &spec.content.payload_hash else {
                return Err(mismatch("intoto 0.0.1 entry without a payload hash"));
            };
            if !hash_matches(payload_hash, payload) {
                return Err(mismatch("payload hash differs"));
            }
            if !names_signer(&spec.public_key, signer) {
                return Err(mismatch("signer differs"));
            }
            Ok(())
        }
        ("hashedrekord", "0.0.2") => {
            let spec: HashedRekordV2 = serde_json::from_value(body.spec)
                .map_err(|_| mismatch("unparsable hashedrekord 0.0.2"))?;
            let spec = spec.hashed_rekord_v002;
            if decode_b64(&spec.signature.content).as_deref() != Some(signature) {
                return Err(mismatch("signature differs"));
            }
            let v = &spec.signature.verifier;
            let named = match (signer, &v.public_key, &v.x509_certificate) {
                (Signer::Key(spki), Some(k), None) => {
                    decode_b64(&k.raw_bytes).as_deref() == Some(spki)
                }
                (Signer::Certificate(der), None, Some(c)) => {
                    decode_b64(&c.raw_bytes).as_deref() == Some(der)
                }
                _ => false,
            };
            if !named {
                return Err(mismatch("signer differs"));
            }
            let digest = decode_b64(&spec.data.digest).unwrap_or_default();
            let hashed_ok = match (content, spec.data.algorithm.as_str()) {
                (Content::MessageSignature { digest: image }, "SHA2_256") => image
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.eq_ignore_ascii_case(&hex::encode(&digest))),
                (Content::MessageSignature { .. }, _) => false,
                (_, "SHA2_256") => Sha256::digest(signed).as_slice() == digest,
                (_, "SHA2_384") => Sha384::digest(signed).as_slice() == digest,
                (_, "SHA2_512") => Sha512::digest(signed).as_slice() == digest,
                _ => false,
            };
            if !hashed_ok {
                return Err(mismatch("signed data hash differs"));
            }
            Ok(())
        }
        (kind, version) => Err(TlogError::BodyMismatch(format!(
            "unsupported entry kind {kind} {version}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
    const SIG: &[u8] = b"signature-bytes";
    const KEY_DER: &[u8] = b"spki-der";

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn key_pem() -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", KEY_DER.to_vec()))
    }

    fn entry(body: serde_json::Value) -> TlogEntry {
        TlogEntry {
            body: serde_json::to_vec(&body).unwrap(),
            integrated_time: 0,
            log_index: 0,
            log_id: vec![0; 32],
            signed_entry_timestamp: vec![],
            proof: None,
        }
    }

    fn dsse() -> Content {
        Content::Dsse {
            payload_type: "application/vnd.in-toto+json".into(),
            payload: PAYLOAD.to_vec(),
        }
    }

    fn intoto_v2(payload: &[u8], sig: &[u8]) -> serde_json::Value {
        serde_json::json!({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {
            "envelope": {"payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": b64(b64(sig).as_bytes()), "publicKey": b64(key_pem().as_bytes())}]},
            "hash": {"algorithm": "sha256", "value": "00"},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}}}})
    }

    fn check(body: serde_json::Value) -> Result<(), TlogError> {
        check_body(&entry(body), &dsse(), b"pae", SIG, Signer::Key(KEY_DER))
    }

    #[test]
    fn intoto_v2_binds_payload_signature_and_signer() {
        assert_eq!(check(intoto_v2(PAYLOAD, SIG)), Ok(()));
        assert!(check(intoto_v2(b"another payload", SIG)).is_err());
        assert!(check(intoto_v2(PAYLOAD, b"another signature")).is_err());
        let other_signer = check_body(
            &entry(intoto_v2(PAYLOAD, SIG)),
            &dsse(),
            b"pae",
            SIG,
            Signer::Key(b"other-spki"),
        );
        assert!(other_signer.is_err());
    }

    #[test]
    fn intoto_v1_binds_payload_and_signer_and_needs_the_payload_hash() {
        let v1 = |payload_hash: Option<&[u8]>| {
            let mut content = serde_json::json!({"hash": {"algorithm": "sha256", "value": "00"}});
            if let Some(p) = payload_hash {
                content["payloadHash"] = serde_json::json!({"algorithm": "sha256", "value": hex::encode(Sha256::digest(p))});
            }
            serde_json::json!({"apiVersion": "0.0.1", "kind": "intoto",
                "spec": {"content": content, "publicKey": b64(key_pem().as_bytes())}})
        };
        assert_eq!(check(v1(Some(PAYLOAD))), Ok(()));
        assert!(check(v1(Some(b"another payload"))).is_err());
        assert!(check(v1(None)).is_err());
    }

    #[test]
    fn rekord_binds_like_hashedrekord_and_needs_x509() {
        let simple = Content::SimpleSigning {
            payload: PAYLOAD.to_vec(),
        };
        let rekord = |format: &str, payload: &[u8]| {
            serde_json::json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}},
                "signature": {"content": b64(SIG), "format": format,
                              "publicKey": {"content": b64(key_pem().as_bytes())}}}})
        };
        let check = |body| check_body(&entry(body), &simple, PAYLOAD, SIG, Signer::Key(KEY_DER));
        assert_eq!(check(rekord("x509", PAYLOAD)), Ok(()));
        assert!(check(rekord("x509", b"another payload")).is_err());
        assert!(check(rekord("pgp", PAYLOAD)).is_err());
    }

    #[test]
    fn intoto_entries_never_vouch_for_simple_signing() {
        let simple = Content::SimpleSigning {
            payload: PAYLOAD.to_vec(),
        };
        let r = check_body(
            &entry(intoto_v2(PAYLOAD, SIG)),
            &simple,
            PAYLOAD,
            SIG,
            Signer::Key(KEY_DER),
        );
        assert!(r.is_err());
    }
}
