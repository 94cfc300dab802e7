//! The `notation` validator against a real registry (Debian's
//! `docker-registry`, which has no referrers API, so discovery goes through
//! the referrers tag schema), with signatures from the independent signer
//! `tests/fixtures/notation/notation_sign.py` (JWS and COSE envelopes, RFC
//! 3161 timestamps, written from the Notary Project specifications).
//!
//! Each attack of the issue is a test that the image is denied with its
//! stable reason code and a message naming the failing step.

use portcullis_e2e::config::{config_yaml, rule};
use portcullis_e2e::registry::Registry;
use portcullis_e2e::signer::{notation_pki, notation_pki_file, notation_sign, push_image};
use portcullis_e2e::verdicts::{assert_allowed, assert_denied, verdict};
use serde_json::{Value, json};

/// A trust root named `name` holding `cert` (a PKI file), optionally with a
/// TSA root and a store type.
fn root(name: &str, cert: &str, ts_cert: Option<&str>, store: Option<&str>) -> Value {
    let mut r = json!({"name": name, "cert": notation_pki_file(cert)});
    if let Some(ts) = ts_cert {
        r["tsCert"] = json!(notation_pki_file(ts));
    }
    if let Some(s) = store {
        r["type"] = json!(s);
    }
    r
}

/// A config with one notation validator `nv` for everything in `reg`.
fn config(reg: &Registry, roots: Vec<Value>, with: Value) -> String {
    config_yaml(
        vec![json!({
            "name": "nv",
            "type": "notation",
            "insecureRegistries": [reg.host()],
            "trustRoots": roots,
        })],
        vec![rule(&format!("{}/**", reg.host()), "nv", with)],
    )
}

/// The default: the test CA's root as `default`, strict.
fn ca_config(reg: &Registry) -> String {
    config(
        reg,
        vec![root("default", "ca_root.pem", None, None)],
        Value::Null,
    )
}

#[test]
fn jws_and_cose_signatures_admit_and_pin() {
    let reg = Registry::start_plain();
    let cases: [(&str, &[&str]); 4] = [
        ("jws/p256", &["--envelope", "jws", "--leaf", "leaf_p256"]),
        ("cose/p384", &["--envelope", "cose", "--leaf", "leaf_p384"]),
        ("jws/rsa", &["--envelope", "jws", "--leaf", "leaf_rsa"]),
        ("cose/legacy", &["--envelope", "cose", "--legacy-form"]),
    ];
    for (i, (repo, args)) in cases.iter().enumerate() {
        let image = push_image(&reg, repo, "v1", 900 + i as u64);
        notation_sign(&reg, &image, args);
        let r = verdict(&ca_config(&reg), &image.reference);
        assert_allowed(&r, &image);
        assert!(r["reason"].as_str().unwrap().starts_with("VERIFIED"), "{r}");
        assert!(r.get("warnings").is_none(), "{r}");
    }
}

#[test]
fn cold_verification_request_count_then_cached() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "count/app", "v1", 910);
    notation_sign(&reg, &image, &[]);
    let before = reg.verifier_requests().len();
    let r = verdict(&ca_config(&reg), &image.reference);
    assert_allowed(&r, &image);
    let requests: Vec<String> = reg.verifier_requests()[before..]
        .iter()
        .map(|a| format!("{} {} {}", a.method, a.path, a.status))
        .collect();
    // HEAD the tag; GET the manifest; the referrers API (404 here); the
    // fallback index; the signature manifest; the envelope blob.
    assert_eq!(requests.len(), 6, "{requests:#?}");
    assert!(
        requests.iter().any(|r| r.contains("/referrers/")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.contains(&format!(
            "/manifests/{}",
            image.digest.replacen(':', "-", 1)
        ))),
        "{requests:#?}"
    );
}

#[test]
fn tampered_payload_is_denied() {
    let reg = Registry::start_plain();
    for (i, envelope) in ["jws", "cose"].iter().enumerate() {
        let image = push_image(&reg, &format!("tamper/{envelope}"), "v1", 920 + i as u64);
        notation_sign(
            &reg,
            &image,
            &["--envelope", envelope, "--tamper", "payload"],
        );
        let r = verdict(&ca_config(&reg), &image.reference);
        assert_denied(&r, "SIGNATURE_INVALID", "integrity");
    }
}

#[test]
fn descriptor_with_wrong_digest_or_size_is_denied() {
    let reg = Registry::start_plain();
    let other = push_image(&reg, "desc/other", "v1", 930);
    let image = push_image(&reg, "desc/app", "v1", 931);
    notation_sign(&reg, &image, &["--descriptor-digest", &other.digest]);
    let r = verdict(&ca_config(&reg), &image.reference);
    assert_denied(&r, "DIGEST_MISMATCH", "not this image");
    let image = push_image(&reg, "desc/size", "v1", 932);
    notation_sign(&reg, &image, &["--descriptor-size", "1"]);
    let r = verdict(&ca_config(&reg), &image.reference);
    assert_denied(&r, "DIGEST_MISMATCH", "1 bytes");
}

#[test]
fn untrusted_ca_and_wrong_store_type_are_denied() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "trust/other", "v1", 940);
    notation_sign(&reg, &image, &["--leaf", "other_leaf"]);
    let r = verdict(&ca_config(&reg), &image.reference);
    assert_denied(&r, "NO_MATCHING_SIGNATURE", "authenticity");

    // A signing-authority signature: a `ca` root holding the signing
    // authority's certificate does not admit it; a `signingAuthority` one
    // does.
    let image = push_image(&reg, "trust/sa", "v1", 941);
    notation_sign(&reg, &image, &["--leaf", "sa_leaf", "--scheme", "sa"]);
    let as_ca = config(
        &reg,
        vec![root("default", "sa_root.pem", None, None)],
        Value::Null,
    );
    assert_denied(
        &verdict(&as_ca, &image.reference),
        "NO_MATCHING_SIGNATURE",
        "needs a `signingAuthority` trust root",
    );
    let as_sa = config(
        &reg,
        vec![root(
            "default",
            "sa_root.pem",
            None,
            Some("signingAuthority"),
        )],
        Value::Null,
    );
    assert_allowed(&verdict(&as_sa, &image.reference), &image);

    // And the other way round: an x509 signature against a
    // signingAuthority root holding the CA.
    let image = push_image(&reg, "trust/x509", "v1", 942);
    notation_sign(&reg, &image, &[]);
    let wrong = config(
        &reg,
        vec![root(
            "default",
            "ca_root.pem",
            None,
            Some("signingAuthority"),
        )],
        Value::Null,
    );
    assert_denied(
        &verdict(&wrong, &image.reference),
        "NO_MATCHING_SIGNATURE",
        "needs a `ca`",
    );
}

#[test]
fn a_leaf_without_code_signing_is_denied() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "eku/app", "v1", 945);
    notation_sign(&reg, &image, &["--leaf", "leaf_server"]);
    let r = verdict(&ca_config(&reg), &image.reference);
    assert_denied(&r, "CERT_INVALID", "code signing");
}

#[test]
fn expired_certificate_with_and_without_timestamp() {
    let reg = Registry::start_plain();
    let with_tsa = |mode: Option<&str>| {
        let with = match mode {
            Some(m) => json!({"verifyTimestamp": m}),
            None => Value::Null,
        };
        config(
            &reg,
            vec![root("default", "ca_root.pem", Some("tsa_root.pem"), None)],
            with,
        )
    };
    // Signed in January 2021 with a certificate valid that month only.
    let stamped = push_image(&reg, "expired/stamped", "v1", 950);
    notation_sign(
        &reg,
        &stamped,
        &[
            "--leaf",
            "leaf_expired",
            "--signing-time",
            "2021-01-15T12:00:00Z",
            "--timestamp",
            "tsa",
            "--ts-time",
            "2021-01-15T12:00:00Z",
        ],
    );
    let bare = push_image(&reg, "expired/bare", "v1", 951);
    notation_sign(
        &reg,
        &bare,
        &[
            "--leaf",
            "leaf_expired",
            "--signing-time",
            "2021-01-15T12:00:00Z",
        ],
    );
    for mode in [None, Some("always"), Some("afterCertExpiry")] {
        // With a timestamp inside the certificate's validity: admitted.
        assert_allowed(&verdict(&with_tsa(mode), &stamped.reference), &stamped);
        // Without one: the chain has expired, and nothing proves when it
        // signed.
        assert_denied(
            &verdict(&with_tsa(mode), &bare.reference),
            "TIMESTAMP_INVALID",
            "no timestamp countersignature",
        );
    }
    // Without a TSA root, timestamps are not verified and the chain must be
    // valid now.
    assert_denied(
        &verdict(&ca_config(&reg), &stamped.reference),
        "CERT_INVALID",
        "expired",
    );
    // A timestamp outside the certificate's validity.
    let late = push_image(&reg, "expired/late", "v1", 952);
    notation_sign(
        &reg,
        &late,
        &[
            "--leaf",
            "leaf_expired",
            "--timestamp",
            "tsa",
            "--ts-time",
            "2022-06-01T00:00:00Z",
        ],
    );
    assert_denied(
        &verdict(&with_tsa(None), &late.reference),
        "TIMESTAMP_INVALID",
        "outside the signing chain's validity",
    );
}

#[test]
fn timestamp_modes_for_a_valid_certificate() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tsmode/app", "v1", 955);
    notation_sign(&reg, &image, &[]);
    let cfg = |mode: &str| {
        config(
            &reg,
            vec![root("default", "ca_root.pem", Some("tsa_root.pem"), None)],
            json!({"verifyTimestamp": mode}),
        )
    };
    // `always` with a TSA root needs a timestamp; `afterCertExpiry` does
    // not while the certificate is valid.
    assert_denied(
        &verdict(&cfg("always"), &image.reference),
        "TIMESTAMP_INVALID",
        "no timestamp",
    );
    assert_allowed(&verdict(&cfg("afterCertExpiry"), &image.reference), &image);
    // A fresh timestamp from the trusted TSA satisfies `always`.
    let stamped = push_image(&reg, "tsmode/stamped", "v1", 956);
    notation_sign(
        &reg,
        &stamped,
        &["--envelope", "cose", "--timestamp", "tsa"],
    );
    assert_allowed(&verdict(&cfg("always"), &stamped.reference), &stamped);
}

#[test]
fn timestamp_from_an_untrusted_tsa_is_denied() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "tsa/untrusted", "v1", 960);
    notation_sign(&reg, &image, &["--timestamp", "other_tsa"]);
    let cfg = config(
        &reg,
        vec![root("default", "ca_root.pem", Some("tsa_root.pem"), None)],
        Value::Null,
    );
    assert_denied(
        &verdict(&cfg, &image.reference),
        "TIMESTAMP_INVALID",
        "not trusted",
    );
}

#[test]
fn unknown_critical_header_is_denied() {
    let reg = Registry::start_plain();
    for (i, envelope) in ["jws", "cose"].iter().enumerate() {
        let image = push_image(&reg, &format!("crit/{envelope}"), "v1", 965 + i as u64);
        notation_sign(
            &reg,
            &image,
            &["--envelope", envelope, "--crit-extra", "io.example.unknown"],
        );
        assert_denied(
            &verdict(&ca_config(&reg), &image.reference),
            "SIGNATURE_INVALID",
            "unknown critical header `io.example.unknown`",
        );
    }
}

#[test]
fn envelope_of_the_wrong_media_type_is_denied() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "mt/swapped", "v1", 970);
    notation_sign(&reg, &image, &["--layer-media-type", "application/cose"]);
    assert_denied(
        &verdict(&ca_config(&reg), &image.reference),
        "SIGNATURE_INVALID",
        "malformed application/cose envelope",
    );
    let image = push_image(&reg, "mt/octet", "v1", 971);
    notation_sign(
        &reg,
        &image,
        &["--layer-media-type", "application/octet-stream"],
    );
    assert_denied(
        &verdict(&ca_config(&reg), &image.reference),
        "SIGNATURE_INVALID",
        "not a Notary Project envelope media type",
    );
}

#[test]
fn no_signature_is_denied() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "none/app", "v1", 975);
    assert_denied(
        &verdict(&ca_config(&reg), &image.reference),
        "NO_SIGNATURES",
        &image.reference,
    );
}

#[test]
fn audit_allows_with_a_warning_but_never_without_integrity() {
    let reg = Registry::start_plain();
    let audit = config(
        &reg,
        vec![root("default", "ca_root.pem", None, None)],
        json!({"verificationLevel": "audit"}),
    );
    let untrusted = push_image(&reg, "audit/untrusted", "v1", 980);
    notation_sign(&reg, &untrusted, &["--leaf", "other_leaf"]);
    let r = verdict(&audit, &untrusted.reference);
    assert_allowed(&r, &untrusted);
    assert!(
        r["reason"].as_str().unwrap().starts_with("AUDIT_ONLY"),
        "{r}"
    );
    let warnings = r["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("NO_MATCHING_SIGNATURE")),
        "{r}"
    );
    // Integrity is enforced at every level.
    let tampered = push_image(&reg, "audit/tampered", "v1", 981);
    notation_sign(&reg, &tampered, &["--tamper", "payload"]);
    assert_denied(
        &verdict(&audit, &tampered.reference),
        "SIGNATURE_INVALID",
        "integrity",
    );
    let unsigned = push_image(&reg, "audit/unsigned", "v1", 982);
    assert_denied(&verdict(&audit, &unsigned.reference), "NO_SIGNATURES", "");
}

#[test]
fn expiry_is_enforced_when_strict_and_logged_when_permissive() {
    let reg = Registry::start_plain();
    let image = push_image(&reg, "expiry/app", "v1", 985);
    notation_sign(
        &reg,
        &image,
        &[
            "--signing-time",
            "2024-01-01T00:00:00Z",
            "--expiry",
            "2024-02-01T00:00:00Z",
        ],
    );
    assert_denied(
        &verdict(&ca_config(&reg), &image.reference),
        "EXPIRED",
        "expiry",
    );
    let permissive = config(
        &reg,
        vec![root("default", "ca_root.pem", None, None)],
        json!({"verificationLevel": "permissive"}),
    );
    let r = verdict(&permissive, &image.reference);
    assert_allowed(&r, &image);
    assert!(
        r["reason"].as_str().unwrap().starts_with("AUDIT_ONLY"),
        "{r}"
    );
    assert!(r["warnings"].to_string().contains("expired"), "{r}");
    // Permissive still enforces authenticity.
    let untrusted = push_image(&reg, "expiry/untrusted", "v1", 986);
    notation_sign(&reg, &untrusted, &["--leaf", "other_leaf"]);
    assert_denied(
        &verdict(&permissive, &untrusted.reference),
        "NO_MATCHING_SIGNATURE",
        "",
    );
}

#[test]
fn thresholds_count_distinct_signers() {
    let reg = Registry::start_plain();
    let roots = vec![
        root("acme", "ca_root.pem", None, None),
        root("partner", "other_root.pem", None, None),
    ];
    let two = config(
        &reg,
        roots.clone(),
        json!({"trustRoot": "*", "threshold": 2}),
    );
    let image = push_image(&reg, "threshold/both", "v1", 990);
    notation_sign(&reg, &image, &[]);
    assert_denied(
        &verdict(&two, &image.reference),
        "THRESHOLD_NOT_MET",
        "1 of 2",
    );
    notation_sign(&reg, &image, &["--leaf", "other_leaf"]);
    assert_allowed(&verdict(&two, &image.reference), &image);
    // `*` alone: one trusted signature admits (as Connaisseur).
    let any = config(&reg, roots.clone(), json!({"trustRoot": "*"}));
    let one = push_image(&reg, "threshold/one", "v1", 991);
    notation_sign(&reg, &one, &["--leaf", "other_leaf"]);
    assert_allowed(&verdict(&any, &one.reference), &one);
    let required = config(&reg, roots, json!({"trustRoot": "*", "required": ["acme"]}));
    assert_denied(
        &verdict(&required, &one.reference),
        "REQUIRED_SIGNER_MISSING",
        "acme",
    );
}

#[test]
fn a_notation_trust_policy_and_trust_store_are_imported() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("truststore");
    for (kind, name, file) in [
        ("ca", "acme", "ca_root.pem"),
        ("tsa", "stamps", "tsa_root.pem"),
    ] {
        let d = store.join("x509").join(kind).join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(notation_pki().join(file), d.join(file)).unwrap();
    }
    let covered = push_image(&reg, "policy/app", "v1", 995);
    notation_sign(&reg, &covered, &["--timestamp", "tsa"]);
    let uncovered = push_image(&reg, "policy/elsewhere", "v1", 996);
    notation_sign(&reg, &uncovered, &["--timestamp", "tsa"]);
    let write_policy = |identity: &str| {
        let policy = json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "acme-images",
                "registryScopes": [format!("{}/policy/app", reg.host())],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:acme", "tsa:stamps"],
                "trustedIdentities": [identity],
            }]
        });
        let path = dir.path().join("trustpolicy.json");
        std::fs::write(&path, policy.to_string()).unwrap();
        config_yaml(
            vec![json!({
                "name": "nv",
                "type": "notation",
                "insecureRegistries": [reg.host()],
                "trustPolicy": {"file": path, "trustStore": store},
            })],
            vec![rule(&format!("{}/**", reg.host()), "nv", Value::Null)],
        )
    };
    let ok = write_policy("x509.subject: C=DE, ST=Berlin, O=portcullis.test, CN=signer leaf_p256");
    assert_allowed(&verdict(&ok, &covered.reference), &covered);
    assert_denied(
        &verdict(&ok, &uncovered.reference),
        "NO_MATCHING_RULE",
        "trust policy",
    );
    let other = write_policy("x509.subject: C=DE, ST=Berlin, O=someone.else");
    assert_denied(
        &verdict(&other, &covered.reference),
        "IDENTITY_MISMATCH",
        "trusted identity",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_level_allows_through_the_gateway_with_warnings_in_the_answer_and_audit_log() {
    use portcullis_e2e::mode_stack::ModeStack;
    use portcullis_e2e::review::{allowed, patch};
    use portcullis_e2e::{Review, pod_spec};
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "audit/gw", "v1", 999));
    tokio::task::block_in_place(|| notation_sign(&reg, &image, &["--leaf", "other_leaf"]));
    let audit = config(
        &reg,
        vec![root("default", "ca_root.pem", None, None)],
        json!({"verificationLevel": "audit"}),
    );
    let stack = ModeStack::start(&audit, "detectionMode: false", Vec::new()).await;
    let review = Review::pod(pod_spec(&[&image.reference], &[], &[]));
    let body = stack.mutate(&review).await;
    assert!(allowed(&body), "{body}");
    // Pinned to the digest that was checked for integrity.
    assert!(
        patch(&body).is_some_and(|p| p
            .to_string()
            .contains(&format!("{}@{}", image.reference, image.digest))),
        "{body}"
    );
    let warnings = body["response"]["warnings"].to_string();
    assert!(
        warnings.contains(&image.reference) && warnings.contains("NO_MATCHING_SIGNATURE"),
        "{body}"
    );
    let record = stack.audit_of(&review.uid()).await;
    assert_eq!(record["images"][0]["reason"], "AUDIT_ONLY", "{record}");
    assert!(
        record["warnings"].to_string().contains("authenticity"),
        "{record}"
    );
}

/// The verdict cache never serves a notation allow past what it was
/// checked to hold until: a signature that expires while its allow is
/// cached is denied on the next admission, not answered from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_allow_never_outlives_the_signature_expiry() {
    use portcullis_proto::{Reason, Source, VerifyRequest};
    let reg = tokio::task::block_in_place(Registry::start_plain);
    let image = tokio::task::block_in_place(|| push_image(&reg, "expiring/app", "v1", 1500));
    let expiry = (chrono::Utc::now() + chrono::Duration::seconds(4))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    tokio::task::block_in_place(|| notation_sign(&reg, &image, &["--expiry", &expiry]));
    let v = tokio::task::block_in_place(|| portcullis_e2e::Verifier::start(&ca_config(&reg), &[]));
    let ask = || async {
        let mut client = v.client().await;
        client
            .verify(VerifyRequest {
                image: image.reference.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    };
    let r = ask().await;
    assert!(r.is_allowed(), "{r:?}");
    let r = ask().await;
    assert_eq!(r.source(), Source::CacheL1, "cached while valid: {r:?}");
    // The clock: past the expiry (the verdict TTL is 600 s).
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let r = ask().await;
    assert!(!r.is_allowed(), "{r:?}");
    assert_eq!(r.reason(), Reason::Expired, "{r:?}");
}
