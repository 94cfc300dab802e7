//! Signature candidates: everything found next to an image that might be a
//! signature or an attestation, in one shape whatever its storage format.
//!
//! * Legacy cosign v2 signatures: layers of the `sha256-<hex>.sig` manifest
//!   (simple-signing payload blob, `dev.cosignproject.cosign/signature`,
//!   and for keyless `dev.sigstore.cosign/certificate` and
//!   `dev.sigstore.cosign/bundle`).
//! * Legacy attestations: layers of `sha256-<hex>.att` (DSSE envelope blob).
//! * Cosign v3: Sigstore bundles (v0.1–v0.3) attached as OCI referrers; a
//!   signature is a DSSE envelope around an in-toto statement with predicate
//!   type `https://sigstore.dev/cosign/sign/v1`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// `dev.cosignproject.cosign/signature`.
pub(crate) const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// `dev.sigstore.cosign/certificate`.
pub(crate) const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
/// `dev.sigstore.cosign/bundle`.
pub(crate) const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// The simple-signing layer media type.
pub(crate) const SIMPLE_SIGNING_MEDIA_TYPE: &str =
    "application/vnd.dev.cosign.simplesigning.v1+json";
/// The DSSE envelope layer media type (legacy attestations).
pub(crate) const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The in-toto DSSE payload type.
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of cosign v3 image signatures.
pub(crate) const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Whether a media/artifact type is a Sigstore bundle.
pub(crate) fn is_bundle_media_type(t: &str) -> bool {
    t.starts_with("application/vnd.dev.sigstore.bundle")
}

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A layer of the `.sig` manifest.
    LegacySignature,
    /// A layer of the `.att` manifest.
    LegacyAttestation,
    /// A Sigstore bundle referrer.
    Bundle,
}

/// What was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// A simple-signing JSON payload; the signature is over its bytes.
    SimpleSigning {
        /// The payload bytes.
        payload: Vec<u8>,
    },
    /// A DSSE envelope; the signatures are over the PAE encoding.
    Dsse {
        /// `payloadType`.
        payload_type: String,
        /// The decoded payload.
        payload: Vec<u8>,
    },
    /// A Sigstore bundle message signature over an artifact: for an image,
    /// the manifest bytes, so its digest is the image digest.
    MessageSignature {
        /// `sha256:<hex>` of the signed artifact.
        digest: String,
    },
}

impl Content {
    /// The bytes the signatures cover (PAE for DSSE). `None` for a message
    /// signature, whose bytes are the manifest, fetched separately.
    pub(crate) fn signed_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Content::SimpleSigning { payload } => Some(payload.clone()),
            Content::Dsse {
                payload_type,
                payload,
            } => Some(pae(payload_type, payload)),
            Content::MessageSignature { .. } => None,
        }
    }
}

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A transparency-log entry as carried with a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlogEntry {
    /// The entry body (canonical JSON), decoded.
    pub(crate) body: Vec<u8>,
    /// Integration time, Unix seconds (0 for Rekor v2, which has none).
    pub(crate) integrated_time: i64,
    /// The log index.
    pub(crate) log_index: i64,
    /// The log id: SHA-256 of a v1 log's public key, a v2 log's C2SP key
    /// hash.
    pub(crate) log_id: Vec<u8>,
    /// The signed entry timestamp (the log's promise of inclusion); empty
    /// when the entry has none (Rekor v2).
    pub(crate) signed_entry_timestamp: Vec<u8>,
    /// The inclusion proof, if the entry carries one.
    pub(crate) proof: Option<InclusionProof>,
}

/// An entry's Merkle inclusion proof and the checkpoint it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InclusionProof {
    /// The leaf index in the tree the proof is for (a v1 shard's own
    /// index, which differs from the entry's global `logIndex`).
    pub(crate) log_index: i64,
    /// The root hash the proof claims.
    pub(crate) root_hash: Vec<u8>,
    /// The tree size the proof claims.
    pub(crate) tree_size: i64,
    /// The audit path, leaf to root.
    pub(crate) hashes: Vec<[u8; 32]>,
    /// The signed checkpoint (note text), if any.
    pub(crate) checkpoint: Option<String>,
}

/// The most transparency-log entries and timestamps read per bundle.
const MAX_PER_BUNDLE: usize = 4;

/// One signature or attestation, ready to check.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Where it was found.
    pub(crate) origin: Origin,
    /// What was signed.
    pub(crate) content: Content,
    /// The raw signatures (DSSE may carry several).
    pub(crate) signatures: Vec<Vec<u8>>,
    /// The signing certificate (DER), for keyless signatures.
    pub(crate) certificate: Option<Vec<u8>>,
    /// The transparency-log entries (a legacy signature has at most one).
    pub(crate) tlog: Vec<TlogEntry>,
    /// RFC 3161 timestamps over the signature (bundles), DER as carried
    /// (a `TimeStampResp` or a bare token).
    pub(crate) timestamps: Vec<Vec<u8>>,
    /// A short description for messages, e.g. `.sig layer 0`.
    pub(crate) label: String,
}

/// Why a candidate could not be read. Unreadable candidates are skipped
/// (they count as no signature), and the reason is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ParseError(pub(crate) String);

fn b64(s: &str) -> Result<Vec<u8>, ParseError> {
    // Line breaks are ignored, as Go's decoder (which writes and reads
    // bundles in sigstore-go and cosign) ignores them.
    let s: std::borrow::Cow<'_, str> = if s.contains(['\n', '\r']) {
        s.chars()
            .filter(|c| !matches!(c, '\n' | '\r'))
            .collect::<String>()
            .into()
    } else {
        s.into()
    };
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ParseError(format!("bad base64: {e}")))
}

/// Parses the first certificate of a PEM text into DER.
fn pem_cert(pem_text: &str) -> Result<Vec<u8>, ParseError> {
    let block =
        pem::parse(pem_text.trim()).map_err(|e| ParseError(format!("bad certificate PEM: {e}")))?;
    if block.tag() != "CERTIFICATE" {
        return Err(ParseError(format!(
            "expected a CERTIFICATE, found {}",
            block.tag()
        )));
    }
    Ok(block.contents().to_vec())
}

/// The legacy `dev.sigstore.cosign/bundle` annotation.
#[derive(Debug, Deserialize)]
struct LegacyBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: LegacyBundlePayload,
}

#[derive(Debug, Deserialize)]
struct LegacyBundlePayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

fn legacy_tlog(annotation: &str) -> Result<TlogEntry, ParseError> {
    let bundle: LegacyBundle = serde_json::from_str(annotation)
        .map_err(|e| ParseError(format!("bad Rekor bundle: {e}")))?;
    Ok(TlogEntry {
        body: b64(&bundle.payload.body)?,
        integrated_time: bundle.payload.integrated_time,
        log_index: bundle.payload.log_index,
        log_id: hex::decode(&bundle.payload.log_id)
            .map_err(|e| ParseError(format!("bad logID: {e}")))?,
        signed_entry_timestamp: b64(&bundle.signed_entry_timestamp)?,
        proof: None,
    })
}

/// Builds a candidate from a legacy `.sig` layer.
pub(crate) fn from_signature_layer(
    annotations: &BTreeMap<String, String>,
    payload: Vec<u8>,
    label: String,
) -> Result<Candidate, ParseError> {
    let signature = annotations
        .get(ANNOTATION_SIGNATURE)
        .ok_or_else(|| ParseError("layer has no signature annotation".into()))?;
    Ok(Candidate {
        origin: Origin::LegacySignature,
        content: Content::SimpleSigning { payload },
        signatures: vec![b64(signature)?],
        certificate: annotations
            .get(ANNOTATION_CERTIFICATE)
            .map(|p| pem_cert(p))
            .transpose()?,
        tlog: annotations
            .get(ANNOTATION_BUNDLE)
            .map(|b| legacy_tlog(b))
            .transpose()?
            .into_iter()
            .collect(),
        timestamps: Vec::new(),
        label,
    })
}

/// A DSSE envelope as JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

fn envelope_parts(envelope: &Envelope) -> Result<(Content, Vec<Vec<u8>>), ParseError> {
    let signatures = envelope
        .signatures
        .iter()
        .map(|s| b64(&s.sig))
        .collect::<Result<Vec<_>, _>>()?;
    if signatures.is_empty() {
        return Err(ParseError("DSSE envelope has no signatures".into()));
    }
    Ok((
        Content::Dsse {
            payload_type: envelope.payload_type.clone(),
            payload: b64(&envelope.payload)?,
        },
        signatures,
    ))
}

/// Builds a candidate from a legacy `.att` layer (a DSSE envelope blob).
pub(crate) fn from_attestation_layer(
    annotations: &BTreeMap<String, String>,
    blob: &[u8],
    label: String,
) -> Result<Candidate, ParseError> {
    let envelope: Envelope =
        serde_json::from_slice(blob).map_err(|e| ParseError(format!("bad DSSE envelope: {e}")))?;
    let (content, signatures) = envelope_parts(&envelope)?;
    Ok(Candidate {
        origin: Origin::LegacyAttestation,
        content,
        signatures,
        certificate: annotations
            .get(ANNOTATION_CERTIFICATE)
            .map(|p| pem_cert(p))
            .transpose()?,
        tlog: annotations
            .get(ANNOTATION_BUNDLE)
            .map(|b| legacy_tlog(b))
            .transpose()?
            .into_iter()
            .collect(),
        timestamps: Vec::new(),
        label,
    })
}

/// A Sigstore bundle (protobuf-specs `Bundle`, proto3 JSON).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
    #[serde(default)]
    message_signature: Option<MessageSignature>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<CertChain>,
    #[serde(default)]
    tlog_entries: Vec<BundleTlogEntry>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<SignedTimestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedTimestamp {
    signed_timestamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Debug, Deserialize)]
struct CertChain {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleTlogEntry {
    log_index: StringOrInt,
    log_id: LogId,
    #[serde(default)]
    integrated_time: Option<StringOrInt>,
    #[serde(default)]
    inclusion_promise: Option<InclusionPromise>,
    #[serde(default)]
    inclusion_proof: Option<BundleProof>,
    canonicalized_body: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleProof {
    log_index: StringOrInt,
    root_hash: String,
    tree_size: StringOrInt,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default)]
    checkpoint: Option<BundleCheckpoint>,
}

#[derive(Debug, Deserialize)]
struct BundleCheckpoint {
    envelope: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionPromise {
    signed_entry_timestamp: String,
}

/// proto3 JSON writes int64 as strings; accept numbers too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrInt {
    S(String),
    I(i64),
}

impl StringOrInt {
    fn value(&self) -> Result<i64, ParseError> {
        match self {
            StringOrInt::I(i) => Ok(*i),
            StringOrInt::S(s) => s
                .parse()
                .map_err(|_| ParseError(format!("bad integer {s:?}"))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
    signature: String,
}

#[derive(Debug, Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

/// Builds a candidate from a Sigstore bundle's JSON.
pub(crate) fn from_bundle(json: &[u8], label: String) -> Result<Candidate, ParseError> {
    let bundle: Bundle = serde_json::from_slice(json)
        .map_err(|e| ParseError(format!("bad Sigstore bundle: {e}")))?;
    if !is_bundle_media_type(&bundle.media_type) {
        return Err(ParseError(format!(
            "unknown bundle media type {:?}",
            bundle.media_type
        )));
    }
    let material = &bundle.verification_material;
    let certificate = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(c), _) => Some(b64(&c.raw_bytes)?),
        (None, Some(chain)) => chain
            .certificates
            .first()
            .map(|c| b64(&c.raw_bytes))
            .transpose()?,
        (None, None) => None,
    };
    let tlog = material
        .tlog_entries
        .iter()
        .take(MAX_PER_BUNDLE)
        .map(|e| -> Result<TlogEntry, ParseError> {
            let proof = e
                .inclusion_proof
                .as_ref()
                .map(|p| -> Result<InclusionProof, ParseError> {
                    Ok(InclusionProof {
                        log_index: p.log_index.value()?,
                        root_hash: b64(&p.root_hash)?,
                        tree_size: p.tree_size.value()?,
                        hashes: p
                            .hashes
                            .iter()
                            .map(|h| {
                                b64(h)?.try_into().map_err(|_| {
                                    ParseError("an inclusion proof hash is not 32 bytes".into())
                                })
                            })
                            .collect::<Result<_, _>>()?,
                        checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
                    })
                })
                .transpose()?;
            Ok(TlogEntry {
                body: b64(&e.canonicalized_body)?,
                integrated_time: match &e.integrated_time {
                    Some(t) => t.value()?,
                    None => 0,
                },
                log_index: e.log_index.value()?,
                log_id: b64(&e.log_id.key_id)?,
                signed_entry_timestamp: match &e.inclusion_promise {
                    Some(p) => b64(&p.signed_entry_timestamp)?,
                    None => Vec::new(),
                },
                proof,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // From v0.2 on, a bundle's log entries must carry their inclusion
    // proof (a SET alone is v0.1's form); such a bundle is malformed.
    if !bundle.media_type.ends_with("version=0.1") && tlog.iter().any(|e| e.proof.is_none()) {
        return Err(ParseError(format!(
            "a {} bundle's log entry has no inclusion proof",
            bundle.media_type
        )));
    }
    let timestamps = material
        .timestamp_verification_data
        .iter()
        .flat_map(|d| d.rfc3161_timestamps.iter())
        .take(MAX_PER_BUNDLE)
        .map(|t| b64(&t.signed_timestamp))
        .collect::<Result<Vec<_>, _>>()?;
    let (content, signatures) = match (&bundle.dsse_envelope, &bundle.message_signature) {
        (Some(envelope), None) => envelope_parts(envelope)?,
        (None, Some(m)) => {
            if m.message_digest.algorithm != "SHA2_256" {
                return Err(ParseError(format!(
                    "unsupported message digest algorithm {}",
                    m.message_digest.algorithm
                )));
            }
            let digest = b64(&m.message_digest.digest)?;
            (
                Content::MessageSignature {
                    digest: format!("sha256:{}", hex::encode(digest)),
                },
                vec![b64(&m.signature)?],
            )
        }
        _ => {
            return Err(ParseError(
                "bundle needs exactly one of dsseEnvelope and messageSignature".into(),
            ));
        }
    };
    Ok(Candidate {
        origin: Origin::Bundle,
        content,
        signatures,
        certificate,
        tlog,
        timestamps,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn legacy_layer_needs_signature() {
        let e = from_signature_layer(&BTreeMap::new(), b"{}".to_vec(), "x".into()).unwrap_err();
        assert!(e.0.contains("no signature"));
    }

    #[test]
    fn bundle_rejects_garbage() {
        assert!(from_bundle(b"{}", "x".into()).is_err());
        assert!(from_bundle(b"[1,2]", "x".into()).is_err());
        let no_content = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}"#;
        assert!(from_bundle(no_content, "x".into()).is_err());
    }
}
