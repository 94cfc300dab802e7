//! Policy matching with 10 and 1,000 rules, and cache key computation
//! (verdict key and the HMAC seal of a shared-cache value).

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_verifier::seal::{open, seal};
use portcullis_verifier::{ImageRef, parse_str, verdict_key};
use std::hint::black_box;

fn config(rules: usize) -> String {
    let mut text =
        String::from("validators:\n  - {name: allow, type: static, approve: true}\npolicy:\n");
    for i in 0..rules {
        text.push_str(&format!(
            "  - {{pattern: \"registry.example.com/team{i}/*:*\", validator: allow}}\n"
        ));
    }
    text.push_str("  - {pattern: \"**\", validator: allow}\n");
    text
}

fn bench(c: &mut Criterion) {
    for rules in [10usize, 1000] {
        let cfg = parse_str(&config(rules), "bench.yaml").unwrap();
        let image = ImageRef::parse(&format!("registry.example.com/team{}/app:1.2.3", rules / 2))
            .unwrap()
            .to_string();
        c.bench_function(&format!("policy_match/{rules}_rules"), |b| {
            b.iter(|| black_box(cfg.policy.matching_rule(black_box(&image)).map(|r| r.index)))
        });
    }
    c.bench_function("reference_parse", |b| {
        b.iter(|| {
            black_box(ImageRef::parse(black_box("registry.example.com/team/app:1.2.3")).unwrap())
        })
    });
    let fingerprint = [7u8; 32];
    let digest = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81";
    c.bench_function("cache/verdict_key", |b| {
        b.iter(|| black_box(verdict_key(black_box(&fingerprint), black_box(digest))))
    });
    let value = br#"{"value":{"allowed":true,"digest":"sha256:071b","reason":1,"detail":"","message":"signed by alice"},"expires_at_ms":1}"#;
    let key = format!("pc:v1:verdict:{}", verdict_key(&fingerprint, digest));
    let sealed = seal(b"0123456789abcdef0123456789abcdef", &key, value);
    c.bench_function("cache/seal", |b| {
        b.iter(|| {
            black_box(seal(
                b"0123456789abcdef0123456789abcdef",
                &key,
                black_box(value),
            ))
        })
    });
    c.bench_function("cache/open", |b| {
        b.iter(|| {
            black_box(
                open(
                    b"0123456789abcdef0123456789abcdef",
                    &key,
                    black_box(&sealed),
                )
                .unwrap()
                .len(),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
