//! The Sigstore trust root loaded through TUF (tough) at start-up: from a
//! mirror (a TUF repository made by the independent `mktuf.py`, holding the
//! test PKI's `trusted_root.json`), and the public-good snapshot shipped in
//! the binary. Failures stop start-up with a clear error.

use portcullis_e2e::config::{config_yaml, keyless_root, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{pki, push_image, sign_keyless};
use portcullis_e2e::tuf;
use portcullis_e2e::verify_json;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.portcullis.test";
const ALICE: &str = "alice@portcullis.test";

/// Builds a TUF repository with the test PKI's trusted root.
fn mktuf(out: &std::path::Path, extra: &[&str]) -> Value {
    tuf::mktuf(out, &pki().join("trusted_root.json"), extra)
}

fn config(reg: &Registry, host: Value) -> String {
    let validator = json!({
        "name": "signed",
        "type": "cosign",
        "insecureRegistries": [reg.host()],
        "host": host,
        "trustRoots": [keyless_root("ci", ISSUER, ALICE)],
    });
    config_yaml(
        vec![validator],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "ci"}),
        )],
    )
}

#[test]
fn keyless_with_trust_from_a_tuf_mirror() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tuf/app", "v1", 600);
    sign_keyless(&reg, &image, ISSUER, ALICE);
    let dir = tempfile::tempdir().unwrap();
    let repo = mktuf(&dir.path().join("repo"), &[]);
    let host = tuf::mirror_host(&repo);
    let (code, results, stderr) =
        verify_json(&config(&reg, host.clone()), &[&image.reference], &[]);
    assert_eq!(code, 0, "{stderr} {results:?}");
    assert_eq!(results[0]["allowed"], true);

    // A tampered target: start-up fails, naming the trust root.
    let bad = mktuf(&dir.path().join("bad"), &["--tamper-target"]);
    let host = tuf::mirror_host(&bad);
    let (code, results, stderr) = verify_json(&config(&reg, host), &[&image.reference], &[]);
    assert_eq!(code, 2, "{results:?}");
    assert!(results.is_empty());
    assert!(
        stderr.contains("validator `signed`: sigstore trust root:"),
        "{stderr}"
    );

    // An unreachable mirror: the same.
    let host =
        json!({"tufMirror": "http://127.0.0.1:9/metadata", "tufRoot": tuf::find(&repo, "root")});
    let (code, _, stderr) = verify_json(&config(&reg, host), &[&image.reference], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("sigstore trust root:"), "{stderr}");
}

#[test]
fn public_good_snapshot_is_the_keyless_default() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tuf/pg", "v1", 601);
    sign_keyless(&reg, &image, ISSUER, ALICE);
    // No Fulcio/Rekor/CT material: the shipped public-good root is loaded,
    // and a certificate from the test CA does not chain to it.
    let (code, results, stderr) = verify_json(&config(&reg, json!({})), &[&image.reference], &[]);
    assert_eq!(code, 1, "{stderr}");
    let reason = results[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason == "TLOG_INVALID" || reason == "CERT_INVALID",
        "{reason}: {}",
        results[0]
    );
}

#[test]
fn rekor_v2_logs_and_timestamp_authorities_come_from_the_trusted_root() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let repo = mktuf(&dir.path().join("repo"), &[]);
    let host = tuf::mirror_host(&repo);
    let fulcio = pki().display().to_string();
    let sign = |repo_name: &str, seed: u64, tsa: &str| {
        let image = push_image(&reg, repo_name, "v1", seed);
        portcullis_e2e::signer::sigtool(
            "bundle",
            &reg,
            &image,
            &[
                "--keyless",
                "--fulcio-dir",
                &fulcio,
                "--issuer",
                ISSUER,
                "--san",
                ALICE,
                "--rekor-v2",
                "--timestamp",
                tsa,
                "--tsa-pki",
                &fulcio,
            ],
        );
        image
    };
    // The Rekor v2 log and the TSA, both from the trusted root.
    let image = sign("tuf/v2", 610, "tsa");
    let (_, results, stderr) = verify_json(&config(&reg, host.clone()), &[&image.reference], &[]);
    assert_eq!(results[0]["allowed"], true, "{stderr} {results:?}");
    // A TSA whose validFor ended in 2021: its timestamp of today does not
    // count, and nothing else gives a time.
    let image = sign("tuf/v2-window", 611, "tsa_window");
    let (_, results, stderr) = verify_json(&config(&reg, host), &[&image.reference], &[]);
    assert_eq!(results[0]["allowed"], false, "{stderr}");
    assert!(
        results[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("TIMESTAMP_INVALID"),
        "{results:?}"
    );
    assert!(
        results[0]["message"]
            .as_str()
            .unwrap()
            .contains("outside its TSA's validity window"),
        "{results:?}"
    );
}
