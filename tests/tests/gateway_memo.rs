//! The gateway's memo of verifier allows (`gateway/src/memo.rs`, the
//! verifier's `lease.rs`), against the real gateway and verifier: what it
//! may skip (the call for a request whose allow it remembers) and what it
//! can never allow:
//!
//! * an allow made under a policy the verifier no longer serves: a rotated
//!   trust-root key ends remembered allows on the very next admission, and
//!   a verifier restarted at the same address with another policy is never
//!   answered for by the old process's memo;
//! * an answer past the verifier's own tag-resolution lifetime: a moved tag
//!   is pinned to its new digest once the verifier's tag TTL has run out;
//! * a denial (never remembered);
//! * an allow of a verifier that has died (its health watch closes with its
//!   connection).
//!
//! Signatures come from the independent signer (`sigtool.py`).

use std::time::Duration;

use portcullis_e2e::config::{config_yaml, cosign_keys_only, key_roots, rule};
use portcullis_e2e::fake_kube::{FakeKube, KEY_SECRET_PATH, key_secret, key_secret_config};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::signer::{PushedImage, push_signed};
use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Leases of 1 s (the test gateway renews them every 200 ms).
const LEASE: &[&str] = &["--epoch-lease-ms", "1000"];

async fn gateway(verifier: &Verifier) -> Gateway {
    Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        // Long enough that only the lease and the verifier's own lifetimes
        // can end a remembered allow.
        args: vec!["--memo-ttl-ms".into(), "60000".into()],
        wait_ready: true,
        ..Default::default()
    })
    .await
}

async fn admit(gw: &Gateway, image: &str) -> Value {
    let (status, body) = gw
        .post_json("/mutate", &Review::pod(pod_spec(&[image], &[], &[])).json)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The digest the answer pins the (only) image to, if any.
fn pinned(body: &Value) -> Option<String> {
    let p = patch(body)?;
    let value = p[0]["value"].as_str()?;
    Some(value.rsplit_once('@')?.1.to_string())
}

fn signed(reg: &Registry, repo: &str, tag: &str, seed: u64, key: &str) -> PushedImage {
    tokio::task::block_in_place(|| push_signed(reg, repo, tag, seed, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_ends_remembered_allows_on_the_next_admission() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let by_alice = signed(&reg, "memo/alice", "v1", 1510, "alice.key");
    let by_bob = signed(&reg, "memo/bob", "v1", 1511, "bob.key");
    let kube = FakeKube::start().await;
    kube.put(KEY_SECRET_PATH, key_secret("alice.pub"));
    let config = key_secret_config(&reg);
    let mut flags = kube.flags();
    flags.extend(["--secret-refresh-secs".to_string(), "1".to_string()]);
    flags.extend(LEASE.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let v = tokio::task::block_in_place(|| Verifier::start(&config, &flags));
    // Two gateway replicas: one sees the new key first, the other holds a
    // remembered allow of alice's image.
    let (first, second) = (gateway(&v).await, gateway(&v).await);

    // Remembered: the second admission is answered without a call.
    assert!(allowed(&admit(&second, &by_alice.reference).await));
    let calls = second.metric("portcullis_verifier_calls_total").await;
    let body = admit(&second, &by_alice.reference).await;
    assert!(allowed(&body), "{body}");
    assert_eq!(pinned(&body).as_deref(), Some(by_alice.digest.as_str()));
    assert_eq!(second.metric("portcullis_memo_hits_total").await, 1.0);
    assert_eq!(
        second.metric("portcullis_verifier_calls_total").await,
        calls
    );

    // The key becomes bob's. Once the first gateway has seen the new key
    // decide, the other gateway allows alice's image no more: the verifier
    // ended every lease before it changed keys.
    kube.put(KEY_SECRET_PATH, key_secret("bob.pub"));
    let end = Instant::now() + Duration::from_secs(20);
    let mut alice_allowed_before = 0;
    loop {
        assert!(Instant::now() < end, "the new key never took effect");
        if allowed(&admit(&second, &by_alice.reference).await) {
            alice_allowed_before += 1;
        }
        if allowed(&admit(&first, &by_bob.reference).await) {
            break;
        }
    }
    for _ in 0..5 {
        let body = admit(&second, &by_alice.reference).await;
        assert!(
            !allowed(&body),
            "a remembered allow of alice's image outlived her key: {body}"
        );
        assert!(message(&body).contains("NO_MATCHING_SIGNATURE"), "{body}");
    }
    // Until the change, the remembered allow was answered (the old key
    // still held).
    assert!(alice_allowed_before > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_remembered_allow_outlives_the_verifiers_tag_resolution() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let first = signed(&reg, "memo/app", "v1", 1520, "alice.key");
    let config = config_yaml(
        vec![cosign_keys_only(&reg, key_roots(&["alice"]))],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let mut flags = vec!["--tag-ttl-secs", "2"];
    flags.extend(LEASE);
    let v = tokio::task::block_in_place(|| Verifier::start(&config, &flags));
    let gw = gateway(&v).await;

    let body = admit(&gw, &first.reference).await;
    // The verifier resolved the tag no earlier than this.
    let resolved_by = Instant::now();
    assert_eq!(
        pinned(&body).as_deref(),
        Some(first.digest.as_str()),
        "{body}"
    );
    let body = admit(&gw, &first.reference).await;
    assert_eq!(
        pinned(&body).as_deref(),
        Some(first.digest.as_str()),
        "{body}"
    );
    assert_eq!(gw.metric("portcullis_memo_hits_total").await, 1.0);

    // The tag moves to another signed image.
    let second = signed(&reg, "memo/app", "v1", 1521, "alice.key");
    assert_ne!(first.digest, second.digest);
    let tag_ttl = Duration::from_secs(2);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = Instant::now();
        let body = admit(&gw, &first.reference).await;
        assert!(allowed(&body), "{body}");
        let digest = pinned(&body).expect("pinned");
        if sent > resolved_by + tag_ttl + Duration::from_millis(100) {
            assert_eq!(
                digest,
                second.digest,
                "{:?} after the verifier resolved the tag (TTL {tag_ttl:?}), the old digest was still answered",
                sent - resolved_by
            );
            break;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_verifier_with_another_policy_is_never_answered_for() {
    let allow_app = config_yaml(
        vec![
            json!({"name": "allow", "type": "static", "approve": true}),
            json!({"name": "deny", "type": "static", "approve": false}),
        ],
        vec![
            rule("registry.example/team/app:*", "allow", Value::Null),
            rule("**", "deny", Value::Null),
        ],
    );
    let deny_all = config_yaml(
        vec![json!({"name": "deny", "type": "static", "approve": false})],
        vec![rule("**", "deny", Value::Null)],
    );
    let mut v = tokio::task::block_in_place(|| Verifier::start(&allow_app, LEASE));
    let addr = v.addr;
    let gw = gateway(&v).await;
    let app = "registry.example/team/app:v1";
    let other = "registry.example/team/other:v1";
    for _ in 0..3 {
        assert!(allowed(&admit(&gw, app).await));
        // Denials are never remembered: each one is a call.
        let calls = gw.metric("portcullis_verifier_calls_total").await;
        let body = admit(&gw, other).await;
        assert!(message(&body).contains("STATIC_DENY"), "{body}");
        assert_eq!(
            gw.metric("portcullis_verifier_calls_total").await,
            calls + 1.0
        );
    }
    assert_eq!(gw.metric("portcullis_memo_hits_total").await, 2.0);

    // The verifier is replaced at the same address by one that denies
    // everything. From when it listens, nothing is allowed: it waited out
    // the old process's leases before listening.
    v.process.kill();
    let _v2 = tokio::task::block_in_place(|| Verifier::start_on(&deny_all, addr, LEASE));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let body = admit(&gw, app).await;
        assert!(
            !allowed(&body),
            "the old process's allow was answered after the new one listened: {body}"
        );
        if message(&body).contains("STATIC_DENY") {
            break;
        }
        assert!(Instant::now() < end, "the new verifier never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_verifiers_remembered_allows_end_with_its_connection() {
    let config = config_yaml(
        vec![json!({"name": "allow", "type": "static", "approve": true})],
        vec![rule("registry.example/team/app:*", "allow", Value::Null)],
    );
    // A lease (3 s) and a health interval (10 s) far longer than the bound
    // below: only the closed connection can end the reuse in time.
    let mut v =
        tokio::task::block_in_place(|| Verifier::start(&config, &["--epoch-lease-ms", "3000"]));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![v.url()],
        args: ["--memo-ttl-ms", "60000", "--health-interval-ms", "10000"]
            .map(String::from)
            .to_vec(),
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let app = "registry.example/team/app:v1";
    assert!(allowed(&admit(&gw, app).await));
    assert!(allowed(&admit(&gw, app).await));
    assert_eq!(gw.metric("portcullis_memo_hits_total").await, 1.0);

    v.process.kill();
    let killed = Instant::now();
    loop {
        let body = admit(&gw, app).await;
        if !allowed(&body) {
            assert!(message(&body).contains("VERIFIER_UNAVAILABLE"), "{body}");
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "the memo still answered for the verifier {:?} after it died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
