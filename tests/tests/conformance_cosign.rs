//! The cosign part of the conformance table (tests/data/PROVENANCE.md):
//! real signatures made by cosign for `securesystemsengineering/testimage`,
//! served byte for byte.

use std::path::{Path, PathBuf};

use portcullis_e2e::static_registry::StaticRegistry;
use portcullis_e2e::verify_json;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REPO: &str = "securesystemsengineering/testimage";
const DIGEST: &str = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81";

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cosign")
}

fn key(name: &str) -> String {
    std::fs::read_to_string(data().join(format!("keys/{name}.pub"))).expect("key")
}

fn verify(host: &str, roots: &[&str], with: Value, tag: &str) -> Value {
    let config = json!({
        "validators": [{
            "name": "cosign",
            "type": "cosign",
            "insecureRegistries": [host],
            "trustRoots": roots.iter().map(|r| json!({"name": r, "key": key(r)})).collect::<Vec<_>>(),
        }],
        "policy": [{"pattern": format!("{host}/**"), "validator": "cosign", "with": with}],
    });
    let yaml = serde_yaml_ng::to_string(&config).expect("yaml");
    let image = format!("{host}/{REPO}:{tag}");
    let (_, results, stderr) = verify_json(&yaml, &[&image], &[]);
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    let server = StaticRegistry::start(REPO, data().join("testimage")).await;
    let host = server.host();
    let tag = "multi-cosigned-alice";

    let r = verify(&host, &["alice"], json!({"trustRoot": "alice"}), tag);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], DIGEST);

    let r = verify(&host, &["bob"], json!({"trustRoot": "bob"}), tag);
    assert_eq!(
        (r["allowed"].clone(), r["reason"].clone()),
        (json!(false), json!("NO_MATCHING_SIGNATURE")),
        "{r}"
    );

    let r = verify(
        &host,
        &["alice", "bob"],
        json!({"trustRoot": "*", "threshold": 2}),
        tag,
    );
    assert_eq!(r["reason"], "THRESHOLD_NOT_MET (1 of 2)", "{r}");

    let r = verify(
        &host,
        &["alice", "bob"],
        json!({"trustRoot": "*", "required": ["bob"]}),
        tag,
    );
    assert_eq!(r["reason"], "REQUIRED_SIGNER_MISSING (bob)", "{r}");

    let r = verify(
        &host,
        &["alice"],
        json!({"trustRoot": "alice"}),
        "co-unsigned",
    );
    assert_eq!(
        (r["allowed"].clone(), r["reason"].clone()),
        (json!(false), json!("NO_SIGNATURES")),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_naming_another_digest_is_denied() {
    // Copy the data and change one hex digit of the payload's
    // docker-manifest-digest without re-signing; the .sig manifest is
    // updated to point at the changed blob, as an attacker would.
    let dir = tempfile::tempdir().unwrap();
    let src = data().join("testimage");
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::create_dir_all(dir.path().join("blobs")).unwrap();
    let blob_name = "sha256-d8ee807d96efe7441b132967ad94eaffbc0172a763e69f2cd8df8f583f0ba0d4";
    let payload = std::fs::read_to_string(src.join("blobs").join(blob_name)).unwrap();
    let tampered = payload.replace("071bf7a9", "071bf7a8");
    assert_ne!(payload, tampered);
    let new_digest = hex::encode(Sha256::digest(tampered.as_bytes()));
    std::fs::write(
        dir.path().join(format!("blobs/sha256-{new_digest}")),
        &tampered,
    )
    .unwrap();
    for entry in std::fs::read_dir(src.join("manifests")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let text = text.replace(
            &blob_name.replacen('-', ":", 1),
            &format!("sha256:{new_digest}"),
        );
        std::fs::write(dir.path().join("manifests").join(entry.file_name()), text).unwrap();
    }
    let server = StaticRegistry::start(REPO, dir.path().to_path_buf()).await;
    let r = verify(
        &server.host(),
        &["alice"],
        json!({"trustRoot": "alice"}),
        "multi-cosigned-alice",
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["reason"], "NO_MATCHING_SIGNATURE", "{r}");
}
