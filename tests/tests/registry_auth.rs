//! Registry authentication against a real registry: Basic (htpasswd) and
//! the bearer-token challenge flow (Docker Hub style, with the token
//! endpoint of the Notary test stack), credentials chosen by exact host and
//! sent only over TLS. And a registry that misbehaves on purpose
//! (`portcullis_e2e::rogue`): token realms on plain HTTP or odd schemes,
//! redirects to other hosts and down to HTTP.
//!
//! Images are pushed and signed into an open registry first; a second
//! registry process with auth then serves the same storage.

use portcullis_e2e::config::{config_yaml, key_roots, rule};
use portcullis_e2e::notary::NotaryEnv;
use portcullis_e2e::registry::{Registry, htpasswd_auth};
use portcullis_e2e::rogue::{Behaviour, Rogue};
use portcullis_e2e::signer::{PushedImage, pki_path, push_image, sigtool};
use portcullis_e2e::{TestCa, verify_json};
use serde_json::{Value, json};

/// Pushes and signs an image in an open registry; returns it and the
/// storage directory (kept alive by the returned registry).
fn signed_image() -> (Registry, PushedImage) {
    let open = Registry::start_plain();
    let image = push_image(&open, "private/app", "v1", 300);
    sigtool(
        "sign-key",
        &open,
        &image,
        &["--key", &pki_path("alice.key")],
    );
    (open, image)
}

/// Verifies `image` under a cosign validator for `host` with `auth` (if
/// any); `ca_pem` is the registry's TLS CA (`None`: plain HTTP, marked
/// insecure).
fn verify(host: &str, ca_pem: Option<&str>, auth: Option<Value>, image: &str) -> Value {
    let mut validator = json!({
        "name": "signed",
        "type": "cosign",
        "trustRoots": key_roots(&["alice"]),
    });
    match ca_pem {
        Some(ca) => validator["cert"] = json!(ca),
        None => validator["insecureRegistries"] = json!([host]),
    }
    if let Some(auth) = auth {
        validator["auth"] = auth;
    }
    let config = config_yaml(
        vec![validator],
        vec![rule(
            &format!("{host}/**"),
            "signed",
            json!({"trustRoot": "alice"}),
        )],
    );
    let (_, results, stderr) = verify_json(&config, &[image], &[]);
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result: {stderr}"))
}

#[test]
fn basic_auth_by_exact_host() {
    let (open, image) = signed_image();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "registry");
    let auth = htpasswd_auth(dir.path(), "portcullis", "secret");
    let reg = Registry::start_on(Some(&ca), &auth, Some(&open.storage()));
    let host = reg.host();
    let reference = format!("{host}/private/app:v1");
    let tls = Some(ca.cert_pem());

    let r = verify(&host, tls, None, &reference);
    assert_eq!(r["reason"], format!("REGISTRY_AUTH_FAILED ({host})"), "{r}");

    let good = json!({"username": "portcullis", "password": "secret"});
    let r = verify(&host, tls, Some(good.clone()), &reference);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], image.digest.as_str());

    let wrong = json!({"username": "portcullis", "password": "guess"});
    let r = verify(&host, tls, Some(wrong), &reference);
    assert_eq!(r["reason"], format!("REGISTRY_AUTH_FAILED ({host})"), "{r}");

    // Credentials named for another host are not sent here.
    let elsewhere = json!({"username": "portcullis", "password": "secret", "registries": ["registry.example.com"]});
    let r = verify(&host, tls, Some(elsewhere), &reference);
    assert_eq!(r["reason"], format!("REGISTRY_AUTH_FAILED ({host})"), "{r}");

    // A docker config file, keyed by exact host.
    let docker_config = dir.path().join("config.json");
    std::fs::write(
        &docker_config,
        json!({"auths": {host.clone(): {"auth": "cG9ydGN1bGxpczpzZWNyZXQ="}}}).to_string(),
    )
    .unwrap();
    let r = verify(
        &host,
        tls,
        Some(json!({"dockerConfigJson": docker_config})),
        &reference,
    );
    assert_eq!(r["allowed"], true, "{r}");
}

#[test]
fn credentials_never_travel_over_plain_http() {
    let (open, _) = signed_image();
    let dir = tempfile::tempdir().unwrap();
    let auth = htpasswd_auth(dir.path(), "portcullis", "secret");
    let reg = Registry::start_on(None, &auth, Some(&open.storage()));
    let host = reg.host();
    let good = json!({"username": "portcullis", "password": "secret"});
    let r = verify(&host, None, Some(good), &format!("{host}/private/app:v1"));
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["reason"], format!("REGISTRY_AUTH_FAILED ({host})"), "{r}");
}

#[test]
fn bearer_token_flow() {
    let (open, image) = signed_image();
    let notary = NotaryEnv::up(true);
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
        notary.get("token_url"),
        notary.get("token_service"),
        notary.get("token_issuer"),
        notary.get("token_root_bundle"),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "registry");
    let reg = Registry::start_on(Some(&ca), &auth, Some(&open.storage()));
    let host = reg.host();
    let reference = format!("{host}/private/app:v1");
    // The registry's CA and the token endpoint's (the Notary test CA).
    let cas = format!("{}{}", ca.cert_pem(), notary.ca_pem());

    let r = verify(&host, Some(&cas), None, &reference);
    assert_eq!(
        r["reason"],
        format!("REGISTRY_AUTH_FAILED ({host})"),
        "anonymous token refused: {r}"
    );

    let creds = json!({"username": "portcullis", "password": "secret"});
    let r = verify(&host, Some(&cas), Some(creds), &reference);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], image.digest.as_str());
    // One token per repository scope, reused for every request of the
    // verification.
    let stats = notary.token_stats();
    assert_eq!(stats["authenticated"], 1, "{stats}");
}

const CREDS: &str = "cm9ndWU6aHVudGVyMg=="; // base64("rogue:hunter2")

fn rogue_creds() -> Value {
    json!({"username": "rogue", "password": "hunter2"})
}

/// Verifies `HOST/app:v1` on a rogue TLS registry (from `ca`) with
/// [`rogue_creds`].
fn verify_rogue(host: &str, ca: &TestCa) -> Value {
    tokio::task::block_in_place(|| {
        verify(
            host,
            Some(ca.cert_pem()),
            Some(rogue_creds()),
            &format!("{host}/app:v1"),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_realms_must_be_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "rogue");
    // A capture endpoint on plain HTTP, on the registry's own host name.
    let capture = Rogue::start(Behaviour::Capture, None).await;
    for realm in [
        format!("{}/token", capture.url()),
        "ftp://127.0.0.1/token".to_string(),
    ] {
        let registry = Rogue::start(Behaviour::BearerRealm(realm.clone()), Some(&ca)).await;
        let host = registry.host();
        let r = verify_rogue(&host, &ca);
        assert_eq!(r["allowed"], false, "{realm}: {r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("token realm scheme"), "{realm}: {r}");
        assert!(
            !message.contains(&realm),
            "the realm URL stays in the log: {r}"
        );
    }
    assert!(
        capture.seen().is_empty(),
        "a plain-HTTP realm was called: {:?}",
        capture.seen()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_carry_no_credentials_and_never_downgrade() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "rogue");
    // Another host (port) over TLS: followed, without our Authorization.
    let other = Rogue::start(Behaviour::Capture, Some(&ca)).await;
    let registry = Rogue::start(Behaviour::BasicThenRedirect(other.url()), Some(&ca)).await;
    let host = registry.host();
    let r = verify_rogue(&host, &ca);
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        registry
            .seen()
            .iter()
            .any(|s| s.authorization.as_deref() == Some(&format!("Basic {CREDS}"))),
        "the registry itself got the credentials: {:?}",
        registry.seen()
    );
    let followed = other.seen();
    assert!(!followed.is_empty(), "the redirect was followed");
    assert!(
        followed.iter().all(|s| s.authorization.is_none()),
        "credentials followed a redirect to another host: {followed:?}"
    );

    // Down to plain HTTP: refused, the target never called.
    let plain = Rogue::start(Behaviour::Capture, None).await;
    let registry = Rogue::start(Behaviour::BasicThenRedirect(plain.url()), Some(&ca)).await;
    let host = registry.host();
    let r = verify_rogue(&host, &ca);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(
        r["reason"],
        format!("REGISTRY_UNAVAILABLE ({host}, connection failed)"),
        "{r}"
    );
    assert!(
        r["message"].as_str().unwrap().contains("redirect refused"),
        "{r}"
    );
    assert!(
        plain.seen().is_empty(),
        "followed a downgrade: {:?}",
        plain.seen()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_messages_name_a_short_cause_not_the_upstream_detail() {
    // Nothing listens on this port: connection refused.
    let port = portcullis_e2e::free_port();
    let host = format!("127.0.0.1:{port}");
    let r = tokio::task::block_in_place(|| verify(&host, None, None, &format!("{host}/app:v1")));
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!("registry {host} unreachable: connection refused"),
        "{r}"
    );
}
