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

/// `migrate-connaisseur` on a values file of the chart's shape: both
/// configs it writes start the real binaries, and the patterns keep their
/// Connaisseur meaning where we keep it (the catch-all denies anything
/// else; the explicit rule routes its images).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_connaisseur_output_runs_the_binaries() {
    use portcullis_e2e::review::{allowed, message};
    use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec};
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "application:\n  validators:\n    - {name: allow, type: static, approve: true}\n    - {name: deny, type: static, approve: false}\n  policy:\n    - {pattern: \"*:*\", validator: deny}\n    - {pattern: \"registry.k8s.io/*:*\", validator: allow}\n  features:\n    detectionMode: false\n    automaticChildApproval: true\n    automaticUnchangedApproval: true\n    namespacedValidation: {mode: ignore}\n    resourceValidationMode: all\n",
    )
    .unwrap();
    let out = Command::new(bin_path("portcullis-verifier"))
        .arg("migrate-connaisseur")
        .arg(&values)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("# NOTE policy[0] `*:*`: a catch-all"),
        "{text}"
    );
    let verifier = tokio::task::block_in_place(|| {
        Verifier::start_with_file(&dir.path().join("verifier.yaml"), &[])
    });
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        args: vec![
            "--config".into(),
            dir.path().join("gateway.yaml").display().to_string(),
        ],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let (_, body) = gw
        .post_json(
            "/mutate",
            &Review::pod(pod_spec(&["registry.k8s.io/pause:3.9"], &[], &[])).json,
        )
        .await;
    assert!(allowed(&body), "{body}");
    let (_, body) = gw
        .post_json(
            "/mutate",
            &Review::pod(pod_spec(&["quay.io/any/thing:1"], &[], &[])).json,
        )
        .await;
    assert!(!allowed(&body));
    assert!(message(&body).contains("STATIC_DENY"), "{body}");
}
