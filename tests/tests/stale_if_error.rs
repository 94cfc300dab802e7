//! Stale-if-error: when re-verifying an allowed digest fails transiently
//! (the registry is down or throttling), the last allowed verdict for that
//! exact digest, rule and trust material answers, with source `STALE`; and
//! never otherwise. Real registry behind the fault proxy, real Redis shared
//! by two verifiers, signatures by the independent signer.

use std::path::Path;

use portcullis_e2e::Verifier;
use portcullis_e2e::config::{config_yaml, key_roots, rule};
use portcullis_e2e::faults::{Fault, FaultProxy};
use portcullis_e2e::redis::Redis;
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{pki_path, push_image, sigtool};
use portcullis_proto::{Reason, Source, VerifyRequest, VerifyResponse};
use serde_json::json;

const HMAC_KEY: &str = "stale-test-hmac-key-0123456789abcdef";

fn config(host: &str, root: &str) -> String {
    config_yaml(
        vec![json!({
            "name": "signed",
            "type": "cosign",
            "insecureRegistries": [host],
            "trustRoots": key_roots(&["alice", "bob"]),
        })],
        vec![rule(
            &format!("{host}/**"),
            "signed",
            json!({"trustRoot": root}),
        )],
    )
}

/// A verifier that never keeps a verdict (TTLs 0) but keeps stale copies
/// of allows for a minute, sharing Redis.
fn verifier(dir: &Path, config: &str, redis: &Redis) -> Verifier {
    let key = dir.join("hmac.key");
    std::fs::write(&key, HMAC_KEY).unwrap();
    let path = dir.join(format!("config-{}.yaml", rand_suffix()));
    std::fs::write(&path, config).unwrap();
    let url = redis.urls().join(",");
    Verifier::start_with_file(
        &path,
        &[
            "--redis-url",
            &url,
            "--cache-hmac-key-file",
            key.to_str().unwrap(),
            "--verdict-ttl-secs",
            "0",
            "--negative-ttl-secs",
            "0",
            "--tag-ttl-secs",
            "0",
            "--stale-if-error-secs",
            "60",
        ],
    )
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn verify(v: &Verifier, image: &str) -> VerifyResponse {
    let mut client = v.client().await;
    let mut req = tonic::Request::new(VerifyRequest {
        image: image.to_string(),
        ..Default::default()
    });
    req.set_timeout(std::time::Duration::from_secs(10));
    client.verify(req).await.expect("verify").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_digest_survives_a_registry_outage_and_nothing_else_does() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let signed = tokio::task::block_in_place(|| push_image(&reg, "stale/app", "v1", 1300));
    let unsigned = tokio::task::block_in_place(|| push_image(&reg, "stale/unsigned", "v1", 1301));
    let never = tokio::task::block_in_place(|| push_image(&reg, "stale/never", "v1", 1302));
    tokio::task::block_in_place(|| {
        sigtool(
            "sign-key",
            &reg,
            &signed,
            &["--key", &pki_path("alice.key")],
        );
        sigtool("sign-key", &reg, &never, &["--key", &pki_path("alice.key")]);
    });
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let redis = tokio::task::block_in_place(|| Redis::start(None));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&host, "alice");
    let a = tokio::task::block_in_place(|| verifier(dir.path(), &cfg, &redis));
    let by_digest = |image: &portcullis_e2e::signer::PushedImage| {
        format!("{host}/{}@{}", image.repo, image.digest)
    };
    let by_tag = format!("{host}/stale/app:v1");

    // Registry up: verified fresh (TTL 0: every call verifies).
    let r = verify(&a, &by_digest(&signed)).await;
    assert!(r.is_allowed(), "{r:?}");
    assert_eq!(r.source(), Source::Fresh);
    let r = verify(&a, &by_digest(&unsigned)).await;
    assert!(!r.is_allowed());

    // Registry down (503 without Retry-After).
    proxy.set(Fault::Status(503)).await;
    // The verified digest: the last allow answers, marked stale, with a
    // warning; from the shared cache on a verifier that never saw it, too.
    let r = verify(&a, &by_digest(&signed)).await;
    assert!(r.is_allowed(), "{r:?}");
    assert_eq!(r.source(), Source::Stale, "{r:?}");
    assert!(r.warnings.iter().any(|w| w.starts_with("stale:")), "{r:?}");
    let b = tokio::task::block_in_place(|| verifier(dir.path(), &cfg, &redis));
    let r = verify(&b, &by_digest(&signed)).await;
    assert!(r.is_allowed(), "{r:?}");
    assert_eq!(r.source(), Source::Stale);
    // Never for a denial, never for an image not verified before, never for
    // a tag (its resolution is not re-confirmed).
    let r = verify(&a, &by_digest(&unsigned)).await;
    assert!(!r.is_allowed());
    assert_eq!(r.reason(), Reason::RegistryUnavailable, "{r:?}");
    let r = verify(&a, &by_digest(&never)).await;
    assert!(!r.is_allowed());
    assert_eq!(r.reason(), Reason::RegistryUnavailable, "{r:?}");
    let r = verify(&a, &by_tag).await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::RegistryUnavailable, "{r:?}");
    // Never under another policy: a rule that trusts only bob has another
    // fingerprint.
    let other = tokio::task::block_in_place(|| verifier(dir.path(), &config(&host, "bob"), &redis));
    let r = verify(&other, &by_digest(&signed)).await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::RegistryUnavailable);

    // A definitive answer ends it at once: the registry answers 404 for
    // everything (the signature is gone), then goes down again. (The
    // failures above opened verifier A's circuit for this host; it answers
    // from the stale copy until the circuit lets a request through again.)
    proxy.set(Fault::Status(404)).await;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let r = loop {
        let r = verify(&a, &by_digest(&signed)).await;
        if r.source() != Source::Stale || std::time::Instant::now() > end {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!r.is_allowed(), "{r:?}");
    assert!(!r.transient, "a definitive denial: {r:?}");
    proxy.set(Fault::Status(503)).await;
    let r = verify(&b, &by_digest(&signed)).await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::RegistryUnavailable);
}

/// Refresh-ahead: an allow used in the last tenth of its lifetime is
/// re-verified in the background, so the next use after the original
/// expiry is still a cache hit, never a cold verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_verdict_is_refreshed_before_it_expires() {
    use portcullis_e2e::procs::metric_sum;
    use std::time::Duration;
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "refresh/app", "v1", 1310));
    tokio::task::block_in_place(|| {
        sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")])
    });
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&host, "alice")).unwrap();
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], portcullis_e2e::free_port()).into();
    let v = tokio::task::block_in_place(|| {
        Verifier::start_with_file(
            &path,
            &[
                "--verdict-ttl-secs",
                "3",
                "--metrics-listen",
                &metrics.to_string(),
            ],
        )
    });
    let reference = format!("{host}/refresh/app@{}", image.digest);
    let started = tokio::time::Instant::now();
    let r = verify(&v, &reference).await;
    assert_eq!(r.source(), Source::Fresh, "{r:?}");
    let requests_one_verification = reg.verifier_requests().len();

    // The clock: into the last tenth of the 3 s lifetime.
    tokio::time::sleep_until(started + Duration::from_millis(2750)).await;
    let r = verify(&v, &reference).await;
    assert!(r.is_allowed());
    assert_eq!(r.source(), Source::CacheL1, "{r:?}");
    // The background refresh runs once.
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = v.metrics_text(metrics).await;
        if metric_sum(&text, "portcullis_verdict_refreshes_total") >= 1.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "no refresh: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One background verification's requests (one fewer than the first:
    // the host is now known to lack the referrers API).
    let after = reg.verifier_requests().len();
    assert!(
        after > requests_one_verification && after < 2 * requests_one_verification + 1,
        "one background verification: {requests_one_verification} then {after}"
    );
    // The clock: past the first verdict's expiry. Still a hit.
    tokio::time::sleep_until(started + Duration::from_millis(3300)).await;
    let r = verify(&v, &reference).await;
    assert!(r.is_allowed());
    assert_eq!(r.source(), Source::CacheL1, "refreshed, not expired: {r:?}");
}

/// Chaos: the registry dies during a rollout of an image whose verdict has
/// expired: every Pod is admitted from the stale allow (the audit log says
/// `stale`), a never-seen image is denied within the deadline, and once
/// the registry is back nothing stale is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollout_through_a_registry_outage() {
    use portcullis_e2e::mode_stack::ModeStack;
    use portcullis_e2e::review::allowed;
    use portcullis_e2e::{Review, pod_spec};
    let mut reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "chaos/app", "v1", 1320));
    let never = tokio::task::block_in_place(|| push_image(&reg, "chaos/never", "v1", 1321));
    tokio::task::block_in_place(|| {
        sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
        sigtool("sign-key", &reg, &never, &["--key", &pki_path("alice.key")]);
    });
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let stack = ModeStack::start_with(
        &config(&host, "alice"),
        "detectionMode: false",
        Vec::new(),
        &["--verdict-ttl-secs", "0", "--stale-if-error-secs", "120"],
    )
    .await;
    // The Deployment's admission pins the tag; its Pods carry tag@digest.
    let pinned = format!("{host}/chaos/app:v1@{}", image.digest);
    let body = stack
        .mutate(&Review::pod(pod_spec(&[&pinned], &[], &[])))
        .await;
    assert!(allowed(&body), "{body}");

    // The registry dies.
    tokio::task::block_in_place(|| reg.process.kill());
    let pods: Vec<Review> = (0..30)
        .map(|_| Review::pod(pod_spec(&[&pinned], &[], &[])))
        .collect();
    let answers = futures::future::join_all(pods.iter().map(|p| stack.mutate(p))).await;
    for body in &answers {
        assert!(allowed(body), "{body}");
    }
    let record = stack.audit_of(&pods[0].uid()).await;
    assert_eq!(record["images"][0]["source"], "stale", "{record}");
    // A never-seen image: denied, named, within the deadline.
    let fresh = format!("{host}/chaos/never@{}", never.digest);
    let started = std::time::Instant::now();
    let body = stack
        .mutate(&Review::pod(pod_spec(&[&fresh], &[], &[])))
        .await;
    assert!(!allowed(&body), "{body}");
    assert!(body.to_string().contains("REGISTRY_UNAVAILABLE"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

/// Chaos: a registry answering every third request with 429 and
/// `Retry-After: 1` during a burst of one new image: every Pod admitted,
/// and the registry sees one verification's requests plus the retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_through_a_throttling_registry() {
    use portcullis_e2e::mode_stack::ModeStack;
    use portcullis_e2e::review::allowed;
    use portcullis_e2e::{Review, pod_spec};
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "burst/app", "v1", 1330));
    tokio::task::block_in_place(|| {
        sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")])
    });
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let stack = ModeStack::start(&config(&host, "alice"), "detectionMode: false", Vec::new()).await;
    let reference = format!("{host}/burst/app@{}", image.digest);
    proxy
        .set(Fault::EveryNth {
            n: 3,
            status: 429,
            retry_after: Some(1),
        })
        .await;
    let before = proxy.requests();
    let pods: Vec<Review> = (0..200)
        .map(|_| Review::pod(pod_spec(&[&reference], &[], &[])))
        .collect();
    let answers = futures::future::join_all(pods.iter().map(|p| stack.mutate(p))).await;
    for body in &answers {
        assert!(allowed(body), "{body}");
    }
    let made = proxy.requests() - before;
    let injected = proxy.injected();
    assert!(injected >= 1, "throttled at least once");
    // A cold verification of a digest on this registry: the .sig manifest,
    // the referrers API (404) and its fallback, the .sig layer blob; at most
    // a handful, plus one retry per 429.
    assert!(
        made <= 6 + injected,
        "{made} requests, {injected} throttled"
    );
}

/// The circuit breaker: after repeated transient failures a host is not
/// asked for a moment; the answer is a transient denial naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_registry_is_not_hammered() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&host, "alice")).unwrap();
    let v = tokio::task::block_in_place(|| {
        Verifier::start_with_file(&path, &["--negative-ttl-secs", "0"])
    });
    proxy.set(Fault::Status(500)).await;
    let digest = format!("sha256:{}", "a".repeat(64));
    let mut last = None;
    for i in 0..10 {
        let r = verify(&v, &format!("{host}/down/app{i}@{digest}")).await;
        assert!(!r.is_allowed());
        assert_eq!(r.reason(), Reason::RegistryUnavailable, "{r:?}");
        last = Some(r);
    }
    let seen = proxy.requests();
    assert!(seen < 10 * 3, "the breaker stopped the requests: {seen}");
    assert!(
        last.unwrap().reason_detail.contains("circuit open"),
        "the last answers name the open circuit"
    );
}

/// A stale copy is sealed over its key: one replayed in Redis under an
/// unsigned image's key (by someone who can write Redis but has no HMAC
/// key) is ignored, and the outage denies that image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_stale_copy_is_ignored() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let signed = tokio::task::block_in_place(|| push_image(&reg, "replay/signed", "v1", 1340));
    let unsigned = tokio::task::block_in_place(|| push_image(&reg, "replay/unsigned", "v1", 1341));
    tokio::task::block_in_place(|| {
        sigtool(
            "sign-key",
            &reg,
            &signed,
            &["--key", &pki_path("alice.key")],
        )
    });
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let redis = tokio::task::block_in_place(|| Redis::start(None));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hmac.key");
    std::fs::write(&key, HMAC_KEY).unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&host, "alice")).unwrap();
    let url = redis.urls().join(",");
    let start = || {
        Verifier::start_with_file(
            &path,
            &[
                "--redis-url",
                &url,
                "--cache-hmac-key-file",
                key.to_str().unwrap(),
                "--verdict-ttl-secs",
                "0",
                "--negative-ttl-secs",
                "60",
                "--stale-if-error-secs",
                "60",
            ],
        )
    };
    let a = tokio::task::block_in_place(start);
    let by_digest =
        |i: &portcullis_e2e::signer::PushedImage| format!("{host}/{}@{}", i.repo, i.digest);
    assert!(verify(&a, &by_digest(&signed)).await.is_allowed());
    let stale_keys = redis.cli(&["--scan", "--pattern", "pc:v1:verdict:*|stale"]);
    let good_stale = stale_keys.lines().next().expect("a stale copy").to_string();
    // The unsigned digest's denial names its key; then the denial goes.
    assert!(!verify(&a, &by_digest(&unsigned)).await.is_allowed());
    let all = redis.cli(&["--scan", "--pattern", "pc:v1:verdict:*"]);
    let bad_key = all
        .lines()
        .find(|k| !k.ends_with("|stale") && format!("{k}|stale") != good_stale)
        .expect("the denial's key")
        .to_string();
    redis.cli(&["DEL", &bad_key]);
    // Replay the signed image's sealed stale copy under the unsigned one's.
    let forged = format!("{bad_key}|stale");
    redis.cli(&["COPY", &good_stale, &forged]);
    assert_eq!(
        redis.cli(&["EXISTS", &forged]).trim(),
        "1",
        "the replay is in place"
    );
    proxy.set(Fault::Status(503)).await;
    let b = tokio::task::block_in_place(start);
    let r = verify(&b, &by_digest(&unsigned)).await;
    assert!(
        !r.is_allowed(),
        "a replayed stale copy must not admit: {r:?}"
    );
    assert_eq!(r.reason(), Reason::RegistryUnavailable, "{r:?}");
    // The genuine copy still answers for its own digest.
    let r = verify(&b, &by_digest(&signed)).await;
    assert!(r.is_allowed() && r.source() == Source::Stale, "{r:?}");
}

/// Chaos: the registry, Redis and one of two verifiers die together during
/// a rollout of a digest both verifiers verified before. No verdict is
/// wrong: every Pod of the verified digest is admitted from the surviving
/// verifier's stale copy (source `STALE`), and an image never verified, or
/// one that is unsigned, is never admitted (denied as transient, naming
/// the registry).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_redis_and_a_verifier_die_and_no_verdict_is_wrong() {
    use portcullis_e2e::review::{allowed, message};
    use portcullis_e2e::{Gateway, GatewayOptions, Review, pod_spec};
    let mut reg = tokio::task::block_in_place(Registry::start_plain);
    let (app, never, unsigned) = tokio::task::block_in_place(|| {
        let app = push_image(&reg, "chaos2/app", "v1", 1340);
        let never = push_image(&reg, "chaos2/never", "v1", 1341);
        let unsigned = push_image(&reg, "chaos2/unsigned", "v1", 1342);
        sigtool("sign-key", &reg, &app, &["--key", &pki_path("alice.key")]);
        sigtool("sign-key", &reg, &never, &["--key", &pki_path("alice.key")]);
        (app, never, unsigned)
    });
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let host = proxy.host();
    let mut redis = tokio::task::block_in_place(|| Redis::start(None));
    let dir = tempfile::tempdir().unwrap();
    let policy = config(&host, "alice");
    let mut v1 = tokio::task::block_in_place(|| verifier(dir.path(), &policy, &redis));
    let v2 = tokio::task::block_in_place(|| verifier(dir.path(), &policy, &redis));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![v1.url(), v2.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let pinned = format!("{host}/chaos2/app@{}", app.digest);
    for v in [&v1, &v2] {
        let r = verify(v, &pinned).await;
        assert!(r.is_allowed(), "{r:?}");
        assert_eq!(r.source(), Source::Fresh, "{r:?}");
    }

    // Everything dies but one verifier.
    tokio::task::block_in_place(|| {
        reg.process.kill();
        redis.kill();
        v1.process.kill();
    });
    let mutate = |review: Review| {
        let gw = &gw;
        async move {
            let (status, body) = gw.post_json("/mutate", &review.json).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let answers = futures::future::join_all(
        (0..30).map(|_| mutate(Review::pod(pod_spec(&[&pinned], &[], &[])))),
    )
    .await;
    for body in &answers {
        assert!(allowed(body), "{body}");
    }
    let r = verify(&v2, &pinned).await;
    assert!(r.is_allowed(), "{r:?}");
    assert_eq!(r.source(), Source::Stale, "{r:?}");
    for other in [&never, &unsigned] {
        let reference = format!("{host}/{}@{}", other.repo, other.digest);
        let body = mutate(Review::pod(pod_spec(&[&reference], &[], &[]))).await;
        assert!(!allowed(&body), "{reference}: {body}");
        let m = message(&body);
        assert!(
            m.contains(&reference) && m.contains("REGISTRY_UNAVAILABLE"),
            "{m}"
        );
    }
}
