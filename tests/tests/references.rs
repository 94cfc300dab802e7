//! One image, one meaning: the one the container runtime pulls. Host
//! spellings that containerd pulls from the same registry match the same
//! rules, and a tag written next to a digest chooses a rule only when it is
//! confirmed to name that digest. Through `verify --json` and the gateway,
//! with a real registry and the independent signer where signatures count.

use portcullis_e2e::config::{config_yaml, cosign_keys_only, key_roots, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::review::{allowed, message};
use portcullis_e2e::signer::{pki_path, push_image, sigtool};
use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec, verify_json};
use serde_json::{Value, json};

/// A blocklist: two registries denied, everything else allowed.
const BLOCKLIST: &str = r#"
validators:
  - {name: allow, type: static, approve: true}
  - {name: deny, type: static, approve: false}
policy:
  - {pattern: "ghcr.io/**", validator: deny}
  - {pattern: "docker.io/**", validator: deny}
  - {pattern: "**", validator: allow}
"#;

fn results(config: &str, images: &[&str]) -> Vec<Value> {
    let (code, results, stderr) = verify_json(config, images, &[]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    assert_eq!(results.len(), images.len(), "{stderr}");
    results
}

#[test]
fn host_spellings_of_a_blocked_registry_are_blocked() {
    let spellings = [
        "GHCR.IO/org/app:1",
        "ghcr.io:443/org/app:1",
        "Ghcr.Io:443/org/app:1",
        "registry-1.docker.io/library/nginx:1",
        "REGISTRY-1.DOCKER.IO/bitnami/redis:7",
        "index.docker.io:443/library/nginx:1",
        "docker.io:443/nginx:1",
    ];
    for r in results(BLOCKLIST, &spellings) {
        assert_eq!(r["allowed"], false, "{r}");
        assert_eq!(r["reason"], "STATIC_DENY", "{r}");
    }
    let r = &results(BLOCKLIST, &["ghcr.io:4443/org/app:1"])[0];
    assert_eq!(r["allowed"], true, "another port is another registry: {r}");
    // The normalised reference is the canonical one.
    let r = &results(BLOCKLIST, &["GHCR.IO:443/org/app:1"])[0];
    assert_eq!(r["image"], "GHCR.IO:443/org/app:1");
    // An upper-case path is not a reference the runtime accepts.
    let r = &results(BLOCKLIST, &["ghcr.io/Org/app:1"])[0];
    assert_eq!(r["reason"], "INVALID_REFERENCE", "{r}");
}

#[test]
fn bad_hosts_and_ports_are_invalid_references() {
    let bad = [
        "ghcr.io:0/x",
        "ghcr.io:65536/x",
        "ghcr.io:99999999999/x",
        ":5000/x",
        "/x",
        "[::1/x",
        "ghcr.io:/x",
    ];
    for (image, r) in bad.iter().zip(results(BLOCKLIST, &bad)) {
        assert_eq!(r["allowed"], false, "{image}: {r}");
        assert_eq!(r["reason"], "INVALID_REFERENCE", "{image}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_every_spelling_is_denied_by_name() {
    let verifier = Verifier::start(BLOCKLIST, &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let images = [
        "GHCR.IO/org/app:1",
        "ghcr.io:443/org/app:1",
        "registry-1.docker.io/library/nginx:1",
        "ghcr.io:0/x",
    ];
    let (_, body) = gw
        .post_json("/mutate", &Review::pod(pod_spec(&images, &[], &[])).json)
        .await;
    assert!(!allowed(&body), "{body}");
    let lines: Vec<String> = message(&body).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{body}");
    for (image, line) in images.iter().zip(&lines) {
        let expected = if image.ends_with(":0/x") {
            "INVALID_REFERENCE"
        } else {
            "STATIC_DENY"
        };
        assert!(line.starts_with(&format!("{image}: {expected}")), "{line}");
    }
}

/// A strict rule for the repository (alice and bob), a weaker one for its
/// `dev-*` tags (`weak`: bob alone, or a static allow), and digest-only
/// references under the strict rule.
fn tag_policy(reg: &Registry, weak: Value) -> String {
    let weak_with = if weak["type"] == "static" {
        Value::Null
    } else {
        json!({"trustRoot": "*"})
    };
    let mut strict = cosign_keys_only(reg, key_roots(&["alice", "bob"]));
    strict["name"] = json!("strict");
    let repo = format!("{}/team/app", reg.host());
    config_yaml(
        vec![strict, weak],
        vec![
            rule(
                &format!("{repo}:*"),
                "strict",
                json!({"trustRoot": "*", "threshold": 2}),
            ),
            rule(
                &format!("{repo}@*"),
                "strict",
                json!({"trustRoot": "*", "threshold": 2}),
            ),
            rule(&format!("{repo}:dev-*"), "weak", weak_with),
        ],
    )
}

#[test]
fn a_tag_next_to_a_digest_chooses_the_rule_only_when_the_registry_confirms_it() {
    let reg = Registry::start_plain();
    // A release image signed by bob alone: not enough for the strict rule.
    let image = push_image(&reg, "team/app", "release-1", 400);
    sigtool("sign-key", &reg, &image, &["--key", &pki_path("bob.key")]);
    let mut weak = cosign_keys_only(&reg, key_roots(&["bob"]));
    weak["name"] = json!("weak");
    let config = tag_policy(&reg, weak);
    let labelled = format!("{}/team/app:dev-x@{}", reg.host(), image.digest);

    // The attack: any digest labelled `dev-x` in the pod spec.
    let r = &results(&config, &[&labelled])[0];
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["reason"], "THRESHOLD_NOT_MET (1 of 2)", "{r}");
    assert_eq!(r["rule"], format!("{}/team/app@*", reg.host()), "{r}");

    // Once `dev-x` really names that digest, the dev rule applies.
    push_image(&reg, "team/app", "dev-x", 400);
    let r = &results(&config, &[&labelled])[0];
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["rule"], format!("{}/team/app:dev-*", reg.host()), "{r}");

    // A tag that names another digest: matched by digest again.
    push_image(&reg, "team/app", "dev-y", 401);
    let other = format!("{}/team/app:dev-y@{}", reg.host(), image.digest);
    let r = &results(&config, &[&other])[0];
    assert_eq!(r["reason"], "THRESHOLD_NOT_MET (1 of 2)", "{r}");

    // The same tag and digest under one rule need no confirmation.
    let strict_tag = format!("{}/team/app:release-1@{}", reg.host(), image.digest);
    let r = &results(&config, &[&strict_tag])[0];
    assert_eq!(r["rule"], format!("{}/team/app:*", reg.host()), "{r}");
}

#[test]
fn a_static_rule_for_a_tag_never_vouches_for_a_digest() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "team/app", "dev-x", 402);
    let weak = json!({"name": "weak", "type": "static", "approve": true});
    let config = tag_policy(&reg, weak);
    // Even a tag that does name the digest: a static rule cannot confirm
    // it, so the digest's own rule decides.
    let labelled = format!("{}/team/app:dev-x@{}", reg.host(), image.digest);
    let r = &results(&config, &[&labelled])[0];
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["rule"], format!("{}/team/app@*", reg.host()), "{r}");
    assert_eq!(r["reason"], "NO_SIGNATURES", "{r}");
    // The tag alone is what the static rule is for.
    let tagged = format!("{}/team/app:dev-x", reg.host());
    let r = &results(&config, &[&tagged])[0];
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_a_labelled_digest_gets_the_digest_rule() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "team/app", "release-2", 403));
    tokio::task::block_in_place(|| {
        sigtool("sign-key", &reg, &image, &["--key", &pki_path("bob.key")])
    });
    let mut weak = cosign_keys_only(&reg, key_roots(&["bob"]));
    weak["name"] = json!("weak");
    let verifier = tokio::task::block_in_place(|| Verifier::start(&tag_policy(&reg, weak), &[]));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let labelled = format!("{}/team/app:dev-x@{}", reg.host(), image.digest);
    let (_, body) = gw
        .post_json(
            "/mutate",
            &Review::pod(pod_spec(&[&labelled], &[], &[])).json,
        )
        .await;
    assert!(!allowed(&body), "{body}");
    assert_eq!(
        message(&body),
        format!("{labelled}: THRESHOLD_NOT_MET (1 of 2): 1 of 2 required trust roots signed (bob)")
    );
}
