//! The gateway's fan-out, pinning, deadline and failover, driven through
//! the real gateway binary. The verifier here is the scripted stub from
//! `portcullis_e2e::stub`: these cases need answers the static validator
//! cannot give (digests to pin), a verifier that never answers, and call
//! counts. Pinning with real signatures is covered by the cosign suites.

use std::sync::Arc;

use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::stub::{Responder, StubVerifier};
use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec};
use portcullis_proto::{Reason, Verdict, VerifyRequest, VerifyResponse};
use serde_json::json;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Allows everything, pinning `app*` images to D1 and `db*` images to D2 by
/// the normalised reference the real verifier would produce.
fn pinning_responder(pin: bool) -> Responder {
    Arc::new(move |req: &VerifyRequest| {
        let (name, digest) = if req.image.starts_with("registry.example.com/app") {
            ("registry.example.com/app", D1)
        } else if req.image.starts_with("registry.example.com/db") {
            ("registry.example.com/db", D2)
        } else {
            return Some(VerifyResponse {
                verdict: Verdict::Allowed as i32,
                reason: Reason::StaticAllow as i32,
                ..Default::default()
            });
        };
        let tag = req
            .image
            .rsplit_once(':')
            .map(|(_, t)| t)
            .unwrap_or("latest");
        Some(VerifyResponse {
            verdict: Verdict::Allowed as i32,
            reason: Reason::Verified as i32,
            digest: digest.into(),
            reference: format!("{name}:{tag}@{digest}"),
            pin,
            ..Default::default()
        })
    })
}

async fn gateway_for(stubs: &[&StubVerifier], args: &[&str]) -> Gateway {
    Gateway::start(GatewayOptions {
        verifiers: stubs.iter().map(|s| s.url()).collect(),
        args: args.iter().map(|s| s.to_string()).collect(),
        wait_ready: true,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn pins_every_site_of_each_tag_once_verified_once() {
    let stub = StubVerifier::start(pinning_responder(true)).await;
    let gw = gateway_for(&[&stub], &[]).await;
    let spec = pod_spec(
        &[
            "registry.example.com/app:1",
            "nginx",
            "registry.example.com/db:2",
            "registry.example.com/app:1",
        ],
        &["registry.example.com/app:1"],
        &[&format!("registry.example.com/db:2@{D2}")],
    );
    let review = Review::deployment(spec);
    let (status, body) = gw.post_json("/mutate", &review.json).await;
    assert_eq!(status, 200);
    assert!(allowed(&body), "{body}");
    let base = "/spec/template/spec";
    assert_eq!(
        patch(&body),
        Some(json!([
            {"op": "replace", "path": format!("{base}/containers/0/image"), "value": format!("registry.example.com/app:1@{D1}")},
            {"op": "replace", "path": format!("{base}/containers/2/image"), "value": format!("registry.example.com/db:2@{D2}")},
            {"op": "replace", "path": format!("{base}/containers/3/image"), "value": format!("registry.example.com/app:1@{D1}")},
            {"op": "replace", "path": format!("{base}/initContainers/0/image"), "value": format!("registry.example.com/app:1@{D1}")},
        ]))
    );
    // One call per distinct image string.
    assert_eq!(stub.calls("registry.example.com/app:1"), 1);
    assert_eq!(stub.calls("registry.example.com/db:2"), 1);
    assert_eq!(stub.total_calls(), 4);

    // /validate never patches.
    let (_, body) = gw.post_json("/validate", &review.json).await;
    assert!(allowed(&body));
    assert_eq!(patch(&body), None);
}

#[tokio::test]
async fn validate_only_rules_are_not_pinned() {
    let stub = StubVerifier::start(pinning_responder(false)).await;
    let gw = gateway_for(&[&stub], &[]).await;
    let review = Review::pod(pod_spec(&["registry.example.com/app:1"], &[], &[]));
    let (_, body) = gw.post_json("/mutate", &review.json).await;
    assert!(allowed(&body));
    assert_eq!(patch(&body), None);
}

#[tokio::test]
async fn images_are_verified_in_parallel() {
    // Every call waits until all five are in flight at once; a sequential
    // gateway would never get past the first and time out.
    let gate = Arc::new(tokio::sync::Barrier::new(5));
    let stub = StubVerifier::start_gated(pinning_responder(true), Some(gate)).await;
    let gw = gateway_for(&[&stub], &["--deadline-ms", "5000"]).await;
    let images: Vec<String> = (0..5)
        .map(|i| format!("registry.example.com/app{i}:1"))
        .collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let (_, body) = gw
        .post_json("/mutate", &Review::pod(pod_spec(&refs, &[], &[])).json)
        .await;
    assert!(allowed(&body), "{body}");
}

#[tokio::test]
async fn an_image_without_answer_is_denied_with_timeout() {
    let responder: Responder = Arc::new(|req: &VerifyRequest| {
        if req.image.contains("slow") {
            None
        } else {
            pinning_responder(true)(req)
        }
    });
    let stub = StubVerifier::start(responder).await;
    let gw = gateway_for(&[&stub], &["--deadline-ms", "700"]).await;
    let review = Review::pod(pod_spec(
        &["registry.example.com/app:1", "registry.example.com/slow:1"],
        &[],
        &[],
    ));
    let (status, body) = gw.post_json("/mutate", &review.json).await;
    assert_eq!(status, 200);
    assert!(!allowed(&body), "a timeout never becomes an allow");
    assert_eq!(
        message(&body),
        "registry.example.com/slow:1: TIMEOUT: no verdict before the admission deadline"
    );
    assert_eq!(patch(&body), None);
}

#[tokio::test]
async fn a_dead_verifier_fails_over_to_the_next() {
    // Real verifier processes, so that one can be killed outright.
    let policy = include_str!("../data/static-policy.yaml");
    let mut a = Verifier::start(policy, &[]);
    let b = Verifier::start(policy, &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![a.url(), b.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let images: Vec<String> = (0..20)
        .map(|i| format!("registry.example.com/app{i}:1"))
        .collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let review = Review::pod(pod_spec(&refs, &[], &[]));
    let (_, body) = gw.post_json("/mutate", &review.json).await;
    assert!(allowed(&body));
    let ok = |url: String| {
        format!("portcullis_verifier_calls_total{{verifier=\"{url}\",outcome=\"ok\"}}")
    };
    let a_calls = gw.metric(&ok(a.url())).await;
    let b_calls = gw.metric(&ok(b.url())).await;
    // Rendezvous hashing spreads distinct images over both.
    assert!(a_calls > 0.0 && b_calls > 0.0, "{a_calls} / {b_calls}");
    assert_eq!(a_calls + b_calls, 20.0);
    a.process.kill();
    // Every image, including those that hash to the dead verifier, is
    // answered by the survivor within the same admission.
    let (_, body) = gw.post_json("/mutate", &review.json).await;
    assert!(allowed(&body), "{body}");
    assert_eq!(gw.metric(&ok(b.url())).await - b_calls, 20.0);
    assert_eq!(gw.metric(&ok(a.url())).await, a_calls);
}

#[tokio::test]
async fn too_many_images_is_a_clear_deny() {
    let stub = StubVerifier::start(pinning_responder(true)).await;
    let gw = gateway_for(&[&stub], &["--max-images", "2"]).await;
    let review = Review::pod(pod_spec(&["a:1", "b:1", "c:1"], &[], &[]));
    let (_, body) = gw.post_json("/mutate", &review.json).await;
    assert!(!allowed(&body));
    let msg = message(&body);
    assert_eq!(msg.lines().count(), 3);
    assert!(
        msg.starts_with("a:1: TOO_MANY_IMAGES: the object names 3 distinct images; at most 2"),
        "{msg}"
    );
    assert_eq!(stub.total_calls(), 0);
}
