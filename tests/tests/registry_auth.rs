//! Registry authentication against a real registry: Basic (htpasswd) and
//! the bearer-token challenge flow (Docker Hub style, with the token
//! endpoint of the Notary test stack), credentials chosen by exact host.
//!
//! Images are pushed and signed into an open registry first; a second
//! registry process with auth then serves the same storage.

use portcullis_e2e::config::{config_yaml, key_roots, rule};
use portcullis_e2e::notary::NotaryEnv;
use portcullis_e2e::registry::{Registry, htpasswd_auth};
use portcullis_e2e::signer::{PushedImage, pki_path, push_image, sigtool};
use portcullis_e2e::verify_json;
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

fn verify(host: &str, auth: Option<Value>, image: &str, extra: Value) -> Value {
    let mut validator = json!({
        "name": "signed",
        "type": "cosign",
        "insecureRegistries": [host],
        "trustRoots": key_roots(&["alice"]),
    });
    if let Some(auth) = auth {
        validator["auth"] = auth;
    }
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            validator[k] = v.clone();
        }
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
    let auth = htpasswd_auth(dir.path(), "portcullis", "secret");
    let reg = Registry::start_on(None, &auth, Some(&open.storage()));
    let host = reg.host();
    let reference = format!("{host}/private/app:v1");

    let r = verify(&host, None, &reference, json!({}));
    assert_eq!(r["reason"], format!("REGISTRY_AUTH_FAILED ({host})"), "{r}");

    let good = json!({"username": "portcullis", "password": "secret"});
    let r = verify(&host, Some(good.clone()), &reference, json!({}));
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], image.digest.as_str());

    let wrong = json!({"username": "portcullis", "password": "guess"});
    let r = verify(&host, Some(wrong), &reference, json!({}));
    assert_eq!(r["reason"], format!("REGISTRY_AUTH_FAILED ({host})"), "{r}");

    // Credentials named for another host are not sent here.
    let elsewhere = json!({"username": "portcullis", "password": "secret", "registries": ["registry.example.com"]});
    let r = verify(&host, Some(elsewhere), &reference, json!({}));
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
        Some(json!({"dockerConfigJson": docker_config})),
        &reference,
        json!({}),
    );
    assert_eq!(r["allowed"], true, "{r}");
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
    let reg = Registry::start_on(None, &auth, Some(&open.storage()));
    let host = reg.host();
    let reference = format!("{host}/private/app:v1");
    // The token endpoint is HTTPS with the Notary test CA.
    let ca = json!({"cert": notary.ca_pem()});

    let r = verify(&host, None, &reference, ca.clone());
    assert_eq!(
        r["reason"],
        format!("REGISTRY_AUTH_FAILED ({host})"),
        "anonymous token refused: {r}"
    );

    let creds = json!({"username": "portcullis", "password": "secret"});
    let r = verify(&host, Some(creds), &reference, ca.clone());
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["digest"], image.digest.as_str());
    // One token per repository scope, reused for every request of the
    // verification.
    let stats = notary.token_stats();
    assert_eq!(stats["authenticated"], 1, "{stats}");
}
