//! The gateway's operating modes, end to end with the real gateway and
//! verifier (static policy: `evil:*` is denied, `nginx:*` allowed), a real
//! local alert receiver, and — for namespace scoping — a fake Kubernetes API
//! endpoint over HTTPS (there is no kube-apiserver on this machine; see
//! `portcullis_e2e::fake_kube`). Shortcuts and side doors are in
//! `side_doors.rs`.

use std::time::{Duration, Instant};

use portcullis_e2e::fake_kube::FakeKube;
use portcullis_e2e::mode_stack::ModeStack;
use portcullis_e2e::receiver::Receiver;
use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::{Review, pod_spec};
use serde_json::{Value, json};

const POLICY: &str = include_str!("../data/static-policy.yaml");

/// The stack with the static policy.
async fn stack(config: &str, extra: Vec<String>) -> ModeStack {
    ModeStack::start(POLICY, config, extra).await
}

fn warnings(body: &Value) -> Vec<String> {
    body["response"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn deployment_with(images: &[&str]) -> Review {
    Review::deployment(pod_spec(images, &[], &[]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_mode_allows_with_warnings_and_counts() {
    let s = stack("detectionMode: true", vec![]).await;
    let body = s
        .mutate(&Review::pod(pod_spec(&["evil:1", "nginx:1"], &[], &[])))
        .await;
    assert!(allowed(&body), "{body}");
    assert_eq!(patch(&body), None);
    assert_eq!(
        warnings(&body),
        vec![
            "detection mode, would deny: evil:1: STATIC_DENY: denied by static validator `deny` (rule `docker.io/library/evil:*`)"
        ]
    );
    assert_eq!(s.gw.metric("portcullis_would_deny_total").await, 1.0);
    let records = s.audit(1).await;
    assert_eq!(records[0]["decision"], "would_deny");
    assert_eq!(records[0]["allowed"], true);
    assert_eq!(records[0]["mode"]["detection"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_only_enforces_pods_and_relaxes_controllers() {
    let s = stack("resourceValidationMode: podsOnly", vec![]).await;
    let body = s.mutate(&deployment_with(&["evil:1"])).await;
    assert!(allowed(&body), "{body}");
    assert_eq!(patch(&body), None, "never a patchType without a patch");
    assert!(body["response"].get("patchType").is_none());
    let w = warnings(&body);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with(
            "podsOnly: not enforced on Deployment, its Pods would be denied: evil:1: STATIC_DENY"
        ),
        "{w:?}"
    );
    let body = s.mutate(&deployment_with(&["nginx:1"])).await;
    assert!(allowed(&body));
    assert_eq!(
        warnings(&body),
        vec!["podsOnly: Deployment is not enforced or patched; its Pods are"]
    );
    let body = s
        .mutate(&Review::pod(pod_spec(&["evil:1"], &[], &[])))
        .await;
    assert!(!allowed(&body), "Pods are enforced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_mode_with_pods_only() {
    let s = stack(
        "detectionMode: true\nresourceValidationMode: podsOnly",
        vec![],
    )
    .await;
    let body = s
        .mutate(&Review::pod(pod_spec(&["evil:1"], &[], &[])))
        .await;
    assert!(allowed(&body));
    assert!(warnings(&body)[0].starts_with("detection mode, would deny: evil:1"));
    let body = s.mutate(&deployment_with(&["evil:1"])).await;
    assert!(allowed(&body));
    assert_eq!(patch(&body), None);
    assert_eq!(s.gw.metric("portcullis_would_deny_total").await, 2.0);
}

fn with_deletion(review: Review) -> Review {
    let mut old = review.json["request"]["object"].clone();
    old["metadata"]["deletionTimestamp"] = json!("2026-11-24T10:00:00Z");
    old["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    review.update(old)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_updates_are_allowed_in_every_mode() {
    for config in ["", "detectionMode: true"] {
        let s = stack(config, vec![]).await;
        // Removing a finalizer from a Pod whose image is now denied.
        let review = with_deletion(Review::pod(pod_spec(&["evil:1"], &[], &[])));
        let body = s.mutate(&review).await;
        assert!(allowed(&body), "{config}: {body}");
        assert!(warnings(&body).is_empty());
        let records = s.audit(1).await;
        assert_eq!(
            (
                records[0]["decision"].clone(),
                records[0]["skip_reason"].clone()
            ),
            (json!("skipped"), json!("deleting"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_updates_skip_verification() {
    let s = stack("", vec![]).await;
    let old = Review::pod(pod_spec(&["evil:1"], &[], &[])).json["request"]["object"].clone();
    let mut new = Review::pod(pod_spec(&["evil:1"], &[], &[]));
    new.json["request"]["object"]["metadata"]["labels"] = json!({"changed": "yes"});
    let body = s.mutate(&new.update(old.clone())).await;
    assert!(
        allowed(&body),
        "an UPDATE with no new image is not re-verified"
    );
    let body = s
        .mutate(&Review::pod(pod_spec(&["evil:1", "evil:2"], &[], &[])).update(old))
        .await;
    assert!(!allowed(&body), "a new image is verified");
    assert_eq!(message(&body).lines().count(), 2);
    // Switched off, the same UPDATE is verified.
    let off = stack("automaticUnchangedApproval: {enabled: false}", vec![]).await;
    let old = Review::pod(pod_spec(&["evil:1"], &[], &[])).json["request"]["object"].clone();
    let body = off
        .mutate(&Review::pod(pod_spec(&["evil:1"], &[], &[])).update(old))
        .await;
    assert!(!allowed(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_scoping_by_label() {
    let kube = FakeKube::start().await;
    kube.put(
        "/api/v1/namespaces/skipme",
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "skipme", "labels": {"portcullis.dev/webhook": "ignore"}}}),
    );
    kube.put(
        "/api/v1/namespaces/checked",
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "checked", "labels": {"portcullis.dev/webhook": "validate"}}}),
    );
    kube.put(
        "/api/v1/namespaces/plain",
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "plain"}}),
    );
    let in_ns = |ns: &str| {
        let mut r = Review::pod(pod_spec(&["evil:1"], &[], &[]));
        r.json["request"]["namespace"] = json!(ns);
        r
    };
    let s = stack(
        "namespacedValidation: {enabled: true, mode: ignore}",
        kube.flags(),
    )
    .await;
    assert!(allowed(&s.mutate(&in_ns("skipme")).await));
    assert!(!allowed(&s.mutate(&in_ns("plain")).await));
    assert!(
        !allowed(&s.mutate(&in_ns("unknown")).await),
        "a namespace that can't be read is validated"
    );
    let v = stack(
        "namespacedValidation: {enabled: true, mode: validate}",
        kube.flags(),
    )
    .await;
    assert!(!allowed(&v.mutate(&in_ns("checked")).await));
    assert!(allowed(&v.mutate(&in_ns("plain")).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_delivered_without_delaying_admission() {
    let ok = Receiver::start(200, Duration::ZERO).await;
    let broken = Receiver::start(500, Duration::ZERO).await;
    let slow = Receiver::start(200, Duration::from_secs(2)).await;
    let config = format!(
        "alerting:\n  clusterIdentifier: test-cluster\n  rejectRequest:\n    receivers:\n      - {{template: slack, receiverUrl: '{}', customHeaders: ['X-Team: platform']}}\n      - {{template: generic, receiverUrl: '{}'}}\n      - {{template: opsgenie, receiverUrl: '{}', priority: 1}}\n  admitRequest:\n    receivers:\n      - {{template: teams, receiverUrl: '{}'}}\n",
        ok.url(),
        broken.url(),
        slow.url(),
        ok.url()
    );
    let s = stack(&config, vec![]).await;
    let started = Instant::now();
    let body = s
        .mutate(&Review::pod(pod_spec(&["evil:1"], &[], &[])))
        .await;
    assert!(!allowed(&body));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a slow receiver must not delay admission"
    );
    let got = ok.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let text = got[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("rejected Pod default/p on test-cluster"),
        "{text}"
    );
    assert!(text.contains("evil:1: STATIC_DENY"), "{text}");
    assert!(
        got[0]
            .headers
            .iter()
            .any(|(k, v)| k == "x-team" && v == "platform")
    );
    assert_eq!(
        broken.wait_for(1, Duration::from_secs(5)).await[0].body["event"],
        "reject"
    );
    let opsgenie = slow.wait_for(1, Duration::from_secs(8)).await;
    assert_eq!(opsgenie.len(), 1, "the slow receiver got it eventually");
    assert_eq!(opsgenie[0].body["priority"], "P1");
    // An admit event goes to the admit receivers only.
    let body = s
        .mutate(&Review::pod(pod_spec(&["nginx:1"], &[], &[])))
        .await;
    assert!(allowed(&body));
    let got = ok.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].body["@type"], "MessageCard");
    assert!(
        s.gw.metric("portcullis_alerts_total{event=\"reject\",result=\"failed\"}")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_if_alert_sending_fails_turns_into_deny() {
    let broken = Receiver::start(503, Duration::ZERO).await;
    let ok = Receiver::start(200, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("custom.json");
    std::fs::write(&template, r#"{"summary": "{{event}} {{kind}} {{namespace}}/{{name}}", "images": "{{images}}", "cluster": "{{cluster}}"}"#).unwrap();
    let config = format!(
        "alerting:\n  clusterIdentifier: c1\n  admitRequest:\n    receivers:\n      - {{template: '{}', receiverUrl: '{}', failIfAlertSendingFails: true}}\n",
        template.display(),
        ok.url()
    );
    let s = stack(&config, vec![]).await;
    let body = s
        .mutate(&Review::pod(pod_spec(&["nginx:1"], &[], &[])))
        .await;
    assert!(allowed(&body));
    // Delivered synchronously: already there when the answer came.
    let got = ok.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body,
        json!({"summary": "admit Pod default/p", "images": "nginx:1", "cluster": "c1"})
    );

    let config = format!(
        "alerting:\n  admitRequest:\n    receivers:\n      - {{template: generic, receiverUrl: '{}', failIfAlertSendingFails: true}}\n",
        broken.url()
    );
    let s = stack(&config, vec![]).await;
    let body = s
        .mutate(&Review::pod(pod_spec(&["nginx:1"], &[], &[])))
        .await;
    assert!(!allowed(&body), "a failed required alert denies");
    let msg = message(&body);
    assert!(msg.starts_with("ALERT_DELIVERY_FAILED: alert to"), "{msg}");
    assert!(msg.contains("HTTP 503"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_schema() {
    let s = stack("", vec![]).await;
    let review = Review::pod(pod_spec(&["evil:1", "nginx:1"], &[], &[]));
    s.mutate(&review).await;
    let records = s.audit(1).await;
    let r = &records[0];
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "time",
        "uid",
        "namespace",
        "kind",
        "name",
        "operation",
        "endpoint",
        "allowed",
        "decision",
        "skip_reason",
        "mode",
        "images",
        "warnings",
        "latency_ms",
    ];
    expected.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(r["uid"], review.uid());
    assert_eq!(
        (r["namespace"].clone(), r["kind"].clone(), r["name"].clone()),
        (json!("default"), json!("Pod"), json!("p"))
    );
    assert_eq!(
        (r["operation"].clone(), r["endpoint"].clone()),
        (json!("CREATE"), json!("mutate"))
    );
    assert_eq!(
        (r["allowed"].clone(), r["decision"].clone()),
        (json!(false), json!("denied"))
    );
    assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(chrono_like(r["time"].as_str().unwrap()));
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let evil = images.iter().find(|i| i["image"] == "evil:1").unwrap();
    assert_eq!(evil["allowed"], false);
    assert_eq!(evil["reason"], "STATIC_DENY");
    assert_eq!(evil["source"], "fresh");
    assert_eq!(evil["rule"], "docker.io/library/evil:*");
    assert_eq!(evil["validator"], "deny");
    assert_eq!(evil["digest"], Value::Null);
    for key in [
        "image",
        "allowed",
        "digest",
        "reason",
        "source",
        "rule",
        "validator",
    ] {
        assert!(evil.get(key).is_some(), "{key}");
    }
}

fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && s.ends_with('Z')
}
