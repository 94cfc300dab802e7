//! Scaling out: several real verifier processes behind one gateway —
//! balancing, failover, DNS discovery (a test DNS server stands in for the
//! cluster DNS of a headless Service), all verifiers gone, webhook
//! certificate rotation under load, and mTLS between gateway and verifiers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis_e2e::dns::TestDns;
use portcullis_e2e::review::{allowed, message};
use portcullis_e2e::{Gateway, GatewayOptions, Review, TestCa, Verifier, free_port, pod_spec};

const POLICY: &str = include_str!("../data/static-policy.yaml");

fn ok_calls(url: &str) -> String {
    format!("portcullis_verifier_calls_total{{verifier=\"{url}\",outcome=\"ok\"}}")
}

async fn admit(gw: &Gateway, images: &[&str]) -> serde_json::Value {
    let (status, body) = gw
        .post_json("/validate", &Review::pod(pod_spec(images, &[], &[])).json)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_spread_and_repeat_images_stick() {
    let verifiers: Vec<Verifier> = (0..3).map(|_| Verifier::start(POLICY, &[])).collect();
    let gw = Gateway::start(GatewayOptions {
        verifiers: verifiers.iter().map(Verifier::url).collect(),
        wait_ready: true,
        ..Default::default()
    })
    .await;
    for i in 0..60 {
        let image = format!("registry.example.com/spread/app{i}:1");
        assert!(allowed(&admit(&gw, &[&image]).await));
    }
    let mut counts = Vec::new();
    for v in &verifiers {
        counts.push(gw.metric(&ok_calls(&v.url())).await);
    }
    assert_eq!(counts.iter().sum::<f64>(), 60.0);
    assert!(counts.iter().all(|c| *c >= 5.0), "load spread: {counts:?}");
    // The same image always goes to the same verifier.
    for _ in 0..30 {
        assert!(allowed(
            &admit(&gw, &["registry.example.com/sticky/app:1"]).await
        ));
    }
    let mut grew = Vec::new();
    for (v, before) in verifiers.iter().zip(&counts) {
        grew.push(gw.metric(&ok_calls(&v.url())).await - before);
    }
    grew.sort_by(f64::total_cmp);
    assert_eq!(
        grew,
        vec![0.0, 0.0, 30.0],
        "one verifier serves the repeat image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_verifier_mid_stream_fails_nothing() {
    let mut verifiers: Vec<Verifier> = (0..3).map(|_| Verifier::start(POLICY, &[])).collect();
    let gw = Arc::new(
        Gateway::start(GatewayOptions {
            verifiers: verifiers.iter().map(Verifier::url).collect(),
            wait_ready: true,
            ..Default::default()
        })
        .await,
    );
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let gw = gw.clone();
            let done = done.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let good = format!("registry.example.com/stream/w{w}i{i}:1");
                    let body = admit(&gw, &[&good, "nginx:1"]).await;
                    assert!(allowed(&body), "wrongly denied: {body}");
                    let body = admit(&gw, &[&good, "evil:1"]).await;
                    assert!(!allowed(&body), "wrongly allowed: {body}");
                    assert!(message(&body).starts_with("evil:1: STATIC_DENY"), "{body}");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Kill one verifier once the stream is under way.
    while done.load(Ordering::SeqCst) < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    verifiers[1].process.kill();
    for w in workers {
        w.await.expect("no request failed or was wrongly decided");
    }
    assert_eq!(done.load(Ordering::SeqCst), 320);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_discovery_follows_verifiers() {
    let port = free_port();
    let ips: Vec<Ipv4Addr> = (2..=5).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let addr = |ip: Ipv4Addr| SocketAddr::from((ip, port));
    let mut verifiers: Vec<Verifier> = ips[..3]
        .iter()
        .map(|ip| Verifier::start_on(POLICY, addr(*ip), &[]))
        .collect();
    let dns = TestDns::start("verifiers.portcullis.test", ips[..3].to_vec()).await;
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![format!("dns:///verifiers.portcullis.test:{port}")],
        args: vec![
            "--dns-server".into(),
            dns.addr.to_string(),
            "--dns-refresh-ms".into(),
            "200".into(),
        ],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    assert_eq!(gw.metric("portcullis_verifier_endpoints").await, 3.0);
    // A fourth pod appears.
    verifiers.push(Verifier::start_on(POLICY, addr(ips[3]), &[]));
    dns.set(ips.clone());
    let fourth = format!("http://{}", addr(ips[3]));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    while gw.metric(&ok_calls(&fourth)).await == 0.0 {
        assert!(
            Instant::now() < deadline,
            "the fourth verifier never took load"
        );
        let image = format!("registry.example.com/dns/app{i}:1");
        assert!(allowed(&admit(&gw, &[&image]).await));
        i += 1;
    }
    assert_eq!(gw.metric("portcullis_verifier_endpoints").await, 4.0);
    // Pods go away: the answer shrinks and so does the pool.
    dns.set(vec![ips[3]]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("portcullis_verifier_endpoints").await != 1.0 {
        assert!(Instant::now() < deadline, "endpoints were not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(allowed(
        &admit(&gw, &["registry.example.com/dns/after:1"]).await
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verifier_left_means_prompt_denials() {
    let mut verifiers: Vec<Verifier> = (0..2).map(|_| Verifier::start(POLICY, &[])).collect();
    let gw = Gateway::start(GatewayOptions {
        verifiers: verifiers.iter().map(Verifier::url).collect(),
        args: vec!["--deadline-ms".into(), "3000".into()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    for v in &mut verifiers {
        v.process.kill();
    }
    for i in 0..20 {
        let started = Instant::now();
        let image = format!("registry.example.com/gone/app{i}:1");
        let body = admit(&gw, &[&image, "nginx:1"]).await;
        let elapsed = started.elapsed();
        assert!(!allowed(&body));
        let msg = message(&body);
        assert!(msg.contains(": VERIFIER_UNAVAILABLE: "), "{msg}");
        assert!(
            elapsed < Duration::from_secs(3),
            "answered after {elapsed:?}, past the deadline"
        );
    }
    let mut ready = 200;
    for _ in 0..100 {
        ready = gw.get("/readyz").await.0;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_certificate_rotation_under_load() {
    let verifier = Verifier::start(POLICY, &[]);
    let gw = Arc::new(
        Gateway::start(GatewayOptions {
            verifiers: vec![verifier.url()],
            args: vec!["--tls-reload-interval-ms".into(), "100".into()],
            wait_ready: true,
            ..Default::default()
        })
        .await,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let gw = gw.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    // A fresh client each time: every request is a new TLS
                    // handshake.
                    let client = reqwest::Client::builder()
                        .tls_certs_only([reqwest::Certificate::from_pem(
                            gw.ca.cert_pem().as_bytes(),
                        )
                        .unwrap()])
                        .build()
                        .unwrap();
                    let r = client
                        .post(format!("{}/validate", gw.url()))
                        .header("content-type", "application/json")
                        .body(
                            Review::pod(pod_spec(&["nginx:1"], &[], &[]))
                                .json
                                .to_string(),
                        )
                        .send()
                        .await
                        .expect("no failed handshake");
                    assert_eq!(r.status(), 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Rotate: a new leaf from the same CA, written the way a Secret volume
    // update lands (new files renamed into place).
    let fresh = gw.ca.issue("gateway-rotated");
    let chain = gw.dir.path().join("gateway.chain.crt");
    let key = gw.dir.path().join("gateway.key");
    std::fs::copy(&fresh.key, key.with_extension("tmp")).unwrap();
    std::fs::copy(&fresh.chain, chain.with_extension("tmp")).unwrap();
    std::fs::rename(key.with_extension("tmp"), &key).unwrap();
    std::fs::rename(chain.with_extension("tmp"), &chain).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw
        .metric("portcullis_tls_reloads_total{what=\"webhook\",result=\"ok\"}")
        .await
        < 1.0
    {
        assert!(Instant::now() < deadline, "certificate never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for w in workers {
        total += w.await.expect("a request failed during rotation");
    }
    assert!(total > 20, "load ran: {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_between_gateway_and_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "internal");
    let server = ca.issue("verifier");
    let client = ca.issue("gateway-client");
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = TestCa::new(other_dir.path(), "stranger").issue("intruder");
    let path = |p: &std::path::Path| p.display().to_string();
    let verifier = Verifier::start(
        POLICY,
        &[
            "--tls-cert",
            &path(&server.chain),
            "--tls-key",
            &path(&server.key),
            "--client-ca",
            &path(&ca.cert_path()),
        ],
    );
    let gateway = |cert: &std::path::Path, key: &std::path::Path| GatewayOptions {
        verifiers: vec![verifier.https_url()],
        args: vec![
            "--verifier-ca".into(),
            path(&ca.cert_path()),
            "--verifier-client-cert".into(),
            path(cert),
            "--verifier-client-key".into(),
            path(key),
        ],
        wait_ready: false,
        ..Default::default()
    };
    let mut good = Gateway::start(gateway(&client.chain, &client.key)).await;
    good.wait_for("/readyz", Duration::from_secs(10)).await;
    assert!(allowed(&admit(&good, &["nginx:1"]).await));

    let bad = Gateway::start(gateway(&stranger.chain, &stranger.key)).await;
    let body = admit(&bad, &["nginx:1"]).await;
    assert!(!allowed(&body));
    assert!(
        message(&body).starts_with("nginx:1: VERIFIER_UNAVAILABLE"),
        "{}",
        message(&body)
    );
    assert_eq!(
        bad.get("/readyz").await.0,
        503,
        "a refused gateway is not ready"
    );
    assert!(
        verifier.process.log().contains("TLS handshake refused"),
        "{}",
        verifier.process.log()
    );
}
