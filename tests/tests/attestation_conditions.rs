//! CEL conditions over verified attestations (`with.attestations[*].conditions`),
//! against a real registry. Attestations come from the independent test
//! signer (`sigtool.py attest`, legacy `.att` layers and v3 bundle
//! referrers). The README's examples are read from the README itself and
//! run through the gateway.

use portcullis_e2e::config::{config_yaml, cosign_keys_only, key_roots, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{PushedImage, pki_path, push_image, sigtool};
use portcullis_e2e::verify_json;
use serde_json::{Value, json};

const SLSA: &str = "https://slsa.dev/provenance/v1";
const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const INTOTO_VULNS: &str = "https://in-toto.io/attestation/vulns/v0.1";
const SPDX: &str = "https://spdx.dev/Document";

/// The `attestations` list of the README example marked `name`.
fn readme_example(name: &str) -> Value {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let marker = format!("<!-- example: {name} -->\n```yaml\n");
    let start = readme.find(&marker).expect("example marker") + marker.len();
    let len = readme[start..].find("```").expect("end of block");
    serde_yaml_ng::from_str(&readme[start..start + len]).expect("example YAML")
}

fn sign(reg: &Registry, image: &PushedImage) {
    sigtool("sign-key", reg, image, &["--key", &pki_path("alice.key")]);
}

/// Attests `predicate` of `predicate_type` for `image` as alice; `bundle`
/// stores it as a v3 bundle referrer instead of a `.att` layer.
fn attest(
    reg: &Registry,
    image: &PushedImage,
    predicate_type: &str,
    predicate: &Value,
    bundle: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("predicate.json");
    std::fs::write(&path, predicate.to_string()).unwrap();
    let key = pki_path("alice.key");
    let path = path.display().to_string();
    let mut args = vec![
        "--key",
        &key,
        "--predicate-type",
        predicate_type,
        "--predicate",
        &path,
    ];
    if bundle {
        args.push("--as-bundle");
    }
    sigtool("attest", reg, image, &args);
}

fn with(attestations: Value) -> Value {
    json!({"trustRoot": "alice", "attestations": attestations})
}

fn config(reg: &Registry, rules: Vec<(String, Value)>) -> String {
    config_yaml(
        vec![cosign_keys_only(reg, key_roots(&["alice"]))],
        rules
            .into_iter()
            .map(|(repo, w)| rule(&format!("{}/{repo}", reg.host()), "signed", w))
            .collect(),
    )
}

fn verify_one(config: &str, image: &PushedImage) -> Value {
    let (code, results, stderr) = verify_json(config, &[&image.reference], &[]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

fn rfc3339(ago: chrono::Duration) -> String {
    (chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn provenance(repository: &str) -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {
                "ref": "refs/heads/main",
                "repository": repository,
                "path": ".github/workflows/release.yml",
            }},
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": [{"uri": format!("git+{repository}@refs/heads/main"), "digest": {"gitCommit": "a1b2c3"}}],
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
    })
}

/// cosign `vuln/v1` over a Trivy-style report.
fn cosign_vuln(age: chrono::Duration, severities: &[&str]) -> Value {
    json!({
        "invocation": {"uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@0.50.0",
            "version": "0.50.0",
            "db": {"uri": "", "version": ""},
            "result": {"SchemaVersion": 2, "Results": [
                {"Target": "app (debian 12)", "Vulnerabilities": severities.iter().enumerate().map(|(i, s)| json!({"VulnerabilityID": format!("CVE-2026-{i:04}"), "Severity": s})).collect::<Vec<_>>()},
                {"Target": "Python", "Class": "lang-pkgs"},
            ]},
        },
        "metadata": {"scanStartedOn": rfc3339(age + chrono::Duration::minutes(1)), "scanFinishedOn": rfc3339(age)},
    })
}

/// in-toto `vulns` v0.1.
fn intoto_vulns(age: chrono::Duration, scores: &[&str]) -> Value {
    json!({
        "scanner": {
            "uri": "pkg:github/anchore/grype@0.74.0",
            "version": "0.74.0",
            "db": {"uri": "pkg:github/anchore/grype-db", "version": "5"},
            "result": scores.iter().enumerate().map(|(i, s)| json!({"id": format!("CVE-2026-{i:04}"), "severity": [{"method": "nvd", "score": s}]})).collect::<Vec<_>>(),
        },
        "metadata": {"scanStartedOn": rfc3339(age + chrono::Duration::minutes(1)), "scanFinishedOn": rfc3339(age)},
    })
}

fn spdx(licenses: &[&str]) -> Value {
    json!({
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "app",
        "packages": licenses.iter().enumerate().map(|(i, l)| json!({"SPDXID": format!("SPDXRef-{i}"), "name": format!("pkg{i}"), "licenseConcluded": l})).collect::<Vec<_>>(),
    })
}

/// One image of the README test: repository, example, predicate type,
/// predicate, stored as a bundle, the denial expected (`None`: allowed).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Value,
    bool,
    Option<String>,
);

/// Every README example, allowed and denied, through the gateway; in
/// detection mode the denials are warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_examples_through_the_gateway() {
    use portcullis_e2e::mode_stack::ModeStack;
    use portcullis_e2e::review::{allowed, message, patch};
    use portcullis_e2e::{Review, pod_spec};
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let day = chrono::Duration::days(1);
    // (repository, example, predicate type, predicate, as bundle, expected denial)
    let cases: Vec<Case> = vec![
        (
            "slsa/ok",
            "slsa",
            SLSA,
            provenance("https://github.com/acme/app"),
            false,
            None,
        ),
        (
            "slsa/fork",
            "slsa",
            SLSA,
            provenance("https://github.com/mallory/app"),
            true,
            Some(format!(
                "ATTESTATION_CONDITION_FAILED ({SLSA}: predicate.buildDefinition.externalParameters.workflow.repository == \"https://github.com/acme/app\")"
            )),
        ),
        (
            "vuln/ok",
            "vuln",
            COSIGN_VULN,
            cosign_vuln(day, &["LOW", "HIGH"]),
            true,
            None,
        ),
        (
            "vuln/old",
            "vuln",
            COSIGN_VULN,
            cosign_vuln(day * 9, &["LOW"]),
            false,
            Some(format!(
                "ATTESTATION_CONDITION_FAILED ({COSIGN_VULN}: now - timestamp(predicate.metadata.scanFinishedOn) < duration(\"168h\"))"
            )),
        ),
        (
            "vuln/critical",
            "vuln",
            COSIGN_VULN,
            cosign_vuln(day, &["LOW", "CRITICAL"]),
            true,
            Some("ATTESTATION_CONDITION_FAILED".to_string()),
        ),
        (
            "vulns/ok",
            "vulns",
            INTOTO_VULNS,
            intoto_vulns(day * 2, &["MEDIUM"]),
            false,
            None,
        ),
        (
            "vulns/critical",
            "vulns",
            INTOTO_VULNS,
            intoto_vulns(day * 2, &["MEDIUM", "CRITICAL"]),
            true,
            Some(format!(
                "ATTESTATION_CONDITION_FAILED ({INTOTO_VULNS}: predicate.scanner.result.all(v, v.severity.all(s, s.score != \"CRITICAL\")))"
            )),
        ),
        (
            "sbom/ok",
            "sbom",
            SPDX,
            spdx(&["MIT", "Apache-2.0"]),
            true,
            None,
        ),
        (
            "sbom/agpl",
            "sbom",
            SPDX,
            spdx(&["MIT", "AGPL-3.0-only"]),
            false,
            Some("ATTESTATION_CONDITION_FAILED".to_string()),
        ),
    ];
    let mut rules = Vec::new();
    let mut images = Vec::new();
    for (seed, (repo, example, predicate_type, predicate, bundle, _)) in (2100..).zip(&cases) {
        let image = tokio::task::block_in_place(|| {
            let image = push_image(&reg, repo, "v1", seed);
            sign(&reg, &image);
            attest(&reg, &image, predicate_type, predicate, *bundle);
            image
        });
        rules.push((format!("{repo}:*"), with(readme_example(example))));
        images.push(image);
    }
    // An image with no SBOM at all.
    let bare = tokio::task::block_in_place(|| {
        let image = push_image(&reg, "sbom/none", "v1", 2199);
        sign(&reg, &image);
        image
    });
    rules.push(("sbom/none:*".to_string(), with(readme_example("sbom"))));
    let policy = config(&reg, rules);

    let stack = ModeStack::start(&policy, "detectionMode: false", Vec::new()).await;
    for ((repo, .., denial), image) in cases.iter().zip(&images) {
        let body = stack
            .mutate(&Review::pod(pod_spec(&[&image.reference], &[], &[])))
            .await;
        match denial {
            None => {
                assert!(allowed(&body), "{repo}: {body}");
                assert!(
                    patch(&body).is_some_and(|p| p.to_string().contains(&image.digest)),
                    "{repo}: pinned: {body}"
                );
            }
            Some(reason) => {
                assert!(!allowed(&body), "{repo}: {body}");
                let m = message(&body);
                assert!(
                    m.contains(reason.as_str()) && m.contains(&image.reference),
                    "{repo}: {m}"
                );
            }
        }
    }
    let body = stack
        .mutate(&Review::pod(pod_spec(&[&bare.reference], &[], &[])))
        .await;
    assert!(!allowed(&body));
    assert!(
        message(&body).contains(&format!("ATTESTATION_MISSING ({SPDX})")),
        "{body}"
    );
    drop(stack);

    // Detection mode: admitted, with the failing condition as a warning.
    let stack = ModeStack::start(&policy, "detectionMode: true", Vec::new()).await;
    let fork = &images[1];
    let body = stack
        .mutate(&Review::pod(pod_spec(&[&fork.reference], &[], &[])))
        .await;
    assert!(allowed(&body), "{body}");
    let warnings = body["response"]["warnings"].to_string();
    assert!(
        warnings.contains("ATTESTATION_CONDITION_FAILED")
            && warnings.contains("workflow.repository"),
        "{body}"
    );
}

/// A field the predicate lacks fails the condition; an expression that
/// errors at run time, or a statement over the cap, is a policy error; an
/// attestation by an untrusted key never reaches the conditions.
#[test]
fn failures_errors_and_limits() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "limits/app", "v1", 2200);
    sign(&reg, &image);
    attest(
        &reg,
        &image,
        SLSA,
        &json!({"builder": {"id": "ci"}, "n": 0}),
        false,
    );
    let run = |conditions: Value| {
        let w = with(json!([{"predicateType": SLSA, "conditions": conditions}]));
        verify_one(&config(&reg, vec![("limits/**".into(), w)]), &image)
    };
    let r = run(json!(["predicate.builder.id == 'ci'"]));
    assert_eq!(r["allowed"], true, "{r}");
    let r = run(json!(["predicate.runDetails.builder.id == 'ci'"]));
    assert_eq!(
        r["reason"],
        format!("ATTESTATION_CONDITION_FAILED ({SLSA}: predicate.runDetails.builder.id == 'ci')"),
        "a missing field fails: {r}"
    );
    let r = run(json!(["10 / predicate.n == 1"]));
    assert_eq!(r["allowed"], false, "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "ATTESTATION_POLICY_ERROR ({SLSA}: 10 / predicate.n == 1: "
        )),
        "{r}"
    );
    let r = run(json!(["predicate.builder.id"]));
    assert!(r["reason"].as_str().unwrap().contains("not a bool"), "{r}");

    // Bob's attestation says the right thing, but bob is not trusted.
    let by_bob = push_image(&reg, "limits/bob", "v1", 2201);
    sign(&reg, &by_bob);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.json");
    std::fs::write(&p, json!({"builder": {"id": "ci"}}).to_string()).unwrap();
    sigtool(
        "attest",
        &reg,
        &by_bob,
        &[
            "--key",
            &pki_path("bob.key"),
            "--predicate-type",
            SLSA,
            "--predicate",
            &p.display().to_string(),
        ],
    );
    let w = with(json!([{"predicateType": SLSA, "conditions": ["predicate.builder.id == 'ci'"]}]));
    let r = verify_one(&config(&reg, vec![("limits/**".into(), w)]), &by_bob);
    assert_eq!(r["reason"], format!("ATTESTATION_MISSING ({SLSA})"), "{r}");

    // A statement over 1 MiB is refused, not evaluated.
    let big = push_image(&reg, "limits/big", "v1", 2202);
    sign(&reg, &big);
    let blob = "x".repeat(1_200_000);
    attest(
        &reg,
        &big,
        SLSA,
        &json!({"builder": {"id": "ci"}, "padding": blob}),
        true,
    );
    let w = with(json!([{"predicateType": SLSA, "conditions": ["predicate.builder.id == 'ci'"]}]));
    let r = verify_one(&config(&reg, vec![("limits/**".into(), w)]), &big);
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("ATTESTATION_POLICY_ERROR") && reason.contains("cap"),
        "{r}"
    );
}

/// A broken expression stops the verifier at start-up, naming the file,
/// the rule and the expression.
#[test]
fn broken_conditions_are_start_up_errors() {
    let reg = Registry::start_plain();
    for (condition, says) in [
        ("predicate.x ==", "syntax"),
        ("buildType == 'x'", "unknown variable `buildType`"),
        ("size(predicate.xs)", "not a bool"),
    ] {
        let w =
            with(json!([{"predicateType": SLSA, "conditions": ["has(predicate.x)", condition]}]));
        let (code, _, stderr) = verify_json(
            &config(&reg, vec![("any/**".into(), w)]),
            &[&format!("{}/any/x:1", reg.host())],
            &[],
        );
        assert_ne!(code, 0);
        assert_ne!(code, 1, "a config error, not a verdict: {stderr}");
        for part in [
            "config.yaml",
            "policy[0].with.attestations[0].conditions[1]",
            condition,
            says,
        ] {
            assert!(stderr.contains(part), "{part:?} in {stderr}");
        }
    }
}

/// An allow whose condition reads `now` is cached only until it flips;
/// the next admission is judged again from the verified statement, without
/// asking the registry, and denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_allow_flips_with_the_clock_without_the_registry() {
    use portcullis_proto::{Reason, Source};
    use std::time::Duration;
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "flip/app", "v1", 2300));
    let expires = chrono::Utc::now() + chrono::Duration::seconds(6);
    tokio::task::block_in_place(|| {
        sign(&reg, &image);
        attest(
            &reg,
            &image,
            COSIGN_VULN,
            &json!({"metadata": {"expires": expires.to_rfc3339()}}),
            true,
        );
    });
    let w = with(json!([{
        "predicateType": COSIGN_VULN,
        "conditions": ["now < timestamp(predicate.metadata.expires)"],
    }]));
    let policy = config(&reg, vec![("flip/**".into(), w)]);
    let v = tokio::task::block_in_place(|| portcullis_e2e::Verifier::start(&policy, &[]));
    let reference = format!("{}/flip/app@{}", reg.host(), image.digest);
    let ask = || v.verify(&reference);
    let r = ask().await;
    assert!(r.is_allowed(), "{r:?}");
    let requests = reg.verifier_requests().len();
    let r = ask().await;
    assert_eq!(r.source(), Source::CacheL1, "cached before the flip: {r:?}");
    // The clock: wait for the condition's own deadline to pass.
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let denied = loop {
        let r = ask().await;
        if !r.is_allowed() {
            break r;
        }
        assert!(tokio::time::Instant::now() < end, "never flipped: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        denied.reason(),
        Reason::AttestationConditionFailed,
        "{denied:?}"
    );
    assert!(
        chrono::Utc::now() >= expires,
        "denied only once the condition is false"
    );
    assert_eq!(
        reg.verifier_requests().len(),
        requests,
        "judged again from the verified statement, not the registry"
    );
}

/// Keyless attestations show their certificate's issuer and the subject
/// that matched the root as `signer`: a root that accepts every workflow of
/// an organisation, narrowed by a condition to one repository's.
#[test]
fn keyless_signer_identity_in_conditions() {
    use portcullis_e2e::config::{cosign_for, keyless_root_regex};
    use portcullis_e2e::signer::sign_keyless;
    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    let reg = Registry::start_plain();
    let fulcio = portcullis_e2e::signer::pki().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let predicate = dir.path().join("p.json");
    std::fs::write(
        &predicate,
        provenance("https://github.com/acme/app").to_string(),
    )
    .unwrap();
    let predicate = predicate.display().to_string();
    let attested_by = |repo: &str, seed: u64, san: &str| {
        let image = push_image(&reg, repo, "v1", seed);
        sign_keyless(&reg, &image, ISSUER, san);
        sigtool(
            "attest",
            &reg,
            &image,
            &[
                "--keyless",
                "--fulcio-dir",
                &fulcio,
                "--issuer",
                ISSUER,
                "--san",
                san,
                "--predicate-type",
                SLSA,
                "--predicate",
                &predicate,
            ],
        );
        image
    };
    let app = attested_by(
        "keyless/app",
        2400,
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
    );
    let other = attested_by(
        "keyless/other",
        2401,
        "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main",
    );
    let condition = format!(
        "signer.kind == 'keyless' && signer.name == 'acme' && signer.issuer == '{ISSUER}' && signer.subject.startsWith('https://github.com/acme/app/')"
    );
    let config = config_yaml(
        vec![cosign_for(
            &reg,
            json!([keyless_root_regex(
                "acme",
                "https://token\\.actions\\.githubusercontent\\.com",
                "https://github\\.com/acme/.*"
            )]),
        )],
        vec![rule(
            &format!("{}/keyless/**", reg.host()),
            "signed",
            json!({"trustRoot": "acme", "attestations": [{"predicateType": SLSA, "conditions": [condition]}]}),
        )],
    );
    let r = verify_one(&config, &app);
    assert_eq!(r["allowed"], true, "{r}");
    let r = verify_one(&config, &other);
    assert_eq!(
        r["reason"],
        format!("ATTESTATION_CONDITION_FAILED ({SLSA}: {condition})"),
        "{r}"
    );
}
