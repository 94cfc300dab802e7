//! RFC 3161 tokens made by the independent signer
//! (`tests/fixtures/notation/notation_sign.py`, Python `asn1crypto` and
//! `cryptography`), verified by this crate: the good case and each way a
//! token must fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use portcullis_timestamp::{TimestampError, verify};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    std::env::var_os("PORTCULLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".local/venv/bin/python"))
}

fn signer(args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(workspace().join("tests/fixtures/notation/notation_sign.py"))
        .args(args)
        .output()
        .expect("run notation_sign.py");
    assert!(
        out.status.success(),
        "notation_sign.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The test PKI, made once per test process.
fn pki() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        signer(&["pki", dir.path().to_str().unwrap()]);
        dir
    })
    .path()
}

fn root(stem: &str) -> Vec<u8> {
    let pem = std::fs::read(pki().join(format!("{stem}_root.pem"))).unwrap();
    pem::parse(pem).unwrap().contents().to_vec()
}

fn token(data: &[u8], extra: &[&str]) -> Vec<u8> {
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let mut args = vec![
        "timestamp",
        "--pki",
        pki().to_str().unwrap(),
        "--data-hex",
        &hex,
    ];
    args.extend_from_slice(extra);
    let out = signer(&args);
    base64::engine::general_purpose::STANDARD
        .decode(out["token"].as_str().unwrap())
        .unwrap()
}

const SIGNATURE: &[u8] = b"the signature bytes being stamped";

#[test]
fn a_good_token_verifies_and_tells_its_time() {
    let t = token(SIGNATURE, &["--time", "2026-06-01T12:00:00Z"]);
    let stamp = verify(&t, SIGNATURE, &[root("tsa")]).expect("verifies");
    assert_eq!(stamp.time.to_rfc3339(), "2026-06-01T12:00:00+00:00");
    assert!(
        stamp.tsa.contains("Portcullis Test TSA tsa"),
        "{}",
        stamp.tsa
    );
    assert_eq!(stamp.earliest(), stamp.latest(), "no accuracy given");
}

#[test]
fn the_imprint_must_cover_the_stamped_bytes() {
    let t = token(SIGNATURE, &[]);
    assert_eq!(
        verify(&t, b"other bytes", &[root("tsa")]),
        Err(TimestampError::Imprint)
    );
    let t = token(SIGNATURE, &["--wrong-imprint"]);
    assert_eq!(
        verify(&t, SIGNATURE, &[root("tsa")]),
        Err(TimestampError::Imprint)
    );
}

#[test]
fn a_tsa_outside_the_roots_is_untrusted() {
    let t = token(SIGNATURE, &["--tsa", "other_tsa"]);
    assert!(matches!(
        verify(&t, SIGNATURE, &[root("tsa")]),
        Err(TimestampError::Untrusted(_))
    ));
    assert!(verify(&t, SIGNATURE, &[root("other_tsa")]).is_ok());
}

#[test]
fn a_time_outside_the_tsa_certificate_is_untrusted() {
    // The test TSA certificates end in 2049.
    let t = token(SIGNATURE, &["--time", "2060-01-01T00:00:00Z"]);
    assert!(matches!(
        verify(&t, SIGNATURE, &[root("tsa")]),
        Err(TimestampError::Untrusted(_))
    ));
}

#[test]
fn the_signing_certificate_v2_attribute_is_required() {
    for ess in ["none", "v1"] {
        let t = token(SIGNATURE, &["--ess", ess]);
        assert!(
            matches!(verify(&t, SIGNATURE, &[root("tsa")]), Err(TimestampError::Signature(m)) if m.contains("signing-certificate-v2")),
            "{ess}"
        );
    }
}

#[test]
fn a_changed_token_never_changes_its_meaning_nor_panics() {
    let good = token(SIGNATURE, &[]);
    let roots = [root("tsa")];
    let stamp = verify(&good, SIGNATURE, &roots).unwrap();
    // Flip every byte in turn. Parts no check relies on (the copy of the
    // root the token carries, the unsigned digest-algorithm list) may change
    // without effect; what the TSA signed never: an accepted token always
    // means the very same stamp.
    let mut rejected = 0;
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        match verify(&bad, SIGNATURE, &roots) {
            Ok(other) => assert_eq!(other, stamp, "byte {i} changed the stamp"),
            Err(_) => rejected += 1,
        }
    }
    assert!(
        rejected > good.len() / 2,
        "{rejected} of {} rejected",
        good.len()
    );
    assert!(verify(b"not a token", SIGNATURE, &roots).is_err());
    assert!(verify(&[], SIGNATURE, &roots).is_err());
}

fn leaf(stem: &str) -> Vec<u8> {
    let pem = std::fs::read(pki().join(format!("{stem}_leaf.pem"))).unwrap();
    pem::parse(pem).unwrap().contents().to_vec()
}

#[test]
fn a_response_unwraps_to_its_token_and_a_bare_token_stays() {
    let wrapped = token(SIGNATURE, &["--response"]);
    let inner = portcullis_timestamp::token_from_response(&wrapped).expect("unwraps");
    assert_ne!(inner, wrapped);
    assert!(verify(&inner, SIGNATURE, &[root("tsa")]).is_ok());
    let bare = token(SIGNATURE, &[]);
    assert_eq!(
        portcullis_timestamp::token_from_response(&bare).unwrap(),
        bare
    );
    assert!(matches!(
        portcullis_timestamp::token_from_response(b"\x30\x03\x02\x01\x00"),
        Err(TimestampError::Malformed(_))
    ));
}

#[test]
fn a_token_without_certificates_needs_the_known_tsa_certificate() {
    let t = token(SIGNATURE, &["--no-certs"]);
    assert!(matches!(
        verify(&t, SIGNATURE, &[root("tsa")]),
        Err(TimestampError::Malformed(_))
    ));
    let known = [leaf("tsa")];
    assert!(portcullis_timestamp::verify_with(&t, SIGNATURE, &[root("tsa")], &known).is_ok());
    // Knowing a certificate never makes it an anchor.
    assert!(matches!(
        portcullis_timestamp::verify_with(&t, SIGNATURE, &[root("other_tsa")], &known),
        Err(TimestampError::Untrusted(_))
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Arbitrary bytes as a token or a response: an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..800)) {
        let _ = portcullis_timestamp::token_from_response(&bytes);
        let _ = verify(&bytes, b"x", &[]);
    }
}
