//! Sigstore bundles without a signed entry timestamp: Rekor v2 entries
//! (hashedrekord 0.0.2, an inclusion proof against a checkpoint signed by
//! the log's Ed25519 key) with RFC 3161 timestamps, and Rekor v1 entries
//! whose inclusion proof is checked with their SET. Everything is made by
//! the independent signer `sigtool.py` (its Merkle log and checkpoints) and
//! the notation signer's TSAs (`notation_sign.py`, RFC 3161 with
//! `asn1crypto`), against a real registry and through the gateway.

use portcullis_e2e::config::{config_yaml, cosign_for, key_roots, keyless_root, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::review::{allowed, patch};
use portcullis_e2e::signer::{
    PushedImage, notation_pki, notation_pki_file, pki, pki_file, pki_path, push_image, sigtool,
};
use portcullis_e2e::verdicts::{assert_allowed, assert_denied, verdict};
use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.portcullis.test";
const ALICE: &str = "alice@portcullis.test";
const REKOR2_URL: &str = "https://rekor2.portcullis.test";

/// The cosign validator with the test Fulcio, CT and Rekor v1 keys plus
/// the Rekor v2 log and the notation signer's TSA (`tsa`).
fn validator(reg: &Registry, roots: Value) -> Value {
    let mut v = cosign_for(reg, roots);
    v["host"]["rekorV2Pubkey"] = json!(pki_file("rekor2.pub"));
    v["host"]["rekorV2Url"] = json!(REKOR2_URL);
    v["host"]["tsaCertChain"] =
        json!(notation_pki_file("tsa_leaf.pem") + &notation_pki_file("tsa_root.pem"));
    v
}

fn config(reg: &Registry, roots: Value, with: Value) -> String {
    config_yaml(
        vec![validator(reg, roots)],
        vec![rule(&format!("{}/**", reg.host()), "signed", with)],
    )
}

fn keyless_config(reg: &Registry) -> String {
    config(
        reg,
        json!([keyless_root("ci", ISSUER, ALICE)]),
        json!({"trustRoot": "ci"}),
    )
}

/// A keyless bundle with `extra` signer options.
fn keyless_bundle(reg: &Registry, image: &PushedImage, extra: &[&str]) -> Value {
    let fulcio = pki().display().to_string();
    let tsa = notation_pki().display().to_string();
    let mut args = vec![
        "--keyless",
        "--fulcio-dir",
        fulcio.as_str(),
        "--issuer",
        ISSUER,
        "--san",
        ALICE,
        "--tsa-pki",
        tsa.as_str(),
    ];
    args.extend_from_slice(extra);
    sigtool("bundle", reg, image, &args)
}

#[test]
fn rekor_v2_keyless_bundles_with_a_timestamp_are_allowed() {
    let reg = Registry::start_plain();
    for (i, content) in ["dsse", "message-signature"].iter().enumerate() {
        let image = push_image(&reg, &format!("v2/{content}"), "v1", 1200 + i as u64);
        keyless_bundle(
            &reg,
            &image,
            &["--content", content, "--rekor-v2", "--timestamp", "tsa"],
        );
        assert_allowed(&verdict(&keyless_config(&reg), &image.reference), &image);
    }
    // A token without embedded certificates: the configured chain supplies
    // the TSA's certificate.
    let image = push_image(&reg, "v2/nocerts", "v1", 1202);
    keyless_bundle(
        &reg,
        &image,
        &["--rekor-v2", "--timestamp", "tsa", "--ts-no-certs"],
    );
    assert_allowed(&verdict(&keyless_config(&reg), &image.reference), &image);
}

#[test]
fn rekor_v2_key_based_bundle_is_allowed_and_needs_its_proof() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "v2/key", "v1", 1210);
    let tsa = notation_pki().display().to_string();
    let rekor2 = pki_path("rekor2.key");
    sigtool(
        "bundle",
        &reg,
        &image,
        &[
            "--key",
            &pki_path("alice.key"),
            "--rekor-v2",
            "--rekor2-key",
            &rekor2,
            "--tsa-pki",
            &tsa,
        ],
    );
    let cfg = config(
        &reg,
        key_roots(&["alice"]),
        json!({"trustRoot": "alice", "verifyInTransparencyLog": true}),
    );
    assert_allowed(&verdict(&cfg, &image.reference), &image);
    let forged = push_image(&reg, "v2/key-forged", "v1", 1211);
    sigtool(
        "bundle",
        &reg,
        &forged,
        &[
            "--key",
            &pki_path("alice.key"),
            "--rekor-v2",
            "--rekor2-key",
            &rekor2,
            "--v2-attack",
            "forged-checkpoint",
        ],
    );
    assert_denied(
        &verdict(&cfg, &forged.reference),
        "TLOG_INVALID",
        "checkpoint",
    );
}

#[test]
fn inclusion_attacks_are_denied() {
    let reg = Registry::start_plain();
    for (i, (attack, part)) in [
        ("proof-other-leaf", "does not reach the checkpoint's root"),
        ("forged-checkpoint", "not signed by the log's key"),
        ("stale-checkpoint", "does not reach the checkpoint's root"),
    ]
    .iter()
    .enumerate()
    {
        let image = push_image(&reg, &format!("v2/{attack}"), "v1", 1220 + i as u64);
        keyless_bundle(
            &reg,
            &image,
            &["--rekor-v2", "--timestamp", "tsa", "--v2-attack", attack],
        );
        assert_denied(
            &verdict(&keyless_config(&reg), &image.reference),
            "TLOG_INVALID",
            part,
        );
    }
}

#[test]
fn timestamp_attacks_are_denied() {
    let reg = Registry::start_plain();
    // A timestamp over another signature.
    let image = push_image(&reg, "ts/other-sig", "v1", 1230);
    keyless_bundle(
        &reg,
        &image,
        &["--rekor-v2", "--timestamp", "tsa", "--ts-other-signature"],
    );
    assert_denied(
        &verdict(&keyless_config(&reg), &image.reference),
        "TIMESTAMP_INVALID",
        "message imprint",
    );
    // A timestamp from a TSA the config does not trust.
    let image = push_image(&reg, "ts/untrusted", "v1", 1231);
    keyless_bundle(&reg, &image, &["--rekor-v2", "--timestamp", "other_tsa"]);
    assert_denied(
        &verdict(&keyless_config(&reg), &image.reference),
        "TIMESTAMP_INVALID",
        "not trusted",
    );
    // A timestamp after the TSA's own certificate expired (2049).
    let image = push_image(&reg, "ts/tsa-expired", "v1", 1232);
    keyless_bundle(
        &reg,
        &image,
        &[
            "--rekor-v2",
            "--timestamp",
            "tsa",
            "--ts-time",
            "2051-01-01T00:00:00Z",
        ],
    );
    assert_denied(
        &verdict(&keyless_config(&reg), &image.reference),
        "TIMESTAMP_INVALID",
        "not trusted",
    );
    // A timestamp an hour after the signing certificate (10 minutes) ended.
    let image = push_image(&reg, "ts/cert-expired", "v1", 1233);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    keyless_bundle(
        &reg,
        &image,
        &["--rekor-v2", "--timestamp", "tsa", "--ts-time", &later],
    );
    assert_denied(
        &verdict(&keyless_config(&reg), &image.reference),
        "CERT_INVALID",
        "",
    );
    // Neither a SET nor a timestamp.
    let image = push_image(&reg, "ts/none", "v1", 1234);
    keyless_bundle(&reg, &image, &["--rekor-v2"]);
    assert_denied(
        &verdict(&keyless_config(&reg), &image.reference),
        "TIMESTAMP_INVALID",
        "no verified time",
    );
}

#[test]
fn sigstore_policy_sets_the_time_sources() {
    let reg = Registry::start_plain();
    // A Rekor v1 bundle with a SET and no timestamp: the default admits it;
    // a rule that wants a signed timestamp does not.
    let image = push_image(&reg, "policy/v1", "v1", 1240);
    keyless_bundle(&reg, &image, &[]);
    assert_allowed(&verdict(&keyless_config(&reg), &image.reference), &image);
    let wants_tsa = config(
        &reg,
        json!([keyless_root("ci", ISSUER, ALICE)]),
        json!({"trustRoot": "ci", "sigstorePolicy": {"signedTimestamps": 1}}),
    );
    assert_denied(
        &verdict(&wants_tsa, &image.reference),
        "TIMESTAMP_INVALID",
        "0 of 1 required RFC 3161 timestamps",
    );
    // The same with a timestamp as well: admitted under both.
    let stamped = push_image(&reg, "policy/v1-stamped", "v1", 1241);
    keyless_bundle(&reg, &stamped, &["--timestamp", "tsa"]);
    assert_allowed(&verdict(&wants_tsa, &stamped.reference), &stamped);
    // A v2 bundle when the rule wants a SET-backed integration time.
    let v2 = push_image(&reg, "policy/v2", "v1", 1242);
    keyless_bundle(&reg, &v2, &["--rekor-v2", "--timestamp", "tsa"]);
    let wants_set = config(
        &reg,
        json!([keyless_root("ci", ISSUER, ALICE)]),
        json!({"trustRoot": "ci", "sigstorePolicy": {"integratedTimestamps": 1}}),
    );
    assert_denied(
        &verdict(&wants_set, &v2.reference),
        "TIMESTAMP_INVALID",
        "signed entry timestamps",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekor_v2_signed_image_is_allowed_and_pinned_through_the_gateway() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "gw/v2", "v1", 1250));
    tokio::task::block_in_place(|| {
        keyless_bundle(&reg, &image, &["--rekor-v2", "--timestamp", "tsa"])
    });
    let verifier = tokio::task::block_in_place(|| Verifier::start(&keyless_config(&reg), &[]));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let review = Review::pod(pod_spec(&[&image.reference], &[], &[]));
    let (_, body) = gw.post_json("/mutate", &review.json).await;
    assert!(allowed(&body), "{body}");
    assert!(
        patch(&body).is_some_and(|p| p
            .to_string()
            .contains(&format!("{}@{}", image.reference, image.digest))),
        "{body}"
    );
}

#[test]
fn a_rekor_v1_entry_with_a_valid_set_and_a_broken_proof_is_denied() {
    let reg = Registry::start_plain();
    let good = push_image(&reg, "v1/proof", "v1", 1260);
    keyless_bundle(&reg, &good, &[]);
    assert_allowed(&verdict(&keyless_config(&reg), &good.reference), &good);
    let broken = push_image(&reg, "v1/bad-proof", "v1", 1261);
    keyless_bundle(&reg, &broken, &["--v1-bad-proof"]);
    assert_denied(
        &verdict(&keyless_config(&reg), &broken.reference),
        "TLOG_INVALID",
        "does not reach the checkpoint's root",
    );
}
