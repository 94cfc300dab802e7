//! The paths around verification, tried as a tenant with create, update and
//! delete rights in one namespace would: updates of objects being deleted,
//! Pods created under owners that were never enforced, image volumes, and
//! clients that are not the API server. Real gateway and verifier; a real
//! registry and the independent signer where a digest must be pinned; a
//! fake Kubernetes API for owners (there is no kube-apiserver here).
//!
//! The rule under test: a shortcut may skip work, never the verdict.

use portcullis_e2e::config::{config_yaml, cosign_keys_only, key_roots, rule};
use portcullis_e2e::fake_kube::FakeKube;
use portcullis_e2e::mode_stack::ModeStack;
use portcullis_e2e::registry::Registry;
use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::signer::{pki_path, push_image, sigtool};
use portcullis_e2e::{Gateway, GatewayOptions, Review, TestCa, Verifier, pod_spec};
use serde_json::{Value, json};

/// `evil:*` is denied, `nginx:*` allowed (static rules).
const POLICY: &str = include_str!("../data/static-policy.yaml");

async fn stack_with(policy: &str, config: &str, extra: Vec<String>) -> ModeStack {
    ModeStack::start(policy, config, extra).await
}

async fn stack(config: &str, extra: Vec<String>) -> ModeStack {
    stack_with(POLICY, config, extra).await
}

/// `review` as an UPDATE of an object that is being deleted and held by a
/// finalizer: `oldObject` is the submitted object with `old_images` in its
/// template, a `deletionTimestamp` and a finalizer.
fn update_while_deleting(review: Review, old_spec: Value) -> Review {
    let mut old = review.json["request"]["object"].clone();
    let pointer = if review.json["request"]["kind"]["kind"] == "Pod" {
        "/spec"
    } else {
        "/spec/template/spec"
    };
    *old.pointer_mut(pointer).unwrap() = old_spec;
    old["metadata"]["deletionTimestamp"] = json!("2026-12-04T10:00:00Z");
    old["metadata"]["finalizers"] = json!(["x/hold"]);
    let mut review = review.update(old);
    review.json["request"]["object"]["metadata"]["deletionTimestamp"] =
        json!("2026-12-04T10:00:00Z");
    review.json["request"]["object"]["metadata"]["finalizers"] = json!(["x/hold"]);
    review
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_image_on_an_object_being_deleted_is_verified() {
    let s = stack("", vec![]).await;
    // The attack: a Deployment held by a finalizer, deleted, then its
    // template changed to a denied image.
    let review = update_while_deleting(
        Review::deployment(pod_spec(&["evil:1"], &[], &[])),
        pod_spec(&["nginx:1"], &[], &[]),
    );
    let body = s.mutate(&review).await;
    assert!(!allowed(&body), "{body}");
    assert!(message(&body).starts_with("evil:1: STATIC_DENY"), "{body}");
    let record = s.audit_of(&review.uid()).await;
    assert_eq!(record["decision"], "denied");
    assert_eq!(record["skip_reason"], Value::Null);

    // The same through an image volume added to a Pod being deleted.
    let mut spec = pod_spec(&["nginx:1"], &[], &[]);
    spec["volumes"] = json!([{"name": "v", "image": {"reference": "evil:2"}}]);
    let review = update_while_deleting(Review::pod(spec), pod_spec(&["nginx:1"], &[], &[]));
    let body = s.mutate(&review).await;
    assert!(!allowed(&body), "{body}");
    assert!(message(&body).starts_with("evil:2: STATIC_DENY"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_finalizer_with_unchanged_images_is_allowed_in_every_mode() {
    // Unchanged approval off: deletion updates are let go anyway, so that a
    // Pod whose image is denied today can still lose its finalizer.
    for config in [
        "",
        "automaticUnchangedApproval: {enabled: false}",
        "detectionMode: true",
    ] {
        let s = stack(config, vec![]).await;
        let spec = pod_spec(&["evil:1"], &[], &[]);
        let mut review = update_while_deleting(Review::pod(spec.clone()), spec);
        review.json["request"]["object"]["metadata"]["finalizers"] = json!([]);
        let body = s.mutate(&review).await;
        assert!(allowed(&body), "{config}: {body}");
        let record = s.audit_of(&review.uid()).await;
        assert_eq!(
            (record["decision"].clone(), record["skip_reason"].clone()),
            (json!("skipped"), json!("deleting")),
            "{config}"
        );
    }
    // A malformed pod spec that did not change does not hold a finalizer.
    let s = stack("", vec![]).await;
    let spec = json!({"containers": [{"name": "c", "image": 7}]});
    let review = update_while_deleting(Review::pod(spec.clone()), spec);
    assert!(allowed(&s.mutate(&review).await));
    // Changed and malformed: denied, naming the place.
    let review = update_while_deleting(
        Review::pod(json!({"containers": [{"name": "c", "image": 8}]})),
        json!({"containers": [{"name": "c", "image": 7}]}),
    );
    let body = s.mutate(&review).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        "malformed pod spec: /spec/containers/0/image is not a string"
    );
}

/// A Pod controlled by the ReplicaSet `web-7d4b9` with UID `uid`.
fn child_pod(images: &[&str], uid: &str) -> Review {
    let mut review = Review::pod(pod_spec(images, &[], &[]));
    review.json["request"]["object"]["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9", "uid": uid,
        "controller": true, "blockOwnerDeletion": true
    }]);
    review
}

const RS_PATH: &str = "/apis/apps/v1/namespaces/default/replicasets/web-7d4b9";

fn replica_set(uid: &str, images: &[&str]) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-7d4b9", "namespace": "default", "uid": uid},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec(images, &[], &[])}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_owner_with_the_same_images_vouches_for_nothing() {
    let kube = FakeKube::start().await;
    // The owner exists, its UID matches, its template holds the same image:
    // everything the old child approval compared. The image is denied by
    // the current policy (the owner was admitted before the webhook, in
    // detection mode, or under an older policy).
    kube.put(RS_PATH, replica_set("uid-1", &["evil:1"]));
    let s = stack("automaticChildApproval: {enabled: true}", kube.flags()).await;
    let review = child_pod(&["evil:1"], "uid-1");
    let body = s.mutate(&review).await;
    assert!(!allowed(&body), "{body}");
    assert!(message(&body).starts_with("evil:1: STATIC_DENY"));
    // A child of an owner holding an allowed image is allowed because its
    // image is: verified, not skipped.
    kube.put(RS_PATH, replica_set("uid-2", &["nginx:1"]));
    let review = child_pod(&["nginx:1"], "uid-2");
    let body = s.mutate(&review).await;
    assert!(allowed(&body), "{body}");
    let record = s.audit_of(&review.uid()).await;
    assert_eq!(record["decision"], "allowed");
    assert_eq!(record["skip_reason"], Value::Null);
    assert_eq!(record["images"][0]["image"], "nginx:1");
    assert!(
        kube.requests().is_empty(),
        "owners are not read: {:?}",
        kube.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_owner_is_being_deleted_is_verified() {
    let kube = FakeKube::start().await;
    let mut owner = replica_set("uid-1", &["evil:1"]);
    owner["metadata"]["deletionTimestamp"] = json!("2026-12-04T10:00:00Z");
    owner["metadata"]["finalizers"] = json!(["x/hold"]);
    kube.put(RS_PATH, owner);
    let s = stack("", kube.flags()).await;
    let body = s.mutate(&child_pod(&["evil:1"], "uid-1")).await;
    assert!(!allowed(&body), "{body}");
    assert!(message(&body).starts_with("evil:1: STATIC_DENY"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_pods_only_the_pods_of_a_relaxed_replica_set_are_enforced() {
    let kube = FakeKube::start().await;
    kube.put(RS_PATH, replica_set("uid-1", &["evil:1"]));
    let s = stack("resourceValidationMode: podsOnly", kube.flags()).await;
    // The ReplicaSet itself is relaxed: allowed with a warning.
    let rs = Review::create(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        replica_set("uid-1", &["evil:1"]),
    );
    let body = s.mutate(&rs).await;
    assert!(allowed(&body), "{body}");
    assert_eq!(patch(&body), None);
    // Its Pod is not laundered through it.
    let body = s.mutate(&child_pod(&["evil:1"], "uid-1")).await;
    assert!(!allowed(&body), "{body}");
    assert!(message(&body).starts_with("evil:1: STATIC_DENY"), "{body}");
}

/// A registry with `signed` (signed by alice) and `unsigned` images, and a
/// stack whose policy requires alice's signature on everything in it.
struct SignedRegistry {
    _reg: Registry,
    signed: String,
    signed_digest: String,
    unsigned: String,
    stack: ModeStack,
}

async fn signed_registry() -> SignedRegistry {
    let reg = Registry::start_plain();
    let signed = push_image(&reg, "vol/models", "v1", 310);
    let unsigned = push_image(&reg, "vol/unsigned", "v1", 311);
    sigtool(
        "sign-key",
        &reg,
        &signed,
        &["--key", &pki_path("alice.key")],
    );
    let policy = config_yaml(
        vec![cosign_keys_only(&reg, key_roots(&["alice"]))],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let stack = stack_with(&policy, "", vec![]).await;
    SignedRegistry {
        signed: signed.reference.clone(),
        signed_digest: signed.digest.clone(),
        unsigned: unsigned.reference.clone(),
        _reg: reg,
        stack,
    }
}

fn with_volumes(mut spec: Value, references: &[&str]) -> Value {
    spec["volumes"] = references
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"name": format!("v{i}"), "image": {"reference": r, "pullPolicy": "IfNotPresent"}}))
        .collect();
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_volumes_are_verified_and_pinned() {
    let r = signed_registry().await;
    let s = &r.stack;
    let pinned = format!("{}@{}", r.signed, r.signed_digest);

    // A Pod: the volume's tag is pinned at its own path.
    let spec = with_volumes(pod_spec(&[&r.signed], &[], &[]), &[&r.signed]);
    let body = s.mutate(&Review::pod(spec)).await;
    assert!(allowed(&body), "{body}");
    let ops = patch(&body).expect("a patch");
    let paths: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/containers/0/image",
            "/spec/volumes/0/image/reference"
        ]
    );
    assert!(
        ops.as_array()
            .unwrap()
            .iter()
            .all(|op| op["value"] == pinned),
        "{ops}"
    );

    // A Deployment template: the template path.
    let spec = with_volumes(pod_spec(&[&pinned], &[], &[]), &[&r.signed]);
    let body = s.mutate(&Review::deployment(spec)).await;
    assert!(allowed(&body), "{body}");
    assert_eq!(
        patch(&body).unwrap(),
        json!([{"op": "replace", "path": "/spec/template/spec/volumes/0/image/reference", "value": pinned}])
    );

    // An unsigned volume image is denied, by name, in both, and audited.
    for review in [
        Review::pod(with_volumes(pod_spec(&[&pinned], &[], &[]), &[&r.unsigned])),
        Review::deployment(with_volumes(pod_spec(&[&pinned], &[], &[]), &[&r.unsigned])),
    ] {
        let body = s.mutate(&review).await;
        assert!(!allowed(&body), "{body}");
        assert_eq!(
            message(&body),
            format!(
                "{}: NO_SIGNATURES: no signatures found for {}",
                r.unsigned, r.unsigned
            )
        );
        let record = s.audit_of(&review.uid()).await;
        let images = record["images"].as_array().unwrap();
        let volume = images.iter().find(|i| i["image"] == r.unsigned.as_str());
        assert_eq!(volume.unwrap()["reason"], "NO_SIGNATURES", "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_image_volumes_are_denied_by_name() {
    let s = stack("", vec![]).await;
    let spec = with_volumes(pod_spec(&["nginx:1"], &[], &[]), &["Not A Reference!"]);
    let body = s.mutate(&Review::pod(spec)).await;
    assert!(!allowed(&body), "{body}");
    assert!(
        message(&body).starts_with("Not A Reference!: INVALID_REFERENCE"),
        "{body}"
    );
    let mut spec = pod_spec(&["nginx:1"], &[], &[]);
    spec["volumes"] = json!([{"name": "v", "image": {"reference": {"evil": 1}}}]);
    let body = s.mutate(&Review::deployment(spec)).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        "malformed pod spec: /spec/template/spec/volumes/0/image/reference is not a string"
    );
    // Denied in a Pod too (the static policy denies evil:*).
    let spec = with_volumes(pod_spec(&["nginx:1"], &[], &[]), &["evil:3"]);
    let body = s.mutate(&Review::pod(spec)).await;
    assert!(message(&body).starts_with("evil:3: STATIC_DENY"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_the_api_server_gets_an_answer() {
    let verifier = Verifier::start(POLICY, &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        client_auth: true,
        ..Default::default()
    })
    .await;
    let review = Review::pod(pod_spec(&["nginx:1"], &[], &[]));
    // The API server's certificate: answered.
    let (status, body) = gw.post_json("/mutate", &review.json).await;
    assert_eq!(status, 200);
    assert!(allowed(&body));

    let trust_gateway = || reqwest::Certificate::from_pem(gw.ca.cert_pem().as_bytes()).expect("CA");
    let post = |client: reqwest::Client| {
        let url = format!("{}/mutate", gw.url());
        let body = serde_json::to_vec(&review.json).unwrap();
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
        }
    };
    // No client certificate: the handshake fails, nothing is answered.
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([trust_gateway()])
        .build()
        .unwrap();
    let result = post(anonymous).await;
    assert!(
        result.is_err(),
        "answered without a certificate: {result:?}"
    );
    // A certificate from another CA (the gateway's own serving CA, say).
    let other = gw.ca.issue("tenant");
    let impostor = reqwest::Client::builder()
        .tls_certs_only([trust_gateway()])
        .identity(other.identity())
        .build()
        .unwrap();
    let result = post(impostor).await;
    assert!(
        result.is_err(),
        "answered a foreign certificate: {result:?}"
    );

    // Probes and metrics on the plain listener, never the webhooks.
    let (_, probe) = gw.client_auth.as_ref().unwrap();
    let plain = reqwest::Client::new();
    for (path, expected) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
        let r = plain
            .get(format!("http://{probe}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "{path}");
    }
    let r = plain
        .post(format!("http://{probe}/mutate"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&review.json).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "no webhook on the probe listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_ca_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "webhook");
    let leaf = ca.issue("gateway");
    let bad = dir.path().join("client-ca.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let out = std::process::Command::new(portcullis_e2e::bin_path("portcullis-gateway"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--verifier",
            "http://127.0.0.1:1",
        ])
        .arg("--tls-cert")
        .arg(&leaf.chain)
        .arg("--tls-key")
        .arg(&leaf.key)
        .arg("--client-ca")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--client-ca {}", bad.display())),
        "{stderr}"
    );
}
