//! The independent signers: `tests/fixtures/oci/mkimage.py` (builds and
//! pushes images with skopeo) and `tests/fixtures/cosign/sigtool.py`
//! (cosign-format signatures, bundles and attestations, written from the
//! specs with Python `cryptography`; it shares no code with the verifier).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::registry::Registry;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The Python with `cryptography`: `PORTCULLIS_PYTHON`, else the project
/// venv made by `scripts/install-deps.sh`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PORTCULLIS_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".local/venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv at {}: run scripts/install-deps.sh (or set PORTCULLIS_PYTHON)",
        venv.display()
    );
    venv
}

fn run_json(script: &str, args: &[String]) -> Value {
    let out = Command::new(python())
        .arg(workspace_root().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The scripts print one JSON document (pretty or compact) last.
    let start = stdout.find('{').unwrap_or(0);
    serde_json::from_str(stdout[start..].trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

fn registry_args(registry: &Registry) -> Vec<String> {
    let mut args = vec!["--registry".to_string(), registry.host()];
    match &registry.ca_path {
        Some(ca) if registry.tls => args.extend(["--tls-ca".to_string(), ca.display().to_string()]),
        _ => args.push("--insecure".to_string()),
    }
    args
}

/// An image pushed to a test registry.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `sha256:<hex>` of the manifest as stored.
    pub digest: String,
    /// `HOST:PORT/REPO:TAG`.
    pub reference: String,
    /// The repository.
    pub repo: String,
}

/// Builds a random image (deterministic per `seed`) and pushes it.
pub fn push_image(registry: &Registry, repo: &str, tag: &str, seed: u64) -> PushedImage {
    let mut args = registry_args(registry);
    args.extend([
        "--repo".into(),
        repo.into(),
        "--tag".into(),
        tag.into(),
        "--seed".into(),
        seed.to_string(),
    ]);
    let v = run_json("tests/fixtures/oci/mkimage.py", &args);
    PushedImage {
        digest: v["digest"].as_str().expect("digest").to_string(),
        reference: v["reference"].as_str().expect("reference").to_string(),
        repo: repo.to_string(),
    }
}

/// [`push_image`], then signs it with the test PKI's `key` (`alice.key`)
/// through the independent signer (`sigtool.py sign-key`).
pub fn push_signed(
    registry: &Registry,
    repo: &str,
    tag: &str,
    seed: u64,
    key: &str,
) -> PushedImage {
    let image = push_image(registry, repo, tag, seed);
    sigtool("sign-key", registry, &image, &["--key", &pki_path(key)]);
    image
}

/// Test trust material (`sigtool.py pki`), made once per test process.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        run_json(
            "tests/fixtures/cosign/sigtool.py",
            &["pki".into(), dir.path().display().to_string()],
        );
        dir
    })
    .path()
}

/// Reads a PKI file as text.
pub fn pki_file(name: &str) -> String {
    std::fs::read_to_string(pki().join(name)).unwrap_or_else(|e| panic!("pki file {name}: {e}"))
}

/// Runs a `sigtool.py` subcommand against `image` in `registry` with extra
/// arguments; returns its JSON summary.
pub fn sigtool(
    subcommand: &str,
    registry: &Registry,
    image: &PushedImage,
    extra: &[&str],
) -> Value {
    let mut args = vec![subcommand.to_string()];
    args.extend(registry_args(registry));
    args.extend([
        "--repo".into(),
        image.repo.clone(),
        "--digest".into(),
        image.digest.clone(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    run_json("tests/fixtures/cosign/sigtool.py", &args)
}

/// Path of a PKI file, as a string argument.
pub fn pki_path(name: &str) -> String {
    pki().join(name).display().to_string()
}

/// Signs `image` keylessly with the test PKI's Fulcio and Rekor, as
/// `subject` from `issuer`.
pub fn sign_keyless(
    registry: &Registry,
    image: &PushedImage,
    issuer: &str,
    subject: &str,
) -> Value {
    let fulcio = pki().display().to_string();
    sigtool(
        "sign-keyless",
        registry,
        image,
        &[
            "--fulcio-dir",
            &fulcio,
            "--issuer",
            issuer,
            "--san",
            subject,
        ],
    )
}

/// Notation test trust material (`notation_sign.py pki`), made once per
/// test process: a code-signing CA chain, an untrusted CA, a signing
/// authority and two TSAs.
pub fn notation_pki() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        run_json(
            "tests/fixtures/notation/notation_sign.py",
            &["pki".into(), dir.path().display().to_string()],
        );
        dir
    })
    .path()
}

/// Reads a Notation PKI file as text (`ca_root.pem`, `tsa_root.pem`, …).
pub fn notation_pki_file(name: &str) -> String {
    std::fs::read_to_string(notation_pki().join(name))
        .unwrap_or_else(|e| panic!("notation pki file {name}: {e}"))
}

/// Signs `image` with `notation_sign.py sign` (JWS by default) and pushes
/// the signature as a referrer; `extra` are further options
/// (`--envelope cose`, `--leaf`, `--timestamp tsa`, …).
pub fn notation_sign(registry: &Registry, image: &PushedImage, extra: &[&str]) -> Value {
    let mut args = vec!["sign".to_string()];
    args.extend(registry_args(registry));
    args.extend([
        "--repo".into(),
        image.repo.clone(),
        "--digest".into(),
        image.digest.clone(),
        "--pki".into(),
        notation_pki().display().to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    run_json("tests/fixtures/notation/notation_sign.py", &args)
}
