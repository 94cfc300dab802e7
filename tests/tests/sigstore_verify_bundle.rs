//! `portcullis-verifier sigstore verify-bundle`, the sigstore-conformance
//! entry point, on a real public-good bundle made by cosign v3 in a GitHub
//! Actions release workflow (`verifier/tests/data/public-good/README.md`
//! has its provenance), through the wrapper script the suite would call.

use std::process::Command;

use portcullis_e2e::bin_path;

const BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../verifier/tests/data/public-good/kubewarden-controller-v1.34.0.sigstore.json"
);
const SUBJECT: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const IDENTITY: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn verify_bundle(args: &[&str]) -> (i32, String) {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/sigstore-conformance-entrypoint"
    ))
    .env("PORTCULLIS_VERIFIER", bin_path("portcullis-verifier"))
    .env("PORTCULLIS_LOG", "error")
    .arg("verify-bundle")
    .args(args)
    .output()
    .expect("run the entry point");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_real_bundle_verifies_for_its_subject_and_identity_only() {
    let ok = |identity: &str, subject: &str| {
        verify_bundle(&[
            "--bundle",
            BUNDLE,
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            ISSUER,
            subject,
        ])
    };
    let (code, stderr) = ok(IDENTITY, SUBJECT);
    assert_eq!(code, 0, "{stderr}");
    // Another workflow of the same repository.
    let (code, stderr) = ok(&IDENTITY.replace("release.yml", "ci.yml"), SUBJECT);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Identity"), "{stderr}");
    // Another subject.
    let (code, stderr) = ok(IDENTITY, &SUBJECT.replace("c811", "c812"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Digest"), "{stderr}");
    // A file that is not the subject.
    let (code, stderr) = ok(IDENTITY, BUNDLE);
    assert_eq!(code, 1, "{stderr}");
}

/// `--bundle` and the release identity, after `extra`, for `target`.
fn with_identity<'a>(extra: &[&'a str], target: &'a str) -> Vec<&'a str> {
    let mut args = extra.to_vec();
    args.extend([
        "--bundle",
        BUNDLE,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        target,
    ]);
    args
}

#[test]
fn bad_invocations_are_usage_errors() {
    for args in [
        // Neither a key nor an identity.
        vec!["--bundle", BUNDLE, SUBJECT],
        // The staging root is not shipped.
        with_identity(&["--staging"], SUBJECT),
        // Not a file, not a digest.
        with_identity(&[], "sha256:short"),
    ] {
        let (code, stderr) = verify_bundle(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}
