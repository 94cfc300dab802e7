//! The two-tier cache with real components: verifier processes sharing a
//! real `redis-server` (standalone, with AUTH, or a 3-node Cluster), a real
//! registry, and the independent signer.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use portcullis_e2e::config::{config_yaml, key_roots, keyless_root, rule};
use portcullis_e2e::faults::{Fault, FaultProxy};
use portcullis_e2e::procs::metric_sum;
use portcullis_e2e::redis::Redis;
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{
    PushedImage, pki, push_image, push_signed, sign_keyless, workspace_root,
};
use portcullis_e2e::tuf;
use portcullis_e2e::{Verifier, free_port};
use portcullis_proto::{Reason, Source, VerifyRequest, VerifyResponse};
use serde_json::json;

const HMAC_KEY: &str = "test-hmac-key-0123456789abcdef";

fn config_for(host: &str, roots: &[&str]) -> String {
    let validator = json!({
        "name": "signed",
        "type": "cosign",
        "insecureRegistries": [host],
        "trustRoots": key_roots(roots),
    });
    config_yaml(
        vec![validator],
        vec![rule(
            &format!("{host}/**"),
            "signed",
            json!({"trustRoot": roots[0]}),
        )],
    )
}

struct Cached {
    verifier: Verifier,
    metrics: SocketAddr,
}

/// A verifier on `config` with Redis L2 and a metrics endpoint.
fn verifier(config: &Path, redis: &Redis, extra: &[&str], key_dir: &Path) -> Cached {
    let key = key_dir.join("hmac.key");
    std::fs::write(&key, HMAC_KEY).unwrap();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let urls = redis.urls().join(",");
    let mut args = vec![
        "--redis-url".to_string(),
        urls,
        "--cache-hmac-key-file".into(),
        key.display().to_string(),
        "--metrics-listen".into(),
        metrics.to_string(),
    ];
    if redis.addrs.len() > 1 {
        args.push("--redis-cluster".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Cached {
        verifier: Verifier::start_with_file(config, &refs),
        metrics,
    }
}

async fn verify(v: &Verifier, image: &str) -> VerifyResponse {
    let mut client = v.client().await;
    let mut req = tonic::Request::new(VerifyRequest {
        image: image.to_string(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(10));
    client.verify(req).await.expect("verify call").into_inner()
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn signed(reg: &Registry, repo: &str, seed: u64) -> PushedImage {
    push_signed(reg, repo, "v1", seed, "alice.key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_across_two_verifiers_hits_the_registry_once() {
    let reg = Registry::start_plain();
    let image = signed(&reg, "burst/app", 400);
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&reg.host(), &["alice"]));
    // A generous Redis budget: this test is about coalescing, and CI runs
    // many tests at once on two cores (the budget's own behaviour is tested
    // by the Redis-killed case).
    let budget = ["--redis-budget-ms", "1000"];
    let a = verifier(&config, &redis, &budget, dir.path());
    let b = verifier(&config, &redis, &budget, dir.path());
    let clients = [a.verifier.client().await, b.verifier.client().await];
    let calls = (0..500).map(|i| {
        let mut client = clients[i % 2].clone();
        let image = image.reference.clone();
        async move {
            let mut req = tonic::Request::new(VerifyRequest {
                image,
                ..Default::default()
            });
            req.set_timeout(Duration::from_secs(20));
            client.verify(req).await.expect("verify").into_inner()
        }
    });
    let responses = join_all(calls).await;
    for r in &responses {
        assert!(r.is_allowed(), "{r:?}");
        assert_eq!(r.digest, image.digest);
    }
    let fresh = responses
        .iter()
        .filter(|r| r.source() == Source::Fresh)
        .count();
    assert_eq!(fresh, 1, "exactly one verification across both verifiers");
    // The registry saw the requests of one verification, once: HEAD, .sig,
    // referrers API, referrers tag, payload blob.
    let requests = reg.verifier_requests();
    assert_eq!(requests.len(), 5, "{requests:#?}");
    let text = a.verifier.metrics_text(a.metrics).await + &b.verifier.metrics_text(b.metrics).await;
    assert!(
        metric_sum(&text, "portcullis_cache_coalesced_total") > 0.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_misses_and_reverifies() {
    let reg = Registry::start_plain();
    let image = signed(&reg, "cfg/app", 410);
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&reg.host(), &["alice"]));
    let mut a = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a.verifier, &image.reference).await;
    assert_eq!((r.is_allowed(), r.source()), (true, Source::Fresh));
    let before = reg.verifier_requests().len();
    // Same config, restarted: the shared cache answers.
    a.verifier.process.kill();
    let a2 = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a2.verifier, &image.reference).await;
    assert_eq!((r.is_allowed(), r.source()), (true, Source::CacheL2));
    assert_eq!(reg.verifier_requests().len(), before);
    drop(a2);
    // A trust root changes (bob added): every cached verdict misses.
    write_config(dir.path(), &config_for(&reg.host(), &["alice", "bob"]));
    let a3 = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a3.verifier, &image.reference).await;
    assert_eq!((r.is_allowed(), r.source()), (true, Source::Fresh), "{r:?}");
    assert!(
        reg.verifier_requests().len() > before,
        "re-verified against the registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_tag_is_followed_after_the_tag_ttl() {
    let reg = Registry::start_plain();
    let first = signed(&reg, "moving/app", 420);
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&reg.host(), &["alice"]));
    let a = verifier(&config, &redis, &["--tag-ttl-secs", "1"], dir.path());
    let r = verify(&a.verifier, &first.reference).await;
    assert!(r.is_allowed());
    // The tag now points to an unsigned image.
    let moved = push_image(&reg, "moving/app", "v1", 421);
    assert_ne!(moved.digest, first.digest);
    // Within the tag TTL the old, validly signed digest may be answered.
    let r = verify(&a.verifier, &first.reference).await;
    assert!(r.is_allowed());
    assert_eq!(r.digest, first.digest);
    // After the TTL the new digest is resolved, and denied.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = verify(&a.verifier, &first.reference).await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::NoSignatures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_registry_errors_are_not_cached() {
    let reg = Registry::start_plain();
    signed(&reg, "flaky/app", 430);
    let proxy = FaultProxy::start(&format!("http://{}", reg.host())).await;
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&proxy.host(), &["alice"]));
    let a = verifier(&config, &redis, &[], dir.path());
    let image = format!("{}/flaky/app:v1", proxy.host());
    proxy.set(Fault::Status(503)).await;
    let r = verify(&a.verifier, &image).await;
    assert!(!r.is_allowed());
    assert_eq!(r.reason(), Reason::RegistryUnavailable);
    assert!(r.transient);
    proxy.set(Fault::Pass).await;
    let r = verify(&a.verifier, &image).await;
    assert!(r.is_allowed(), "nothing was cached: {r:?}");
    assert_eq!(r.source(), Source::Fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_dying_costs_latency_not_correctness() {
    let reg = Registry::start_plain();
    let good: Vec<PushedImage> = (0..3)
        .map(|i| signed(&reg, &format!("dying/good{i}"), 440 + i))
        .collect();
    let bad: Vec<PushedImage> = (0..3)
        .map(|i| push_image(&reg, &format!("dying/bad{i}"), "v1", 450 + i))
        .collect();
    let mut redis = Redis::start(Some("s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&reg.host(), &["alice"]));
    let a = verifier(&config, &redis, &[], dir.path());
    for round in 0..60 {
        if round == 20 {
            redis.kill();
        }
        if round == 45 {
            redis.restart();
        }
        let checks = good
            .iter()
            .map(|i| (i, true))
            .chain(bad.iter().map(|i| (i, false)));
        for (image, expected) in checks {
            let r = verify(&a.verifier, &image.reference).await;
            assert_eq!(r.is_allowed(), expected, "round {round}: {r:?}");
        }
    }
    // L2 is used again once Redis is back: a fresh verifier reads what the
    // first one publishes.
    let b = verifier(&config, &redis, &[], dir.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seed = 460;
    loop {
        let image = signed(&reg, &format!("dying/after{seed}"), seed);
        seed += 1;
        let first = verify(&a.verifier, &image.reference).await;
        assert!(first.is_allowed());
        let second = verify(&b.verifier, &image.reference).await;
        assert!(second.is_allowed());
        if second.source() == Source::CacheL2 {
            break;
        }
        assert!(Instant::now() < deadline, "L2 never came back");
    }
    let text = a.verifier.metrics_text(a.metrics).await;
    assert!(metric_sum(&text, "portcullis_redis_errors_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_redis_values_are_ignored() {
    let reg = Registry::start_plain();
    let good = signed(&reg, "hostile/good", 470);
    let bad = push_image(&reg, "hostile/bad", "v1", 471);
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&reg.host(), &["alice"]));
    let a = verifier(&config, &redis, &[], dir.path());
    let before_keys = redis.cli(&["--scan", "--pattern", "pc:v1:verdict:*"]);
    assert!(verify(&a.verifier, &good.reference).await.is_allowed());
    let good_keys = redis.cli(&["--scan", "--pattern", "pc:v1:verdict:*"]);
    // (Each allow also leaves a `…|stale` copy for stale-if-error.)
    let good_key = good_keys
        .lines()
        .find(|k| !before_keys.contains(k) && !k.ends_with("|stale"))
        .expect("good verdict key")
        .to_string();
    assert!(!verify(&a.verifier, &bad.reference).await.is_allowed());
    let all = redis.cli(&["--scan", "--pattern", "pc:v1:verdict:*"]);
    let bad_key = all
        .lines()
        .find(|k| *k != good_key && !k.ends_with("|stale"))
        .expect("bad verdict key")
        .to_string();

    // 1. A hand-written allow with no valid integrity tag.
    let forged = format!(
        "{}{{\"value\":{{\"allowed\":true,\"digest\":\"{}\",\"reason\":1,\"detail\":\"\",\"message\":\"forged\"}},\"expires_at_ms\":99999999999999}}",
        "x".repeat(32),
        bad.digest
    );
    redis.cli(&["SET", &bad_key, &forged]);
    let b = verifier(&config, &redis, &[], dir.path());
    let r = verify(&b.verifier, &bad.reference).await;
    assert!(!r.is_allowed(), "a forged allow must not admit: {r:?}");
    assert_eq!(r.reason(), Reason::NoSignatures);
    let text = b.verifier.metrics_text(b.metrics).await;
    assert!(
        metric_sum(&text, "portcullis_cache_integrity_failures_total") >= 1.0,
        "{text}"
    );

    // 2. A genuine allow, replayed under the unsigned image's key.
    let genuine = redis_get_raw(&redis, &good_key);
    redis_set_raw(&redis, &bad_key, &genuine);
    let c = verifier(&config, &redis, &[], dir.path());
    let r = verify(&c.verifier, &bad.reference).await;
    assert!(!r.is_allowed(), "a replayed allow must not admit: {r:?}");
}

fn redis_get_raw(redis: &Redis, key: &str) -> Vec<u8> {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.addrs[0].port().to_string(),
            "--raw",
            "GET",
            key,
        ])
        .output()
        .unwrap();
    let mut v = out.stdout;
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    v
}

fn redis_set_raw(redis: &Redis, key: &str, value: &[u8]) {
    use std::io::Write;
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &redis.addrs[0].port().to_string(), "-x", "SET", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(value).unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_as_l2() {
    let reg = Registry::start_plain();
    let image = signed(&reg, "cluster/app", 480);
    let redis = Redis::start_cluster();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&reg.host(), &["alice"]));
    let a = verifier(&config, &redis, &[], dir.path());
    let b = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a.verifier, &image.reference).await;
    assert_eq!((r.is_allowed(), r.source()), (true, Source::Fresh));
    let r = verify(&b.verifier, &image.reference).await;
    assert_eq!(
        (r.is_allowed(), r.source()),
        (true, Source::CacheL2),
        "{r:?}"
    );
    let r = verify(&b.verifier, &image.reference).await;
    assert_eq!(r.source(), Source::CacheL1);
}

/// Verdicts are bound to the trust material a validator loaded, not only to
/// its config text: a TUF mirror that rotates its `trusted_root.json` behind
/// an unchanged config must not have verdicts made under the old material
/// served from the shared cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_root_rotated_behind_the_same_config_misses() {
    const ISSUER: &str = "https://issuer.portcullis.test";
    const ALICE: &str = "alice@portcullis.test";
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tuf-cache/app", "v1", 440);
    sign_keyless(&reg, &image, ISSUER, ALICE);
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let repo = tuf::mktuf(&mirror, &pki().join("trusted_root.json"), &[]);
    let validator = json!({
        "name": "signed",
        "type": "cosign",
        "insecureRegistries": [reg.host()],
        "host": tuf::mirror_host(&repo),
        "trustRoots": [keyless_root("ci", ISSUER, ALICE)],
    });
    let text = config_yaml(
        vec![validator],
        vec![rule(
            &format!("{}/**", reg.host()),
            "signed",
            json!({"trustRoot": "ci"}),
        )],
    );
    let config = write_config(dir.path(), &text);

    let mut a = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a.verifier, &image.reference).await;
    assert_eq!((r.is_allowed(), r.source()), (true, Source::Fresh), "{r:?}");
    a.verifier.process.kill();
    // Same config and trust: the shared cache answers.
    let mut a2 = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a2.verifier, &image.reference).await;
    assert_eq!(
        (r.is_allowed(), r.source()),
        (true, Source::CacheL2),
        "{r:?}"
    );
    a2.verifier.process.kill();

    // The mirror now publishes another instance's trusted root (the
    // public-good one, which does not trust the test Fulcio), with newer
    // metadata versions; the config file is byte for byte the same.
    let public_good = workspace_root().join(
        "verifier/sigstore-trust/public-good/targets/6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66.trusted_root.json",
    );
    tuf::mktuf(&mirror, &public_good, &["--force", "--version-bump", "10"]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    let a3 = verifier(&config, &redis, &[], dir.path());
    let r = verify(&a3.verifier, &image.reference).await;
    assert!(!r.is_allowed(), "served from the old trust: {r:?}");
    assert_eq!(r.source(), Source::Fresh, "{r:?}");
}

/// A lease is released by its holder only (compare-and-delete): when ours
/// expired mid-verification and another verifier took the key, our release
/// leaves theirs alone. Against a real Redis, through the verifier's L2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_released_by_its_holder_only() {
    use portcullis_verifier::{L2, Lease, RedisSettings};
    let redis = tokio::task::block_in_place(|| Redis::start(None));
    let settings = RedisSettings {
        urls: redis.urls(),
        cluster: false,
        ca_pem: None,
        hmac_key: b"lease-test-hmac-key-0123456789".to_vec(),
        budget: Duration::from_secs(2),
        breaker_threshold: 5,
        breaker_cooldown: Duration::from_secs(2),
    };
    let metrics = portcullis_verifier::VerifierMetrics::register(
        &mut prometheus_client::registry::Registry::default(),
    );
    let l2 = L2::connect(settings, metrics).await.expect("connect");
    let Lease::Acquired(ours) = l2.lease("k", Duration::from_secs(30)).await else {
        panic!("lease not acquired");
    };
    assert_eq!(l2.lease("k", Duration::from_secs(30)).await, Lease::Held);
    // Our lease "expired" and another verifier took it.
    let cli = |args: &[&str]| tokio::task::block_in_place(|| redis.cli(args));
    cli(&["SET", "{k}:lease", "another-verifier-7"]);
    l2.release("k", &ours).await;
    assert_eq!(cli(&["GET", "{k}:lease"]).trim(), "another-verifier-7");
    // Our own lease is released by us.
    let Lease::Acquired(token) = l2.lease("k2", Duration::from_secs(30)).await else {
        panic!("lease not acquired");
    };
    l2.release("k2", &token).await;
    assert_eq!(cli(&["EXISTS", "{k2}:lease"]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_rules_never_touch_the_shared_cache() {
    // A static allow has nothing to resolve or cache: no tag lookup in
    // either tier, no Redis round trip per admission.
    let redis = tokio::task::block_in_place(|| Redis::start(None));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        config_yaml(
            vec![json!({"name": "allow", "type": "static", "approve": true})],
            vec![rule(
                "docker.io/library/*:*",
                "allow",
                serde_json::Value::Null,
            )],
        ),
    )
    .unwrap();
    let a = tokio::task::block_in_place(|| verifier(&config, &redis, &[], dir.path()));
    for _ in 0..5 {
        let r = verify(&a.verifier, "nginx:1.27").await;
        assert!(r.is_allowed(), "{r:?}");
    }
    let text = a.verifier.metrics_text(a.metrics).await;
    let tag_lookups: f64 = text
        .lines()
        .filter(|l| l.starts_with("portcullis_cache_lookups_total") && l.contains("kind=\"tag\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(tag_lookups, 0.0, "{text}");
    assert_eq!(
        metric_sum(&text, "portcullis_redis_op_duration_seconds_count"),
        0.0,
        "{text}"
    );
}
