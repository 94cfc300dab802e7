//! Notary Project signature envelopes, read into one shape.
//!
//! Both envelope formats the signature specification defines carry the same
//! signed attributes:
//!
//! * **JWS** (`application/jose+json`): the flattened JSON serialization
//!   (RFC 7515 §7.2.2). `protected` and `payload` are base64url without
//!   padding; the signature covers `protected || "." || payload` as written.
//!   The unprotected `header` holds `x5c` (standard base64 DER, leaf first),
//!   the signing agent and an optional RFC 3161 `timestampSignature`.
//! * **COSE** (`application/cose`): a tagged `COSE_Sign1` (RFC 9052), the
//!   signature over `Sig_structure1` with the protected bucket's original
//!   bytes; `x5chain` (label 33) and the timestamp are unprotected; times are
//!   CBOR tag 1 (seconds since the epoch).
//!
//! What is read and refused here (integrity, before any key is trusted):
//! the algorithm (ES256/384/512, PS256/384/512), the payload content type,
//! the signing scheme (`notary.x509` or `notary.x509.signingAuthority`) and
//! its signing time, the expiry, and the critical-header list: every header
//! the scheme requires to be critical must be listed, every listed header
//! must be present, and any critical header this verifier does not
//! understand (including a verification plugin) fails the signature.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use coset::cbor::value::Value as Cbor;
use coset::{Label, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable, iana};

/// The JWS envelope media type.
pub(crate) const JWS: &str = "application/jose+json";
/// The COSE envelope media type.
pub(crate) const COSE: &str = "application/cose";
/// The payload's content type.
pub(crate) const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
const TIMESTAMP: &str = "io.cncf.notary.timestampSignature";
/// The most certificates a chain may carry.
const MAX_CHAIN: usize = 10;

/// A signature algorithm of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// RSASSA-PSS (RSA 2048) with SHA-256.
    Ps256,
    /// RSASSA-PSS (RSA 3072) with SHA-384.
    Ps384,
    /// RSASSA-PSS (RSA 4096) with SHA-512.
    Ps512,
}

impl Alg {
    fn from_jws(name: &str) -> Option<Self> {
        Some(match name {
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "ES512" => Alg::Es512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            _ => return None,
        })
    }

    fn from_cose(alg: &RegisteredLabelWithPrivate<iana::Algorithm>) -> Option<Self> {
        let RegisteredLabelWithPrivate::Assigned(a) = alg else {
            return None;
        };
        Some(match a {
            iana::Algorithm::ES256 => Alg::Es256,
            iana::Algorithm::ES384 => Alg::Es384,
            iana::Algorithm::ES512 => Alg::Es512,
            iana::Algorithm::PS256 => Alg::Ps256,
            iana::Algorithm::PS384 => Alg::Ps384,
            iana::Algorithm::PS512 => Alg::Ps512,
            _ => return None,
        })
    }
}

/// The signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `notary.x509`: the signing time is the signer's claim; a timestamp
    /// makes it authentic.
    X509,
    /// `notary.x509.signingAuthority`: the signing authority vouches for
    /// the signing time.
    SigningAuthority,
}

impl Scheme {
    /// The specification's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::X509 => "notary.x509",
            Scheme::SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// An envelope's content, format aside.
#[derive(Debug, Clone)]
pub(crate) struct SignerInfo {
    /// The payload (JSON with `targetArtifact`).
    pub(crate) payload: Vec<u8>,
    /// The bytes the signature covers.
    pub(crate) signed_bytes: Vec<u8>,
    /// The raw signature (r‖s for ECDSA).
    pub(crate) signature: Vec<u8>,
    /// The algorithm.
    pub(crate) alg: Alg,
    /// The signing scheme.
    pub(crate) scheme: Scheme,
    /// `signingTime` (x509) or `authenticSigningTime` (signing authority).
    pub(crate) signing_time: DateTime<Utc>,
    /// The signature's expiry, if it has one.
    pub(crate) expiry: Option<DateTime<Utc>>,
    /// The certificate chain (DER), leaf first.
    pub(crate) chain: Vec<Vec<u8>>,
    /// An RFC 3161 timestamp token over `signature`, if any.
    pub(crate) timestamp: Option<Vec<u8>>,
}

/// Why an envelope is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Not a well-formed envelope of its media type.
    #[error("malformed {media_type} envelope: {reason}")]
    Malformed {
        /// The envelope's media type.
        media_type: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A critical header this verifier does not understand.
    #[error("unknown critical header `{0}`")]
    UnknownCritical(String),
    /// The signature asks for a verification plugin.
    #[error("the signature requires verification plugin `{0}`, which Portcullis does not run")]
    Plugin(String),
    /// A media type that is not an envelope.
    #[error(
        "`{0}` is not a Notary Project envelope media type (application/jose+json, application/cose)"
    )]
    MediaType(String),
}

/// Reads an envelope of `media_type`.
pub(crate) fn parse(media_type: &str, bytes: &[u8]) -> Result<SignerInfo, EnvelopeError> {
    match media_type {
        JWS => parse_jws(bytes),
        COSE => parse_cose(bytes),
        other => Err(EnvelopeError::MediaType(other.to_string())),
    }
}

/// A header value, format aside.
enum Attr {
    Text(String),
    Time(DateTime<Utc>),
    Other,
}

/// The signed attributes both formats share, and the critical list.
struct Protected {
    alg: Alg,
    content_type: Option<String>,
    crit: Vec<String>,
    attrs: Vec<(String, Attr)>,
}

fn malformed(media_type: &'static str, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        media_type,
        reason: reason.into(),
    }
}

/// The scheme and the times the protected headers give.
struct Times {
    scheme: Scheme,
    signing_time: DateTime<Utc>,
    expiry: Option<DateTime<Utc>>,
}

/// Applies the specification's rules to the protected headers.
fn signed_attributes(media_type: &'static str, p: &Protected) -> Result<Times, EnvelopeError> {
    let bad = |r: &str| malformed(media_type, r);
    if p.content_type.as_deref() != Some(PAYLOAD_MEDIA_TYPE) {
        return Err(bad(
            "the content type is not application/vnd.cncf.notary.payload.v1+json",
        ));
    }
    for name in &p.crit {
        if ![
            SIGNING_SCHEME,
            SIGNING_TIME,
            AUTHENTIC_SIGNING_TIME,
            EXPIRY,
            PLUGIN,
            PLUGIN_MIN_VERSION,
        ]
        .contains(&name.as_str())
        {
            return Err(EnvelopeError::UnknownCritical(name.clone()));
        }
        if !p.attrs.iter().any(|(k, _)| k == name) {
            return Err(bad(&format!("critical header `{name}` is absent")));
        }
    }
    let get = |name: &str| p.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let critical = |name: &str| p.crit.iter().any(|c| c == name);
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, EnvelopeError> {
        match get(name) {
            None => Ok(None),
            Some(Attr::Time(t)) => Ok(Some(*t)),
            Some(_) => Err(bad(&format!("`{name}` is not a time"))),
        }
    };
    let scheme = match get(SIGNING_SCHEME) {
        Some(Attr::Text(s)) if s == Scheme::X509.as_str() => Scheme::X509,
        Some(Attr::Text(s)) if s == Scheme::SigningAuthority.as_str() => Scheme::SigningAuthority,
        Some(Attr::Text(s)) => return Err(bad(&format!("unknown signing scheme `{s}`"))),
        _ => return Err(bad("no signing scheme")),
    };
    if !critical(SIGNING_SCHEME) {
        return Err(bad("the signing scheme is not marked critical"));
    }
    let expiry = time(EXPIRY)?;
    if expiry.is_some() && !critical(EXPIRY) {
        return Err(bad("the expiry is not marked critical"));
    }
    for plugin_header in [PLUGIN, PLUGIN_MIN_VERSION] {
        if get(plugin_header).is_some() && !critical(plugin_header) {
            return Err(bad(&format!("`{plugin_header}` is not marked critical")));
        }
    }
    if let Some(plugin) = get(PLUGIN) {
        let name = match plugin {
            Attr::Text(s) => s.clone(),
            _ => "?".into(),
        };
        return Err(EnvelopeError::Plugin(name));
    }
    let signing_time = match scheme {
        Scheme::X509 => {
            if get(AUTHENTIC_SIGNING_TIME).is_some() {
                return Err(bad(
                    "authenticSigningTime belongs to the signingAuthority scheme",
                ));
            }
            time(SIGNING_TIME)?.ok_or_else(|| bad("no signing time"))?
        }
        Scheme::SigningAuthority => {
            if !critical(AUTHENTIC_SIGNING_TIME) {
                return Err(bad("the authentic signing time is not marked critical"));
            }
            time(AUTHENTIC_SIGNING_TIME)?.ok_or_else(|| bad("no authentic signing time"))?
        }
    };
    Ok(Times {
        scheme,
        signing_time,
        expiry,
    })
}

fn parse_jws(bytes: &[u8]) -> Result<SignerInfo, EnvelopeError> {
    let bad = |r: String| malformed(JWS, r);
    #[derive(serde::Deserialize)]
    struct Flattened {
        payload: String,
        protected: String,
        #[serde(default)]
        header: serde_json::Map<String, serde_json::Value>,
        signature: String,
    }
    let env: Flattened = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let decode = |what: &str, s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| bad(format!("{what} is not base64url: {e}")))
    };
    let protected_json = decode("protected", &env.protected)?;
    let payload = decode("payload", &env.payload)?;
    let signature = decode("signature", &env.signature)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&protected_json).map_err(|e| bad(format!("protected: {e}")))?;
    let alg_name = header
        .get("alg")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let alg = Alg::from_jws(alg_name)
        .ok_or_else(|| bad(format!("unsupported algorithm `{alg_name}`")))?;
    let crit = match header.get("crit") {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("crit is not a list of names".into()))?,
        _ => return Err(bad("crit is missing or empty".into())),
    };
    let mut attrs = Vec::new();
    for (k, v) in &header {
        if ["alg", "crit", "cty"].contains(&k.as_str()) {
            continue;
        }
        let attr = match (k.as_str(), v) {
            (SIGNING_TIME | AUTHENTIC_SIGNING_TIME | EXPIRY, serde_json::Value::String(s)) => {
                Attr::Time(
                    DateTime::parse_from_rfc3339(s)
                        .map_err(|e| bad(format!("`{k}` is not an RFC 3339 time: {e}")))?
                        .with_timezone(&Utc),
                )
            }
            (SIGNING_TIME | AUTHENTIC_SIGNING_TIME | EXPIRY, _) => {
                return Err(bad(format!("`{k}` is not a time")));
            }
            (_, serde_json::Value::String(s)) => Attr::Text(s.clone()),
            _ => Attr::Other,
        };
        attrs.push((k.clone(), attr));
    }
    let protected = Protected {
        alg,
        content_type: header
            .get("cty")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        crit,
        attrs,
    };
    let Times {
        scheme,
        signing_time,
        expiry,
    } = signed_attributes(JWS, &protected)?;
    let chain = match env.header.get("x5c") {
        Some(serde_json::Value::Array(certs)) => certs
            .iter()
            .map(|c| {
                c.as_str()
                    .and_then(|s| STANDARD.decode(s).ok())
                    .ok_or_else(|| bad("x5c holds a certificate that is not base64".into()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad("no x5c certificate chain".into())),
    };
    let timestamp = match env.header.get(TIMESTAMP) {
        None => None,
        Some(serde_json::Value::String(s)) => Some(
            STANDARD
                .decode(s)
                .map_err(|e| bad(format!("timestampSignature is not base64: {e}")))?,
        ),
        Some(_) => return Err(bad("timestampSignature is not a string".into())),
    };
    let signed_bytes = format!("{}.{}", env.protected, env.payload).into_bytes();
    finish(
        JWS,
        protected.alg,
        scheme,
        signing_time,
        expiry,
        payload,
        signed_bytes,
        signature,
        chain,
        timestamp,
    )
}

fn parse_cose(bytes: &[u8]) -> Result<SignerInfo, EnvelopeError> {
    let bad = |r: String| malformed(COSE, r);
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| bad(format!("not a tagged COSE_Sign1: {e}")))?;
    let h = &sign1.protected.header;
    let alg = h
        .alg
        .as_ref()
        .and_then(Alg::from_cose)
        .ok_or_else(|| bad(format!("unsupported algorithm {:?}", h.alg)))?;
    let content_type = match &h.content_type {
        Some(RegisteredLabel::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let mut crit = Vec::with_capacity(h.crit.len());
    for label in &h.crit {
        match label {
            RegisteredLabelWithPrivate::Text(t) => crit.push(t.clone()),
            other => return Err(EnvelopeError::UnknownCritical(format!("{other:?}"))),
        }
    }
    if crit.is_empty() {
        return Err(bad("crit is missing or empty".into()));
    }
    let mut attrs = Vec::new();
    for (label, value) in &h.rest {
        let Label::Text(name) = label else {
            continue;
        };
        let attr = match (name.as_str(), value) {
            (SIGNING_TIME | AUTHENTIC_SIGNING_TIME | EXPIRY, Cbor::Tag(1, inner)) => {
                let secs = inner
                    .as_integer()
                    .and_then(|i| i64::try_from(i).ok())
                    .ok_or_else(|| bad(format!("`{name}` is not whole seconds")))?;
                Attr::Time(
                    DateTime::from_timestamp(secs, 0)
                        .ok_or_else(|| bad(format!("`{name}` is out of range")))?,
                )
            }
            (SIGNING_TIME | AUTHENTIC_SIGNING_TIME | EXPIRY, _) => {
                return Err(bad(format!("`{name}` is not a tag-1 time")));
            }
            (_, Cbor::Text(s)) => Attr::Text(s.clone()),
            _ => Attr::Other,
        };
        attrs.push((name.clone(), attr));
    }
    let protected = Protected {
        alg,
        content_type,
        crit,
        attrs,
    };
    let Times {
        scheme,
        signing_time,
        expiry,
    } = signed_attributes(COSE, &protected)?;
    let find = |label: &Label| {
        sign1
            .unprotected
            .rest
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v)
    };
    let chain = match find(&Label::Int(iana::HeaderParameter::X5Chain as i64)) {
        Some(Cbor::Array(certs)) => certs
            .iter()
            .map(|c| {
                c.as_bytes()
                    .cloned()
                    .ok_or_else(|| bad("x5chain holds a non-bytes entry".into()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Cbor::Bytes(one)) => vec![one.clone()],
        _ => return Err(bad("no x5chain certificate chain".into())),
    };
    let timestamp = match find(&Label::Text(TIMESTAMP.into())) {
        None => None,
        Some(Cbor::Bytes(b)) => Some(b.clone()),
        Some(_) => return Err(bad("timestampSignature is not bytes".into())),
    };
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| bad("detached payloads are not used by Notation".into()))?;
    let signed_bytes = sign1.tbs_data(b"");
    finish(
        COSE,
        protected.alg,
        scheme,
        signing_time,
        expiry,
        payload,
        signed_bytes,
        sign1.signature.clone(),
        chain,
        timestamp,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    media_type: &'static str,
    alg: Alg,
    scheme: Scheme,
    signing_time: DateTime<Utc>,
    expiry: Option<DateTime<Utc>>,
    payload: Vec<u8>,
    signed_bytes: Vec<u8>,
    signature: Vec<u8>,
    chain: Vec<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
) -> Result<SignerInfo, EnvelopeError> {
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(malformed(
            media_type,
            format!(
                "the certificate chain has {} certificates (1 to {MAX_CHAIN})",
                chain.len()
            ),
        ));
    }
    if signature.is_empty() {
        return Err(malformed(media_type, "the signature is empty"));
    }
    Ok(SignerInfo {
        payload,
        signed_bytes,
        signature,
        alg,
        scheme,
        signing_time,
        expiry,
        chain,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(protected: serde_json::Value) -> Vec<u8> {
        let p = URL_SAFE_NO_PAD.encode(protected.to_string());
        serde_json::json!({
            "payload": URL_SAFE_NO_PAD.encode(b"{}"),
            "protected": p,
            "header": {"x5c": [STANDARD.encode(b"cert")]},
            "signature": URL_SAFE_NO_PAD.encode(b"sig"),
        })
        .to_string()
        .into_bytes()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "alg": "ES256",
            "cty": PAYLOAD_MEDIA_TYPE,
            "crit": [SIGNING_SCHEME],
            SIGNING_SCHEME: "notary.x509",
            SIGNING_TIME: "2026-01-01T00:00:00Z",
        })
    }

    #[test]
    fn a_well_formed_jws_reads() {
        let info = parse(JWS, &jws(base())).unwrap();
        assert_eq!(info.scheme, Scheme::X509);
        assert_eq!(info.alg, Alg::Es256);
        assert!(info.signed_bytes.contains(&b'.'));
    }

    #[test]
    fn critical_header_rules() {
        let mut h = base();
        h["crit"] = serde_json::json!([SIGNING_SCHEME, "io.example.unknown"]);
        h["io.example.unknown"] = "x".into();
        assert_eq!(
            parse(JWS, &jws(h)).unwrap_err(),
            EnvelopeError::UnknownCritical("io.example.unknown".into())
        );
        let mut h = base();
        h["crit"] = serde_json::json!([]);
        assert!(parse(JWS, &jws(h)).is_err(), "the scheme must be critical");
        let mut h = base();
        h[EXPIRY] = "2030-01-01T00:00:00Z".into();
        assert!(parse(JWS, &jws(h)).is_err(), "an expiry must be critical");
        let mut h = base();
        h["crit"] = serde_json::json!([SIGNING_SCHEME, PLUGIN]);
        h[PLUGIN] = "com.example.plugin".into();
        assert!(matches!(parse(JWS, &jws(h)), Err(EnvelopeError::Plugin(_))));
        let mut h = base();
        h["cty"] = "application/json".into();
        assert!(parse(JWS, &jws(h)).is_err());
        let mut h = base();
        h["alg"] = "HS256".into();
        assert!(parse(JWS, &jws(h)).is_err());
    }

    #[test]
    fn other_media_types_and_garbage_are_refused() {
        assert!(matches!(
            parse("application/octet-stream", b"{}"),
            Err(EnvelopeError::MediaType(_))
        ));
        assert!(parse(COSE, &jws(base())).is_err());
        assert!(parse(JWS, b"\xd2\x84").is_err());
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Arbitrary bytes under either media type: an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(JWS, &bytes);
            let _ = parse(COSE, &bytes);
        }

        /// A well-formed JWS with one byte changed anywhere: an error or a
        /// parse, never a panic.
        #[test]
        fn mutated_jws_never_panics(at in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
            let p = URL_SAFE_NO_PAD.encode(serde_json::json!({
                "alg": "ES256", "cty": PAYLOAD_MEDIA_TYPE, "crit": [SIGNING_SCHEME],
                SIGNING_SCHEME: "notary.x509", SIGNING_TIME: "2026-01-01T00:00:00Z",
            }).to_string());
            let mut env = serde_json::json!({
                "payload": URL_SAFE_NO_PAD.encode(b"{}"), "protected": p,
                "header": {"x5c": [STANDARD.encode(b"cert")]},
                "signature": URL_SAFE_NO_PAD.encode(b"sig"),
            }).to_string().into_bytes();
            let i = at % env.len();
            env[i] = byte;
            let _ = parse(JWS, &env);
        }
    }
}
