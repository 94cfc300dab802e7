//! Keyless verification of real Sigstore bundles made by other tools (cosign
//! v3 in a GitHub Actions release workflow, and npm's provenance signer),
//! with the real public-good Fulcio, CT log and Rekor, against the
//! public-good trust root shipped with the verifier. Nothing here was signed
//! by Portcullis or its fixtures; see `verifier/tests/data/public-good/README.md`.
//!
//! The checks run offline, exactly as at admission time: the Fulcio chain at
//! the Rekor integration time, the embedded SCT, the Rekor SET and its body's
//! binding to this signature and certificate, the identity, and the
//! statement's subject digest.

use super::candidate::{Candidate, from_bundle};
use super::check::{CheckOptions, Failure, check};
use super::content::Claim;
use crate::config::cosign::{Matcher, TransparencyRoots, TrustRoot, TrustRootKind};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use portcullis_sigstore_trust::Validity;
use portcullis_sigstore_trust::public_good;
use regex::Regex;
use serde_json::Value;

const COSIGN_V3: &[u8] =
    include_bytes!("../../../tests/data/public-good/kubewarden-controller-v1.34.0.sigstore.json");
const NPM: &[u8] =
    include_bytes!("../../../tests/data/public-good/sigstore-js-npm-provenance.sigstore.json");

/// The image the cosign v3 bundle signs (its statement's subject).
const KUBEWARDEN_DIGEST: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

async fn transparency() -> TransparencyRoots {
    let trust = public_good::load(Utc::now())
        .await
        .expect("the shipped public-good trust root loads");
    TransparencyRoots {
        rekor_keys: trust.rekor_keys,
        ct_keys: trust.ct_keys,
        fulcio_certs: trust.fulcio_certs,
        rekor_v2_logs: trust.rekor_v2_logs,
        tsas: trust.tsas,
    }
}

fn keyless(issuer: &str, subject_regex: &str) -> TrustRoot {
    TrustRoot {
        name: "ci".into(),
        kind: TrustRootKind::Keyless {
            issuer: Matcher::Exact(issuer.into()),
            subject: Matcher::Regex(Regex::new(&format!("^(?:{subject_regex})$")).unwrap()),
        },
    }
}

fn kubewarden_release() -> TrustRoot {
    keyless(
        GITHUB,
        r"https://github\.com/kubewarden/kubewarden-controller/\.github/workflows/release\.yml@refs/tags/v.*",
    )
}

fn parse(json: &[u8]) -> Candidate {
    from_bundle(json, "bundle".into()).expect("a real bundle parses")
}

/// The bundle with `edit` applied to its JSON.
fn edited(json: &[u8], edit: impl FnOnce(&mut Value)) -> Candidate {
    let mut v: Value = serde_json::from_slice(json).unwrap();
    edit(&mut v);
    parse(&serde_json::to_vec(&v).unwrap())
}

fn options<'a>(digest: &'a str, transparency: &'a TransparencyRoots) -> CheckOptions<'a> {
    CheckOptions {
        digest,
        require_tlog_for_keys: true,
        transparency,
        manifest: None,
        policy: Default::default(),
    }
}

/// Flips the last character of a base64 field to another valid one.
fn flip_b64(v: &mut Value) {
    let mut bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    *v = Value::String(STANDARD.encode(bytes));
}

#[tokio::test]
async fn cosign_v3_bundle_from_a_real_release_verifies() {
    let t = transparency().await;
    let pass = check(
        &parse(COSIGN_V3),
        &kubewarden_release(),
        options(KUBEWARDEN_DIGEST, &t),
    )
    .expect("the real cosign v3 signature verifies");
    assert_eq!(pass.claim, Claim::Signature);
}

#[tokio::test]
async fn cosign_v3_bundle_for_another_image_is_a_digest_failure() {
    let t = transparency().await;
    let other = format!("sha256:{}", "0".repeat(64));
    let failure = check(
        &parse(COSIGN_V3),
        &kubewarden_release(),
        options(&other, &t),
    )
    .unwrap_err();
    assert!(
        matches!(&failure, Failure::Digest(m) if m.contains("c811d58d")),
        "{failure:?}"
    );
}

#[tokio::test]
async fn another_workflow_or_issuer_is_an_identity_failure() {
    let t = transparency().await;
    let candidate = parse(COSIGN_V3);
    for root in [
        keyless(GITHUB, r"https://github\.com/kubewarden/policy-server/.*"),
        keyless(
            "https://accounts.google.com",
            r"https://github\.com/kubewarden/kubewarden-controller/.*",
        ),
        // Anchored: a prefix of the real subject is not a match.
        keyless(GITHUB, r"https://github\.com/kubewarden"),
    ] {
        let failure = check(&candidate, &root, options(KUBEWARDEN_DIGEST, &t)).unwrap_err();
        assert!(matches!(failure, Failure::Identity(_)), "{failure:?}");
    }
}

#[tokio::test]
async fn a_changed_signature_does_not_verify() {
    let t = transparency().await;
    let candidate = edited(COSIGN_V3, |v| {
        flip_b64(&mut v["dsseEnvelope"]["signatures"][0]["sig"]);
    });
    let failure = check(
        &candidate,
        &kubewarden_release(),
        options(KUBEWARDEN_DIGEST, &t),
    )
    .unwrap_err();
    assert!(matches!(failure, Failure::NoMatch(_)), "{failure:?}");
}

#[tokio::test]
async fn a_changed_statement_does_not_verify() {
    let t = transparency().await;
    // Point the statement at another image, leaving the signature as it is.
    let candidate = edited(COSIGN_V3, |v| {
        let payload = STANDARD
            .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let forged = String::from_utf8(payload)
            .unwrap()
            .replace("c811d58d", "c811d58e");
        v["dsseEnvelope"]["payload"] = Value::String(STANDARD.encode(forged));
    });
    let forged_digest = KUBEWARDEN_DIGEST.replace("c811d58d", "c811d58e");
    let failure = check(
        &candidate,
        &kubewarden_release(),
        options(&forged_digest, &t),
    )
    .unwrap_err();
    assert!(matches!(failure, Failure::NoMatch(_)), "{failure:?}");
}

#[tokio::test]
async fn a_changed_log_entry_fails_the_transparency_check() {
    let t = transparency().await;
    let shifted_time = edited(COSIGN_V3, |v| {
        let entry = &mut v["verificationMaterial"]["tlogEntries"][0];
        let time: i64 = entry["integratedTime"].as_str().unwrap().parse().unwrap();
        entry["integratedTime"] = Value::String((time + 60).to_string());
    });
    let bad_set = edited(COSIGN_V3, |v| {
        flip_b64(
            &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"],
        );
    });
    let no_entry = edited(COSIGN_V3, |v| {
        v["verificationMaterial"]["tlogEntries"] = Value::Array(vec![]);
    });
    for candidate in [shifted_time, bad_set, no_entry] {
        let failure = check(
            &candidate,
            &kubewarden_release(),
            options(KUBEWARDEN_DIGEST, &t),
        )
        .unwrap_err();
        assert!(matches!(failure, Failure::Tlog(_)), "{failure:?}");
    }
}

#[tokio::test]
async fn a_borrowed_certificate_does_not_vouch_for_the_signature() {
    let t = transparency().await;
    // The npm bundle's (genuine) certificate on the cosign bundle: the
    // signature was not made with that certificate's key.
    let npm: Value = serde_json::from_slice(NPM).unwrap();
    let candidate = edited(COSIGN_V3, |v| {
        v["verificationMaterial"]["certificate"] =
            npm["verificationMaterial"]["certificate"].clone();
    });
    let root = keyless(GITHUB, r"https://github\.com/sigstore/sigstore-js/.*");
    let failure = check(&candidate, &root, options(KUBEWARDEN_DIGEST, &t)).unwrap_err();
    assert!(matches!(failure, Failure::NoMatch(_)), "{failure:?}");
}

#[tokio::test]
async fn a_trust_root_without_the_public_good_ca_rejects_the_certificate() {
    let mut t = transparency().await;
    t.fulcio_certs.clear();
    let failure = check(
        &parse(COSIGN_V3),
        &kubewarden_release(),
        options(KUBEWARDEN_DIGEST, &t),
    )
    .unwrap_err();
    assert!(matches!(failure, Failure::Certificate(_)), "{failure:?}");
}

#[tokio::test]
async fn npm_provenance_passes_every_signature_check_but_names_no_image() {
    // A second real bundle, from another signer and two months later: the
    // chain, SCT, SET and identity all verify, and it is refused only
    // because its subject is an npm tarball (sha512), not this image.
    let t = transparency().await;
    let root = keyless(
        GITHUB,
        r"https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@refs/heads/main",
    );
    let failure = check(&parse(NPM), &root, options(KUBEWARDEN_DIGEST, &t)).unwrap_err();
    assert!(matches!(failure, Failure::Digest(_)), "{failure:?}");
}

/// The cosign v3 bundle's Rekor integration time (2026-04-09T07:23:29Z).
fn integrated_time() -> i64 {
    let v: Value = serde_json::from_slice(COSIGN_V3).unwrap();
    v["verificationMaterial"]["tlogEntries"][0]["integratedTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A window that ends `seconds` after the bundle's integration time.
fn ending_after_signing(seconds: i64) -> Validity {
    Validity {
        start: None,
        end: DateTime::<Utc>::from_timestamp(integrated_time() + seconds, 0),
    }
}

#[tokio::test]
async fn authorities_retired_after_signing_still_vouch_for_it() {
    // Sigstore's rule: a key or CA vouches for what was done inside its
    // `validFor`. Retire every one of them a minute after this signature:
    // it still verifies today.
    let mut t = transparency().await;
    let retired = ending_after_signing(60);
    t.rekor_keys.values_mut().for_each(|k| k.valid = retired);
    t.ct_keys.values_mut().for_each(|k| k.valid = retired);
    t.fulcio_certs.iter_mut().for_each(|c| c.valid = retired);
    check(
        &parse(COSIGN_V3),
        &kubewarden_release(),
        options(KUBEWARDEN_DIGEST, &t),
    )
    .expect("a signature made while its authorities were valid verifies");
}

#[tokio::test]
async fn authorities_retired_before_signing_do_not_vouch_for_it() {
    let before = ending_after_signing(-3600);
    let candidate = parse(COSIGN_V3);
    let root = kubewarden_release();

    let mut t = transparency().await;
    t.rekor_keys.values_mut().for_each(|k| k.valid = before);
    let failure = check(&candidate, &root, options(KUBEWARDEN_DIGEST, &t)).unwrap_err();
    assert!(
        matches!(&failure, Failure::Tlog(m) if m.contains("not valid at")),
        "{failure:?}"
    );

    let mut t = transparency().await;
    t.fulcio_certs.iter_mut().for_each(|c| c.valid = before);
    let failure = check(&candidate, &root, options(KUBEWARDEN_DIGEST, &t)).unwrap_err();
    assert!(
        matches!(&failure, Failure::Certificate(m) if m.contains("no trusted Fulcio")),
        "{failure:?}"
    );

    let mut t = transparency().await;
    t.ct_keys.values_mut().for_each(|k| k.valid = before);
    let failure = check(&candidate, &root, options(KUBEWARDEN_DIGEST, &t)).unwrap_err();
    assert!(
        matches!(&failure, Failure::Certificate(m) if m.contains("SCT")),
        "{failure:?}"
    );
}

/// From bundle v0.2 on, every log entry carries its inclusion proof; a
/// v0.3 bundle whose entry has only a SET is malformed, while the same
/// entry in a v0.1 bundle (SET-only is v0.1's form) still parses
/// (sigstore-conformance `intoto-missing-inclusion-proof_fail`).
#[test]
fn a_bundle_after_v0_1_needs_its_inclusion_proofs() {
    let strip = |media_type: &str| {
        let mut v: Value = serde_json::from_slice(COSIGN_V3).unwrap();
        v["mediaType"] = Value::String(media_type.into());
        v["verificationMaterial"]["tlogEntries"][0]
            .as_object_mut()
            .unwrap()
            .remove("inclusionProof");
        serde_json::to_vec(&v).unwrap()
    };
    let err = from_bundle(
        &strip("application/vnd.dev.sigstore.bundle.v0.3+json"),
        "b".into(),
    )
    .expect_err("no inclusion proof");
    assert!(err.to_string().contains("inclusion proof"), "{err}");
    assert!(
        from_bundle(
            &strip("application/vnd.dev.sigstore.bundle+json;version=0.1"),
            "b".into()
        )
        .is_ok()
    );
}
