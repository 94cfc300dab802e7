//! Entry points for the fuzz harnesses (`verifier/fuzz`, cargo-afl), built
//! only with the `fuzzing` feature: each takes arbitrary bytes, runs one
//! parser that faces network input the way the verifier runs it, and must
//! return (an error is fine) without panicking.

use std::collections::BTreeMap;

use crate::validators::cosign::{candidate, certificate, content, inclusion, tlog};

/// An image reference (then its normalised form and rule lookups use it).
pub fn reference(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(r) = crate::reference::ImageRef::parse(text)
    {
        let _ = r.to_string();
        let _ = r.without_digest();
    }
}

/// A policy pattern, compiled to its anchored regex.
pub fn pattern(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(p) = crate::policy::Pattern::parse(text)
    {
        let _ = regex::Regex::new(&p.to_regex());
    }
}

/// A Sigstore bundle, then its claim about a digest.
pub fn bundle(data: &[u8]) {
    if let Ok(c) = candidate::from_bundle(data, "fuzz".into()) {
        let _ = content::claim(&c.content, "sha256:00");
    }
}

/// A cosign simple-signing payload (legacy `.sig` layer) and a DSSE
/// attestation layer, with the annotations cosign writes.
pub fn cosign_layers(data: &[u8]) {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "dev.cosignproject.cosign/signature".to_string(),
        "c2ln".to_string(),
    );
    if let Ok(c) = candidate::from_signature_layer(&annotations, data.to_vec(), "fuzz".into()) {
        let _ = content::claim(&c.content, "sha256:00");
    }
    if let Ok(c) = candidate::from_attestation_layer(&annotations, data, "fuzz".into()) {
        let _ = content::claim(&c.content, "sha256:00");
    }
}

/// A Rekor entry body bound against a signature.
pub fn rekor_body(data: &[u8]) {
    let entry = candidate::TlogEntry {
        body: data.to_vec(),
        integrated_time: 0,
        log_index: 0,
        log_id: vec![0; 32],
        signed_entry_timestamp: Vec::new(),
        proof: None,
    };
    let c = candidate::Content::MessageSignature {
        digest: "sha256:00".into(),
    };
    let _ = tlog::check_body(&entry, &c, b"x", b"sig", tlog::Signer::Key(b"spki"));
}

/// A signed-note checkpoint.
pub fn checkpoint(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = inclusion::verify_checkpoint(
            text,
            inclusion::NoteKey::Ed25519 {
                key: &[7; 32],
                origin: "log.example",
            },
        );
    }
}

/// A certificate as the keyless path reads it (identity, SCT list).
pub fn certificate(data: &[u8]) {
    if let Ok(cert) = certificate::SigningCert::parse(data) {
        let _ = cert.identity();
        let _ = cert.public_key();
        let _ = cert.spki_der();
    }
}

/// A Notation envelope, JWS and COSE.
pub fn notation_envelope(data: &[u8]) {
    crate::validators::notation::fuzz_envelope(data);
}

/// An RFC 3161 timestamp response or token.
pub fn timestamp(data: &[u8]) {
    let _ = portcullis_timestamp::token_from_response(data)
        .map(|t| portcullis_timestamp::verify(&t, b"x", &[]));
}

/// A sealed shared-cache value, then the verdict inside.
pub fn sealed_value(data: &[u8]) {
    let _ = crate::cache::seal::open(b"0123456789abcdef", "pc:v1:verdict:k", data)
        .map(serde_json::from_slice::<crate::cache::CachedVerdict>);
}

/// Notary v1 TUF metadata: canonical JSON and the version peek.
pub fn notary_metadata(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = portcullis_notary_tuf::canonical::canonicalize(&v);
    }
    let _ = portcullis_notary_tuf::peek_version(data);
}

/// The README's attestation conditions, evaluated by the fuzz targets.
const CONDITIONS: [&str; 4] = [
    r#"predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/heads/")"#,
    r#"now - timestamp(predicate.metadata.scanFinishedOn) < duration("168h")"#,
    r#"predicate.scanner.result.Results.all(r, !has(r.Vulnerabilities) || r.Vulnerabilities.all(v, v.Severity != "CRITICAL"))"#,
    r#"predicate.packages.all(p, !has(p.licenseConcluded) || !p.licenseConcluded.startsWith("AGPL-"))"#,
];

/// A verified in-toto statement as attestation conditions read it (size
/// cap, conversion to CEL values, step bound), then the README's
/// conditions evaluated over it.
pub fn attestation_statement(data: &[u8]) {
    use crate::policy::conditions::{Condition, SignerInfo, Statement, environment};
    let signer = SignerInfo {
        root: "fuzz",
        keyless: Some(("https://issuer", "https://subject")),
    };
    let Ok(statement) = Statement::parse(data, signer) else {
        return;
    };
    let env = environment();
    for source in CONDITIONS {
        if let Ok(condition) = Condition::compile(&env, source) {
            let _ = statement.evaluate(&env, &condition, chrono::Utc::now());
        }
    }
}

/// A condition as the config loader compiles it, then evaluated over a
/// small statement.
pub fn condition(data: &[u8]) {
    use crate::policy::conditions::{Condition, SignerInfo, Statement, environment};
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let env = environment();
    let Ok(condition) = Condition::compile(&env, source) else {
        return;
    };
    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"ab"}}],"predicateType":"p","predicate":{"a":[1,2,{"b":"c"}],"t":"2026-01-01T00:00:00Z","n":3}}"#;
    if let Ok(statement) = Statement::parse(
        statement,
        SignerInfo {
            root: "fuzz",
            keyless: None,
        },
    ) {
        let _ = statement.evaluate(&env, &condition, chrono::Utc::now());
    }
}
