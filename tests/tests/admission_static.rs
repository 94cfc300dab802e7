//! AdmissionReview end to end: the real gateway and verifier binaries, a
//! static policy (tests/data/static-policy.yaml), reviews POSTed over HTTPS
//! as kube-apiserver sends them.

use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec};
use serde_json::{Value, json};

const POLICY: &str = include_str!("../data/static-policy.yaml");

async fn stack() -> (Verifier, Gateway) {
    let verifier = Verifier::start(POLICY, &[]);
    let gateway = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    (verifier, gateway)
}

fn deny_line(image: &str, pattern: &str) -> String {
    format!("{image}: STATIC_DENY: denied by static validator `deny` (rule `{pattern}`)")
}

async fn mutate(gw: &Gateway, review: &Review) -> Value {
    let (status, body) = gw.post_json("/mutate", &review.json).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["response"]["uid"], review.uid(), "uid is echoed");
    body
}

#[tokio::test]
async fn pod_with_all_container_lists_is_allowed_without_patch() {
    let (_v, gw) = stack().await;
    let review = Review::pod(pod_spec(
        &["nginx:1.25", "redis"],
        &["busybox:1"],
        &["registry.example.com/debug/tools:1"],
    ));
    let body = mutate(&gw, &review).await;
    assert!(allowed(&body), "{body}");
    // A static allow verifies nothing, so nothing is pinned.
    assert_eq!(patch(&body), None);
}

#[tokio::test]
async fn every_list_is_checked() {
    let (_v, gw) = stack().await;
    for (containers, init, ephemeral) in [
        (vec!["evil:1"], vec![], vec![]),
        (vec!["nginx"], vec!["evil:1"], vec![]),
        (vec!["nginx"], vec![], vec!["evil:1"]),
    ] {
        let review = Review::pod(pod_spec(&containers, &init, &ephemeral));
        let body = mutate(&gw, &review).await;
        assert!(!allowed(&body));
        assert_eq!(
            message(&body),
            deny_line("evil:1", "docker.io/library/evil:*")
        );
        assert_eq!(body["response"]["status"]["code"], 403);
        assert_eq!(patch(&body), None);
    }
}

fn workload(kind: &str, group: &str, resource: &str, spec: Value) -> Review {
    let template = json!({"metadata": {"labels": {"a": "b"}}, "spec": spec});
    let object_spec = match kind {
        "CronJob" => {
            json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        _ => json!({"selector": {"matchLabels": {"a": "b"}}, "template": template}),
    };
    let (g, v) = group.split_once('/').unwrap_or(("", group));
    Review::create(
        g,
        v,
        kind,
        resource,
        json!({"apiVersion": group, "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": object_spec}),
    )
}

#[tokio::test]
async fn every_workload_kind() {
    let (_v, gw) = stack().await;
    let kinds = [
        ("Deployment", "apps/v1", "deployments"),
        ("ReplicaSet", "apps/v1", "replicasets"),
        ("StatefulSet", "apps/v1", "statefulsets"),
        ("DaemonSet", "apps/v1", "daemonsets"),
        ("Job", "batch/v1", "jobs"),
        ("CronJob", "batch/v1", "cronjobs"),
        ("ReplicationController", "v1", "replicationcontrollers"),
        // A custom resource with a pod template at spec.template.spec.
        ("Rollout", "argoproj.io/v1alpha1", "rollouts"),
    ];
    for (kind, group, resource) in kinds {
        let ok = workload(
            kind,
            group,
            resource,
            pod_spec(&["nginx:1"], &["busybox"], &[]),
        );
        let body = mutate(&gw, &ok).await;
        assert!(allowed(&body), "{kind}: {body}");
        let bad = workload(
            kind,
            group,
            resource,
            pod_spec(&["nginx:1"], &["registry.example.com/blocked/x:2"], &[]),
        );
        let body = mutate(&gw, &bad).await;
        assert!(!allowed(&body), "{kind} must be denied");
        assert_eq!(
            message(&body),
            deny_line(
                "registry.example.com/blocked/x:2",
                "registry.example.com/blocked/*"
            ),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn duplicated_images_give_one_line_each() {
    let (_v, gw) = stack().await;
    let review = Review::pod(pod_spec(
        &["evil:1", "nginx", "evil:1"],
        &["evil:1"],
        &["quay.io/x/y:1"],
    ));
    let body = mutate(&gw, &review).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        [
            deny_line("evil:1", "docker.io/library/evil:*"),
            "quay.io/x/y:1: NO_MATCHING_RULE: no policy rule matches quay.io/x/y:1".to_string(),
        ]
        .join("\n")
    );
}

#[tokio::test]
async fn patterns_are_anchored() {
    let (_v, gw) = stack().await;
    // Connaisseur's substring match would let this pass the
    // registry.example.com/** rule.
    let image = "attacker.example/registry.example.com/app:1";
    let body = mutate(&gw, &Review::pod(pod_spec(&[image], &[], &[]))).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        format!("{image}: NO_MATCHING_RULE: no policy rule matches {image}")
    );
}

#[tokio::test]
async fn invalid_reference_is_denied_by_name() {
    let (_v, gw) = stack().await;
    let body = mutate(
        &gw,
        &Review::pod(pod_spec(&["nginx", "Not/A Valid:ref"], &[], &[])),
    )
    .await;
    assert!(!allowed(&body));
    let msg = message(&body);
    assert!(
        msg.starts_with("Not/A Valid:ref: INVALID_REFERENCE: invalid image reference:"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1);
}

#[tokio::test]
async fn update_checks_the_new_object() {
    let (_v, gw) = stack().await;
    let old = Review::pod(pod_spec(&["nginx"], &[], &[])).json["request"]["object"].clone();
    let review = Review::pod(pod_spec(&["evil:2"], &[], &[])).update(old.clone());
    let body = mutate(&gw, &review).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        deny_line("evil:2", "docker.io/library/evil:*")
    );
    let review = Review::pod(pod_spec(&["nginx:2"], &[], &[])).update(old);
    assert!(allowed(&mutate(&gw, &review).await));
}

#[tokio::test]
async fn ephemeral_containers_subresource() {
    let (_v, gw) = stack().await;
    // `kubectl debug` sends the whole Pod through pods/ephemeralcontainers.
    let mut review = Review::pod(pod_spec(&["nginx"], &[], &["evil:debug"]));
    review.json["request"]["subResource"] = json!("ephemeralcontainers");
    review.json["request"]["resource"]["resource"] = json!("pods");
    let old = Review::pod(pod_spec(&["nginx"], &[], &[])).json["request"]["object"].clone();
    let review = review.update(old);
    let body = mutate(&gw, &review).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        deny_line("evil:debug", "docker.io/library/evil:*")
    );
}

#[tokio::test]
async fn objects_without_pod_spec_and_deletes_are_allowed() {
    let (_v, gw) = stack().await;
    let cm = Review::create(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": "evil:1"}}),
    );
    assert!(allowed(&mutate(&gw, &cm).await));
    let mut delete = Review::pod(pod_spec(&["evil:1"], &[], &[]));
    delete.json["request"]["operation"] = json!("DELETE");
    delete.json["request"]["oldObject"] = delete.json["request"]["object"].take();
    assert!(allowed(&mutate(&gw, &delete).await));
}

#[tokio::test]
async fn malformed_pod_spec_is_denied() {
    let (_v, gw) = stack().await;
    let review = Review::pod(json!({"containers": [{"name": "a", "image": 42}]}));
    let body = mutate(&gw, &review).await;
    assert!(!allowed(&body));
    assert_eq!(
        message(&body),
        "malformed pod spec: /spec/containers/0/image is not a string"
    );
}

#[tokio::test]
async fn validate_endpoint_never_patches() {
    let (_v, gw) = stack().await;
    let review = Review::deployment(pod_spec(&["nginx:1"], &[], &[]));
    let (status, body) = gw.post_json("/validate", &review.json).await;
    assert_eq!(status, 200);
    assert!(allowed(&body));
    assert!(body["response"].get("patch").is_none());
    assert!(body["response"].get("patchType").is_none());
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let (mut v, gw) = stack().await;
    assert_eq!(gw.get("/healthz").await.0, 200);
    assert_eq!(gw.get("/readyz").await.0, 200);
    mutate(&gw, &Review::pod(pod_spec(&["nginx"], &[], &[]))).await;
    let allowed_count = gw
        .metric("portcullis_admissions_total{endpoint=\"mutate\",result=\"allowed\"}")
        .await;
    assert_eq!(allowed_count, 1.0);
    // With the only verifier gone, readiness fails and admissions are
    // denied with VERIFIER_UNAVAILABLE, promptly.
    v.process.kill();
    let started = std::time::Instant::now();
    let mut denied = false;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let body = mutate(&gw, &Review::pod(pod_spec(&["nginx:9"], &[], &[]))).await;
        if !allowed(&body) {
            let msg = message(&body);
            assert!(msg.starts_with("nginx:9: VERIFIER_UNAVAILABLE: "), "{msg}");
            denied = true;
            break;
        }
    }
    assert!(denied, "requests must be denied once the verifier is gone");
    let mut ready = 200;
    for _ in 0..100 {
        ready = gw.get("/readyz").await.0;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503);
}
