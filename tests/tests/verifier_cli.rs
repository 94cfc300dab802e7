//! `portcullis-verifier verify`: the offline decision path.

use std::process::Command;

use portcullis_e2e::bin_path;
use serde_json::Value;

const POLICY: &str = include_str!("../data/static-policy.yaml");

fn verify(config: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin_path("portcullis-verifier"))
        .arg("verify")
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .expect("run verifier");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "POLICY"),
    )
}

#[test]
fn json_output_and_exit_codes() {
    let (code, out, _) = verify(
        POLICY,
        &["--json", "nginx:1", "evil:2", "quay.io/a/b:c", "Bad Ref"],
    );
    assert_eq!(code, 1, "any denial exits 1");
    let results: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    assert_eq!(results.len(), 4);
    for r in &results {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "image",
            "allowed",
            "digest",
            "reference",
            "rule",
            "validator",
            "reason",
            "message",
        ] {
            assert!(keys.contains(&k), "{k} missing in {r}");
        }
    }
    assert_eq!(results[0]["image"], "nginx:1");
    assert_eq!(results[0]["allowed"], true);
    assert_eq!(results[0]["reason"], "STATIC_ALLOW");
    assert_eq!(results[0]["rule"], "docker.io/library/*:*");
    assert_eq!(results[0]["validator"], "allow");
    assert_eq!(results[0]["digest"], Value::Null);
    assert_eq!(results[1]["allowed"], false);
    assert_eq!(results[1]["reason"], "STATIC_DENY");
    assert_eq!(results[2]["reason"], "NO_MATCHING_RULE");
    assert_eq!(results[3]["reason"], "INVALID_REFERENCE");

    let (code, out, _) = verify(POLICY, &["nginx:1", "registry.example.com/a/b:1"]);
    assert_eq!(code, 0, "all allowed exits 0: {out}");
    assert!(out.starts_with("nginx:1: ALLOWED STATIC_ALLOW"), "{out}");
}

#[test]
fn config_errors_exit_2_naming_file_and_field() {
    let bad = POLICY.replace("approve: false", "approve: false\n    colour: red");
    let (code, _, err) = verify(&bad, &["nginx"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("config error in POLICY: validators[1].colour: unknown field `colour`"),
        "{err}"
    );
    let (code, _, err) = verify(POLICY, &["--at", "yesterday", "nginx"]);
    assert_eq!(code, 2);
    assert!(err.contains("--at"), "{err}");
    let out = Command::new(bin_path("portcullis-verifier"))
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}
