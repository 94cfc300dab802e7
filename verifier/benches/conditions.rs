//! The cost of attestation conditions (README "Attestation conditions").
//! A verdict cache hit never evaluates them; these are the costs paid on a
//! fresh verification and when an allow that reads `now` is judged again
//! from kept evidence:
//!
//! * `prepare/*`: parsing a verified statement into CEL values (once per
//!   verification);
//! * `judge/slsa_4`: the README's four SLSA provenance conditions;
//! * `judge/vuln_200`: the README's two vulnerability-scan conditions over
//!   a Trivy report with 200 findings (a nested comprehension);
//! * `judge_with_flip/vuln_200`: the same, plus the look-ahead for the time
//!   the allow flips (the `now` condition is sampled every 5 s over 5 min).
//!
//! Run: `cargo bench -p portcullis-verifier --features bench-internals --bench conditions`.

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_verifier::AttestationRequirement;
use portcullis_verifier::bench_internals::{Judging, prepare};
use serde_json::json;
use std::hint::black_box;

fn statement(predicate_type: &str, predicate: serde_json::Value) -> Vec<u8> {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.example.com/app", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
    .to_string()
    .into_bytes()
}

fn requirement(predicate_type: &str, conditions: &[&str]) -> AttestationRequirement {
    serde_json::from_value(json!({
        "predicateType": predicate_type,
        "conditions": conditions,
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let slsa_type = "https://slsa.dev/provenance/v1";
    let slsa = statement(
        slsa_type,
        json!({
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/release.yml"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3"}}],
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
        }),
    );
    let vuln_type = "https://cosign.sigstore.dev/attestation/vuln/v1";
    let findings: Vec<_> = (0..200)
        .map(|i| {
            let severity = ["LOW", "MEDIUM", "HIGH"][i % 3];
            json!({"VulnerabilityID": format!("CVE-2026-{i:04}"), "Severity": severity})
        })
        .collect();
    let scanned = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let vuln = statement(
        vuln_type,
        json!({
            "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50.0", "result": {"Results": [{"Target": "app", "Vulnerabilities": findings}]}},
            "metadata": {"scanStartedOn": scanned, "scanFinishedOn": scanned},
        }),
    );
    c.bench_function("prepare/slsa", |b| {
        b.iter(|| black_box(prepare(black_box(&slsa))))
    });
    c.bench_function("prepare/vuln_200", |b| {
        b.iter(|| black_box(prepare(black_box(&vuln))))
    });

    let slsa_judging = Judging::new(
        requirement(
            slsa_type,
            &[
                r#"predicate.buildDefinition.buildType == "https://actions.github.io/buildtypes/workflow/v1""#,
                r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app""#,
                r#"predicate.buildDefinition.externalParameters.workflow.path == ".github/workflows/release.yml""#,
                r#"predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/heads/")"#,
            ],
        ),
        &[slsa],
        "ci",
    );
    let now = chrono::Utc::now();
    assert!(slsa_judging.judge(now));
    c.bench_function("judge/slsa_4", |b| {
        b.iter(|| black_box(slsa_judging.judge(black_box(now))))
    });

    let vuln_judging = Judging::new(
        requirement(
            vuln_type,
            &[
                r#"now - timestamp(predicate.metadata.scanFinishedOn) < duration("168h")"#,
                r#"predicate.scanner.result.Results.all(r, !has(r.Vulnerabilities) || r.Vulnerabilities.all(v, v.Severity != "CRITICAL"))"#,
            ],
        ),
        &[vuln],
        "ci",
    );
    assert!(vuln_judging.judge(now));
    c.bench_function("judge/vuln_200", |b| {
        b.iter(|| black_box(vuln_judging.judge(black_box(now))))
    });
    c.bench_function("judge_with_flip/vuln_200", |b| {
        b.iter(|| black_box(vuln_judging.judge_with_flip(black_box(now))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
