//! Cosign with keys, against a real registry (Debian `docker-registry`).
//! Signatures come from `tests/fixtures/cosign/sigtool.py`, an independent
//! signer; images from `mkimage.py` + skopeo. Decisions are read from
//! `portcullis-verifier verify --json`, the same decision path the gRPC
//! service runs.

use portcullis_e2e::config::{config_yaml, cosign_for, cosign_keys_only, key_roots, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{PushedImage, pki_file, pki_path, push_image, sigtool};
use portcullis_e2e::verify_json;
use serde_json::{Value, json};

/// Verifies `image` under a config with key `roots` (and no transparency
/// log keys) and rule options `with`; returns the single JSON result.
fn verify(reg: &Registry, roots: &[&str], with: Value, image: &str) -> Value {
    verify_with(reg, cosign_keys_only(reg, key_roots(roots)), with, image)
}

/// Like [`verify`], with the test PKI's Rekor key configured.
fn verify_logged(reg: &Registry, roots: &[&str], with: Value, image: &str) -> Value {
    verify_with(reg, cosign_for(reg, key_roots(roots)), with, image)
}

fn verify_with(reg: &Registry, validator: Value, with: Value, image: &str) -> Value {
    let config = config_yaml(
        vec![validator],
        vec![rule(&format!("{}/**", reg.host()), "signed", with)],
    );
    let (code, results, stderr) = verify_json(&config, &[image], &[]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    let r = results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"));
    assert_eq!(
        r["allowed"].as_bool(),
        Some(code == 0),
        "exit code agrees with the result"
    );
    r
}

fn assert_allowed(r: &Value, image: &PushedImage) {
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["reason"], "VERIFIED");
    assert_eq!(r["digest"], image.digest.as_str());
    assert_eq!(
        r["reference"],
        format!("{}@{}", image.reference, image.digest)
    );
}

fn assert_denied(r: &Value, reason: &str) {
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["reason"], reason, "{r}");
    assert_eq!(r["digest"], Value::Null);
}

fn sign(reg: &Registry, image: &PushedImage, key: &str) {
    sigtool(
        "sign-key",
        reg,
        image,
        &["--key", &pki_path(&format!("{key}.key"))],
    );
}

/// Runs sigtool `subcommand` as alice, with the entry logged in the test
/// Rekor, plus `extra` arguments.
fn alice_logged(reg: &Registry, subcommand: &str, image: &PushedImage, extra: &[&str]) {
    let (key, rekor) = (pki_path("alice.key"), pki_path("rekor.key"));
    let mut args = vec!["--key", key.as_str(), "--rekor-key", rekor.as_str()];
    args.extend_from_slice(extra);
    sigtool(subcommand, reg, image, &args);
}

#[test]
fn legacy_key_signature_allows_and_pins() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/app", "v1", 1);
    sign(&reg, &image, "alice");
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &image.reference,
    );
    assert_allowed(&r, &image);
    assert_eq!(r["validator"], "signed");
    // By digest, and by tag and digest, too.
    let by_digest = format!("{}/team/app@{}", reg.host(), image.digest);
    let r = verify(&reg, &["alice"], json!({"trustRoot": "alice"}), &by_digest);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["reference"], by_digest);
}

#[test]
fn wrong_key_tampered_payload_and_other_digest() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/app", "v1", 2);
    sign(&reg, &image, "alice");
    let r = verify(
        &reg,
        &["bob"],
        json!({"trustRoot": "bob"}),
        &image.reference,
    );
    assert_denied(&r, "NO_MATCHING_SIGNATURE");

    let tampered = push_image(&reg, "team/tampered", "v1", 3);
    sigtool(
        "sign-key",
        &reg,
        &tampered,
        &["--key", &pki_path("alice.key"), "--tamper-payload"],
    );
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &tampered.reference,
    );
    assert_denied(&r, "NO_MATCHING_SIGNATURE");

    // A valid signature by alice, but over a payload naming another image.
    let other = push_image(&reg, "team/other", "v1", 4);
    sigtool(
        "sign-key",
        &reg,
        &other,
        &[
            "--key",
            &pki_path("alice.key"),
            "--payload-digest",
            &image.digest,
        ],
    );
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &other.reference,
    );
    assert_denied(&r, "DIGEST_MISMATCH");
}

#[test]
fn unsigned_and_missing_images() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/app", "v1", 5);
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &image.reference,
    );
    assert_denied(&r, "NO_SIGNATURES");
    let missing = format!("{}/team/app:nope", reg.host());
    let r = verify(&reg, &["alice"], json!({"trustRoot": "alice"}), &missing);
    assert_denied(&r, "IMAGE_NOT_FOUND");
}

#[test]
fn every_key_type() {
    let reg = Registry::start_plain();
    for (i, key) in ["alice", "carol", "dave", "erin"].iter().enumerate() {
        let image = push_image(&reg, &format!("keys/{key}"), "v1", 10 + i as u64);
        sign(&reg, &image, key);
        let r = verify(&reg, &[key], json!({"trustRoot": key}), &image.reference);
        assert_allowed(&r, &image);
    }
}

#[test]
fn thresholds_count_distinct_signers() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/app", "v1", 20);
    sign(&reg, &image, "alice");
    // Alice signs twice: still one signer.
    sign(&reg, &image, "alice");
    let r = verify(
        &reg,
        &["alice", "bob"],
        json!({"trustRoot": "*", "threshold": 2}),
        &image.reference,
    );
    assert_denied(&r, "THRESHOLD_NOT_MET (1 of 2)");
    // `*` without threshold: every root must sign.
    let r = verify(
        &reg,
        &["alice", "bob"],
        json!({"trustRoot": "*"}),
        &image.reference,
    );
    assert_denied(&r, "THRESHOLD_NOT_MET (1 of 2)");
    let r = verify(
        &reg,
        &["alice", "bob"],
        json!({"trustRoot": "*", "threshold": 1}),
        &image.reference,
    );
    assert_eq!(r["allowed"], true, "{r}");
    let r = verify(
        &reg,
        &["alice", "bob"],
        json!({"trustRoot": "*", "threshold": 1, "required": ["bob"]}),
        &image.reference,
    );
    assert_denied(&r, "REQUIRED_SIGNER_MISSING (bob)");

    sign(&reg, &image, "bob");
    let r = verify(
        &reg,
        &["alice", "bob"],
        json!({"trustRoot": "*", "threshold": 2}),
        &image.reference,
    );
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["message"], "signed by alice, bob");
    let r = verify(
        &reg,
        &["alice", "bob", "carol"],
        json!({"trustRoot": "*", "threshold": 2, "required": ["carol"]}),
        &image.reference,
    );
    assert_denied(&r, "REQUIRED_SIGNER_MISSING (carol)");
    let r = verify(
        &reg,
        &["alice", "bob", "carol"],
        json!({"trustRoot": "*"}),
        &image.reference,
    );
    assert_denied(&r, "THRESHOLD_NOT_MET (2 of 3)");
}

#[test]
fn cosign_v3_bundles_through_the_referrers_fallback() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/v3", "v1", 30);
    sigtool("bundle", &reg, &image, &["--key", &pki_path("alice.key")]);
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &image.reference,
    );
    assert_allowed(&r, &image);

    // Exactly as cosign writes the fallback index (no annotations).
    let image2 = push_image(&reg, "team/v3plain", "v1", 31);
    sigtool(
        "bundle",
        &reg,
        &image2,
        &["--key", &pki_path("bob.key"), "--no-index-annotations"],
    );
    let r = verify(
        &reg,
        &["bob"],
        json!({"trustRoot": "bob"}),
        &image2.reference,
    );
    assert_allowed(&r, &image2);

    // Message-signature bundles over the manifest.
    let image3 = push_image(&reg, "team/v3msg", "v1", 32);
    sigtool(
        "bundle",
        &reg,
        &image3,
        &[
            "--key",
            &pki_path("alice.key"),
            "--content",
            "message-signature",
        ],
    );
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &image3.reference,
    );
    assert_allowed(&r, &image3);

    let tampered = push_image(&reg, "team/v3bad", "v1", 33);
    sigtool(
        "bundle",
        &reg,
        &tampered,
        &["--key", &pki_path("alice.key"), "--tamper-payload"],
    );
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &tampered.reference,
    );
    assert_denied(&r, "NO_MATCHING_SIGNATURE");

    let other = push_image(&reg, "team/v3other", "v1", 34);
    sigtool(
        "bundle",
        &reg,
        &other,
        &[
            "--key",
            &pki_path("alice.key"),
            "--payload-digest",
            &image.digest,
        ],
    );
    let r = verify(
        &reg,
        &["alice"],
        json!({"trustRoot": "alice"}),
        &other.reference,
    );
    assert_denied(&r, "DIGEST_MISMATCH");
}

#[test]
fn one_key_under_two_names_is_one_vote() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/twice", "v1", 21);
    sign(&reg, &image, "alice");
    let alice = pki_file("alice.pub");
    let roots = json!([
        {"name": "alice", "key": alice},
        {"name": "alice-again", "key": alice},
        {"name": "bob", "key": pki_file("bob.pub")},
    ]);
    let verify_roots = |with: Value| {
        verify_with(
            &reg,
            cosign_keys_only(&reg, roots.clone()),
            with,
            &image.reference,
        )
    };
    // The config loads; one signature by alice is one signer.
    let r = verify_roots(json!({"trustRoot": "*", "threshold": 2}));
    assert_denied(&r, "THRESHOLD_NOT_MET (1 of 2)");
    let r = verify_roots(
        json!({"trustRoot": "*", "threshold": 1, "required": ["alice", "alice-again"]}),
    );
    assert_denied(&r, "REQUIRED_SIGNER_MISSING (alice-again)");
    // Naming either name as required is met by alice's signature.
    let r = verify_roots(json!({"trustRoot": "*", "threshold": 1, "required": ["alice-again"]}));
    assert_allowed(&r, &image);
    // `*` without a threshold: every distinct key must sign (two here).
    let r = verify_roots(json!({"trustRoot": "*"}));
    assert_denied(&r, "THRESHOLD_NOT_MET (1 of 2)");
    sign(&reg, &image, "bob");
    let r = verify_roots(json!({"trustRoot": "*"}));
    assert_allowed(&r, &image);
    let r = verify_roots(json!({"trustRoot": "*", "threshold": 2}));
    assert_allowed(&r, &image);
    let r = verify_roots(json!({"trustRoot": "*", "threshold": 3}));
    assert_denied(&r, "THRESHOLD_NOT_MET (2 of 3)");
}

#[test]
fn both_formats_at_once_count_together() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/mixed", "v1", 40);
    sign(&reg, &image, "alice");
    sigtool("bundle", &reg, &image, &["--key", &pki_path("bob.key")]);
    let r = verify(
        &reg,
        &["alice", "bob"],
        json!({"trustRoot": "*", "threshold": 2}),
        &image.reference,
    );
    assert_allowed(&r, &image);
}

#[test]
fn transparency_log_for_key_signatures() {
    let reg = Registry::start_plain();
    let logged = push_image(&reg, "tlog/logged", "v1", 50);
    alice_logged(&reg, "sign-key", &logged, &[]);
    let unlogged = push_image(&reg, "tlog/unlogged", "v1", 51);
    sign(&reg, &unlogged, "alice");
    let bad_set = push_image(&reg, "tlog/badset", "v1", 52);
    alice_logged(&reg, "sign-key", &bad_set, &["--bad-set"]);
    let with = json!({"trustRoot": "alice", "verifyInTransparencyLog": true});
    assert_allowed(
        &verify_logged(&reg, &["alice"], with.clone(), &logged.reference),
        &logged,
    );
    assert_denied(
        &verify_logged(&reg, &["alice"], with.clone(), &unlogged.reference),
        "TLOG_INVALID",
    );
    assert_denied(
        &verify_logged(&reg, &["alice"], with.clone(), &bad_set.reference),
        "TLOG_INVALID",
    );
    // Opting out skips the log for key-based signatures.
    let without = json!({"trustRoot": "alice", "verifyInTransparencyLog": false});
    assert_allowed(
        &verify_logged(&reg, &["alice"], without, &unlogged.reference),
        &unlogged,
    );
    // With a Rekor key configured, the log is required by default.
    assert_denied(
        &verify_logged(
            &reg,
            &["alice"],
            json!({"trustRoot": "alice"}),
            &unlogged.reference,
        ),
        "TLOG_INVALID",
    );
}

#[test]
fn bundles_with_a_log_entry() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tlog/bundle", "v1", 53);
    alice_logged(&reg, "bundle", &image, &[]);
    let with = json!({"trustRoot": "alice", "verifyInTransparencyLog": true});
    assert_allowed(
        &verify_logged(&reg, &["alice"], with, &image.reference),
        &image,
    );
}

#[test]
fn attestations() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "att/app", "v1", 60);
    sign(&reg, &image, "alice");
    let slsa = "https://slsa.dev/provenance/v1";
    let sbom = "https://spdx.dev/Document";
    let with = |types: &[&str]| json!({"trustRoot": "alice", "attestations": types.iter().map(|t| json!({"predicateType": t})).collect::<Vec<_>>()});
    assert_denied(
        &verify(&reg, &["alice"], with(&[slsa]), &image.reference),
        &format!("ATTESTATION_MISSING ({slsa})"),
    );
    sigtool(
        "attest",
        &reg,
        &image,
        &["--key", &pki_path("alice.key"), "--predicate-type", slsa],
    );
    assert_allowed(
        &verify(&reg, &["alice"], with(&[slsa]), &image.reference),
        &image,
    );
    assert_denied(
        &verify(&reg, &["alice"], with(&[slsa, sbom]), &image.reference),
        &format!("ATTESTATION_MISSING ({sbom})"),
    );
    // An attestation by another key does not count for alice.
    sigtool(
        "attest",
        &reg,
        &image,
        &["--key", &pki_path("bob.key"), "--predicate-type", sbom],
    );
    assert_denied(
        &verify(&reg, &["alice"], with(&[slsa, sbom]), &image.reference),
        &format!("ATTESTATION_MISSING ({sbom})"),
    );
    // A v3 bundle attestation by alice does.
    sigtool(
        "attest",
        &reg,
        &image,
        &[
            "--key",
            &pki_path("alice.key"),
            "--predicate-type",
            sbom,
            "--as-bundle",
        ],
    );
    assert_allowed(
        &verify(&reg, &["alice"], with(&[slsa, sbom]), &image.reference),
        &image,
    );
    // An attestation for another image does not count.
    let other = push_image(&reg, "att/other", "v1", 61);
    sign(&reg, &other, "alice");
    sigtool(
        "attest",
        &reg,
        &other,
        &[
            "--key",
            &pki_path("alice.key"),
            "--predicate-type",
            slsa,
            "--subject-digest",
            &image.digest,
        ],
    );
    assert_denied(
        &verify(&reg, &["alice"], with(&[slsa]), &other.reference),
        &format!("ATTESTATION_MISSING ({slsa})"),
    );
}

/// cosign before v2.2 logged attestations as Rekor `intoto` entries (0.0.1,
/// then 0.0.2); later versions log `dsse` (or `hashedrekord` over the PAE).
/// Each form verifies when the log is required; an unlogged attestation does
/// not count.
#[test]
fn attestations_logged_in_every_rekor_entry_kind() {
    let reg = Registry::start_plain();
    let slsa = "https://slsa.dev/provenance/v1";
    let with = json!({
        "trustRoot": "alice",
        "verifyInTransparencyLog": true,
        "attestations": [{"predicateType": slsa}],
    });
    for (seed, kind) in (80..).zip(["dsse", "hashedrekord", "intoto-0.0.2", "intoto-0.0.1"]) {
        let image = push_image(&reg, &format!("att-log/{kind}"), "v1", seed);
        alice_logged(&reg, "sign-key", &image, &[]);
        alice_logged(
            &reg,
            "attest",
            &image,
            &["--predicate-type", slsa, "--tlog-kind", kind],
        );
        assert_allowed(
            &verify_logged(&reg, &["alice"], with.clone(), &image.reference),
            &image,
        );
    }
    let unlogged = push_image(&reg, "att-log/unlogged", "v1", 90);
    alice_logged(&reg, "sign-key", &unlogged, &[]);
    sigtool(
        "attest",
        &reg,
        &unlogged,
        &["--key", &pki_path("alice.key"), "--predicate-type", slsa],
    );
    assert_denied(
        &verify_logged(&reg, &["alice"], with, &unlogged.reference),
        &format!("ATTESTATION_MISSING ({slsa})"),
    );
}

/// cosign 1.x logged `.sig` signatures as Rekor `rekord` entries (later:
/// `hashedrekord`); both bind the entry to the signature.
#[test]
fn signatures_logged_as_rekord_entries() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tlog/rekord", "v1", 95);
    alice_logged(&reg, "sign-key", &image, &["--tlog-kind", "rekord"]);
    let with = json!({"trustRoot": "alice", "verifyInTransparencyLog": true});
    assert_allowed(
        &verify_logged(&reg, &["alice"], with.clone(), &image.reference),
        &image,
    );
    // The same entry kind with a tampered SET does not count.
    let bad = push_image(&reg, "tlog/rekord-bad", "v1", 96);
    alice_logged(
        &reg,
        "sign-key",
        &bad,
        &["--tlog-kind", "rekord", "--bad-set"],
    );
    assert_denied(
        &verify_logged(&reg, &["alice"], with, &bad.reference),
        "TLOG_INVALID",
    );
}
