//! Registry behaviour: TLS with the validator's CA, and failures told apart
//! (definitive vs transient), through a fault-injecting proxy in front of a
//! real registry. End to end through the gateway: mixed pods and pinning.

use std::time::{Duration, Instant};

use portcullis_e2e::config::{config_yaml, cosign_keys_only, key_roots, rule};
use portcullis_e2e::faults::{Fault, FaultProxy};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::signer::{pki_path, push_image, sigtool};
use portcullis_e2e::{Gateway, GatewayOptions, Review, TestCa, Verifier, pod_spec, verify_json};
use serde_json::{Value, json};

fn alice_config_for_host(host: &str) -> String {
    let validator = json!({
        "name": "signed",
        "type": "cosign",
        "insecureRegistries": [host],
        "trustRoots": key_roots(&["alice"]),
    });
    config_yaml(
        vec![validator],
        vec![rule(
            &format!("{host}/**"),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    )
}

fn one(config: &str, image: &str) -> Value {
    let (_, results, stderr) = verify_json(config, &[image], &[]);
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

#[test]
fn tls_registry_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "registry");
    let reg = Registry::start(Some(&ca));
    let image = push_image(&reg, "tls/app", "v1", 200);
    sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
    let config = config_yaml(
        vec![cosign_keys_only(&reg, key_roots(&["alice"]))],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let r = one(&config, &image.reference);
    assert_eq!(r["allowed"], true, "{r}");
    // Without the CA the TLS handshake fails: a transient, clearly named
    // registry failure, not "unsigned".
    let without_ca = {
        let mut v: Value = serde_yaml_ng::from_str(&config).unwrap();
        v["validators"][0].as_object_mut().unwrap().remove("cert");
        serde_yaml_ng::to_string(&v).unwrap()
    };
    let r = one(&without_ca, &image.reference);
    assert_eq!(r["allowed"], false);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("REGISTRY_UNAVAILABLE"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_failures_are_named_and_never_allow() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "faults/app", "v1", 210);
    sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let config = alice_config_for_host(&host);
    let reference = format!("{host}/faults/app:v1");

    let r = tokio::task::block_in_place(|| one(&config, &reference));
    assert_eq!(r["allowed"], true, "through the proxy: {r}");

    let cases = [
        (Fault::Status(401), format!("REGISTRY_AUTH_FAILED ({host})")),
        (Fault::Status(404), "IMAGE_NOT_FOUND".to_string()),
        (
            Fault::Status(429),
            format!("REGISTRY_UNAVAILABLE ({host}, 429)"),
        ),
        (
            Fault::Status(500),
            format!("REGISTRY_UNAVAILABLE ({host}, 500)"),
        ),
        (
            Fault::Status(503),
            format!("REGISTRY_UNAVAILABLE ({host}, 503)"),
        ),
    ];
    for (fault, expected) in cases {
        proxy.set(fault.clone()).await;
        let r = tokio::task::block_in_place(|| one(&config, &reference));
        assert_eq!(r["allowed"], false, "{fault:?}: {r}");
        assert_eq!(r["reason"], expected, "{fault:?}: {r}");
        assert!(
            r["message"].as_str().unwrap().contains(&host) || expected == "IMAGE_NOT_FOUND",
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_registry_cannot_outlast_the_admission_deadline() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "faults/hang", "v1", 220);
    sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    proxy.set(Fault::Hang).await;
    let host = proxy.host();
    let verifier = Verifier::start(&alice_config_for_host(&host), &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        args: vec!["--deadline-ms".into(), "1500".into()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let image_ref = format!("{host}/faults/hang:v1");
    let started = Instant::now();
    let (status, body) = gw
        .post_json(
            "/mutate",
            &Review::pod(pod_spec(&[&image_ref], &[], &[])).json,
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert!(!allowed(&body), "{body}");
    let msg = message(&body);
    assert!(msg.starts_with(&format!("{image_ref}: TIMEOUT: ")), "{msg}");
    assert_eq!(msg.lines().count(), 1);
    // The answer came at the deadline, not after the registry's own timeouts.
    assert!(
        elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_denies_only_the_unsigned_image_and_pins_signed_ones() {
    let reg = Registry::start_plain();
    let signed = push_image(&reg, "e2e/signed", "v1", 230);
    let signed2 = push_image(&reg, "e2e/signed2", "2.0", 231);
    let unsigned = push_image(&reg, "e2e/unsigned", "v1", 232);
    sigtool(
        "sign-key",
        &reg,
        &signed,
        &["--key", &pki_path("alice.key")],
    );
    sigtool("bundle", &reg, &signed2, &["--key", &pki_path("alice.key")]);
    let config = config_yaml(
        vec![cosign_keys_only(&reg, key_roots(&["alice"]))],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let verifier = Verifier::start(&config, &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;

    let pod = Review::pod(pod_spec(
        &[&signed.reference, &unsigned.reference],
        &[],
        &[],
    ));
    let (_, body) = gw.post_json("/mutate", &pod.json).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        format!(
            "{}: NO_SIGNATURES: no signatures found for {}",
            unsigned.reference, unsigned.reference
        )
    );

    let deployment = Review::deployment(pod_spec(
        &[&signed.reference, &signed2.reference],
        &[&signed.reference],
        &[],
    ));
    let (_, body) = gw.post_json("/mutate", &deployment.json).await;
    assert!(allowed(&body), "{body}");
    let base = "/spec/template/spec";
    assert_eq!(
        patch(&body),
        Some(json!([
            {"op": "replace", "path": format!("{base}/containers/0/image"), "value": format!("{}@{}", signed.reference, signed.digest)},
            {"op": "replace", "path": format!("{base}/containers/1/image"), "value": format!("{}@{}", signed2.reference, signed2.digest)},
            {"op": "replace", "path": format!("{base}/initContainers/0/image"), "value": format!("{}@{}", signed.reference, signed.digest)},
        ]))
    );
    // Already pinned: allowed, no patch.
    let pinned = format!("{}@{}", signed.reference, signed.digest);
    let (_, body) = gw
        .post_json("/mutate", &Review::pod(pod_spec(&[&pinned], &[], &[])).json)
        .await;
    assert!(allowed(&body), "{body}");
    assert_eq!(patch(&body), None);
}

/// The registry requests of one cold verification of a tag, from the
/// registry's own access log: resolve the tag (HEAD), the `.sig` manifest,
/// the referrers API (404 on distribution 2.8, remembered per host), the
/// referrers tag-schema index, and the signature payload blob.
#[test]
fn requests_of_a_cold_key_verification() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "count/app", "v1", 240);
    sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
    let config = config_yaml(
        vec![cosign_keys_only(&reg, key_roots(&["alice"]))],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let r = one(&config, &image.reference);
    assert_eq!(r["allowed"], true, "{r}");
    let hex = image.digest.strip_prefix("sha256:").unwrap();
    let requests: Vec<(String, String, u16)> = reg
        .verifier_requests()
        .into_iter()
        .map(|a| (a.method, a.path, a.status))
        .collect();
    let mut expected = vec![
        (
            "HEAD".to_string(),
            "/v2/count/app/manifests/v1".to_string(),
            200,
        ),
        (
            "GET".to_string(),
            format!("/v2/count/app/manifests/sha256-{hex}.sig"),
            200,
        ),
        (
            "GET".to_string(),
            format!("/v2/count/app/referrers/{}", image.digest),
            404,
        ),
        (
            "GET".to_string(),
            format!("/v2/count/app/manifests/sha256-{hex}"),
            404,
        ),
    ];
    let blob = requests
        .iter()
        .find(|r| r.1.contains("/blobs/"))
        .cloned()
        .expect("payload blob fetched");
    expected.push(blob);
    let mut got = requests.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_retry_after_is_honoured_and_long_one_fails_at_once() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "ratelimit/app", "v1", 220);
    sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let config = alice_config_for_host(&host);
    let reference = format!("{host}/ratelimit/app:v1");
    // Undisturbed: how many requests one verification takes.
    let r = tokio::task::block_in_place(|| one(&config, &reference));
    assert_eq!(r["allowed"], true, "{r}");
    let baseline = proxy.requests();

    // Every third request throttled with `Retry-After: 1`: each is waited
    // out and retried once, so the image is admitted with one extra request
    // per throttled one.
    proxy
        .set(Fault::EveryNth {
            n: 3,
            status: 429,
            retry_after: Some(1),
        })
        .await;
    let before = proxy.requests();
    let started = Instant::now();
    let r = tokio::task::block_in_place(|| one(&config, &reference));
    assert_eq!(r["allowed"], true, "{r}");
    let injected = proxy.injected();
    assert!(injected >= 1, "the fault was exercised");
    assert_eq!(proxy.requests() - before, baseline + injected);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the wait was taken"
    );

    // A `Retry-After` longer than the verifier waits (30 s): denied at once
    // as transient, never a wait to the deadline.
    proxy
        .set(Fault::EveryNth {
            n: 1,
            status: 503,
            retry_after: Some(30),
        })
        .await;
    let started = Instant::now();
    let r = tokio::task::block_in_place(|| one(&config, &reference));
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("REGISTRY_UNAVAILABLE ({host}, 503)")),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait for 30 s"
    );
}
