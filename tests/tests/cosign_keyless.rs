//! Keyless cosign against a real registry: a test CA stands in for Fulcio
//! (with the OIDC-issuer extensions and an email/URI SAN), a test CT log key
//! signs the embedded SCT, and a test Rekor key signs the SET; all made by
//! the independent signer `sigtool.py`. Also the two attacks that
//! sigstore-rs's own verifiers let through.

use portcullis_e2e::config::{config_yaml, cosign_for, keyless_root, keyless_root_regex, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{PushedImage, pki, pki_path, push_image, sigtool};
use portcullis_e2e::verify_json;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.portcullis.test";
const ALICE: &str = "alice@portcullis.test";

fn verify_identity(reg: &Registry, issuer: &str, subject: &str, image: &str) -> Value {
    verify_root(reg, keyless_root("ci", issuer, subject), image)
}

fn verify_root(reg: &Registry, root: Value, image: &str) -> Value {
    let config = config_yaml(
        vec![cosign_for(reg, json!([root]))],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "ci"}),
        )],
    );
    let (code, results, stderr) = verify_json(&config, &[image], &[]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

fn verify(reg: &Registry, image: &str) -> Value {
    verify_identity(reg, ISSUER, ALICE, image)
}

fn keyless(reg: &Registry, image: &PushedImage, extra: &[&str]) -> Value {
    let fulcio = pki().display().to_string();
    let mut args = vec![
        "--fulcio-dir",
        fulcio.as_str(),
        "--issuer",
        ISSUER,
        "--san",
        ALICE,
    ];
    args.extend_from_slice(extra);
    sigtool("sign-keyless", reg, image, &args)
}

fn reason(r: &Value) -> &str {
    r["reason"].as_str().unwrap_or_default()
}

#[test]
fn keyless_legacy_signature_is_verified_offline() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "kl/app", "v1", 100);
    keyless(&reg, &image, &[]);
    let r = verify(&reg, &image.reference);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], image.digest.as_str());
    // Anchored regexes work too.
    let root = keyless_root_regex(
        "ci",
        "https://issuer\\.portcullis\\.test",
        ".*@portcullis\\.test",
    );
    let r = verify_root(&reg, root, &image.reference);
    assert_eq!(r["allowed"], true, "{r}");
    let root = keyless_root_regex(
        "ci",
        "https://issuer\\.portcullis\\.test",
        "alice@portcullis",
    );
    let r = verify_root(&reg, root, &image.reference);
    assert_eq!(reason(&r), "IDENTITY_MISMATCH", "regexes are anchored: {r}");
}

#[test]
fn keyless_uri_identity_and_v3_bundle() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "kl/bundle", "v1", 101);
    let fulcio = pki().display().to_string();
    let workflow = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main";
    sigtool(
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
            workflow,
            "--san-type",
            "uri",
        ],
    );
    let r = verify_identity(&reg, ISSUER, workflow, &image.reference);
    assert_eq!(r["allowed"], true, "{r}");
    let r = verify_identity(&reg, ISSUER, "https://github.com/org/.*", &image.reference);
    assert_eq!(
        reason(&r),
        "IDENTITY_MISMATCH",
        "a plain string is not a regex: {r}"
    );
    let r = verify_root(
        &reg,
        keyless_root_regex("ci", ".*", "https://github\\.com/org/.*"),
        &image.reference,
    );
    assert_eq!(r["allowed"], true, "{r}");
    let r = verify_identity(
        &reg,
        ISSUER,
        "https://github.com/other/repo/.*",
        &image.reference,
    );
    assert_eq!(reason(&r), "IDENTITY_MISMATCH", "{r}");
}

#[test]
fn wrong_identity_issuer_and_subject() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "kl/who", "v1", 102);
    keyless(&reg, &image, &[]);
    let r = verify_identity(&reg, "https://accounts.google.com", ALICE, &image.reference);
    assert_eq!(reason(&r), "IDENTITY_MISMATCH", "{r}");
    let r = verify_identity(&reg, ISSUER, "mallory@portcullis.test", &image.reference);
    assert_eq!(reason(&r), "IDENTITY_MISMATCH", "{r}");
    // Regexes are anchored: a prefix is not a match.
    let r = verify_identity(&reg, ISSUER, "alice@portcullis", &image.reference);
    assert_eq!(reason(&r), "IDENTITY_MISMATCH", "{r}");
}

#[test]
fn certificate_problems() {
    let reg = Registry::start_plain();
    let cases: [(&str, &[&str], &str); 5] = [
        ("wrongca", &["--ca-root", "wrong"], "CERT_INVALID"),
        (
            "expired",
            &[
                "--not-before",
                "2020-01-01T00:00:00Z",
                "--not-after",
                "2020-01-01T00:10:00Z",
            ],
            "CERT_INVALID",
        ),
        ("nosct", &["--no-sct"], "CERT_INVALID"),
        ("badsct", &["--bad-sct"], "CERT_INVALID"),
        ("unlogged", &["--no-rekor"], "TLOG_INVALID"),
    ];
    for (i, (name, args, expected)) in cases.iter().enumerate() {
        let image = push_image(&reg, &format!("kl/{name}"), "v1", 110 + i as u64);
        keyless(&reg, &image, args);
        let r = verify(&reg, &image.reference);
        assert_eq!(r["allowed"], false, "{name}: {r}");
        assert_eq!(reason(&r), *expected, "{name}: {r}");
    }
    let image = push_image(&reg, "kl/badset", "v1", 120);
    keyless(&reg, &image, &["--bad-set"]);
    assert_eq!(reason(&verify(&reg, &image.reference)), "TLOG_INVALID");
    // A SET by a log we do not trust.
    let image = push_image(&reg, "kl/otherlog", "v1", 121);
    keyless(&reg, &image, &["--rekor-key", &pki_path("bob.key")]);
    assert_eq!(reason(&verify(&reg, &image.reference)), "TLOG_INVALID");
}

#[test]
fn one_certificate_is_one_vote_however_many_identities_match() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "kl/votes", "v1", 125);
    keyless(&reg, &image, &[]);
    let roots = json!([
        {"name": "anyone", "keyless": {"issuer": ISSUER, "subjectRegex": ".*@portcullis\\.test"}},
        {"name": "alice", "keyless": {"issuer": ISSUER, "subject": ALICE}},
    ]);
    let verify_threshold = || {
        let config = config_yaml(
            vec![cosign_for(&reg, roots.clone())],
            vec![rule(
                &format!("{}/**", reg.host()),
                "signed",
                json!({"trustRoot": "*", "threshold": 2}),
            )],
        );
        let (_, results, stderr) = verify_json(&config, &[&image.reference], &[]);
        results
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{stderr}"))
    };
    let r = verify_threshold();
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(reason(&r), "THRESHOLD_NOT_MET (1 of 2)", "{r}");
    // A second signature (another certificate) is a second vote.
    let fulcio = pki().display().to_string();
    sigtool(
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
        ],
    );
    let r = verify_threshold();
    assert_eq!(r["allowed"], true, "{r}");
}

/// A private Fulcio whose intermediate has the extended key usage `eku`
/// (`none`: no extension), a keyless signature from it with leaf EKU
/// `leaf_eku`, and the verifier's answer.
fn private_fulcio(eku: &str, leaf_eku: &str, seed: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    let out = std::process::Command::new(portcullis_e2e::signer::python())
        .arg(portcullis_e2e::signer::workspace_root().join("tests/fixtures/cosign/sigtool.py"))
        .args(["pki", pki_dir.to_str().unwrap(), "--intermediate-eku", eku])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = |name: &str| std::fs::read_to_string(pki_dir.join(name)).unwrap();
    let reg = Registry::start_plain();
    let image = push_image(&reg, "kl/private", "v1", seed);
    sigtool(
        "sign-keyless",
        &reg,
        &image,
        &[
            "--fulcio-dir",
            pki_dir.to_str().unwrap(),
            "--issuer",
            ISSUER,
            "--san",
            ALICE,
            "--leaf-eku",
            leaf_eku,
        ],
    );
    let validator = json!({
        "name": "signed",
        "type": "cosign",
        "insecureRegistries": [reg.host()],
        "host": {
            "rekorPubkey": file("rekor.pub"),
            "ctLogPubkey": file("ctlog.pub"),
            "fulcioCert": file("fulcio_chain.pem"),
        },
        "trustRoots": [keyless_root("ci", ISSUER, ALICE)],
    });
    let config = config_yaml(
        vec![validator],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "ci"}),
        )],
    );
    let (_, results, stderr) = verify_json(&config, &[&image.reference], &[]);
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{stderr}"))
}

#[test]
fn a_ca_without_extended_key_usage_is_unrestricted_as_in_cosign() {
    let r = private_fulcio("none", "codesigning", 150);
    assert_eq!(r["allowed"], true, "intermediate without EKU: {r}");
    let r = private_fulcio("serverauth", "codesigning", 151);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(
        reason(&r),
        "CERT_INVALID",
        "intermediate limited to serverAuth: {r}"
    );
    let r = private_fulcio("codesigning", "none", 152);
    assert_eq!(reason(&r), "CERT_INVALID", "leaf without EKU: {r}");
    assert!(
        r["message"].as_str().unwrap().contains("codeSigning"),
        "{r}"
    );
    let r = private_fulcio("none", "serverauth", 153);
    assert_eq!(reason(&r), "CERT_INVALID", "leaf without codeSigning: {r}");
}

/// The signature layer of an image's `.sig` manifest, with the manifest.
async fn sig_manifest(reg: &Registry, image: &PushedImage) -> (Value, String) {
    let tag = format!("{}.sig", image.digest.replace(':', "-"));
    reg.get_manifest(&image.repo, &tag).await
}

#[tokio::test]
async fn borrowed_certificate_is_rejected() {
    // Alice's genuine keyless signature on image A...
    let reg = Registry::start_plain();
    let a = push_image(&reg, "attack/a", "v1", 130);
    keyless(&reg, &a, &[]);
    let (a_manifest, _) = sig_manifest(&reg, &a).await;
    let a_annotations = a_manifest["layers"][0]["annotations"].clone();
    // ...and the attacker's own signature on image B, dressed in Alice's
    // certificate and Rekor bundle.
    let b = push_image(&reg, "attack/b", "v1", 131);
    sigtool("sign-key", &reg, &b, &["--key", &pki_path("bob.key")]);
    let (mut b_manifest, media_type) = sig_manifest(&reg, &b).await;
    for key in [
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
        "dev.sigstore.cosign/bundle",
    ] {
        b_manifest["layers"][0]["annotations"][key] = a_annotations[key].clone();
    }
    let tag = format!("{}.sig", b.digest.replace(':', "-"));
    reg.put_manifest(&b.repo, &tag, &b_manifest, &media_type)
        .await;
    let r = verify(&reg, &b.reference);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(reason(&r), "NO_MATCHING_SIGNATURE", "{r}");
    // Alice's own image still verifies.
    assert_eq!(verify(&reg, &a.reference)["allowed"], true);
}

#[tokio::test]
async fn rekor_entry_of_another_signature_is_rejected() {
    let reg = Registry::start_plain();
    let a = push_image(&reg, "attack/ra", "v1", 140);
    let b = push_image(&reg, "attack/rb", "v1", 141);
    keyless(&reg, &a, &[]);
    // B is signed by Alice but never logged; the attacker attaches A's
    // (valid, genuinely signed) Rekor bundle.
    keyless(&reg, &b, &["--no-rekor"]);
    let (a_manifest, _) = sig_manifest(&reg, &a).await;
    let (mut b_manifest, media_type) = sig_manifest(&reg, &b).await;
    b_manifest["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"] =
        a_manifest["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"].clone();
    let tag = format!("{}.sig", b.digest.replace(':', "-"));
    reg.put_manifest(&b.repo, &tag, &b_manifest, &media_type)
        .await;
    let r = verify(&reg, &b.reference);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(reason(&r), "TLOG_INVALID", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or_default()
            .contains("another signature"),
        "{r}"
    );
}
