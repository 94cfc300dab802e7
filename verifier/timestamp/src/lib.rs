//! RFC 3161 timestamp tokens, verified offline.
//!
//! A timestamp token is a CMS `SignedData` (RFC 5652) whose encapsulated
//! content is a `TSTInfo` (RFC 3161 §2.4.2): the time, and a hash of what was
//! stamped (the *message imprint*). [`verify`] checks, in order:
//!
//! 1. the structure: `ContentInfo` of type `signedData`, encapsulating
//!    `id-ct-TSTInfo` (else [`TimestampError::Malformed`]);
//! 2. the message imprint: its hash algorithm (SHA-256, -384 or -512) over
//!    the stamped bytes equals `hashedMessage` ([`TimestampError::Imprint`]);
//! 3. exactly one signer, found among the token's certificates by issuer and
//!    serial number or by subject key identifier;
//! 4. the signed attributes: `content-type` is `id-ct-TSTInfo`,
//!    `message-digest` is the digest of the `TSTInfo`, and the ESS
//!    `signing-certificate-v2` (required) hash names the signer's
//!    certificate;
//! 5. the signer's signature over the DER of the signed attributes (ECDSA
//!    P-256/P-384, RSA PKCS#1 v1.5; RSASSA-PSS is refused, never skipped);
//! 6. the signer's certificate has a critical extended key usage of
//!    `id-kp-timeStamping` alone, and chains through
//!    the token's other certificates to one of the caller's roots, valid at
//!    the stamped time (rustls-webpki; a CA certificate without an extended
//!    key usage is unrestricted, one with it must list timeStamping).
//!
//! Nothing here reads a clock or the network: the caller passes the roots
//! and decides what the time means. Revocation is not checked (it needs the
//! network to reach the CA at admission time).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use chrono::{DateTime, Utc};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{GeneralizedTime, Int, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Sequence, Tagged};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::Digest as _;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), DER content bytes.
const KP_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// A verified timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// The time the TSA stamped (`genTime`).
    pub time: DateTime<Utc>,
    /// How far the true time may lie from `time`, either way: the token's
    /// `accuracy`, else one second under the ETSI baseline policy
    /// (0.4.0.2023.1.1), else zero.
    pub accuracy: chrono::Duration,
    /// The TSA certificate's subject, for messages.
    pub tsa: String,
}

impl Timestamp {
    /// The earliest time the stamp may mean.
    pub fn earliest(&self) -> DateTime<Utc> {
        self.time - self.accuracy
    }

    /// The latest time the stamp may mean.
    pub fn latest(&self) -> DateTime<Utc> {
        self.time + self.accuracy
    }
}

/// Why a timestamp token does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not a well-formed RFC 3161 token.
    #[error("malformed timestamp token: {0}")]
    Malformed(String),
    /// The token stamps other bytes than the ones given.
    #[error("the timestamp's message imprint does not cover this signature")]
    Imprint,
    /// An algorithm this verifier does not accept.
    #[error("unsupported timestamp algorithm: {0}")]
    Unsupported(String),
    /// The TSA's signature or signed attributes do not verify.
    #[error("the timestamp's signature does not verify: {0}")]
    Signature(String),
    /// The TSA certificate is not trusted (chain, validity, EKU).
    #[error("the timestamping authority is not trusted: {0}")]
    Untrusted(String),
}

/// RFC 3161 `MessageImprint`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// RFC 3161 `TSTInfo`, as far as it is checked (the rest is skipped).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: Int,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: GeneralizedTime,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "default_false")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<der::Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// RFC 3161 `Accuracy` (the module uses implicit tags).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct Accuracy {
    #[asn1(optional = "true")]
    seconds: Option<u64>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    millis: Option<u32>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    micros: Option<u32>,
}

/// ETSI EN 319 421 baseline time-stamp policy: accuracy of one second.
const BASELINE_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

fn default_false() -> bool {
    false
}

fn malformed(e: impl std::fmt::Display) -> TimestampError {
    TimestampError::Malformed(e.to_string())
}

/// A hash by its OID.
fn digest(alg: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, TimestampError> {
    Ok(match *alg {
        ID_SHA256 => sha2::Sha256::digest(data).to_vec(),
        ID_SHA384 => sha2::Sha384::digest(data).to_vec(),
        ID_SHA512 => sha2::Sha512::digest(data).to_vec(),
        other => return Err(TimestampError::Unsupported(format!("hash {other}"))),
    })
}

/// Verifies `token` (DER) as a timestamp over `stamped`, issued by a TSA
/// chaining to one of `roots` (DER certificates).
pub fn verify(
    token: &[u8],
    stamped: &[u8],
    roots: &[Vec<u8>],
) -> Result<Timestamp, TimestampError> {
    verify_with(token, stamped, roots, &[])
}

/// The `TimeStampToken` inside a DER `TimeStampResp` (RFC 3161 §2.4.2, what
/// Sigstore bundles carry as `signedTimestamp`); a bare token is returned
/// as it is. A response whose status is not granted (0) or
/// grantedWithMods (1), or without a token, is malformed.
pub fn token_from_response(der: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let parts: Vec<der::Any> = Vec::from_der(der).map_err(malformed)?;
    match parts.first().map(|p| p.tag()) {
        // A ContentInfo starts with its content type.
        Some(der::Tag::ObjectIdentifier) => Ok(der.to_vec()),
        Some(der::Tag::Sequence) => {
            let status: Vec<der::Any> = parts[0].decode_as().map_err(malformed)?;
            let code = status
                .first()
                .and_then(|s| s.decode_as::<Int>().ok())
                .ok_or_else(|| malformed("the response has no status"))?;
            if !matches!(code.as_bytes(), [0] | [1]) {
                return Err(malformed("the response's status is not granted"));
            }
            parts
                .get(1)
                .ok_or_else(|| malformed("the response holds no token"))?
                .to_der()
                .map_err(malformed)
        }
        _ => Err(malformed("neither a TimeStampResp nor a TimeStampToken")),
    }
}

/// [`verify`], with `known` certificates (DER) that the token may leave
/// out: the TSA's own certificate and intermediates as a trust root lists
/// them (Sigstore's `timestampAuthorities[].certChain`). They are
/// candidates for the signer and the chain, never anchors.
pub fn verify_with(
    token: &[u8],
    stamped: &[u8],
    roots: &[Vec<u8>],
    known: &[Vec<u8>],
) -> Result<Timestamp, TimestampError> {
    let info = ContentInfo::from_der(token).map_err(malformed)?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(malformed("not a signedData"));
    }
    let signed: SignedData = info.content.decode_as().map_err(malformed)?;
    if signed.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(malformed("does not encapsulate a TSTInfo"));
    }
    let econtent = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| malformed("no TSTInfo"))?;
    let tst_der = econtent
        .decode_as::<OctetString>()
        .map_err(malformed)?
        .into_bytes();
    let tst = TstInfo::from_der(&tst_der).map_err(malformed)?;
    if tst.version.as_bytes() != [1] {
        return Err(malformed("TSTInfo version is not 1"));
    }

    // 2. The imprint covers the stamped bytes.
    let imprint = digest(&tst.message_imprint.hash_algorithm.oid, stamped)?;
    if imprint != tst.message_imprint.hashed_message.as_bytes() {
        return Err(TimestampError::Imprint);
    }

    // 3. One signer, and its certificate.
    let signers: Vec<_> = signed.signer_infos.0.iter().collect();
    let [signer] = signers.as_slice() else {
        return Err(malformed(format!(
            "{} signers, expected one",
            signers.len()
        )));
    };
    let known: Vec<Certificate> = known
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    let certs: Vec<&Certificate> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            CertificateChoices::Other(_) => None,
        })
        .chain(known.iter())
        .collect();
    let signer_cert = certs
        .iter()
        .copied()
        .find(|c| identifies(&signer.sid, c))
        .ok_or_else(|| malformed("the signer's certificate is not in the token"))?;
    let signer_der = signer_cert.to_der().map_err(malformed)?;

    // 4. Signed attributes.
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("no signed attributes"))?;
    let attr = |oid: ObjectIdentifier| attrs.iter().find(|a| a.oid == oid);
    let content_type = attr(ID_CONTENT_TYPE)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
    if content_type != Some(ID_CT_TST_INFO) {
        return Err(TimestampError::Signature(
            "the content-type attribute is not id-ct-TSTInfo".into(),
        ));
    }
    let message_digest = attr(ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| TimestampError::Signature("no message-digest attribute".into()))?;
    if digest(&signer.digest_alg.oid, &tst_der)? != message_digest.as_bytes() {
        return Err(TimestampError::Signature(
            "the message-digest attribute does not match the TSTInfo".into(),
        ));
    }
    check_signing_certificate(attr(ID_SIGNING_CERTIFICATE_V2), &signer_der)?;

    // 5. The signature over the DER of the signed attributes.
    let signed_attrs_der = attrs.to_der().map_err(malformed)?;
    verify_signature(
        signer_cert,
        &signer.signature_algorithm,
        &signer.digest_alg.oid,
        &signed_attrs_der,
        signer.signature.as_bytes(),
    )?;

    // 6. The TSA's certificate: timeStamping, and a chain to the roots at
    //    the stamped time.
    let time: DateTime<Utc> = tst.gen_time.to_system_time().into();
    if !has_only_time_stamping_eku(signer_cert) {
        return Err(TimestampError::Untrusted(
            "the TSA certificate's extended key usage is not a critical timeStamping alone".into(),
        ));
    }
    let anchors = roots
        .iter()
        .map(|r| {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(r.as_slice()))
                .map(|a| a.to_owned())
                .map_err(|e| TimestampError::Untrusted(format!("a configured TSA root: {e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates: Vec<CertificateDer<'static>> = certs
        .iter()
        .filter(|c| !std::ptr::eq(**c, signer_cert))
        .filter_map(|c| c.to_der().ok())
        .map(CertificateDer::from)
        .collect();
    let leaf_der = CertificateDer::from(signer_der.as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| TimestampError::Untrusted(format!("{e:?}")))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(time.timestamp()).unwrap_or(0),
    ));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        at,
        webpki::KeyUsage::required_if_present(KP_TIME_STAMPING),
        None,
        None,
    )
    .map_err(|e| TimestampError::Untrusted(format!("{e:?}")))?;
    let accuracy = match &tst.accuracy {
        Some(a) => {
            chrono::Duration::seconds(
                i64::try_from(a.seconds.unwrap_or(0)).unwrap_or(i64::MAX / 1_000_000),
            ) + chrono::Duration::milliseconds(i64::from(a.millis.unwrap_or(0)))
                + chrono::Duration::microseconds(i64::from(a.micros.unwrap_or(0)))
        }
        None if tst.policy == BASELINE_POLICY => chrono::Duration::seconds(1),
        None => chrono::Duration::zero(),
    };
    Ok(Timestamp {
        time,
        accuracy,
        tsa: signer_cert.tbs_certificate().subject().to_string(),
    })
}

/// Whether `sid` names `cert`.
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(is) => {
            is.issuer == *tbs.issuer() && is.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id.to_string() == "2.5.29.14")
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|k| k.as_bytes() == ski.0.as_bytes()),
    }
}

/// ESS `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2,
/// ... }` with `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256,
/// certHash OCTET STRING, issuerSerial OPTIONAL }` (RFC 5035): required, and
/// the first certificate hash must be the signer's. (The SHA-1 based v1
/// attribute alone is not accepted, as the Notary Project requires.)
fn check_signing_certificate(
    v2: Option<&x509_cert::attr::Attribute>,
    signer_der: &[u8],
) -> Result<(), TimestampError> {
    let bad = |m: &str| TimestampError::Signature(format!("signing-certificate-v2 attribute: {m}"));
    let attr = v2.ok_or_else(|| bad("missing"))?;
    let value = attr.values.iter().next().ok_or_else(|| bad("empty"))?;
    let outer: Vec<der::Any> = value.decode_as().map_err(|_| bad("not a sequence"))?;
    let certs: Vec<der::Any> = outer
        .first()
        .ok_or_else(|| bad("no certificates"))?
        .decode_as()
        .map_err(|_| bad("not a sequence of certificate ids"))?;
    let first: Vec<der::Any> = certs
        .first()
        .ok_or_else(|| bad("no certificate id"))?
        .decode_as()
        .map_err(|_| bad("malformed certificate id"))?;
    let (alg, hash) = match first.first() {
        Some(a) if a.tag() == der::Tag::Sequence => {
            let alg: AlgorithmIdentifierOwned = a.decode_as().map_err(|_| bad("bad algorithm"))?;
            let hash: OctetString = first
                .get(1)
                .ok_or_else(|| bad("no hash"))?
                .decode_as()
                .map_err(|_| bad("bad hash"))?;
            (alg.oid, hash)
        }
        Some(h) => (ID_SHA256, h.decode_as().map_err(|_| bad("bad hash"))?),
        None => return Err(bad("empty certificate id")),
    };
    if digest(&alg, signer_der)? != hash.as_bytes() {
        return Err(bad("it names another certificate"));
    }
    Ok(())
}

/// Verifies the TSA's signature with its certificate's key.
fn verify_signature(
    cert: &Certificate,
    algorithm: &AlgorithmIdentifierOwned,
    digest_alg: &ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TimestampError> {
    use aws_lc_rs::signature as sig;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let params: &'static dyn sig::VerificationAlgorithm =
        match (algorithm.oid, spki.algorithm.oid, curve) {
            (ECDSA_SHA256, EC_PUBLIC_KEY, Some(P256)) => &sig::ECDSA_P256_SHA256_ASN1,
            (ECDSA_SHA384, EC_PUBLIC_KEY, Some(P256)) => &sig::ECDSA_P256_SHA384_ASN1,
            (ECDSA_SHA256, EC_PUBLIC_KEY, Some(P384)) => &sig::ECDSA_P384_SHA256_ASN1,
            (ECDSA_SHA384, EC_PUBLIC_KEY, Some(P384)) => &sig::ECDSA_P384_SHA384_ASN1,
            (ECDSA_SHA512, EC_PUBLIC_KEY, Some(P384)) => &sig::ECDSA_P384_SHA512_ASN1,
            (RSA_SHA256, RSA_ENCRYPTION, _) => &sig::RSA_PKCS1_2048_8192_SHA256,
            (RSA_SHA384, RSA_ENCRYPTION, _) => &sig::RSA_PKCS1_2048_8192_SHA384,
            (RSA_SHA512, RSA_ENCRYPTION, _) => &sig::RSA_PKCS1_2048_8192_SHA512,
            // `rsaEncryption` as the signature algorithm: the digest algorithm
            // says which hash.
            (RSA_ENCRYPTION, RSA_ENCRYPTION, _) => match *digest_alg {
                ID_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                ID_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                ID_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                other => return Err(TimestampError::Unsupported(format!("RSA with {other}"))),
            },
            (alg, key_alg, _) => {
                return Err(TimestampError::Unsupported(format!(
                    "signature {alg} with a {key_alg} key"
                )));
            }
        };
    sig::UnparsedPublicKey::new(params, key)
        .verify(message, signature)
        .map_err(|_| TimestampError::Signature("the TSA's signature is invalid".into()))
}

/// Whether the certificate's extended key usage is critical and lists
/// timeStamping alone (RFC 3161 §2.3).
fn has_only_time_stamping_eku(cert: &Certificate) -> bool {
    let ekus: Vec<_> = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .collect();
    let [eku] = ekus.as_slice() else {
        return false;
    };
    eku.critical
        && x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
            .is_ok_and(|list| list.0.len() == 1 && list.0[0].as_bytes() == KP_TIME_STAMPING)
}
