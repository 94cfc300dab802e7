//! Tests of the trust-root loader against TUF repositories built by the
//! independent fixture script `tests/fixtures/tuf/mktuf.py` (stdlib +
//! `cryptography`), the test PKI of `tests/fixtures/cosign/sigtool.py`, and a
//! copy of Sigstore's public-good TUF repository
//! (`verifier/sigstore-trust/public-good`, shipped with the verifier).
//!
//! Python: `$PORTCULLIS_PYTHON`, else the project venv. Fixtures:
//! `$PORTCULLIS_FIXTURES`, else the workspace `tests/fixtures`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use portcullis_sigstore_trust::{
    CaCert, LogKey, TrustRootError, TufSource, load_detailed, load_shipped, load_via_tuf,
    parse_trusted_root, parse_trusted_root_detailed,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn python() -> String {
    std::env::var("PORTCULLIS_PYTHON").unwrap_or_else(|_| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/venv/bin/python");
        venv.display().to_string()
    })
}

fn fixtures() -> PathBuf {
    std::env::var_os("PORTCULLIS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"))
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    assert!(
        out.status.success(),
        "{} {:?} failed:\n{}",
        python(),
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The sigtool test PKI, made once per test binary.
fn pki() -> &'static Path {
    static PKI: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, dir) = PKI.get_or_init(|| {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("pki");
        let sigtool = fixtures().join("cosign/sigtool.py");
        run_python(&[sigtool.to_str().unwrap(), "pki", dir.to_str().unwrap()]);
        (tmp, dir)
    });
    dir
}

fn sample_trusted_root() -> Vec<u8> {
    std::fs::read(pki().join("trusted_root.json")).unwrap()
}

/// A TUF repository made by mktuf.py with the sample trusted root (or
/// `trusted_root`), and its JSON summary.
struct Repo {
    _tmp: TempDir,
    summary: Value,
}

impl Repo {
    fn new(extra: &[&str]) -> Repo {
        Repo::with_target(&pki().join("trusted_root.json"), extra)
    }

    fn with_target(trusted_root: &Path, extra: &[&str]) -> Repo {
        let tmp = TempDir::new().unwrap();
        let out = tmp.path().join("repo");
        let mktuf = fixtures().join("tuf/mktuf.py");
        let mut args = vec![
            mktuf.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--trusted-root",
            trusted_root.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let summary = serde_json::from_str(&run_python(&args)).unwrap();
        Repo { _tmp: tmp, summary }
    }

    fn s(&self, key: &str) -> String {
        self.summary[key].as_str().unwrap().to_string()
    }

    fn root(&self) -> Vec<u8> {
        std::fs::read(self.s("root")).unwrap()
    }

    fn dir(&self) -> PathBuf {
        Path::new(&self.s("metadata_dir"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    async fn load(&self) -> Result<portcullis_sigstore_trust::SigstoreTrust, TrustRootError> {
        load_via_tuf(
            &self.root(),
            &self.s("metadata_url"),
            &self.s("targets_url"),
            None,
            Utc::now(),
        )
        .await
    }
}

fn pem_der(path: &Path) -> Vec<u8> {
    pem::parse(std::fs::read(path).unwrap())
        .unwrap()
        .contents()
        .to_vec()
}

fn sha(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn public_good() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("public-good")
}

fn public_good_trusted_root() -> Vec<u8> {
    std::fs::read(public_good().join(
        "targets/6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66.trusted_root.json",
    ))
    .unwrap()
}

fn public_good_root(version: u32) -> Vec<u8> {
    std::fs::read(public_good().join(format!("metadata/{version}.root.json"))).unwrap()
}

const REKOR_V1_LOG_ID: &str = "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d";
const CT_2022_LOG_ID: &str = "dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e";
const CT_TEST_LOG_ID: &str = "086092f02852ff6845d1d16b27849c456718ac163dc338d26de6bc2206366f72";

/// The log ids in `map`, sorted.
fn ids(map: &std::collections::HashMap<[u8; 32], LogKey>) -> Vec<String> {
    let mut v: Vec<String> = map.keys().map(|k| hex(k)).collect();
    v.sort();
    v
}

/// The log ids in `map` whose key vouches at `time`, sorted.
fn ids_at(map: &std::collections::HashMap<[u8; 32], LogKey>, time: DateTime<Utc>) -> Vec<String> {
    let mut v: Vec<String> = map
        .iter()
        .filter(|(_, key)| key.valid.contains(time.timestamp()))
        .map(|(k, _)| hex(k))
        .collect();
    v.sort();
    v
}

/// How many Fulcio certificates vouch at `time`.
fn fulcio_at(certs: &[CaCert], time: DateTime<Utc>) -> usize {
    certs
        .iter()
        .filter(|c| c.valid.contains(time.timestamp()))
        .count()
}

/// The sample trusted root with `edit` applied to its JSON.
fn edited(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample_trusted_root()).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn expect_field_error(json: &[u8], field_prefix: &str, needle: &str) {
    match parse_trusted_root(json, Utc::now()) {
        Err(e @ TrustRootError::Field { .. }) => {
            let msg = e.to_string();
            let TrustRootError::Field { field, .. } = &e else {
                unreachable!()
            };
            assert!(field.starts_with(field_prefix), "field {field} in {msg}");
            assert!(msg.contains(needle), "{msg}");
        }
        other => panic!("expected a field error at {field_prefix}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// trusted_root.json parsing
// ---------------------------------------------------------------------------

#[test]
fn sample_trusted_root_gives_the_sigtool_pki() {
    let trust = parse_trusted_root(&sample_trusted_root(), Utc::now()).unwrap();
    let rekor = pem_der(&pki().join("rekor.pub"));
    let ct = pem_der(&pki().join("ctlog.pub"));
    assert_eq!(trust.rekor_keys.len(), 1);
    assert_eq!(
        trust.rekor_keys.get(&sha(&rekor)).map(|k| &k.spki_der),
        Some(&rekor)
    );
    assert_eq!(trust.ct_keys.len(), 1);
    assert_eq!(trust.ct_keys.get(&sha(&ct)).map(|k| &k.spki_der), Some(&ct));
    assert_eq!(
        trust
            .fulcio_certs
            .iter()
            .map(|c| c.der.clone())
            .collect::<Vec<_>>(),
        vec![
            pem_der(&pki().join("fulcio_intermediate.pem")),
            pem_der(&pki().join("fulcio_root.pem")),
        ]
    );
}

#[test]
fn public_good_trusted_root_today() {
    let now = at("2026-01-01T00:00:00Z");
    let report = parse_trusted_root_detailed(&public_good_trusted_root(), now).unwrap();
    let trust = &report.trust;
    assert_eq!(ids_at(&trust.rekor_keys, now), vec![REKOR_V1_LOG_ID]);
    assert_eq!(ids_at(&trust.ct_keys, now), vec![CT_2022_LOG_ID]);
    // The retired test CT log is kept, for SCTs made in its window.
    assert_eq!(ids(&trust.ct_keys), {
        let mut v = vec![CT_2022_LOG_ID, CT_TEST_LOG_ID];
        v.sort();
        v
    });
    // The current Fulcio CA (intermediate + root) vouches now; the retired
    // 2021 root is kept for certificates used in its window.
    assert_eq!(fulcio_at(&trust.fulcio_certs, now), 2);
    assert_eq!(trust.fulcio_certs.len(), 3);
    for cert in &trust.fulcio_certs {
        <x509_cert::Certificate as der::Decode>::from_der(&cert.der).unwrap();
    }
    // The Rekor v2 log is kept for checkpoints, under its C2SP key hash,
    // and the timestamp authority for RFC 3161 timestamps.
    let v2: Vec<_> = trust.rekor_v2_logs.iter().collect();
    assert_eq!(v2.len(), 1, "{v2:?}");
    let (id, log) = v2[0];
    assert_eq!(log.origin, "log2025-1.rekor.sigstore.dev");
    assert_eq!(
        *id,
        portcullis_sigstore_trust::CheckpointLog::log_id(&log.origin, &log.raw_key)
    );
    assert_eq!(trust.tsas.len(), 1);
    assert!(trust.tsas[0].chain.len() >= 2, "TSA leaf .. root");
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
}

#[test]
fn public_good_trusted_root_in_mid_2022() {
    // Before the 2022 CT log and the Rekor v2 log existed, while the first
    // Fulcio CA and the test CT log were current (and the second CA too).
    let then = at("2022-06-01T00:00:00Z");
    let trust = parse_trusted_root(&public_good_trusted_root(), then).unwrap();
    assert_eq!(ids_at(&trust.rekor_keys, then), vec![REKOR_V1_LOG_ID]);
    assert_eq!(ids_at(&trust.ct_keys, then), vec![CT_TEST_LOG_ID]);
    assert_eq!(
        fulcio_at(&trust.fulcio_certs, then),
        3,
        "old root + new intermediate + new root"
    );
}

#[test]
fn validity_windows_are_inclusive() {
    // ctfe.sigstore.dev/test ends at 2022-10-31T23:59:59.999Z.
    let trust = parse_trusted_root(&public_good_trusted_root(), Utc::now()).unwrap();
    let test_log = CT_TEST_LOG_ID.to_string();
    let log_2022 = CT_2022_LOG_ID.to_string();
    assert!(ids_at(&trust.ct_keys, at("2022-10-31T23:59:59Z")).contains(&test_log));
    assert!(!ids_at(&trust.ct_keys, at("2022-11-01T00:00:00Z")).contains(&test_log));
    // The 2022 CT log starts at 2022-10-20T00:00:00Z.
    assert!(ids_at(&trust.ct_keys, at("2022-10-20T00:00:00Z")).contains(&log_2022));
    assert!(!ids_at(&trust.ct_keys, at("2022-10-19T23:59:59Z")).contains(&log_2022));
}

#[test]
fn nothing_valid_is_an_error() {
    // The sample PKI starts at 2020-01-01.
    let err = parse_trusted_root(&sample_trusted_root(), at("2019-06-01T00:00:00Z")).unwrap_err();
    assert!(
        matches!(err, TrustRootError::NothingValid { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("no Fulcio certificate authority valid at 2019-06-01"),
        "{msg}"
    );
    assert!(
        msg.contains("not valid yet (validFor.start 2020-01-01T00:00:00Z)"),
        "{msg}"
    );
    // Only a CT log left out.
    let json =
        edited(|v| v["ctlogs"][0]["publicKey"]["validFor"]["end"] = "2021-01-01T00:00:00Z".into());
    let msg = parse_trusted_root(&json, Utc::now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no CT log key valid at"), "{msg}");
}

#[test]
fn log_id_mismatch_is_an_error() {
    let rekor = pem_der(&pki().join("rekor.pub"));
    let ct = pem_der(&pki().join("ctlog.pub"));
    // The CT log claims the Rekor key's id.
    let json =
        edited(|v| v["ctlogs"][0]["logId"]["keyId"] = v["tlogs"][0]["logId"]["keyId"].clone());
    match parse_trusted_root(&json, Utc::now()).unwrap_err() {
        e @ TrustRootError::LogIdMismatch { .. } => {
            let msg = e.to_string();
            assert!(msg.contains("ctlogs[0]"), "{msg}");
            assert!(msg.contains(&hex(&sha(&rekor))), "{msg}");
            assert!(msg.contains(&hex(&sha(&ct))), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // A Rekor log whose id is neither form.
    let json = edited(|v| v["tlogs"][0]["logId"]["keyId"] = "AAAA".into());
    assert!(matches!(
        parse_trusted_root(&json, Utc::now()),
        Err(TrustRootError::LogIdMismatch { .. })
    ));
    // A missing logId is a field error.
    let json = edited(|v| {
        v["tlogs"][0].as_object_mut().unwrap().remove("logId");
    });
    expect_field_error(&json, "tlogs[0].logId.keyId", "missing");
}

#[test]
fn malformed_documents_are_errors() {
    assert!(matches!(
        parse_trusted_root(b"{not json", Utc::now()),
        Err(TrustRootError::Json(_))
    ));
    assert!(matches!(
        parse_trusted_root(b"[]", Utc::now()),
        Err(TrustRootError::Json(_))
    ));
    let json = edited(|v| v["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json".into());
    let err = parse_trusted_root(&json, Utc::now()).unwrap_err();
    assert!(matches!(err, TrustRootError::MediaType(_)), "{err:?}");
    let json = edited(|v| {
        v.as_object_mut().unwrap().remove("mediaType");
    });
    assert!(matches!(
        parse_trusted_root(&json, Utc::now()),
        Err(TrustRootError::MediaType(_))
    ));
    for mt in [
        "application/vnd.dev.sigstore.trustedroot.v0.1+json",
        "application/vnd.dev.sigstore.trustedroot.v0.2+json",
    ] {
        let json = edited(|v| v["mediaType"] = mt.into());
        parse_trusted_root(&json, Utc::now()).unwrap();
    }

    let json = edited(|v| v["tlogs"][0]["publicKey"]["rawBytes"] = "!!!not base64".into());
    expect_field_error(&json, "tlogs[0].publicKey.rawBytes", "not base64");
    let json = edited(|v| v["tlogs"][0]["publicKey"]["rawBytes"] = "AAECAwQ=".into());
    expect_field_error(
        &json,
        "tlogs[0].publicKey.rawBytes",
        "not a DER SubjectPublicKeyInfo",
    );
    let json = edited(|v| v["ctlogs"][0]["publicKey"]["keyDetails"] = "PKIX_ED25519".into());
    expect_field_error(
        &json,
        "ctlogs[0].publicKey.keyDetails",
        "does not match the key",
    );
    let json = edited(|v| v["ctlogs"][0]["publicKey"]["validFor"]["start"] = "yesterday".into());
    expect_field_error(
        &json,
        "ctlogs[0].publicKey.validFor.start",
        "not an RFC 3339 time",
    );
    let json = edited(|v| {
        v["certificateAuthorities"][0]["validFor"]["end"] = "2019-01-01T00:00:00Z".into()
    });
    expect_field_error(
        &json,
        "certificateAuthorities[0].validFor",
        "end is before start",
    );
    let json = edited(|v| {
        v["certificateAuthorities"][0]["certChain"]["certificates"][1]["rawBytes"] =
            "AAECAwQ=".into()
    });
    expect_field_error(
        &json,
        "certificateAuthorities[0].certChain.certificates[1].rawBytes",
        "not a DER X.509 certificate",
    );
    // Root before intermediate: the chain is out of order.
    let json = edited(|v| {
        let certs = v["certificateAuthorities"][0]["certChain"]["certificates"]
            .as_array_mut()
            .unwrap();
        certs.swap(0, 1);
    });
    expect_field_error(
        &json,
        "certificateAuthorities[0].certChain.certificates[0]",
        "is not the subject of the next certificate",
    );
    let json = edited(|v| {
        v["certificateAuthorities"][0]["certChain"]["certificates"] = Value::Array(vec![])
    });
    expect_field_error(
        &json,
        "certificateAuthorities[0].certChain.certificates",
        "missing or empty",
    );
    // Standard base64 without padding and URL-safe base64 are accepted.
    let json = edited(|v| {
        let b = v["tlogs"][0]["publicKey"]["rawBytes"]
            .as_str()
            .unwrap()
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        v["tlogs"][0]["publicKey"]["rawBytes"] = b.into();
    });
    parse_trusted_root(&json, Utc::now()).unwrap();
}

#[test]
fn unknown_key_types_are_skipped_not_fatal() {
    let json = edited(|v| {
        let mut extra = v["ctlogs"][0].clone();
        extra["publicKey"]["keyDetails"] = "ML_DSA_65".into();
        extra["baseUrl"] = "https://pq.example".into();
        v["ctlogs"].as_array_mut().unwrap().push(extra);
    });
    let report = parse_trusted_root_detailed(&json, Utc::now()).unwrap();
    assert_eq!(report.trust.ct_keys.len(), 1);
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.entry == "ctlogs[1] (https://pq.example)"
                && s.reason.contains("unsupported key type")),
        "{:?}",
        report.skipped
    );
}

// ---------------------------------------------------------------------------
// TUF: mirror (freshness enforced)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tuf_mirror_happy_path_ed25519() {
    let repo = Repo::new(&[]);
    let trust = repo.load().await.unwrap();
    assert_eq!(
        trust,
        parse_trusted_root(&sample_trusted_root(), Utc::now()).unwrap()
    );
}

#[tokio::test]
async fn tuf_mirror_variants() {
    for extra in [
        &["--key-type", "ecdsa"][..],
        &["--root-versions", "4"],
        &[
            "--no-consistent-snapshot",
            "--key-type",
            "ecdsa",
            "--root-versions",
            "2",
        ],
    ] {
        let repo = Repo::new(extra);
        let report = load_detailed(
            &repo.root(),
            TufSource::Mirror {
                metadata_url: &repo.s("metadata_url"),
                targets_url: &repo.s("targets_url"),
                datastore: None,
            },
            Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(report.trust.rekor_keys.len(), 1, "{extra:?}");
        let tuf = report.tuf.unwrap();
        assert!(tuf.freshness_enforced);
        assert_eq!(
            tuf.root_version,
            repo.summary["versions"]["root"].as_u64().unwrap(),
            "{extra:?}"
        );
        assert_eq!(
            (
                tuf.timestamp_version,
                tuf.snapshot_version,
                tuf.targets_version
            ),
            (4, 2, 3)
        );
        assert_eq!(tuf.target_sha256, repo.s("target_sha256"));
        assert_eq!(tuf.earliest_expiry.0, "timestamp");
    }
}

#[tokio::test]
async fn tuf_tampered_target_is_rejected() {
    let repo = Repo::new(&["--tamper-target"]);
    let err = repo.load().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TrustRootError::Target { .. }), "{err:?}");
    assert!(msg.contains("trusted_root.json"), "{msg}");
    assert!(
        msg.contains(&repo.s("target_sha256")),
        "names the expected hash: {msg}"
    );
    assert!(msg.to_lowercase().contains("hash"), "{msg}");
}

#[tokio::test]
async fn tuf_wrong_pinned_root_is_rejected() {
    let a = Repo::new(&["--seed", "a"]);
    let b = Repo::new(&["--seed", "b"]);
    let err = load_via_tuf(
        &b.root(),
        &a.s("metadata_url"),
        &a.s("targets_url"),
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TrustRootError::Verification { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("timestamp"), "{msg}");
    assert!(msg.contains(&a.s("metadata_url")), "{msg}");
    // With a root chain in the mirror, the wrong root fails on 2.root.json.
    let a2 = Repo::new(&["--seed", "a", "--root-versions", "2"]);
    let err = load_via_tuf(
        &b.root(),
        &a2.s("metadata_url"),
        &a2.s("targets_url"),
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TrustRootError::Verification { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("root"), "{err}");
}

#[tokio::test]
async fn tuf_tampered_metadata_is_rejected() {
    for role in ["timestamp", "snapshot", "targets"] {
        let repo = Repo::new(&["--tamper-metadata", role]);
        let err = repo.load().await.unwrap_err();
        assert!(
            matches!(err, TrustRootError::Verification { .. }),
            "{role}: {err:?}"
        );
        assert!(err.to_string().contains(role), "{role}: {err}");
    }
}

#[tokio::test]
async fn tuf_expired_timestamp_from_mirror_is_rejected() {
    let repo = Repo::new(&["--expires-days", "-1"]);
    let err = repo.load().await.unwrap_err();
    match &err {
        TrustRootError::Expired { role, metadata_url } => {
            assert_eq!(role, "timestamp");
            assert_eq!(metadata_url, &repo.s("metadata_url"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn tuf_target_not_listed() {
    let repo = Repo::new(&["--target-name", "something_else.json"]);
    let err = repo.load().await.unwrap_err();
    assert!(
        matches!(err, TrustRootError::TargetNotListed { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn tuf_invalid_document_names_the_target() {
    let tmp = TempDir::new().unwrap();
    let bad = tmp.path().join("trusted_root.json");
    std::fs::write(&bad, edited(|v| v["mediaType"] = "nope".into())).unwrap();
    let repo = Repo::with_target(&bad, &[]);
    let err = repo.load().await.unwrap_err();
    assert!(matches!(err, TrustRootError::Document { .. }), "{err:?}");
    assert!(err.to_string().contains("unsupported mediaType"), "{err}");
}

#[tokio::test]
async fn tuf_pinned_root_garbage() {
    let repo = Repo::new(&[]);
    let err = load_via_tuf(
        b"{}",
        &repo.s("metadata_url"),
        &repo.s("targets_url"),
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TrustRootError::PinnedRoot(_)), "{err:?}");
    // A root whose signature does not verify: tamper the pinned root itself.
    let mut root: Value = serde_json::from_slice(&repo.root()).unwrap();
    root["signed"]["version"] = 7.into();
    let err = load_via_tuf(
        &serde_json::to_vec(&root).unwrap(),
        &repo.s("metadata_url"),
        &repo.s("targets_url"),
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TrustRootError::PinnedRoot(_)), "{err:?}");
}

#[tokio::test]
async fn tuf_unreachable_mirror_file() {
    let repo = Repo::new(&[]);
    let err = load_via_tuf(
        &repo.root(),
        "file:///nonexistent/portcullis/metadata/",
        "file:///nonexistent/portcullis/targets/",
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    match &err {
        TrustRootError::Fetch { url, .. } => {
            assert_eq!(
                url,
                "file:///nonexistent/portcullis/metadata/timestamp.json"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tuf_unreachable_mirror_http() {
    // A loopback port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let repo = Repo::new(&[]);
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let err = load_via_tuf(
        &repo.root(),
        &format!("{base}/metadata"),
        &format!("{base}/targets"),
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    match &err {
        TrustRootError::Fetch { url, .. } => {
            assert!(url.starts_with(&format!("{base}/metadata/")), "{url}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&base), "{err}");
}

/// A minimal loopback HTTP/1.1 file server (GET only, Connection: close).
async fn serve_dir(root: PathBuf) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let root = root.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let file = root.join(path.trim_start_matches('/'));
                let (status, body) = match (path.contains(".."), tokio::fs::read(&file).await) {
                    (false, Ok(body)) => ("200 OK", body),
                    _ => ("404 Not Found", b"not found".to_vec()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), handle)
}

#[tokio::test]
async fn tuf_http_mirror_happy_path() {
    let repo = Repo::new(&["--key-type", "ecdsa", "--root-versions", "2"]);
    let (base, server) = serve_dir(repo.dir()).await;
    let trust = load_via_tuf(
        &repo.root(),
        &format!("{base}/metadata/"),
        &format!("{base}/targets/"),
        None,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        trust,
        parse_trusted_root(&sample_trusted_root(), Utc::now()).unwrap()
    );
    server.abort();
}

#[tokio::test]
async fn tuf_datastore_detects_rollback_across_loads() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("tuf-datastore");
    let newer = Repo::new(&["--seed", "r", "--version-bump", "5"]);
    load_via_tuf(
        &newer.root(),
        &newer.s("metadata_url"),
        &newer.s("targets_url"),
        Some(&store),
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(store.join("timestamp.json").exists());
    // Same keys, older versions: a rollback.
    let older = Repo::new(&["--seed", "r"]);
    let err = load_via_tuf(
        &older.root(),
        &older.s("metadata_url"),
        &older.s("targets_url"),
        Some(&store),
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TrustRootError::Verification { .. }),
        "{err:?}"
    );
    // Without the datastore the older one loads.
    older.load().await.unwrap();
}

#[tokio::test]
async fn bad_urls_are_errors() {
    let repo = Repo::new(&[]);
    for (m, t) in [
        ("ftp://example.com/metadata", "https://example.com/targets"),
        ("not a url", "https://example.com/targets"),
        ("https://example.com/metadata", "/relative/path"),
    ] {
        let err = load_via_tuf(&repo.root(), m, t, None, Utc::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, TrustRootError::Url { .. }),
            "{m} {t}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// TUF: shipped snapshot (freshness waived)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn shipped_snapshot_with_expired_timestamp_loads() {
    let repo = Repo::new(&["--expires-days", "-3"]);
    // As a mirror it is refused...
    assert!(matches!(
        repo.load().await,
        Err(TrustRootError::Expired { .. })
    ));
    // ...as the shipped copy it loads, and says so.
    let report = load_detailed(
        &repo.root(),
        TufSource::Shipped { dir: &repo.dir() },
        Utc::now(),
    )
    .await
    .unwrap();
    let tuf = report.tuf.unwrap();
    assert!(!tuf.freshness_enforced);
    assert_eq!(tuf.earliest_expiry.0, "timestamp");
    assert!(tuf.earliest_expiry.1 < Utc::now());
    assert_eq!(
        report.trust,
        parse_trusted_root(&sample_trusted_root(), Utc::now()).unwrap()
    );
}

#[tokio::test]
async fn shipped_snapshot_still_checks_hashes_and_signatures() {
    let repo = Repo::new(&["--expires-days", "-3", "--tamper-target"]);
    let err = load_shipped(&repo.root(), &repo.dir(), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, TrustRootError::Target { .. }), "{err:?}");
    let repo = Repo::new(&["--expires-days", "-3", "--tamper-metadata", "snapshot"]);
    let err = load_shipped(&repo.root(), &repo.dir(), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrustRootError::Verification { .. }),
        "{err:?}"
    );
    let other = Repo::new(&["--seed", "other"]);
    let err = load_shipped(&other.root(), &repo.dir(), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrustRootError::Verification { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn shipped_snapshot_missing_dir() {
    let repo = Repo::new(&[]);
    let err = load_shipped(
        &repo.root(),
        Path::new("/nonexistent/portcullis-tuf"),
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TrustRootError::Io { .. }), "{err:?}");
    let tmp = TempDir::new().unwrap();
    std::fs::create_dir(tmp.path().join("metadata")).unwrap();
    let err = load_shipped(&repo.root(), tmp.path(), Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("targets"), "{err}");
}

#[tokio::test]
async fn public_good_roots_before_v12_cannot_be_pinned_with_tough() {
    // Known limitation of tough (0.24), recorded here so that a change shows:
    // * root v1 has `expires` with a -06:00 offset; tough re-serialises it in
    //   UTC before checking signatures, so its own signatures fail;
    // * root v11 lists a key whose key id is not the SHA-256 of the key
    //   object, which tough rejects while parsing (so every chain through
    //   v11 fails too).
    // Pin root v12 or later (sigstore-rs embeds v12).
    let now = at("2026-01-01T00:00:00Z");
    let err = load_shipped(&public_good_root(1), &public_good(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, TrustRootError::PinnedRoot(_)), "{err:?}");
    assert!(err.to_string().contains("Signature threshold"), "{err}");
    let err = load_shipped(&public_good_root(11), &public_good(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, TrustRootError::PinnedRoot(_)), "{err:?}");
    assert!(err.to_string().contains("Invalid key ID"), "{err}");
    let err = load_shipped(&public_good_root(5), &public_good(), now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrustRootError::Verification { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Invalid key ID"), "{err}");
}

#[tokio::test]
async fn public_good_snapshot_loads_from_pinned_roots() {
    // Sigstore's repository as of root-signing 60cf2ce8 (2026-08-21): root
    // v15, timestamp v762 (expired 2026-08-28). From root v12 tough walks the
    // root rotations to v15 and verifies everything but freshness.
    for pinned in [12, 13, 15] {
        let report = load_detailed(
            &public_good_root(pinned),
            TufSource::Shipped {
                dir: &public_good(),
            },
            at("2026-01-01T00:00:00Z"),
        )
        .await
        .unwrap_or_else(|e| panic!("pinned root v{pinned}: {e}"));
        let tuf = report.tuf.unwrap();
        assert_eq!(
            (
                tuf.root_version,
                tuf.timestamp_version,
                tuf.snapshot_version,
                tuf.targets_version
            ),
            (15, 762, 165, 14)
        );
        assert_eq!(
            tuf.target_sha256,
            "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66"
        );
        assert_eq!(
            tuf.earliest_expiry,
            ("timestamp".to_string(), at("2026-08-28T19:25:56Z"))
        );
        assert_eq!(ids(&report.trust.rekor_keys), vec![REKOR_V1_LOG_ID]);
        assert_eq!(
            ids_at(&report.trust.ct_keys, Utc::now()),
            vec![CT_2022_LOG_ID]
        );
    }
}

#[tokio::test]
async fn public_good_snapshot_as_a_mirror_is_stale() {
    // The same files through the mirror path: refused, because the
    // timestamp (and by now the root) has expired.
    let dir = public_good();
    let m = url::Url::from_directory_path(dir.join("metadata")).unwrap();
    let t = url::Url::from_directory_path(dir.join("targets")).unwrap();
    let err = load_via_tuf(
        &public_good_root(12),
        m.as_str(),
        t.as_str(),
        None,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TrustRootError::Expired { .. }), "{err:?}");
}

#[tokio::test]
async fn public_good_tampered_target_is_rejected_even_when_shipped() {
    let tmp = TempDir::new().unwrap();
    let copy = tmp.path().join("pg");
    for sub in ["metadata", "targets"] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for entry in std::fs::read_dir(public_good().join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(sub).join(entry.file_name())).unwrap();
        }
    }
    let target = copy.join(
        "targets/6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66.trusted_root.json",
    );
    let mut v: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    // Remove the end of the old CT log's window (keeps it trusted forever).
    v["ctlogs"][0]["publicKey"]["validFor"]
        .as_object_mut()
        .unwrap()
        .remove("end");
    std::fs::write(&target, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let err = load_shipped(&public_good_root(15), &copy, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, TrustRootError::Target { .. }), "{err:?}");
}

/// protobuf-specs' `TimeRange.start` is required: a log key whose
/// `validFor` lacks it makes the trusted root malformed, never valid since
/// forever (sigstore-conformance `trust-root-tlog-missing-validity-start_fail`).
/// Checked on the shipped public-good root with one start removed.
#[test]
fn a_validity_window_without_its_start_is_malformed() {
    let shipped: &[u8] = include_bytes!(
        "../public-good/targets/6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66.trusted_root.json"
    );
    assert!(parse_trusted_root(shipped, Utc::now()).is_ok());
    for list in ["tlogs", "ctlogs"] {
        let mut root: serde_json::Value = serde_json::from_slice(shipped).unwrap();
        let valid_for = &mut root[list][0]["publicKey"]["validFor"];
        assert!(valid_for["start"].is_string(), "{list}: {valid_for}");
        valid_for.as_object_mut().unwrap().remove("start");
        let err = parse_trusted_root(&serde_json::to_vec(&root).unwrap(), Utc::now())
            .expect_err("a window without its start");
        let text = err.to_string();
        assert!(text.contains("validFor.start"), "{list}: {text}");
    }
}
