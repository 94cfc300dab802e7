//! Latency of one `Verify` call by where the answer comes from, against real
//! components: a registry with N key-signed images, Redis, and two verifier
//! processes. Cold verification (verifier A, nothing cached), L2 hit (a
//! verifier B that never saw the image, reading A's verdict from Redis),
//! and L1 hit (B again). Prints medians and p90s. The scheme is `cosign`
//! (key-signed, the default) or `notation` (JWS envelopes from the test
//! signer, trusted through the test CA).
//!
//!     PORTCULLIS_BIN_DIR=target/release cargo run --release -p portcullis-e2e --example cache_latency [N] [cosign|notation]

use std::time::{Duration, Instant};

use portcullis_e2e::Verifier;
use portcullis_e2e::config::{config_yaml, key_roots, rule};
use portcullis_e2e::redis::Redis;
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{notation_pki_file, notation_sign, pki_path, push_image, sigtool};
use portcullis_proto::{Source, VerifyRequest};
use serde_json::json;

type Client = portcullis_proto::v1::verifier_client::VerifierClient<tonic::transport::Channel>;

async fn call(client: &mut Client, image: &str) -> (Duration, Source) {
    let started = Instant::now();
    let mut req = tonic::Request::new(VerifyRequest {
        image: image.to_string(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(10));
    let r = client.verify(req).await.expect("verify").into_inner();
    assert!(r.is_allowed(), "{r:?}");
    (started.elapsed(), r.source())
}

fn summary(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "| {name} | {} | {:.3} ms | {:.3} ms |",
        d.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.9).as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let notation = std::env::args().nth(2).as_deref() == Some("notation");
    let reg = Registry::start_plain();
    let images: Vec<String> = (0..n)
        .map(|i| {
            let image = push_image(&reg, &format!("lat/app{i}"), "v1", 9000 + i);
            if notation {
                notation_sign(&reg, &image, &[]);
            } else {
                sigtool("sign-key", &reg, &image, &["--key", &pki_path("alice.key")]);
            }
            image.reference
        })
        .collect();
    let redis = Redis::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let (validator, with) = if notation {
        (
            json!({"name": "signed", "type": "notation", "insecureRegistries": [reg.host()],
                   "trustRoots": [{"name": "alice", "cert": notation_pki_file("ca_root.pem")}]}),
            json!({"trustRoot": "alice"}),
        )
    } else {
        (
            json!({"name": "signed", "type": "cosign", "insecureRegistries": [reg.host()], "trustRoots": key_roots(&["alice"])}),
            json!({"trustRoot": "alice"}),
        )
    };
    std::fs::write(
        &config,
        config_yaml(
            vec![validator],
            vec![rule(&format!("{}/**", reg.host()), "signed", with)],
        ),
    )
    .unwrap();
    let key = dir.path().join("hmac");
    std::fs::write(&key, "latency-hmac-key-0123456789abcdef").unwrap();
    let url = redis.urls()[0].clone();
    let args = [
        "--redis-url",
        url.as_str(),
        "--cache-hmac-key-file",
        key.to_str().unwrap(),
    ];
    let a = Verifier::start_with_file(&config, &args);
    let b = Verifier::start_with_file(&config, &args);
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let (mut cold, mut l2, mut l1) = (Vec::new(), Vec::new(), Vec::new());
    for image in &images {
        let (d, s) = call(&mut ca, image).await;
        assert_eq!(s, Source::Fresh);
        cold.push(d);
        let (d, s) = call(&mut cb, image).await;
        assert_eq!(s, Source::CacheL2);
        l2.push(d);
        for _ in 0..5 {
            let (d, s) = call(&mut cb, image).await;
            assert_eq!(s, Source::CacheL1);
            l1.push(d);
        }
    }
    println!("| answer from | calls | median | p90 |\n|---|---|---|---|");
    summary("cold verification (registry)", cold);
    summary("L2 hit, cold verifier", l2);
    summary("L1 hit", l1);
}
