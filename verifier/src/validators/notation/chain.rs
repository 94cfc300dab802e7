//! The signing certificate chain: its structure and the certificate
//! requirements of the Notary Project signature specification, the key's
//! fit with the envelope's algorithm, and the envelope signature.
//!
//! The chain is checked as the envelope gives it (leaf first, each
//! certificate issued and signed by the next, ending in a self-signed
//! root); which certificate of it is trusted is the authenticity step's
//! question ([`super::verify`]). Requirements:
//!
//! * CA certificates: `basicConstraints` critical with `cA`, path length
//!   respected; `keyUsage` critical with `keyCertSign`.
//! * The leaf: not a CA; `keyUsage` critical with `digitalSignature` and
//!   neither `keyCertSign` nor `cRLSign`; an `extendedKeyUsage`, if
//!   present, lists `codeSigning` and not `anyExtendedKeyUsage`.
//! * Any other critical extension fails the chain (it would mean a
//!   constraint this verifier does not enforce).
//! * Keys: ECDSA P-256/P-384/P-521 or RSA of at least 2048 bits; the
//!   leaf's key decides the envelope algorithm (P-256 ES256, P-384 ES384,
//!   P-521 ES512, RSA-2048 PS256, RSA-3072 PS384, RSA-4096 PS512).

use aws_lc_rs::signature as sig;
use chrono::{DateTime, Utc};
use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Encode, Sequence};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};

use super::envelope::Alg;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// Extensions that may be critical without changing what is checked.
const UNDERSTOOD: &[ObjectIdentifier] = &[
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    EXT_KEY_USAGE,
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.17"), // subjectAltName
    ObjectIdentifier::new_unwrap("2.5.29.32"), // certificatePolicies
];
const KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const ANY_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

/// A parsed, structurally valid chain.
#[derive(Debug)]
pub(crate) struct Chain {
    /// The certificates, leaf first.
    pub(crate) certs: Vec<Certificate>,
    /// Their DER, in the same order.
    pub(crate) ders: Vec<Vec<u8>>,
}

impl Chain {
    /// The signing certificate.
    pub(crate) fn leaf(&self) -> &Certificate {
        &self.certs[0]
    }

    /// The signer's identity for thresholds: SHA-256 of the leaf's SPKI.
    pub(crate) fn signer(&self) -> [u8; 32] {
        let spki = self
            .leaf()
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap_or_default();
        Sha256::digest(spki).into()
    }

    /// The window in which every certificate of the chain is valid.
    pub(crate) fn validity(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let mut from = DateTime::<Utc>::MIN_UTC;
        let mut until = DateTime::<Utc>::MAX_UTC;
        for cert in &self.certs {
            let (nb, na) = validity(cert);
            from = from.max(nb);
            until = until.min(na);
        }
        (from, until)
    }

    /// The first certificate not valid at `t`, described.
    pub(crate) fn invalid_at(&self, t: DateTime<Utc>) -> Option<String> {
        self.certs.iter().find_map(|c| {
            let (nb, na) = validity(c);
            if t < nb {
                Some(format!("{} is not valid before {nb}", subject(c)))
            } else if t > na {
                Some(format!("{} expired at {na}", subject(c)))
            } else {
                None
            }
        })
    }
}

/// A certificate's subject, for messages.
pub(crate) fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

fn validity(cert: &Certificate) -> (DateTime<Utc>, DateTime<Utc>) {
    let v = cert.tbs_certificate().validity();
    (
        v.not_before.to_system_time().into(),
        v.not_after.to_system_time().into(),
    )
}

/// Parses and checks the chain; the envelope's algorithm must fit the
/// leaf's key.
pub(crate) fn check(ders: &[Vec<u8>], alg: Alg) -> Result<Chain, String> {
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, d)| Certificate::from_der(d).map_err(|e| format!("certificate {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, cert) in certs.iter().enumerate() {
        let tbs = cert.tbs_certificate();
        for ext in tbs.extensions().into_iter().flatten() {
            if ext.critical && !UNDERSTOOD.contains(&ext.extn_id) {
                return Err(format!(
                    "{} has an unsupported critical extension {}",
                    subject(cert),
                    ext.extn_id
                ));
            }
        }
        key_kind(cert).map_err(|m| format!("{}: {m}", subject(cert)))?;
        let issuer = certs.get(i + 1).unwrap_or(cert);
        if tbs.issuer() != issuer.tbs_certificate().subject() {
            return Err(if i + 1 == certs.len() {
                format!(
                    "the chain does not end in a self-signed root ({})",
                    subject(cert)
                )
            } else {
                format!("{} is not issued by {}", subject(cert), subject(issuer))
            });
        }
        verify_issued(cert, issuer).map_err(|m| format!("{}: {m}", subject(cert)))?;
        if i == 0 {
            check_leaf(cert)?;
        } else {
            // Intermediates below this CA: certificates between it and the leaf.
            check_ca(cert, i - 1)?;
        }
    }
    let leaf_alg = match key_kind(&certs[0])? {
        KeyKind::Ec(c) if c == P256 => Alg::Es256,
        KeyKind::Ec(c) if c == P384 => Alg::Es384,
        KeyKind::Ec(_) => Alg::Es512,
        KeyKind::Rsa(2048) => Alg::Ps256,
        KeyKind::Rsa(3072) => Alg::Ps384,
        KeyKind::Rsa(4096) => Alg::Ps512,
        KeyKind::Rsa(bits) => {
            return Err(format!(
                "a {bits}-bit RSA signing key has no Notary Project algorithm"
            ));
        }
    };
    if leaf_alg != alg {
        return Err(format!(
            "the envelope says {alg:?} but the signing key calls for {leaf_alg:?}"
        ));
    }
    Ok(Chain {
        certs,
        ders: ders.to_vec(),
    })
}

fn extension<'a, T: Decode<'a>>(
    cert: &'a Certificate,
    oid: ObjectIdentifier,
) -> Result<Option<(bool, T)>, String> {
    let mut found = None;
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == oid {
            if found.is_some() {
                return Err(format!("{} repeats extension {oid}", subject(cert)));
            }
            let value = T::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("{}: extension {oid}: {e}", subject(cert)))?;
            found = Some((ext.critical, value));
        }
    }
    Ok(found)
}

fn check_leaf(cert: &Certificate) -> Result<(), String> {
    let who = subject(cert);
    if let Some((_, bc)) = extension::<BasicConstraints>(cert, BASIC_CONSTRAINTS)?
        && bc.ca
    {
        return Err(format!("the signing certificate {who} is a CA"));
    }
    match extension::<KeyUsage>(cert, KEY_USAGE)? {
        Some((true, ku))
            if ku.0.contains(KeyUsages::DigitalSignature)
                && !ku.0.contains(KeyUsages::KeyCertSign)
                && !ku.0.contains(KeyUsages::CRLSign) => {}
        _ => {
            return Err(format!(
                "the signing certificate {who} needs a critical keyUsage with digitalSignature only"
            ));
        }
    }
    if let Some((_, eku)) = extension::<ExtendedKeyUsage>(cert, EXT_KEY_USAGE)?
        && (!eku.0.contains(&KP_CODE_SIGNING) || eku.0.contains(&ANY_EKU))
    {
        return Err(format!(
            "the signing certificate {who}'s extended key usage does not allow code signing"
        ));
    }
    Ok(())
}

fn check_ca(cert: &Certificate, below: usize) -> Result<(), String> {
    let who = subject(cert);
    match extension::<BasicConstraints>(cert, BASIC_CONSTRAINTS)? {
        Some((true, bc)) if bc.ca => {
            if let Some(limit) = bc.path_len_constraint
                && below > usize::from(limit)
            {
                return Err(format!("{who}'s path length limit is exceeded"));
            }
        }
        _ => {
            return Err(format!(
                "{who} issues certificates but is not a critical CA"
            ));
        }
    }
    match extension::<KeyUsage>(cert, KEY_USAGE)? {
        Some((true, ku)) if ku.0.contains(KeyUsages::KeyCertSign) => Ok(()),
        _ => Err(format!("{who} needs a critical keyUsage with keyCertSign")),
    }
}

enum KeyKind {
    Ec(ObjectIdentifier),
    Rsa(usize),
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    exponent: UintRef<'a>,
}

fn key_kind(cert: &Certificate) -> Result<KeyKind, String> {
    let spki = cert.tbs_certificate().subject_public_key_info();
    match spki.algorithm.oid {
        EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or("an EC key without a named curve")?;
            if [P256, P384, P521].contains(&curve) {
                Ok(KeyKind::Ec(curve))
            } else {
                Err(format!("unsupported curve {curve}"))
            }
        }
        RSA_ENCRYPTION => {
            let key = RsaPublicKey::from_der(spki.subject_public_key.raw_bytes())
                .map_err(|e| format!("unreadable RSA key: {e}"))?;
            let n = key.modulus.as_bytes();
            let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
            if bits < 2048 {
                return Err(format!("a {bits}-bit RSA key is too small"));
            }
            Ok(KeyKind::Rsa(bits))
        }
        other => Err(format!("unsupported key type {other}")),
    }
}

/// Verifies that `issuer`'s key signed `cert`.
fn verify_issued(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let alg = cert.signature_algorithm().oid;
    let params: &'static dyn sig::VerificationAlgorithm = match (alg, key_kind(issuer)?) {
        (ECDSA_SHA256, KeyKind::Ec(P256)) => &sig::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, KeyKind::Ec(P256)) => &sig::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA512, KeyKind::Ec(P256)) => &sig::ECDSA_P256_SHA512_ASN1,
        (ECDSA_SHA256, KeyKind::Ec(P384)) => &sig::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, KeyKind::Ec(P384)) => &sig::ECDSA_P384_SHA384_ASN1,
        (ECDSA_SHA512, KeyKind::Ec(P384)) => &sig::ECDSA_P384_SHA512_ASN1,
        (ECDSA_SHA256, KeyKind::Ec(_)) => &sig::ECDSA_P521_SHA256_ASN1,
        (ECDSA_SHA384, KeyKind::Ec(_)) => &sig::ECDSA_P521_SHA384_ASN1,
        (ECDSA_SHA512, KeyKind::Ec(_)) => &sig::ECDSA_P521_SHA512_ASN1,
        (RSA_SHA256, KeyKind::Rsa(_)) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, KeyKind::Rsa(_)) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, KeyKind::Rsa(_)) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (other, _) => {
            return Err(format!(
                "unsupported certificate signature algorithm {other}"
            ));
        }
    };
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(|e| format!("re-encoding: {e}"))?;
    let key = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let signature = cert
        .signature()
        .as_bytes()
        .ok_or("the certificate signature has unused bits")?;
    sig::UnparsedPublicKey::new(params, key)
        .verify(&tbs, signature)
        .map_err(|_| {
            format!(
                "its signature does not verify with {}'s key",
                subject(issuer)
            )
        })
}

/// Verifies the envelope signature with the leaf's key.
pub(crate) fn verify_signature(chain: &Chain, alg: Alg, signed: &[u8], signature: &[u8]) -> bool {
    let params: &'static dyn sig::VerificationAlgorithm = match alg {
        Alg::Es256 => &sig::ECDSA_P256_SHA256_FIXED,
        Alg::Es384 => &sig::ECDSA_P384_SHA384_FIXED,
        Alg::Es512 => &sig::ECDSA_P521_SHA512_FIXED,
        Alg::Ps256 => &sig::RSA_PSS_2048_8192_SHA256,
        Alg::Ps384 => &sig::RSA_PSS_2048_8192_SHA384,
        Alg::Ps512 => &sig::RSA_PSS_2048_8192_SHA512,
    };
    let key = chain
        .leaf()
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    sig::UnparsedPublicKey::new(params, key)
        .verify(signed, signature)
        .is_ok()
}

/// Whether the leaf's subject has every (attribute OID, value) given.
pub(crate) fn subject_has(cert: &Certificate, attrs: &[(&str, String)]) -> bool {
    let mut present: Vec<(String, String)> = Vec::new();
    for atv in cert.tbs_certificate().subject().iter() {
        let value = atv
            .value
            .decode_as::<String>()
            .ok()
            .or_else(|| {
                atv.value
                    .decode_as::<der::asn1::PrintableStringRef<'_>>()
                    .ok()
                    .map(|s| s.as_str().to_string())
            })
            .or_else(|| {
                atv.value
                    .decode_as::<der::asn1::Ia5StringRef<'_>>()
                    .ok()
                    .map(|s| s.as_str().to_string())
            });
        if let Some(v) = value {
            present.push((atv.oid.to_string(), v));
        }
    }
    attrs
        .iter()
        .all(|(oid, value)| present.iter().any(|(o, v)| o == oid && v == value))
}
