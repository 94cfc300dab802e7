//! The Notary part of the conformance table (tests/data/PROVENANCE.md):
//! Docker Hub trust data for `docker.io/phbelitz/sample-image`, captured
//! from notary.docker.io and served byte for byte.

use std::path::{Path, PathBuf};

use portcullis_e2e::static_files::StaticFiles;
use portcullis_e2e::verify_json;
use serde_json::{Value, json};

const GUN: &str = "docker.io/phbelitz/sample-image";
const PINNED: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtR5kwrDK22SyCu7WMF8tCjVgeORA
S2PWacRcBN/VQdVK4PVk1w4pMWlz9AHQthDGl+W2k3elHkPbR+gNkK2PCA==
-----END PUBLIC KEY-----
";
const SIGN: &str = "sha256:a154797b8300165956ee1f16d98f3a1426301c1168f0462c73ce9bc03361cabf";
const V1: &str = "sha256:799c0fa8aa4c9fbff5a99aef1b4b5c3abb9c2f34134345005982fad3489893c7";
const AT: &str = "2019-10-01T00:00:00Z";

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/notaryv1/sample-image")
}

async fn serve(dir: PathBuf) -> StaticFiles {
    StaticFiles::start(&format!("/v2/{GUN}/_trust/tuf"), dir).await
}

fn config(host: &str, key: &str) -> String {
    let doc = json!({
        "validators": [{
            "name": "dct",
            "type": "notaryv1",
            "host": host,
            "trustRoots": [{"name": "default", "key": key}],
        }],
        "policy": [{"pattern": "docker.io/phbelitz/*:*", "validator": "dct"},
                   {"pattern": "docker.io/phbelitz/*@*", "validator": "dct"}],
    });
    serde_yaml_ng::to_string(&doc).unwrap()
}

fn verify(host: &str, key: &str, images: &[&str], at: Option<&str>) -> Vec<Value> {
    let args: Vec<&str> = at.map(|a| vec!["--at", a]).unwrap_or_default();
    let (_, results, stderr) = verify_json(&config(host, key), images, &args);
    assert_eq!(results.len(), images.len(), "{stderr}");
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    let server = serve(data()).await;
    let host = server.url();
    let sign = format!("{GUN}:sign");
    let r = tokio::task::block_in_place(|| {
        verify(
            &host,
            PINNED,
            &[
                &sign,
                &format!("{GUN}:v1"),
                &format!("{GUN}:no_tag"),
                &format!("{sign}@{SIGN}"),
                &format!("{sign}@{V1}"),
            ],
            Some(AT),
        )
    });
    assert_eq!(
        (r[0]["allowed"].clone(), r[0]["digest"].clone()),
        (json!(true), json!(SIGN)),
        "{}",
        r[0]
    );
    assert_eq!(r[0]["reference"], format!("{sign}@{SIGN}"));
    assert_eq!(
        (r[1]["allowed"].clone(), r[1]["digest"].clone()),
        (json!(true), json!(V1)),
        "{}",
        r[1]
    );
    assert_eq!(r[2]["allowed"], false);
    assert_eq!(r[2]["reason"], "TAG_NOT_SIGNED", "{}", r[2]);
    assert_eq!(
        (r[3]["allowed"].clone(), r[3]["digest"].clone()),
        (json!(true), json!(SIGN)),
        "{}",
        r[3]
    );
    assert_eq!(r[4]["allowed"], false);
    assert_eq!(r[4]["reason"], "DIGEST_MISMATCH", "{}", r[4]);

    // Another pinned P-256 key.
    let other = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cosign/keys/alice.pub"),
    )
    .unwrap();
    let r = tokio::task::block_in_place(|| verify(&host, &other, &[&sign], Some(AT)));
    assert_eq!(r[0]["reason"], "ROOT_KEY_MISMATCH", "{}", r[0]);

    // Today the timestamp has long expired.
    let r = tokio::task::block_in_place(|| verify(&host, PINNED, &[&sign], None));
    assert_eq!(r[0]["allowed"], false);
    assert_eq!(r[0]["reason"], "EXPIRED (timestamp)", "{}", r[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_any_role_is_caught_and_named() {
    let sign = format!("{GUN}:sign");
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let original = std::fs::read(data().join(format!("{role}.json"))).unwrap();
        // Flip a byte inside "signed" (a digit of the version or a letter
        // of a key), not in whitespace, so that it changes meaning.
        let text = String::from_utf8(original.clone()).unwrap();
        let at = text.find("\"expires\":\"").expect("expires") + 12;
        let mut tampered = original.clone();
        tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };
        let dir = tempfile::tempdir().unwrap();
        for r in ["root", "targets", "snapshot", "timestamp"] {
            let bytes = if r == role {
                tampered.clone()
            } else {
                std::fs::read(data().join(format!("{r}.json"))).unwrap()
            };
            std::fs::write(dir.path().join(format!("{r}.json")), bytes).unwrap();
        }
        let server = serve(dir.path().to_path_buf()).await;
        let host = server.url();
        let r = tokio::task::block_in_place(|| verify(&host, PINNED, &[&sign], Some(AT)));
        assert_eq!(r[0]["allowed"], false, "{role}: {}", r[0]);
        let reason = r[0]["reason"].as_str().unwrap();
        // The failing role is named: its own signature, or the hash its
        // parent lists for it.
        assert!(reason.contains(role), "{role}: {reason}");
    }
}
