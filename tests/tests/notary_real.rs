//! Notary v1 against the real Debian `notary-server` and `notary-signer`,
//! with trust data made by the real `notary` CLI as Docker makes it
//! (`tests/fixtures/notary/notary_env.py`), images in a real registry, and
//! the tampering proxy for attacks.

use std::time::Duration;

use portcullis_e2e::config::{config_yaml, cosign_keys_only, key_roots, rule};
use portcullis_e2e::notary::{NotaryEnv, NotaryProxy};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::review::{allowed, message, patch};
use portcullis_e2e::signer::{
    PushedImage, notation_pki_file, notation_sign, pki_path, push_image, sigtool,
};
use portcullis_e2e::{Gateway, GatewayOptions, Review, Verifier, pod_spec, verify_json};
use portcullis_proto::{Reason, VerifyRequest};
use serde_json::{Value, json};

/// Manifest size of a pushed image (what `notary addhash` records).
fn size_of(reg: &Registry, image: &PushedImage) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (m, _) = runtime.block_on(reg.get_manifest(&image.repo, &image.digest));
    serde_json::to_vec(&m).unwrap().len().to_string()
}

/// Signs `tag` of `gun` with `digest` into `roles` (the first call
/// initialises the GUN with delegations `releases` and `alice`).
fn notary_sign(
    env: &NotaryEnv,
    server: &str,
    gun: &str,
    tag: &str,
    digest: &str,
    roles: &[&str],
) -> Value {
    let mut args = vec![
        "--gun", gun, "--server", server, "--tag", tag, "--digest", digest, "--size", "1234",
    ];
    if !roles.is_empty() {
        args.push("--roles");
        args.extend_from_slice(roles);
    }
    env.sign(&args)
}

fn dct_validator(host: &str, ca: &str, key: &str, auth: Option<Value>) -> Value {
    let mut v = json!({
        "name": "dct",
        "type": "notaryv1",
        "host": host,
        "cert": ca,
        "trustRoots": [{"name": "default", "key": key}],
    });
    if let Some(a) = auth {
        v["auth"] = a;
    }
    v
}

fn one(config: &str, image: &str) -> Value {
    let (_, results, stderr) = verify_json(config, &[image], &[]);
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

#[test]
fn signed_unsigned_delegations_digests_and_pins() {
    let env = NotaryEnv::up(false);
    let gun = "registry.example.com/team/app";
    let signed = notary_sign(&env, "plain", gun, "v1", D1, &["targets/releases"]);
    notary_sign(
        &env,
        "plain",
        gun,
        "both",
        D1,
        &["targets/releases", "targets/alice"],
    );
    notary_sign(&env, "plain", gun, "split", D1, &["targets/releases"]);
    notary_sign(&env, "plain", gun, "split", D2, &["targets/alice"]);
    let key = signed["root_key_spki_pem"].as_str().unwrap().to_string();
    let host = env.get("server_url");
    let ca = env.ca_pem();
    let rules = |with: Value| vec![rule("registry.example.com/**", "dct", with)];
    let config = config_yaml(
        vec![dct_validator(&host, &ca, &key, None)],
        rules(Value::Null),
    );

    let r = one(&config, &format!("{gun}:v1"));
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], D1);
    assert_eq!(r["reference"], format!("{gun}:v1@{D1}"));

    let r = one(&config, &format!("{gun}:nope"));
    assert_eq!(r["reason"], "TAG_NOT_SIGNED", "{r}");

    let r = one(&config, &format!("{gun}:v1@{D1}"));
    assert_eq!(r["allowed"], true, "{r}");
    let r = one(&config, &format!("{gun}:v1@{D2}"));
    assert_eq!(r["reason"], "DIGEST_MISMATCH", "{r}");

    let both = config_yaml(
        vec![dct_validator(&host, &ca, &key, None)],
        rules(json!({"delegations": ["releases", "alice"]})),
    );
    let r = one(&both, &format!("{gun}:both"));
    assert_eq!(r["allowed"], true, "{r}");
    let r = one(&both, &format!("{gun}:v1"));
    assert_eq!(r["reason"], "DELEGATION_MISSING (targets/alice)", "{r}");
    let r = one(&both, &format!("{gun}:split"));
    assert_eq!(r["reason"], "AMBIGUOUS_DIGEST", "{r}");

    // The wrong pinned key.
    let other = std::fs::read_to_string(pki_path("alice.pub")).unwrap();
    let wrong = config_yaml(
        vec![dct_validator(&host, &ca, &other, None)],
        rules(Value::Null),
    );
    let r = one(&wrong, &format!("{gun}:v1"));
    assert_eq!(r["reason"], "ROOT_KEY_MISMATCH", "{r}");

    // A GUN with no trust data at all.
    let r = one(&config, "registry.example.com/team/unknown:v1");
    assert_eq!(r["reason"], "TRUST_DATA_NOT_FOUND", "{r}");
}

#[test]
fn token_auth_with_and_without_credentials() {
    let env = NotaryEnv::up(true);
    let gun = "registry.example.com/secure/app";
    let signed = notary_sign(&env, "auth", gun, "v1", D1, &["targets/releases"]);
    let key = signed["root_key_spki_pem"].as_str().unwrap().to_string();
    let host = env.get("auth_server_url");
    let authority = host.trim_start_matches("https://").to_string();
    let ca = env.ca_pem();
    let rules = vec![rule("registry.example.com/**", "dct", Value::Null)];
    let anonymous = config_yaml(vec![dct_validator(&host, &ca, &key, None)], rules.clone());
    let r = one(&anonymous, &format!("{gun}:v1"));
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["reason"],
        format!("NOTARY_UNAVAILABLE ({authority}, 401)"),
        "{r}"
    );
    let creds = json!({"username": "portcullis", "password": "secret"});
    let with = config_yaml(vec![dct_validator(&host, &ca, &key, Some(creds))], rules);
    let r = one(&with, &format!("{gun}:v1"));
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], D1);
    let stats = env.token_stats();
    assert!(stats["authenticated"].as_u64().unwrap_or(0) >= 1, "{stats}");
}

async fn verify_grpc(v: &Verifier, image: &str) -> portcullis_proto::VerifyResponse {
    let mut client = v.client().await;
    let mut req = tonic::Request::new(VerifyRequest {
        image: image.to_string(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(10));
    client.verify(req).await.expect("verify").into_inner()
}

/// A Notary server with each of `guns` signed (`:v1` → its digest, in
/// `targets/releases`) behind the tampering proxy, and a verifier config
/// pinning the first GUN's root key, written to a file.
struct ProxiedNotary {
    env: NotaryEnv,
    proxy: NotaryProxy,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn proxied_notary(guns: &[(&str, &str)]) -> ProxiedNotary {
    let env = NotaryEnv::up(false);
    let mut keys: Vec<String> = guns
        .iter()
        .map(|(gun, digest)| {
            let signed = notary_sign(&env, "plain", gun, "v1", digest, &["targets/releases"]);
            signed["root_key_spki_pem"].as_str().unwrap().to_string()
        })
        .collect();
    let key = keys.swap_remove(0);
    let proxy = NotaryProxy::start(&env, &env.get("server_url"));
    let config = config_yaml(
        vec![dct_validator(&proxy.url(), &env.ca_pem(), &key, None)],
        vec![rule("registry.example.com/**", "dct", Value::Null)],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &config).unwrap();
    ProxiedNotary {
        env,
        proxy,
        config: path,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_trust_data_is_denied_with_the_role_named() {
    let gun = "registry.example.com/attack/app";
    let stack = tokio::task::block_in_place(|| proxied_notary(&[(gun, D1)]));
    let (env, proxy, path) = (&stack.env, &stack.proxy, &stack.config);
    // A long-running verifier remembers the versions it has seen; trust
    // data is refetched on every call (TTL 0) so each attack reaches it.
    let v = Verifier::start_with_file(path, &["--trust-ttl-secs", "0"]);
    let image = format!("{gun}:v1");
    assert!(verify_grpc(&v, &image).await.is_allowed());

    let cases = [
        (
            "flip-byte",
            "timestamp",
            Reason::SignatureInvalid,
            "timestamp",
        ),
        (
            "drop-signature",
            "timestamp",
            Reason::SignatureInvalid,
            "timestamp",
        ),
        ("flip-byte", "targets", Reason::HashMismatch, "targets"),
        (
            "drop-signature",
            "snapshot",
            Reason::HashMismatch,
            "snapshot",
        ),
        (
            "length-mismatch",
            "targets",
            Reason::HashMismatch,
            "targets",
        ),
        (
            "length-mismatch",
            "snapshot",
            Reason::HashMismatch,
            "snapshot",
        ),
        (
            "flip-byte",
            "targets/releases",
            Reason::HashMismatch,
            "targets/releases",
        ),
    ];
    for (mode, role, reason, detail) in cases {
        tokio::task::block_in_place(|| proxy.set_mode(mode, role));
        let r = verify_grpc(&v, &image).await;
        assert!(!r.is_allowed(), "{mode} {role}: {r:?}");
        assert_eq!(
            (r.reason(), r.reason_detail.as_str()),
            (reason, detail),
            "{mode} {role}: {r:?}"
        );
    }

    // Rollback: the verifier has seen the current versions; a newer
    // signing moves them on; the proxy then replays the first versions.
    tokio::task::block_in_place(|| proxy.set_mode("passthrough", "*"));
    tokio::task::block_in_place(|| notary_sign(env, "plain", gun, "v2", D2, &["targets/releases"]));
    assert!(verify_grpc(&v, &format!("{gun}:v2")).await.is_allowed());
    tokio::task::block_in_place(|| proxy.set_mode("old-snapshot", "snapshot"));
    let r = verify_grpc(&v, &image).await;
    assert_eq!(
        (r.reason(), r.reason_detail.as_str()),
        (Reason::HashMismatch, "snapshot"),
        "{r:?}"
    );
    tokio::task::block_in_place(|| proxy.set_mode("old-snapshot", "*"));
    let r = verify_grpc(&v, &image).await;
    assert!(!r.is_allowed());
    assert_eq!(r.reason(), Reason::TrustDataRollback, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_mixing_notary_cosign_and_notation_images() {
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let env = tokio::task::block_in_place(|| NotaryEnv::up(false));
    let dct_image = tokio::task::block_in_place(|| push_image(&reg, "dct/app", "1.0", 500));
    let cosign_image = tokio::task::block_in_place(|| push_image(&reg, "cosigned/app", "2.0", 501));
    let unsigned = tokio::task::block_in_place(|| push_image(&reg, "dct/app", "9.9", 502));
    let notation_image =
        tokio::task::block_in_place(|| push_image(&reg, "notation/app", "3.0", 503));
    let notation_unsigned =
        tokio::task::block_in_place(|| push_image(&reg, "notation/app", "3.1", 504));
    tokio::task::block_in_place(|| notation_sign(&reg, &notation_image, &["--envelope", "cose"]));
    tokio::task::block_in_place(|| {
        sigtool(
            "sign-key",
            &reg,
            &cosign_image,
            &["--key", &pki_path("alice.key")],
        )
    });
    let gun = format!("{}/dct/app", reg.host());
    let size = tokio::task::block_in_place(|| size_of(&reg, &dct_image));
    let signed = tokio::task::block_in_place(|| {
        env.sign(&[
            "--gun",
            &gun,
            "--server",
            "plain",
            "--tag",
            "1.0",
            "--digest",
            &dct_image.digest,
            "--size",
            &size,
            "--roles",
            "targets/releases",
        ])
    });
    let key = signed["root_key_spki_pem"].as_str().unwrap().to_string();
    let config = config_yaml(
        vec![
            dct_validator(&env.get("server_url"), &env.ca_pem(), &key, None),
            cosign_keys_only(&reg, key_roots(&["alice"])),
            json!({
                "name": "nv",
                "type": "notation",
                "insecureRegistries": [reg.host()],
                "trustRoots": [{"name": "default", "cert": notation_pki_file("ca_root.pem")}],
            }),
        ],
        vec![
            rule(&format!("{}/dct/*", reg.host()), "dct", Value::Null),
            rule(&format!("{}/notation/*", reg.host()), "nv", Value::Null),
            rule(
                &format!("{}/cosigned/*", reg.host()),
                "signed",
                json!({"trustRoot": "alice"}),
            ),
        ],
    );
    let verifier = tokio::task::block_in_place(|| Verifier::start(&config, &[]));
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let deployment = Review::deployment(pod_spec(
        &[
            &dct_image.reference,
            &cosign_image.reference,
            &notation_image.reference,
        ],
        &[],
        &[],
    ));
    let (_, body) = gw.post_json("/mutate", &deployment.json).await;
    assert!(allowed(&body), "{body}");
    let base = "/spec/template/spec";
    assert_eq!(
        patch(&body),
        Some(json!([
            {"op": "replace", "path": format!("{base}/containers/0/image"), "value": format!("{}@{}", dct_image.reference, dct_image.digest)},
            {"op": "replace", "path": format!("{base}/containers/1/image"), "value": format!("{}@{}", cosign_image.reference, cosign_image.digest)},
            {"op": "replace", "path": format!("{base}/containers/2/image"), "value": format!("{}@{}", notation_image.reference, notation_image.digest)},
        ]))
    );
    // An unsigned image under the notation rule denies the whole Deployment,
    // naming the image.
    let with_unsigned = Review::deployment(pod_spec(
        &[&dct_image.reference, &notation_unsigned.reference],
        &[],
        &[],
    ));
    let (_, body) = gw.post_json("/mutate", &with_unsigned.json).await;
    assert!(!allowed(&body));
    assert!(
        message(&body).starts_with(&format!("{}: NO_SIGNATURES", notation_unsigned.reference)),
        "{}",
        message(&body)
    );
    let swapped = Review::deployment(pod_spec(
        &[&unsigned.reference, &cosign_image.reference],
        &[],
        &[],
    ));
    let (_, body) = gw.post_json("/mutate", &swapped.json).await;
    assert!(!allowed(&body));
    assert!(
        message(&body).starts_with(&format!("{}: TAG_NOT_SIGNED", unsigned.reference)),
        "{}",
        message(&body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_across_two_verifiers_fetches_each_role_once() {
    use portcullis_e2e::redis::Redis;
    let env = tokio::task::block_in_place(|| NotaryEnv::up(false));
    let gun = "registry.example.com/burst/app";
    let signed = tokio::task::block_in_place(|| {
        notary_sign(&env, "plain", gun, "v1", D1, &["targets/releases"])
    });
    let key = signed["root_key_spki_pem"].as_str().unwrap().to_string();
    let proxy = tokio::task::block_in_place(|| NotaryProxy::start(&env, &env.get("server_url")));
    let redis = tokio::task::block_in_place(|| Redis::start(None));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        config_yaml(
            vec![dct_validator(&proxy.url(), &env.ca_pem(), &key, None)],
            vec![rule("registry.example.com/**", "dct", Value::Null)],
        ),
    )
    .unwrap();
    let hmac = dir.path().join("hmac.key");
    std::fs::write(&hmac, "notary-burst-hmac-key-0123456789").unwrap();
    let url = redis.urls()[0].clone();
    let args = [
        "--redis-url",
        url.as_str(),
        "--cache-hmac-key-file",
        hmac.to_str().unwrap(),
        "--redis-budget-ms",
        "1000",
    ];
    let a = tokio::task::block_in_place(|| Verifier::start_with_file(&path, &args));
    let b = tokio::task::block_in_place(|| Verifier::start_with_file(&path, &args));
    let clients = [a.client().await, b.client().await];
    let image = format!("{gun}:v1");
    let calls = (0..500).map(|i| {
        let mut c = clients[i % 2].clone();
        let image = image.clone();
        async move {
            let mut req = tonic::Request::new(VerifyRequest {
                image,
                ..Default::default()
            });
            req.set_timeout(Duration::from_secs(20));
            c.verify(req).await.expect("verify").into_inner()
        }
    });
    let responses = futures::future::join_all(calls).await;
    assert!(responses.iter().all(|r| r.is_allowed() && r.digest == D1));
    let stats = tokio::task::block_in_place(|| proxy.stats());
    let paths = stats["paths"].as_object().cloned().unwrap_or_default();
    for role in [
        "root",
        "timestamp",
        "snapshot",
        "targets",
        "targets/releases",
    ] {
        let path = format!("/v2/{gun}/_trust/tuf/{role}.json");
        assert_eq!(
            paths.get(&path).and_then(Value::as_u64),
            Some(1),
            "{role} fetched once: {stats}"
        );
    }
}

/// Stale-if-error for Notary trust data: once the trust TTL has passed and
/// the Notary server answers 503, the trust data last fetched stands in,
/// verified again in full (answered as `STALE`); a GUN never fetched is
/// denied `NOTARY_UNAVAILABLE`, and so is everything with stale-if-error
/// off. (A definitive answer, such as tampered data, is never replaced by
/// the stale copy: `tampered_trust_data_is_denied_with_the_role_named` runs
/// with the default window.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_data_survives_a_notary_outage_and_nothing_else_does() {
    let gun = "registry.example.com/outage/app";
    let other = "registry.example.com/outage/never";
    let stack = tokio::task::block_in_place(|| proxied_notary(&[(gun, D1), (other, D2)]));
    let (proxy, path) = (&stack.proxy, &stack.config);
    // Trust data is refetched on every call (TTL 0), so the outage is met
    // at once.
    let v = Verifier::start_with_file(
        path,
        &["--trust-ttl-secs", "0", "--stale-if-error-secs", "60"],
    );
    let without = Verifier::start_with_file(
        path,
        &["--trust-ttl-secs", "0", "--stale-if-error-secs", "0"],
    );
    let image = format!("{gun}:v1");
    for verifier in [&v, &without] {
        let r = verify_grpc(verifier, &image).await;
        assert!(r.is_allowed(), "{r:?}");
        assert_eq!(r.source(), portcullis_proto::Source::Fresh);
    }

    tokio::task::block_in_place(|| proxy.set_mode("unavailable", "*"));
    let r = verify_grpc(&v, &image).await;
    assert!(r.is_allowed(), "{r:?}");
    assert_eq!(r.source(), portcullis_proto::Source::Stale, "{r:?}");
    assert_eq!(r.digest, D1, "{r:?}");
    let r = verify_grpc(&v, &format!("{other}:v1")).await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::NotaryUnavailable, "{r:?}");
    let r = verify_grpc(&without, &image).await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::NotaryUnavailable, "{r:?}");

    // The server is back: fresh again once the host's circuit breaker
    // lets requests through (2 s after the last failures); allowed all
    // along.
    tokio::task::block_in_place(|| proxy.set_mode("passthrough", "*"));
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = verify_grpc(&v, &image).await;
        assert!(r.is_allowed(), "{r:?}");
        if r.source() == portcullis_proto::Source::Fresh {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "never fresh again: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Refresh-ahead for trust data: a GUN used in the last tenth of its trust
/// TTL is fetched again in the background, so the admission after the
/// original expiry is answered from the refreshed entry, with no fetch on
/// its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_trust_data_is_refreshed_before_it_expires() {
    let gun = "registry.example.com/refresh/app";
    let stack = tokio::task::block_in_place(|| proxied_notary(&[(gun, D1)]));
    let (proxy, path) = (&stack.proxy, &stack.config);
    let v = Verifier::start_with_file(path, &["--trust-ttl-secs", "3"]);
    let timestamp = format!("/v2/{gun}/_trust/tuf/timestamp.json");
    let fetches = || {
        let stats = tokio::task::block_in_place(|| proxy.stats());
        stats["paths"][&timestamp].as_u64().unwrap_or(0)
    };
    let image = format!("{gun}:v1");
    assert!(verify_grpc(&v, &image).await.is_allowed());
    // The entry was stored just before the answer: its 3 s start here.
    let started = tokio::time::Instant::now();
    assert_eq!(fetches(), 1);

    // The clock: into the last tenth of the 3 s lifetime.
    tokio::time::sleep_until(started + Duration::from_millis(2750)).await;
    assert!(verify_grpc(&v, &image).await.is_allowed());
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while fetches() < 2 {
        assert!(tokio::time::Instant::now() < end, "no refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the first entry's expiry: answered from the refreshed one.
    tokio::time::sleep_until(started + Duration::from_millis(3500)).await;
    assert!(verify_grpc(&v, &image).await.is_allowed());
    assert_eq!(fetches(), 2, "a fetch on the admission path");
}
