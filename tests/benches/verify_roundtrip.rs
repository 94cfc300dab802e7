//! One L1-hit `Verify` round trip through the gateway's gRPC client: a
//! verifier (in process, over loopback TCP) whose verdict cache already
//! holds the image's verdict, called through `VerifierPool::verify` as the
//! gateway calls it; and the same request answered from the gateway's memo
//! of verifier allows (a pool with the memo on, holding the verifier's
//! epoch lease), the baseline being the round trip measured in the same
//! run.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_gateway::{Balance, GatewayMetrics, PoolSettings, VerifierPool};
use portcullis_proto::{Reason, VerifyRequest};
use portcullis_verifier::{CachedVerdict, Caches, Engine, ImageRef, parse_str};

const DIGEST: &str = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81";

fn config() -> String {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/cosign/keys/alice.pub"
    ))
    .unwrap();
    let doc = serde_json::json!({
        "validators": [{"name": "signed", "type": "cosign", "trustRoots": [{"name": "alice", "key": key}]}],
        "policy": [{"pattern": "registry.example.com/**", "validator": "signed", "with": {"trustRoot": "alice"}}],
    });
    serde_yaml_ng::to_string(&doc).unwrap()
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let image = format!("registry.example.com/team/app@{DIGEST}");
    let (pool, memo_pool) = rt.block_on(async {
        let caches = Arc::new(Caches::local());
        let cfg = parse_str(&config(), "bench.yaml").unwrap();
        let normalized = ImageRef::parse(&image).unwrap().to_string();
        let rule = cfg.policy.matching_rule(&normalized).unwrap().clone();
        let engine = Engine::new(parse_str(&config(), "bench.yaml").unwrap(), caches.clone())
            .await
            .unwrap();
        // Pre-fill L1 with this image's verdict.
        let key = engine.verdict_cache_key(&rule, DIGEST).unwrap();
        caches
            .verdicts
            .get_or_compute::<(), _, _>(
                &key,
                tokio::time::Instant::now() + Duration::from_secs(5),
                || async {
                    Ok((
                        CachedVerdict {
                            warnings: Vec::new(),
                            allowed: true,
                            digest: Some(DIGEST.to_string()),
                            reason: Reason::Verified as i32,
                            detail: String::new(),
                            message: "signed by alice".into(),
                            valid_until: None,
                        },
                        Duration::from_secs(3600),
                    ))
                },
            )
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        tokio::spawn(portcullis_verifier::serve(
            addr,
            portcullis_verifier::shared(engine),
            // Leases long enough to outlast the run.
            std::sync::Arc::new(portcullis_verifier::Leases::new(Duration::from_secs(3600))),
            Duration::from_secs(8),
            None,
            futures::future::pending(),
        ));
        let settings = PoolSettings {
            connect_timeout: Duration::from_secs(1),
            max_inflight: 512,
            balance: Balance::Rendezvous,
            tls: None,
            tls_name: None,
            memo: portcullis_gateway::MemoSettings {
                ttl: Duration::ZERO,
                max_entries: 0,
            },
        };
        let memo_settings = PoolSettings {
            memo: portcullis_gateway::MemoSettings {
                ttl: Duration::from_secs(3600),
                max_entries: 1000,
            },
            ..settings.clone()
        };
        let mut pools = Vec::new();
        for settings in [settings, memo_settings] {
            let pool = VerifierPool::new(
                &[format!("http://{addr}")],
                settings,
                GatewayMetrics::register(&mut prometheus_client::registry::Registry::default()),
            )
            .unwrap();
            for _ in 0..100 {
                pool.check_health(Duration::from_millis(200)).await;
                if pool.any_healthy() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(pool.any_healthy(), "verifier did not come up");
            pools.push(pool);
        }
        let memo_pool = pools.pop().unwrap();
        (pools.pop().unwrap(), memo_pool)
    });
    let request = VerifyRequest {
        image: image.clone(),
        namespace: "default".into(),
        request_uid: "bench".into(),
        ..Default::default()
    };
    let r = rt.block_on(pool.verify(
        request.clone(),
        tokio::time::Instant::now() + Duration::from_secs(5),
    ));
    assert!(r.is_allowed(), "{r:?}");
    assert_eq!(r.source(), portcullis_proto::Source::CacheL1);
    c.bench_function("verify_roundtrip/l1_hit", |b| {
        b.to_async(&rt).iter(|| {
            pool.verify(
                request.clone(),
                tokio::time::Instant::now() + Duration::from_secs(5),
            )
        })
    });
    // The first call is a round trip whose allow the memo keeps.
    for expected in [
        portcullis_proto::Source::CacheL1,
        portcullis_proto::Source::GatewayMemo,
    ] {
        let r = rt.block_on(memo_pool.verify(
            request.clone(),
            tokio::time::Instant::now() + Duration::from_secs(5),
        ));
        assert!(r.is_allowed(), "{r:?}");
        assert_eq!(r.source(), expected);
    }
    c.bench_function("verify_roundtrip/memo_hit", |b| {
        b.to_async(&rt).iter(|| {
            memo_pool.verify(
                request.clone(),
                tokio::time::Instant::now() + Duration::from_secs(5),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
