//! Keyless (Fulcio) certificates: the chain to the configured Fulcio roots,
//! the identity (OIDC issuer extension and SAN), and the embedded SCT
//! (RFC 6962), all checked offline at the log's integration time.

use std::collections::HashMap;

use super::trust_root::{CaCert, LogKey};
use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, UnixTime};
use sigstore::crypto::{CosignVerificationKey, Signature};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

/// Fulcio's issuer extension (v1): the issuer URL as raw bytes.
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's issuer extension (v2): a DER UTF8String.
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// RFC 6962 embedded SCT list.
const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";
/// The DER of the SCT list OID (for removing the extension from the TBS).
const SCT_OID_DER: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02,
];
/// The Extended Key Usage extension.
const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER content bytes.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Why a certificate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertError {
    /// Not a parsable X.509 certificate.
    #[error("unparsable certificate: {0}")]
    Parse(String),
    /// Does not chain to a configured Fulcio root at the integration time.
    #[error(
        "certificate does not chain to a trusted Fulcio root at the signing time (a verified SET or timestamp): {0}"
    )]
    Chain(String),
    /// Missing or invalid SCT.
    #[error("certificate transparency: {0}")]
    Sct(String),
}

/// A parsed signing certificate.
#[derive(Debug, Clone)]
pub(crate) struct SigningCert {
    der: Vec<u8>,
    cert: Certificate,
}

/// The identity a Fulcio certificate binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The OIDC issuer.
    pub(crate) issuer: Option<String>,
    /// The SAN values (emails and URIs).
    pub(crate) subjects: Vec<String>,
}

impl SigningCert {
    /// Parses a DER certificate.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        Ok(SigningCert {
            der: der.to_vec(),
            cert,
        })
    }

    /// The certificate DER.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// The DER SubjectPublicKeyInfo of the certified key.
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>, CertError> {
        self.cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| CertError::Parse(e.to_string()))
    }

    /// The public key, for verifying the signature it vouches for.
    pub(crate) fn public_key(&self) -> Result<CosignVerificationKey, CertError> {
        let spki = self.spki_der()?;
        CosignVerificationKey::try_from_der(&spki)
            .map_err(|e| CertError::Parse(format!("unsupported key: {e}")))
    }

    /// The issuer extension and the SAN entries.
    pub(crate) fn identity(&self) -> Identity {
        let mut identity = Identity {
            issuer: None,
            subjects: Vec::new(),
        };
        let Some(extensions) = self.cert.tbs_certificate().extensions() else {
            return identity;
        };
        let mut issuer_v1 = None;
        for ext in extensions.iter() {
            let oid = ext.extn_id.to_string();
            let value = ext.extn_value.as_bytes();
            if oid == OID_ISSUER_V2 {
                if let Ok(s) = der::asn1::Utf8StringRef::from_der(value) {
                    identity.issuer = Some(s.as_str().to_string());
                }
            } else if oid == OID_ISSUER_V1 {
                issuer_v1 = std::str::from_utf8(value).ok().map(str::to_string);
            } else if oid == "2.5.29.17"
                && let Ok(san) = SubjectAltName::from_der(value)
            {
                for name in san.0 {
                    match name {
                        GeneralName::Rfc822Name(s) => identity.subjects.push(s.to_string()),
                        GeneralName::UniformResourceIdentifier(s) => {
                            identity.subjects.push(s.to_string())
                        }
                        _ => {}
                    }
                }
            }
        }
        if identity.issuer.is_none() {
            identity.issuer = issuer_v1;
        }
        identity
    }

    /// Whether the certificate's Extended Key Usage extension is present and
    /// lists codeSigning.
    pub(crate) fn has_code_signing_eku(&self) -> bool {
        let Some(extensions) = self.cert.tbs_certificate().extensions() else {
            return false;
        };
        extensions
            .iter()
            .filter(|ext| ext.extn_id.to_string() == OID_EXTENDED_KEY_USAGE)
            .any(|ext| {
                ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                    .is_ok_and(|eku| eku.0.iter().any(|oid| oid.as_bytes() == EKU_CODE_SIGNING))
            })
    }

    /// Verifies the chain to those `fulcio_certs` whose authority was valid
    /// at `unix_time` (self-signed ones are anchors, the others
    /// intermediates), at `unix_time`, for code signing. Returns the DER
    /// SPKI of the leaf's issuer.
    ///
    /// Extended key usage, as cosign (Go's crypto/x509) and OpenSSL read it:
    /// the leaf must list codeSigning; a CA certificate without the
    /// extension is unrestricted, and one with it must list codeSigning
    /// (a CA limited to, say, serverAuth cannot vouch for a signer).
    pub(crate) fn verify_chain(
        &self,
        fulcio_certs: &[CaCert],
        unix_time: i64,
    ) -> Result<Vec<u8>, CertError> {
        let chain_err = |e: String| CertError::Chain(e);
        let mut valid_then: Vec<&[u8]> = Vec::new();
        for cert in fulcio_certs {
            if cert.valid.contains(unix_time) && !valid_then.contains(&cert.der.as_slice()) {
                valid_then.push(&cert.der);
            }
        }
        if valid_then.is_empty() {
            return Err(chain_err(format!(
                "no trusted Fulcio certificate authority was valid at {unix_time}"
            )));
        }
        let mut anchors = Vec::new();
        let mut intermediates = Vec::new();
        for &der in &valid_then {
            let parsed = Certificate::from_der(der).map_err(|e| chain_err(e.to_string()))?;
            if parsed.tbs_certificate().subject() == parsed.tbs_certificate().issuer() {
                let anchor = webpki::anchor_from_trusted_cert(&CertificateDer::from(der))
                    .map_err(|e| chain_err(format!("{e:?}")))?
                    .to_owned();
                anchors.push(anchor);
            } else {
                intermediates.push(CertificateDer::from(der.to_vec()));
            }
        }
        if !self.has_code_signing_eku() {
            return Err(chain_err(
                "the certificate's extended key usage does not include codeSigning".into(),
            ));
        }
        let leaf_der = CertificateDer::from(self.der.as_slice());
        let leaf =
            webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| chain_err(format!("{e:?}")))?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(unix_time).unwrap_or(0),
        ));
        let path = leaf
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                time,
                // Present on the leaf (checked above); on a CA it restricts
                // only when present.
                webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
                None,
                None,
            )
            .map_err(|e| chain_err(format!("{e:?}")))?;
        // The leaf's issuer: the first intermediate, else the anchor.
        let issuer_der = match path.intermediate_certificates().next() {
            Some(c) => c.der().to_vec(),
            None => {
                let leaf_issuer = self.cert.tbs_certificate().issuer();
                valid_then
                    .iter()
                    .find(|d| {
                        Certificate::from_der(d)
                            .is_ok_and(|c| c.tbs_certificate().subject() == leaf_issuer)
                    })
                    .map(|d| d.to_vec())
                    .ok_or_else(|| chain_err("issuer not found".into()))?
            }
        };
        let issuer = Certificate::from_der(&issuer_der).map_err(|e| chain_err(e.to_string()))?;
        issuer
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| chain_err(e.to_string()))
    }

    /// Verifies the embedded SCT with the CT log keys (by log id); a key
    /// counts only for SCTs timestamped inside its window.
    pub(crate) fn verify_sct(
        &self,
        issuer_spki_der: &[u8],
        ct_keys: &HashMap<[u8; 32], LogKey>,
    ) -> Result<(), CertError> {
        let sct_err = |m: &str| CertError::Sct(m.to_string());
        let ext = self
            .cert
            .tbs_certificate()
            .extensions()
            .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == OID_SCT_LIST))
            .ok_or_else(|| sct_err("the certificate has no embedded SCT"))?;
        // extnValue wraps a DER OCTET STRING holding the TLS-encoded list.
        let inner = <&der::asn1::OctetStringRef>::from_der(ext.extn_value.as_bytes())
            .map_err(|_| sct_err("malformed SCT list"))?;
        let scts = parse_sct_list(inner.as_bytes()).ok_or_else(|| sct_err("malformed SCT list"))?;
        let tbs =
            precert_tbs(&self.der).ok_or_else(|| sct_err("cannot rebuild the precertificate"))?;
        let issuer_key_hash: [u8; 32] = {
            use sha2::Digest as _;
            sha2::Sha256::digest(issuer_spki_der).into()
        };
        for sct in &scts {
            let Some(log_key) = ct_keys.get(&sct.log_id) else {
                continue;
            };
            let sct_seconds = i64::try_from(sct.timestamp / 1000).unwrap_or(i64::MAX);
            if !log_key.valid.contains(sct_seconds) {
                continue;
            }
            let Ok(key) = CosignVerificationKey::try_from_der(&log_key.spki_der) else {
                continue;
            };
            let mut signed = Vec::with_capacity(tbs.len() + 64);
            signed.push(0); // version v1
            signed.push(0); // signature_type certificate_timestamp
            signed.extend_from_slice(&sct.timestamp.to_be_bytes());
            signed.extend_from_slice(&[0, 1]); // entry_type precert_entry
            signed.extend_from_slice(&issuer_key_hash);
            let len = tbs.len();
            if len >= 1 << 24 {
                continue;
            }
            signed.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
            signed.extend_from_slice(&tbs);
            signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
            signed.extend_from_slice(&sct.extensions);
            if key
                .verify_signature(Signature::Raw(&sct.signature), &signed)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(sct_err("no SCT verifies against a trusted CT log key"))
    }
}

/// One parsed SCT.
struct Sct {
    log_id: [u8; 32],
    timestamp: u64,
    extensions: Vec<u8>,
    signature: Vec<u8>,
}

/// Parses a TLS `SignedCertificateTimestampList`.
fn parse_sct_list(data: &[u8]) -> Option<Vec<Sct>> {
    let mut r = Reader(data);
    let total = r.u16()? as usize;
    let mut list = Reader(r.take(total)?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let len = list.u16()? as usize;
        let mut s = Reader(list.take(len)?);
        if s.u8()? != 0 {
            continue; // only v1 SCTs exist
        }
        let log_id: [u8; 32] = s.take(32)?.try_into().ok()?;
        let timestamp = u64::from_be_bytes(s.take(8)?.try_into().ok()?);
        let ext_len = s.u16()? as usize;
        let extensions = s.take(ext_len)?.to_vec();
        let _hash_alg = s.u8()?;
        let _sig_alg = s.u8()?;
        let sig_len = s.u16()? as usize;
        let signature = s.take(sig_len)?.to_vec();
        out.push(Sct {
            log_id,
            timestamp,
            extensions,
            signature,
        });
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// One DER TLV read from the front of a buffer.
struct Tlv<'a> {
    tag: u8,
    /// Header and value.
    whole: &'a [u8],
    /// The value.
    value: &'a [u8],
    /// What follows the TLV.
    rest: &'a [u8],
}

/// Reads a DER TLV (definite lengths up to 4 bytes).
fn read_tlv(data: &[u8]) -> Option<Tlv<'_>> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if data.len() < end {
        return None;
    }
    Some(Tlv {
        tag,
        whole: &data[..end],
        value: &data[header..end],
        rest: &data[end..],
    })
}

fn encode_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// The precertificate TBS: the certificate's TBS with the SCT-list
/// extension removed, every other byte kept as encoded.
fn precert_tbs(cert_der: &[u8]) -> Option<Vec<u8>> {
    let cert = read_tlv(cert_der)?;
    let tbs = read_tlv(cert.value)?;
    let mut fields = Vec::new();
    let mut rest = tbs.value;
    while !rest.is_empty() {
        let field = read_tlv(rest)?;
        if field.tag == 0xa3 {
            let seq = read_tlv(field.value)?;
            let mut kept = Vec::new();
            let mut r = seq.value;
            while !r.is_empty() {
                let ext = read_tlv(r)?;
                if !ext.value.starts_with(SCT_OID_DER) {
                    kept.extend_from_slice(ext.whole);
                }
                r = ext.rest;
            }
            fields.extend_from_slice(&encode_tlv(0xa3, &encode_tlv(seq.tag, &kept)));
        } else {
            fields.extend_from_slice(field.whole);
        }
        rest = field.rest;
    }
    Some(encode_tlv(tbs.tag, &fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_round_trip() {
        for len in [0usize, 5, 127, 128, 255, 256, 70000] {
            let value = vec![7u8; len];
            let enc = encode_tlv(0x30, &value);
            let t = read_tlv(&enc).unwrap();
            assert_eq!(
                (t.tag, t.whole.len(), t.value, t.rest.len()),
                (0x30, enc.len(), value.as_slice(), 0)
            );
        }
        assert!(read_tlv(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_none());
        assert!(read_tlv(&[0x30, 0x05, 1]).is_none());
    }

    #[test]
    fn sct_list_rejects_truncation() {
        assert!(parse_sct_list(&[0, 10, 0, 8, 0]).is_none());
        assert_eq!(parse_sct_list(&[0, 0]).map(|v| v.len()), Some(0));
    }
}
