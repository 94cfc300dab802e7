//! Public keys as Notary publishes them, the pinned root key, and signature
//! verification.
//!
//! | `keytype`    | `keyval.public` (after base64)        | signature `method`          |
//! |--------------|---------------------------------------|-----------------------------|
//! | `ecdsa`      | DER SubjectPublicKeyInfo (P-256/P-384) | `ecdsa`: raw `r‖s`, SHA-256 |
//! | `ecdsa-x509` | PEM certificate (first block is used) | `ecdsa`                     |
//! | `rsa`        | DER SubjectPublicKeyInfo (≥ 2048 bit) | `rsapss` (salt = 32) or `rsapkcs1v15`, SHA-256 |
//! | `rsa-x509`   | PEM certificate                       | `rsapss` or `rsapkcs1v15`   |
//! | `ed25519`    | the raw 32-byte key                   | `eddsa` (or `ed25519`)      |
//!
//! This mirrors Notary's verifiers (`tuf/signed/verifiers.go`): ECDSA
//! signatures must be exactly twice the curve's byte length (no ASN.1), and
//! the digest is always SHA-256. The method must be written in lower case, as
//! every Notary tool writes it (Notary itself lower-cases it first). The
//! legacy `pycrypto-pkcs#1 pss` method is not supported: such signatures
//! never count.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use der::asn1::BitString;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};

use super::canonical;
use super::error::{KeyError, KeyParseError};
use super::model::KeyJson;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The algorithm-specific public key material.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    /// Uncompressed SEC1 point on P-256.
    EcP256(Vec<u8>),
    /// Uncompressed SEC1 point on P-384.
    EcP384(Vec<u8>),
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// Raw Ed25519 key.
    Ed25519(Vec<u8>),
}

/// What a `*-x509` key's certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject common name, if any.
    pub common_name: Option<String>,
    /// notBefore.
    pub not_before: DateTime<Utc>,
    /// notAfter.
    pub not_after: DateTime<Utc>,
}

impl CertInfo {
    /// Whether `now` lies within [notBefore, notAfter].
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// A parsed, usable TUF public key.
#[derive(Debug, Clone)]
pub struct TufKey {
    /// The key id recomputed from the key's content.
    pub id: String,
    /// The `keytype` as published.
    pub keytype: String,
    /// Normalised DER SubjectPublicKeyInfo (for `*-x509`, the certificate's).
    pub spki_der: Vec<u8>,
    /// Certificate details for `*-x509` keys.
    pub cert: Option<CertInfo>,
    material: KeyMaterial,
}

impl TufKey {
    /// Parse a key object. Fails for unsupported key types and for key
    /// material that does not match its `keytype`.
    pub fn parse(json: &KeyJson) -> Result<TufKey, KeyError> {
        Self::parse_object(json).map_err(KeyError)
    }

    fn parse_object(json: &KeyJson) -> Result<TufKey, String> {
        let public = STANDARD
            .decode(json.keyval.public.as_bytes())
            .map_err(|e| format!("keyval.public is not base64: {e}"))?;
        let id = canonical::key_id(&json.keytype, &public)
            .ok_or_else(|| "key type cannot be canonicalised".to_owned())?;
        let (spki, cert) = match json.keytype.as_str() {
            "ecdsa" | "rsa" => (parse_spki(&public)?, None),
            "ecdsa-x509" | "rsa-x509" => {
                let text = std::str::from_utf8(&public)
                    .map_err(|_| "certificate PEM is not UTF-8".to_owned())?;
                let der = first_pem_block(text, "CERTIFICATE")
                    .ok_or_else(|| "no PEM CERTIFICATE block".to_owned())?;
                let (spki, info) = parse_certificate(&der)?;
                (spki, Some(info))
            }
            "ed25519" => {
                if public.len() != 32 {
                    return Err("ed25519 key is not 32 bytes".to_owned());
                }
                (ed25519_spki(&public)?, None)
            }
            other => return Err(format!("unsupported key type {other:?}")),
        };
        let (spki_der, material) = material_of(&spki)?;
        let family_ok = match json.keytype.as_str() {
            "ecdsa" | "ecdsa-x509" => {
                matches!(material, KeyMaterial::EcP256(_) | KeyMaterial::EcP384(_))
            }
            "rsa" | "rsa-x509" => matches!(material, KeyMaterial::Rsa(_)),
            _ => matches!(material, KeyMaterial::Ed25519(_)),
        };
        if !family_ok {
            return Err(format!(
                "key material does not match key type {:?}",
                json.keytype
            ));
        }
        Ok(TufKey {
            id,
            keytype: json.keytype.clone(),
            spki_der,
            cert,
            material,
        })
    }

    /// Verify `sig` (already base64-decoded) made with `method` over `msg`.
    pub fn verify(&self, method: &str, sig: &[u8], msg: &[u8]) -> bool {
        match (&self.material, method) {
            (KeyMaterial::EcP256(point), "ecdsa") => {
                sig.len() == 64
                    && UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(msg, sig)
                        .is_ok()
            }
            (KeyMaterial::EcP384(point), "ecdsa") => {
                sig.len() == 96
                    && UnparsedPublicKey::new(&signature::ECDSA_P384_SHA256_ASN1, point)
                        .verify(msg, &raw_ecdsa_to_der(sig))
                        .is_ok()
            }
            (KeyMaterial::Rsa(pkcs1), "rsapss") => {
                UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, pkcs1)
                    .verify(msg, sig)
                    .is_ok()
            }
            (KeyMaterial::Rsa(pkcs1), "rsapkcs1v15") => {
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pkcs1)
                    .verify(msg, sig)
                    .is_ok()
            }
            (KeyMaterial::Ed25519(raw), "eddsa" | "ed25519") => {
                sig.len() == 64
                    && UnparsedPublicKey::new(&signature::ED25519, raw)
                        .verify(msg, sig)
                        .is_ok()
            }
            _ => false,
        }
    }
}

/// The root public key a user trusts for a repository (Connaisseur's
/// `trustRoots[].key`), compared by its SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedKey {
    spki_der: Vec<u8>,
}

impl PinnedKey {
    /// Parse a PEM `PUBLIC KEY` (SubjectPublicKeyInfo; ECDSA P-256/P-384, RSA
    /// or Ed25519). A PEM `CERTIFICATE` is accepted too: its public key is
    /// pinned.
    pub fn from_pem(pem: &str) -> Result<PinnedKey, KeyParseError> {
        let spki = if let Some(der) = first_pem_block(pem, "PUBLIC KEY") {
            parse_spki(&der).map_err(KeyParseError)?
        } else if let Some(der) = first_pem_block(pem, "CERTIFICATE") {
            parse_certificate(&der).map_err(KeyParseError)?.0
        } else {
            return Err(KeyParseError(
                "no PEM PUBLIC KEY or CERTIFICATE block found".to_owned(),
            ));
        };
        let (spki_der, _) = material_of(&spki).map_err(KeyParseError)?;
        Ok(PinnedKey { spki_der })
    }

    /// Build from DER SubjectPublicKeyInfo bytes.
    pub fn from_spki_der(der: &[u8]) -> Result<PinnedKey, KeyParseError> {
        let spki = parse_spki(der).map_err(KeyParseError)?;
        let (spki_der, _) = material_of(&spki).map_err(KeyParseError)?;
        Ok(PinnedKey { spki_der })
    }

    /// The normalised DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER: a stable name
    /// for the pin (use it in cache keys next to the GUN).
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.spki_der))
    }

    /// Whether `key` carries this public key.
    pub(crate) fn matches(&self, key: &TufKey) -> bool {
        key.spki_der == self.spki_der
    }
}

fn parse_spki(der: &[u8]) -> Result<SubjectPublicKeyInfoOwned, String> {
    SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| format!("bad SubjectPublicKeyInfo: {e}"))
}

fn parse_certificate(der: &[u8]) -> Result<(SubjectPublicKeyInfoOwned, CertInfo), String> {
    let cert =
        x509_cert::Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let tbs = cert.tbs_certificate();
    let common_name = tbs
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned());
    let validity = tbs.validity();
    let to_chrono = |t: x509_cert::time::Time| {
        let d = t.to_unix_duration();
        i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, d.subsec_nanos()))
            .ok_or_else(|| "certificate time out of range".to_owned())
    };
    let info = CertInfo {
        common_name,
        not_before: to_chrono(validity.not_before)?,
        not_after: to_chrono(validity.not_after)?,
    };
    Ok((tbs.subject_public_key_info().clone(), info))
}

fn ed25519_spki(raw: &[u8]) -> Result<SubjectPublicKeyInfoOwned, String> {
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: OID_ED25519,
            parameters: None,
        },
        subject_public_key: BitString::from_bytes(raw).map_err(|e| e.to_string())?,
    })
}

/// Check the algorithm, extract the key material and re-encode the SPKI.
fn material_of(spki: &SubjectPublicKeyInfoOwned) -> Result<(Vec<u8>, KeyMaterial), String> {
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "public key bit string has unused bits".to_owned())?
        .to_vec();
    let material = match spki.algorithm.oid {
        OID_EC_PUBLIC_KEY => {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| "EC key without curve".to_owned())?
                .decode_as()
                .map_err(|e| format!("EC curve is not a named curve: {e}"))?;
            match curve {
                OID_P256 if key.len() == 65 && key[0] == 4 => {
                    signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key)
                        .map_err(|e| format!("unusable P-256 key: {e}"))?;
                    KeyMaterial::EcP256(key)
                }
                OID_P384 if key.len() == 97 && key[0] == 4 => {
                    signature::ParsedPublicKey::new(&signature::ECDSA_P384_SHA256_ASN1, &key)
                        .map_err(|e| format!("unusable P-384 key: {e}"))?;
                    KeyMaterial::EcP384(key)
                }
                OID_P256 | OID_P384 => return Err("EC point is not uncompressed".to_owned()),
                other => return Err(format!("unsupported EC curve {other}")),
            }
        }
        OID_RSA => {
            // Reject keys aws-lc-rs cannot use (this also enforces 2048 to
            // 8192 bits, as Notary requires at least 2048).
            signature::ParsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, &key)
                .map_err(|e| format!("unusable RSA key: {e}"))?;
            KeyMaterial::Rsa(key)
        }
        OID_ED25519 if key.len() == 32 => KeyMaterial::Ed25519(key),
        OID_ED25519 => return Err("ed25519 key is not 32 bytes".to_owned()),
        other => return Err(format!("unsupported public key algorithm {other}")),
    };
    let der = spki
        .to_der()
        .map_err(|e| format!("cannot re-encode SubjectPublicKeyInfo: {e}"))?;
    Ok((der, material))
}

/// Encode a raw fixed-length ECDSA signature `r‖s` as an ASN.1 DER
/// `SEQUENCE { INTEGER r, INTEGER s }`.
fn raw_ecdsa_to_der(sig: &[u8]) -> Vec<u8> {
    fn int(bytes: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            let mut v = vec![0u8];
            v.extend_from_slice(&trimmed);
            v
        } else if trimmed.is_empty() {
            vec![0u8]
        } else {
            trimmed
        };
        let mut out = vec![0x02, body.len() as u8];
        out.append(&mut body);
        out
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    let mut body = int(r);
    body.extend(int(s));
    let mut out = vec![0x30];
    if body.len() < 0x80 {
        out.push(body.len() as u8);
    } else {
        out.push(0x81);
        out.push(body.len() as u8);
    }
    out.extend(body);
    out
}

/// The DER of the first PEM block with `label` in `text` (headers such as
/// `Proc-Type:` are skipped; whitespace in the body is ignored).
pub(crate) fn first_pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let rest = &text[start..];
    let stop = rest.find(&end)?;
    let body: String = rest[..stop]
        .lines()
        .filter(|l| !l.contains(':'))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_conversion_of_raw_signature() {
        let mut raw = vec![0u8; 96];
        raw[0] = 0x80; // r needs a leading zero
        raw[95] = 1; // s = 1 after stripping zeros
        let der = raw_ecdsa_to_der(&raw);
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 49, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert_eq!(der[1] as usize, der.len() - 2);
    }

    #[test]
    fn pem_block_extraction() {
        let pem = "junk\n-----BEGIN PUBLIC KEY-----\nAQID\nBA==\n-----END PUBLIC KEY-----\n";
        assert_eq!(first_pem_block(pem, "PUBLIC KEY"), Some(vec![1, 2, 3, 4]));
        assert_eq!(first_pem_block(pem, "CERTIFICATE"), None);
        assert_eq!(first_pem_block("-----BEGIN X-----", "X"), None);
    }

    #[test]
    fn pinned_key_rejects_garbage() {
        assert!(PinnedKey::from_pem("nothing").is_err());
        assert!(
            PinnedKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }
}
