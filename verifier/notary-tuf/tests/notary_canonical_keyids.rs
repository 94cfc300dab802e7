//! Byte-exact agreement with Go's canonical JSON and Notary's key ids, on
//! every real metadata file in testdata/.

#[path = "notary_common/mod.rs"]
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use portcullis_notary_tuf::canonical::{canonicalize, key_id};
use serde_json::Value;

fn all_files() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["root", "timestamp", "snapshot", "targets"] {
        out.push(format!("dockerhub-sample-image/{f}.json"));
    }
    for s in ["s1", "s2", "s3"] {
        for f in [
            "root",
            "1.root",
            "2.root",
            "3.root",
            "timestamp",
            "snapshot",
            "targets",
            "targets/releases",
            "targets/alice",
        ] {
            let rel = format!("notary-cli/{s}/{f}.json");
            if testdata(&rel).exists() {
                out.push(rel);
            }
        }
    }
    out
}

/// Every served file is `{"signed":<Go canonical bytes>,"signatures":...}`,
/// so re-canonicalising the parsed `signed` must give exactly those bytes.
#[test]
fn canonical_json_matches_go_byte_for_byte() {
    let files = all_files();
    assert!(files.len() >= 28, "{files:?}");
    for rel in files {
        let raw = read(&rel);
        let doc: Value = serde_json::from_slice(&raw).unwrap();
        let canonical = canonicalize(&doc["signed"]).unwrap();
        let prefix = b"{\"signed\":";
        assert!(raw.starts_with(prefix), "{rel}");
        assert_eq!(
            &raw[prefix.len()..prefix.len() + canonical.len()],
            canonical.as_slice(),
            "{rel}: canonical form differs"
        );
        assert_eq!(
            &raw[prefix.len() + canonical.len()..prefix.len() + canonical.len() + 14],
            b",\"signatures\":",
            "{rel}"
        );
    }
}

fn check_keys(rel: &str, keys: &Value) -> usize {
    let mut n = 0;
    for (id, key) in keys.as_object().unwrap() {
        let public = STANDARD
            .decode(key["keyval"]["public"].as_str().unwrap())
            .unwrap();
        let keytype = key["keytype"].as_str().unwrap();
        assert_eq!(&key_id(keytype, &public).unwrap(), id, "{rel}: key {id}");
        n += 1;
    }
    n
}

#[test]
fn key_ids_match_the_published_ids() {
    let mut checked = 0;
    for rel in all_files() {
        let doc: Value = serde_json::from_slice(&read(&rel)).unwrap();
        let signed = &doc["signed"];
        if signed["_type"] == "Root" {
            checked += check_keys(&rel, &signed["keys"]);
        }
        if signed["_type"] == "Targets"
            && let Some(keys) = signed["delegations"].get("keys")
        {
            checked += check_keys(&rel, keys);
        }
    }
    // Docker Hub root: 4 keys; CLI roots: 4-5 keys each, delegation keys: 2.
    assert!(checked > 40, "{checked}");
}

/// `notary key list` shows the id of the bare `ecdsa` form of a certificate
/// key (the "canonical" key id); the captured private keys are named by it.
#[test]
fn canonical_ids_of_certificate_keys_match_the_notary_cli() {
    let cap = cli_capture();
    let ids = &cap["private_key_canonical_ids"];
    let root: Value = serde_json::from_slice(&read("notary-cli/s3/root.json")).unwrap();
    let mut found = Vec::new();
    for (_, key) in root["signed"]["keys"].as_object().unwrap() {
        if key["keytype"] != "ecdsa-x509" {
            continue;
        }
        let pem = String::from_utf8(
            STANDARD
                .decode(key["keyval"]["public"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        let cert = <x509_cert::Certificate as der::Decode>::from_der(&der).unwrap();
        let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap();
        found.push(key_id("ecdsa", &spki).unwrap());
    }
    found.sort();
    let mut want = vec![
        ids["root-old"].as_str().unwrap().to_owned(),
        ids["root-new"].as_str().unwrap().to_owned(),
    ];
    want.sort();
    assert_eq!(found, want);
}
