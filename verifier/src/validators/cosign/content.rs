//! What a verified signature says about the image: the digest it names and,
//! for in-toto statements, the predicate type.

use serde::Deserialize;

use super::candidate::{COSIGN_SIGN_PREDICATE, Content, IN_TOTO_PAYLOAD_TYPE};

/// What a candidate's content claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// An image signature (simple signing, a cosign v3 `sign/v1` statement,
    /// or a message signature over the manifest).
    Signature,
    /// An attestation with this predicate type.
    Attestation(String),
}

/// Why the content does not bind to the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ContentError {
    /// The content names another digest.
    #[error("the signed payload names {named}, not {expected}")]
    OtherDigest {
        /// The digest the payload names.
        named: String,
        /// The image digest.
        expected: String,
    },
    /// The content is not a recognised payload.
    #[error("unrecognised signed payload: {0}")]
    Unrecognised(String),
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: CriticalImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Whether an (unverified) candidate presents itself as an image signature
/// rather than an attestation. Used only to sort candidates and to choose
/// between `NO_SIGNATURES` and a verification failure; verdicts rest on
/// [`claim`] after the signature verified.
pub(crate) fn looks_like_signature(origin: super::candidate::Origin, content: &Content) -> bool {
    use super::candidate::Origin;
    match (origin, content) {
        (Origin::LegacySignature, _) => true,
        (Origin::LegacyAttestation, _) => false,
        (Origin::Bundle, Content::Dsse { payload, .. }) => {
            serde_json::from_slice::<PredicateOnly>(payload)
                .map(|p| p.predicate_type == COSIGN_SIGN_PREDICATE)
                .unwrap_or(true)
        }
        (Origin::Bundle, _) => true,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PredicateOnly {
    predicate_type: String,
}

const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// Checks that `content` binds to `image_digest` (`sha256:<hex>`) and says
/// what it claims. Does not check signatures: call it on verified content.
/// `docker-reference` is deliberately not compared: images are mirrored.
pub(crate) fn claim(content: &Content, image_digest: &str) -> Result<Claim, ContentError> {
    let other = |named: String| ContentError::OtherDigest {
        named,
        expected: image_digest.to_string(),
    };
    match content {
        Content::SimpleSigning { payload } => {
            let parsed: SimpleSigning = serde_json::from_slice(payload)
                .map_err(|e| ContentError::Unrecognised(format!("simple signing: {e}")))?;
            if !parsed
                .critical
                .kind
                .eq_ignore_ascii_case("cosign container image signature")
            {
                return Err(ContentError::Unrecognised(format!(
                    "simple signing type {:?}",
                    parsed.critical.kind
                )));
            }
            let named = parsed.critical.image.docker_manifest_digest;
            if named != image_digest {
                return Err(other(named));
            }
            Ok(Claim::Signature)
        }
        Content::Dsse {
            payload_type,
            payload,
        } => {
            if payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(ContentError::Unrecognised(format!(
                    "DSSE payload type {payload_type:?}"
                )));
            }
            let statement: Statement = serde_json::from_slice(payload)
                .map_err(|e| ContentError::Unrecognised(format!("in-toto statement: {e}")))?;
            if !STATEMENT_TYPES.contains(&statement.kind.as_str()) {
                return Err(ContentError::Unrecognised(format!(
                    "statement type {:?}",
                    statement.kind
                )));
            }
            let hex = image_digest.strip_prefix("sha256:").unwrap_or(image_digest);
            if !statement.subject.iter().any(|s| {
                s.digest
                    .get("sha256")
                    .is_some_and(|d| d.eq_ignore_ascii_case(hex))
            }) {
                let named = statement
                    .subject
                    .iter()
                    .find_map(|s| s.digest.get("sha256"))
                    .map(|d| format!("sha256:{d}"))
                    .unwrap_or_else(|| "no sha256 subject".to_string());
                return Err(other(named));
            }
            if statement.predicate_type == COSIGN_SIGN_PREDICATE {
                Ok(Claim::Signature)
            } else {
                Ok(Claim::Attestation(statement.predicate_type))
            }
        }
        Content::MessageSignature { digest } => {
            if digest != image_digest {
                return Err(other(digest.clone()));
            }
            Ok(Claim::Signature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81";

    #[test]
    fn simple_signing_binds_digest() {
        let payload = include_bytes!(
            "../../../../tests/data/cosign/testimage/blobs/sha256-d8ee807d96efe7441b132967ad94eaffbc0172a763e69f2cd8df8f583f0ba0d4"
        );
        let c = Content::SimpleSigning {
            payload: payload.to_vec(),
        };
        assert_eq!(claim(&c, D), Ok(Claim::Signature));
        let other = D.replace("071b", "071c");
        assert!(matches!(
            claim(&c, &other),
            Err(ContentError::OtherDigest { .. })
        ));
    }

    #[test]
    fn statements() {
        let hex = D.strip_prefix("sha256:").unwrap();
        let sign = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{hex}"}}}}],"predicateType":"{COSIGN_SIGN_PREDICATE}","predicate":{{}}}}"#
        );
        let c = Content::Dsse {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: sign.clone().into_bytes(),
        };
        assert_eq!(claim(&c, D), Ok(Claim::Signature));
        let att = sign.replace(COSIGN_SIGN_PREDICATE, "https://slsa.dev/provenance/v1");
        let c = Content::Dsse {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: att.into_bytes(),
        };
        assert_eq!(
            claim(&c, D),
            Ok(Claim::Attestation("https://slsa.dev/provenance/v1".into()))
        );
        let c = Content::Dsse {
            payload_type: "text/plain".into(),
            payload: sign.into_bytes(),
        };
        assert!(matches!(claim(&c, D), Err(ContentError::Unrecognised(_))));
    }
}
