//! Registry credentials from the workload's imagePullSecrets: a real
//! registry with htpasswd auth, the secret served by the fake Kubernetes
//! API endpoint (see `portcullis_e2e::fake_kube`), the real gateway and
//! verifier, and Redis to check that credentials are never written there.

use base64::Engine as _;
use portcullis_e2e::config::{config_yaml, key_roots, rule};
use portcullis_e2e::fake_kube::{FakeKube, KEY_SECRET_PATH, key_secret, key_secret_config};
use portcullis_e2e::redis::Redis;
use portcullis_e2e::registry::{Registry, htpasswd_auth};
use portcullis_e2e::review::{allowed, message};
use portcullis_e2e::signer::push_signed;
use portcullis_e2e::{Gateway, GatewayOptions, Review, TestCa, Verifier, pod_spec};
use serde_json::json;

const PASSWORD: &str = "pull-secret-password-8c1f";

/// A signed image behind a TLS registry that wants `user`:[`PASSWORD`]
/// (credentials never travel over plain HTTP): pushed and signed into an
/// open registry first, whose storage the authenticating one serves.
struct PrivateImage {
    _open: Registry,
    reg: Registry,
    image: portcullis_e2e::signer::PushedImage,
    ca: TestCa,
    _dir: tempfile::TempDir,
}

fn private_image(repo: &str, seed: u64, user: &str) -> PrivateImage {
    tokio::task::block_in_place(|| {
        let open = Registry::start_plain();
        let image = push_signed(&open, repo, "v1", seed, "alice.key");
        let dir = tempfile::tempdir().unwrap();
        let auth = htpasswd_auth(dir.path(), user, PASSWORD);
        let ca = TestCa::new(dir.path(), "registry");
        let reg = Registry::start_on(Some(&ca), &auth, Some(&open.storage()));
        PrivateImage {
            _open: open,
            reg,
            image,
            ca,
            _dir: dir,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_secrets_authenticate_by_exact_host_and_stay_in_the_verifier() {
    let private = private_image("private/app", 700, "puller");
    let (reg, ca) = (&private.reg, &private.ca);
    let host = reg.host();
    let reference = format!("{host}/private/app:v1");

    let kube = FakeKube::start().await;
    let dockerconfig =
        json!({"auths": {host.clone(): {"username": "puller", "password": PASSWORD}}}).to_string();
    let other =
        json!({"auths": {"registry.example.com": {"username": "puller", "password": PASSWORD}}})
            .to_string();
    let secret = |name: &str, config: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
               "metadata": {"name": name, "namespace": "team"},
               "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}})
    };
    kube.put(
        "/api/v1/namespaces/team/secrets/regcred",
        secret("regcred", &dockerconfig),
    );
    kube.put(
        "/api/v1/namespaces/team/secrets/elsewhere",
        secret("elsewhere", &other),
    );

    let redis = tokio::task::block_in_place(|| Redis::start(None));
    let dir = tempfile::tempdir().unwrap();
    let hmac = dir.path().join("hmac.key");
    std::fs::write(&hmac, "pull-secrets-hmac-key-0123456789").unwrap();
    let validator = json!({"name": "signed", "type": "cosign", "cert": ca.cert_pem(), "trustRoots": key_roots(&["alice"])});
    let config = config_yaml(
        vec![validator],
        vec![rule(
            &format!("{host}/**"),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let mut args: Vec<String> = vec![
        "--pull-secrets".into(),
        "--redis-url".into(),
        redis.urls()[0].clone(),
        "--cache-hmac-key-file".into(),
        hmac.display().to_string(),
        "--negative-ttl-secs".into(),
        "0".into(),
    ];
    args.extend(kube.flags());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let verifier = tokio::task::block_in_place(|| Verifier::start(&config, &refs));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;

    let pod = |secrets: &[&str]| {
        let mut spec = pod_spec(&[&reference], &[], &[]);
        spec["imagePullSecrets"] = secrets.iter().map(|s| json!({"name": s})).collect();
        let mut r = Review::pod(spec);
        r.json["request"]["namespace"] = json!("team");
        r
    };
    // No secret: the registry refuses us.
    let (_, body) = gw.post_json("/validate", &pod(&[]).json).await;
    assert!(!allowed(&body));
    assert!(
        message(&body).contains(&format!("REGISTRY_AUTH_FAILED ({host})")),
        "{}",
        message(&body)
    );
    // A secret for another host is not sent here.
    let (_, body) = gw.post_json("/validate", &pod(&["elsewhere"]).json).await;
    assert!(!allowed(&body), "{body}");
    // The workload's secret for this host works.
    let (_, body) = gw.post_json("/validate", &pod(&["regcred"]).json).await;
    assert!(allowed(&body), "{body}");
    assert!(
        kube.requests()
            .iter()
            .any(|p| p == "/api/v1/namespaces/team/secrets/regcred")
    );

    // The credentials are nowhere in Redis, nor in the verifier's log.
    let keys = redis.cli(&["--scan", "--pattern", "*"]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let value = redis.cli(&["GET", key]);
        assert!(
            !value.contains(PASSWORD) && !value.contains("puller"),
            "{key}: {value}"
        );
    }
    assert!(!verifier.process.log().contains(PASSWORD));
}

/// The attack: a tenant without access to another tenant's private image
/// asks for it by digest (a 401 for it), hoping the denial is cached under
/// the key every tenant reads and keeps the owner's Pods out. And the
/// reverse: the owner's allow, remembered by the gateway, never answers
/// that tenant's request for the same image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_keep_anothers_private_image_denied() {
    let private = private_image("private/owned", 701, "owner");
    let (reg, ca, image) = (&private.reg, &private.ca, &private.image);
    let host = reg.host();
    let by_digest = format!("{host}/private/owned@{}", image.digest);

    let kube = FakeKube::start().await;
    let secret = |ns: &str, password: &str| {
        let config = json!({"auths": {host.clone(): {"username": "owner", "password": password}}})
            .to_string();
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
               "metadata": {"name": "regcred", "namespace": ns},
               "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}})
    };
    kube.put(
        "/api/v1/namespaces/owner/secrets/regcred",
        secret("owner", PASSWORD),
    );
    kube.put(
        "/api/v1/namespaces/mallory/secrets/regcred",
        secret("mallory", "a-guess"),
    );

    let validator = json!({"name": "signed", "type": "cosign", "cert": ca.cert_pem(), "trustRoots": key_roots(&["alice"])});
    let config = config_yaml(
        vec![validator],
        vec![rule(
            &format!("{host}/**"),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    // The default negative TTL (30 s): denials are cached. Epoch leases on,
    // so the gateway remembers the owner's allow: mallory, naming the same
    // image and a secret of the same name in her namespace, must never be
    // answered from it.
    let mut args: Vec<String> = vec![
        "--pull-secrets".into(),
        "--epoch-lease-ms".into(),
        "1000".into(),
    ];
    args.extend(kube.flags());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let verifier = tokio::task::block_in_place(|| Verifier::start(&config, &refs));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let pod = |ns: &str, secrets: &[&str]| {
        let mut spec = pod_spec(&[&by_digest], &[], &[]);
        spec["imagePullSecrets"] = secrets.iter().map(|s| json!({"name": s})).collect();
        let mut r = Review::pod(spec);
        r.json["request"]["namespace"] = json!(ns);
        r
    };
    for _ in 0..3 {
        // Without a secret, and with a wrong one: refused, and cached for
        // their askers only.
        let (_, body) = gw.post_json("/validate", &pod("mallory", &[]).json).await;
        assert!(message(&body).contains("REGISTRY_AUTH_FAILED"), "{body}");
        let (_, body) = gw
            .post_json("/validate", &pod("mallory", &["regcred"]).json)
            .await;
        assert!(message(&body).contains("REGISTRY_AUTH_FAILED"), "{body}");
        // The owner is admitted all the same.
        let (_, body) = gw
            .post_json("/validate", &pod("owner", &["regcred"]).json)
            .await;
        assert!(allowed(&body), "the owner's Pod was kept out: {body}");
    }
    // The owner's second and third admissions came from the gateway's memo.
    assert_eq!(gw.metric("portcullis_memo_hits_total").await, 2.0);
}

/// Connaisseur's `key: k8s://NAMESPACE/SECRET`: `serve` reads the Secret's
/// `cosign.pub` through the Kubernetes API at start-up; a missing Secret
/// stops start-up naming the file and the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_root_keys_from_kubernetes_secrets() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image =
        tokio::task::block_in_place(|| push_signed(&reg, "k8skey/app", "v1", 1400, "alice.key"));
    let kube = FakeKube::start().await;
    kube.put(KEY_SECRET_PATH, key_secret("alice.pub"));
    let config = |key: &str| {
        config_yaml(
            vec![
                json!({"name": "signed", "type": "cosign", "insecureRegistries": [reg.host()],
                        "trustRoots": [{"name": "alice", "key": key}]}),
            ],
            vec![rule(
                &format!("{}/**", reg.host()),
                "signed",
                json!({"trustRoot": "alice"}),
            )],
        )
    };
    let flags = kube.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let v = tokio::task::block_in_place(|| {
        Verifier::start(&config("k8s://connaisseur/cosignkeys"), &flags)
    });
    let mut client = v.client().await;
    let r = client
        .verify(portcullis_proto::VerifyRequest {
            image: image.reference.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.is_allowed(), "{r:?}");

    // A missing Secret: start-up fails, naming the file and the field.
    missing_secret_stops_start_up(&config("k8s://connaisseur/nosuch"), &flags);
}

fn missing_secret_stops_start_up(config: &str, flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(portcullis_e2e::bin_path("portcullis-verifier"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", portcullis_e2e::free_port()))
            .args(flags)
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("validators[0].trustRoots[0].key")
            && stderr.contains("Secret connaisseur/nosuch does not exist"),
        "{stderr}"
    );
}

/// A rotated key Secret takes effect while serving: after the Secret's
/// `cosign.pub` changes from alice's key to bob's, bob's image is allowed
/// and alice's denied, without a restart; the cached allow of alice's
/// image is not served under the new key. A Secret that later cannot be
/// read keeps the key in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_secret_takes_effect_without_a_restart() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let (by_alice, by_bob) = tokio::task::block_in_place(|| {
        (
            push_signed(&reg, "rotate/alice", "v1", 1410, "alice.key"),
            push_signed(&reg, "rotate/bob", "v1", 1411, "bob.key"),
        )
    });
    let kube = FakeKube::start().await;
    let path = KEY_SECRET_PATH;
    kube.put(path, key_secret("alice.pub"));
    let config = key_secret_config(&reg);
    let mut flags = kube.flags();
    flags.extend(["--secret-refresh-secs".to_string(), "1".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let v = tokio::task::block_in_place(|| Verifier::start(&config, &flags));
    let ask = |image: String| {
        let v = &v;
        async move { v.verify(&image).await }
    };
    assert!(ask(by_alice.reference.clone()).await.is_allowed());
    assert!(!ask(by_bob.reference.clone()).await.is_allowed());
    let reads = |kube: &FakeKube| {
        kube.requests()
            .iter()
            .filter(|p| p.as_str() == path)
            .count()
    };

    kube.put(path, key_secret("bob.pub"));
    // The refresh: wait until bob's image is allowed (polling the effect).
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ask(by_bob.reference.clone()).await.is_allowed() {
        assert!(
            tokio::time::Instant::now() < end,
            "the new key never took effect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = ask(by_alice.reference.clone()).await;
    assert!(
        !r.is_allowed(),
        "alice's cached allow outlived her key: {r:?}"
    );

    // The Secret disappears: the key in use (bob's) is kept.
    let before = reads(&kube);
    kube.remove(path);
    while reads(&kube) < before + 2 {
        assert!(
            tokio::time::Instant::now() < end + std::time::Duration::from_secs(10),
            "no further reads"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ask(by_bob.reference.clone()).await.is_allowed());
    assert!(!ask(by_alice.reference.clone()).await.is_allowed());
}
